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
use super::{
    CallKind, CallMediaStats, CallSpec, LatchPolicy, LegCodec, LegRole, LegSpec, MediaCallId,
    MediaError, MediaEvent,
};

/// A learnt source is replaced by a new one only after being silent this long.
const RELATCH_AFTER: Duration = Duration::from_secs(2);

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

/// A datagram as the shard read it: which leg's socket, from whom, what.
pub(crate) struct Arrival<'a> {
    pub(crate) role: LegRole,
    pub(crate) source: SocketAddr,
    pub(crate) datagram: &'a [u8],
}

/// A call's media, owned by one shard.
pub(crate) struct CallMedia {
    pub(crate) id: MediaCallId,
    pub(crate) client: Leg,
    pub(crate) trunk: Option<Leg>,
    flow: Flow,
    rtp_timeout: Duration,
}

/// One side of a call: its socket and where its media comes from and goes to.
pub(crate) struct Leg {
    pub(crate) socket: mio::net::UdpSocket,
    pub(crate) port: u16,
    role: LegRole,
    remote: Option<SocketAddr>,
    latch: LatchPolicy,
    latched: bool,
    codec: LegCodec,
    last_rx: Instant,
    on_hold: bool,
    timed_out: bool,
    /// Timestamp of the last telephone event reported, so each digit is reported once.
    last_event: Option<u32>,
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

    /// Handles one datagram that arrived on a leg.
    pub(crate) fn on_datagram(
        &mut self,
        now: Instant,
        arrival: Arrival<'_>,
        scratch: &mut MediaScratch,
        counters: &mut LocalCounters,
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
            counters.packets_dropped += 1;
            return;
        }
        counters.packets_in += 1;
        if let Some(digit) = leg.new_digit(datagram) {
            events(MediaEvent::Digit(self.id, role, digit));
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
                    to_trunk.push(now, datagram, pipeline, &mut |p| trunk.send(p, counters));
                }
            }
            (Flow::Bridge { to_client, .. }, LegRole::Trunk) => {
                to_client.push(now, datagram, pipeline, &mut |p| client.send(p, counters));
            }
            (Flow::Echo { out, back }, LegRole::Client) => {
                // `back` runs inside `out`'s emit, so it works in the chained scratch.
                out.push(now, datagram, pipeline, &mut |p| {
                    back.push(now, p, chained, &mut |q| client.send(q, counters));
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
        digit: char,
        duration: Duration,
        scratch: &mut MediaScratch,
        counters: &mut LocalCounters,
    ) {
        let CallMedia {
            client,
            trunk,
            flow,
            ..
        } = self;
        let pipeline = &mut scratch.pipeline;
        let result = match (flow, toward, trunk) {
            (Flow::Bridge { to_trunk, .. }, LegRole::Trunk, Some(trunk)) => {
                to_trunk.send_digit(now, digit, duration, pipeline, &mut |p| {
                    trunk.send(p, counters)
                })
            }
            (Flow::Bridge { to_client, .. }, LegRole::Client, _) => {
                to_client.send_digit(now, digit, duration, pipeline, &mut |p| {
                    client.send(p, counters)
                })
            }
            _ => Err(landline_codecs::Error::NoTelephoneEvent),
        };
        if let Err(error) = result {
            tracing::debug!(call = self.id.0, %error, "digit not sent");
        }
    }

    /// Runs the pipelines' timers and the media timeout.
    pub(crate) fn on_tick(
        &mut self,
        now: Instant,
        scratch: &mut MediaScratch,
        counters: &mut LocalCounters,
        events: &mut impl FnMut(MediaEvent),
    ) {
        let CallMedia {
            id,
            client,
            trunk,
            flow,
            rtp_timeout,
        } = self;
        let MediaScratch { pipeline, chained } = scratch;
        match flow {
            Flow::Bridge {
                to_trunk,
                to_client,
            } => {
                if let Some(trunk) = trunk.as_mut() {
                    if to_trunk.poll_timeout().is_some_and(|t| t <= now) {
                        to_trunk.handle_timeout(now, pipeline, &mut |p| trunk.send(p, counters));
                    }
                }
                if to_client.poll_timeout().is_some_and(|t| t <= now) {
                    to_client.handle_timeout(now, pipeline, &mut |p| client.send(p, counters));
                }
            }
            Flow::Echo { out, back } => {
                if out.poll_timeout().is_some_and(|t| t <= now) {
                    out.handle_timeout(now, pipeline, &mut |p| {
                        back.push(now, p, chained, &mut |q| client.send(q, counters));
                    });
                }
                if back.poll_timeout().is_some_and(|t| t <= now) {
                    back.handle_timeout(now, pipeline, &mut |q| client.send(q, counters));
                }
            }
            Flow::Tone(tone) => {
                if tone.poll_timeout().is_none_or(|t| t <= now) {
                    tone.handle_timeout(now, |p| client.send(p, counters));
                }
            }
        }
        for leg in std::iter::once(client).chain(trunk.as_mut()) {
            if leg.check_timeout(now, *rtp_timeout) {
                events(MediaEvent::MediaTimeout(*id, leg.role));
            }
        }
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
        let port = spec.socket.local_addr().map_err(MediaError::Socket)?.port();
        Ok(Leg {
            socket: mio::net::UdpSocket::from_std(spec.socket),
            port,
            role,
            remote: spec.remote,
            latch: spec.latch,
            latched: false,
            codec: spec.codec,
            last_rx: now,
            on_hold: false,
            timed_out: false,
            last_event: None,
        })
    }

    pub(crate) fn set_remote(&mut self, remote: SocketAddr) {
        self.remote = Some(remote);
        self.latched = false;
    }

    pub(crate) fn set_hold(&mut self, on_hold: bool, now: Instant) {
        self.on_hold = on_hold;
        self.last_rx = now;
        self.timed_out = false;
    }

    /// Whether media from `source` belongs to this leg; latches to it when the policy allows.
    fn accept(&mut self, source: SocketAddr, now: Instant) -> bool {
        let accepted = match (self.latch, self.remote) {
            (_, Some(remote)) if remote == source => true,
            (LatchPolicy::Strict, Some(remote)) => remote.ip() == source.ip(),
            (LatchPolicy::Strict, None) => false,
            (LatchPolicy::Learn, _) => {
                !self.latched || now.saturating_duration_since(self.last_rx) > RELATCH_AFTER
            }
        };
        if accepted {
            if self.remote != Some(source) {
                // Symmetric RTP: answer where the media comes from.
                self.remote = Some(source);
            }
            self.latched = true;
            self.last_rx = now;
            self.timed_out = false;
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

    fn send(&self, packet: &[u8], counters: &mut LocalCounters) {
        let Some(remote) = self.remote else {
            counters.packets_dropped += 1;
            return;
        };
        match self.socket.send_to(packet, remote) {
            Ok(_) => counters.packets_out += 1,
            Err(_) => counters.packets_dropped += 1,
        }
    }

    /// True once when the leg has been silent past `timeout`.
    fn check_timeout(&mut self, now: Instant, timeout: Duration) -> bool {
        if self.on_hold || self.timed_out || now.saturating_duration_since(self.last_rx) < timeout {
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
                event: ea.zip(eb),
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
                    event: ea.zip(eb),
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
