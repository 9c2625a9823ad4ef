//! The SIP edge: UDP, TCP, TLS and WebSocket transports that carry bytes between the network
//! and the sans-IO user agent, and the HTTP listener that serves the web dialer's page on the
//! WebSocket port.
//!
//! Every received datagram, stream frame or WebSocket message goes to the signalling core as an
//! [`Inbound`]; a closed WebSocket as a [`Closed`] (its registrations must go), both read through
//! [`EdgeEvents`]. Everything the core wants sent comes back as a
//! [`Transmit`](landline_sip::transaction::Transmit), routed by transport and destination: UDP
//! from the listening socket (so responses leave from the port requests came to), TCP and TLS
//! down the connection the peer opened, or a new one we open to it, WS and WSS only down the
//! connection the client opened (nobody can connect to a browser).

mod assets;
mod gate;
mod http;
mod stream;
mod udp;
mod ws;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use landline_sip::message::{Limits, Transport};
use landline_sip::transaction::Transmit;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::ops::metrics::Metrics;

pub use stream::{TlsFiles, TlsPeer, TransportFailure, client_config};

/// Messages held for the signalling core before transports wait (backpressure).
const INBOUND_QUEUE: usize = 4096;
/// Connection closures held for the signalling core.
const CLOSED_QUEUE: usize = 1024;

/// Bytes that arrived from the network, for the signalling core.
#[derive(Debug)]
pub struct Inbound {
    /// Who sent them.
    pub source: SocketAddr,
    /// Over what.
    pub transport: Transport,
    /// One datagram or one framed stream message.
    pub data: Vec<u8>,
}

/// How the transports are set up.
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// UDP listen address, if UDP is enabled.
    pub udp: Option<SocketAddr>,
    /// TCP listen address, if TCP is enabled.
    pub tcp: Option<SocketAddr>,
    /// TLS listen address and certificate, if TLS is enabled.
    pub tls: Option<(SocketAddr, TlsFiles)>,
    /// Message size and header limits.
    pub limits: Limits,
    /// Most simultaneous connections over SIP TCP/TLS and HTTP/WebSocket together; more are
    /// refused.
    pub max_connections: usize,
    /// Most of them from one source address.
    pub max_connections_per_source: usize,
    /// A stream connection idle this long is closed.
    pub idle_timeout: Duration,
    /// The HTTP/WebSocket listeners, if enabled.
    pub http: Option<HttpEdgeConfig>,
}

/// How the HTTP listeners (web dialer and SIP over WebSocket) are set up.
#[derive(Debug, Clone)]
pub struct HttpEdgeConfig {
    /// HTTP and WS listen address.
    pub listen: SocketAddr,
    /// HTTPS and WSS listen address and certificate, if enabled.
    pub secure: Option<(SocketAddr, TlsFiles)>,
    /// The path WebSocket upgrades are accepted on.
    pub ws_path: String,
    /// Origins whose pages may open a WebSocket; empty means any.
    pub allowed_origins: Vec<String>,
    /// How often an open WebSocket is pinged.
    pub ping_interval: Duration,
    /// A WebSocket that sends nothing (not even a pong) this long is closed.
    pub idle_timeout: Duration,
}

/// A connection that can no longer carry messages: its peer is unreachable until it connects
/// again, so the signalling core drops what it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed {
    /// The peer's address (the `source` its messages came with).
    pub peer: SocketAddr,
    /// Its transport.
    pub transport: Transport,
}

/// What the edge tells the signalling core.
#[derive(Debug)]
pub enum EdgeEvent {
    /// A message arrived.
    Received(Inbound),
    /// A WebSocket closed.
    Closed(Closed),
}

/// The receiving end of the edge, for the signalling core.
///
/// A connection's messages come before its [`EdgeEvent::Closed`]: they travel on separate
/// channels, so a closure is held back until the messages queued before it are out.
#[derive(Debug)]
pub struct EdgeEvents {
    inbound: mpsc::Receiver<Inbound>,
    closed: mpsc::Receiver<Closed>,
    held: VecDeque<Closed>,
}

impl EdgeEvents {
    /// The next event; `None` once every transport has stopped. Cancel-safe.
    pub async fn recv(&mut self) -> Option<EdgeEvent> {
        loop {
            if let Ok(message) = self.inbound.try_recv() {
                return Some(EdgeEvent::Received(message));
            }
            if let Some(closed) = self.held.pop_front() {
                return Some(EdgeEvent::Closed(closed));
            }
            tokio::select! {
                biased;
                Some(message) = self.inbound.recv() => return Some(EdgeEvent::Received(message)),
                // A closure is sent after its connection's last message: anything that
                // connection queued is visible now, and goes first (top of the loop).
                Some(closed) = self.closed.recv() => self.held.push_back(closed),
                else => return None,
            }
        }
    }
}

/// The configuration key of the listener for `transport`, for error messages.
fn listener_key(transport: &str) -> &'static str {
    match transport {
        "SIP over UDP" => "sip.udp",
        "SIP over TCP" => "sip.tcp",
        "SIP over TLS" => "sip.tls",
        "HTTPS/WSS" => "http.secure_listen",
        _ => "http.listen",
    }
}

/// Errors of the SIP edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A listener could not bind.
    #[error(
        "cannot listen for {transport} on {address}: {source}; if another process holds the port \
         (another landline?), stop it, or set another address in `{}`",
        listener_key(.transport)
    )]
    Bind {
        /// Transport name.
        transport: &'static str,
        /// The address.
        address: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
}

/// The running transports; cheap to clone into tasks.
#[derive(Clone)]
pub struct Edge {
    udp: Option<Arc<tokio::net::UdpSocket>>,
    streams: Arc<stream::Streams>,
    websockets: Arc<ws::WebSockets>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
}

impl Edge {
    /// Binds every configured listener and starts their tasks; returns the edge and the
    /// receiver of everything that arrives.
    pub async fn start(
        config: EdgeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(Edge, EdgeEvents), EdgeError> {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let (closed_tx, closed_rx) = mpsc::channel(CLOSED_QUEUE);
        let (ping_interval, ws_idle) = config
            .http
            .as_ref()
            .map_or((config.idle_timeout, config.idle_timeout), |h| {
                (h.ping_interval, h.idle_timeout)
            });
        let websockets = Arc::new(ws::WebSockets::new(
            config.limits.clone(),
            ping_interval,
            ws_idle,
            inbound_tx.clone(),
            closed_tx,
            metrics.clone(),
        ));
        let udp = match config.udp {
            Some(address) => Some(udp::start(address, inbound_tx.clone()).await?),
            None => None,
        };
        // One count of open connections for SIP TCP/TLS and HTTP/WebSocket alike, under one
        // cap and one per source address: a flood on one port, or from one host, cannot take
        // the descriptors the others need.
        let gate =
            gate::ConnectionGate::new(config.max_connections, config.max_connections_per_source);
        let streams = Arc::new(stream::Streams::new(
            config.limits,
            config.idle_timeout,
            inbound_tx,
            gate.clone(),
        ));
        if let Some(address) = config.tcp {
            stream::listen_tcp(streams.clone(), address).await?;
        }
        if let Some((address, files)) = config.tls {
            stream::listen_tls(streams.clone(), address, &files).await?;
        }
        let (mut http_addr, mut https_addr) = (None, None);
        if let Some(http) = config.http {
            let server = Arc::new(http::HttpServer::new(
                http.ws_path,
                http.allowed_origins,
                websockets.clone(),
                metrics,
                gate,
            ));
            http_addr = Some(http::listen(server.clone(), http.listen, None).await?);
            if let Some((address, files)) = http.secure {
                let acceptor = TlsAcceptor::from(Arc::new(stream::server_config(&files)?));
                https_addr = Some(http::listen(server, address, Some(acceptor)).await?);
            }
        }
        let edge = Edge {
            udp,
            streams,
            websockets,
            http_addr,
            https_addr,
        };
        let events = EdgeEvents {
            inbound: inbound_rx,
            closed: closed_rx,
            held: VecDeque::new(),
        };
        Ok((edge, events))
    }

    /// The local UDP address, once bound (useful when configured with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The local TCP address, once bound.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.streams.tcp_addr()
    }

    /// The local HTTP/WS address, if that listener is enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The local HTTPS/WSS address, if that listener is enabled.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// Sends what the user agent produced. Never waits on the network: a stream message is
    /// queued to its connection's writer, a datagram is sent or dropped.
    pub fn send(&self, transmit: Transmit) {
        match transmit.transport {
            Transport::Udp => {
                if let Some(socket) = &self.udp {
                    if let Err(error) = socket.try_send_to(&transmit.data, transmit.destination) {
                        tracing::debug!(%error, to = %transmit.destination, "SIP datagram not sent");
                    }
                }
            }
            Transport::Tcp | Transport::Tls => self.streams.send(transmit),
            Transport::Ws | Transport::Wss => self.websockets.send(transmit),
            other => tracing::warn!(transport = %other.as_str(), "no such SIP transport here"),
        }
    }

    /// Open connections over every stream transport (SIP TCP/TLS, HTTP, WebSocket): what the
    /// connection cap counts.
    pub fn connections(&self) -> usize {
        self.streams.count()
    }

    /// Lets messages to `destination` over TLS open a connection with `peer`'s trust and
    /// server name (a TLS trunk's address); TLS to anyone else only answers connections they
    /// opened.
    pub fn add_tls_peer(&self, destination: SocketAddr, peer: TlsPeer) {
        self.streams.add_tls_peer(destination, peer);
    }

    /// Destinations a stream transport failed to reach, for the signalling core (which fails
    /// the requests waiting there); `Some` the first time only.
    pub fn transport_failures(&self) -> Option<mpsc::Receiver<TransportFailure>> {
        self.streams.take_failures()
    }

    /// Open WebSocket connections.
    pub fn websockets(&self) -> usize {
        self.websockets.count()
    }
}

type Registry = DashMap<(bool, SocketAddr), mpsc::Sender<Vec<u8>>>;
