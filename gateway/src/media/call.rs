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
    /// The counters of pipelines replaced by codec changes, added to the running ones'.
    earlier: CallMediaStats,
}

/// A leg's new codec and the two pipelines that go with it, built on the control plane (they
/// allocate codec state) and handed to the shard, which swaps them in for the running ones.
pub struct LegChange {
    role: LegRole,
    codec: LegCodec,
    /// Towards the changed leg, from the other one.
    to_leg: Direction,
    /// From the changed leg, towards the other one.
    from_leg: Direction,
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
                    payload_type: G711Law::Mu.payload_type(),
                    event_payload_type: None,
                    our_event_payload_type: None,
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
            earlier: CallMediaStats::default(),
        })
    }

    /// Swaps in a leg's new codec and pipelines; both directions' output streams go on where
    /// the replaced pipelines left them (same SSRC, next sequence number, a timestamp in line),
    /// except towards the changed leg when its RTP clock changed (a new stream then).
    pub(crate) fn change_codec(&mut self, now: Instant, change: LegChange) {
        let LegChange {
            role,
            codec,
            to_leg,
            from_leg,
        } = change;
        let Some(leg) = self.leg_mut(role) else {
            return;
        };
        let same_clock = leg.codec.clock_rate() == codec.clock_rate();
        let before = self.stats();
        if self
            .flow
            .change_leg(now, role, (to_leg, from_leg), same_clock)
        {
            self.earlier = before;
            if let Some(leg) = self.leg_mut(role) {
                leg.codec = codec;
                leg.last_event = None;
            }
            tracing::debug!(call = self.id.0, ?role, ?codec, "leg codec changed");
        }
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
            // Once per call: whether the client honours our narrowband request. Until its first
            // Opus packet, since a softphone may open with something else (Linphone's first
            // datagram is STUN); a G.711 leg has nothing to report and stops looking at once.
            match leg.opus_bandwidth(datagram) {
                Some(bandwidth) => {
                    leg.first_audio_seen = true;
                    tracing::debug!(call = id.0, ?role, bandwidth, "first Opus packet");
                }
                None => leg.first_audio_seen = !matches!(leg.codec, LegCodec::Opus { .. }),
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
            ..
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
        let e = &self.earlier;
        CallMediaStats {
            client_packets_in: e.client_packets_in + from_client.packets_in,
            trunk_packets_in: e.trunk_packets_in + from_trunk.packets_in,
            client_lost: e.client_lost + from_client.lost,
            trunk_lost: e.trunk_lost + from_trunk.lost,
            concealed_samples: e.concealed_samples
                + concealed(&from_client)
                + concealed(&from_trunk),
        }
    }
}

/// The far side's own type for a G.711 leg's audio, when its SDP mapped the law to another than
/// the static one (which stays accepted): taken as audio too, unless it names an event or
/// comfort-noise type of the leg (then it is not audio, whatever the SDP said).
fn extra_audio_in(codec: &LegCodec) -> Option<u8> {
    let LegCodec::G711 {
        law,
        payload_type,
        event_payload_type,
        our_event_payload_type,
        comfort_noise_payload_type,
    } = *codec
    else {
        return None;
    };
    let taken = [
        event_payload_type,
        our_event_payload_type,
        comfort_noise_payload_type,
    ];
    (payload_type != law.payload_type() && !taken.contains(&Some(payload_type)))
        .then_some(payload_type)
}

impl LegChange {
    /// The pipelines for `role`'s leg in `codec`, facing the other leg's `other` codec (which
    /// stays as it is). `fresh` are the streams to use towards the changed leg and towards the
    /// other one when the running ones cannot be continued.
    pub fn new(
        role: LegRole,
        (codec, other): (LegCodec, LegCodec),
        fresh: (OutputStream, OutputStream),
        opus: &OpusSettings,
        timing: Timing,
    ) -> Result<Self, MediaError> {
        Ok(LegChange {
            role,
            codec,
            to_leg: Direction::new(other, codec, fresh.0, opus, timing)?,
            from_leg: Direction::new(codec, other, fresh.1, opus, timing)?,
        })
    }
}

impl std::fmt::Debug for LegChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegChange")
            .field("role", &self.role)
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

impl Flow {
    /// Replaces the pipelines to and from `role`'s leg; `false` when the flow has no such leg
    /// (echo and tone calls: their client's codec is fixed).
    fn change_leg(
        &mut self,
        now: Instant,
        role: LegRole,
        (mut to_leg, mut from_leg): (Direction, Direction),
        same_clock: bool,
    ) -> bool {
        let Flow::Bridge {
            to_trunk,
            to_client,
        } = self
        else {
            return false;
        };
        let (old_to, old_from) = match role {
            LegRole::Trunk => (to_trunk, to_client),
            LegRole::Client => (to_client, to_trunk),
        };
        if same_clock {
            to_leg.continue_output(old_to.next_output(now));
        }
        from_leg.continue_output(old_from.next_output(now));
        *old_to = to_leg;
        *old_from = from_leg;
        true
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
        let (theirs, ours) = match self.codec {
            LegCodec::Opus {
                event_payload_type,
                our_event_payload_type,
                ..
            }
            | LegCodec::G711 {
                event_payload_type,
                our_event_payload_type,
                ..
            } => (event_payload_type?, our_event_payload_type),
        };
        let packet = RtpPacket::parse(datagram).ok()?;
        let is_event = packet.payload_type == theirs || Some(packet.payload_type) == ours;
        if !is_event || self.last_event == Some(packet.timestamp) {
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
        let mut direction = match (from, to) {
            (
                LegCodec::Opus {
                    payload_type,
                    event_payload_type,
                    ..
                },
                LegCodec::G711 {
                    law,
                    payload_type: audio_out,
                    event_payload_type: event_out,
                    ..
                },
            ) => {
                let mut pipeline = OpusToG711::new(&OpusToG711Config {
                    opus_payload_type: payload_type,
                    event_payload_type_in: event_payload_type,
                    law,
                    event_payload_type_out: event_out,
                    output,
                    timing,
                })?;
                if audio_out != law.payload_type() {
                    pipeline.send_audio_as(audio_out);
                }
                Direction::OpusToG711(Box::new(pipeline))
            }
            (
                LegCodec::G711 {
                    law,
                    event_payload_type,
                    comfort_noise_payload_type,
                    ..
                },
                LegCodec::Opus {
                    payload_type,
                    event_payload_type: event_out,
                    ..
                },
            ) => {
                let mut pipeline = G711ToOpus::new(&G711ToOpusConfig {
                    law,
                    comfort_noise_payload_type,
                    event_payload_type_in: event_payload_type,
                    opus_payload_type: payload_type,
                    event_payload_type_out: event_out,
                    opus: *opus,
                    output,
                    timing,
                })?;
                if let Some(audio_in) = extra_audio_in(&from) {
                    pipeline.accept_audio_payload_type(audio_in);
                }
                Direction::G711ToOpus(Box::new(pipeline))
            }
            (
                LegCodec::Opus {
                    payload_type: a,
                    event_payload_type: ea,
                    ..
                },
                LegCodec::Opus {
                    payload_type: b,
                    event_payload_type: eb,
                    ..
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
                    ..
                },
                LegCodec::G711 {
                    law: lb,
                    payload_type: pb,
                    event_payload_type: eb,
                    comfort_noise_payload_type: cb,
                    ..
                },
            ) => {
                // PCMU on one leg and PCMA on the other (a carrier's 200 in another law than
                // its early media, after the client's answer went out) map byte by byte.
                let config = RelayConfig {
                    audio: (la.payload_type(), pb),
                    event_in: ea,
                    event_out: eb,
                    comfort_noise: ca.zip(cb),
                    clock_rate: 8_000,
                    output,
                };
                let mut relay = Relay::between_laws(&config, la, lb);
                if let Some(audio_in) = extra_audio_in(&from) {
                    relay.accept_audio_payload_type(audio_in);
                }
                Direction::Relay(Box::new(relay))
            }
        };
        let (LegCodec::Opus {
            our_event_payload_type: Some(ours),
            ..
        }
        | LegCodec::G711 {
            our_event_payload_type: Some(ours),
            ..
        }) = from
        else {
            return Ok(direction);
        };
        match &mut direction {
            Direction::OpusToG711(p) => p.accept_event_payload_type(ours),
            Direction::G711ToOpus(p) => p.accept_event_payload_type(ours),
            Direction::Relay(p) => p.accept_event_payload_type(ours),
        }
        Ok(direction)
    }

    fn next_output(&self, now: Instant) -> OutputStream {
        match self {
            Direction::OpusToG711(p) => p.next_output(now),
            Direction::G711ToOpus(p) => p.next_output(now),
            Direction::Relay(p) => p.next_output(now),
        }
    }

    fn continue_output(&mut self, stream: OutputStream) {
        match self {
            Direction::OpusToG711(p) => p.continue_output(stream),
            Direction::G711ToOpus(p) => p.continue_output(stream),
            Direction::Relay(p) => p.continue_output(stream),
        }
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

#[cfg(test)]
mod tests {
    use landline_codecs::rtp::RtpHeader;

    use super::*;

    fn g711(law: G711Law, event: Option<u8>, ours: Option<u8>) -> LegCodec {
        LegCodec::G711 {
            law,
            payload_type: law.payload_type(),
            event_payload_type: event,
            our_event_payload_type: ours,
            comfort_noise_payload_type: None,
        }
    }

    fn opus() -> LegCodec {
        LegCodec::Opus {
            payload_type: 111,
            event_payload_type: Some(110),
            our_event_payload_type: None,
        }
    }

    fn stream(ssrc: u32) -> OutputStream {
        OutputStream {
            ssrc,
            first_sequence: 1000,
            first_timestamp: 50_000,
        }
    }

    fn rtp(payload_type: u8, sequence: u16, payload: &[u8]) -> Vec<u8> {
        let mut packet = vec![0u8; 12 + payload.len()];
        RtpHeader {
            marker: false,
            payload_type,
            sequence,
            timestamp: u32::from(sequence) * 160,
            ssrc: 42,
        }
        .write(&mut packet);
        packet[12..].copy_from_slice(payload);
        packet
    }

    fn bridge(client: LegCodec, trunk: LegCodec) -> Flow {
        let (opus, timing) = (OpusSettings::default(), Timing::default());
        Flow::Bridge {
            to_trunk: Direction::new(client, trunk, stream(1), &opus, timing).unwrap(),
            to_client: Direction::new(trunk, client, stream(2), &opus, timing).unwrap(),
        }
    }

    fn change(role: LegRole, codec: LegCodec, other: LegCodec) -> LegChange {
        let (opus, timing) = (OpusSettings::default(), Timing::default());
        LegChange::new(role, (codec, other), (stream(7), stream(8)), &opus, timing).unwrap()
    }

    /// Pushes `packet` through one direction of a bridge; (SSRC, sequence, PT, payload) out.
    fn through(
        flow: &mut Flow,
        now: Instant,
        toward: LegRole,
        packet: &[u8],
    ) -> Vec<(u32, u16, u8, Vec<u8>)> {
        let Flow::Bridge {
            to_trunk,
            to_client,
        } = flow
        else {
            panic!("a bridge")
        };
        let direction = match toward {
            LegRole::Trunk => to_trunk,
            LegRole::Client => to_client,
        };
        let mut out = Vec::new();
        direction.push(now, packet, &mut Scratch::new(), &mut |p| {
            let p = RtpPacket::parse(p).unwrap();
            out.push((p.ssrc, p.sequence, p.payload_type, p.payload.to_vec()));
        });
        out
    }

    #[test]
    fn a_relayed_call_whose_trunk_turns_to_pcma_maps_the_audio_and_continues_its_streams() {
        let client = g711(G711Law::Mu, Some(101), None);
        let mut flow = bridge(client, g711(G711Law::Mu, Some(101), None));
        let start = Instant::now();
        let tone: Vec<i16> = (0..160)
            .map(|n| (6000.0 * (n as f64 * 0.35).sin()) as i16)
            .collect();
        let mut pcmu = [0u8; 160];
        G711Law::Mu.encode(&tone, &mut pcmu);
        let before = through(&mut flow, start, LegRole::Trunk, &rtp(0, 1, &pcmu));
        assert_eq!((before[0].0, before[0].1, before[0].2), (1, 1000, 0));
        through(&mut flow, start, LegRole::Client, &rtp(0, 1, &pcmu));

        let pcma = g711(G711Law::A, Some(101), None);
        let later = start + Duration::from_millis(20);
        let LegChange {
            to_leg, from_leg, ..
        } = change(LegRole::Trunk, pcma, client);
        assert!(flow.change_leg(later, LegRole::Trunk, (to_leg, from_leg), true));

        let after = through(&mut flow, later, LegRole::Trunk, &rtp(0, 2, &pcmu));
        assert_eq!(
            (after[0].0, after[0].1, after[0].2),
            (1, 1001, 8),
            "the stream to the trunk goes on, now PCMA"
        );
        let mut heard = [0i16; 160];
        G711Law::A.decode(&after[0].3, &mut heard);
        assert!(heard.iter().zip(&tone).all(|(a, b)| (a - b).abs() < 400));
        // The trunk's PCMA reaches the client as PCMU on its running stream.
        let mut alaw = [0u8; 160];
        G711Law::A.encode(&tone, &mut alaw);
        let back = through(&mut flow, later, LegRole::Client, &rtp(8, 2, &alaw));
        assert_eq!((back[0].0, back[0].1, back[0].2), (2, 1001, 0));
        assert!(
            through(&mut flow, later, LegRole::Client, &rtp(0, 3, &pcmu)).is_empty(),
            "PCMU from the trunk is no longer its codec"
        );
    }

    #[test]
    fn a_transcoded_call_changes_law_and_a_relay_comes_back_when_the_laws_meet_again() {
        let mut flow = bridge(opus(), g711(G711Law::Mu, Some(101), None));
        let now = Instant::now();
        let LegChange {
            to_leg, from_leg, ..
        } = change(
            LegRole::Trunk,
            g711(G711Law::A, Some(96), Some(101)),
            opus(),
        );
        assert!(matches!(to_leg, Direction::OpusToG711(_)));
        assert!(flow.change_leg(now, LegRole::Trunk, (to_leg, from_leg), true));

        // A G.711 client with a PCMA trunk, then the trunk back to PCMU: a plain relay again.
        let client = g711(G711Law::Mu, Some(101), None);
        let mut flow = bridge(client, g711(G711Law::A, Some(101), None));
        let LegChange {
            to_leg, from_leg, ..
        } = change(LegRole::Trunk, g711(G711Law::Mu, Some(101), None), client);
        assert!(matches!(to_leg, Direction::Relay(_)));
        assert!(flow.change_leg(now, LegRole::Trunk, (to_leg, from_leg), true));
        let out = through(&mut flow, now, LegRole::Trunk, &rtp(0, 1, &[0xFF; 160]));
        assert_eq!(out[0].2, 0);
        assert_eq!(
            out[0].3,
            vec![0xFF; 160],
            "same law: the bytes pass as they are"
        );
    }

    #[test]
    fn events_go_to_the_trunk_with_its_type_and_come_from_it_with_either() {
        // We offered 101; the trunk answered 96.
        let client = g711(G711Law::Mu, Some(101), None);
        let trunk = g711(G711Law::Mu, Some(96), Some(101));
        let mut flow = bridge(client, trunk);
        let now = Instant::now();
        let event = [5u8, 10, 0, 160];
        let sent = through(&mut flow, now, LegRole::Trunk, &rtp(101, 1, &event));
        assert_eq!(sent[0].2, 96, "sent with the trunk's type");
        for (sequence, pt) in [(1u16, 101u8), (2, 96)] {
            let got = through(&mut flow, now, LegRole::Client, &rtp(pt, sequence, &event));
            assert_eq!(
                got[0].2, 101,
                "the trunk's event with PT {pt} reaches the client"
            );
        }
    }

    #[test]
    fn a_law_under_a_dynamic_type_is_sent_with_it_and_taken_with_either() {
        // The trunk answered our PCMA (8) as 96.
        let trunk = LegCodec::G711 {
            law: G711Law::A,
            payload_type: 96,
            event_payload_type: Some(101),
            our_event_payload_type: None,
            comfort_noise_payload_type: None,
        };
        let client = g711(G711Law::A, Some(101), None);
        let mut flow = bridge(client, trunk);
        let now = Instant::now();
        let audio = [0xD5u8; 160];
        let sent = through(&mut flow, now, LegRole::Trunk, &rtp(8, 1, &audio));
        assert_eq!(sent[0].2, 96, "sent with the trunk's type");
        for (sequence, pt) in [(1u16, 8u8), (2, 96)] {
            let got = through(&mut flow, now, LegRole::Client, &rtp(pt, sequence, &audio));
            assert_eq!(
                got[0].2, 8,
                "the trunk's audio with PT {pt} reaches the client"
            );
        }
        // A type that names the leg's events is not taken as audio.
        let clash = LegCodec::G711 {
            law: G711Law::A,
            payload_type: 101,
            event_payload_type: Some(101),
            our_event_payload_type: None,
            comfort_noise_payload_type: None,
        };
        assert_eq!(extra_audio_in(&clash), None);
        assert_eq!(extra_audio_in(&trunk), Some(96));
        assert_eq!(extra_audio_in(&client), None);
    }

    #[test]
    fn echo_and_tone_calls_keep_their_codec() {
        let (opus_settings, timing) = (OpusSettings::default(), Timing::default());
        let pcmu = g711(G711Law::Mu, None, None);
        let mut flow = Flow::Echo {
            out: Direction::new(pcmu, pcmu, stream(1), &opus_settings, timing).unwrap(),
            back: Direction::new(pcmu, pcmu, stream(2), &opus_settings, timing).unwrap(),
        };
        let LegChange {
            to_leg, from_leg, ..
        } = change(LegRole::Client, opus(), pcmu);
        assert!(!flow.change_leg(Instant::now(), LegRole::Client, (to_leg, from_leg), false));
    }
}
