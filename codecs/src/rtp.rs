//! RTP packets (RFC 3550): a borrowed, validated view for reading and a header writer.
//!
//! Neither allocates: a read borrows the datagram, a write fills a caller's buffer. Sequence and
//! timestamp arithmetic is wrapping, with helpers that give the signed distance between two values.

use crate::Error;

/// Size of the fixed RTP header, without CSRCs or extensions.
pub const RTP_HEADER_LEN: usize = 12;

/// A received RTP packet: header fields and the payload, borrowed from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// The marker bit: start of a talkspurt for audio, start of an event for RFC 4733.
    pub marker: bool,
    /// The 7-bit payload type, to be interpreted through the SDP's rtpmap.
    pub payload_type: u8,
    /// The 16-bit sequence number.
    pub sequence: u16,
    /// The media timestamp in the payload format's clock.
    pub timestamp: u32,
    /// The synchronisation source that sent this packet.
    pub ssrc: u32,
    /// The payload, after CSRCs and header extension and without padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates a datagram as RTP version 2.
    ///
    /// Rejects what cannot be a well-formed packet: short data, another version, CSRCs,
    /// extensions or padding that overrun the datagram, and an empty payload.
    pub fn parse(datagram: &'a [u8]) -> Result<Self, Error> {
        if datagram.len() < RTP_HEADER_LEN {
            return Err(Error::TruncatedRtp);
        }
        let first = datagram[0];
        if first >> 6 != 2 {
            return Err(Error::NotRtp);
        }
        let has_padding = first & 0x20 != 0;
        let has_extension = first & 0x10 != 0;
        let csrc_count = usize::from(first & 0x0F);
        let second = datagram[1];
        let mut offset = RTP_HEADER_LEN + 4 * csrc_count;
        if has_extension {
            let words = datagram
                .get(offset + 2..offset + 4)
                .ok_or(Error::TruncatedRtp)?;
            offset += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = datagram.len();
        if has_padding {
            let pad = usize::from(datagram[end - 1]);
            if pad == 0 || pad > end {
                return Err(Error::TruncatedRtp);
            }
            end -= pad;
        }
        if offset >= end {
            return Err(Error::TruncatedRtp);
        }
        Ok(RtpPacket {
            marker: second & 0x80 != 0,
            payload_type: second & 0x7F,
            sequence: u16::from_be_bytes([datagram[2], datagram[3]]),
            timestamp: u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]),
            ssrc: u32::from_be_bytes([datagram[8], datagram[9], datagram[10], datagram[11]]),
            payload: &datagram[offset..end],
        })
    }
}

/// The fixed header of an RTP packet to send (no CSRCs, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// The marker bit.
    pub marker: bool,
    /// The 7-bit payload type negotiated for this stream.
    pub payload_type: u8,
    /// The 16-bit sequence number.
    pub sequence: u16,
    /// The media timestamp.
    pub timestamp: u32,
    /// Our synchronisation source for this stream.
    pub ssrc: u32,
}

impl RtpHeader {
    /// Writes the 12-byte header at the start of `buf` and returns its length.
    ///
    /// `buf` must hold at least [`RTP_HEADER_LEN`] bytes; every caller owns a packet-sized buffer.
    pub fn write(&self, buf: &mut [u8]) -> usize {
        buf[0] = 0x80;
        buf[1] = (u8::from(self.marker) << 7) | (self.payload_type & 0x7F);
        buf[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        RTP_HEADER_LEN
    }
}

/// The signed distance from sequence number `from` to `to`, taking wrap-around into account.
#[inline]
pub const fn sequence_delta(from: u16, to: u16) -> i16 {
    to.wrapping_sub(from) as i16
}

/// The signed distance from timestamp `from` to `to`, taking wrap-around into account.
#[inline]
pub const fn timestamp_delta(from: u32, to: u32) -> i32 {
    to.wrapping_sub(from) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(first: u8, extra_header: &[u8], payload: &[u8], trailer: &[u8]) -> Vec<u8> {
        let mut p = vec![first, 0x80 | 111, 0x12, 0x34, 0, 0, 0x03, 0xC0, 1, 2, 3, 4];
        p.extend_from_slice(extra_header);
        p.extend_from_slice(payload);
        p.extend_from_slice(trailer);
        p
    }

    #[test]
    fn parses_plain_packet() {
        let bytes = packet(0x80, &[], &[9, 9, 9], &[]);
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(p.marker);
        assert_eq!(p.payload_type, 111);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 960);
        assert_eq!(p.ssrc, 0x0102_0304);
        assert_eq!(p.payload, &[9, 9, 9]);
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        let ext = [0, 0, 0, 0, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0];
        let bytes = packet(0x80 | 0x20 | 0x10 | 1, &ext, &[7, 7], &[0, 0, 3]);
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p.payload, &[7, 7]);
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(RtpPacket::parse(&[0x80; 11]), Err(Error::TruncatedRtp));
        assert_eq!(
            RtpPacket::parse(&packet(0x40, &[], &[1], &[])),
            Err(Error::NotRtp)
        );
        // CSRC count larger than the datagram.
        assert_eq!(
            RtpPacket::parse(&packet(0x8F, &[], &[1], &[])),
            Err(Error::TruncatedRtp)
        );
        // Padding length larger than the datagram, or zero.
        assert_eq!(
            RtpPacket::parse(&packet(0xA0, &[], &[1], &[200])),
            Err(Error::TruncatedRtp)
        );
        assert_eq!(
            RtpPacket::parse(&packet(0xA0, &[], &[1], &[0])),
            Err(Error::TruncatedRtp)
        );
        // Header with no payload.
        assert_eq!(
            RtpPacket::parse(&packet(0x80, &[], &[], &[])),
            Err(Error::TruncatedRtp)
        );
    }

    #[test]
    fn header_round_trips() {
        let header = RtpHeader {
            marker: true,
            payload_type: 8,
            sequence: 65535,
            timestamp: u32::MAX,
            ssrc: 42,
        };
        let mut buf = [0u8; 16];
        let n = header.write(&mut buf);
        buf[n] = 0xD5;
        let p = RtpPacket::parse(&buf[..n + 1]).unwrap();
        assert_eq!(
            (p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (true, 8, 65535, u32::MAX, 42)
        );
    }

    #[test]
    fn deltas_wrap() {
        assert_eq!(sequence_delta(65535, 1), 2);
        assert_eq!(sequence_delta(1, 65535), -2);
        assert_eq!(timestamp_delta(u32::MAX - 159, 0), 160);
    }
}
