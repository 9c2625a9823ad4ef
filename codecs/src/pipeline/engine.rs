//! The direction-independent part of a transcoding pipeline: one input stream in, one output
//! stream out, on an 8 kHz timeline.
//!
//! The engine does the bookkeeping both directions share: sequence tracking (loss, duplicates,
//! reordering, SSRC changes), a continuous output timeline, gap filling (recovery from the next
//! packet, concealment, then comfort noise), a hold timer that keeps 20 ms packets flowing when the
//! input stops, and telephone-event re-clocking. What differs between directions (how payloads
//! decode and encode) is behind [`Depacketizer`] and [`Packetizer`].
//!
//! The engine keeps only what lasts from one packet to the next; the buffers it works in while
//! handling one are borrowed from the caller's [`Scratch`]. Nothing is allocated after
//! construction.

use std::time::{Duration, Instant};

use crate::comfort_noise::{NoiseGenerator, NoiseLevel};
use crate::rtp::{RTP_HEADER_LEN, RtpHeader, RtpPacket, sequence_delta, timestamp_delta};
use crate::telephone_event::TelephoneEvent;
use crate::{Error, MAX_FRAME_SAMPLES_8K};

use super::digits::{DigitGenerator, DigitReport};
use super::{OutputStream, PipelineStats, Scratch, Timing};

/// Samples in one 20 ms frame at 8 kHz: the unit the engine produces output in.
pub(crate) const FRAME: usize = 160;

/// A reorder further back than this many sequence numbers is taken as a restarted stream.
const MAX_MISORDER: i16 = 100;
/// A forward jump beyond this many sequence numbers is taken as a restarted stream.
const MAX_DROPOUT: i16 = 3000;
/// The longest gap filled when a packet arrives; the timer should have filled anything longer.
const MAX_ARRIVAL_FILL: usize = 10 * FRAME;
/// The most frames one timer call produces when the caller was late to call it.
const MAX_CATCH_UP_FRAMES: u32 = 50;

/// Turns input payloads into 8 kHz PCM.
pub(crate) trait Depacketizer {
    /// Input RTP clock ticks per 8 kHz sample (6 for Opus's 48 kHz clock, 1 for G.711).
    const CLOCK_RATIO: u32;
    /// Duration of a payload, in 8 kHz samples; an error for a payload that cannot be decoded.
    fn samples(&self, payload: &[u8]) -> Result<usize, Error>;
    /// Decodes a payload; returns the samples written.
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> Result<usize, Error>;
    /// Recovers the stretch just before `next` from redundancy in it, filling `out`.
    /// Returns false when this codec has no redundancy (the caller then conceals).
    fn recover(&mut self, next: &[u8], out: &mut [i16]) -> Result<bool, Error>;
    /// Conceals a lost stretch, filling `out`.
    fn conceal(&mut self, out: &mut [i16]) -> Result<(), Error>;
    /// Forgets the previous stream (its SSRC changed).
    fn reset(&mut self);
}

/// Turns 20 ms of 8 kHz PCM into an output payload.
pub(crate) trait Packetizer {
    /// Output RTP clock ticks per 8 kHz sample.
    const CLOCK_RATIO: u32;
    /// Encodes one frame into `out`; `None` means "suppressed, send nothing" (DTX).
    fn encode(&mut self, pcm: &[i16; FRAME], out: &mut [u8]) -> Result<Option<usize>, Error>;
}

/// Payload types the engine expects on its input and writes on its output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadTypes {
    pub(crate) audio_in: u8,
    pub(crate) event_in: Option<u8>,
    pub(crate) comfort_noise_in: Option<u8>,
    pub(crate) audio_out: u8,
    pub(crate) event_out: Option<u8>,
    /// A second telephone-event type taken as input: the one our SDP named when the far side's
    /// names another (RFC 3264 says it sends with ours; many carriers send with theirs).
    pub(crate) event_in_alt: Option<u8>,
    /// A second audio type taken as input, for the same reason (a G.711 law under a dynamic
    /// type in the far side's SDP, and the static one in ours).
    pub(crate) audio_in_alt: Option<u8>,
}

/// One direction of one call.
pub(crate) struct Engine<D, P> {
    depacketizer: D,
    packetizer: P,
    payload_types: PayloadTypes,
    timing: Timing,
    input: InputTimeline,
    output: OutputTimeline,
    event: Option<EventMapping>,
    noise: NoiseGenerator,
    /// Samples produced by concealment since the last decoded packet.
    concealed_run: usize,
    /// When the timer fills the next frame if no packet arrives.
    fill_deadline: Option<Instant>,
    /// A digit we are sending ourselves (from SIP INFO), if any.
    digits: DigitGenerator,
    stats: PipelineStats,
}

/// Where the input stream is: which source, the newest sequence number, and the input timestamp
/// of the next sample the engine has not produced yet.
struct InputTimeline {
    ssrc: Option<u32>,
    highest_sequence: u16,
    next_timestamp: u32,
}

/// The output stream: header state and the partly filled frame waiting to be encoded.
struct OutputTimeline {
    stream: OutputStream,
    /// Output timestamp of `pending[0]`.
    pending_timestamp: u32,
    pending: [i16; FRAME],
    pending_len: usize,
    /// Set after a suppressed (DTX) frame and at the start, so the next packet carries the marker.
    marker: bool,
}

/// An input telephone event and where it sits on the output timeline.
struct EventMapping {
    input_timestamp: u32,
    output_timestamp: u32,
    marker_sent: bool,
}

impl<D: Depacketizer, P: Packetizer> Engine<D, P> {
    pub(crate) fn new(
        depacketizer: D,
        packetizer: P,
        payload_types: PayloadTypes,
        stream: OutputStream,
        timing: Timing,
    ) -> Self {
        Engine {
            depacketizer,
            packetizer,
            payload_types,
            timing,
            input: InputTimeline {
                ssrc: None,
                highest_sequence: 0,
                next_timestamp: 0,
            },
            output: OutputTimeline {
                pending_timestamp: stream.first_timestamp,
                stream,
                pending: [0; FRAME],
                pending_len: 0,
                marker: true,
            },
            event: None,
            noise: NoiseGenerator::new(NoiseLevel::QUIET, stream.ssrc),
            concealed_run: 0,
            fill_deadline: None,
            digits: DigitGenerator::default(),
            stats: PipelineStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> &PipelineStats {
        &self.stats
    }

    pub(crate) fn accept_event_payload_type(&mut self, payload_type: u8) {
        self.payload_types.event_in_alt = Some(payload_type);
    }

    pub(crate) fn accept_audio_payload_type(&mut self, payload_type: u8) {
        if payload_type != self.payload_types.audio_in {
            self.payload_types.audio_in_alt = Some(payload_type);
        }
    }

    pub(crate) fn send_audio_as(&mut self, payload_type: u8) {
        self.payload_types.audio_out = payload_type;
    }

    /// Where the output stream goes on: our SSRC, the next sequence number and the timestamp of
    /// the next frame, so a replacement pipeline can continue it without a jump (the samples of
    /// a partly filled frame are dropped; the next frame takes their place).
    pub(crate) fn next_output(&self) -> OutputStream {
        let out = &self.output;
        OutputStream {
            ssrc: out.stream.ssrc,
            first_sequence: out.stream.first_sequence,
            first_timestamp: out.pending_timestamp,
        }
    }

    /// Makes the output continue `stream` (see [`next_output`](Self::next_output)); the next
    /// packet carries the marker, as after a change of source.
    pub(crate) fn continue_output(&mut self, stream: OutputStream) {
        self.output.stream = stream;
        self.output.pending_timestamp = stream.first_timestamp;
        self.output.pending_len = 0;
        self.output.marker = true;
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let generated = self.digits.poll_timeout();
        match (self.fill_deadline, generated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Starts sending a digit as RFC 4733 events on the output stream, as if the far end had.
    ///
    /// Updates follow every 50 ms from [`handle_timeout`](Self::handle_timeout), then three end
    /// reports 20 ms apart. A digit still being sent is ended first.
    pub(crate) fn send_digit(
        &mut self,
        now: Instant,
        digit: char,
        duration: Duration,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        let Some(event_out) = self.payload_types.event_out else {
            return Err(Error::NoTelephoneEvent);
        };
        let timestamp = self
            .output
            .pending_timestamp
            .wrapping_add(self.output.pending_len as u32 * P::CLOCK_RATIO);
        let mut digits = std::mem::take(&mut self.digits);
        let started = digits.start(
            now,
            digit,
            duration,
            (timestamp, P::CLOCK_RATIO),
            &mut |report| self.send_report(event_out, report, scratch, emit),
        );
        self.digits = digits;
        started?;
        Ok(())
    }

    /// Takes one received datagram; calls `emit` for each packet to send, in order.
    pub(crate) fn push(
        &mut self,
        now: Instant,
        datagram: &[u8],
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        self.stats.packets_in += 1;
        let packet = match RtpPacket::parse(datagram) {
            Ok(packet) => packet,
            Err(_) => {
                self.stats.malformed += 1;
                return;
            }
        };
        let pt = packet.payload_type;
        if pt == self.payload_types.audio_in || Some(pt) == self.payload_types.audio_in_alt {
            self.push_audio(now, &packet, scratch, emit);
        } else if Some(pt) == self.payload_types.event_in
            || Some(pt) == self.payload_types.event_in_alt
        {
            self.push_event(&packet, scratch, emit);
        } else if Some(pt) == self.payload_types.comfort_noise_in {
            self.push_comfort_noise(now, &packet);
        } else {
            self.stats.unexpected_payload_type += 1;
        }
    }

    /// Fills frames for input that is overdue, so the far end keeps receiving 20 ms packets.
    pub(crate) fn handle_timeout(
        &mut self,
        now: Instant,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        if let Some(event_out) = self.payload_types.event_out {
            let mut digits = std::mem::take(&mut self.digits);
            digits.handle_timeout(now, &mut |report| {
                self.send_report(event_out, report, scratch, emit)
            });
            self.digits = digits;
        }
        let mut produced = 0;
        while let Some(deadline) = self.fill_deadline {
            if now < deadline {
                return;
            }
            if produced == MAX_CATCH_UP_FRAMES {
                // The caller fell far behind; skip ahead rather than send a burst of filler.
                self.fill_deadline = Some(now + frame_duration(FRAME));
                return;
            }
            let samples = FRAME - self.output.pending_len;
            self.fill(samples, scratch, emit);
            self.input.next_timestamp = self
                .input
                .next_timestamp
                .wrapping_add(samples as u32 * D::CLOCK_RATIO);
            self.fill_deadline = Some(deadline + frame_duration(samples));
            produced += 1;
        }
    }

    fn push_audio(
        &mut self,
        now: Instant,
        packet: &RtpPacket<'_>,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        let samples = match self.depacketizer.samples(packet.payload) {
            Ok(n) if n > 0 && n <= MAX_FRAME_SAMPLES_8K => n,
            _ => {
                self.stats.decode_errors += 1;
                return;
            }
        };
        let lost = match self.track_sequence(packet) {
            Arrival::Next { lost } => lost,
            Arrival::Restart => {
                self.input.next_timestamp = packet.timestamp;
                0
            }
            Arrival::Stale => return,
        };

        let gap =
            timestamp_delta(self.input.next_timestamp, packet.timestamp) / D::CLOCK_RATIO as i32;
        if gap < 0 {
            // In sequence but behind what we produced: the timer filled while this packet was
            // in flight. Shift the mapping instead of dropping every later packet.
            self.stats.realigned += 1;
        } else if gap > 0 {
            let gap = gap as usize;
            let filled = gap.min(MAX_ARRIVAL_FILL);
            self.fill_gap(filled, lost > 0, packet.payload, samples, scratch, emit);
        }

        match self
            .depacketizer
            .decode(packet.payload, &mut scratch.decoded[..])
        {
            Ok(n) => {
                self.concealed_run = 0;
                self.append_decoded(n, scratch, emit);
            }
            Err(_) => {
                self.stats.decode_errors += 1;
                self.fill(samples, scratch, emit);
            }
        }
        self.input.next_timestamp = packet
            .timestamp
            .wrapping_add(samples as u32 * D::CLOCK_RATIO);
        self.fill_deadline = Some(now + frame_duration(samples) + self.timing.hold);
    }

    /// Fills the `gap` samples before a packet: recovery from the packet's redundancy for the
    /// stretch just before it when packets were lost, concealment for the rest.
    fn fill_gap(
        &mut self,
        gap: usize,
        loss: bool,
        next_payload: &[u8],
        next_samples: usize,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        if loss && gap >= next_samples {
            self.fill(gap - next_samples, scratch, emit);
            let out = &mut scratch.decoded[..next_samples];
            match self.depacketizer.recover(next_payload, out) {
                Ok(true) => {
                    self.stats.recovered_samples += next_samples as u64;
                    self.append_decoded(next_samples, scratch, emit);
                }
                _ => self.fill(next_samples, scratch, emit),
            }
        } else {
            self.fill(gap, scratch, emit);
        }
    }

    fn push_event(
        &mut self,
        packet: &RtpPacket<'_>,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        let Ok(event) = TelephoneEvent::parse(packet.payload) else {
            self.stats.malformed += 1;
            return;
        };
        if self.input.ssrc == Some(packet.ssrc) {
            // Events share the audio stream's sequence space; keep it current so the gap they
            // leave in the audio is not mistaken for loss.
            if let Arrival::Stale = self.track_sequence(packet) {
                return;
            }
        }
        self.stats.events_in += 1;
        let Some(event_out) = self.payload_types.event_out else {
            return;
        };
        let is_new = self
            .event
            .as_ref()
            .is_none_or(|e| e.input_timestamp != packet.timestamp);
        if is_new {
            // An event from another source than the audio has no place on its timeline:
            // it starts where the output is now.
            let offset = if self.input.ssrc == Some(packet.ssrc) {
                timestamp_delta(self.input.next_timestamp, packet.timestamp) / D::CLOCK_RATIO as i32
            } else {
                0
            };
            let output_next = self
                .output
                .pending_timestamp
                .wrapping_add(self.output.pending_len as u32 * P::CLOCK_RATIO);
            self.event = Some(EventMapping {
                input_timestamp: packet.timestamp,
                output_timestamp: output_next
                    .wrapping_add_signed(offset.wrapping_mul(P::CLOCK_RATIO as i32)),
                marker_sent: false,
            });
            // Whatever the client had been saying before the digit must not be stretched
            // over it by concealment.
            self.concealed_run = usize::MAX;
        }
        let Some(mapping) = self.event.as_mut() else {
            return;
        };
        // Re-clock the duration; split an event too long for 16 bits into segments (RFC 4733
        // §2.5.1.3), each starting where the previous one ended.
        let scaled =
            u64::from(event.duration) * u64::from(P::CLOCK_RATIO) / u64::from(D::CLOCK_RATIO);
        let segment = scaled.saturating_sub(1) / 0xFFFF;
        let segment_timestamp = mapping
            .output_timestamp
            .wrapping_add((segment * 0xFFFF) as u32);
        let out_event = TelephoneEvent {
            duration: (scaled - segment * 0xFFFF) as u16,
            ..event
        };
        let header = RtpHeader {
            marker: !mapping.marker_sent,
            payload_type: event_out,
            sequence: self.output.stream.next_sequence(),
            timestamp: segment_timestamp,
            ssrc: self.output.stream.ssrc,
        };
        mapping.marker_sent = true;
        let packet = &mut scratch.packet;
        let mut len = header.write(packet);
        len += out_event.write(&mut packet[len..]);
        self.stats.events_out += 1;
        self.stats.packets_out += 1;
        emit(&packet[..len]);
    }

    /// Writes one report of a digit we generate on the output stream.
    fn send_report(
        &mut self,
        event_out: u8,
        report: DigitReport,
        scratch: &mut Scratch,
        emit: &mut impl FnMut(&[u8]),
    ) {
        let header = RtpHeader {
            marker: report.marker,
            payload_type: event_out,
            sequence: self.output.stream.next_sequence(),
            timestamp: report.timestamp,
            ssrc: self.output.stream.ssrc,
        };
        let packet = &mut scratch.packet;
        let mut len = header.write(packet);
        len += report.event.write(&mut packet[len..]);
        self.stats.events_out += 1;
        self.stats.packets_out += 1;
        emit(&packet[..len]);
    }

    fn push_comfort_noise(&mut self, now: Instant, packet: &RtpPacket<'_>) {
        let Ok(level) = crate::comfort_noise::NoiseLevel::parse(packet.payload) else {
            self.stats.malformed += 1;
            return;
        };
        match self.track_sequence(packet) {
            Arrival::Stale => return,
            Arrival::Restart => self.input.next_timestamp = packet.timestamp,
            Arrival::Next { .. } => {}
        }
        self.stats.comfort_noise_in += 1;
        self.noise.set_level(level);
        // Silence starts here: fill with noise at once rather than concealing the last words.
        self.concealed_run = usize::MAX;
        self.fill_deadline = Some(now);
    }

    /// Classifies a packet by its SSRC and sequence number, updating the input timeline.
    fn track_sequence(&mut self, packet: &RtpPacket<'_>) -> Arrival {
        if self.input.ssrc != Some(packet.ssrc) {
            if self.input.ssrc.is_some() {
                self.depacketizer.reset();
            }
            self.stats.restarts += u64::from(self.input.ssrc.is_some());
            self.input.ssrc = Some(packet.ssrc);
            self.input.highest_sequence = packet.sequence;
            return Arrival::Restart;
        }
        let delta = sequence_delta(self.input.highest_sequence, packet.sequence);
        if delta == 0 {
            self.stats.duplicates += 1;
            return Arrival::Stale;
        }
        if delta < 0 && delta > -MAX_MISORDER {
            self.stats.late += 1;
            return Arrival::Stale;
        }
        self.input.highest_sequence = packet.sequence;
        if !(1..=MAX_DROPOUT).contains(&delta) {
            self.stats.restarts += 1;
            return Arrival::Restart;
        }
        let lost = (delta - 1) as u64;
        self.stats.lost += lost;
        Arrival::Next { lost }
    }

    /// Produces `samples` of concealment: the codec's own for a bounded run, comfort noise after.
    fn fill(&mut self, mut samples: usize, scratch: &mut Scratch, emit: &mut impl FnMut(&[u8])) {
        while samples > 0 {
            let chunk = samples.min(FRAME);
            let out = &mut scratch.decoded[..chunk];
            let conceal = self.concealed_run < self.timing.max_conceal_samples();
            // Codec concealment works in 2.5 ms steps; an odd remainder gets noise.
            if conceal && chunk % 20 == 0 && self.depacketizer.conceal(out).is_ok() {
                self.stats.concealed_samples += chunk as u64;
            } else {
                self.noise.fill(out);
                self.stats.noise_samples += chunk as u64;
            }
            self.concealed_run = self.concealed_run.saturating_add(chunk);
            self.append_decoded(chunk, scratch, emit);
            samples -= chunk;
        }
    }

    /// Moves `n` samples from `scratch.decoded` into the pending output frame, encoding full
    /// frames.
    fn append_decoded(&mut self, n: usize, scratch: &mut Scratch, emit: &mut impl FnMut(&[u8])) {
        let mut taken = 0;
        while taken < n {
            let out = &mut self.output;
            let room = FRAME - out.pending_len;
            let step = room.min(n - taken);
            out.pending[out.pending_len..out.pending_len + step]
                .copy_from_slice(&scratch.decoded[taken..taken + step]);
            out.pending_len += step;
            taken += step;
            if out.pending_len == FRAME {
                self.send_frame(scratch, emit);
            }
        }
    }

    fn send_frame(&mut self, scratch: &mut Scratch, emit: &mut impl FnMut(&[u8])) {
        let packet = &mut scratch.packet;
        let out = &mut self.output;
        let timestamp = out.pending_timestamp;
        out.pending_len = 0;
        out.pending_timestamp = timestamp.wrapping_add(FRAME as u32 * P::CLOCK_RATIO);
        match self
            .packetizer
            .encode(&out.pending, &mut packet[RTP_HEADER_LEN..])
        {
            Ok(Some(len)) => {
                let header = RtpHeader {
                    marker: out.marker,
                    payload_type: self.payload_types.audio_out,
                    sequence: out.stream.next_sequence(),
                    timestamp,
                    ssrc: out.stream.ssrc,
                };
                out.marker = false;
                header.write(packet);
                self.stats.packets_out += 1;
                emit(&packet[..RTP_HEADER_LEN + len]);
            }
            Ok(None) => {
                out.marker = true;
                self.stats.suppressed_frames += 1;
            }
            Err(_) => self.stats.encode_errors += 1,
        }
    }
}

enum Arrival {
    /// The next packet in sequence, after `lost` missing ones.
    Next { lost: u64 },
    /// A new or restarted stream: its timestamp starts a new input timeline.
    Restart,
    /// A duplicate or a packet that arrived after its place was already filled.
    Stale,
}

fn frame_duration(samples: usize) -> Duration {
    Duration::from_micros(samples as u64 * 125)
}
