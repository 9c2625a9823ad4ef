//! SIP over TCP and TLS: connections accepted or opened, framed by Content-Length, each with a
//! reader task and a writer task; a registry finds the connection for a destination.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use landline_sip::message::{Limits, StreamFramer, Transport};
use landline_sip::transaction::Transmit;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{EdgeError, Inbound, Registry};

/// Messages queued to one connection's writer before new ones are dropped.
const WRITE_QUEUE: usize = 256;
/// How long a TLS handshake or an outgoing connect may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

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
    max_connections: usize,
    idle_timeout: Duration,
    inbound: mpsc::Sender<Inbound>,
    open: AtomicUsize,
    tcp_addr: OnceLock<SocketAddr>,
}

impl Streams {
    pub(super) fn new(
        limits: Limits,
        max_connections: usize,
        idle_timeout: Duration,
        inbound: mpsc::Sender<Inbound>,
    ) -> Self {
        Streams {
            registry: Registry::new(),
            limits,
            max_connections,
            idle_timeout,
            inbound,
            open: AtomicUsize::new(0),
            tcp_addr: OnceLock::new(),
        }
    }

    pub(super) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp_addr.get().copied()
    }

    pub(super) fn count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Queues a message on the connection to its destination, opening one (TCP) if needed.
    pub(super) fn send(self: &Arc<Self>, transmit: Transmit) {
        let tls = transmit.transport == Transport::Tls;
        let key = (tls, transmit.destination);
        // Clone the sender out so no map guard is held while sending.
        let sender = self.registry.get(&key).map(|s| s.clone());
        if let Some(sender) = sender {
            if sender.try_send(transmit.data).is_err() {
                tracing::debug!(to = %transmit.destination, "SIP connection backlogged; message dropped");
            }
            return;
        }
        if tls {
            // Outgoing TLS needs a trust store and server names per trunk: not built yet.
            tracing::warn!(to = %transmit.destination, "no TLS connection to this peer; message dropped");
            return;
        }
        let streams = self.clone();
        tokio::spawn(async move {
            let destination = transmit.destination;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, TcpStream::connect(destination)).await {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    if let Some(sender) = streams.adopt(stream, destination, false) {
                        let _ = sender.try_send(transmit.data);
                    }
                }
                _ => tracing::info!(to = %destination, "cannot connect over TCP; message dropped"),
            }
        });
    }

    /// Registers a connection and starts its tasks; `None` when over the connection limit.
    fn adopt<S>(
        self: &Arc<Self>,
        io: S,
        peer: SocketAddr,
        tls: bool,
    ) -> Option<mpsc::Sender<Vec<u8>>>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_connections {
            self.open.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(%peer, "SIP connection refused: connection limit reached");
            return None;
        }
        let (sender, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
        self.registry.insert((tls, peer), sender.clone());
        let (mut reader, mut writer) = tokio::io::split(io);
        let writer_task = tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if writer.write_all(&message).await.is_err() {
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
            streams.open.fetch_sub(1, Ordering::Relaxed);
            writer_task.abort();
        });
        Some(sender)
    }
}

pub(super) async fn listen_tcp(
    streams: Arc<Streams>,
    address: SocketAddr,
) -> Result<(), EdgeError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| EdgeError::Bind {
            transport: "TCP",
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
            let _ = stream.set_nodelay(true);
            streams.adopt(stream, peer, false);
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
            transport: "TLS",
            address,
            source,
        })?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let acceptor = acceptor.clone();
            let streams = streams.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        streams.adopt(tls, peer, true);
                    }
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
