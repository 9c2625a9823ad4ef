//! Server transactions: INVITE (§17.2.1, RFC 6026) and non-INVITE (§17.2.2).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Backoff, TimerConfig, TransactionKey, Transmit, earliest};
use crate::message::{Method, Request, Response, Transport};

/// What a server transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The ACK for a non-2xx final arrived (INVITE only); nothing to do but good to know.
    Acked,
    /// Timer H fired: no ACK for our non-2xx final.
    AckTimeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Trying,
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

/// One server transaction, INVITE or not.
#[derive(Debug)]
pub struct ServerTransaction {
    key: TransactionKey,
    request: Request,
    source: SocketAddr,
    transport: Transport,
    config: TimerConfig,
    state: State,
    last_response: Option<Vec<u8>>,
    /// Timer G.
    retransmit: Option<Backoff>,
    /// Timer H.
    timeout: Option<Instant>,
    /// Timer I, J or L.
    linger: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a new request; responses go to `source` (already adjusted
    /// for `received`/`rport` by the caller).
    pub fn new(
        key: TransactionKey,
        request: Request,
        source: SocketAddr,
        transport: Transport,
        config: TimerConfig,
    ) -> Self {
        let state = if request.method == Method::Invite {
            State::Proceeding
        } else {
            State::Trying
        };
        Self {
            key,
            request,
            source,
            transport,
            config,
            state,
            last_response: None,
            retransmit: None,
            timeout: None,
            linger: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The matching key.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The request that created it.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where responses go.
    pub fn source(&self) -> SocketAddr {
        self.source
    }

    /// Whether it is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Whether a final response was sent.
    pub fn has_final(&self) -> bool {
        !matches!(self.state, State::Trying | State::Proceeding)
    }

    /// Whether a 2xx was sent to this INVITE (RFC 6026 Accepted): an ACK matching it is the
    /// ACK for that 2xx, which belongs to the dialog, not to the transaction.
    pub fn is_accepted(&self) -> bool {
        self.state == State::Accepted
    }

    fn is_invite(&self) -> bool {
        self.request.method == Method::Invite
    }

    /// A retransmission of the request (or an ACK, for INVITE) arrived.
    pub fn handle_request(&mut self, now: Instant, req: &Request) {
        if req.method == Method::Ack {
            if self.state == State::Completed {
                self.state = State::Confirmed;
                self.retransmit = None;
                self.timeout = None;
                let wait = if self.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    self.config.t4
                };
                self.linger = Some(now + wait);
                self.events.push_back(ServerEvent::Acked);
            }
            return;
        }
        // RFC 6026: in Accepted the TU retransmits the 2xx; the request retransmission is absorbed.
        if matches!(self.state, State::Proceeding | State::Completed) {
            self.resend();
        } else if self.state == State::Trying {
            // Nothing sent yet: the request is simply absorbed.
        }
    }

    /// Sends a response from the transaction user.
    pub fn send_response(&mut self, now: Instant, resp: &Response) {
        if self.has_final() {
            return;
        }
        self.last_response = Some(resp.to_bytes());
        self.resend();
        if resp.status.is_provisional() {
            self.state = State::Proceeding;
            return;
        }
        let reliable = self.transport.is_reliable();
        if self.is_invite() && resp.status.is_success() {
            self.state = State::Accepted;
            self.linger = Some(now + self.config.t64());
        } else if self.is_invite() {
            self.state = State::Completed;
            self.retransmit = (!reliable).then(|| Backoff::start(now, self.config.t1));
            self.timeout = Some(now + self.config.t64());
        } else {
            self.state = State::Completed;
            self.linger = Some(
                now + if reliable {
                    Duration::ZERO
                } else {
                    self.config.t64()
                },
            );
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(mut b) = self.retransmit {
            if now >= b.at {
                b.next(now, Some(self.config.t2));
                self.retransmit = Some(b);
                self.resend();
            }
        }
        if self.timeout.is_some_and(|t| now >= t) {
            self.timeout = None;
            self.retransmit = None;
            self.state = State::Terminated;
            self.events.push_back(ServerEvent::AckTimeout);
        }
        if self.linger.is_some_and(|t| now >= t) {
            self.linger = None;
            self.state = State::Terminated;
        }
    }

    /// The next response bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.retransmit.map(|b| b.at), self.timeout, self.linger])
    }

    fn resend(&mut self) {
        if let Some(data) = &self.last_response {
            self.transmits.push_back(Transmit {
                destination: self.source,
                transport: self.transport.clone(),
                data: data.clone(),
            });
        }
    }
}
