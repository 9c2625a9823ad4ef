//! landline's media core: everything a call's audio goes through, with no I/O and no clock.
//!
//! - [`g711`]: µ-law and A-law, bit-exact to the ITU-T G.191 reference.
//! - [`opus`]: libopus at 8 kHz, so the trunk side needs no resampler.
//! - [`rtp`], [`telephone_event`], [`comfort_noise`]: the packet formats around them.
//! - [`pipeline`]: [`OpusToG711`] and [`G711ToOpus`], one value per direction per call, and the
//!   [`Scratch`] a media thread lends them.
//!
//! Time is always an argument (`Instant`), never read: tests run faster than real time and the
//! media shards decide when things happen.

pub mod comfort_noise;
mod error;
pub mod g711;
pub mod g711_plc;
pub mod opus;
pub mod pipeline;
pub mod rtp;
pub mod telephone_event;

pub use error::Error;
pub use g711::G711Law;
pub use opus::{MAX_FRAME_SAMPLES_8K, MAX_PACKET_LEN, OpusDecoder, OpusEncoder, OpusSettings};
pub use pipeline::{
    G711ToOpus, G711ToOpusConfig, OpusToG711, OpusToG711Config, OutputStream, PipelineStats, Relay,
    RelayConfig, Scratch, Timing,
};
