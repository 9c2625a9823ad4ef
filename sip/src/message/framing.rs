//! Message framing on stream transports (TCP, TLS): RFC 3261 §18.3 makes Content-Length
//! mandatory there, and it is what tells one message from the next.

use super::parse::{Limits, ParseError, find_head_end};

/// Splits a byte stream into whole messages.
///
/// Feed it what the socket read with [`StreamFramer::push`], then take frames with
/// [`StreamFramer::next_frame`] until it returns `Ok(None)`. An `Err` means the stream is beyond
/// repair (no length, or over a limit): close the connection.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
}

impl StreamFramer {
    /// A framer enforcing `limits` on each message.
    pub fn new(limits: Limits) -> Self {
        Self {
            buf: Vec::new(),
            limits,
        }
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete message's bytes, `Ok(None)` while more are needed.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, ParseError> {
        // RFC 5626 keep-alives: bare CRLFs between messages.
        let skip = self
            .buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        self.buf.drain(..skip);
        let Some((head_end, body_start)) = find_head_end(&self.buf) else {
            if self.buf.len() > self.limits.max_message {
                return Err(ParseError::TooLarge(self.limits.max_message));
            }
            return Ok(None);
        };
        let len = content_length(&self.buf[..head_end])?;
        if len > self.limits.max_body {
            return Err(ParseError::BodyTooLarge(self.limits.max_body));
        }
        let total = body_start + len;
        if total > self.limits.max_message {
            return Err(ParseError::TooLarge(self.limits.max_message));
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        Ok(Some(std::mem::replace(&mut self.buf, rest)))
    }
}

fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let head = std::str::from_utf8(head).map_err(|_| ParseError::Encoding)?;
    for line in head.split('\n') {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            let ok =
                !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit());
            return ok
                .then(|| value.parse().ok())
                .flatten()
                .ok_or(ParseError::BadHeader("Content-Length"));
        }
    }
    Err(ParseError::Missing("Content-Length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn frames_split_and_joined_input() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"\r\n\r\n");
        f.push(&MSG[..10]);
        assert_eq!(f.next_frame().unwrap(), None);
        f.push(&MSG[10..]);
        f.push(MSG);
        assert_eq!(f.next_frame().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_frame().unwrap().as_deref(), Some(MSG));
        assert_eq!(f.next_frame().unwrap(), None);
    }

    #[test]
    fn missing_length_and_oversize_fail() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::Missing("Content-Length")));
        let mut f = StreamFramer::new(Limits {
            max_message: 16,
            ..Limits::default()
        });
        f.push(&[b'A'; 64]);
        assert!(matches!(f.next_frame(), Err(ParseError::TooLarge(16))));
    }
}
