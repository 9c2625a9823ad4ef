//! Digits the gateway sends itself (a SIP INFO from the other leg) as RFC 4733 reports: a first
//! report with the marker, duration updates every 50 ms, then three end reports 20 ms apart.
//! Shared by the transcoding engine and the relay; each writes the reports into its own stream.

use std::time::{Duration, Instant};

use crate::Error;
use crate::telephone_event::TelephoneEvent;

/// How often a generated digit's duration is updated (RFC 4733 suggests 50 ms).
const UPDATE: Duration = Duration::from_millis(50);
/// The spacing of a generated digit's three end reports.
const END_GAP: Duration = Duration::from_millis(20);

/// One report to put on the wire, in the output stream's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DigitReport {
    pub(crate) marker: bool,
    pub(crate) timestamp: u32,
    pub(crate) event: TelephoneEvent,
}

/// The digit being sent, if any.
#[derive(Debug, Default)]
pub(crate) struct DigitGenerator {
    current: Option<Digit>,
}

#[derive(Debug)]
struct Digit {
    event: u8,
    timestamp: u32,
    total: u32,
    elapsed: u32,
    step: u32,
    first: bool,
    ends_left: u8,
    next_at: Instant,
}

impl DigitGenerator {
    /// Starts `digit` at output `timestamp` (a stream with `clock_ratio` ticks per 8 kHz
    /// sample); a digit still in progress is ended first. `report` gets what is due now.
    pub(crate) fn start(
        &mut self,
        now: Instant,
        digit: char,
        duration: Duration,
        (timestamp, clock_ratio): (u32, u32),
        report: &mut impl FnMut(DigitReport),
    ) -> Result<(), Error> {
        let event = dtmf_code(digit).ok_or(Error::NotADigit)?;
        if let Some(mut previous) = self.current.take() {
            previous.elapsed = previous.total;
            while previous.ends_left > 0 {
                report(previous.next_report());
            }
        }
        let ticks = |d: Duration| (d.as_micros() * 8 / 1000) as u32 * clock_ratio;
        let mut digit = Digit {
            event,
            timestamp,
            // At least 40 ms, at most what 16 bits of duration hold at this clock.
            total: ticks(duration).clamp(ticks(Duration::from_millis(40)), 0xFFFF),
            // The first report already covers one frame, as senders usually start.
            elapsed: ticks(Duration::from_millis(20)),
            step: ticks(UPDATE),
            first: true,
            ends_left: 3,
            next_at: now + UPDATE,
        };
        report(digit.next_report());
        self.current = Some(digit);
        Ok(())
    }

    /// When the next report is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().map(|d| d.next_at)
    }

    /// Sends the report due at `now`, if any.
    pub(crate) fn handle_timeout(&mut self, now: Instant, report: &mut impl FnMut(DigitReport)) {
        let Some(digit) = self.current.as_mut() else {
            return;
        };
        if digit.next_at > now {
            return;
        }
        report(digit.next_report());
        digit.next_at = now
            + if digit.elapsed >= digit.total {
                END_GAP
            } else {
                UPDATE
            };
        if digit.ends_left == 0 {
            self.current = None;
        }
    }
}

impl Digit {
    fn next_report(&mut self) -> DigitReport {
        if !self.first {
            self.elapsed = (self.elapsed + self.step).min(self.total);
        }
        let end = self.elapsed >= self.total;
        if end {
            self.ends_left = self.ends_left.saturating_sub(1);
        }
        let marker = self.first;
        self.first = false;
        DigitReport {
            marker,
            timestamp: self.timestamp,
            event: TelephoneEvent {
                event: self.event,
                end,
                volume: 10,
                duration: self.elapsed as u16,
            },
        }
    }
}

/// The RFC 4733 event code of a DTMF character.
fn dtmf_code(digit: char) -> Option<u8> {
    match digit.to_ascii_uppercase() {
        d @ '0'..='9' => Some(d as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        d @ 'A'..='D' => Some(d as u8 - b'A' + 12),
        _ => None,
    }
}
