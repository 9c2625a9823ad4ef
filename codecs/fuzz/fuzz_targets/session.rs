//! Turns fuzz input into a session of datagrams and clock steps for either pipeline.
//!
//! Input format, repeated: one control byte, then a datagram whose length is the next byte.
//! Control bit 0 set: advance the clock by (control >> 1) ms and run the timer first.
//! Control bit 1 set: rewrite the datagram into RTP with the pipeline's own payload type, so the
//! fuzzer reaches the codecs instead of stopping at the payload-type check.

use std::time::{Duration, Instant};

use landline_codecs::Scratch;

pub struct Step<'a> {
    pub advance: Option<Duration>,
    pub datagram: &'a [u8],
    pub as_rtp_with_pt: bool,
}

pub fn steps(mut data: &[u8]) -> impl Iterator<Item = Step<'_>> {
    std::iter::from_fn(move || {
        let (&control, rest) = data.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let len = usize::from(len).min(rest.len());
        let (datagram, rest) = rest.split_at(len);
        data = rest;
        Some(Step {
            advance: (control & 1 == 1).then(|| Duration::from_millis(u64::from(control >> 1))),
            datagram,
            as_rtp_with_pt: control & 2 == 2,
        })
    })
}

/// Runs a session through `push`/`timeout` closures, checking every emitted packet is RTP.
/// The session owns the pipeline's scratch, as a media shard does.
pub fn run(
    data: &[u8],
    pt: u8,
    mut push: impl FnMut(Instant, &[u8], &mut Scratch, &mut dyn FnMut(&[u8])),
    mut timeout: impl FnMut(Instant, &mut Scratch, &mut dyn FnMut(&[u8])),
) {
    let mut scratch = Scratch::new();
    let mut now = Instant::now();
    let mut check = |p: &[u8]| {
        assert!(landline_codecs::rtp::RtpPacket::parse(p).is_ok(), "emitted invalid RTP");
    };
    let mut buf = [0u8; 1600];
    for step in steps(data) {
        if let Some(advance) = step.advance {
            now += advance;
            timeout(now, &mut scratch, &mut check);
        }
        let datagram = if step.as_rtp_with_pt && step.datagram.len() >= 12 {
            let n = step.datagram.len().min(buf.len());
            buf[..n].copy_from_slice(&step.datagram[..n]);
            buf[0] = 0x80;
            buf[1] = (buf[1] & 0x80) | pt;
            &buf[..n]
        } else {
            step.datagram
        };
        push(now, datagram, &mut scratch, &mut check);
    }
}
