//! Errors of the media core. Per-packet errors carry no allocation: they are counted and dropped.

/// What can go wrong in the media core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A datagram shorter than its RTP header says it is.
    #[error("RTP packet truncated or its header lengths are inconsistent")]
    TruncatedRtp,
    /// A datagram whose version bits are not RTP version 2.
    #[error("not an RTP version 2 packet")]
    NotRtp,
    /// A telephone-event payload shorter than 4 bytes.
    #[error("telephone-event payload shorter than 4 bytes")]
    BadTelephoneEvent,
    /// An empty comfort-noise payload.
    #[error("comfort-noise payload is empty")]
    BadComfortNoise,
    /// An audio payload longer than the pipeline's 120 ms buffer.
    #[error("audio payload longer than 120 ms")]
    PayloadTooLong,
    /// A character that is not a DTMF digit (0-9, *, #, A-D).
    #[error("not a DTMF digit")]
    NotADigit,
    /// A digit was to be sent on a stream that negotiated no telephone-event.
    #[error("telephone-event was not negotiated on this leg")]
    NoTelephoneEvent,
    /// libopus rejected a packet or a buffer.
    #[error("opus: {0}")]
    Opus(audiopus::Error),
    /// libopus refused to create or configure a codec.
    #[error("opus setup failed: {0}")]
    OpusSetup(audiopus::Error),
    /// A setting outside what the codec supports.
    #[error("unsupported setting: {0}")]
    BadSetting(&'static str),
}
