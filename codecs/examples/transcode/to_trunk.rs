//! Client → trunk: a browser's Opus stream through `OpusToG711`, heard by a carrier.

use std::time::Instant;

use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::{
    G711Law, MAX_PACKET_LEN, OpusEncoder, OpusSettings, OpusToG711, OpusToG711Config, OutputStream,
    Scratch, Timing,
};

use crate::network::{LossyLink, SplitMix};
use crate::{FRAME_TIME, Outcome, RTP_HEADER_LEN};

/// The browser's payload type for `opus/48000/2` (what Chrome and Firefox offer).
const OPUS_PT: u8 = 111;
/// Samples in 20 ms at 48 kHz.
const FRAME_48K: usize = 960;

/// What a browser's encoder does: Opus at 48 kHz, 20 ms, in-band FEC, complexity 9, about
/// 32 kb/s (Chrome's defaults for a mono voice track).
pub(crate) fn browser_settings(expected_loss_percent: u8) -> OpusSettings {
    OpusSettings {
        bitrate: 32_000,
        complexity: 9,
        inband_fec: true,
        expected_loss_percent,
        dtx: false,
    }
}

/// Runs `pcm` (48 kHz) through the browser, the lossy leg, the real pipeline and a
/// carrier's G.711 decoder; returns the carrier's 8 kHz audio.
pub(crate) fn run(
    pcm: &[i16],
    law: G711Law,
    settings: &OpusSettings,
    link: &mut LossyLink,
    ids: &mut SplitMix,
) -> Result<Outcome, String> {
    let mut encoder = OpusEncoder::new(48_000, settings)
        .map_err(|e| format!("cannot create the browser's Opus encoder: {e}"))?;
    let config = OpusToG711Config {
        opus_payload_type: OPUS_PT,
        event_payload_type_in: None,
        law,
        event_payload_type_out: None,
        output: OutputStream {
            ssrc: ids.next_u64() as u32,
            first_sequence: ids.next_u64() as u16,
            first_timestamp: ids.next_u64() as u32,
        },
        timing: Timing::default(),
    };
    let mut pipeline =
        OpusToG711::new(&config).map_err(|e| format!("cannot create OpusToG711: {e}"))?;
    let mut carrier = Carrier::new(law);
    let mut scratch = Scratch::new();

    let ssrc = ids.next_u64() as u32;
    let first_sequence = ids.next_u64() as u16;
    let first_timestamp = ids.next_u64() as u32;
    let mut datagram = [0u8; RTP_HEADER_LEN + MAX_PACKET_LEN];
    let mut frame = [0i16; FRAME_48K];
    // One frame more than the input fills, so the encoder's look-ahead is flushed out.
    let frames = pcm.len().div_ceil(FRAME_48K) + 1;
    let base = Instant::now();
    for i in 0..frames {
        let now = base + FRAME_TIME * i as u32;
        drive_timers(&mut pipeline, &mut scratch, now, &mut carrier);

        frame.fill(0);
        let start = (i * FRAME_48K).min(pcm.len());
        let end = (start + FRAME_48K).min(pcm.len());
        frame[..end - start].copy_from_slice(&pcm[start..end]);
        let header = RtpHeader {
            marker: i == 0,
            payload_type: OPUS_PT,
            sequence: first_sequence.wrapping_add(i as u16),
            timestamp: first_timestamp.wrapping_add((i * FRAME_48K) as u32),
            ssrc,
        };
        let mut len = header.write(&mut datagram);
        len += encoder
            .encode(&frame, &mut datagram[len..])
            .map_err(|e| format!("browser's Opus encoder failed on frame {i}: {e}"))?;
        if link.drops_next() {
            continue;
        }
        pipeline.push(now, &datagram[..len], &mut scratch, |packet| {
            carrier.receive(packet)
        });
    }
    Ok(Outcome {
        stats: *pipeline.stats(),
        audio: carrier.into_audio(),
        rate: 8_000,
    })
}

/// Calls `handle_timeout` for every deadline up to `now`, as a media shard's loop would.
fn drive_timers(
    pipeline: &mut OpusToG711,
    scratch: &mut Scratch,
    now: Instant,
    carrier: &mut Carrier,
) {
    while let Some(deadline) = pipeline.poll_timeout().filter(|&d| d <= now) {
        pipeline.handle_timeout(deadline, scratch, |packet| carrier.receive(packet));
    }
}

/// A carrier's receiver: places each G.711 packet by its RTP timestamp, so a gap the pipeline
/// leaves shows as silence and a shifted timeline shows as a shift.
struct Carrier {
    law: G711Law,
    first_timestamp: Option<u32>,
    audio: Vec<i16>,
    misplaced: u64,
}

impl Carrier {
    fn new(law: G711Law) -> Self {
        Carrier {
            law,
            first_timestamp: None,
            audio: Vec::new(),
            misplaced: 0,
        }
    }

    fn receive(&mut self, datagram: &[u8]) {
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.misplaced += 1;
            return;
        };
        if packet.payload_type != self.law.payload_type() {
            self.misplaced += 1;
            return;
        }
        let first = *self.first_timestamp.get_or_insert(packet.timestamp);
        let offset = packet.timestamp.wrapping_sub(first) as i32;
        // A packet before the first one, or absurdly far ahead, cannot be placed.
        if !(0..=10 * 60 * 8_000).contains(&offset) {
            self.misplaced += 1;
            return;
        }
        let start = offset as usize;
        let end = start + packet.payload.len();
        if self.audio.len() < end {
            self.audio.resize(end, 0);
        }
        self.law.decode(packet.payload, &mut self.audio[start..end]);
    }

    fn into_audio(self) -> Vec<i16> {
        if self.misplaced > 0 {
            eprintln!(
                "warning: carrier could not place {} packet(s)",
                self.misplaced
            );
        }
        self.audio
    }
}
