//! RFC 3261 §17 transactions with the RFC 6026 Accepted state.
//!
//! Each transaction is a plain value: feed it messages and timeouts with `handle_*`, drain what to
//! send with `poll_transmit`, what happened with `poll_event`, and when to call back with
//! `poll_timeout`. Retransmission timers (A, E, G) run only on unreliable transports; the
//! wait timers (D, I, J, K) are zero on reliable ones, as §17 says.

mod client;
mod server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use client::{ClientEvent, ClientTransaction};
pub use server::{ServerEvent, ServerTransaction};

use crate::message::{Header, Method, Request, Response, Transport};

/// The RFC 3261 timer base values; tests shrink them, deployments keep the defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// RTT estimate (default 500 ms): first retransmit interval, and 64×T1 is every timeout.
    pub t1: Duration,
    /// Cap on the non-INVITE and response retransmit interval (default 4 s).
    pub t2: Duration,
    /// How long a message may stay in the network (default 5 s).
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64×T1: timers B, F, H, L, M and the 2xx retransmit limit.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// Bytes to send and where: the only output of the crate toward the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination address.
    pub destination: SocketAddr,
    /// Transport to send over (the shell picks or opens the connection).
    pub transport: Transport,
    /// The serialised message.
    pub data: Vec<u8>,
}

/// What identifies a transaction (RFC 3261 §17.1.3 and §17.2.3).
///
/// ACK is filed under INVITE so that the ACK for a non-2xx final finds its server transaction;
/// CANCEL has its own transaction and finds its INVITE with [`TransactionKey::with_method`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionKey {
    /// The top Via branch (or, for RFC 2543 peers without one, Call-ID, CSeq and From tag).
    pub branch: String,
    /// The top Via sent-by; empty for client transactions, which only we generate.
    pub sent_by: String,
    /// The method, with ACK folded into INVITE.
    pub method: Method,
}

impl TransactionKey {
    /// The key of the server transaction a received request belongs to; `None` if it has no Via.
    pub fn for_server(req: &Request) -> Option<Self> {
        let via = req.headers.top_via()?;
        let branch = match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") => b.to_owned(),
            _ => fallback_branch(&req.headers)?,
        };
        let method = if req.method == Method::Ack {
            Method::Invite
        } else {
            req.method.clone()
        };
        Some(Self {
            branch,
            sent_by: via.sent_by(),
            method,
        })
    }

    /// The key of the client transaction a received response belongs to.
    pub fn for_response(resp: &Response) -> Option<Self> {
        let branch = resp.headers.top_via()?.branch()?.to_owned();
        let method = resp.headers.cseq()?.method.clone();
        let method = if method == Method::Ack {
            Method::Invite
        } else {
            method
        };
        Some(Self {
            branch,
            sent_by: String::new(),
            method,
        })
    }

    /// The same transaction id under another method: how CANCEL finds its INVITE.
    pub fn with_method(&self, method: Method) -> Self {
        Self {
            method,
            ..self.clone()
        }
    }
}

fn fallback_branch(h: &crate::message::Headers) -> Option<String> {
    let cseq = h.cseq()?;
    Some(format!(
        "2543:{}:{}:{}",
        h.call_id()?,
        cseq.seq,
        h.from()?.tag().unwrap_or("")
    ))
}

/// Builds the ACK for a non-2xx final response (RFC 3261 §17.1.1.3): same Request-URI, top Via,
/// From, Call-ID and Route as the INVITE, To from the response, CSeq method ACK.
pub fn ack_for_non_2xx(invite: &Request, resp: &Response) -> Request {
    let mut headers = crate::message::Headers::new();
    for h in invite.headers.iter() {
        match h {
            Header::Via(_) if headers.top_via().is_none() => headers.push(h.clone()),
            Header::From(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => {
                headers.push(h.clone());
            }
            Header::To(_) => {
                let to = resp.headers.to().cloned().map(Header::To);
                headers.push(to.unwrap_or_else(|| h.clone()));
            }
            Header::CSeq(c) => headers.push(Header::CSeq(crate::message::CSeq {
                seq: c.seq,
                method: Method::Ack,
            })),
            _ => {}
        }
    }
    Request {
        method: Method::Ack,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}

/// Builds the CANCEL for a pending INVITE (RFC 3261 §9.1): same Request-URI, top Via, From,
/// To, Call-ID, CSeq number and Route, method CANCEL.
pub fn cancel_for(invite: &Request) -> Request {
    let mut headers = crate::message::Headers::new();
    for h in invite.headers.iter() {
        match h {
            Header::Via(_) if headers.top_via().is_none() => headers.push(h.clone()),
            Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) => {
                headers.push(h.clone());
            }
            Header::MaxForwards(_) => headers.push(h.clone()),
            Header::CSeq(c) => headers.push(Header::CSeq(crate::message::CSeq {
                seq: c.seq,
                method: Method::Cancel,
            })),
            _ => {}
        }
    }
    Request {
        method: Method::Cancel,
        uri: invite.uri.clone(),
        headers,
        body: Vec::new(),
    }
}

/// A retransmission timer: next fire time and current interval.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    at: Instant,
    interval: Duration,
}

impl Backoff {
    fn start(now: Instant, t1: Duration) -> Self {
        Self {
            at: now + t1,
            interval: t1,
        }
    }

    /// Doubles the interval, capped at `cap` when given (non-INVITE and responses).
    fn next(&mut self, now: Instant, cap: Option<Duration>) {
        self.interval *= 2;
        if let Some(cap) = cap {
            self.interval = self.interval.min(cap);
        }
        self.at = now + self.interval;
    }
}

fn earliest(times: &[Option<Instant>]) -> Option<Instant> {
    times.iter().flatten().min().copied()
}
