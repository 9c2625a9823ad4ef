//! Working memory a pipeline borrows while it handles one packet or timeout, shared by all the
//! calls a media thread runs.

use std::fmt;

use crate::{MAX_FRAME_SAMPLES_8K, MAX_PACKET_LEN};

/// The buffers a pipeline works in while it handles one packet or one timeout: decoded audio and
/// the packet being written for `emit`.
///
/// Nothing in them carries from one call of a pipeline to the next, so they need not live in
/// each call: a media thread that runs many calls one packet at a time owns one `Scratch` and
/// lends it to whichever pipeline it is running. That keeps the state kept per call (and warm in
/// cache per call) to what really lasts between packets. Any `Scratch` works with any pipeline;
/// its contents on entry do not matter.
///
/// A packet handed to `emit` is borrowed from the `Scratch`, so a pipeline run from inside
/// another's `emit` (two chained in one thread) needs a `Scratch` of its own.
pub struct Scratch {
    /// 8 kHz PCM: a decoded payload, or the concealment or noise that stands in for one.
    pub(crate) decoded: [i16; MAX_FRAME_SAMPLES_8K],
    /// The output packet, header and payload.
    pub(crate) packet: [u8; MAX_PACKET_LEN],
}

impl Scratch {
    /// Zeroed buffers; 3,420 bytes, so a long-lived owner may want to box it.
    pub fn new() -> Self {
        Scratch {
            decoded: [0; MAX_FRAME_SAMPLES_8K],
            packet: [0; MAX_PACKET_LEN],
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Scratch::new()
    }
}

impl fmt::Debug for Scratch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents are leftovers of whichever pipeline ran last: meaningless, and long.
        f.debug_struct("Scratch").finish_non_exhaustive()
    }
}
