//! The `--webrtc` mode's client legs: one str0m session per call, as a browser would run it
//! (full ICE as the controlling agent, DTLS client, SRTP, Opus), all in one thread of the
//! generator.
//!
//! Each session has its own UDP socket on 127.0.0.1: the gateway's shared WebRTC port tells its
//! sessions apart by the source address (after the first STUN check names the session by its
//! ICE username), as two browsers would be told apart, so sessions cannot share a socket. One
//! `mio` poll serves all the sockets. The thread drives every session to DTLS connected, then
//! reports when media starts and, from then on, writes each call's browser Opus every 20 ms at
//! the call's phase of the schedule, reads and decrypts what the gateway sends, and answers the
//! engines' timers (ICE consent, RTCP) on a 5 ms tick.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::stamp::{self, Clock};
use landline_benches::Fixtures;
use landline_benches::fixtures::PTIME;
use mio::net::UdpSocket as MioSocket;
use mio::{Events, Interest, Poll, Token};
use str0m::change::{SdpAnswer, SdpPendingOffer};
use str0m::config::DtlsCert;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::{Candidate, Event, Input, Output, Rtc};

use super::{OPUS_TICKS, Received};

/// How often every session's timers are checked.
const TICK: Duration = Duration::from_millis(5);
/// Receive buffer of each session's socket: a few hundred packets of slack.
const SESSION_RECV_BUFFER: usize = 256 << 10;

/// One browser leg before and after its SDP answer.
pub(crate) struct WebClient {
    rtc: Rtc,
    socket: MioSocket,
    local: SocketAddr,
    mid: Mid,
    pending: Option<SdpPendingOffer>,
    opus_pt: u8,
    connected: bool,
    timeout: Instant,
}

/// A certificate all the generator's sessions present (a browser makes one per peer
/// connection; that cost is the browser's, not the gateway's).
pub(crate) fn certificate() -> Result<DtlsCert, String> {
    str0m::crypto::from_feature_flags()
        .dtls_provider
        .generate_certificate()
        .ok_or_else(|| "cannot generate a DTLS certificate".to_owned())
}

impl WebClient {
    /// A new session on its own socket, and its SDP offer (Opus only, as the plain mode's).
    pub(crate) fn offer(cert: &DtlsCert) -> Result<(WebClient, String), String> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )
        .map_err(|e| e.to_string())?;
        socket
            .set_recv_buffer_size(SESSION_RECV_BUFFER)
            .map_err(|e| e.to_string())?;
        socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .map_err(|e| e.to_string())?;
        socket.set_nonblocking(true).map_err(|e| e.to_string())?;
        let socket: UdpSocket = socket.into();
        stamp::enable(&socket).map_err(|e| format!("SO_TIMESTAMPNS: {e}"))?;
        let local = socket.local_addr().map_err(|e| e.to_string())?;
        let now = Instant::now();
        let mut rtc = Rtc::builder()
            .set_rtp_mode(true)
            .set_dtls_cert(cert.clone())
            .set_stats_interval(None)
            .clear_codecs()
            .enable_opus(true, false)
            .build(now);
        let candidate = Candidate::host(local, "udp").map_err(|e| e.to_string())?;
        rtc.add_local_candidate(candidate);
        let mut change = rtc.sdp_api();
        let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, pending) = change.apply().ok_or("str0m made no offer")?;
        Ok((
            WebClient {
                rtc,
                socket: MioSocket::from_std(socket),
                local,
                mid,
                pending: Some(pending),
                opus_pt: 0,
                connected: false,
                timeout: now,
            },
            offer.to_sdp_string(),
        ))
    }

    /// Applies the gateway's SDP answer; returns the Opus payload type it chose.
    pub(crate) fn accept_answer(&mut self, answer: &str) -> Result<u8, String> {
        let parsed = SdpAnswer::from_sdp_string(answer).map_err(|e| e.to_string())?;
        let pending = self.pending.take().ok_or("no offer pending")?;
        self.rtc
            .sdp_api()
            .accept_answer(pending, parsed)
            .map_err(|e| e.to_string())?;
        self.opus_pt = answer
            .lines()
            .find_map(|l| l.strip_prefix("a=rtpmap:")?.strip_suffix(" opus/48000/2"))
            .and_then(|pt| pt.trim().parse().ok())
            .ok_or("the answer has no opus/48000/2")?;
        Ok(self.opus_pt)
    }

    /// Sends what the engine wants sent and notes its events; returns when the first RTP
    /// datagram (not STUN, DTLS or RTCP) left, in ns since `start`, if one did.
    fn drain(
        &mut self,
        call: u32,
        start: Instant,
        received: &mut Vec<Received>,
        at: u64,
    ) -> Option<u64> {
        let mut rtp_sent = None;
        loop {
            match self.rtc.poll_output() {
                Ok(Output::Timeout(t)) => {
                    self.timeout = t;
                    return rtp_sent;
                }
                Ok(Output::Transmit(t)) => {
                    let is_rtp = t.contents.len() > 1
                        && (128..192).contains(&t.contents[0])
                        && !(192..=223).contains(&t.contents[1]);
                    let sent_at = start.elapsed().as_nanos() as u64;
                    if is_rtp && rtp_sent.is_none() {
                        rtp_sent = Some(sent_at);
                    }
                    let _ = self.socket.send_to(&t.contents, t.destination);
                }
                Ok(Output::Event(Event::Connected)) => self.connected = true,
                Ok(Output::Event(Event::RtpPacket(packet))) => received.push(Received {
                    call,
                    timestamp: packet.header.timestamp,
                    payload_type: *packet.header.payload_type,
                    at,
                }),
                Ok(Output::Event(_)) => {}
                Err(_) => {
                    // A failed session stops; its calls' packets count as lost.
                    self.timeout = Instant::now() + Duration::from_secs(3600);
                    return rtp_sent;
                }
            }
        }
    }
}

/// What the client thread measured.
pub(crate) struct Measured {
    /// Per call, when each frame's RTP datagram left (ns since the media start).
    pub(crate) sent: Vec<Vec<u64>>,
    /// RTP packets the sessions decrypted, with when their datagram was read.
    pub(crate) received: Vec<Received>,
    /// How late each send was against its schedule (ns, sorted).
    pub(crate) lateness: Vec<u64>,
    /// Sessions that reached DTLS connected.
    pub(crate) connected: usize,
}

/// Shared with the main thread while the client thread runs.
pub(crate) struct Progress {
    /// Sessions connected so far.
    pub(crate) connected: AtomicUsize,
    /// Set by the main thread to end the run early (a failed setup).
    pub(crate) abort: AtomicBool,
}

/// Runs every session: connects them all (within `connect_for`), sends the media start on
/// `started`, then the media schedule for `length`. `streams` is the number of streams of the
/// whole run (client and carrier, interleaved): call `i`'s client stream is stream `2 i`.
pub(crate) fn run(
    mut clients: Vec<WebClient>,
    fixtures: &Fixtures,
    connect_for: Duration,
    length: Duration,
    progress: Arc<Progress>,
    started: mpsc::Sender<Instant>,
) -> Result<Measured, String> {
    let n = clients.len();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let mut events = Events::with_capacity(1024);
    for (i, client) in clients.iter_mut().enumerate() {
        poll.registry()
            .register(&mut client.socket, Token(i), Interest::READABLE)
            .map_err(|e| e.to_string())?;
    }
    let mut buf = [0u8; 2048];
    let mut received = Vec::with_capacity(n * (length.as_millis() as usize / 20 + 50));
    let mut scratch = Vec::new();
    let origin = Instant::now();
    let origin_clock = Clock::new(origin);

    // ICE and DTLS: everyone at once, as fast as the gateway answers.
    let deadline = origin + connect_for;
    let mut next_tick = origin;
    while Instant::now() < deadline && clients.iter().any(|c| !c.connected) {
        if progress.abort.load(Ordering::Relaxed) {
            return Err("aborted".into());
        }
        let now = Instant::now();
        if now >= next_tick {
            tick(&mut clients, now, origin, &mut scratch);
            next_tick = now + TICK;
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        poll.poll(&mut events, Some(wait))
            .map_err(|e| e.to_string())?;
        for event in &events {
            read(
                &mut clients,
                event.token().0,
                origin_clock,
                &mut buf,
                &mut scratch,
            );
        }
        progress.connected.store(
            clients.iter().filter(|c| c.connected).count(),
            Ordering::Relaxed,
        );
    }
    let connected = clients.iter().filter(|c| c.connected).count();
    if connected < n {
        return Err(format!(
            "{connected} of {n} WebRTC sessions connected within {connect_for:?}"
        ));
    }

    // Media.
    let start = Instant::now() + Duration::from_millis(100);
    let clock = Clock::new(start);
    let _ = started.send(start);
    let period = PTIME.as_nanos() as u64;
    let streams = 2 * n as u64;
    let phase = |call: u64| 2 * call * period / streams;
    let mut sent: Vec<Vec<u64>> = (0..n)
        .map(|_| Vec::with_capacity(length.as_millis() as usize / 20 + 1))
        .collect();
    let mut lateness = Vec::with_capacity(n * (length.as_millis() as usize / 20 + 1));
    let end = length.as_nanos() as u64;
    let (mut frame, mut call) = (0u64, 0u64);
    let opus: Vec<&[u8]> = fixtures
        .client_rtp
        .iter()
        .map(|p| &p[landline_codecs::rtp::RTP_HEADER_LEN..])
        .collect();
    loop {
        let due = frame * period + phase(call);
        if due >= end {
            break;
        }
        let now_ns = start.elapsed().as_nanos() as u64;
        if Instant::now() < start || due > now_ns {
            // Until the send is due: read, and run timers.
            let wait_until = start + Duration::from_nanos(due);
            let now = Instant::now();
            if now >= next_tick {
                tick(&mut clients, now, start, &mut received);
                next_tick = now + TICK;
            }
            let wait = wait_until.min(next_tick).saturating_duration_since(now);
            poll.poll(&mut events, Some(wait))
                .map_err(|e| e.to_string())?;
            for event in &events {
                read(
                    &mut clients,
                    event.token().0,
                    clock,
                    &mut buf,
                    &mut received,
                );
            }
            continue;
        }
        let client = &mut clients[call as usize];
        let payload = opus[frame as usize % opus.len()];
        let (pt, mid) = (client.opus_pt, client.mid);
        let now = Instant::now();
        if let Some(stream) = client.rtc.direct_api().stream_tx_by_mid(mid, None) {
            let write = RtpWrite::new(
                Pt::from(pt),
                SeqNo::from(frame + 1),
                (frame as u32).wrapping_mul(OPUS_TICKS),
                now,
                payload.to_vec(),
            );
            stream.write_rtp(write);
            // str0m sends what was written at its next timeout, due at once.
            let _ = client.rtc.handle_input(Input::Timeout(now));
        }
        let at = client
            .drain(call as u32, start, &mut received, 0)
            .unwrap_or_else(|| start.elapsed().as_nanos() as u64);
        sent[call as usize].push(at);
        lateness.push(at.saturating_sub(due));
        call += 1;
        if call == n as u64 {
            call = 0;
            frame += 1;
        }
    }
    // What is still in flight arrives within the receivers' grace period.
    let grace = Instant::now() + Duration::from_millis(300);
    while Instant::now() < grace {
        poll.poll(&mut events, Some(Duration::from_millis(10)))
            .map_err(|e| e.to_string())?;
        for event in &events {
            read(
                &mut clients,
                event.token().0,
                clock,
                &mut buf,
                &mut received,
            );
        }
    }
    lateness.sort_unstable();
    Ok(Measured {
        sent,
        received,
        lateness,
        connected,
    })
}

/// Reads every datagram waiting on session `i`'s socket and feeds it to the session; a
/// datagram's arrival is the kernel's stamp (see `stamp.rs`).
fn read(
    clients: &mut [WebClient],
    i: usize,
    clock: Clock,
    buf: &mut [u8],
    received: &mut Vec<Received>,
) {
    let Some(client) = clients.get_mut(i) else {
        return;
    };
    loop {
        let (n, source, stamp) = match stamp::recv(&client.socket, buf) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => continue,
        };
        let at = clock.at(stamp);
        let now = Instant::now();
        let Ok(contents) = buf[..n].try_into() else {
            continue;
        };
        let input = Input::Receive(
            now,
            Receive {
                proto: Protocol::Udp,
                source,
                destination: client.local,
                contents,
            },
        );
        if client.rtc.handle_input(input).is_ok() {
            client.drain(i as u32, clock.start, received, at);
        }
    }
}

/// Runs the timers that are due.
fn tick(clients: &mut [WebClient], now: Instant, start: Instant, received: &mut Vec<Received>) {
    for (i, client) in clients.iter_mut().enumerate() {
        if client.timeout <= now && client.rtc.handle_input(Input::Timeout(now)).is_ok() {
            client.drain(i as u32, start, received, 0);
        }
    }
}
