//! Shared harness for the pipeline tests: far-end senders that build real RTP streams, a virtual
//! clock, and helpers to read what a pipeline emits. Each test file uses the parts it needs.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use landline_codecs::rtp::{RtpHeader, RtpPacket};
use landline_codecs::telephone_event::TelephoneEvent;
use landline_codecs::{
    G711Law, G711ToOpusConfig, OpusEncoder, OpusSettings, OpusToG711Config, OutputStream, Timing,
};

pub const OPUS_PT: u8 = 111;
pub const EVENT_PT_48K: u8 = 110;
pub const EVENT_PT_8K: u8 = 101;
pub const CN_PT: u8 = 13;
pub const OUT_SSRC: u32 = 0xCAFE_F00D;

/// A virtual clock: tests advance it explicitly, so they run faster than real time.
pub struct Clock {
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            now: Instant::now(),
        }
    }
    pub fn advance_ms(&mut self, ms: u64) -> Instant {
        self.now += Duration::from_millis(ms);
        self.now
    }
}

/// A sine tone at `hz`, sampled at `rate`, starting at sample `offset`.
pub fn tone(hz: f64, rate: u32, len: usize, offset: usize, amplitude: f64) -> Vec<i16> {
    (0..len)
        .map(|i| {
            let t = (i + offset) as f64 / f64::from(rate);
            (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
        })
        .collect()
}

/// A browser-like Opus sender: 48 kHz mono input, complexity 9, in-band FEC.
pub struct OpusSender {
    encoder: OpusEncoder,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    samples_sent: usize,
    pub tone_hz: f64,
    /// Frame length in 48 kHz samples (480 = 10 ms ... 2880 = 60 ms).
    pub frame_samples: usize,
}

impl OpusSender {
    pub fn new(ssrc: u32) -> Self {
        let settings = OpusSettings {
            bitrate: 32_000,
            complexity: 9,
            inband_fec: true,
            expected_loss_percent: 10,
            dtx: false,
        };
        OpusSender {
            encoder: OpusEncoder::new(48_000, &settings).expect("48 kHz encoder"),
            ssrc,
            sequence: 1000,
            timestamp: 48_000,
            samples_sent: 0,
            tone_hz: 440.0,
            frame_samples: 960,
        }
    }

    /// The next packet of the tone.
    pub fn next_packet(&mut self) -> Vec<u8> {
        let n = self.frame_samples;
        let pcm = tone(self.tone_hz, 48_000, n, self.samples_sent, 8000.0);
        self.samples_sent += n;
        let mut payload = [0u8; 1500];
        let len = self.encoder.encode(&pcm, &mut payload).expect("encode");
        let packet = rtp(
            OPUS_PT,
            self.sequence,
            self.timestamp,
            self.ssrc,
            &payload[..len],
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(n as u32);
        packet
    }

    /// Skips a packet as if the network lost it.
    pub fn lose_packet(&mut self) {
        let _ = self.next_packet();
    }

    /// A telephone-event packet on this stream's sequence space.
    pub fn event_packet(&mut self, event: TelephoneEvent, timestamp: u32, marker: bool) -> Vec<u8> {
        let mut payload = [0u8; 4];
        event.write(&mut payload);
        let mut packet = rtp(EVENT_PT_48K, self.sequence, timestamp, self.ssrc, &payload);
        if marker {
            packet[1] |= 0x80;
        }
        self.sequence = self.sequence.wrapping_add(1);
        packet
    }
}

/// A carrier-like G.711 sender with a configurable packet time.
pub struct G711Sender {
    pub law: G711Law,
    pub ssrc: u32,
    pub sequence: u16,
    pub timestamp: u32,
    samples_sent: usize,
    pub ptime_ms: usize,
}

impl G711Sender {
    pub fn new(law: G711Law, ptime_ms: usize) -> Self {
        G711Sender {
            law,
            ssrc: 0x5151_5151,
            sequence: 7,
            timestamp: 1234,
            samples_sent: 0,
            ptime_ms,
        }
    }

    pub fn next_packet(&mut self) -> Vec<u8> {
        let n = self.ptime_ms * 8;
        let pcm = tone(1000.0, 8000, n, self.samples_sent, 8000.0);
        self.samples_sent += n;
        let mut payload = vec![0u8; n];
        self.law.encode(&pcm, &mut payload);
        let packet = rtp(
            self.law.payload_type(),
            self.sequence,
            self.timestamp,
            self.ssrc,
            &payload,
        );
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(n as u32);
        packet
    }
}

pub fn rtp(pt: u8, sequence: u16, timestamp: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = vec![0u8; 12 + payload.len()];
    RtpHeader {
        marker: false,
        payload_type: pt,
        sequence,
        timestamp,
        ssrc,
    }
    .write(&mut packet);
    packet[12..].copy_from_slice(payload);
    packet
}

pub fn output_stream() -> OutputStream {
    OutputStream {
        ssrc: OUT_SSRC,
        first_sequence: 65_530,
        first_timestamp: u32::MAX - 500,
    }
}

pub fn opus_to_g711_config(law: G711Law) -> OpusToG711Config {
    OpusToG711Config {
        opus_payload_type: OPUS_PT,
        event_payload_type_in: Some(EVENT_PT_48K),
        law,
        event_payload_type_out: Some(EVENT_PT_8K),
        output: output_stream(),
        timing: Timing::default(),
    }
}

pub fn g711_to_opus_config(law: G711Law) -> G711ToOpusConfig {
    G711ToOpusConfig {
        law,
        comfort_noise_payload_type: Some(CN_PT),
        event_payload_type_in: Some(EVENT_PT_8K),
        opus_payload_type: OPUS_PT,
        event_payload_type_out: Some(EVENT_PT_48K),
        opus: OpusSettings::default(),
        output: output_stream(),
        timing: Timing::default(),
    }
}

/// An emitted packet, owned, with its header fields read back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
}

pub fn parse_sent(bytes: &[u8]) -> Sent {
    let p = RtpPacket::parse(bytes).expect("pipeline emitted invalid RTP");
    Sent {
        marker: p.marker,
        payload_type: p.payload_type,
        sequence: p.sequence,
        timestamp: p.timestamp,
        ssrc: p.ssrc,
        payload: p.payload.to_vec(),
    }
}

/// Asserts an audio stream is continuous: one SSRC, consecutive sequence numbers, timestamps
/// `step` apart, and the marker only on the first packet.
pub fn assert_continuous(packets: &[Sent], step: u32) {
    for pair in packets.windows(2) {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "SSRC changed");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence gap after {:?}",
            pair[0].sequence
        );
        assert_eq!(
            pair[1].timestamp,
            pair[0].timestamp.wrapping_add(step),
            "timestamp gap after seq {}",
            pair[0].sequence
        );
        assert!(
            !pair[1].marker,
            "marker set mid-stream at seq {}",
            pair[1].sequence
        );
    }
}

/// Decodes G.711 payloads into one PCM signal.
pub fn decode_g711(law: G711Law, packets: &[Sent]) -> Vec<i16> {
    let mut pcm = Vec::new();
    for p in packets {
        let mut frame = vec![0i16; p.payload.len()];
        law.decode(&p.payload, &mut frame);
        pcm.extend_from_slice(&frame);
    }
    pcm
}

/// Power of `hz` in `pcm` relative to total power (Goertzel), 0..=1.
pub fn tone_ratio(pcm: &[i16], hz: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    let mut total = 0.0;
    for &x in pcm {
        let x = f64::from(x);
        total += x * x;
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    if total == 0.0 {
        0.0
    } else {
        2.0 * power / (total * pcm.len() as f64)
    }
}

/// RMS level of a signal.
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}
