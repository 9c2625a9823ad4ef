//! Client transactions: INVITE (§17.1.1, RFC 6026) and non-INVITE (§17.1.2).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use super::{Backoff, TimerConfig, TransactionKey, Transmit, ack_for_non_2xx, earliest};
use crate::message::{Method, Request, Response, Transport};

/// What a client transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx.
    Provisional(Response),
    /// A final response (every 2xx of an INVITE, including forks and retransmissions, since the
    /// dialog layer must ACK each).
    Final(Response),
    /// Timer B or F fired without a final response: treat as 408.
    Timeout,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

/// One client transaction, INVITE or not (the kind comes from the request's method).
#[derive(Debug)]
pub struct ClientTransaction {
    key: TransactionKey,
    request: Request,
    wire: Vec<u8>,
    ack: Option<Vec<u8>>,
    destination: SocketAddr,
    transport: Transport,
    config: TimerConfig,
    state: State,
    /// Timer A or E.
    retransmit: Option<Backoff>,
    /// Timer B or F.
    timeout: Option<Instant>,
    /// Timer D, K or M.
    linger: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts the transaction and queues the request; `request` must carry a Via with a branch.
    pub fn new(
        now: Instant,
        request: Request,
        destination: SocketAddr,
        transport: Transport,
        config: TimerConfig,
    ) -> Self {
        let branch = request
            .headers
            .top_via()
            .and_then(|v| v.branch())
            .unwrap_or("")
            .to_owned();
        let key = TransactionKey {
            branch,
            sent_by: String::new(),
            method: request.method.clone(),
        };
        let wire = request.to_bytes();
        let retransmit = (!transport.is_reliable()).then(|| Backoff::start(now, config.t1));
        let mut t = Self {
            key,
            request,
            wire,
            ack: None,
            destination,
            transport,
            config,
            state: State::Calling,
            retransmit,
            timeout: Some(now + config.t64()),
            linger: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        t.send_request();
        t
    }

    /// The key responses are matched with.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where the request goes (reused for an authenticated retry).
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// The transport in use.
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Whether it is over and can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == State::Terminated
    }

    /// Whether a final response has been received.
    pub fn has_final(&self) -> bool {
        matches!(
            self.state,
            State::Completed | State::Accepted | State::Terminated
        )
    }

    fn is_invite(&self) -> bool {
        self.request.method == Method::Invite
    }

    /// Feeds a response matched to this transaction.
    pub fn handle_response(&mut self, now: Instant, resp: Response) {
        let provisional = resp.status.is_provisional();
        match (self.state, provisional) {
            (State::Calling | State::Proceeding, true) => {
                self.state = State::Proceeding;
                if self.is_invite() {
                    // Timer B guards Calling only; a ringing call may wait as long as it likes.
                    self.retransmit = None;
                    self.timeout = None;
                } else if let Some(b) = &mut self.retransmit {
                    // Timer E keeps firing at T2 in Proceeding.
                    b.interval = self.config.t2;
                }
                self.events.push_back(ClientEvent::Provisional(resp));
            }
            (State::Calling | State::Proceeding, false) => {
                self.retransmit = None;
                self.timeout = None;
                if self.is_invite() && resp.status.is_success() {
                    // RFC 6026: stay to absorb 2xx retransmissions and forks (Timer M).
                    self.state = State::Accepted;
                    self.linger = Some(now + self.config.t64());
                } else {
                    self.state = State::Completed;
                    let wait = match (self.is_invite(), self.transport.is_reliable()) {
                        (_, true) => std::time::Duration::ZERO,
                        (true, false) => std::time::Duration::from_secs(32),
                        (false, false) => self.config.t4,
                    };
                    self.linger = Some(now + wait);
                    if self.is_invite() {
                        self.ack = Some(ack_for_non_2xx(&self.request, &resp).to_bytes());
                        self.send_ack();
                    }
                }
                self.events.push_back(ClientEvent::Final(resp));
            }
            (State::Accepted, false) if resp.status.is_success() => {
                self.events.push_back(ClientEvent::Final(resp));
            }
            (State::Completed, false) if self.is_invite() => self.send_ack(),
            _ => {}
        }
    }

    /// Runs timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(b) = self.retransmit {
            if now >= b.at {
                let cap = (!self.is_invite()).then_some(self.config.t2);
                if let Some(b) = &mut self.retransmit {
                    b.next(now, cap);
                }
                self.send_request();
            }
        }
        if self.timeout.is_some_and(|t| now >= t) {
            self.timeout = None;
            self.retransmit = None;
            self.state = State::Terminated;
            self.events.push_back(ClientEvent::Timeout);
        }
        if self.linger.is_some_and(|t| now >= t) {
            self.linger = None;
            self.state = State::Terminated;
        }
    }

    /// Cancels retransmission and waiting, e.g. when the transport reported an error.
    pub fn terminate(&mut self) {
        self.state = State::Terminated;
        self.retransmit = None;
        self.timeout = None;
        self.linger = None;
    }

    /// The transport could not carry the request (connection refused, TLS handshake or
    /// certificate failure): RFC 3261 §8.1.3.1 treats that like a 503 from the peer, so the
    /// user sees a final 503 now rather than a timeout later. Nothing changes once a final
    /// response has arrived or the transaction is over.
    pub fn transport_error(&mut self) {
        if self.has_final() {
            return;
        }
        self.terminate();
        let resp = Response::to_request(
            &self.request,
            crate::message::StatusCode::SERVICE_UNAVAILABLE,
        );
        self.events.push_back(ClientEvent::Final(resp));
    }

    /// The next datagram or stream write to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the transaction user.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(&[self.retransmit.map(|b| b.at), self.timeout, self.linger])
    }

    fn send_request(&mut self) {
        self.transmits.push_back(Transmit {
            destination: self.destination,
            transport: self.transport.clone(),
            data: self.wire.clone(),
        });
    }

    fn send_ack(&mut self) {
        if let Some(ack) = &self.ack {
            self.transmits.push_back(Transmit {
                destination: self.destination,
                transport: self.transport.clone(),
                data: ack.clone(),
            });
        }
    }
}
