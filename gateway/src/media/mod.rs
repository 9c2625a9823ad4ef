//! The media plane: N shard threads, each owning its calls' sockets, codecs and pipelines.
//!
//! The control plane (call setup, on tokio) binds a call's RTP sockets from the [`PortPool`],
//! picks the least loaded shard and hands it the call in a [`Command`] over a bounded lock-free
//! queue, then wakes it. From then on every packet of that call is handled on that one thread
//! with plain `&mut` state: no lock, no channel hop, no allocation, no `await`. The shard reports
//! back rarely ([`MediaEvent`]: a digit, a media timeout, the end of a call) over a bounded
//! channel. Per-shard counters are atomics the metrics exporter reads.

mod call;
mod dtls;
mod ports;
mod priority;
mod shard;
mod tone;
mod webrtc;

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use landline_codecs::{G711Law, OpusSettings, OutputStream, Timing};
use tokio::sync::mpsc;

pub use call::LegChange;
pub use ports::PortPool;
use shard::Shard;
pub use webrtc::{Drained, RTP_BUFFER, WebRtcIdentity, WebRtcSession};

/// Commands a shard's queue holds before call setup is refused as overload.
const COMMAND_QUEUE: usize = 1024;
/// Events held for the control plane before new ones are dropped (and counted).
const EVENT_QUEUE: usize = 4096;

/// Identifies a call's media on the shards; the control plane maps it to its own call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaCallId(pub u64);

/// Which side of a call a leg faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LegRole {
    /// The user's client (browser or softphone).
    Client,
    /// The carrier's trunk.
    Trunk,
}

/// The codec a leg negotiated, with the payload types its SDP gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegCodec {
    /// Opus (48 kHz RTP clock).
    Opus {
        /// The negotiated dynamic payload type for `opus/48000/2`.
        payload_type: u8,
        /// The payload type for `telephone-event/48000`, if negotiated: the far side's, which
        /// we send with.
        event_payload_type: Option<u8>,
        /// The telephone-event type our own SDP gave when it differs from the far side's: it
        /// should send with ours (RFC 3264 §6.1); events come in with either.
        our_event_payload_type: Option<u8>,
    },
    /// G.711 (8 kHz RTP clock).
    G711 {
        /// µ-law (PCMU) or A-law (PCMA).
        law: G711Law,
        /// The audio payload type in the far side's SDP, which we send with: the law's static
        /// type (0, 8) unless it mapped the law to another. The static type is accepted too.
        payload_type: u8,
        /// The payload type for `telephone-event/8000`, if negotiated: the far side's, which
        /// we send with.
        event_payload_type: Option<u8>,
        /// The telephone-event type our own SDP gave when it differs from the far side's: it
        /// should send with ours (RFC 3264 §6.1); events come in with either.
        our_event_payload_type: Option<u8>,
        /// The payload type for comfort noise (`CN/8000`), if negotiated.
        comfort_noise_payload_type: Option<u8>,
    },
}

/// Where a leg may receive media from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchPolicy {
    /// Only from the address the SDP gave (any port): carriers, which are not behind NAT.
    Strict,
    /// From the first source that sends valid RTP (symmetric RTP, for clients behind NAT);
    /// another source takes over only after the current one has been silent a while.
    Learn,
}

/// How a leg's media travels.
#[derive(Debug)]
pub enum LegTransport {
    /// Plain RTP on the leg's own socket, bound from the [`PortPool`].
    Rtp(UdpSocket),
    /// A browser's WebRTC session, on the shard's shared WebRTC port (the call must be added
    /// to the shard whose port the session's candidate names: [`MediaPlane::add_call_on`]).
    WebRtc(Box<WebRtcSession>),
}

/// One leg of a call to set up: its transport and what the SDP said.
#[derive(Debug)]
pub struct LegSpec {
    /// The leg's socket or browser session.
    pub transport: LegTransport,
    /// Where to send, from the far side's SDP; `None` until known (or learnt by latching).
    pub remote: Option<SocketAddr>,
    /// Which sources are accepted.
    pub latch: LatchPolicy,
    /// The codec on this leg.
    pub codec: LegCodec,
    /// Our outgoing stream on this leg.
    pub output: OutputStream,
}

/// What a call's media does.
#[derive(Debug)]
pub enum CallKind {
    /// A client talking to a trunk, transcoded or relayed as the codecs require.
    Bridge {
        /// The client's leg.
        client: LegSpec,
        /// The trunk's leg.
        trunk: LegSpec,
    },
    /// The echo test: the client hears itself, through both transcoding directions.
    Echo {
        /// The client's leg.
        client: LegSpec,
    },
    /// A steady tone, to check a path with nothing else.
    Tone {
        /// The client's leg.
        client: LegSpec,
        /// The tone's frequency.
        hz: u32,
    },
}

/// Everything a shard needs to run one call's media.
#[derive(Debug)]
pub struct CallSpec {
    /// The control plane's handle for this call.
    pub id: MediaCallId,
    /// What the call's media does.
    pub kind: CallKind,
    /// How Opus is encoded towards clients.
    pub opus: OpusSettings,
    /// Jitter hold and concealment limits.
    pub timing: Timing,
    /// A leg silent this long (and not on hold) ends the call.
    pub rtp_timeout: Duration,
}

/// A request from the control plane to a shard.
#[derive(Debug)]
pub enum Command {
    /// Start running a call's media.
    Add(Box<CallSpec>),
    /// Stop a call's media and release its ports.
    Remove(MediaCallId),
    /// The far side's address became known or changed (a re-INVITE's SDP).
    SetRemote(MediaCallId, LegRole, SocketAddr),
    /// A running leg's codec or payload types changed (a carrier's 200 after early media in
    /// another codec, a re-INVITE): its pipelines, built on the control plane, replace the
    /// running ones, continuing their output streams.
    SetCodec(MediaCallId, Box<LegChange>),
    /// A leg was put on hold (or taken off it): no media timeout while held.
    SetHold(MediaCallId, LegRole, bool),
    /// Send a DTMF digit towards a leg as RFC 4733 events (a SIP INFO digit from the other one).
    SendDigit(MediaCallId, LegRole, char, Duration),
    /// Stop the shard thread (at process exit).
    Shutdown,
}

/// What shards tell the control plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A telephone-event digit started on a leg.
    Digit(MediaCallId, LegRole, char),
    /// A leg sent no media for the call's RTP timeout.
    MediaTimeout(MediaCallId, LegRole),
    /// The call's media failed inside the shard (a panic was caught); the call must end.
    Failed(MediaCallId, &'static str),
    /// A removed call's media is gone and its ports are back in the pool.
    Removed(MediaCallId, CallMediaStats),
}

/// A call's media counters, reported when it ends (for the call record).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallMediaStats {
    /// Packets received from the client.
    pub client_packets_in: u64,
    /// Packets received from the trunk.
    pub trunk_packets_in: u64,
    /// Packets the client's stream lost on the way to us.
    pub client_lost: u64,
    /// Packets the trunk's stream lost on the way to us.
    pub trunk_lost: u64,
    /// 8 kHz samples rebuilt by FEC or concealment, or filled with noise, both ways.
    pub concealed_samples: u64,
}

/// Errors of the media plane.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// Every port of the RTP range is in use: the call must be refused (503).
    #[error("the RTP port range is exhausted")]
    PortsExhausted,
    /// A shard's command queue is full: the media plane is overloaded (503).
    #[error("media shard {0} is overloaded")]
    Overloaded(usize),
    /// A socket operation failed.
    #[error("socket: {0}")]
    Socket(#[source] std::io::Error),
    /// A shard thread could not be started.
    #[error("cannot start media shard: {0}")]
    Spawn(#[source] std::io::Error),
    /// A codec could not be set up for a call.
    #[error("codec setup: {0}")]
    Codec(#[from] landline_codecs::Error),
    /// A browser's WebRTC session could not be set up (bad SDP, no Opus, no certificate).
    #[error("WebRTC: {0}")]
    WebRtc(String),
}

/// Counters a shard publishes; read by the metrics exporter and by shard selection.
#[derive(Debug, Default)]
pub struct ShardCounters {
    /// Calls the shard is running now.
    pub calls: AtomicU64,
    /// Browser legs among them, on the shard's WebRTC port.
    pub webrtc_sessions: AtomicU64,
    /// RTP packets received.
    pub packets_in: AtomicU64,
    /// RTP packets sent.
    pub packets_out: AtomicU64,
    /// Datagrams dropped: unknown source, malformed, or a send that failed.
    pub packets_dropped: AtomicU64,
    /// Packets the far ends lost on the way to us.
    pub packets_lost: AtomicU64,
    /// 8 kHz samples concealed (FEC, PLC or noise).
    pub samples_concealed: AtomicU64,
    /// Calls ended by a panic caught in their media step.
    pub panics: AtomicU64,
    /// Events dropped because the control plane was not reading them.
    pub events_dropped: AtomicU64,
}

/// The control plane's handle on the shards.
pub struct MediaPlane {
    shards: Vec<ShardHandle>,
    ports: Arc<PortPool>,
}

struct ShardHandle {
    commands: Arc<ArrayQueue<Command>>,
    /// The shard's WebRTC port: every browser session on the shard is reached through it.
    webrtc_port: Option<u16>,
    waker: Arc<mio::Waker>,
    counters: Arc<ShardCounters>,
    thread: Option<JoinHandle<()>>,
}

impl LegCodec {
    /// The RTP clock rate of the codec (and of its telephone events).
    pub fn clock_rate(&self) -> u32 {
        match self {
            LegCodec::Opus { .. } => 48_000,
            LegCodec::G711 { .. } => 8_000,
        }
    }
}

impl MediaPlane {
    /// Starts `shards` threads (at least one) sharing the RTP port range `ports`; with
    /// `webrtc` set, each shard also takes one port of the range on that address for the
    /// browser sessions it will run. A `realtime_priority` above 0 runs the shards under
    /// `SCHED_RR` at that priority (see `priority.rs`); a shard the kernel refuses it to runs
    /// on, with a warning saying how to grant it.
    ///
    /// Returns the plane and the receiver of its events, which the control plane must drain.
    pub fn start(
        shards: usize,
        ports: Arc<PortPool>,
        webrtc: Option<IpAddr>,
        realtime_priority: u8,
    ) -> Result<(MediaPlane, mpsc::Receiver<MediaEvent>), MediaError> {
        let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
        let mut handles = Vec::new();
        for index in 0..shards.max(1) {
            let poll = mio::Poll::new().map_err(MediaError::Spawn)?;
            let waker = Arc::new(
                mio::Waker::new(poll.registry(), shard::WAKER).map_err(MediaError::Spawn)?,
            );
            let commands = Arc::new(ArrayQueue::new(COMMAND_QUEUE));
            let counters = Arc::new(ShardCounters::default());
            let webrtc_socket = webrtc.map(|ip| ports.reserve(ip)).transpose()?;
            let webrtc_port = match &webrtc_socket {
                Some(socket) => Some(socket.local_addr().map_err(MediaError::Socket)?.port()),
                None => None,
            };
            let shard = Shard::new(
                poll,
                commands.clone(),
                events_tx.clone(),
                counters.clone(),
                ports.clone(),
                webrtc_socket,
            );
            let thread = std::thread::Builder::new()
                .name(format!("media-{index}"))
                .spawn(move || {
                    if realtime_priority > 0 {
                        match priority::make_current_thread_realtime(realtime_priority) {
                            Ok(()) => tracing::debug!(
                                shard = index,
                                priority = realtime_priority,
                                "media shard runs under SCHED_RR"
                            ),
                            Err(error) => tracing::warn!(
                                shard = index,
                                %error,
                                "media.realtime_priority = {realtime_priority} was refused; the \
                                 shard runs at normal priority. Grant it with LimitRTPRIO=\
                                 {realtime_priority} in the systemd unit (or CAP_SYS_NICE)"
                            ),
                        }
                    }
                    shard.run()
                })
                .map_err(MediaError::Spawn)?;
            handles.push(ShardHandle {
                commands,
                webrtc_port,
                waker,
                counters,
                thread: Some(thread),
            });
        }
        Ok((
            MediaPlane {
                shards: handles,
                ports,
            },
            events_rx,
        ))
    }

    /// The shared RTP port range, for binding a new call's sockets.
    pub fn ports(&self) -> &PortPool {
        &self.ports
    }

    /// Starts a call's media on the least loaded shard; returns the shard's index.
    pub fn add_call(&self, spec: CallSpec) -> Result<usize, MediaError> {
        let index = self.least_loaded();
        self.add_call_on(index, spec)
    }

    /// Starts a call's media on a given shard (the one a browser session's candidate names).
    pub fn add_call_on(&self, shard: usize, spec: CallSpec) -> Result<usize, MediaError> {
        self.send(shard, Command::Add(Box::new(spec)))?;
        Ok(shard)
    }

    /// The shard a new call should go to: the one running the fewest calls.
    pub fn least_loaded(&self) -> usize {
        self.shards
            .iter()
            .enumerate()
            .min_by_key(|(_, s)| s.counters.calls.load(Ordering::Relaxed))
            .map(|(i, _)| i)
            .unwrap_or(0)
    }

    /// A shard's WebRTC port, if the plane was started with WebRTC.
    pub fn webrtc_port(&self, shard: usize) -> Option<u16> {
        self.shards.get(shard)?.webrtc_port
    }

    /// Sends a command to the shard running a call (as returned by [`add_call`](Self::add_call)).
    pub fn send(&self, shard: usize, command: Command) -> Result<(), MediaError> {
        let handle = self
            .shards
            .get(shard)
            .ok_or(MediaError::Overloaded(shard))?;
        handle
            .commands
            .push(command)
            .map_err(|_| MediaError::Overloaded(shard))?;
        handle.waker.wake().map_err(MediaError::Socket)
    }

    /// Each shard's counters, in shard order.
    pub fn counters(&self) -> impl Iterator<Item = &ShardCounters> {
        self.shards.iter().map(|s| &*s.counters)
    }

    /// Calls running on all shards.
    pub fn active_calls(&self) -> u64 {
        self.counters()
            .map(|c| c.calls.load(Ordering::Relaxed))
            .sum()
    }
}

impl Drop for MediaPlane {
    fn drop(&mut self) {
        for index in 0..self.shards.len() {
            // A full queue means the shard is stuck; joining would hang, so leave it.
            if self.send(index, Command::Shutdown).is_ok() {
                if let Some(thread) = self.shards[index].thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}
