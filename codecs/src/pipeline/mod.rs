//! The per-call transcoding pipeline: one value per direction per call.
//!
//! [`OpusToG711`] carries a client's Opus towards a G.711 trunk, [`G711ToOpus`] the trunk's audio
//! back; [`Relay`] rewrites headers only, for calls whose legs share a codec. Each is a sans-IO state machine: feed it datagrams with [`push`](OpusToG711::push) and
//! the time with [`handle_timeout`](OpusToG711::handle_timeout) when
//! [`poll_timeout`](OpusToG711::poll_timeout) says; it hands each packet to send to a callback,
//! borrowed from a [`Scratch`] the caller lends it for that step: working memory one media
//! thread shares between all its calls, so what each call keeps is only what lasts between
//! packets. Nothing in it allocates, locks, logs or reads a clock.

mod digits;
mod engine;
mod g711_to_opus;
mod opus_to_g711;
mod relay;
mod scratch;

use std::time::Duration;

pub use g711_to_opus::{G711ToOpus, G711ToOpusConfig};
pub use opus_to_g711::{OpusToG711, OpusToG711Config};
pub use relay::{Relay, RelayConfig};
pub use scratch::Scratch;

/// The identity of an output stream: our SSRC and where its sequence and timestamp start.
///
/// The caller picks them (randomly, per RFC 3550) so the pipeline stays deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputStream {
    /// Our synchronisation source on the output leg.
    pub ssrc: u32,
    /// The first sequence number sent.
    pub first_sequence: u16,
    /// The timestamp of the first sample sent, in the output clock.
    pub first_timestamp: u32,
}

impl OutputStream {
    fn next_sequence(&mut self) -> u16 {
        let sequence = self.first_sequence;
        self.first_sequence = sequence.wrapping_add(1);
        sequence
    }
}

/// How long the pipeline waits for late input, and how it fills when input stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long past a packet's due time to wait before filling its place; packets arriving
    /// later than that are too late. Larger tolerates more jitter, smaller keeps the far side's
    /// jitter buffer fed sooner.
    pub hold: Duration,
    /// How long a run of loss is concealed by the codec before switching to comfort noise.
    pub max_conceal: Duration,
}

impl Timing {
    fn max_conceal_samples(&self) -> usize {
        (self.max_conceal.as_micros() / 125) as usize
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            hold: Duration::from_millis(60),
            max_conceal: Duration::from_millis(100),
        }
    }
}

/// What one direction of a call has seen and done, for metrics and call records.
///
/// Plain counters: the media shard that owns the pipeline publishes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PipelineStats {
    /// Datagrams taken in.
    pub packets_in: u64,
    /// Packets handed out to send.
    pub packets_out: u64,
    /// Datagrams that were not valid RTP, or events and comfort noise with a bad payload.
    pub malformed: u64,
    /// RTP packets with a payload type not negotiated for this direction.
    pub unexpected_payload_type: u64,
    /// Audio payloads the codec could not decode.
    pub decode_errors: u64,
    /// Frames the encoder failed on (never expected; counted to be seen).
    pub encode_errors: u64,
    /// Packets received twice.
    pub duplicates: u64,
    /// Packets that arrived after their place had been filled.
    pub late: u64,
    /// Packets missing from the sequence.
    pub lost: u64,
    /// Times the input stream started anew: an SSRC change or a sequence jump.
    pub restarts: u64,
    /// Packets in sequence but behind the output timeline, which was shifted to fit them.
    pub realigned: u64,
    /// Samples (8 kHz) recovered from redundancy in the next packet (Opus in-band FEC).
    pub recovered_samples: u64,
    /// Samples (8 kHz) produced by the codec's loss concealment.
    pub concealed_samples: u64,
    /// Samples (8 kHz) of comfort noise produced during long gaps.
    pub noise_samples: u64,
    /// Output frames not sent because the encoder suppressed them (DTX).
    pub suppressed_frames: u64,
    /// Telephone-event packets received.
    pub events_in: u64,
    /// Telephone-event packets sent.
    pub events_out: u64,
    /// Comfort-noise packets received.
    pub comfort_noise_in: u64,
}
