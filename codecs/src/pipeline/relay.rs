//! One direction of a call whose legs share a codec: no transcoding, only the RTP header is
//! rewritten (our SSRC, a continuous sequence and timestamp, the far leg's payload types), so the
//! two legs stay independent streams (topology hiding) at the cost of a header copy. Between a
//! µ-law and an A-law leg it also maps each audio byte through a 256-entry table (G.711 to
//! G.711 needs no decoder, no re-timing and no concealment: the far end conceals its own loss).

use std::time::Instant;

use super::digits::{DigitGenerator, DigitReport};
use super::{OutputStream, PipelineStats, Scratch};
use crate::rtp::{RTP_HEADER_LEN, RtpHeader, RtpPacket, sequence_delta};
use crate::{Error, G711Law, MAX_PACKET_LEN};

/// Payload types of a relayed stream on each leg; dynamic ones (Opus, events) may differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayConfig {
    /// Audio payload type on the receiving leg and on the sending leg.
    pub audio: (u8, u8),
    /// Telephone-event payload type on the receiving leg, if it negotiated it. Events are
    /// relayed only when both legs did.
    pub event_in: Option<u8>,
    /// Telephone-event payload type on the sending leg, if it negotiated it: digits we generate
    /// (SIP INFO from the other leg) need only this one, since a client that presses keys by
    /// SIP INFO often offers no telephone-event at all.
    pub event_out: Option<u8>,
    /// Comfort-noise payload types on the receiving and sending leg, if both negotiated it.
    pub comfort_noise: Option<(u8, u8)>,
    /// The codec's RTP clock rate, to carry a timestamp across an SSRC change.
    pub clock_rate: u32,
    /// Our stream on the sending leg.
    pub output: OutputStream,
}

/// Rewrites one direction of a same-codec call.
pub struct Relay {
    config: RelayConfig,
    input_ssrc: Option<u32>,
    highest_sequence: u16,
    /// Added to input sequence numbers and timestamps to give output ones.
    sequence_offset: u16,
    timestamp_offset: u32,
    /// The last packet sent, to continue from it when the input restarts.
    last_sent: Option<(u16, u32, Instant)>,
    /// A digit we send ourselves (SIP INFO from the other leg), if any.
    digits: DigitGenerator,
    /// Set between a µ-law and an A-law leg: each input audio byte's code on the output law.
    law_map: Option<[u8; 256]>,
    /// Input → output payload types besides the audio's: events, comfort noise, and a second
    /// input event type (see [`accept_event_payload_type`](Relay::accept_event_payload_type)).
    others: [Option<(u8, u8)>; 3],
    /// A second input audio type (see [`accept_audio_payload_type`](Relay::accept_audio_payload_type)).
    audio_in_alt: Option<u8>,
    stats: PipelineStats,
}

impl Relay {
    /// A relay for one direction of one call.
    pub fn new(config: &RelayConfig) -> Self {
        Relay {
            config: *config,
            input_ssrc: None,
            highest_sequence: 0,
            sequence_offset: 0,
            timestamp_offset: 0,
            last_sent: None,
            digits: DigitGenerator::default(),
            law_map: None,
            others: [
                config.event_in.zip(config.event_out),
                config.comfort_noise,
                None,
            ],
            audio_in_alt: None,
            stats: PipelineStats::default(),
        }
    }

    /// A relay between a G.711 leg in `from` and one in `to` (different laws: the audio bytes
    /// are mapped from one to the other; the same law: a plain relay). `config.audio` gives the
    /// payload types, as for [`new`](Self::new).
    pub fn between_laws(config: &RelayConfig, from: G711Law, to: G711Law) -> Self {
        let mut relay = Relay::new(config);
        if from != to {
            let mut map = [0u8; 256];
            let mut pcm = [0i16; 256];
            let codes: [u8; 256] = std::array::from_fn(|i| i as u8);
            from.decode(&codes, &mut pcm);
            to.encode(&pcm, &mut map);
            relay.law_map = Some(map);
        }
        relay
    }

    /// Also takes `payload_type` as telephone-event input, sent on as the configured output
    /// type: the type our own SDP named, when the far side's SDP named another.
    pub fn accept_event_payload_type(&mut self, payload_type: u8) {
        self.others[2] = self.config.event_out.map(|output| (payload_type, output));
    }

    /// Also takes `payload_type` as input audio, besides the configured one: the type our own
    /// SDP gave the codec when the far side's gave it another (a G.711 law under a dynamic type).
    pub fn accept_audio_payload_type(&mut self, payload_type: u8) {
        if payload_type != self.config.audio.0 {
            self.audio_in_alt = Some(payload_type);
        }
    }

    /// Where our output stream goes on (SSRC, next sequence number, and the timestamp of now),
    /// for a pipeline that replaces this one mid-call (a codec change) to continue it.
    pub fn next_output(&self, now: Instant) -> OutputStream {
        match self.last_sent {
            Some((sequence, _, _)) => OutputStream {
                ssrc: self.config.output.ssrc,
                first_sequence: sequence.wrapping_add(1),
                first_timestamp: self.current_timestamp(now),
            },
            None => self.config.output,
        }
    }

    /// Continues another pipeline's output stream (from its `next_output`) instead of the
    /// configured one; call before the first packet.
    pub fn continue_output(&mut self, stream: OutputStream) {
        self.config.output = stream;
        self.last_sent = None;
    }

    /// Takes one datagram; `emit` is called with the rewritten packet, if it is to be sent. The
    /// packet is borrowed from `scratch`, valid until `emit` returns.
    pub fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) {
        self.stats.packets_in += 1;
        match self.rewrite(now, datagram, &mut scratch.packet) {
            Ok(Some(len)) => {
                self.stats.packets_out += 1;
                emit(&scratch.packet[..len]);
            }
            Ok(None) => {}
            Err(_) => self.stats.malformed += 1,
        }
    }

    /// Sends a DTMF digit on the relayed stream as RFC 4733 events (a SIP INFO digit from the
    /// other leg): it starts at the stream's current timestamp and takes sequence numbers in
    /// line with the relayed packets. Further reports follow from
    /// [`handle_timeout`](Self::handle_timeout).
    pub fn send_digit(
        &mut self,
        now: Instant,
        digit: char,
        duration: std::time::Duration,
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        let Some(event_out) = self.config.event_out else {
            return Err(Error::NoTelephoneEvent);
        };
        let timestamp = self.current_timestamp(now);
        let ratio = self.config.clock_rate / 8000;
        let mut digits = std::mem::take(&mut self.digits);
        let started = digits.start(now, digit, duration, (timestamp, ratio), &mut |report| {
            self.send_report(now, event_out, report, scratch, &mut emit)
        });
        self.digits = digits;
        started
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called (a digit in progress).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.digits.poll_timeout()
    }

    /// Sends the reports of a generated digit that are due.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        scratch: &mut Scratch,
        mut emit: impl FnMut(&[u8]),
    ) {
        let Some(event_out) = self.config.event_out else {
            return;
        };
        let mut digits = std::mem::take(&mut self.digits);
        digits.handle_timeout(now, &mut |report| {
            self.send_report(now, event_out, report, scratch, &mut emit)
        });
        self.digits = digits;
    }

    /// Counters for this direction.
    pub fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    /// The output timestamp of "now": the last packet's, advanced by the time since it.
    fn current_timestamp(&self, now: Instant) -> u32 {
        match self.last_sent {
            Some((_, timestamp, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = elapsed.as_micros() * u128::from(self.config.clock_rate) / 1_000_000;
                timestamp.wrapping_add(ticks as u32)
            }
            None => self.config.output.first_timestamp,
        }
    }

    /// Puts one generated report on the stream, moving later relayed packets one sequence
    /// number on so the stream stays gap-free.
    fn send_report(
        &mut self,
        now: Instant,
        event_out: u8,
        report: DigitReport,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        let sequence = match self.last_sent {
            Some((last, _, _)) => last.wrapping_add(1),
            None => self.config.output.first_sequence,
        };
        self.sequence_offset = self.sequence_offset.wrapping_add(1);
        let header = RtpHeader {
            marker: report.marker,
            payload_type: event_out,
            sequence,
            timestamp: report.timestamp,
            ssrc: self.config.output.ssrc,
        };
        let packet = &mut scratch.packet;
        let mut len = header.write(packet);
        len += report.event.write(&mut packet[len..]);
        let timestamp = self.last_sent.map_or(report.timestamp, |(_, ts, _)| ts);
        let at = self.last_sent.map_or(now, |(_, _, at)| at);
        self.last_sent = Some((sequence, timestamp, at));
        self.stats.events_out += 1;
        self.stats.packets_out += 1;
        emit(&packet[..len]);
    }

    /// Writes the packet to send into `out`; returns its length, or `None` to send nothing.
    fn rewrite(
        &mut self,
        now: Instant,
        datagram: &[u8],
        out: &mut [u8; MAX_PACKET_LEN],
    ) -> Result<Option<usize>, Error> {
        let packet = RtpPacket::parse(datagram)?;
        let Some((payload_type, audio)) = self.map_payload_type(packet.payload_type) else {
            self.stats.unexpected_payload_type += 1;
            return Ok(None);
        };
        if packet.payload.len() > MAX_PACKET_LEN - RTP_HEADER_LEN {
            return Err(Error::PayloadTooLong);
        }
        if self.input_ssrc != Some(packet.ssrc) {
            self.restart(now, &packet);
        } else {
            let delta = sequence_delta(self.highest_sequence, packet.sequence);
            if delta == 0 {
                self.stats.duplicates += 1;
                return Ok(None);
            }
            if delta > 0 {
                self.stats.lost += (delta - 1) as u64;
                self.highest_sequence = packet.sequence;
            } else {
                // Reordered: pass it on; the far end's jitter buffer puts it in place.
                self.stats.late += 1;
            }
        }
        let sequence = packet.sequence.wrapping_add(self.sequence_offset);
        let timestamp = packet.timestamp.wrapping_add(self.timestamp_offset);
        let header = RtpHeader {
            marker: packet.marker,
            payload_type,
            sequence,
            timestamp,
            ssrc: self.config.output.ssrc,
        };
        header.write(out);
        let len = RTP_HEADER_LEN + packet.payload.len();
        match &self.law_map {
            Some(map) if audio => {
                for (to, from) in out[RTP_HEADER_LEN..len].iter_mut().zip(packet.payload) {
                    *to = map[usize::from(*from)];
                }
            }
            _ => out[RTP_HEADER_LEN..len].copy_from_slice(packet.payload),
        }
        if self
            .last_sent
            .is_none_or(|(last, _, _)| sequence_delta(last, sequence) > 0)
        {
            self.last_sent = Some((sequence, timestamp, now));
        }
        Ok(Some(len))
    }

    /// A new input SSRC: continue the output where it left off, advanced by the time elapsed.
    fn restart(&mut self, now: Instant, packet: &RtpPacket<'_>) {
        let (next_sequence, next_timestamp) = match self.last_sent {
            Some((sequence, timestamp, at)) => {
                let elapsed = now.saturating_duration_since(at);
                let ticks = elapsed.as_micros() * u128::from(self.config.clock_rate) / 1_000_000;
                (
                    sequence.wrapping_add(1),
                    timestamp.wrapping_add(ticks.max(1) as u32),
                )
            }
            None => (
                self.config.output.first_sequence,
                self.config.output.first_timestamp,
            ),
        };
        self.stats.restarts += u64::from(self.input_ssrc.is_some());
        self.input_ssrc = Some(packet.ssrc);
        self.highest_sequence = packet.sequence;
        self.sequence_offset = next_sequence.wrapping_sub(packet.sequence);
        self.timestamp_offset = next_timestamp.wrapping_sub(packet.timestamp);
    }

    /// The output payload type for an input one, and whether it is the audio's.
    fn map_payload_type(&self, payload_type: u8) -> Option<(u8, bool)> {
        let (audio_in, audio_out) = self.config.audio;
        if payload_type == audio_in || Some(payload_type) == self.audio_in_alt {
            return Some((audio_out, true));
        }
        self.others
            .iter()
            .flatten()
            .find(|(input, _)| *input == payload_type)
            .map(|(_, output)| (*output, false))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(pt: u8, sequence: u16, timestamp: u32, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0u8; RTP_HEADER_LEN + 160];
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence,
            timestamp,
            ssrc,
        }
        .write(&mut p);
        p
    }

    fn relay() -> Relay {
        Relay::new(&RelayConfig {
            audio: (0, 0),
            event_in: Some(101),
            event_out: Some(96),
            comfort_noise: None,
            clock_rate: 8000,
            output: OutputStream {
                ssrc: 77,
                first_sequence: 500,
                first_timestamp: 9000,
            },
        })
    }

    #[test]
    fn rewrites_ssrc_sequence_timestamp_and_payload_types() {
        let mut relay = relay();
        let mut scratch = Scratch::new();
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, pt) in [0u8, 0, 101, 0].into_iter().enumerate() {
            let p = packet(pt, 10 + i as u16, 160 * i as u32, 5);
            relay.push(now, &p, &mut scratch, |o| {
                out.push(
                    RtpPacket::parse(o)
                        .map(|r| (r.ssrc, r.sequence, r.timestamp, r.payload_type))
                        .unwrap(),
                )
            });
        }
        assert_eq!(
            out,
            vec![
                (77, 500, 9000, 0),
                (77, 501, 9160, 0),
                (77, 502, 9320, 96),
                (77, 503, 9480, 0)
            ]
        );
    }

    #[test]
    fn a_new_ssrc_continues_the_stream_and_junk_is_dropped() {
        let mut relay = relay();
        let mut scratch = Scratch::new();
        let start = Instant::now();
        let mut out = Vec::new();
        relay.push(start, &packet(0, 10, 0, 5), &mut scratch, |o| {
            out.push(RtpPacket::parse(o).unwrap().sequence)
        });
        relay.push(start, &packet(8, 11, 160, 5), &mut scratch, |_| {
            panic!("PCMA was not negotiated")
        });
        relay.push(start, &[1, 2, 3], &mut scratch, |_| panic!("not RTP"));
        let later = start + std::time::Duration::from_millis(20);
        let mut ts = 0;
        relay.push(later, &packet(0, 40_000, 123, 6), &mut scratch, |o| {
            let p = RtpPacket::parse(o).unwrap();
            out.push(p.sequence);
            ts = p.timestamp;
        });
        assert_eq!(out, vec![500, 501]);
        assert_eq!(ts, 9000 + 160);
        assert_eq!(relay.stats().unexpected_payload_type, 1);
        assert_eq!(relay.stats().malformed, 1);
    }

    #[test]
    fn a_generated_digit_takes_its_place_in_the_relayed_stream() {
        let mut relay = relay();
        let mut scratch = Scratch::new();
        let start = Instant::now();
        let mut out = Vec::new();
        let mut record = |o: &[u8]| {
            let p = RtpPacket::parse(o).unwrap();
            out.push((
                p.payload_type,
                p.sequence,
                p.timestamp,
                p.marker,
                p.payload.to_vec(),
            ));
        };
        for i in 0..3u16 {
            let now = start + std::time::Duration::from_millis(20 * u64::from(i));
            relay.push(
                now,
                &packet(0, 10 + i, 160 * u32::from(i), 5),
                &mut scratch,
                &mut record,
            );
        }
        let now = start + std::time::Duration::from_millis(50);
        relay
            .send_digit(
                now,
                '7',
                std::time::Duration::from_millis(100),
                &mut scratch,
                &mut record,
            )
            .unwrap();
        relay.push(now, &packet(0, 13, 480, 5), &mut scratch, &mut record);
        let mut t = now;
        while let Some(due) = relay.poll_timeout() {
            t = t.max(due);
            relay.handle_timeout(t, &mut scratch, &mut record);
        }
        let sequences: Vec<u16> = out.iter().map(|o| o.1).collect();
        assert!(
            sequences.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
            "{sequences:?}"
        );
        let events: Vec<_> = out.iter().filter(|o| o.0 == 96).collect();
        assert!(events[0].3, "marker on the first report");
        assert!(events.iter().all(|e| e.2 == events[0].2 && e.4[0] == 7));
        assert_eq!(
            events.iter().filter(|e| e.4[1] & 0x80 != 0).count(),
            3,
            "three end reports"
        );
        assert_eq!(
            out[4].0, 0,
            "the audio after the first report is relayed in line"
        );
    }

    #[test]
    fn between_laws_the_audio_is_mapped_and_events_pass_with_either_type() {
        let config = RelayConfig {
            audio: (0, 8),
            event_in: Some(96),
            event_out: Some(101),
            comfort_noise: None,
            clock_rate: 8000,
            output: OutputStream {
                ssrc: 77,
                first_sequence: 500,
                first_timestamp: 9000,
            },
        };
        let mut relay = Relay::between_laws(&config, G711Law::Mu, G711Law::A);
        relay.accept_event_payload_type(101);
        let mut scratch = Scratch::new();
        let now = Instant::now();
        let tone: Vec<i16> = (0..160)
            .map(|n| (8000.0 * (n as f64 * 0.3).sin()) as i16)
            .collect();
        let mut input = packet(0, 10, 0, 5);
        G711Law::Mu.encode(&tone, &mut input[RTP_HEADER_LEN..]);
        let mut heard = Vec::new();
        relay.push(now, &input, &mut scratch, |o| heard.push(o.to_vec()));
        for (i, pt) in [96u8, 101, 100].into_iter().enumerate() {
            let mut event = packet(pt, 11 + i as u16, 160, 5);
            event.truncate(RTP_HEADER_LEN + 4);
            relay.push(now, &event, &mut scratch, |o| heard.push(o.to_vec()));
        }
        let types: Vec<u8> = heard
            .iter()
            .map(|o| RtpPacket::parse(o).unwrap().payload_type)
            .collect();
        assert_eq!(types, vec![8, 101, 101], "PT 100 was never negotiated");
        let out = RtpPacket::parse(&heard[0]).unwrap();
        let (mut sent, mut got) = ([0i16; 160], [0i16; 160]);
        G711Law::Mu.decode(&input[RTP_HEADER_LEN..], &mut sent);
        G711Law::A.decode(out.payload, &mut got);
        for (a, b) in sent.iter().zip(&got) {
            // The two laws' steps differ; one A-law step at most at this level.
            assert!((a - b).abs() <= 256, "{a} became {b}");
        }
    }

    #[test]
    fn a_replacement_continues_the_stream_where_this_one_left_it() {
        let mut old = relay();
        let mut scratch = Scratch::new();
        let start = Instant::now();
        for i in 0..3u16 {
            let now = start + std::time::Duration::from_millis(20 * u64::from(i));
            old.push(
                now,
                &packet(0, 10 + i, 160 * u32::from(i), 5),
                &mut scratch,
                |_| {},
            );
        }
        let swap = start + std::time::Duration::from_millis(60);
        let next = old.next_output(swap);
        assert_eq!((next.ssrc, next.first_sequence), (77, 503));
        assert_eq!(next.first_timestamp, 9000 + 3 * 160);
        let mut new = Relay::between_laws(
            &RelayConfig {
                audio: (8, 0),
                output: OutputStream {
                    ssrc: 1,
                    first_sequence: 1,
                    first_timestamp: 1,
                },
                ..old.config
            },
            G711Law::A,
            G711Law::Mu,
        );
        new.continue_output(next);
        let mut out = Vec::new();
        new.push(swap, &packet(8, 7000, 123_456, 9), &mut scratch, |o| {
            let p = RtpPacket::parse(o).unwrap();
            out.push((p.ssrc, p.sequence, p.timestamp, p.payload_type));
        });
        assert_eq!(out, vec![(77, 503, 9480, 0)]);
    }

    /// A client pressing keys by SIP INFO often offers no telephone-event (Linphone with
    /// `use_info=1` does not): its digits must still reach a trunk that negotiated it, while
    /// event packets from the client side, which it never agreed to send, are not relayed.
    #[test]
    fn digits_are_generated_when_only_the_sending_leg_negotiated_telephone_event() {
        let mut relay = Relay::new(&RelayConfig {
            audio: (0, 0),
            event_in: None,
            event_out: Some(101),
            comfort_noise: None,
            clock_rate: 8000,
            output: OutputStream {
                ssrc: 77,
                first_sequence: 500,
                first_timestamp: 9000,
            },
        });
        let mut scratch = Scratch::new();
        let now = Instant::now();
        let mut out = Vec::new();
        let mut record = |o: &[u8]| {
            let p = RtpPacket::parse(o).unwrap();
            out.push((p.payload_type, p.payload[0]));
        };
        relay.push(now, &packet(0, 10, 0, 5), &mut scratch, &mut record);
        relay.push(now, &packet(101, 11, 160, 5), &mut scratch, &mut record);
        relay
            .send_digit(
                now,
                '#',
                std::time::Duration::from_millis(100),
                &mut scratch,
                &mut record,
            )
            .unwrap();
        let mut t = now;
        while let Some(due) = relay.poll_timeout() {
            t = t.max(due);
            relay.handle_timeout(t, &mut scratch, &mut record);
        }
        assert_eq!(out[0].0, 0, "audio relayed");
        assert!(
            out[1..].iter().all(|&(pt, event)| pt == 101 && event == 11),
            "only our own '#' reports follow: {out:?}"
        );
        assert!(out.len() > 3, "{out:?}");
        assert_eq!(relay.stats().unexpected_payload_type, 1);
    }
}
