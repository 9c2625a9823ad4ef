//! SIP over TCP and TLS: connections accepted or opened, framed by Content-Length, each with a
//! reader task and a writer task; a registry finds the connection for a destination.
//!
//! A connection we open is registered before it is up, so every message for that destination
//! queues on the one connection (the INVITE, then its CANCEL) instead of opening another. When
//! the connect, the TLS handshake or a write fails, the failure is reported
//! ([`TransportFailure`]) so the requests waiting there fail at once and calls fail over.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use landline_sip::message::{Limits, StreamFramer, Transport};
use landline_sip::transaction::Transmit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::gate::{Admission, ConnectionGate};
use super::{EdgeError, Inbound, Registry};

/// Messages queued to one connection's writer before new ones are dropped.
const WRITE_QUEUE: usize = 256;
/// How long a TLS handshake or an outgoing connect may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Transport failures held for the signalling core; more are dropped (their requests then
/// time out as they would have without the report).
const FAILURE_QUEUE: usize = 1024;

/// A destination the edge could not reach over a stream transport: the connect was refused or
/// timed out, the TLS handshake or the peer's certificate failed, or a write failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportFailure {
    /// Where messages were going.
    pub destination: SocketAddr,
    /// Over what.
    pub transport: Transport,
}

/// How to open TLS connections to one peer (a carrier's address): whom to trust, and the name
/// its certificate must carry.
#[derive(Clone)]
pub struct TlsPeer {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl TlsPeer {
    /// Connections verified against `roots` (see [`client_config`]) and `name`; `None` when
    /// `name` is neither a DNS name nor an IP address (config validation refuses those).
    pub fn new(config: Arc<ClientConfig>, name: &str) -> Option<TlsPeer> {
        let name = ServerName::try_from(name.to_owned()).ok()?;
        Some(TlsPeer {
            connector: TlsConnector::from(config),
            name,
        })
    }
}

/// Where a TLS listener's certificate chain and key are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

pub(super) struct Streams {
    registry: Registry,
    limits: Limits,
    idle_timeout: Duration,
    inbound: mpsc::Sender<Inbound>,
    /// Shared with the HTTP/WebSocket listeners: one cap over every connection.
    gate: Arc<ConnectionGate>,
    tcp_addr: OnceLock<SocketAddr>,
    tls_peers: DashMap<SocketAddr, TlsPeer>,
    failures: mpsc::Sender<TransportFailure>,
    failures_rx: Mutex<Option<mpsc::Receiver<TransportFailure>>>,
}

impl Streams {
    pub(super) fn new(
        limits: Limits,
        idle_timeout: Duration,
        inbound: mpsc::Sender<Inbound>,
        gate: Arc<ConnectionGate>,
    ) -> Self {
        let (failures, failures_rx) = mpsc::channel(FAILURE_QUEUE);
        Streams {
            registry: Registry::new(),
            limits,
            idle_timeout,
            inbound,
            gate,
            tcp_addr: OnceLock::new(),
            tls_peers: DashMap::new(),
            failures,
            failures_rx: Mutex::new(Some(failures_rx)),
        }
    }

    /// Lets messages to `destination` over TLS open a connection with `peer`'s settings.
    pub(super) fn add_tls_peer(&self, destination: SocketAddr, peer: TlsPeer) {
        self.tls_peers.insert(destination, peer);
    }

    /// The receiver of transport failures; `Some` once.
    pub(super) fn take_failures(&self) -> Option<mpsc::Receiver<TransportFailure>> {
        // A poisoned lock only means another thread panicked while taking it: nothing to
        // repair in an `Option`.
        self.failures_rx
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    fn report_failure(&self, destination: SocketAddr, tls: bool) {
        let transport = if tls { Transport::Tls } else { Transport::Tcp };
        let _ = self.failures.try_send(TransportFailure {
            destination,
            transport,
        });
    }

    pub(super) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr.get().copied()
    }

    pub(super) fn count(&self) -> usize {
        self.gate.count()
    }

    /// Queues a message on the connection to its destination, opening one if needed (TLS only
    /// to peers added with [`Streams::add_tls_peer`]).
    pub(super) fn send(self: &Arc<Self>, transmit: Transmit) {
        let tls = transmit.transport == Transport::Tls;
        let destination = transmit.destination;
        let key = (tls, destination);
        // Clone the sender out so no map guard is held while sending.
        let sender = self.registry.get(&key).map(|s| s.clone());
        if let Some(sender) = sender {
            if sender.try_send(transmit.data).is_err() {
                tracing::debug!(to = %destination, "SIP connection backlogged; message dropped");
            }
            return;
        }
        let peer = if tls {
            let Some(peer) = self.tls_peers.get(&destination).map(|p| p.clone()) else {
                tracing::warn!(to = %destination, "no TLS settings for this peer (not a TLS trunk address); message dropped");
                self.report_failure(destination, true);
                return;
            };
            Some(peer)
        } else {
            None
        };
        let Ok(admission) = self.gate.admit(None) else {
            tracing::warn!(to = %destination, "SIP connection not opened: connection limit reached (sip.max_connections)");
            self.report_failure(destination, tls);
            return;
        };
        // Registered now, so what is sent while it connects queues behind this message.
        let (sender, outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        let _ = sender.try_send(transmit.data);
        self.registry.insert(key, sender.clone());
        let streams = self.clone();
        tokio::spawn(async move {
            let transport = if tls { "TLS" } else { "TCP" };
            match streams.connect(destination, peer).await {
                Ok(Connection::Tcp(stream)) => {
                    tracing::info!(to = %destination, transport, "SIP connection opened");
                    streams.run(stream, destination, false, outgoing, admission);
                }
                Ok(Connection::Tls(stream)) => {
                    tracing::info!(to = %destination, transport, "SIP connection opened");
                    streams.run(*stream, destination, true, outgoing, admission);
                }
                Err(error) => {
                    tracing::warn!(to = %destination, %error, "cannot connect over {transport}; requests there fail");
                    // Only our own entry: a connection the peer opened meanwhile stays.
                    streams
                        .registry
                        .remove_if(&key, |_, s| s.same_channel(&sender));
                    drop(admission);
                    streams.report_failure(destination, tls);
                }
            }
        });
    }

    /// Opens a connection to `destination`: TCP, then TLS when `peer` is given.
    async fn connect(
        &self,
        destination: SocketAddr,
        peer: Option<TlsPeer>,
    ) -> std::io::Result<Connection> {
        let opening = async {
            let stream = TcpStream::connect(destination).await?;
            let _ = stream.set_nodelay(true);
            match peer {
                None => Ok(Connection::Tcp(stream)),
                Some(peer) => {
                    let tls = peer.connector.connect(peer.name, stream).await?;
                    Ok(Connection::Tls(Box::new(tls)))
                }
            }
        };
        tokio::time::timeout(HANDSHAKE_TIMEOUT, opening)
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no connection within 10 s",
                ))
            })
    }

    /// Registers a connection the peer opened (admitted under the caps) and starts its tasks.
    fn adopt<S>(self: &Arc<Self>, io: S, peer: SocketAddr, tls: bool, admission: Admission)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        self.registry.insert((tls, peer), sender);
        self.run(io, peer, tls, outgoing, admission);
    }

    /// Starts a registered connection's writer and reader; the reader unregisters it when it
    /// ends.
    fn run<S>(
        self: &Arc<Self>,
        io: S,
        peer: SocketAddr,
        tls: bool,
        mut outgoing: mpsc::Receiver<Vec<u8>>,
        admission: Admission,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (mut reader, mut writer) = tokio::io::split(io);
        let streams = self.clone();
        let writer_task = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if let Err(error) = writer.write_all(&message).await {
                    tracing::info!(%peer, %error, "SIP connection write failed");
                    streams.report_failure(peer, tls);
                    break;
                }
            }
            let _ = writer.shutdown().await;
        });
        let streams = self.clone();
        let transport = if tls { Transport::Tls } else { Transport::Tcp };
        tokio::spawn(async move {
            let mut framer = StreamFramer::new(streams.limits.clone());
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let read = tokio::time::timeout(streams.idle_timeout, reader.read(&mut buf)).await;
                let n = match read {
                    Ok(Ok(n)) if n > 0 => n,
                    _ => break,
                };
                framer.push(&buf[..n]);
                let mut broken = false;
                loop {
                    match framer.next_frame() {
                        Ok(Some(data)) => {
                            let message = Inbound {
                                source: peer,
                                transport: transport.clone(),
                                data,
                            };
                            if streams.inbound.send(message).await.is_err() {
                                broken = true;
                                break;
                            }
                        }
                        Ok(None) => break,
                        Err(error) => {
                            // No way to resynchronise a stream: close it (RFC 3261 §18.3).
                            tracing::info!(%peer, %error, "unframeable SIP stream; closing");
                            broken = true;
                            break;
                        }
                    }
                }
                if broken {
                    break;
                }
            }
            streams.registry.remove(&(tls, peer));
            drop(admission);
            writer_task.abort();
        });
    }
}

pub(super) async fn listen_tcp(
    streams: Arc<Streams>,
    address: SocketAddr,
) -> Result<(), EdgeError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| EdgeError::Bind {
            transport: "SIP over TCP",
            address,
            source,
        })?;
    if let Ok(local) = listener.local_addr() {
        let _ = streams.tcp_addr.set(local);
    }
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                // Out of descriptors, say: pause instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            match streams.gate.admit(Some(peer.ip())) {
                Ok(admission) => {
                    let _ = stream.set_nodelay(true);
                    streams.adopt(stream, peer, false, admission);
                }
                Err(why) => streams.gate.log_refusal(peer, "TCP", why),
            }
        }
    });
    Ok(())
}

pub(super) async fn listen_tls(
    streams: Arc<Streams>,
    address: SocketAddr,
    files: &TlsFiles,
) -> Result<(), EdgeError> {
    let acceptor = TlsAcceptor::from(Arc::new(server_config(files)?));
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| EdgeError::Bind {
            transport: "SIP over TLS",
            address,
            source,
        })?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            // Counted from the accept: a handshake in progress holds a descriptor too.
            let admission = match streams.gate.admit(Some(peer.ip())) {
                Ok(admission) => admission,
                Err(why) => {
                    streams.gate.log_refusal(peer, "TLS", why);
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => streams.adopt(tls, peer, true, admission),
                    _ => tracing::info!(%peer, "TLS handshake failed"),
                }
            });
        }
    });
    Ok(())
}

/// Loads a certificate chain and key; errors name the file and what to do.
pub(crate) fn server_config(files: &TlsFiles) -> Result<ServerConfig, EdgeError> {
    let read = |path: &PathBuf| {
        std::fs::read(path).map_err(|e| {
            EdgeError::Tls(format!(
                "cannot read {}: {e}; check the path and permissions",
                path.display()
            ))
        })
    };
    let cert_pem = read(&files.cert)?;
    let key_pem = read(&files.key)?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| {
            EdgeError::Tls(format!(
                "{}: not a PEM certificate chain: {e}",
                files.cert.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(EdgeError::Tls(format!(
            "{}: no certificate found",
            files.cert.display()
        )));
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| EdgeError::Tls(format!("{}: not a PEM key: {e}", files.key.display())))?
        .ok_or_else(|| EdgeError::Tls(format!("{}: no private key found", files.key.display())))?;
    ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EdgeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| EdgeError::Tls(format!("certificate and key do not match: {e}")))
}

/// A connection we opened.
enum Connection {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// TLS settings for connections to carriers: trust the CA certificates in `ca` (a PEM file)
/// when given, else the public web PKI roots compiled into landline (`webpki-roots`, Mozilla's
/// list), so a carrier with a public certificate needs no setting and a private CA exactly
/// one. Errors name the file and what to do.
pub fn client_config(ca: Option<&std::path::Path>) -> Result<ClientConfig, EdgeError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                EdgeError::Tls(format!(
                    "cannot read {}: {e}; check the path and permissions",
                    path.display()
                ))
            })?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| {
                    EdgeError::Tls(format!("{}: not a PEM certificate: {e}", path.display()))
                })?;
                roots.add(cert).map_err(|e| {
                    EdgeError::Tls(format!(
                        "{}: a certificate cannot be a trust anchor: {e}",
                        path.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(EdgeError::Tls(format!(
                    "{}: no certificate found",
                    path.display()
                )));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| EdgeError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth())
}
