//! The built-in tone number's media: a steady sine, sent every 20 ms in the client's codec.

use std::time::{Duration, Instant};

use landline_codecs::rtp::{RTP_HEADER_LEN, RtpHeader};
use landline_codecs::{MAX_PACKET_LEN, OpusEncoder, OpusSettings, OutputStream};

use super::{LegCodec, MediaError};

const FRAME: usize = 160;
const FRAME_TIME: Duration = Duration::from_millis(20);
/// -10 dBFS: clearly audible, far from clipping.
const AMPLITUDE: f64 = 10_362.0;

/// Generates a tone stream in a leg's codec, paced by the shard's clock.
pub(crate) struct ToneStream {
    encoder: ToneEncoder,
    payload_type: u8,
    clock_ratio: u32,
    stream: OutputStream,
    /// Phase step per 8 kHz sample, and the phase now.
    step: f64,
    phase: f64,
    next_due: Option<Instant>,
    packet: [u8; MAX_PACKET_LEN],
}

enum ToneEncoder {
    Opus(Box<OpusEncoder>),
    G711(landline_codecs::G711Law),
}

impl ToneStream {
    pub(crate) fn new(
        codec: LegCodec,
        hz: u32,
        opus: &OpusSettings,
        stream: OutputStream,
    ) -> Result<Self, MediaError> {
        let (encoder, payload_type, clock_ratio) = match codec {
            LegCodec::Opus { payload_type, .. } => (
                ToneEncoder::Opus(Box::new(OpusEncoder::new(8_000, opus)?)),
                payload_type,
                6,
            ),
            LegCodec::G711 {
                law, payload_type, ..
            } => (ToneEncoder::G711(law), payload_type, 1),
        };
        Ok(ToneStream {
            encoder,
            payload_type,
            clock_ratio,
            stream,
            step: 2.0 * std::f64::consts::PI * f64::from(hz.min(3900)) / 8000.0,
            phase: 0.0,
            next_due: None,
            packet: [0; MAX_PACKET_LEN],
        })
    }

    /// When the next frame is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.next_due
    }

    /// Sends every frame due by `now` (at most a few after a stall; the rest are skipped).
    pub(crate) fn handle_timeout(&mut self, now: Instant, mut emit: impl FnMut(&[u8])) {
        let mut due = *self.next_due.get_or_insert(now);
        let mut sent = 0;
        while due <= now && sent < 5 {
            self.send_frame(&mut emit);
            due += FRAME_TIME;
            sent += 1;
        }
        if due <= now {
            due = now + FRAME_TIME;
        }
        self.next_due = Some(due);
    }

    fn send_frame(&mut self, emit: &mut impl FnMut(&[u8])) {
        let mut pcm = [0i16; FRAME];
        for sample in &mut pcm {
            *sample = (AMPLITUDE * self.phase.sin()) as i16;
            self.phase = (self.phase + self.step) % (2.0 * std::f64::consts::PI);
        }
        let body = &mut self.packet[RTP_HEADER_LEN..];
        let len = match &mut self.encoder {
            ToneEncoder::Opus(encoder) => match encoder.encode(&pcm, body) {
                Ok(len) => len,
                Err(_) => return,
            },
            ToneEncoder::G711(law) => {
                law.encode(&pcm, &mut body[..FRAME]);
                FRAME
            }
        };
        let header = RtpHeader {
            marker: false,
            payload_type: self.payload_type,
            sequence: self.stream.first_sequence,
            timestamp: self.stream.first_timestamp,
            ssrc: self.stream.ssrc,
        };
        self.stream.first_sequence = self.stream.first_sequence.wrapping_add(1);
        self.stream.first_timestamp = self
            .stream
            .first_timestamp
            .wrapping_add(FRAME as u32 * self.clock_ratio);
        header.write(&mut self.packet);
        emit(&self.packet[..RTP_HEADER_LEN + len]);
    }
}
