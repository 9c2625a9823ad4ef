//! A media shard: one thread, one mio event loop, the calls it owns.
//!
//! The loop waits for sockets or the waker, reads every datagram that is ready and pushes it
//! through its call's pipeline straight to the other leg's socket, then runs the calls' timers
//! on a 5 ms tick. A panic inside one call's step is caught here and ends only that call.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use mio::{Events, Interest, Poll, Token};
use tokio::sync::mpsc;

use super::call::{
    Arrival, CallMedia, LegIo, LocalCounters, MediaScratch, ShardIo, WEBRTC_SOURCES,
};
use super::{Command, LegRole, MediaCallId, MediaEvent, PortPool, ShardCounters};

/// The token of the shard's waker; socket tokens are `slot * 2 + leg`.
pub(crate) const WAKER: Token = Token(usize::MAX);
/// The token of the shard's WebRTC port.
const WEBRTC: Token = Token(usize::MAX - 1);
/// How often call timers (fills, tones, media timeouts) are checked.
const TICK: Duration = Duration::from_millis(5);
/// The largest datagram read; RTP audio is far smaller, and a larger one is truncated and fails
/// to parse.
const RECV_BUFFER: usize = 2048;
/// Datagrams read from one socket per round before moving on to the next, for fairness; a socket
/// that had more is read again in the next round, before timers run.
const READ_BUDGET: usize = 64;
/// Readiness events taken from one `poll`. A full batch means more sockets may be ready: they
/// are polled for (without waiting) before timers run, so a fill is never made for a packet
/// that sits unread in a socket.
const EVENTS: usize = 1024;
/// Ticks between publications of the loss and concealment totals (every 100 ms).
const QUALITY_EVERY: u32 = 20;
/// Timers run at least this late even when sockets keep the shard busy (overload).
const TICK_OVERDUE: Duration = Duration::from_millis(20);
/// Rounds of reading per `poll`: sockets still not drained after them (a flood) are carried to
/// the next turn of the loop, so commands and timers are never starved.
const READ_ROUNDS: usize = 4;

pub(crate) struct Shard {
    poll: Poll,
    commands: Arc<ArrayQueue<Command>>,
    events: mpsc::Sender<MediaEvent>,
    counters: Arc<ShardCounters>,
    ports: Arc<PortPool>,
    calls: Vec<Option<CallMedia>>,
    /// Lent to each call's pipelines in turn; boxed, being a few KiB. What a step that panicked
    /// left in it does no harm: pipelines do not read what they did not write in the same step.
    scratch: Box<MediaScratch>,
    free_slots: Vec<usize>,
    slot_of: HashMap<MediaCallId, usize>,
    local: LocalCounters,
    published: LocalCounters,
    /// Losses and concealed samples of the calls that ended, to which the running calls' own
    /// are added when the totals are published.
    ended_quality: (u64, u64),
    /// Ticks since the quality totals were last published.
    ticks_since_quality: u32,
    next_tick: Option<Instant>,
    running: bool,
    webrtc: Option<WebRtcPort>,
}

/// The one UDP port all of a shard's browser sessions share, and how a datagram finds its
/// session: by source address once known, else by the ICE username of a STUN check.
struct WebRtcPort {
    socket: mio::net::UdpSocket,
    by_source: HashMap<SocketAddr, usize>,
    by_ufrag: HashMap<String, usize>,
}

impl Shard {
    pub(crate) fn new(
        poll: Poll,
        commands: Arc<ArrayQueue<Command>>,
        events: mpsc::Sender<MediaEvent>,
        counters: Arc<ShardCounters>,
        ports: Arc<PortPool>,
        webrtc: Option<std::net::UdpSocket>,
    ) -> Self {
        let webrtc = webrtc.and_then(|socket| {
            let mut socket = mio::net::UdpSocket::from_std(socket);
            poll.registry()
                .register(&mut socket, WEBRTC, Interest::READABLE)
                .ok()?;
            Some(WebRtcPort {
                socket,
                by_source: HashMap::new(),
                by_ufrag: HashMap::new(),
            })
        });
        Shard {
            poll,
            commands,
            events,
            counters,
            ports,
            calls: Vec::new(),
            scratch: Box::new(MediaScratch::new()),
            free_slots: Vec::new(),
            slot_of: HashMap::new(),
            local: LocalCounters::default(),
            published: LocalCounters::default(),
            ended_quality: (0, 0),
            ticks_since_quality: 0,
            next_tick: None,
            running: true,
            webrtc,
        }
    }

    pub(crate) fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        let mut buffer = [0u8; RECV_BUFFER];
        // Sockets to read in this round and the next; reused, so no allocation per batch.
        let (mut ready, mut again) = (Vec::with_capacity(EVENTS), Vec::with_capacity(EVENTS));
        let mut saturated = false;
        while self.running {
            let timeout = if saturated || !ready.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.next_tick
                    .map(|t| t.saturating_duration_since(Instant::now()))
            };
            if let Err(error) = self.poll.poll(&mut events, timeout) {
                if error.kind() != ErrorKind::Interrupted {
                    tracing::error!(%error, "media shard poll failed; shard stops");
                    break;
                }
            }
            // Sockets carried over from the last turn, plus the newly ready ones, once each.
            ready.extend(events.iter().map(|e| e.token()));
            ready.sort_unstable();
            ready.dedup();
            saturated = events.iter().count() == EVENTS;
            for _ in 0..READ_ROUNDS {
                if ready.is_empty() {
                    break;
                }
                for token in ready.drain(..) {
                    let drained = match token {
                        WAKER => true,
                        WEBRTC => self.read_webrtc(&mut buffer),
                        Token(token) => self.read_socket(token, &mut buffer),
                    };
                    if !drained {
                        again.push(token);
                    }
                }
                std::mem::swap(&mut ready, &mut again);
            }
            saturated |= !ready.is_empty();
            let now = Instant::now();
            self.drain_commands(now);
            let due = self.next_tick.is_some_and(|t| t <= now);
            let overdue = self.next_tick.is_some_and(|t| now >= t + TICK_OVERDUE);
            if due && (!saturated || overdue) {
                self.tick(now);
            }
        }
        for slot in 0..self.calls.len() {
            self.remove_slot(slot);
        }
        // The WebRTC port was reserved for the life of the process: it is not given back.
        self.webrtc = None;
    }

    /// Reads one leg's socket, up to the budget; true when it is drained.
    fn read_socket(&mut self, token: usize, buffer: &mut [u8]) -> bool {
        let (slot, role) = (
            token / 2,
            if token % 2 == 0 {
                LegRole::Client
            } else {
                LegRole::Trunk
            },
        );
        for _ in 0..READ_BUDGET {
            let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
                return true;
            };
            let Some(rtp) = call.leg_mut(role).and_then(|l| l.rtp_mut()) else {
                return true;
            };
            let (len, source) = match rtp.socket.recv_from(buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
                // ICMP errors from an earlier send surface here; they concern that send only.
                Err(_) => continue,
            };
            // Each packet's own arrival time (vDSO, no syscall): a batch can take milliseconds,
            // and the pipelines' hold deadlines are computed from it.
            let now = Instant::now();
            let (local, events) = (&mut self.local, &self.events);
            let (counters, scratch) = (&self.counters, &mut self.scratch);
            let mut io = ShardIo {
                counters: local,
                webrtc: self.webrtc.as_ref().map(|p| &p.socket),
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let arrival = Arrival {
                    role,
                    source,
                    datagram: &buffer[..len],
                };
                call.on_datagram(now, arrival, scratch, &mut io, &mut |e| {
                    send_event(events, counters, e)
                });
            }));
            if outcome.is_err() {
                self.fail_slot(slot);
                return true;
            }
        }
        false
    }

    /// Reads the shard's WebRTC port, up to the budget, handing each datagram to its browser
    /// session; true when it is drained.
    fn read_webrtc(&mut self, buffer: &mut [u8]) -> bool {
        // The port serves every browser call of the shard: a larger budget than one leg's.
        for _ in 0..READ_BUDGET * 4 {
            let Some(port) = self.webrtc.as_mut() else {
                return true;
            };
            let (len, source) = match port.socket.recv_from(buffer) {
                Ok(received) => received,
                Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => continue,
            };
            let now = Instant::now();
            let datagram = &buffer[..len];
            let known = port.by_source.get(&source).copied();
            let slot = known.or_else(|| {
                let ufrag = stun_local_ufrag(datagram)?;
                port.by_ufrag.get(ufrag).copied()
            });
            let Some(slot) = slot else {
                self.local.packets_dropped += 1;
                continue;
            };
            let Some(call) = self.calls.get_mut(slot).and_then(Option::as_mut) else {
                continue;
            };
            let Some(web) = call.client.webrtc_mut() else {
                continue;
            };
            if known.is_none() && web.sources.len() < WEBRTC_SOURCES {
                // A check naming this session: its source is a candidate pair to answer.
                web.sources.push(source);
                port.by_source.insert(source, slot);
            }
            let (local, events) = (&mut self.local, &self.events);
            let (counters, scratch) = (&self.counters, &mut self.scratch);
            let mut io = ShardIo {
                counters: local,
                webrtc: Some(&port.socket),
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                call.on_webrtc_datagram(now, source, datagram, scratch, &mut io, &mut |e| {
                    send_event(events, counters, e)
                });
            }));
            if outcome.is_err() {
                self.fail_slot(slot);
            }
        }
        false
    }

    fn tick(&mut self, now: Instant) {
        for slot in 0..self.calls.len() {
            let Some(call) = self.calls[slot].as_mut() else {
                continue;
            };
            let (local, events, counters) = (&mut self.local, &self.events, &self.counters);
            let scratch = &mut self.scratch;
            let mut io = ShardIo {
                counters: local,
                webrtc: self.webrtc.as_ref().map(|p| &p.socket),
            };
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                call.on_tick(now, scratch, &mut io, &mut |e| {
                    send_event(events, counters, e)
                });
            }));
            if outcome.is_err() {
                self.fail_slot(slot);
            }
        }
        self.publish();
        self.next_tick = (!self.slot_of.is_empty()).then(|| now + TICK);
    }

    fn drain_commands(&mut self, now: Instant) {
        while let Some(command) = self.commands.pop() {
            match command {
                Command::Add(spec) => self.add(*spec, now),
                Command::Remove(id) => {
                    if let Some(slot) = self.slot_of.get(&id).copied() {
                        let stats = self.calls[slot].as_ref().map(CallMedia::stats);
                        self.remove_slot(slot);
                        self.emit(MediaEvent::Removed(id, stats.unwrap_or_default()));
                    }
                }
                Command::SetRemote(id, role, remote) => {
                    if let Some(leg) = self.call_mut(id).and_then(|c| c.leg_mut(role)) {
                        leg.set_remote(remote);
                    }
                }
                Command::SetCodec(id, change) => {
                    if let Some(call) = self.call_mut(id) {
                        call.change_codec(now, *change);
                    }
                }
                Command::SetHold(id, role, on_hold) => {
                    if let Some(leg) = self.call_mut(id).and_then(|c| c.leg_mut(role)) {
                        leg.set_hold(on_hold, now);
                    }
                }
                Command::SendDigit(id, toward, digit, duration) => {
                    let slot = self.slot_of.get(&id).copied();
                    if let Some(call) = slot.and_then(|s| self.calls.get_mut(s)?.as_mut()) {
                        let mut io = ShardIo {
                            counters: &mut self.local,
                            webrtc: self.webrtc.as_ref().map(|p| &p.socket),
                        };
                        let scratch = &mut self.scratch;
                        call.send_digit(toward, now, (digit, duration), scratch, &mut io);
                    }
                }
                Command::Shutdown => self.running = false,
            }
        }
    }

    fn add(&mut self, spec: super::CallSpec, now: Instant) {
        let id = spec.id;
        let mut call = match CallMedia::new(spec, now) {
            Ok(call) => call,
            Err(error) => {
                tracing::warn!(call = id.0, %error, "call media setup failed");
                self.emit(MediaEvent::Failed(id, "media setup failed"));
                return;
            }
        };
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.calls.push(None);
            self.calls.len() - 1
        });
        let registry = self.poll.registry();
        let client = match &mut call.client.io {
            LegIo::Rtp(rtp) => registry
                .register(&mut rtp.socket, Token(slot * 2), Interest::READABLE)
                .is_ok(),
            LegIo::WebRtc(web) => match self.webrtc.as_mut() {
                Some(port) => {
                    port.by_ufrag.insert(web.session.ufrag().to_owned(), slot);
                    self.counters
                        .webrtc_sessions
                        .fetch_add(1, Ordering::Relaxed);
                    true
                }
                None => false,
            },
        };
        let trunk = match call.trunk.as_mut().and_then(|l| l.rtp_mut()) {
            Some(rtp) => registry
                .register(&mut rtp.socket, Token(slot * 2 + 1), Interest::READABLE)
                .is_ok(),
            None => true,
        };
        if !client || !trunk {
            self.forget_webrtc(&mut call);
            self.free_slots.push(slot);
            self.close(call);
            self.emit(MediaEvent::Failed(id, "cannot register media sockets"));
            return;
        }
        self.calls[slot] = Some(call);
        self.slot_of.insert(id, slot);
        self.counters.calls.fetch_add(1, Ordering::Relaxed);
        self.next_tick.get_or_insert(now);
    }

    fn fail_slot(&mut self, slot: usize) {
        if let Some(id) = self.calls.get(slot).and_then(Option::as_ref).map(|c| c.id) {
            tracing::error!(call = id.0, "panic in call media step; the call is ended");
            self.counters.panics.fetch_add(1, Ordering::Relaxed);
            self.remove_slot(slot);
            self.emit(MediaEvent::Failed(id, "internal error in media"));
        }
    }

    fn remove_slot(&mut self, slot: usize) {
        let Some(mut call) = self.calls.get_mut(slot).and_then(Option::take) else {
            return;
        };
        let registry = self.poll.registry();
        if let Some(rtp) = call.client.rtp_mut() {
            let _ = registry.deregister(&mut rtp.socket);
        }
        if let Some(rtp) = call.trunk.as_mut().and_then(|l| l.rtp_mut()) {
            let _ = registry.deregister(&mut rtp.socket);
        }
        self.forget_webrtc(&mut call);
        self.slot_of.remove(&call.id);
        self.free_slots.push(slot);
        self.counters.calls.fetch_sub(1, Ordering::Relaxed);
        let stats = call.stats();
        self.ended_quality.0 += stats.client_lost + stats.trunk_lost;
        self.ended_quality.1 += stats.concealed_samples;
        self.close(call);
        self.publish_quality();
    }

    /// Removes a browser leg's entries from the WebRTC port's maps.
    fn forget_webrtc(&mut self, call: &mut CallMedia) {
        let (Some(web), Some(port)) = (call.client.webrtc_mut(), self.webrtc.as_mut()) else {
            return;
        };
        if port.by_ufrag.remove(web.session.ufrag()).is_some() {
            self.counters
                .webrtc_sessions
                .fetch_sub(1, Ordering::Relaxed);
        }
        for source in web.sources.drain(..) {
            port.by_source.remove(&source);
        }
    }

    /// Closes a call's sockets, then gives their ports back, so they are free when handed out.
    fn close(&self, mut call: CallMedia) {
        let ports = [
            call.client.rtp_mut().map(|r| r.port),
            call.trunk
                .as_mut()
                .and_then(|l| l.rtp_mut())
                .map(|r| r.port),
        ];
        drop(call);
        for port in ports.into_iter().flatten() {
            self.ports.release(port);
        }
    }

    fn call_mut(&mut self, id: MediaCallId) -> Option<&mut CallMedia> {
        let slot = *self.slot_of.get(&id)?;
        self.calls.get_mut(slot)?.as_mut()
    }

    fn emit(&self, event: MediaEvent) {
        send_event(&self.events, &self.counters, event);
    }

    /// Adds what the packet path counted since the last tick to the shared atomics.
    fn publish(&mut self) {
        let (now, then) = (self.local, self.published);
        let c = &self.counters;
        c.packets_in
            .fetch_add(now.packets_in - then.packets_in, Ordering::Relaxed);
        c.packets_out
            .fetch_add(now.packets_out - then.packets_out, Ordering::Relaxed);
        c.packets_dropped.fetch_add(
            now.packets_dropped - then.packets_dropped,
            Ordering::Relaxed,
        );
        self.published = now;
        self.ticks_since_quality += 1;
        if self.ticks_since_quality >= QUALITY_EVERY {
            self.publish_quality();
        }
    }

    /// Publishes packets lost and samples concealed as totals, running calls included, so the
    /// metrics show a loss while the call is still going (a load run's calls never end in its
    /// window).
    fn publish_quality(&mut self) {
        self.ticks_since_quality = 0;
        let (mut lost, mut concealed) = self.ended_quality;
        for call in self.calls.iter().flatten() {
            let stats = call.stats();
            lost += stats.client_lost + stats.trunk_lost;
            concealed += stats.concealed_samples;
        }
        let c = &self.counters;
        c.packets_lost.store(lost, Ordering::Relaxed);
        c.samples_concealed.store(concealed, Ordering::Relaxed);
    }
}

fn send_event(events: &mpsc::Sender<MediaEvent>, counters: &ShardCounters, event: MediaEvent) {
    if events.try_send(event).is_err() {
        counters.events_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Our ICE username fragment from a STUN binding request: its USERNAME is `ours:theirs`
/// (RFC 8445 §7.2.2). Anything that is not a well-formed STUN message gives `None`.
fn stun_local_ufrag(datagram: &[u8]) -> Option<&str> {
    const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
    const USERNAME: u16 = 0x0006;
    let header = datagram.get(..20)?;
    if header[0] & 0xC0 != 0 || header[4..8] != MAGIC_COOKIE {
        return None;
    }
    let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut attributes = datagram.get(20..20 + length)?;
    while attributes.len() >= 4 {
        let kind = u16::from_be_bytes([attributes[0], attributes[1]]);
        let len = usize::from(u16::from_be_bytes([attributes[2], attributes[3]]));
        let value = attributes.get(4..4 + len)?;
        if kind == USERNAME {
            let username = std::str::from_utf8(value).ok()?;
            return username.split_once(':').map(|(ours, _)| ours);
        }
        let padded = 4 + len.div_ceil(4) * 4;
        attributes = attributes.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(username: &[u8]) -> Vec<u8> {
        let mut attribute = vec![0x00, 0x06];
        attribute.extend_from_slice(&(username.len() as u16).to_be_bytes());
        attribute.extend_from_slice(username);
        while attribute.len() % 4 != 0 {
            attribute.push(0);
        }
        let mut message = vec![0x00, 0x01];
        message.extend_from_slice(&(attribute.len() as u16).to_be_bytes());
        message.extend_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
        message.extend_from_slice(&[7; 12]);
        message.extend_from_slice(&attribute);
        message
    }

    /// Two tone calls on one shard; one's step panics: only that call ends (reported as
    /// failed, counted), its ports come back, and the other call's tone keeps flowing.
    #[test]
    fn a_panic_in_one_calls_step_ends_that_call_only() {
        use std::net::{IpAddr, Ipv4Addr, UdpSocket};

        use landline_codecs::{G711Law, OpusSettings, OutputStream, Timing};

        use crate::media::{CallKind, CallSpec, LatchPolicy, LegCodec, LegSpec, LegTransport};
        use crate::media::{MediaPlane, call::PANIC_ON_TICK};

        const DOOMED: u64 = 0xFA17;
        const HEALTHY: u64 = 0xFA18;
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let pool = Arc::new(PortPool::new(43_400, 43_409));
        let (plane, mut events) = MediaPlane::start(1, pool.clone(), None, 0).expect("plane");
        let listener = || {
            let socket = UdpSocket::bind((loopback, 0)).expect("bind");
            socket.set_nonblocking(true).expect("nonblocking");
            socket
        };
        let count = |socket: &UdpSocket| {
            let mut buffer = [0u8; 1500];
            std::iter::from_fn(|| socket.recv_from(&mut buffer).ok()).count()
        };
        let tone_call = |id: u64, listener: &UdpSocket| CallSpec {
            id: MediaCallId(id),
            kind: CallKind::Tone {
                client: LegSpec {
                    transport: LegTransport::Rtp(pool.bind(loopback).expect("port")),
                    remote: listener.local_addr().ok(),
                    latch: LatchPolicy::Learn,
                    codec: LegCodec::G711 {
                        law: G711Law::Mu,
                        payload_type: 0,
                        event_payload_type: None,
                        our_event_payload_type: None,
                        comfort_noise_payload_type: None,
                    },
                    output: OutputStream {
                        ssrc: id as u32,
                        first_sequence: 1,
                        first_timestamp: 0,
                    },
                },
                hz: 1000,
            },
            opus: OpusSettings::default(),
            timing: Timing::default(),
            rtp_timeout: Duration::from_secs(30),
        };
        let (doomed, healthy) = (listener(), listener());
        plane.add_call(tone_call(DOOMED, &doomed)).expect("add");
        plane.add_call(tone_call(HEALTHY, &healthy)).expect("add");
        std::thread::sleep(Duration::from_millis(200));
        assert!(count(&doomed) > 0 && count(&healthy) > 0, "both tones flow");

        PANIC_ON_TICK.store(DOOMED, Ordering::Relaxed);
        let deadline = Instant::now() + Duration::from_secs(5);
        let failed = loop {
            match events.try_recv() {
                Ok(MediaEvent::Failed(id, _)) => break id,
                Ok(_) => {}
                Err(_) => {
                    assert!(Instant::now() < deadline, "no call reported failed");
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        };
        assert_eq!(failed, MediaCallId(DOOMED));
        count(&doomed);
        count(&healthy);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(count(&doomed), 0, "the failed call sends nothing more");
        assert!(count(&healthy) >= 10, "the other call's tone goes on");
        let counters: Vec<_> = plane.counters().collect();
        assert_eq!(counters[0].panics.load(Ordering::Relaxed), 1);
        assert_eq!(counters[0].calls.load(Ordering::Relaxed), 1);
        assert_eq!(
            pool.available(),
            pool.capacity() - 1,
            "the failed call's port is back"
        );
    }

    #[test]
    fn a_binding_request_names_our_ufrag() {
        assert_eq!(stun_local_ufrag(&stun(b"abcd:efgh")), Some("abcd"));
    }

    #[test]
    fn random_and_mangled_datagrams_never_panic() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = stun(b"abcd:efgh");
        for _ in 0..20_000 {
            let mut datagram = valid.clone();
            for _ in 0..(next() % 4) {
                let at = (next() as usize) % datagram.len();
                datagram[at] = next() as u8;
            }
            datagram.truncate((next() as usize) % (datagram.len() + 1));
            let _ = stun_local_ufrag(&datagram);
            let noise: Vec<u8> = (0..next() % 64).map(|_| next() as u8).collect();
            let _ = stun_local_ufrag(&noise);
        }
    }

    #[test]
    fn anything_else_names_nobody() {
        assert_eq!(stun_local_ufrag(b"\x80\x00rtp packet here...."), None);
        let mut truncated = stun(b"abcd:efgh");
        truncated.truncate(26);
        assert_eq!(stun_local_ufrag(&truncated), None);
        assert_eq!(stun_local_ufrag(&stun(b"no-colon")), None);
        assert_eq!(stun_local_ufrag(&[]), None);
    }
}
