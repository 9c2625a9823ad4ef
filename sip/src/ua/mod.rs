//! A sans-IO SIP user agent: transactions, INVITE dialogs (UAC and UAS), PRACK, session timers,
//! OPTIONS, INFO, UPDATE and registration, driven by `handle_*` inputs and `poll_*` outputs.
//!
//! The application (the gateway's call control, or a test shell) feeds received bytes and
//! time, issues commands ([`UserAgent::call`], [`UserAgent::answer`]...), and reacts to
//! [`Event`]s. It never sees a transaction.

mod authn;
mod bans;
mod call;
mod dialog;
mod incoming;
mod index;
mod outgoing;
mod register;
mod route;

use std::collections::{HashMap, VecDeque};

use index::{Indexed, Timed};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub use authn::{Authenticator, IpRange};
pub use bans::{AuthBans, Ban, BanPolicy, BanStats, MAX_BAN_FACTOR};
pub use call::{CallParams, Reason};
pub use register::{RegisterParams, Registrar, RegistrarTarget};

use tracing::{debug, trace};

use crate::auth::Credentials;
use crate::message::{Limits, NameAddr, Response, SipUri, StatusCode, Transport};
use crate::transaction::{
    ClientTransaction, ServerTransaction, TimerConfig, TransactionKey, Transmit,
};

/// Identifies a call (one INVITE dialog) across commands and events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Identifies a registration binding we maintain, or an OPTIONS probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// User agent settings; defaults are RFC values.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our address as put in Via and Contact.
    pub local_addr: SocketAddr,
    /// Timer base values.
    pub timers: TimerConfig,
    /// Parser limits.
    pub limits: Limits,
    /// `User-Agent`/`Server` header value.
    pub user_agent: String,
    /// Session interval we ask for / accept (RFC 4028); `None` disables session timers.
    pub session_expires: Option<u32>,
    /// Smallest session interval we accept (RFC 4028 Min-SE; ≥ 90 in production).
    pub min_se: u32,
    /// Seed for tags, branches, Call-IDs and cnonces (give it real entropy).
    pub seed: u64,
    /// First retry delay after a failed registration; doubles up to `register_backoff_max`.
    pub register_backoff: Duration,
    /// Cap on the registration retry delay.
    pub register_backoff_max: Duration,
    /// Our address in Contact on transports served by another listener than `local_addr`
    /// (RFC 7118 §5: a WebSocket client's requests must reach our WS/WSS listener, not the
    /// UDP port). Transports not listed use `local_addr`.
    pub contact_addrs: Vec<(Transport, SocketAddr)>,
    /// Server transactions held at once. A request that would open one more is answered 503
    /// with Retry-After, statelessly: a flood of new requests (each transaction lives up to
    /// 64 × T1 after its answer) costs bounded memory, and calls in progress go on.
    pub max_server_transactions: usize,
}

impl Config {
    /// Defaults for `local_addr`.
    pub fn new(local_addr: SocketAddr, seed: u64) -> Self {
        Self {
            local_addr,
            timers: TimerConfig::default(),
            limits: Limits::default(),
            user_agent: "landline".into(),
            session_expires: Some(1800),
            min_se: 90,
            seed,
            register_backoff: Duration::from_secs(30),
            register_backoff_max: Duration::from_secs(1800),
            max_server_transactions: 100_000,
            contact_addrs: Vec::new(),
        }
    }
}

/// What happened, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new INVITE: answer with [`UserAgent::ring`], [`UserAgent::answer`] or
    /// [`UserAgent::reject`].
    IncomingCall {
        /// The call.
        call: CallId,
        /// Caller URI as text.
        from: String,
        /// Request-URI as text (the dialled number).
        to: String,
        /// The To header's URI as text. It differs from the Request-URI when a proxy
        /// retargeted the request: a carrier delivering a call to a registration sends it to
        /// the registered Contact and keeps the dialled number here (RFC 3261 §16.5).
        to_header: String,
        /// The offer, if any.
        sdp: Option<Vec<u8>>,
        /// The Digest username, when an [`Authenticator`] is set.
        user: Option<String>,
    },
    /// A provisional response to our INVITE (early media if `sdp`).
    Progress {
        /// The call.
        call: CallId,
        /// 180, 183...
        status: StatusCode,
        /// Early-media answer.
        sdp: Option<Vec<u8>>,
    },
    /// Our INVITE was answered (ACK already sent).
    Answered {
        /// The call.
        call: CallId,
        /// The answer.
        sdp: Option<Vec<u8>>,
    },
    /// The ACK for our 2xx arrived: media may flow both ways.
    Confirmed {
        /// The call.
        call: CallId,
    },
    /// The peer sent a new offer (re-INVITE or UPDATE); reply with [`UserAgent::answer_offer`].
    Offer {
        /// The call.
        call: CallId,
        /// The offer.
        sdp: Vec<u8>,
    },
    /// The peer's re-INVITE carried no offer (RFC 3264 §5, RFC 6337 §5.3): our 2xx must
    /// carry an offer. Reply with [`UserAgent::answer_offer`] giving our offer (or
    /// [`UserAgent::reject_offer`]); the answer comes in the ACK, as [`Event::AckAnswer`].
    OfferWanted {
        /// The call.
        call: CallId,
    },
    /// The ACK for a 2xx in which we offered (an INVITE or re-INVITE that came without SDP)
    /// arrived, with the peer's answer. `None` means the ACK carried none, which RFC 3261
    /// §13.2.1 forbids: the session cannot work and the application should end the call.
    AckAnswer {
        /// The call.
        call: CallId,
        /// The answer.
        sdp: Option<Vec<u8>>,
    },
    /// Our re-INVITE was answered.
    OfferAnswered {
        /// The call.
        call: CallId,
        /// The answer.
        sdp: Option<Vec<u8>>,
    },
    /// Our re-INVITE or UPDATE offer was refused; the previous session stays.
    OfferRejected {
        /// The call.
        call: CallId,
        /// The status.
        status: StatusCode,
    },
    /// An INFO arrived (already answered 200).
    Info {
        /// The call.
        call: CallId,
        /// Content-Type.
        content_type: Option<String>,
        /// Body.
        body: Vec<u8>,
    },
    /// Our INVITE failed with a final response (408 on timeout, 487 when cancelled).
    Failed {
        /// The call.
        call: CallId,
        /// The status.
        status: StatusCode,
    },
    /// The peer's BYE or CANCEL carried a `Reason` header (RFC 3326); [`Event::Ended`] for
    /// the same call follows at once.
    EndReason {
        /// The call.
        call: CallId,
        /// The header's value (`Q.850;cause=16;text="Normal call clearing"`).
        reason: String,
    },
    /// The call is over.
    Ended {
        /// The call.
        call: CallId,
        /// Why.
        reason: Reason,
    },
    /// A registration succeeded; it will refresh itself.
    Registered {
        /// The binding.
        id: RequestId,
        /// Granted expiry in seconds.
        expires: u32,
    },
    /// A registration failed; it retries after a backoff.
    RegistrationFailed {
        /// The binding.
        id: RequestId,
        /// The status (408 on timeout).
        status: StatusCode,
    },
    /// The final response to an OPTIONS we sent.
    OptionsResult {
        /// The probe.
        id: RequestId,
        /// The status (408 on timeout).
        status: StatusCode,
    },
    /// A source failed authentication too often (see [`Authenticator::set_ban_policy`]): its
    /// REGISTERs and new INVITEs are dropped until the ban ends. At most one per ban, so the
    /// application may log each (a flood of guesses yields one event per threshold reached).
    SourceBanned(Ban),
}

/// Who a client transaction works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Invite(CallId),
    ReInvite(CallId),
    InDialog(CallId),
    Bye(CallId),
    Register(RequestId),
    Options(RequestId),
    /// Fire and forget: CANCEL (its outcome shows on the INVITE) and BYE to an extra fork.
    Detached,
}

/// The user agent: one value, fed with `handle_*`, drained with `poll_*`.
#[derive(Debug)]
pub struct UserAgent {
    config: Config,
    rng: u64,
    next_id: u64,
    clients: Indexed<TransactionKey, (ClientTransaction, Owner)>,
    servers: Indexed<TransactionKey, (ServerTransaction, Option<CallId>)>,
    calls: Indexed<CallId, call::Call>,
    /// Calls by Call-ID, so in-dialog requests find theirs without a scan.
    by_call_id: HashMap<String, Vec<CallId>>,
    /// Out-of-dialog requests' server transactions by Call-ID, From tag, CSeq and method, so a
    /// merged request (RFC 3261 §8.2.2.2) is found without a scan of every transaction. Entries
    /// whose transaction ended are dropped lazily (see `route::note_initial`).
    initial_requests: HashMap<route::MergeKey, TransactionKey>,
    registrations: HashMap<RequestId, register::Registration>,
    registrar: Option<Registrar>,
    authenticator: Option<Authenticator>,
    accepting: bool,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl UserAgent {
    /// A user agent with no calls.
    pub fn new(config: Config) -> Self {
        let rng = config.seed | 1;
        Self {
            config,
            rng,
            next_id: 1,
            clients: Indexed::new(),
            servers: Indexed::new(),
            calls: Indexed::new(),
            by_call_id: HashMap::new(),
            initial_requests: HashMap::new(),
            registrations: HashMap::new(),
            registrar: None,
            authenticator: None,
            accepting: true,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Answers REGISTER requests with this registrar's bookkeeping (otherwise 501).
    pub fn set_registrar(&mut self, registrar: Registrar) {
        self.registrar = Some(registrar);
    }

    /// Whether we take new work: when not, OPTIONS is answered 503 (a draining node tells its
    /// load balancer; refusing INVITEs is the application's policy).
    pub fn set_accepting(&mut self, accepting: bool) {
        self.accepting = accepting;
    }

    /// Requires Digest credentials on incoming INVITE and REGISTER.
    pub fn set_authenticator(&mut self, authenticator: Authenticator) {
        self.authenticator = Some(authenticator);
    }

    /// The authenticator, to read its ban statistics.
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.authenticator.as_ref()
    }

    /// The authenticator, to change its accounts while running (a configuration reload).
    pub fn authenticator_mut(&mut self) -> Option<&mut Authenticator> {
        self.authenticator.as_mut()
    }

    /// The registrar, to look bindings up.
    pub fn registrar(&self) -> Option<&Registrar> {
        self.registrar.as_ref()
    }

    /// The registrar, to drop bindings (when a client's connection closes, say).
    pub fn registrar_mut(&mut self) -> Option<&mut Registrar> {
        self.registrar.as_mut()
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Feeds bytes received from `source` over `transport` (one datagram or one stream frame).
    pub fn handle_receive(
        &mut self,
        now: Instant,
        source: SocketAddr,
        transport: Transport,
        data: &[u8],
    ) {
        route::receive(self, now, source, transport, data);
        self.flush(now);
    }

    /// Runs everything due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for k in self.clients.due(now) {
            if let Some((t, _)) = self.clients.get_mut(&k) {
                t.handle_timeout(now);
            }
        }
        for k in self.servers.due(now) {
            if let Some((t, _)) = self.servers.get_mut(&k) {
                t.handle_timeout(now);
            }
        }
        self.flush(now);
        call::on_timeout(self, now);
        register::on_timeout(self, now);
        self.flush(now);
    }

    /// The transport could not reach `destination` over `transport` (connection refused or
    /// reset, TLS handshake or certificate failure). Every request still waiting there for a
    /// final response fails as if answered 503 (RFC 3261 §8.1.3.1): a call's INVITE ends in
    /// [`Event::Failed`] at once, so the application can fail over without waiting for Timer B.
    pub fn handle_transport_error(
        &mut self,
        now: Instant,
        destination: SocketAddr,
        transport: Transport,
    ) {
        let keys = self.clients.keys_where(|(t, _)| {
            t.destination() == destination && *t.transport() == transport && !t.has_final()
        });
        for key in keys {
            if let Some((t, _)) = self.clients.get_mut(&key) {
                t.transport_error();
            }
        }
        self.flush(now);
    }

    /// The next bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        trace!(to = %t.destination, transport = %t.transport, line = %first_line(&t.data), "send");
        Some(t)
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        let e = self.events.pop_front()?;
        debug!(event = ?e, "sip event");
        Some(e)
    }

    /// When to call [`UserAgent::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let regs = self
            .registrations
            .values()
            .filter_map(|r| r.next_timer())
            .min();
        [
            self.clients.next_timer(),
            self.servers.next_timer(),
            self.calls.next_timer(),
            regs,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Where a call's requests come from and go to, and over what (the INVITE's source for
    /// calls we received, the destination for calls we placed).
    pub fn peer(&self, call: CallId) -> Option<(SocketAddr, Transport)> {
        self.calls.get(&call).map(|c| (c.peer, c.transport.clone()))
    }

    /// The SIP Call-ID of a call's dialog (ours for calls we placed, the peer's for calls we
    /// received), for call records and logs.
    pub fn sip_call_id(&self, call: CallId) -> Option<&str> {
        self.calls
            .get(&call)
            .and_then(|c| c.invite.headers.call_id())
    }

    /// Number of live calls, for tests and metrics.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// Sends OPTIONS to `target` at `destination` (a keep-alive or capability probe).
    pub fn options(
        &mut self,
        now: Instant,
        target: SipUri,
        destination: SocketAddr,
        transport: Transport,
    ) -> RequestId {
        let id = RequestId(self.new_id());
        let req = route::out_of_dialog_request(
            self,
            crate::message::Method::Options,
            target.clone(),
            target,
            &transport,
        );
        self.start_client(now, req, destination, transport, Owner::Options(id));
        self.flush(now);
        id
    }

    fn new_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// splitmix64: cheap, deterministic from the seed, good enough for tags and branches.
    fn random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn token(&mut self) -> String {
        format!("{:x}", self.random())
    }

    fn branch(&mut self) -> String {
        format!("z9hG4bK{:x}", self.random())
    }

    fn contact(&self, user: Option<&str>, transport: &Transport) -> NameAddr {
        let addr = self
            .config
            .contact_addrs
            .iter()
            .find(|(t, _)| t == transport)
            .map_or(self.config.local_addr, |(_, a)| *a);
        let mut uri = SipUri::new(user, addr.ip().into(), Some(addr.port()));
        if *transport != Transport::Udp {
            uri.params
                .set("transport", Some(&transport.as_str().to_ascii_lowercase()));
        }
        NameAddr::new(uri)
    }

    fn start_client(
        &mut self,
        now: Instant,
        req: crate::message::Request,
        destination: SocketAddr,
        transport: Transport,
        owner: Owner,
    ) -> TransactionKey {
        let mut t = ClientTransaction::new(now, req, destination, transport, self.config.timers);
        // Drain at once so the wire order is the order things happened.
        while let Some(x) = t.poll_transmit() {
            self.transmits.push_back(x);
        }
        let key = t.key().clone();
        self.clients.insert(key.clone(), (t, owner));
        key
    }

    fn respond(&mut self, now: Instant, key: &TransactionKey, resp: &Response) {
        if let Some((t, _)) = self.servers.get_mut(key) {
            t.send_response(now, resp);
            while let Some(x) = t.poll_transmit() {
                self.transmits.push_back(x);
            }
        }
    }

    fn send(&mut self, destination: SocketAddr, transport: Transport, data: Vec<u8>) {
        self.transmits.push_back(Transmit {
            destination,
            transport,
            data,
        });
    }

    /// Moves output of the transactions that changed into our queues, dispatches their events
    /// (which may change more), then re-indexes timers and drops finished transactions.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut pending = Vec::new();
            for key in self.clients.touched() {
                let Some((t, owner)) = self.clients.get_mut(&key) else {
                    continue;
                };
                let owner = *owner;
                while let Some(x) = t.poll_transmit() {
                    self.transmits.push_back(x);
                }
                while let Some(e) = t.poll_event() {
                    pending.push((key.clone(), owner, t.request().clone(), e));
                }
            }
            for key in self.servers.touched() {
                let Some((t, _)) = self.servers.get_mut(&key) else {
                    continue;
                };
                while let Some(x) = t.poll_transmit() {
                    self.transmits.push_back(x);
                }
                while t.poll_event().is_some() {}
            }
            if pending.is_empty() {
                break;
            }
            for (key, owner, req, e) in pending {
                route::client_event(self, now, &key, owner, req, e);
            }
        }
        self.clients.reindex();
        self.servers.reindex();
        self.calls.reindex();
    }

    fn add_call(&mut self, id: CallId, call: call::Call) {
        let cid = call.invite.headers.call_id().unwrap_or_default().to_owned();
        self.by_call_id.entry(cid).or_default().push(id);
        self.calls.insert(id, call);
    }

    fn remove_call(&mut self, id: CallId) -> Option<call::Call> {
        let c = self.calls.remove(&id)?;
        let cid = c.invite.headers.call_id().unwrap_or_default();
        if let Some(ids) = self.by_call_id.get_mut(cid) {
            ids.retain(|x| *x != id);
            if ids.is_empty() {
                self.by_call_id.remove(cid);
            }
        }
        Some(c)
    }

    /// The calls sharing a Call-ID (one, or a few after forking).
    fn calls_with_call_id(&self, call_id: Option<&str>) -> Vec<CallId> {
        call_id
            .and_then(|c| self.by_call_id.get(c))
            .cloned()
            .unwrap_or_default()
    }

    fn credentials_for(&self, owner: Owner) -> Option<Credentials> {
        match owner {
            Owner::Invite(c) | Owner::ReInvite(c) | Owner::InDialog(c) | Owner::Bye(c) => {
                self.calls.get(&c).and_then(|c| c.credentials.clone())
            }
            Owner::Register(r) => self
                .registrations
                .get(&r)
                .and_then(|r| r.params.credentials.clone()),
            _ => None,
        }
    }
}

/// The start line of a message, for logs (never the whole message: it may carry credentials).
fn first_line(data: &[u8]) -> &str {
    let end = data
        .iter()
        .position(|b| *b == b'\r' || *b == b'\n')
        .unwrap_or(data.len());
    std::str::from_utf8(&data[..end.min(200)]).unwrap_or("<binary>")
}

impl Timed for (ClientTransaction, Owner) {
    fn next_timer(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn finished(&self) -> bool {
        self.0.is_terminated()
    }
}

impl Timed for (ServerTransaction, Option<CallId>) {
    fn next_timer(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn finished(&self) -> bool {
        self.0.is_terminated()
    }
}

impl Timed for call::Call {
    fn next_timer(&self) -> Option<Instant> {
        call::Call::next_timer(self)
    }
}
