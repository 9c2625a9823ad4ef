//! Trunk → client: a carrier's G.711 stream through `G711ToOpus`, heard by a browser.

use std::time::Instant;

use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::{
    G711Law, G711ToOpus, G711ToOpusConfig, OpusDecoder, OpusSettings, OutputStream, Scratch, Timing,
};

use crate::network::{LossyLink, SplitMix};
use crate::{FRAME_TIME, Outcome, RTP_HEADER_LEN};

/// The browser's payload type for `opus/48000/2`.
const OPUS_PT: u8 = 111;
/// Samples in 20 ms at 8 kHz: a carrier's usual ptime.
const FRAME_8K: usize = 160;
/// Samples in 20 ms at 48 kHz.
const FRAME_48K: usize = 960;

/// Runs `pcm` (8 kHz) through a carrier's G.711 packetiser, the lossy leg, the real pipeline
/// and a browser's Opus decoder; returns the browser's 48 kHz audio.
pub(crate) fn run(
    pcm: &[i16],
    law: G711Law,
    opus: OpusSettings,
    link: &mut LossyLink,
    ids: &mut SplitMix,
) -> Result<Outcome, String> {
    let config = G711ToOpusConfig {
        law,
        comfort_noise_payload_type: None,
        event_payload_type_in: None,
        opus_payload_type: OPUS_PT,
        event_payload_type_out: None,
        opus,
        output: OutputStream {
            ssrc: ids.next_u64() as u32,
            first_sequence: ids.next_u64() as u16,
            first_timestamp: ids.next_u64() as u32,
        },
        timing: Timing::default(),
    };
    let mut pipeline =
        G711ToOpus::new(&config).map_err(|e| format!("cannot create G711ToOpus: {e}"))?;
    let mut browser = Browser::new()?;
    let mut scratch = Scratch::new();

    let ssrc = ids.next_u64() as u32;
    let first_sequence = ids.next_u64() as u16;
    let first_timestamp = ids.next_u64() as u32;
    let mut datagram = [0u8; RTP_HEADER_LEN + FRAME_8K];
    let mut frame = [0i16; FRAME_8K];
    // One frame more than the input fills, so the pipeline's encoder flushes its look-ahead.
    let frames = pcm.len().div_ceil(FRAME_8K) + 1;
    let base = Instant::now();
    for i in 0..frames {
        let now = base + FRAME_TIME * i as u32;
        while let Some(deadline) = pipeline.poll_timeout().filter(|&d| d <= now) {
            pipeline.handle_timeout(deadline, &mut scratch, |packet| browser.receive(packet));
        }

        frame.fill(0);
        let start = (i * FRAME_8K).min(pcm.len());
        let end = (start + FRAME_8K).min(pcm.len());
        frame[..end - start].copy_from_slice(&pcm[start..end]);
        let header = RtpHeader {
            marker: i == 0,
            payload_type: law.payload_type(),
            sequence: first_sequence.wrapping_add(i as u16),
            timestamp: first_timestamp.wrapping_add((i * FRAME_8K) as u32),
            ssrc,
        };
        let len = header.write(&mut datagram);
        law.encode(&frame, &mut datagram[len..len + FRAME_8K]);
        if link.drops_next() {
            continue;
        }
        pipeline.push(now, &datagram[..len + FRAME_8K], &mut scratch, |packet| {
            browser.receive(packet)
        });
    }
    Ok(Outcome {
        stats: *pipeline.stats(),
        audio: browser.finish()?,
        rate: 48_000,
    })
}

/// A browser's receiver: a jitter buffer ordered by RTP timestamp in front of a 48 kHz Opus
/// decoder, which recovers a missing packet from the next one's FEC, and conceals (PLC) any
/// longer gap.
struct Browser {
    decoder: OpusDecoder,
    /// Everything received, in arrival order: with no network after the pipeline there is no
    /// jitter, so the buffer just needs sorting at the end.
    packets: Vec<(u32, Vec<u8>)>,
    misplaced: u64,
}

impl Browser {
    fn new() -> Result<Self, String> {
        let decoder = OpusDecoder::new(48_000)
            .map_err(|e| format!("cannot create the browser's Opus decoder: {e}"))?;
        Ok(Browser {
            decoder,
            packets: Vec::new(),
            misplaced: 0,
        })
    }

    fn receive(&mut self, datagram: &[u8]) {
        match RtpPacket::parse(datagram) {
            Ok(packet) if packet.payload_type == OPUS_PT => {
                self.packets
                    .push((packet.timestamp, packet.payload.to_vec()));
            }
            _ => self.misplaced += 1,
        }
    }

    /// Decodes the stream in timestamp order, filling gaps as a browser's NetEq would.
    fn finish(mut self) -> Result<Vec<i16>, String> {
        if self.misplaced > 0 {
            eprintln!(
                "warning: browser could not use {} packet(s)",
                self.misplaced
            );
        }
        let Some(&(first, _)) = self.packets.first() else {
            return Ok(Vec::new());
        };
        // Order by distance from the first timestamp, so a wrap of the 32-bit clock is harmless.
        self.packets
            .sort_by_key(|(ts, _)| ts.wrapping_sub(first) as i32);
        let mut audio = Vec::new();
        let mut frame = [0i16; 6 * FRAME_48K];
        let mut next = first;
        for (timestamp, payload) in &self.packets {
            let gap = timestamp.wrapping_sub(next) as i32;
            if gap < 0 {
                continue; // A duplicate, or overlapping what was already played.
            }
            let mut gap = gap as usize;
            // Conceal all but the last missing frame; recover that one from this packet's FEC.
            while gap > FRAME_48K {
                let n = (gap - FRAME_48K).min(FRAME_48K);
                self.decoder
                    .conceal(&mut frame[..n])
                    .map_err(|e| format!("Opus PLC: {e}"))?;
                audio.extend_from_slice(&frame[..n]);
                gap -= n;
            }
            if gap > 0 {
                self.decoder
                    .decode_fec(payload, &mut frame[..gap])
                    .map_err(|e| format!("Opus FEC decode: {e}"))?;
                audio.extend_from_slice(&frame[..gap]);
            }
            let n = match self.decoder.decode(payload, &mut frame) {
                Ok(n) => n,
                Err(e) => {
                    // A browser plays concealment for a packet it cannot decode.
                    eprintln!("warning: browser could not decode a packet: {e}");
                    self.decoder
                        .conceal(&mut frame[..FRAME_48K])
                        .map_err(|e| e.to_string())?;
                    FRAME_48K
                }
            };
            audio.extend_from_slice(&frame[..n]);
            next = timestamp.wrapping_add(n as u32);
        }
        Ok(audio)
    }
}
