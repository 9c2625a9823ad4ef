//! Trunk → client: RTP G.711 (any ptime, comfort noise) to RTP Opus (20 ms, 48 kHz clock).

use std::time::Instant;

use super::engine::{Depacketizer, Engine, FRAME, Packetizer, PayloadTypes};
use super::{OutputStream, PipelineStats, Scratch, Timing};
use crate::g711_plc::G711Concealer;
use crate::opus::{OpusEncoder, OpusSettings};
use crate::{Error, G711Law};

/// What a [`G711ToOpus`] needs to know: the negotiated payload types and the encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct G711ToOpusConfig {
    /// The trunk's law; the static payload type (0 or 8) follows from it.
    pub law: G711Law,
    /// The trunk's payload type for comfort noise (RFC 3389, usually 13), if negotiated.
    pub comfort_noise_payload_type: Option<u8>,
    /// The trunk's payload type for `telephone-event/8000`, if negotiated.
    pub event_payload_type_in: Option<u8>,
    /// The client's dynamic payload type for `opus/48000/2`.
    pub opus_payload_type: u8,
    /// The client's payload type for `telephone-event/48000`, if negotiated.
    pub event_payload_type_out: Option<u8>,
    /// How the Opus encoder is tuned.
    pub opus: OpusSettings,
    /// Our stream towards the client.
    pub output: OutputStream,
    /// Jitter tolerance and gap filling.
    pub timing: Timing,
}

/// One call's trunk → client direction: decodes G.711 (concealing lost packets), encodes
/// narrowband Opus from the 8 kHz signal, and rewrites SSRC, sequence and timestamps.
pub struct G711ToOpus {
    engine: Engine<G711In, OpusOut>,
}

impl G711ToOpus {
    /// A pipeline for one call; the only allocation is libopus's encoder state.
    pub fn new(config: &G711ToOpusConfig) -> Result<Self, Error> {
        let payload_types = PayloadTypes {
            audio_in: config.law.payload_type(),
            event_in: config.event_payload_type_in,
            comfort_noise_in: config.comfort_noise_payload_type,
            audio_out: config.opus_payload_type,
            event_out: config.event_payload_type_out,
            event_in_alt: None,
            audio_in_alt: None,
        };
        let engine = Engine::new(
            G711In {
                law: config.law,
                concealer: G711Concealer::default(),
            },
            OpusOut {
                encoder: OpusEncoder::new(8_000, &config.opus)?,
                dtx: config.opus.dtx,
            },
            payload_types,
            config.output,
            config.timing,
        );
        Ok(G711ToOpus { engine })
    }

    /// Takes one datagram from the trunk; `emit` is called with each packet for the client.
    /// The packet is borrowed from `scratch`, valid until `emit` returns.
    pub fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) {
        self.engine.push(now, datagram, scratch, &mut emit);
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called, if input is awaited.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.engine.poll_timeout()
    }

    /// Fills frames the trunk owes by now (loss, or silence after comfort noise).
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) {
        self.engine.handle_timeout(now, scratch, &mut emit);
    }

    /// Sends a DTMF digit to the client as RFC 4733 events (a SIP INFO digit, say); further
    /// reports follow from [`handle_timeout`](Self::handle_timeout).
    pub fn send_digit(
        &mut self,
        now: Instant,
        digit: char,
        duration: std::time::Duration,
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        self.engine
            .send_digit(now, digit, duration, scratch, &mut emit)
    }

    /// Counters for this direction.
    pub fn stats(&self) -> &PipelineStats {
        self.engine.stats()
    }

    /// Also takes `payload_type` as telephone-event input, besides the configured one: the type
    /// our own SDP named, when the far side's SDP named another.
    pub fn accept_event_payload_type(&mut self, payload_type: u8) {
        self.engine.accept_event_payload_type(payload_type);
    }

    /// Also takes `payload_type` as the trunk's audio, besides the law's static type: the type
    /// the trunk's SDP gave the law when it mapped it to another.
    pub fn accept_audio_payload_type(&mut self, payload_type: u8) {
        self.engine.accept_audio_payload_type(payload_type);
    }

    /// Where our output stream goes on (SSRC, next sequence number, next timestamp), for a
    /// pipeline that replaces this one mid-call (a codec change) to continue it.
    pub fn next_output(&self, _now: Instant) -> OutputStream {
        self.engine.next_output()
    }

    /// Continues another pipeline's output stream (from its `next_output`) instead of the
    /// configured one; call before the first packet.
    pub fn continue_output(&mut self, stream: OutputStream) {
        self.engine.continue_output(stream);
    }
}

struct G711In {
    law: G711Law,
    concealer: G711Concealer,
}

impl Depacketizer for G711In {
    const CLOCK_RATIO: u32 = 1;

    fn samples(&self, payload: &[u8]) -> Result<usize, Error> {
        Ok(payload.len())
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, Error> {
        let out = out.get_mut(..payload.len()).ok_or(Error::PayloadTooLong)?;
        self.law.decode(payload, out);
        self.concealer.receive(out);
        Ok(payload.len())
    }

    fn recover(&mut self, _next: &[u8], _out: &mut [i16]) -> Result<bool, Error> {
        Ok(false)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<(), Error> {
        self.concealer.conceal(out);
        Ok(())
    }

    fn reset(&mut self) {
        self.concealer.reset();
    }
}

struct OpusOut {
    encoder: OpusEncoder,
    dtx: bool,
}

impl Packetizer for OpusOut {
    const CLOCK_RATIO: u32 = 6;

    fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> Result<Option<usize>, Error> {
        let len = self.encoder.encode(pcm, out)?;
        // With DTX, libopus marks a frame not worth sending by making it 2 bytes or less.
        Ok(if self.dtx && len <= 2 {
            None
        } else {
            Some(len)
        })
    }
}
