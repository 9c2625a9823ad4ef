//! The measured operations, each one 20 ms of call time, shared by the criterion benches and the
//! callgrind runner so that wall time and instruction counts describe the same work.
//!
//! Every workload owns its state and fixture copy and advances by one packet per
//! [`step`](Workload::step): the pipelines see a continuous stream with the clock moving 20 ms per
//! packet, so what is measured is a call's steady state, not its first packet.

use std::time::Instant;

use audiopus::coder::{Decoder, Encoder};
use audiopus::packet::Packet;
use audiopus::{Bandwidth, Channels, MutSignals, SampleRate};
use landline_codecs::rtp::RTP_HEADER_LEN;
use landline_codecs::{
    G711Law, G711ToOpus, G711ToOpusConfig, MAX_FRAME_SAMPLES_8K, MAX_PACKET_LEN, OpusSettings,
    OpusToG711, OpusToG711Config, OutputStream, PipelineStats, Relay, RelayConfig, Scratch, Timing,
};

use crate::fixtures::{
    CLIENT_EVENT_PAYLOAD_TYPE, COMFORT_NOISE_PAYLOAD_TYPE, ClientAudio, FRAME, Fixtures,
    OPUS_PAYLOAD_TYPE, PTIME, RtpLoop, TRUNK_EVENT_PAYLOAD_TYPE, opus_encoder,
};
use crate::webrtc::{Leg, LegWork, Setup, UdpSend};

/// One bench operation: 20 ms of call time for whatever it models.
pub trait Workload {
    /// Processes the next 20 ms; returns a value derived from the output, for `black_box`.
    fn step(&mut self) -> usize;

    /// Does, outside any measurement, what the far end does before the next `steps` steps (a
    /// WebRTC client encrypting its packets and reading the gateway's); returns how many steps
    /// may run before `prepare` is called again (at least one). The pipelines' workloads have
    /// nothing to prepare.
    fn prepare(&mut self, steps: usize) -> usize {
        steps
    }

    /// Whether only the step's [`gateway_section`](crate::webrtc::gateway_section)s are the
    /// gateway's work: then those are what is timed and counted, not the whole step.
    fn sections(&self) -> bool {
        false
    }

    /// Whether the far end's work also runs inside a step, between the sections (a session
    /// setup's handshake), so that a timer must add up the sections rather than time the step.
    /// Otherwise a step is all the gateway's (plus a few loads and stores of the harness), and
    /// criterion times whole steps, which costs no clock reading per section.
    fn far_end_in_step(&self) -> bool {
        false
    }
}

/// The workloads by name, as the callgrind runner and the README know them.
///
/// The `…Narrowband` ones are fed the client stream a browser sends after an answer with
/// `maxplaybackrate=8000` (see [`ClientAudio`]); the others the browser's default stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadName {
    /// G.711 µ-law encode + decode of one 20 ms frame.
    G711Mu,
    /// G.711 A-law encode + decode of one 20 ms frame.
    G711A,
    /// [`OpusToG711`] fed one client packet.
    OpusToG711,
    /// [`G711ToOpus`] fed one trunk packet.
    G711ToOpus,
    /// One full-duplex call step: one packet each way.
    Call,
    /// Bare libopus: decode one client packet to 8 kHz.
    LibopusDecode,
    /// Bare libopus: encode one 8 kHz frame at the pipeline's default settings.
    LibopusEncode,
    /// Bare libopus: both of the above, the codec work inside one call step.
    Libopus,
    /// [`OpusToG711`] fed one narrowband client packet.
    OpusToG711Narrowband,
    /// A full-duplex call step with a narrowband client.
    CallNarrowband,
    /// Bare libopus: decode one narrowband client packet.
    LibopusDecodeNarrowband,
    /// Bare libopus: the codec work inside a call step with a narrowband client.
    LibopusNarrowband,
    /// Bare libopus: encode at complexity 0 instead of the default 1, to size that knob.
    LibopusEncodeComplexity0,
    /// A browser session's setup on the gateway: offer answered, ICE and DTLS to connected,
    /// session dropped (one session per step, not 20 ms).
    WebRtcSetup,
    /// One Opus packet from a connected browser: SRTP unprotect through the session.
    WebRtcIn,
    /// One Opus packet to a connected browser: through the session, SRTP protect and send.
    WebRtcOut,
    /// A full-duplex call step with a browser leg: [`Call`](Self::Call) plus both of the above.
    CallWebRtc,
    /// One `sendto` of an SRTP-sized datagram on loopback: the kernel's part of `WebRtcOut`.
    UdpSend,
    /// [`Relay`] fed one trunk PCMU packet (a G.711 client and trunk sharing the law).
    RelayG711,
}

impl WorkloadName {
    /// Every workload, in the order the README lists them.
    pub const ALL: [WorkloadName; 19] = [
        WorkloadName::G711Mu,
        WorkloadName::G711A,
        WorkloadName::OpusToG711,
        WorkloadName::G711ToOpus,
        WorkloadName::Call,
        WorkloadName::LibopusDecode,
        WorkloadName::LibopusEncode,
        WorkloadName::Libopus,
        WorkloadName::OpusToG711Narrowband,
        WorkloadName::CallNarrowband,
        WorkloadName::LibopusDecodeNarrowband,
        WorkloadName::LibopusNarrowband,
        WorkloadName::LibopusEncodeComplexity0,
        WorkloadName::WebRtcSetup,
        WorkloadName::WebRtcIn,
        WorkloadName::WebRtcOut,
        WorkloadName::CallWebRtc,
        WorkloadName::UdpSend,
        WorkloadName::RelayG711,
    ];

    /// The name used on command lines and in bench ids.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadName::G711Mu => "g711_mu",
            WorkloadName::G711A => "g711_a",
            WorkloadName::OpusToG711 => "opus_to_g711",
            WorkloadName::G711ToOpus => "g711_to_opus",
            WorkloadName::Call => "call_full_duplex",
            WorkloadName::LibopusDecode => "libopus_decode",
            WorkloadName::LibopusEncode => "libopus_encode",
            WorkloadName::Libopus => "libopus_decode_encode",
            WorkloadName::OpusToG711Narrowband => "opus_to_g711_nb",
            WorkloadName::CallNarrowband => "call_full_duplex_nb",
            WorkloadName::LibopusDecodeNarrowband => "libopus_decode_nb",
            WorkloadName::LibopusNarrowband => "libopus_decode_encode_nb",
            WorkloadName::LibopusEncodeComplexity0 => "libopus_encode_c0",
            WorkloadName::WebRtcSetup => "webrtc_setup",
            WorkloadName::WebRtcIn => "webrtc_in",
            WorkloadName::WebRtcOut => "webrtc_out",
            WorkloadName::CallWebRtc => "call_full_duplex_webrtc",
            WorkloadName::UdpSend => "udp_send",
            WorkloadName::RelayG711 => "relay_g711",
        }
    }

    /// The workload called `name`, if there is one.
    pub fn parse(name: &str) -> Option<WorkloadName> {
        WorkloadName::ALL.into_iter().find(|w| w.as_str() == name)
    }

    /// A fresh instance of this workload, fed from `fixtures`.
    pub fn build(self, f: &Fixtures) -> Box<dyn Workload> {
        use ClientAudio::{Browser, BrowserNarrowband as Narrow};
        match self {
            WorkloadName::G711Mu => Box::new(G711Frame::new(G711Law::Mu, f)),
            WorkloadName::G711A => Box::new(G711Frame::new(G711Law::A, f)),
            WorkloadName::OpusToG711 => Box::new(PipelineStep::opus_to_g711(f, Browser)),
            WorkloadName::G711ToOpus => Box::new(PipelineStep::g711_to_opus(f)),
            WorkloadName::Call => Box::new(CallStep::new(f, Browser)),
            WorkloadName::LibopusDecode => Box::new(BareOpus::new(f, Browser, Bare::Decode)),
            WorkloadName::LibopusEncode => Box::new(BareOpus::new(f, Browser, Bare::Encode)),
            WorkloadName::Libopus => Box::new(BareOpus::new(f, Browser, Bare::DecodeEncode)),
            WorkloadName::OpusToG711Narrowband => Box::new(PipelineStep::opus_to_g711(f, Narrow)),
            WorkloadName::CallNarrowband => Box::new(CallStep::new(f, Narrow)),
            WorkloadName::LibopusDecodeNarrowband => {
                Box::new(BareOpus::new(f, Narrow, Bare::Decode))
            }
            WorkloadName::LibopusNarrowband => {
                Box::new(BareOpus::new(f, Narrow, Bare::DecodeEncode))
            }
            WorkloadName::LibopusEncodeComplexity0 => Box::new(complexity_0(f)),
            WorkloadName::WebRtcSetup => Box::new(Setup::new()),
            WorkloadName::WebRtcIn => Box::new(Leg::new(f, LegWork::In)),
            WorkloadName::WebRtcOut => Box::new(Leg::new(f, LegWork::Out)),
            WorkloadName::CallWebRtc => Box::new(Leg::new(f, LegWork::Call)),
            WorkloadName::UdpSend => Box::new(UdpSend::new(f)),
            WorkloadName::RelayG711 => Box::new(PipelineStep::relay(f)),
        }
    }
}

/// G.711 alone: encode a 20 ms frame of speech, decode it back.
#[derive(Debug)]
pub struct G711Frame {
    law: G711Law,
    frames: Vec<[i16; FRAME]>,
    next: usize,
    codes: [u8; FRAME],
    decoded: [i16; FRAME],
}

impl G711Frame {
    /// Encodes and decodes the fixture's 8 kHz speech with `law`.
    pub fn new(law: G711Law, fixtures: &Fixtures) -> G711Frame {
        G711Frame {
            law,
            frames: fixtures.speech_8k.clone(),
            next: 0,
            codes: [0; FRAME],
            decoded: [0; FRAME],
        }
    }
}

impl Workload for G711Frame {
    #[inline]
    fn step(&mut self) -> usize {
        let frame = &self.frames[self.next];
        self.next = (self.next + 1) % self.frames.len();
        self.law.encode(frame, &mut self.codes);
        self.law.decode(&self.codes, &mut self.decoded);
        self.decoded[FRAME - 1] as usize
    }
}

/// What a media shard calls on a pipeline per packet; lets one step type drive either direction.
pub trait Pipeline {
    /// [`OpusToG711::push`] or [`G711ToOpus::push`].
    fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: impl FnMut(&[u8]),
    );
    /// [`OpusToG711::poll_timeout`] or [`G711ToOpus::poll_timeout`].
    fn poll_timeout(&self) -> Option<Instant>;
    /// [`OpusToG711::handle_timeout`] or [`G711ToOpus::handle_timeout`].
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch, emit: impl FnMut(&[u8]));
    /// The pipeline's counters.
    fn stats(&self) -> &PipelineStats;
}

impl Pipeline for OpusToG711 {
    #[inline]
    fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: impl FnMut(&[u8]),
    ) {
        OpusToG711::push(self, now, datagram, scratch, emit);
    }
    #[inline]
    fn poll_timeout(&self) -> Option<Instant> {
        OpusToG711::poll_timeout(self)
    }
    #[inline]
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch, emit: impl FnMut(&[u8])) {
        OpusToG711::handle_timeout(self, now, scratch, emit);
    }
    fn stats(&self) -> &PipelineStats {
        OpusToG711::stats(self)
    }
}

impl Pipeline for Relay {
    #[inline]
    fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: impl FnMut(&[u8]),
    ) {
        Relay::push(self, now, datagram, scratch, emit);
    }
    #[inline]
    fn poll_timeout(&self) -> Option<Instant> {
        Relay::poll_timeout(self)
    }
    #[inline]
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch, emit: impl FnMut(&[u8])) {
        Relay::handle_timeout(self, now, scratch, emit);
    }
    fn stats(&self) -> &PipelineStats {
        Relay::stats(self)
    }
}

impl Pipeline for G711ToOpus {
    #[inline]
    fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: impl FnMut(&[u8]),
    ) {
        G711ToOpus::push(self, now, datagram, scratch, emit);
    }
    #[inline]
    fn poll_timeout(&self) -> Option<Instant> {
        G711ToOpus::poll_timeout(self)
    }
    #[inline]
    fn handle_timeout(&mut self, now: Instant, scratch: &mut Scratch, emit: impl FnMut(&[u8])) {
        G711ToOpus::handle_timeout(self, now, scratch, emit);
    }
    fn stats(&self) -> &PipelineStats {
        G711ToOpus::stats(self)
    }
}

/// One direction of a call in its steady state: each step delivers the next packet 20 ms after
/// the previous one, then does what a shard does after a packet (check the pipeline's timer).
/// Sending is not included: output packets are only counted.
pub struct PipelineStep<P> {
    direction: Direction<P>,
    /// What the shard would lend the pipeline.
    scratch: Box<Scratch>,
}

impl PipelineStep<OpusToG711> {
    /// Client → trunk: the browser's Opus in, PCMU out.
    pub fn opus_to_g711(fixtures: &Fixtures, audio: ClientAudio) -> Self {
        PipelineStep {
            direction: Direction::opus_to_g711(fixtures, audio),
            scratch: Box::new(Scratch::new()),
        }
    }
}

impl PipelineStep<G711ToOpus> {
    /// Trunk → client: PCMU in, Opus at the pipeline's default settings out.
    pub fn g711_to_opus(fixtures: &Fixtures) -> Self {
        PipelineStep {
            direction: Direction::g711_to_opus(fixtures),
            scratch: Box::new(Scratch::new()),
        }
    }
}

impl PipelineStep<Relay> {
    /// A relayed G.711 call's trunk → client direction: PCMU in, PCMU out, headers rewritten.
    pub fn relay(fixtures: &Fixtures) -> Self {
        PipelineStep {
            direction: Direction::relay(fixtures),
            scratch: Box::new(Scratch::new()),
        }
    }
}

impl<P: Pipeline> PipelineStep<P> {
    /// The pipeline's counters, to check that the bench ran in the steady state it claims.
    pub fn stats(&self) -> &PipelineStats {
        self.direction.pipeline.stats()
    }
}

impl<P: Pipeline> Workload for PipelineStep<P> {
    #[inline]
    fn step(&mut self) -> usize {
        self.direction.step(&mut self.scratch)
    }
}

/// One 20 ms step of a call: a client packet towards the trunk and a trunk packet towards the
/// client, as the shard that owns the call would handle them: both in the shard's one scratch.
pub struct CallStep {
    to_trunk: Direction<OpusToG711>,
    to_client: Direction<G711ToOpus>,
    scratch: Box<Scratch>,
}

impl CallStep {
    /// Both directions of one call, on the fixtures.
    pub fn new(fixtures: &Fixtures, audio: ClientAudio) -> CallStep {
        CallStep {
            to_trunk: Direction::opus_to_g711(fixtures, audio),
            to_client: Direction::g711_to_opus(fixtures),
            scratch: Box::new(Scratch::new()),
        }
    }

    /// Counters of the client → trunk and trunk → client directions.
    pub fn stats(&self) -> (&PipelineStats, &PipelineStats) {
        (
            self.to_trunk.pipeline.stats(),
            self.to_client.pipeline.stats(),
        )
    }
}

impl Workload for CallStep {
    #[inline]
    fn step(&mut self) -> usize {
        self.to_trunk.step(&mut self.scratch) + self.to_client.step(&mut self.scratch)
    }
}

/// libopus with nothing around it: the codec work a call step cannot avoid, for comparison.
///
/// Decoding is the client's packet to 8 kHz, encoding the trunk's G.711-decoded audio, with the
/// same settings as the pipeline (checked by a test: the packets are identical).
pub struct BareOpus {
    decoder: Option<Decoder>,
    encoder: Option<Encoder>,
    opus: Vec<Vec<u8>>,
    pcm: Vec<[i16; FRAME]>,
    next: usize,
    decoded: [i16; MAX_FRAME_SAMPLES_8K],
    packet: [u8; MAX_PACKET_LEN],
}

impl BareOpus {
    /// Decodes `audio`, encodes the trunk's audio, or both, per step.
    pub fn new(fixtures: &Fixtures, audio: ClientAudio, work: Bare) -> BareOpus {
        BareOpus::with_settings(fixtures, audio, work, &OpusSettings::default())
    }

    /// As [`new`](Self::new), encoding with `settings` instead of the pipeline's defaults.
    pub fn with_settings(
        fixtures: &Fixtures,
        audio: ClientAudio,
        work: Bare,
        settings: &OpusSettings,
    ) -> BareOpus {
        let decode = matches!(work, Bare::Decode | Bare::DecodeEncode);
        let encode = matches!(work, Bare::Encode | Bare::DecodeEncode);
        BareOpus {
            decoder: decode.then(|| {
                Decoder::new(SampleRate::Hz8000, Channels::Mono).expect("libopus decoder")
            }),
            encoder: encode
                .then(|| opus_encoder(SampleRate::Hz8000, settings, Bandwidth::Fullband)),
            opus: fixtures.client_opus(audio).map(<[u8]>::to_vec).collect(),
            pcm: fixtures.trunk_pcm.clone(),
            next: 0,
            decoded: [0; MAX_FRAME_SAMPLES_8K],
            packet: [0; MAX_PACKET_LEN],
        }
    }

    /// The first `len` bytes of the last packet encoded.
    pub fn last_packet(&self, len: usize) -> &[u8] {
        &self.packet[RTP_HEADER_LEN..RTP_HEADER_LEN + len]
    }
}

/// The bare encoder at complexity 0, otherwise at the pipeline's defaults.
pub fn complexity_0(fixtures: &Fixtures) -> BareOpus {
    let settings = OpusSettings {
        complexity: 0,
        ..OpusSettings::default()
    };
    BareOpus::with_settings(fixtures, ClientAudio::Browser, Bare::Encode, &settings)
}

/// What a [`BareOpus`] does per step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bare {
    /// Decode a client packet to 8 kHz.
    Decode,
    /// Encode a trunk frame.
    Encode,
    /// Both.
    DecodeEncode,
}

impl Workload for BareOpus {
    #[inline]
    fn step(&mut self) -> usize {
        let i = self.next;
        self.next = (i + 1) % self.opus.len();
        let mut result = 0;
        if let Some(decoder) = &mut self.decoder {
            let packet = Packet::try_from(&self.opus[i][..]).expect("fixture packet is not empty");
            let out = MutSignals::try_from(&mut self.decoded[..]).expect("buffer is not empty");
            result += decoder
                .decode(Some(packet), out, false)
                .expect("fixture packet decodes");
        }
        if let Some(encoder) = &self.encoder {
            result += encoder
                // Leaves room for a header, as the pipeline does: libopus sees the same limit.
                .encode(&self.pcm[i], &mut self.packet[RTP_HEADER_LEN..])
                .expect("a 20 ms frame encodes");
        }
        result
    }
}

impl std::fmt::Debug for BareOpus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareOpus")
            .field("decode", &self.decoder.is_some())
            .field("encode", &self.encoder.is_some())
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// The client → trunk configuration a gateway would build after negotiating PCMU.
pub fn opus_to_g711_config() -> OpusToG711Config {
    OpusToG711Config {
        opus_payload_type: OPUS_PAYLOAD_TYPE,
        event_payload_type_in: Some(CLIENT_EVENT_PAYLOAD_TYPE),
        law: G711Law::Mu,
        event_payload_type_out: Some(TRUNK_EVENT_PAYLOAD_TYPE),
        output: OutputStream {
            ssrc: 0x5EED_0001,
            first_sequence: 7,
            first_timestamp: 70,
        },
        timing: Timing::default(),
    }
}

/// The trunk → client configuration, with the pipeline's default Opus settings.
pub fn g711_to_opus_config() -> G711ToOpusConfig {
    G711ToOpusConfig {
        law: G711Law::Mu,
        comfort_noise_payload_type: Some(COMFORT_NOISE_PAYLOAD_TYPE),
        event_payload_type_in: Some(TRUNK_EVENT_PAYLOAD_TYPE),
        opus_payload_type: OPUS_PAYLOAD_TYPE,
        event_payload_type_out: Some(CLIENT_EVENT_PAYLOAD_TYPE),
        opus: OpusSettings::default(),
        output: OutputStream {
            ssrc: 0x5EED_0002,
            first_sequence: 9,
            first_timestamp: 90,
        },
        timing: Timing::default(),
    }
}

/// A pipeline and its input: the per-call part of a [`PipelineStep`] or [`CallStep`].
struct Direction<P> {
    pipeline: P,
    input: RtpLoop,
    now: Instant,
}

impl Direction<OpusToG711> {
    fn opus_to_g711(fixtures: &Fixtures, audio: ClientAudio) -> Self {
        let pipeline = OpusToG711::new(&opus_to_g711_config()).expect("default config is valid");
        Direction {
            pipeline,
            input: RtpLoop::new(fixtures.client(audio), 6 * FRAME as u32),
            now: Instant::now(),
        }
    }
}

impl Direction<G711ToOpus> {
    fn g711_to_opus(fixtures: &Fixtures) -> Self {
        let pipeline = G711ToOpus::new(&g711_to_opus_config()).expect("default config is valid");
        Direction {
            pipeline,
            input: RtpLoop::new(&fixtures.trunk_rtp, FRAME as u32),
            now: Instant::now(),
        }
    }
}

impl Direction<Relay> {
    fn relay(fixtures: &Fixtures) -> Self {
        let pipeline = Relay::new(&relay_config());
        Direction {
            pipeline,
            input: RtpLoop::new(&fixtures.trunk_rtp, FRAME as u32),
            now: Instant::now(),
        }
    }
}

/// The trunk → client configuration of a relayed PCMU call.
pub fn relay_config() -> RelayConfig {
    RelayConfig {
        audio: (0, 0),
        event_in: Some(TRUNK_EVENT_PAYLOAD_TYPE),
        event_out: Some(CLIENT_EVENT_PAYLOAD_TYPE),
        comfort_noise: Some((COMFORT_NOISE_PAYLOAD_TYPE, COMFORT_NOISE_PAYLOAD_TYPE)),
        clock_rate: 8_000,
        output: OutputStream {
            ssrc: 0x5EED_0003,
            first_sequence: 11,
            first_timestamp: 110,
        },
    }
}

impl<P: Pipeline> Direction<P> {
    #[inline]
    fn step(&mut self, scratch: &mut Scratch) -> usize {
        let mut sent = 0;
        let datagram = self.input.next_datagram();
        self.pipeline
            .push(self.now, datagram, scratch, |packet| sent += packet.len());
        if self.pipeline.poll_timeout().is_some_and(|t| t <= self.now) {
            self.pipeline
                .handle_timeout(self.now, scratch, |packet| sent += packet.len());
        }
        self.now += PTIME;
        sent
    }
}

#[cfg(test)]
mod tests {
    use landline_codecs::rtp::RtpPacket;

    use super::*;
    use crate::fixtures::PACKETS;

    /// Over two and a half laps of the fixture the pipelines see a clean, continuous stream:
    /// no loss, no restart, no concealment, one packet out per packet in.
    #[test]
    fn pipelines_run_in_steady_state() {
        for audio in [ClientAudio::Browser, ClientAudio::BrowserNarrowband] {
            let mut call = CallStep::new(Fixtures::get(), audio);
            let steps = 2 * PACKETS + PACKETS / 2;
            for _ in 0..steps {
                assert!(call.step() > 0);
            }
            check_steady(call.stats().0, steps);
            check_steady(call.stats().1, steps);
        }
    }

    fn check_steady(stats: &PipelineStats, steps: usize) {
        assert_eq!(stats.packets_in, steps as u64);
        assert_eq!(stats.packets_out, steps as u64);
        assert_eq!(
            stats.restarts + stats.lost + stats.late + stats.realigned,
            0
        );
        assert_eq!(
            stats.decode_errors + stats.encode_errors + stats.malformed,
            0
        );
        assert_eq!(stats.concealed_samples + stats.noise_samples, 0);
    }

    /// The bare encoder is configured like the pipeline's: same input, same packets.
    #[test]
    fn bare_encoder_matches_pipeline() {
        let fixtures = Fixtures::get();
        let mut bare = BareOpus::new(fixtures, ClientAudio::Browser, Bare::Encode);
        let mut pipeline = G711ToOpus::new(&g711_to_opus_config()).expect("config");
        let mut scratch = Scratch::new();
        let now = Instant::now();
        for (i, datagram) in fixtures.trunk_rtp.iter().take(100).enumerate() {
            let len = bare.step();
            let mut emitted = Vec::new();
            pipeline.push(now + PTIME * i as u32, datagram, &mut scratch, |p| {
                emitted = p.to_vec()
            });
            let packet = RtpPacket::parse(&emitted).expect("pipeline emits RTP");
            assert_eq!(packet.payload, bare.last_packet(len), "packet {i}");
        }
    }

    #[test]
    fn every_workload_runs() {
        for name in WorkloadName::ALL {
            assert_eq!(WorkloadName::parse(name.as_str()), Some(name));
            let mut workload = name.build(Fixtures::get());
            let mut done = 0;
            while done < 10 {
                let n = workload.prepare(10 - done);
                for _ in 0..n {
                    workload.step();
                }
                done += n;
            }
        }
    }
}
