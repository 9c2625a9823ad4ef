//! One call's media on a shard: its legs (sockets, latching) and the pipelines between them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use landline_codecs::rtp::RtpPacket;
use landline_codecs::telephone_event::TelephoneEvent;
use landline_codecs::{
    G711Law, G711ToOpus, G711ToOpusConfig, OpusSettings, OpusToG711, OpusToG711Config,
    OutputStream, PipelineStats, Relay, RelayConfig, Scratch, Timing,
};

use super::tone::ToneStream;
use super::webrtc::{Drained, RTP_BUFFER, WebRtcSession};
use super::{
    CallKind, CallMediaStats, CallSpec, LatchPolicy, LegCodec, LegRole, LegSpec, LegTransport,
    MediaCallId, MediaError, MediaEvent,
};

/// A learnt source is replaced by a new one only after being silent this long.
const RELATCH_AFTER: Duration = Duration::from_secs(2);
/// Addresses a browser session may be reached from (ICE pairs it tried); more are ignored.
pub(crate) const WEBRTC_SOURCES: usize = 8;

/// Per-shard counters updated on the packet path, published to atomics on each tick.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct LocalCounters {
    pub(crate) packets_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) packets_dropped: u64,
}

/// The working memory a shard lends its calls' pipelines, one packet or tick at a time, so that
/// no call carries buffers of its own (see [`Scratch`]).
pub(crate) struct MediaScratch {
    /// For the pipeline a datagram, tick or digit goes through.
    pipeline: Scratch,
    /// For a pipeline run inside another's `emit`, as the echo flow chains two. The outer one
    /// holds `pipeline` for its whole step (its packet is borrowed from it), so the inner one
    /// needs its own: copying the packet out would not free `pipeline`, and queueing the outer
    /// one's packets to push afterwards would need room for a burst of them.
    chained: Scratch,
}

/// What a call's step may use of its shard besides scratch memory: the packet counters, and the
/// shard's WebRTC port (browser legs send through it).
pub(crate) struct ShardIo<'a> {
    pub(crate) counters: &'a mut LocalCounters,
    pub(crate) webrtc: Option<&'a mio::net::UdpSocket>,
}

/// A datagram as the shard read it: which leg's socket, from whom, what.
pub(crate) struct Arrival<'a> {
    pub(crate) role: LegRole,
    pub(crate) source: SocketAddr,
    pub(crate) datagram: &'a [u8],
}

/// The id of a call whose next tick panics: the shard's unit tests set it to prove a panic
/// ends that call only. Not compiled outside them.
#[cfg(test)]
pub(crate) static PANIC_ON_TICK: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// A call's media, owned by one shard.
pub(crate) struct CallMedia {
    pub(crate) id: MediaCallId,
    pub(crate) client: Leg,
    pub(crate) trunk: Option<Leg>,
    flow: Flow,
    rtp_timeout: Duration,
}

/// One side of a call: how its media travels, and its codec and liveness.
pub(crate) struct Leg {
    pub(crate) io: LegIo,
    role: LegRole,
    codec: LegCodec,
    last_rx: Instant,
    on_hold: bool,
    timed_out: bool,
    /// Timestamp of the last telephone event reported, so each digit is reported once.
    last_event: Option<u32>,
    /// Whether the leg's first Opus packet was seen (its bandwidth is logged once).
    first_audio_seen: bool,
}

/// How a leg's packets travel.
pub(crate) enum LegIo {
    /// Plain RTP on a socket of its own (trunks, softphones).
    Rtp(RtpIo),
    /// SRTP through a browser session on the shard's shared WebRTC port.
    WebRtc(Box<WebRtcIo>),
}

/// A plain RTP leg's socket and where its media comes from and goes to.
pub(crate) struct RtpIo {
    pub(crate) socket: mio::net::UdpSocket,
    pub(crate) port: u16,
    remote: Option<SocketAddr>,
    latch: LatchPolicy,
    latched: bool,
}

/// A browser leg: its session and the addresses the shard's port maps to it.
pub(crate) struct WebRtcIo {
    pub(crate) session: WebRtcSession,
    pub(crate) sources: Vec<SocketAddr>,
}

enum Flow {
    Bridge {
        to_trunk: Direction,
        to_client: Direction,
    },
    Echo {
        out: Direction,
        back: Direction,
    },
    Tone(Box<ToneStream>),
}

/// One direction of media: transcoding or relaying, by the codecs on either side.
enum Direction {
    OpusToG711(Box<OpusToG711>),
    G711ToOpus(Box<G711ToOpus>),
    Relay(Box<Relay>),
}

impl MediaScratch {
    pub(crate) fn new() -> Self {
        MediaScratch {
            pipeline: Scratch::new(),
            chained: Scratch::new(),
        }
    }
}

impl CallMedia {
    pub(crate) fn new(spec: CallSpec, now: Instant) -> Result<Self, MediaError> {
        let CallSpec {
            id,
            kind,
            opus,
            timing,
            rtp_timeout,
        } = spec;
        let (client, trunk, flow) = match kind {
            CallKind::Bridge { client, trunk } => {
                let to_trunk =
                    Direction::new(client.codec, trunk.codec, trunk.output, &opus, timing)?;
                let to_client =
                    Direction::new(trunk.codec, client.codec, client.output, &opus, timing)?;
                let flow = Flow::Bridge {
                    to_trunk,
                    to_client,
                };
                (
                    Leg::new(LegRole::Client, client, now)?,
                    Some(Leg::new(LegRole::Trunk, trunk, now)?),
                    flow,
                )
            }
            CallKind::Echo { client } => {
                // Through G.711 and back, so the echo test hears exactly what a trunk would.
                let pcmu = LegCodec::G711 {
                    law: G711Law::Mu,
                    event_payload_type: None,
                    comfort_noise_payload_type: None,
                };
                let middle = OutputStream {
                    ssrc: client.output.ssrc ^ 0x5A5A_5A5A,
                    ..client.output
                };
                let out = Direction::new(client.codec, pcmu, middle, &opus, timing)?;
                let back = Direction::new(pcmu, client.codec, client.output, &opus, timing)?;
                (
                    Leg::new(LegRole::Client, client, now)?,
                    None,
                    Flow::Echo { out, back },
                )
            }
            CallKind::Tone { client, hz } => {
                let tone = ToneStream::new(client.codec, hz, &opus, client.output)?;
                (
                    Leg::new(LegRole::Client, client, now)?,
                    None,
                    Flow::Tone(Box::new(tone)),
                )
            }
        };
        Ok(CallMedia {
            id,
            client,
            trunk,
            flow,
            rtp_timeout,
        })
    }

    pub(crate) fn leg_mut(&mut self, role: LegRole) -> Option<&mut Leg> {
        match role {
            LegRole::Client => Some(&mut self.client),
            LegRole::Trunk => self.trunk.as_mut(),
        }
    }

    /// Handles one datagram that arrived on a plain RTP leg's socket.
    pub(crate) fn on_datagram(
        &mut self,
        now: Instant,
        arrival: Arrival<'_>,
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
        events: &mut impl FnMut(MediaEvent),
    ) {
        let Arrival {
            role,
            source,
            datagram,
        } = arrival;
        let Some(leg) = self.leg_mut(role) else {
            return;
        };
        if !leg.accept(source, now) {
            io.counters.packets_dropped += 1;
            return;
        }
        self.route(now, role, datagram, scratch, io, events);
        self.drain_webrtc(now, scratch, io, events);
    }

    /// Handles one datagram the shard's WebRTC port demultiplexed to this call's browser leg.
    pub(crate) fn on_webrtc_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
        events: &mut impl FnMut(MediaEvent),
    ) {
        let Some(web) = self.client.webrtc_mut() else {
            return;
        };
        if !web.session.receive(now, source, datagram) {
            io.counters.packets_dropped += 1;
        }
        self.drain_webrtc(now, scratch, io, events);
    }

    /// Runs what the browser session produced: datagrams go out, decrypted RTP goes through the
    /// call's pipeline like a plain leg's packet.
    fn drain_webrtc(
        &mut self,
        now: Instant,
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
        events: &mut impl FnMut(MediaEvent),
    ) {
        let Some(socket) = io.webrtc else {
            return;
        };
        let mut rtp = [0u8; RTP_BUFFER];
        loop {
            let Some(web) = self.client.webrtc_mut() else {
                return;
            };
            match web
                .session
                .drain(now, socket, &mut rtp, &mut io.counters.packets_out)
            {
                Drained::Idle => return,
                Drained::Rtp(len) => {
                    self.client.mark_received(now);
                    self.route(now, LegRole::Client, &rtp[..len], scratch, io, events);
                }
            }
        }
    }

    /// Takes an accepted RTP packet from a leg through the call's flow.
    fn route(
        &mut self,
        now: Instant,
        role: LegRole,
        datagram: &[u8],
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
        events: &mut impl FnMut(MediaEvent),
    ) {
        let counters = &mut *io.counters;
        counters.packets_in += 1;
        let id = self.id;
        let Some(leg) = self.leg_mut(role) else {
            return;
        };
        if let Some(digit) = leg.new_digit(datagram) {
            events(MediaEvent::Digit(id, role, digit));
        }
        if !leg.first_audio_seen {
            // Once per call: whether the client honours our narrowband request. Until its
            // first Opus packet: a softphone may open with something else (Linphone does).
            if let Some(bandwidth) = leg.opus_bandwidth(datagram) {
                leg.first_audio_seen = true;
                tracing::debug!(call = id.0, ?role, bandwidth, "first Opus packet");
            }
        }
        let CallMedia {
            client,
            trunk,
            flow,
            ..
        } = self;
        let MediaScratch { pipeline, chained } = scratch;
        match (flow, role) {
            (Flow::Bridge { to_trunk, .. }, LegRole::Client) => {
                if let Some(trunk) = trunk {
                    to_trunk.push(now, datagram, pipeline, &mut |p| {
                        trunk.send(now, p, counters)
                    });
                }
            }
            (Flow::Bridge { to_client, .. }, LegRole::Trunk) => {
                to_client.push(now, datagram, pipeline, &mut |p| {
                    client.send(now, p, counters)
                });
            }
            (Flow::Echo { out, back }, LegRole::Client) => {
                // `back` runs inside `out`'s emit, so it works in the chained scratch.
                out.push(now, datagram, pipeline, &mut |p| {
                    back.push(now, p, chained, &mut |q| client.send(now, q, counters));
                });
            }
            _ => {}
        }
    }

    /// Sends a DTMF digit towards a leg, on that leg's outgoing stream.
    pub(crate) fn send_digit(
        &mut self,
        toward: LegRole,
        now: Instant,
        (digit, duration): (char, Duration),
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
    ) {
        let CallMedia {
            client,
            trunk,
            flow,
            ..
        } = self;
        let pipeline = &mut scratch.pipeline;
        let counters = &mut *io.counters;
        let result = match (flow, toward, trunk) {
            (Flow::Bridge { to_trunk, .. }, LegRole::Trunk, Some(trunk)) => {
                to_trunk.send_digit(now, digit, duration, pipeline, &mut |p| {
                    trunk.send(now, p, counters)
                })
            }
            (Flow::Bridge { to_client, .. }, LegRole::Client, _) => {
                to_client.send_digit(now, digit, duration, pipeline, &mut |p| {
                    client.send(now, p, counters)
                })
            }
            _ => Err(landline_codecs::Error::NoTelephoneEvent),
        };
        if let Err(error) = result {
            tracing::debug!(call = self.id.0, %error, "digit not sent");
        }
        self.drain_webrtc(now, scratch, io, &mut |_| {});
    }

    /// Runs the pipelines' timers, the browser session's timers and the media timeout.
    pub(crate) fn on_tick(
        &mut self,
        now: Instant,
        scratch: &mut MediaScratch,
        io: &mut ShardIo<'_>,
        events: &mut impl FnMut(MediaEvent),
    ) {
        #[cfg(test)]
        if PANIC_ON_TICK.load(std::sync::atomic::Ordering::Relaxed) == self.id.0 {
            panic!("a fault injected by a test into call {}", self.id.0);
        }
        let CallMedia {
            id,
            client,
            trunk,
            flow,
            rtp_timeout,
        } = self;
        let MediaScratch { pipeline, chained } = scratch;
        let counters = &mut *io.counters;
        match flow {
            Flow::Bridge {
                to_trunk,
                to_client,
            } => {
                if let Some(trunk) = trunk.as_mut() {
                    if to_trunk.poll_timeout().is_some_and(|t| t <= now) {
                        to_trunk
                            .handle_timeout(now, pipeline, &mut |p| trunk.send(now, p, counters));
                    }
                }
                if to_client.poll_timeout().is_some_and(|t| t <= now) {
                    to_client.handle_timeout(now, pipeline, &mut |p| client.send(now, p, counters));
                }
            }
            Flow::Echo { out, back } => {
                if out.poll_timeout().is_some_and(|t| t <= now) {
                    out.handle_timeout(now, pipeline, &mut |p| {
                        back.push(now, p, chained, &mut |q| client.send(now, q, counters));
                    });
                }
                if back.poll_timeout().is_some_and(|t| t <= now) {
                    back.handle_timeout(now, pipeline, &mut |q| client.send(now, q, counters));
                }
            }
            Flow::Tone(tone) => {
                if tone.poll_timeout().is_none_or(|t| t <= now) {
                    tone.handle_timeout(now, |p| client.send(now, p, counters));
                }
            }
        }
        if let Some(web) = client.webrtc_mut() {
            web.session.handle_timeout(now);
        }
        for leg in std::iter::once(&mut *client).chain(trunk.as_mut()) {
            if leg.check_timeout(now, *rtp_timeout) {
                events(MediaEvent::MediaTimeout(*id, leg.role));
            }
        }
        self.drain_webrtc(now, scratch, io, events);
    }

    /// The call's counters, for its call record.
    pub(crate) fn stats(&self) -> CallMediaStats {
        let (toward_trunk, toward_client) = match &self.flow {
            Flow::Bridge {
                to_trunk,
                to_client,
            } => (Some(to_trunk.stats()), Some(to_client.stats())),
            Flow::Echo { out, .. } => (Some(out.stats()), None),
            Flow::Tone(_) => (None, None),
        };
        let from_client = toward_trunk.copied().unwrap_or_default();
        let from_trunk = toward_client.copied().unwrap_or_default();
        let concealed =
            |s: &PipelineStats| s.recovered_samples + s.concealed_samples + s.noise_samples;
        CallMediaStats {
            client_packets_in: from_client.packets_in,
            trunk_packets_in: from_trunk.packets_in,
            client_lost: from_client.lost,
            trunk_lost: from_trunk.lost,
            concealed_samples: concealed(&from_client) + concealed(&from_trunk),
        }
    }
}

impl Leg {
    fn new(role: LegRole, spec: LegSpec, now: Instant) -> Result<Self, MediaError> {
        let io = match spec.transport {
            LegTransport::Rtp(socket) => {
                let port = socket.local_addr().map_err(MediaError::Socket)?.port();
                LegIo::Rtp(RtpIo {
                    socket: mio::net::UdpSocket::from_std(socket),
                    port,
                    remote: spec.remote,
                    latch: spec.latch,
                    latched: false,
                })
            }
            LegTransport::WebRtc(session) => LegIo::WebRtc(Box::new(WebRtcIo {
                session: *session,
                sources: Vec::new(),
            })),
        };
        Ok(Leg {
            io,
            role,
            codec: spec.codec,
            last_rx: now,
            on_hold: false,
            timed_out: false,
            last_event: None,
            first_audio_seen: false,
        })
    }

    /// The browser session, when this is a WebRTC leg.
    pub(crate) fn webrtc_mut(&mut self) -> Option<&mut WebRtcIo> {
        match &mut self.io {
            LegIo::WebRtc(web) => Some(web),
            LegIo::Rtp(_) => None,
        }
    }

    /// The plain RTP socket, when this leg has one.
    pub(crate) fn rtp_mut(&mut self) -> Option<&mut RtpIo> {
        match &mut self.io {
            LegIo::Rtp(rtp) => Some(rtp),
            LegIo::WebRtc(_) => None,
        }
    }

    pub(crate) fn set_remote(&mut self, remote: SocketAddr) {
        if let LegIo::Rtp(rtp) = &mut self.io {
            rtp.remote = Some(remote);
            rtp.latched = false;
        }
    }

    pub(crate) fn set_hold(&mut self, on_hold: bool, now: Instant) {
        self.on_hold = on_hold;
        self.last_rx = now;
        self.timed_out = false;
    }

    fn mark_received(&mut self, now: Instant) {
        self.last_rx = now;
        self.timed_out = false;
    }

    /// Whether media from `source` belongs to this leg; latches to it when the policy allows.
    fn accept(&mut self, source: SocketAddr, now: Instant) -> bool {
        let LegIo::Rtp(rtp) = &mut self.io else {
            return false;
        };
        let accepted = match (rtp.latch, rtp.remote) {
            (_, Some(remote)) if remote == source => true,
            (LatchPolicy::Strict, Some(remote)) => remote.ip() == source.ip(),
            (LatchPolicy::Strict, None) => false,
            (LatchPolicy::Learn, _) => {
                !rtp.latched || now.saturating_duration_since(self.last_rx) > RELATCH_AFTER
            }
        };
        if accepted {
            if rtp.remote != Some(source) {
                // Symmetric RTP: answer where the media comes from.
                rtp.remote = Some(source);
            }
            rtp.latched = true;
            self.mark_received(now);
        }
        accepted
    }

    /// The digit a telephone-event packet starts, once per event.
    fn new_digit(&mut self, datagram: &[u8]) -> Option<char> {
        let event_pt = match self.codec {
            LegCodec::Opus {
                event_payload_type, ..
            } => event_payload_type,
            LegCodec::G711 {
                event_payload_type, ..
            } => event_payload_type,
        }?;
        let packet = RtpPacket::parse(datagram).ok()?;
        if packet.payload_type != event_pt || self.last_event == Some(packet.timestamp) {
            return None;
        }
        let event = TelephoneEvent::parse(packet.payload).ok()?;
        self.last_event = Some(packet.timestamp);
        event.dtmf_char()
    }

    /// The audio bandwidth an Opus packet's TOC byte declares (RFC 6716 §3.1).
    fn opus_bandwidth(&self, datagram: &[u8]) -> Option<&'static str> {
        let LegCodec::Opus { payload_type, .. } = self.codec else {
            return None;
        };
        let packet = RtpPacket::parse(datagram).ok()?;
        if packet.payload_type != payload_type {
            return None;
        }
        let config = packet.payload.first()? >> 3;
        Some(match config {
            0..=3 | 16..=19 => "narrowband",
            4..=7 => "mediumband",
            8..=11 | 20..=23 => "wideband",
            12..=13 | 24..=27 => "super-wideband",
            _ => "fullband",
        })
    }

    fn send(&mut self, now: Instant, packet: &[u8], counters: &mut LocalCounters) {
        match &mut self.io {
            LegIo::Rtp(rtp) => {
                let Some(remote) = rtp.remote else {
                    counters.packets_dropped += 1;
                    return;
                };
                match rtp.socket.send_to(packet, remote) {
                    Ok(_) => counters.packets_out += 1,
                    Err(_) => counters.packets_dropped += 1,
                }
            }
            // Counted as sent when the drain puts the encrypted packet on the wire.
            LegIo::WebRtc(web) => {
                if !web.session.write(now, packet) {
                    counters.packets_dropped += 1;
                }
            }
        }
    }

    /// True once when the leg has been silent past `timeout`, or its browser session ended.
    fn check_timeout(&mut self, now: Instant, timeout: Duration) -> bool {
        let ended = matches!(&self.io, LegIo::WebRtc(web) if web.session.has_ended());
        let silent = !self.on_hold && now.saturating_duration_since(self.last_rx) >= timeout;
        if self.timed_out || !(ended || silent) {
            return false;
        }
        self.timed_out = true;
        true
    }
}

impl Direction {
    fn new(
        from: LegCodec,
        to: LegCodec,
        output: OutputStream,
        opus: &OpusSettings,
        timing: Timing,
    ) -> Result<Self, MediaError> {
        Ok(match (from, to) {
            (
                LegCodec::Opus {
                    payload_type,
                    event_payload_type,
                },
                LegCodec::G711 {
                    law,
                    event_payload_type: event_out,
                    ..
                },
            ) => Direction::OpusToG711(Box::new(OpusToG711::new(&OpusToG711Config {
                opus_payload_type: payload_type,
                event_payload_type_in: event_payload_type,
                law,
                event_payload_type_out: event_out,
                output,
                timing,
            })?)),
            (
                LegCodec::G711 {
                    law,
                    event_payload_type,
                    comfort_noise_payload_type,
                },
                LegCodec::Opus {
                    payload_type,
                    event_payload_type: event_out,
                },
            ) => Direction::G711ToOpus(Box::new(G711ToOpus::new(&G711ToOpusConfig {
                law,
                comfort_noise_payload_type,
                event_payload_type_in: event_payload_type,
                opus_payload_type: payload_type,
                event_payload_type_out: event_out,
                opus: *opus,
                output,
                timing,
            })?)),
            (
                LegCodec::Opus {
                    payload_type: a,
                    event_payload_type: ea,
                },
                LegCodec::Opus {
                    payload_type: b,
                    event_payload_type: eb,
                },
            ) => Direction::Relay(Box::new(Relay::new(&RelayConfig {
                audio: (a, b),
                event_in: ea,
                event_out: eb,
                comfort_noise: None,
                clock_rate: 48_000,
                output,
            }))),
            (
                LegCodec::G711 {
                    law: la,
                    event_payload_type: ea,
                    comfort_noise_payload_type: ca,
                },
                LegCodec::G711 {
                    law: lb,
                    event_payload_type: eb,
                    comfort_noise_payload_type: cb,
                },
            ) => {
                if la != lb {
                    // Offer/answer picks a common law; a mismatch is a setup bug, not media.
                    return Err(MediaError::Codec(landline_codecs::Error::BadSetting(
                        "PCMU on one leg and PCMA on the other",
                    )));
                }
                Direction::Relay(Box::new(Relay::new(&RelayConfig {
                    audio: (la.payload_type(), lb.payload_type()),
                    event_in: ea,
                    event_out: eb,
                    comfort_noise: ca.zip(cb),
                    clock_rate: 8_000,
                    output,
                })))
            }
        })
    }

    fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: &mut dyn FnMut(&[u8]),
    ) {
        match self {
            Direction::OpusToG711(p) => p.push(now, datagram, scratch, emit),
            Direction::G711ToOpus(p) => p.push(now, datagram, scratch, emit),
            Direction::Relay(p) => p.push(now, datagram, scratch, emit),
        }
    }

    fn send_digit(
        &mut self,
        now: Instant,
        digit: char,
        duration: Duration,
        scratch: &mut Scratch,
        emit: &mut dyn FnMut(&[u8]),
    ) -> Result<(), landline_codecs::Error> {
        match self {
            Direction::OpusToG711(p) => p.send_digit(now, digit, duration, scratch, emit),
            Direction::G711ToOpus(p) => p.send_digit(now, digit, duration, scratch, emit),
            Direction::Relay(p) => p.send_digit(now, digit, duration, scratch, emit),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Direction::OpusToG711(p) => p.poll_timeout(),
            Direction::G711ToOpus(p) => p.poll_timeout(),
            Direction::Relay(p) => p.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch, emit: &mut dyn FnMut(&[u8])) {
        match self {
            Direction::OpusToG711(p) => p.handle_timeout(now, scratch, emit),
            Direction::G711ToOpus(p) => p.handle_timeout(now, scratch, emit),
            Direction::Relay(p) => p.handle_timeout(now, scratch, emit),
        }
    }

    fn stats(&self) -> &PipelineStats {
        match self {
            Direction::OpusToG711(p) => p.stats(),
            Direction::G711ToOpus(p) => p.stats(),
            Direction::Relay(p) => p.stats(),
        }
    }
}
