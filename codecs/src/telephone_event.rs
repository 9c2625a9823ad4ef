//! RFC 4733 telephone-event payloads: DTMF digits and other named events.

use crate::Error;

/// Size of one telephone-event payload block.
pub const TELEPHONE_EVENT_LEN: usize = 4;

/// One RFC 4733 event report: which event, whether it has ended, its volume and duration so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code: 0–9 digits, 10 `*`, 11 `#`, 12–15 `A`–`D`, others per RFC 4734.
    pub event: u8,
    /// The E bit: this report is the event's last (usually sent three times).
    pub end: bool,
    /// Power level in -dBm0, 0–63.
    pub volume: u8,
    /// Duration since the event's timestamp, in the stream's clock units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Parses the first event block of a payload; a payload may carry redundant blocks after it.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let block: [u8; TELEPHONE_EVENT_LEN] = payload
            .get(..TELEPHONE_EVENT_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::BadTelephoneEvent)?;
        Ok(TelephoneEvent {
            event: block[0],
            end: block[1] & 0x80 != 0,
            volume: block[1] & 0x3F,
            duration: u16::from_be_bytes([block[2], block[3]]),
        })
    }

    /// Writes the 4-byte payload at the start of `buf` and returns its length.
    pub fn write(&self, buf: &mut [u8]) -> usize {
        buf[0] = self.event;
        buf[1] = (u8::from(self.end) << 7) | (self.volume & 0x3F);
        buf[2..4].copy_from_slice(&self.duration.to_be_bytes());
        TELEPHONE_EVENT_LEN
    }

    /// The DTMF character for digit events, for logs and call records.
    pub fn dtmf_char(&self) -> Option<char> {
        b"0123456789*#ABCD"
            .get(usize::from(self.event))
            .map(|&c| char::from(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 1600,
        };
        let mut buf = [0u8; 4];
        e.write(&mut buf);
        assert_eq!(buf, [11, 0x8A, 0x06, 0x40]);
        assert_eq!(TelephoneEvent::parse(&buf).unwrap(), e);
        assert_eq!(e.dtmf_char(), Some('#'));
    }

    #[test]
    fn rejects_short_payload() {
        assert_eq!(
            TelephoneEvent::parse(&[1, 2, 3]),
            Err(Error::BadTelephoneEvent)
        );
    }
}
