//! Shared harness for the virtual-time tests: message builders and a clock that only moves
//! when a test says so.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use landline_sip::message::{Limits, Message, Request, Response, StatusCode};

/// Two loopback addresses standing for the two peers.
pub const ALICE: &str = "127.0.0.1:5060";
/// The far end.
pub const BOB: &str = "127.0.0.1:5070";

/// Parses an address constant.
pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// A virtual clock.
pub struct Clock {
    pub now: Instant,
}

impl Clock {
    pub fn new() -> Self {
        Self {
            now: Instant::now(),
        }
    }

    pub fn advance(&mut self, d: Duration) -> Instant {
        self.now += d;
        self.now
    }

    pub fn set(&mut self, t: Instant) -> Instant {
        self.now = self.now.max(t);
        self.now
    }
}

/// A request with the mandatory headers, method `method`, branch `branch`.
pub fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=a1\r\n\
         To: <sip:bob@127.0.0.1>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@127.0.0.1:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes(), &Limits::default()) {
        Ok(Message::Request(r)) => r,
        other => panic!("bad test request: {other:?}"),
    }
}

/// A response to `req` with a To tag.
pub fn response(req: &Request, code: u16, to_tag: &str) -> Response {
    let status = StatusCode::new(code).expect("test status");
    let mut resp = Response::to_request(req, status);
    if let Some(to) = resp.headers.to_mut() {
        to.params.set("tag", Some(to_tag));
    }
    resp
}

/// Parses sent bytes back, for assertions.
pub fn parse(data: &[u8]) -> Message {
    Message::parse(data, &Limits::default()).expect("we sent something unparseable")
}

/// The first line of a sent message.
pub fn first_line(data: &[u8]) -> String {
    String::from_utf8_lossy(data)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}
