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

use landline_sip::message::{SipUri, Transport};
use landline_sip::transaction::Transmit;
use landline_sip::ua::{CallId, CallParams, Config, Event, UserAgent};

/// Decides whether the network loses a datagram (`true` when Alice sent it).
pub type DropFn = Box<dyn FnMut(bool, &Transmit) -> bool>;

/// Two user agents wired back to back over a virtual network that can drop messages.
pub struct Pair {
    pub alice: UserAgent,
    pub bob: UserAgent,
    pub clock: Clock,
    pub transport: Transport,
    /// Return true to drop a datagram (sender is alice when the flag is true).
    pub drop: DropFn,
    pub alice_events: Vec<Event>,
    pub bob_events: Vec<Event>,
    /// Every first line sent, in order, prefixed with "A>" or "B>".
    pub wire: Vec<String>,
}

impl Pair {
    pub fn new(transport: Transport) -> Self {
        Self::with(transport, |_| {})
    }

    pub fn with(transport: Transport, tweak: impl Fn(&mut Config)) -> Self {
        let mut a = Config::new(addr(ALICE), 1);
        let mut b = Config::new(addr(BOB), 2);
        tweak(&mut a);
        tweak(&mut b);
        Self {
            alice: UserAgent::new(a),
            bob: UserAgent::new(b),
            clock: Clock::new(),
            transport,
            drop: Box::new(|_, _| false),
            alice_events: Vec::new(),
            bob_events: Vec::new(),
            wire: Vec::new(),
        }
    }

    /// Alice calls Bob with a dummy offer.
    pub fn call(&mut self) -> CallId {
        let params = CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(addr(BOB).port())),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: self.transport.clone(),
            sdp: Some(b"v=0\r\n".to_vec()),
            credentials: None,
        };
        let now = self.clock.now;
        self.alice.call(now, params)
    }

    /// Delivers everything in flight (repeatedly) without moving time.
    pub fn deliver(&mut self) {
        for round in 0.. {
            assert!(
                round < 1000,
                "livelock: messages keep flowing\n{:#?}",
                &self.wire[self.wire.len().saturating_sub(20)..]
            );
            let mut moved = false;
            while let Some(t) = self.alice.poll_transmit() {
                moved = true;
                self.wire.push(format!("A>{}", first_line(&t.data)));
                if !(self.drop)(true, &t) {
                    self.bob
                        .handle_receive(self.clock.now, addr(ALICE), t.transport, &t.data);
                }
            }
            while let Some(t) = self.bob.poll_transmit() {
                moved = true;
                self.wire.push(format!("B>{}", first_line(&t.data)));
                if !(self.drop)(false, &t) {
                    self.alice
                        .handle_receive(self.clock.now, addr(BOB), t.transport, &t.data);
                }
            }
            while let Some(e) = self.alice.poll_event() {
                self.alice_events.push(e);
            }
            while let Some(e) = self.bob.poll_event() {
                self.bob_events.push(e);
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs timers and delivery until `d` of virtual time has passed.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.clock.now + d;
        self.deliver();
        for step in 0.. {
            assert!(step < 100_000, "timers never settle");
            let next = [self.alice.poll_timeout(), self.bob.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.clock.set(t);
                    let now = self.clock.now;
                    self.alice.handle_timeout(now);
                    self.bob.handle_timeout(now);
                    self.deliver();
                }
                _ => break,
            }
        }
        self.clock.set(end);
    }

    /// The single incoming call Bob has seen.
    pub fn bob_call(&self) -> CallId {
        self.bob_events
            .iter()
            .find_map(|e| match e {
                Event::IncomingCall { call, .. } => Some(*call),
                _ => None,
            })
            .expect("bob saw no call")
    }

    /// How many lines on the wire start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.wire.iter().filter(|l| l.starts_with(prefix)).count()
    }
}
