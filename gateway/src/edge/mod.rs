//! The SIP edge: UDP, TCP and TLS transports that carry bytes between the network and the
//! sans-IO user agent, and nothing else.
//!
//! Every received datagram or stream frame goes to the signalling core as an [`Inbound`] over one
//! bounded channel; everything the core wants sent comes back as a
//! [`Transmit`](landline_sip::transaction::Transmit), routed by transport and destination: UDP
//! from the listening socket (so responses leave from the port requests came to), TCP and TLS
//! down the connection the peer opened, or a new one we open to it.

mod stream;
mod udp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use landline_sip::message::{Limits, Transport};
use landline_sip::transaction::Transmit;
use tokio::sync::mpsc;

pub use stream::TlsFiles;

/// Messages held for the signalling core before transports wait (backpressure).
const INBOUND_QUEUE: usize = 4096;

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
    /// Most simultaneous TCP/TLS connections; more are refused.
    pub max_connections: usize,
    /// A stream connection idle this long is closed.
    pub idle_timeout: Duration,
}

/// Errors of the SIP edge.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A listener could not bind.
    #[error(
        "cannot listen for SIP over {transport} on {address}: {source} (is another process using the port?)"
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
}

impl Edge {
    /// Binds every configured listener and starts their tasks; returns the edge and the
    /// receiver of everything that arrives.
    pub async fn start(config: EdgeConfig) -> Result<(Edge, mpsc::Receiver<Inbound>), EdgeError> {
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let udp = match config.udp {
            Some(address) => Some(udp::start(address, inbound_tx.clone()).await?),
            None => None,
        };
        let streams = Arc::new(stream::Streams::new(
            config.limits,
            config.max_connections,
            config.idle_timeout,
            inbound_tx,
        ));
        if let Some(address) = config.tcp {
            stream::listen_tcp(streams.clone(), address).await?;
        }
        if let Some((address, files)) = config.tls {
            stream::listen_tls(streams.clone(), address, &files).await?;
        }
        Ok((Edge { udp, streams }, inbound_rx))
    }

    /// The local UDP address, once bound (useful when configured with port 0).
    pub fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.as_ref().and_then(|s| s.local_addr().ok())
    }

    /// The local TCP address, once bound.
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.streams.tcp_addr()
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
            other => tracing::warn!(transport = %other.as_str(), "no such SIP transport here"),
        }
    }

    /// Open stream connections, for metrics and leak checks.
    pub fn connections(&self) -> usize {
        self.streams.count()
    }
}

type Registry = DashMap<(bool, SocketAddr), mpsc::Sender<Vec<u8>>>;
