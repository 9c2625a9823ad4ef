//! SIP over WebSocket (RFC 7118): one task per upgraded connection carries whole SIP messages
//! between the socket and the signalling core, keeps the connection alive with pings, and
//! closes it (only it) on a bad frame, an oversized message or silence.
//!
//! A WebSocket client can only be reached down the connection it opened: a registry maps the
//! peer's address to its connection, [`WebSockets::send`] uses it, and a message for a
//! connection that is gone is dropped (the client is unreachable until it re-registers). When a
//! connection ends, the signalling core hears of it ([`Closed`]) and forgets its bindings.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use landline_sip::message::{Limits, Transport};
use landline_sip::transaction::Transmit;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};

use super::{Closed, Inbound, Registry};
use crate::ops::metrics::Metrics;

/// Messages queued to one connection before new ones are dropped.
const WRITE_QUEUE: usize = 256;
/// How long one message (or ping) may take to write before the connection is given up.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the closing handshake may take.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// The socket read buffer per connection: small, since there may be thousands of idle
/// browsers; a larger SIP message is read in several steps.
const READ_BUFFER: usize = 8 * 1024;

/// The WebSocket connections of one edge, for routing and counting.
pub(super) struct WebSockets {
    registry: Registry,
    limits: Limits,
    ping_interval: Duration,
    idle_timeout: Duration,
    inbound: mpsc::Sender<Inbound>,
    closed: mpsc::Sender<Closed>,
    open: AtomicUsize,
    metrics: Arc<Metrics>,
}

impl WebSockets {
    pub(super) fn new(
        limits: Limits,
        ping_interval: Duration,
        idle_timeout: Duration,
        inbound: mpsc::Sender<Inbound>,
        closed: mpsc::Sender<Closed>,
        metrics: Arc<Metrics>,
    ) -> Self {
        WebSockets {
            registry: Registry::new(),
            limits,
            ping_interval,
            idle_timeout,
            inbound,
            closed,
            open: AtomicUsize::new(0),
            metrics,
        }
    }

    /// Open WebSocket connections.
    pub(super) fn count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Queues a message on the connection the client opened; never opens one.
    pub(super) fn send(&self, transmit: Transmit) {
        let key = (transmit.transport == Transport::Wss, transmit.destination);
        // Clone the sender out so no map guard is held while sending.
        let sender = self.registry.get(&key).map(|s| s.clone());
        match sender {
            Some(sender) => {
                if sender.try_send(transmit.data).is_err() {
                    tracing::debug!(to = %transmit.destination, "WebSocket backlogged or closing; SIP message dropped");
                }
            }
            None => tracing::debug!(
                to = %transmit.destination,
                "no WebSocket connection to this client (it closed); SIP message dropped"
            ),
        }
    }
}

/// Serves one upgraded connection until it ends. `leftover` is what was read past the HTTP
/// request head (a client may send its first frame without waiting for our 101).
pub(super) async fn serve<S>(
    sockets: Arc<WebSockets>,
    io: S,
    leftover: Vec<u8>,
    peer: SocketAddr,
    secure: bool,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limit = sockets.limits.max_message;
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(Some(limit))
        .max_frame_size(Some(limit));
    let mut stream =
        WebSocketStream::from_partially_read(io, leftover, Role::Server, Some(config)).await;
    let transport = if secure {
        Transport::Wss
    } else {
        Transport::Ws
    };
    let key = (secure, peer);
    let (sender, mut outgoing) = mpsc::channel::<Vec<u8>>(WRITE_QUEUE);
    sockets.registry.insert(key, sender.clone());
    sockets.open.fetch_add(1, Ordering::Relaxed);
    sockets.metrics.websocket_opened();
    tracing::debug!(%peer, %transport, "SIP WebSocket open");

    let ended = pump(&sockets, &mut stream, &mut outgoing, peer, &transport).await;

    // Only our own entry: never one a later connection from the same address put there.
    sockets
        .registry
        .remove_if(&key, |_, s| s.same_channel(&sender));
    match ended {
        Ended::TooBig | Ended::Protocol | Ended::BadText => {
            tracing::info!(%peer, reason = ended.as_str(), "SIP WebSocket closed")
        }
        _ => tracing::debug!(%peer, reason = ended.as_str(), "SIP WebSocket closed"),
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.close(ended.close_frame())).await;
    drop(stream);
    sockets.open.fetch_sub(1, Ordering::Relaxed);
    sockets.metrics.websocket_closed();
    let _ = sockets.closed.send(Closed { peer, transport }).await;
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// The client closed it (close frame or EOF).
    Closed,
    /// A frame or message over the SIP message size limit.
    TooBig,
    /// A WebSocket protocol violation (unmasked frame, bad opcode...).
    Protocol,
    /// A text message that is not UTF-8.
    BadText,
    /// Nothing heard (not even a pong) for the idle timeout.
    Idle,
    /// The socket failed, or a write did not finish in time.
    Failed,
    /// The signalling core is gone (shutting down).
    Shutdown,
}

impl Ended {
    fn as_str(self) -> &'static str {
        match self {
            Ended::Closed => "closed by the client",
            Ended::TooBig => "message over the size limit",
            Ended::Protocol => "WebSocket protocol error",
            Ended::BadText => "text message not UTF-8",
            Ended::Idle => "idle",
            Ended::Failed => "socket error",
            Ended::Shutdown => "shutting down",
        }
    }

    /// The close frame we send (RFC 6455 §7.4.1 codes), if the socket is still usable.
    fn close_frame(self) -> Option<CloseFrame> {
        let code = match self {
            Ended::TooBig => CloseCode::Size,
            Ended::Protocol => CloseCode::Protocol,
            Ended::BadText => CloseCode::Invalid,
            Ended::Idle | Ended::Shutdown => CloseCode::Away,
            Ended::Closed | Ended::Failed => return None,
        };
        Some(CloseFrame {
            code,
            reason: self.as_str().into(),
        })
    }
}

impl From<WsError> for Ended {
    fn from(error: WsError) -> Self {
        match error {
            WsError::Capacity(_) => Ended::TooBig,
            WsError::Protocol(_) | WsError::AttackAttempt => Ended::Protocol,
            WsError::Utf8(_) => Ended::BadText,
            WsError::ConnectionClosed | WsError::AlreadyClosed => Ended::Closed,
            _ => Ended::Failed,
        }
    }
}

/// Moves messages both ways until the connection should end.
async fn pump<S>(
    sockets: &WebSockets,
    stream: &mut WebSocketStream<S>,
    outgoing: &mut mpsc::Receiver<Vec<u8>>,
    peer: SocketAddr,
    transport: &Transport,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut ping = tokio::time::interval_at(
        Instant::now() + sockets.ping_interval,
        sockets.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    loop {
        tokio::select! {
            frame = stream.next() => {
                let message = match frame {
                    None => return Ended::Closed,
                    Some(Ok(message)) => message,
                    Some(Err(error)) => return Ended::from(error),
                };
                // Any frame, pongs included, shows the client is there.
                heard = Instant::now();
                let data = match &message {
                    Message::Text(text) => text.as_bytes(),
                    Message::Binary(data) => &data[..],
                    // tungstenite answers pings itself; the closing handshake ends below.
                    Message::Close(_) => return Ended::Closed,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
                };
                if data.iter().all(u8::is_ascii_whitespace) {
                    // RFC 5626 §4.4.1 keep-alive over the stream: a double CRLF ping gets a
                    // CRLF pong; anything else blank is ignored.
                    if data == b"\r\n\r\n" && !write(stream, Message::text("\r\n")).await {
                        return Ended::Failed;
                    }
                    continue;
                }
                let inbound = Inbound {
                    source: peer,
                    transport: transport.clone(),
                    data: data.to_vec(),
                };
                if sockets.inbound.send(inbound).await.is_err() {
                    return Ended::Shutdown;
                }
            }
            Some(data) = outgoing.recv() => {
                // SIP is text; a body that is not UTF-8 goes as a binary message (RFC 7118 §5).
                let message = match String::from_utf8(data) {
                    Ok(text) => Message::text(text),
                    Err(not_text) => Message::binary(not_text.into_bytes()),
                };
                if !write(stream, message).await {
                    return Ended::Failed;
                }
            }
            _ = ping.tick() => {
                if !write(stream, Message::Ping(Bytes::new())).await {
                    return Ended::Failed;
                }
            }
            _ = tokio::time::sleep_until(heard + sockets.idle_timeout) => return Ended::Idle,
        }
    }
}

/// Writes one message; false when the connection is unusable or the peer does not read.
async fn write<S>(stream: &mut WebSocketStream<S>, message: Message) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, stream.send(message)).await,
        Ok(Ok(()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_close_with_the_rfc_6455_code() {
        let code = |e: Ended| e.close_frame().map(|f| f.code);
        assert_eq!(code(Ended::TooBig), Some(CloseCode::Size));
        assert_eq!(code(Ended::Protocol), Some(CloseCode::Protocol));
        assert_eq!(code(Ended::BadText), Some(CloseCode::Invalid));
        assert_eq!(code(Ended::Idle), Some(CloseCode::Away));
        assert_eq!(code(Ended::Closed), None);
    }
}
