//! The input streams every bench feeds on, built once, outside anything measured.
//!
//! Each side of a call sends what it would send in production: the client a browser's Opus
//! (48 kHz, 20 ms, in-band FEC, complexity 9, 32 kb/s), the trunk 20 ms G.711 packets. Both are
//! ten seconds of [speech-like signal](crate::signal), long enough that a bench averages over
//! vowels, consonants and pauses rather than timing one lucky frame.
//!
//! A second client stream is what the same browser sends when the gateway's SDP answer carries
//! `maxplaybackrate=8000` in Opus's fmtp (RFC 7587 §6.1): WebRTC then caps the encoder at
//! narrowband, so the packets are SILK-only and far cheaper to decode to 8 kHz.

use std::sync::OnceLock;
use std::time::Duration;

use audiopus::coder::Encoder;
use audiopus::{Application, Bandwidth, Bitrate, Channels, SampleRate, Signal};
use landline_codecs::rtp::RtpHeader;
use landline_codecs::{G711Law, MAX_PACKET_LEN, OpusSettings};

use crate::signal::speech;

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
/// One packet's worth of call time.
pub const PTIME: Duration = Duration::from_millis(20);
/// Length of the fixture streams, in seconds.
pub const SECONDS: f64 = 10.0;
/// Packets in each fixture stream (20 ms each).
pub const PACKETS: usize = 500;
/// The client's dynamic payload type for Opus (what browsers usually offer).
pub const OPUS_PAYLOAD_TYPE: u8 = 111;
/// The client's payload type for `telephone-event/48000`.
pub const CLIENT_EVENT_PAYLOAD_TYPE: u8 = 126;
/// The trunk's payload type for `telephone-event/8000`.
pub const TRUNK_EVENT_PAYLOAD_TYPE: u8 = 101;
/// The trunk's payload type for comfort noise.
pub const COMFORT_NOISE_PAYLOAD_TYPE: u8 = 13;

/// How a desktop browser's WebRTC stack encodes a microphone: 48 kHz mono, 20 ms frames,
/// complexity 9, 32 kb/s, in-band FEC on. libopus only spends bits on FEC when told to expect
/// loss, and browsers report some from RTCP, so 10 % is assumed: the decoder then sees packets
/// that carry redundancy, as it does in a real call.
pub const BROWSER_OPUS: OpusSettings = OpusSettings {
    bitrate: 32_000,
    complexity: 9,
    inband_fec: true,
    expected_loss_percent: 10,
    dtx: false,
};

/// SSRC of the client's stream.
const CLIENT_SSRC: u32 = 0x1CE_B00C;
/// SSRC of the trunk's stream.
const TRUNK_SSRC: u32 = 0x7A0_C0DE;
/// Seeds: the two parties say different things.
const CLIENT_SEED: u64 = 1;
const TRUNK_SEED: u64 = 2;

/// Ten seconds of each side of a call, as RTP datagrams and as the raw material around them.
#[derive(Debug, Clone)]
pub struct Fixtures {
    /// The client's Opus stream: RTP datagrams, payload type [`OPUS_PAYLOAD_TYPE`], 48 kHz clock.
    pub client_rtp: Vec<Vec<u8>>,
    /// The same speech from a browser told `maxplaybackrate=8000`: narrowband SILK packets.
    pub client_rtp_narrowband: Vec<Vec<u8>>,
    /// The trunk's PCMU stream: RTP datagrams, payload type 0, 8 kHz clock, 160 bytes each.
    pub trunk_rtp: Vec<Vec<u8>>,
    /// The trunk's audio as the gateway's Opus encoder sees it: G.711-decoded, 20 ms frames.
    pub trunk_pcm: Vec<[i16; FRAME]>,
    /// The client's speech at 8 kHz before any coding, 20 ms frames: input for G.711 alone.
    pub speech_8k: Vec<[i16; FRAME]>,
}

impl Fixtures {
    /// The fixtures, built on first use (about a second of CPU) and shared afterwards.
    pub fn get() -> &'static Fixtures {
        static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
        FIXTURES.get_or_init(Fixtures::build)
    }

    /// Builds the fixtures: synthesises both sides and encodes them as their senders would.
    pub fn build() -> Fixtures {
        let client = speech(48_000, SECONDS, CLIENT_SEED);
        let client_rtp = browser_stream(&client, Bandwidth::Fullband);
        let client_rtp_narrowband = browser_stream(&client, Bandwidth::Narrowband);

        let trunk = speech(8_000, SECONDS, TRUNK_SEED);
        let mut codes = [0u8; FRAME];
        let mut trunk_rtp = Vec::with_capacity(PACKETS);
        let mut trunk_pcm = Vec::with_capacity(PACKETS);
        for (i, frame) in trunk.chunks_exact(FRAME).enumerate() {
            G711Law::Mu.encode(frame, &mut codes);
            trunk_rtp.push(datagram(
                G711Law::Mu.payload_type(),
                TRUNK_SSRC,
                i,
                FRAME,
                &codes,
            ));
            let mut decoded = [0i16; FRAME];
            G711Law::Mu.decode(&codes, &mut decoded);
            trunk_pcm.push(decoded);
        }

        let speech_8k = speech(8_000, SECONDS, CLIENT_SEED)
            .chunks_exact(FRAME)
            .map(|frame| frame.try_into().expect("chunks_exact gives whole frames"))
            .collect();
        Fixtures {
            client_rtp,
            client_rtp_narrowband,
            trunk_rtp,
            trunk_pcm,
            speech_8k,
        }
    }

    /// The client's datagrams of one kind.
    pub fn client(&self, audio: ClientAudio) -> &[Vec<u8>] {
        match audio {
            ClientAudio::Browser => &self.client_rtp,
            ClientAudio::BrowserNarrowband => &self.client_rtp_narrowband,
        }
    }

    /// The Opus payload of each client datagram of one kind.
    pub fn client_opus(&self, audio: ClientAudio) -> impl Iterator<Item = &[u8]> {
        self.client(audio).iter().map(|d| &d[RTP_HEADER_LEN..])
    }

    /// What the streams are: bitrate and how libopus chose to code the client's.
    pub fn describe(&self) -> String {
        format!(
            "client Opus: {}; with maxplaybackrate=8000: {}; trunk: {} PCMU packets",
            self.describe_client(ClientAudio::Browser),
            self.describe_client(ClientAudio::BrowserNarrowband),
            self.trunk_rtp.len(),
        )
    }

    fn describe_client(&self, audio: ClientAudio) -> String {
        let bytes: usize = self.client_opus(audio).map(<[u8]>::len).sum();
        let (mut silk, mut hybrid, mut celt, mut fec) = (0, 0, 0, 0);
        for payload in self.client_opus(audio) {
            // RFC 6716 §3.1: the TOC's config number gives the mode; in SILK and hybrid frames
            // the LBRR flag (FEC present) follows the VAD flag at the top of the first byte.
            match payload[0] >> 3 {
                0..=11 => silk += 1,
                12..=15 => hybrid += 1,
                _ => celt += 1,
            }
            if payload[0] >> 3 < 16 && payload.get(1).is_some_and(|b| b & 0x40 != 0) {
                fec += 1;
            }
        }
        format!(
            "{} packets, {:.1} kb/s, SILK {silk} / hybrid {hybrid} / CELT {celt}, {fec} with FEC",
            self.client(audio).len(),
            bytes as f64 * 8.0 / SECONDS / 1000.0,
        )
    }
}

/// Which of the client's streams a workload is fed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAudio {
    /// A browser's default: up to fullband (at 32 kb/s libopus picks hybrid SILK+CELT).
    Browser,
    /// A browser whose answer said `maxplaybackrate=8000`: narrowband, SILK only.
    BrowserNarrowband,
}

/// An Opus encoder at `rate` Hz set up exactly as `landline_codecs::OpusEncoder::new(rate,
/// settings)`, with the widest audio band it may use.
pub fn opus_encoder(
    rate: SampleRate,
    settings: &OpusSettings,
    max_bandwidth: Bandwidth,
) -> Encoder {
    let mut encoder =
        Encoder::new(rate, Channels::Mono, Application::Voip).expect("libopus encoder");
    encoder
        .set_encoder_ctl_request(
            audiopus::ffi::OPUS_SET_COMPLEXITY_REQUEST,
            i32::from(settings.complexity),
        )
        .expect("complexity");
    let bitrate = i32::try_from(settings.bitrate).expect("bitrate fits an i32");
    encoder
        .set_bitrate(Bitrate::BitsPerSecond(bitrate))
        .expect("bitrate");
    encoder.set_inband_fec(settings.inband_fec).expect("fec");
    encoder
        .set_packet_loss_perc(settings.expected_loss_percent)
        .expect("loss");
    encoder.set_dtx(settings.dtx).expect("dtx");
    encoder.set_signal(Signal::Voice).expect("signal");
    encoder
        .set_max_bandwidth(max_bandwidth)
        .expect("max bandwidth");
    encoder
}

/// `pcm` (48 kHz) as a browser would send it: 20 ms Opus packets in RTP.
fn browser_stream(pcm: &[i16], max_bandwidth: Bandwidth) -> Vec<Vec<u8>> {
    let encoder = opus_encoder(SampleRate::Hz48000, &BROWSER_OPUS, max_bandwidth);
    let mut payload = [0u8; MAX_PACKET_LEN];
    pcm.chunks_exact(6 * FRAME)
        .enumerate()
        .map(|(i, frame)| {
            let len = encoder
                .encode(frame, &mut payload)
                .expect("a 20 ms frame encodes");
            datagram(
                OPUS_PAYLOAD_TYPE,
                CLIENT_SSRC,
                i,
                6 * FRAME,
                &payload[..len],
            )
        })
        .collect()
}

/// An endless RTP stream made of a fixture's packets played over and over, with sequence
/// numbers and timestamps rewritten so that the receiver sees one continuous stream, never a
/// restart: what a pipeline sees in the middle of a long call.
#[derive(Debug, Clone)]
pub struct RtpLoop {
    packets: Vec<Vec<u8>>,
    ticks_per_packet: u32,
    sent: u32,
    first_sequence: u16,
    first_timestamp: u32,
}

impl RtpLoop {
    /// Loops `packets` (datagrams from [`Fixtures`]) whose timestamps advance by
    /// `ticks_per_packet`.
    pub fn new(packets: &[Vec<u8>], ticks_per_packet: u32) -> RtpLoop {
        let first = &packets[0];
        RtpLoop {
            packets: packets.to_vec(),
            ticks_per_packet,
            sent: 0,
            first_sequence: u16::from_be_bytes([first[2], first[3]]),
            first_timestamp: u32::from_be_bytes([first[4], first[5], first[6], first[7]]),
        }
    }

    /// The next datagram: a few header bytes rewritten in place, no copy.
    #[inline]
    pub fn next_datagram(&mut self) -> &[u8] {
        let index = self.sent as usize % self.packets.len();
        let lap_done = self.sent as usize >= self.packets.len();
        let sequence = self.first_sequence.wrapping_add(self.sent as u16);
        let timestamp = self
            .first_timestamp
            .wrapping_add(self.sent.wrapping_mul(self.ticks_per_packet));
        self.sent = self.sent.wrapping_add(1);
        let datagram = &mut self.packets[index];
        if lap_done {
            // Only the very first packet starts a talkspurt.
            datagram[1] &= 0x7F;
        }
        datagram[2..4].copy_from_slice(&sequence.to_be_bytes());
        datagram[4..8].copy_from_slice(&timestamp.to_be_bytes());
        datagram
    }
}

const RTP_HEADER_LEN: usize = landline_codecs::rtp::RTP_HEADER_LEN;

/// An RTP datagram: packet `index` of a stream that starts at sequence 1000 and timestamp 0.
fn datagram(payload_type: u8, ssrc: u32, index: usize, ticks: usize, payload: &[u8]) -> Vec<u8> {
    let header = RtpHeader {
        marker: index == 0,
        payload_type,
        sequence: 1000u16.wrapping_add(index as u16),
        timestamp: (index * ticks) as u32,
        ssrc,
    };
    let mut datagram = vec![0u8; RTP_HEADER_LEN + payload.len()];
    let len = header.write(&mut datagram);
    datagram[len..].copy_from_slice(payload);
    datagram
}

#[cfg(test)]
mod tests {
    use landline_codecs::rtp::RtpPacket;

    use super::*;

    #[test]
    fn streams_are_ten_seconds_of_twenty_ms_packets() {
        let f = Fixtures::get();
        assert_eq!(f.client_rtp.len(), PACKETS);
        assert_eq!(f.client_rtp_narrowband.len(), PACKETS);
        assert_eq!(f.trunk_rtp.len(), PACKETS);
        assert_eq!(f.trunk_pcm.len(), PACKETS);
        assert_eq!(f.speech_8k.len(), PACKETS);
        for audio in [ClientAudio::Browser, ClientAudio::BrowserNarrowband] {
            let bytes: usize = f.client_opus(audio).map(<[u8]>::len).sum();
            let kbps = bytes as f64 * 8.0 / SECONDS / 1000.0;
            assert!((20.0..45.0).contains(&kbps), "{}", f.describe());
        }
        // Narrowband: every packet's TOC says SILK NB (configs 0-3).
        assert!(
            f.client_opus(ClientAudio::BrowserNarrowband)
                .all(|p| p[0] >> 3 < 4)
        );
    }

    #[test]
    fn loop_stays_continuous_across_laps() {
        let f = Fixtures::get();
        let mut stream = RtpLoop::new(&f.trunk_rtp, FRAME as u32);
        let mut previous: Option<(u16, u32)> = None;
        for i in 0..2 * PACKETS + 3 {
            let packet = RtpPacket::parse(stream.next_datagram()).expect("fixture is valid RTP");
            assert_eq!(packet.marker, i == 0);
            if let Some((sequence, timestamp)) = previous {
                assert_eq!(packet.sequence, sequence.wrapping_add(1));
                assert_eq!(packet.timestamp, timestamp.wrapping_add(FRAME as u32));
            }
            previous = Some((packet.sequence, packet.timestamp));
        }
    }
}
