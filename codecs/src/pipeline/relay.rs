//! One direction of a call whose legs share a codec: no transcoding, only the RTP header is
//! rewritten (our SSRC, a continuous sequence and timestamp, the far leg's payload types), so the
//! two legs stay independent streams (topology hiding) at the cost of a header copy.

use std::time::Instant;

use super::digits::{DigitGenerator, DigitReport};
use super::{OutputStream, PipelineStats, Scratch};
use crate::rtp::{RTP_HEADER_LEN, RtpHeader, RtpPacket, sequence_delta};
use crate::{Error, MAX_PACKET_LEN};

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
            stats: PipelineStats::default(),
        }
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
        let Some(payload_type) = self.map_payload_type(packet.payload_type) else {
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
        out[RTP_HEADER_LEN..len].copy_from_slice(packet.payload);
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

    fn map_payload_type(&self, payload_type: u8) -> Option<u8> {
        let c = &self.config;
        [Some(c.audio), c.event_in.zip(c.event_out), c.comfort_noise]
            .into_iter()
            .flatten()
            .find(|(input, _)| *input == payload_type)
            .map(|(_, output)| output)
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
