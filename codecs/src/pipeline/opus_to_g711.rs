//! Client → trunk: RTP Opus (48 kHz clock, any frame size) to RTP G.711 (8 kHz, 20 ms).

use std::time::Instant;

use super::engine::{Depacketizer, Engine, FRAME, Packetizer, PayloadTypes};
use super::{OutputStream, PipelineStats, Scratch, Timing};
use crate::opus::OpusDecoder;
use crate::{Error, G711Law};

/// What an [`OpusToG711`] needs to know: the negotiated payload types of both legs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpusToG711Config {
    /// The client's dynamic payload type for `opus/48000/2`.
    pub opus_payload_type: u8,
    /// The client's payload type for `telephone-event/48000`, if negotiated.
    pub event_payload_type_in: Option<u8>,
    /// The trunk's law; the static payload type (0 or 8) follows from it.
    pub law: G711Law,
    /// The trunk's payload type for `telephone-event/8000`, if negotiated.
    pub event_payload_type_out: Option<u8>,
    /// Our stream towards the trunk.
    pub output: OutputStream,
    /// Jitter tolerance and gap filling.
    pub timing: Timing,
}

/// One call's client → trunk direction: decodes Opus straight to 8 kHz (in-band FEC or
/// concealment for lost packets), encodes G.711, and rewrites SSRC, sequence and timestamps.
pub struct OpusToG711 {
    engine: Engine<OpusIn, G711Out>,
}

impl OpusToG711 {
    /// A pipeline for one call; the only allocation is libopus's decoder state.
    pub fn new(config: &OpusToG711Config) -> Result<Self, Error> {
        let payload_types = PayloadTypes {
            audio_in: config.opus_payload_type,
            event_in: config.event_payload_type_in,
            comfort_noise_in: None,
            audio_out: config.law.payload_type(),
            event_out: config.event_payload_type_out,
            event_in_alt: None,
            audio_in_alt: None,
        };
        let engine = Engine::new(
            OpusIn {
                decoder: OpusDecoder::new(8_000)?,
            },
            G711Out { law: config.law },
            payload_types,
            config.output,
            config.timing,
        );
        Ok(OpusToG711 { engine })
    }

    /// Takes one datagram from the client; `emit` is called with each packet for the trunk.
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

    /// Fills frames the client owes by now, keeping 20 ms packets flowing to the trunk.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) {
        self.engine.handle_timeout(now, scratch, &mut emit);
    }

    /// Sends a DTMF digit to the trunk as RFC 4733 events (a SIP INFO digit, say); further
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

    /// Sends the G.711 audio with `payload_type` rather than the law's static one: the type
    /// the trunk's SDP gave it (a dynamic-looking mapping some carriers answer with).
    pub fn send_audio_as(&mut self, payload_type: u8) {
        self.engine.send_audio_as(payload_type);
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

struct OpusIn {
    decoder: OpusDecoder,
}

impl Depacketizer for OpusIn {
    const CLOCK_RATIO: u32 = 6;

    fn samples(&self, payload: &[u8]) -> Result<usize, Error> {
        self.decoder.packet_samples(payload)
    }

    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, Error> {
        self.decoder.decode(payload, out)
    }

    fn recover(&mut self, next: &[u8], out: &mut [i16]) -> Result<bool, Error> {
        self.decoder.decode_fec(next, out).map(|_| true)
    }

    fn conceal(&mut self, out: &mut [i16]) -> Result<(), Error> {
        self.decoder.conceal(out).map(|_| ())
    }

    fn reset(&mut self) {
        // OPUS_RESET_STATE cannot fail on a valid decoder; if it ever did, the old state only
        // colours the first frames of the new stream.
        let _ = self.decoder.reset();
    }
}

struct G711Out {
    law: G711Law,
}

impl Packetizer for G711Out {
    const CLOCK_RATIO: u32 = 1;

    fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> Result<Option<usize>, Error> {
        self.law.encode(pcm, &mut out[..FRAME]);
        Ok(Some(FRAME))
    }
}
