//! Call control: the B2BUA. One task owns the sans-IO user agent, the calls and the trunks'
//! state; it feeds the user agent what the edge receives, sends what it produces, and turns its
//! events into the other leg's actions and into media-plane commands.
//!
//! Where an INVITE goes: [`crate::edge`] → [`Signalling::run`] → `UserAgent::handle_receive` →
//! `Event::IncomingCall` → [`outbound`] (from a client: authenticate, normalise, route, INVITE a
//! trunk) or [`inbound`] (from a trunk: DID → user → ring every registration).

mod call;
mod caller_id;
mod inbound;
mod media;
mod midcall;
mod outbound;
mod reload;
mod session;
mod trunking;

use std::collections::HashMap;
use std::net::{IpAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::{Ban, CallId as LegId, Event, Reason, RequestId, UserAgent};
use tokio::sync::mpsc;

use crate::config::{Config, TrunkTransport};
use crate::edge::{Closed, Edge, EdgeEvent, EdgeEvents};
use crate::media::{Command, MediaCallId, MediaEvent, MediaPlane, WebRtcIdentity};
use crate::ops::cdr::{CallRecord, CdrWriter, EndedBy, MediaRecord};
use crate::ops::metrics::Metrics;
use crate::trunks::routes::RouteTable;
use crate::trunks::state::TrunkState;
use call::{Call, OwnHangup, Phase};
pub(crate) use reload::authenticator;

/// Everything call control needs, owned by its one task.
pub struct Signalling {
    ua: UserAgent,
    edge: Edge,
    media: Arc<MediaPlane>,
    config: Arc<Config>,
    routes: RouteTable,
    trunks: Vec<TrunkState>,
    calls: HashMap<u64, Call>,
    legs: HashMap<LegId, u64>,
    media_calls: HashMap<MediaCallId, u64>,
    /// OPTIONS probes in flight: (trunk, address) by request.
    probes: HashMap<RequestId, (usize, usize)>,
    registrations: HashMap<RequestId, usize>,
    /// Trunk legs failed by the transport (see `trunking.rs`), while their failure is handled.
    transport_failed: std::collections::HashSet<LegId>,
    metrics: Arc<Metrics>,
    cdr: CdrWriter,
    /// The DTLS identity every browser session presents; `None` if it could not be made, and
    /// then browser offers are refused.
    webrtc: Option<WebRtcIdentity>,
    next_call: u64,
    rng: u64,
    draining: bool,
    /// When a ban was last logged, and how many bans went unlogged since.
    ban_log: (Option<Instant>, u64),
}

/// At most one log line about bans this often: a crack attempt from many addresses must not
/// flood the log (every ban is still counted in `landline_auth_bans_total`).
const BAN_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How often trunk probes and housekeeping run.
const HOUSEKEEPING: Duration = Duration::from_millis(500);

impl Signalling {
    /// Call control over a started edge and media plane.
    pub fn new(
        ua: UserAgent,
        edge: Edge,
        media: Arc<MediaPlane>,
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        cdr: CdrWriter,
        seed: u64,
    ) -> Self {
        let trunks = trunking::start_trunks(&config, &edge, &metrics);
        Signalling {
            ua,
            edge,
            media,
            routes: RouteTable::new(&config.routes),
            config,
            trunks,
            calls: HashMap::new(),
            legs: HashMap::new(),
            media_calls: HashMap::new(),
            probes: HashMap::new(),
            registrations: HashMap::new(),
            transport_failed: Default::default(),
            metrics,
            cdr,
            webrtc: match WebRtcIdentity::generate() {
                Ok(identity) => Some(identity),
                Err(error) => {
                    tracing::error!(%error, "no DTLS identity: browser calls will be refused");
                    None
                }
            },
            next_call: 1,
            rng: seed | 1,
            draining: false,
            ban_log: (None, 0),
        }
    }

    /// Runs call control until `stop` fires; then refuses new calls and returns when the
    /// active ones have ended (or `drain_limit` passed). A configuration from `reloads`
    /// applies to what starts after it.
    pub async fn run(
        mut self,
        mut inbound: EdgeEvents,
        mut media_events: mpsc::Receiver<MediaEvent>,
        mut reloads: mpsc::Receiver<Arc<Config>>,
        mut stop: tokio::sync::watch::Receiver<bool>,
        drain_limit: Duration,
    ) {
        self.start_registrations(Instant::now());
        let mut transport_failures = self.edge.transport_failures();
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut drain_deadline: Option<tokio::time::Instant> = None;
        loop {
            let wake = self
                .ua
                .poll_timeout()
                .map(tokio::time::Instant::from_std)
                .unwrap_or_else(|| tokio::time::Instant::now() + HOUSEKEEPING);
            tokio::select! {
                Some(event) = inbound.recv() => match event {
                    EdgeEvent::Received(message) => {
                        let now = Instant::now();
                        self.ua.handle_receive(now, message.source, message.transport, &message.data);
                    }
                    EdgeEvent::Closed(closed) => self.connection_closed(Instant::now(), closed),
                },
                Some(event) = media_events.recv() => self.on_media_event(Instant::now(), event),
                _ = tokio::time::sleep_until(wake) => self.ua.handle_timeout(Instant::now()),
                Some(failure) = trunking::next_failure(&mut transport_failures) => {
                    self.transport_failure(Instant::now(), failure);
                }
                _ = housekeeping.tick() => self.housekeeping(Instant::now()),
                Some(config) = reloads.recv() => {
                    let changes = self.reload(Instant::now(), config);
                    tracing::info!(
                        users = self.config.users.len(),
                        routes = self.config.routes.len(),
                        trunks_added = changes.added,
                        trunks_changed = changes.changed,
                        trunks_retired = changes.retired,
                        calls = self.calls.len(),
                        "configuration reloaded; running calls keep their settings"
                    );
                }
                changed = stop.changed(), if !self.draining => {
                    if changed.is_err() || *stop.borrow() {
                        tracing::info!(calls = self.calls.len(), "draining: new calls get 503");
                        self.draining = true;
                        self.ua.set_accepting(false);
                        drain_deadline = Some(tokio::time::Instant::now() + drain_limit);
                    }
                }
            }
            self.flush(Instant::now());
            if self.draining {
                let expired = drain_deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
                if self.calls.is_empty() || expired {
                    self.hang_up_everything(Instant::now());
                    self.flush(Instant::now());
                    return;
                }
            }
        }
    }

    /// Sends what the user agent produced and handles its events, until both are empty.
    fn flush(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.ua.poll_transmit() {
                self.edge.send(transmit);
                progressed = true;
            }
            while let Some(event) = self.ua.poll_event() {
                self.on_sip_event(now, event);
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_sip_event(&mut self, now: Instant, event: Event) {
        match event {
            Event::IncomingCall {
                call,
                from,
                to,
                to_header,
                sdp,
                user,
            } => {
                let source = self.ua.peer(call).map(|(addr, _)| addr.ip());
                if self.draining {
                    self.ua.reject(now, call, StatusCode::SERVICE_UNAVAILABLE);
                } else if let Some(trunk) = source.and_then(|ip| self.trunk_of_source(ip)) {
                    let called = inbound::Called {
                        request_uri: &to,
                        to: &to_header,
                    };
                    inbound::start(self, now, call, trunk, &from, called, sdp);
                } else {
                    outbound::start(self, now, call, user, &from, &to, sdp);
                }
            }
            Event::Progress { call, status, sdp } => self.with_call(call, |s, id| {
                if s.is_trunk_leg(id, call) {
                    outbound::trunk_progress(s, now, id, status, sdp);
                } else {
                    inbound::fork_progress(s, now, id, call, status);
                }
            }),
            Event::Answered { call, sdp } => self.with_call(call, |s, id| {
                if s.is_trunk_leg(id, call) {
                    outbound::trunk_answered(s, now, id, sdp);
                } else {
                    inbound::fork_answered(s, now, id, call, sdp);
                }
            }),
            Event::Failed { call, status } => self.with_call(call, |s, id| {
                s.legs.remove(&call);
                if s.is_trunk_leg(id, call) {
                    outbound::trunk_failed(s, now, id, status);
                } else {
                    inbound::fork_failed(s, now, id, call, status);
                }
            }),
            Event::Confirmed { .. } => {}
            Event::EndReason { call, reason } => self.with_call(call, |s, id| {
                // The BYE or CANCEL that ends this leg said why: the other leg hears it too.
                if let Some(c) = s.calls.get_mut(&id) {
                    c.hangup_reason = Some(reason);
                }
            }),
            Event::Ended { call, reason } => self.with_call(call, |s, id| {
                s.legs.remove(&call);
                s.leg_ended(now, id, call, reason);
            }),
            Event::Offer { call, sdp } => self.with_call(call, |s, id| {
                s.answer_reoffer(now, id, call, &sdp);
            }),
            Event::Info {
                call,
                content_type,
                body,
            } => self.with_call(call, |s, id| {
                s.info(id, call, content_type.as_deref(), &body);
            }),
            Event::OfferWanted { call } => self.with_call(call, |s, id| {
                s.offer_for_reinvite(now, id, call);
            }),
            Event::AckAnswer { call, sdp } => self.with_call(call, |s, id| {
                let late_offer = s.calls.get(&id).is_some_and(|c| {
                    c.trunk == Some(call)
                        && c.media.is_none()
                        && c.direction == crate::ops::metrics::Direction::Inbound
                });
                if late_offer {
                    inbound::trunk_late_answer(s, now, id, sdp);
                } else {
                    s.ack_answer(now, id, call, sdp);
                }
            }),
            Event::OfferAnswered { .. } | Event::OfferRejected { .. } => {}
            Event::Registered { id, .. } => self.registration_result(id, true),
            Event::RegistrationFailed { id, status } => {
                tracing::warn!(
                    status = status.code(),
                    "trunk registration failed; retrying"
                );
                self.registration_result(id, false);
            }
            Event::OptionsResult { id, status } => self.probe_result(id, status),
            Event::SourceBanned(ban) => self.source_banned(now, ban),
        }
    }

    /// A source failed authentication too often and is banned by the SIP stack; logged (at
    /// most once per [`BAN_LOG_INTERVAL`]) so an operator can tell a cracker from a phone
    /// with a stale password. Counted from the stack's totals at housekeeping.
    fn source_banned(&mut self, now: Instant, ban: Ban) {
        let (last, unlogged) = &mut self.ban_log;
        if last.is_some_and(|at| now.saturating_duration_since(at) < BAN_LOG_INTERVAL) {
            *unlogged += 1;
            return;
        }
        tracing::warn!(
            source = %ban.source,
            failures = ban.failures,
            ban_seconds = ban.duration.as_secs(),
            other_bans_unlogged = *unlogged,
            "source banned after failed authentications: its REGISTERs and new INVITEs are \
             dropped until the ban ends (calls in progress go on)"
        );
        *last = Some(now);
        *unlogged = 0;
    }

    /// A client's WebSocket closed: nothing can reach it until it connects again, so its
    /// registrations go, a DID call ringing it fails over to its other bindings (or gets 480)
    /// now rather than after Timer B, and an answered call over it ends now rather than at the
    /// RTP timeout.
    fn connection_closed(&mut self, now: Instant, closed: Closed) {
        let Closed { peer, transport } = closed;
        let removed = self
            .ua
            .registrar_mut()
            .map_or(0, |r| r.remove_source(peer, &transport));
        self.ua.handle_transport_error(now, peer, transport.clone());
        let over_it: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                c.client
                    .is_some_and(|leg| self.ua.peer(leg) == Some((peer, transport.clone())))
            })
            .map(|(id, _)| *id)
            .collect();
        tracing::info!(%peer, %transport, bindings = removed, calls = over_it.len(), "client connection closed");
        for id in over_it {
            self.end_call(now, id, EndedBy::Client, "client_disconnected", None);
        }
    }

    fn with_call(&mut self, leg: LegId, f: impl FnOnce(&mut Self, u64)) {
        if let Some(&id) = self.legs.get(&leg) {
            f(self, id);
        }
    }

    fn is_trunk_leg(&self, id: u64, leg: LegId) -> bool {
        self.calls.get(&id).is_some_and(|c| c.trunk == Some(leg))
    }

    /// The trunk whose ACL admits `ip`, if any: calls from it are inbound.
    fn trunk_of_source(&self, ip: IpAddr) -> Option<usize> {
        self.trunks
            .iter()
            .position(|t| !t.is_retired() && t.config.allow.iter().any(|cidr| cidr.contains(ip)))
    }

    fn new_call_id(&mut self) -> u64 {
        self.next_call += 1;
        self.next_call
    }

    fn random(&mut self) -> u64 {
        // splitmix64, seeded from the OS at start: SSRCs, sequence starts, SDP session ids.
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Binds an RTP socket from the port range, on the media bind address.
    fn bind_rtp(&self) -> Option<UdpSocket> {
        self.media.ports().bind(self.config.media.bind_address).ok()
    }

    /// Closes an RTP socket that never reached a shard and gives its port back.
    fn release_rtp(&self, socket: UdpSocket) {
        let port = socket.local_addr().map(|a| a.port());
        drop(socket);
        if let Ok(port) = port {
            self.media.ports().release(port);
        }
    }

    /// One leg of a call ended: end the other side too.
    fn leg_ended(&mut self, now: Instant, id: u64, leg: LegId, reason: Reason) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.forks.contains(&leg) && call.client != Some(leg) {
            // An unanswered fork of an inbound call: only that registration stopped ringing.
            call.forks.retain(|f| *f != leg);
            return;
        }
        let by_trunk = call.trunk == Some(leg);
        let ended_by = if by_trunk {
            EndedBy::Trunk
        } else {
            EndedBy::Client
        };
        // A leg still in the call that ended by the sip stack's own BYE (not ours: `end_call`
        // unmaps legs before hanging them up) failed under us: the other leg hears why.
        let (cause, status, own) = match reason {
            Reason::RemoteBye => ("normal_clearing", None, None),
            Reason::LocalBye => ("refresh_failed", None, Some(OwnHangup::RefreshFailed)),
            Reason::Cancelled => ("cancelled", Some(StatusCode::REQUEST_TERMINATED), None),
            Reason::AckTimeout => ("ack_timeout", None, Some(OwnHangup::TimerExpired)),
            Reason::SessionExpired => ("session_expired", None, Some(OwnHangup::TimerExpired)),
            Reason::Failed(s) => ("failed", Some(s), None),
        };
        if let (Some(own), Some(call)) = (own, self.calls.get_mut(&id)) {
            call.hangup_reason.get_or_insert_with(|| own.reason());
        }
        self.end_call(now, id, ended_by, cause, status);
    }

    /// The gateway ends a call on its own account: both legs' BYEs (or CANCELs) carry `why`
    /// as their `Reason`, and the record names `cause`.
    fn end_call_ourselves(&mut self, now: Instant, id: u64, cause: &str, why: OwnHangup) {
        if let Some(call) = self.calls.get_mut(&id) {
            call.hangup_reason.get_or_insert_with(|| why.reason());
        }
        self.end_call(now, id, EndedBy::Gateway, cause, None);
    }

    /// Ends every leg of a call and its media; the record is written once media is gone.
    fn end_call(
        &mut self,
        now: Instant,
        id: u64,
        ended_by: EndedBy,
        cause: &str,
        status: Option<StatusCode>,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if call.ended_by.is_none() {
            call.ended_by = Some(ended_by);
            call.hangup_cause = Some(cause.to_owned());
        }
        if call.final_status.is_none() {
            call.final_status = status;
        }
        // Legs we received are refused (before answer) or sent BYE; legs we placed are
        // cancelled or sent BYE, which `hangup` chooses by their state.
        let inbound = call.direction == crate::ops::metrics::Direction::Inbound;
        let reason: Vec<(String, String)> = call
            .reason
            .clone()
            .map(|r| ("Reason".to_owned(), r))
            .into_iter()
            .collect();
        let hangup_reason: Vec<(String, String)> = call
            .hangup_reason
            .clone()
            .map(|r| ("Reason".to_owned(), r))
            .into_iter()
            .collect();
        let mut legs: Vec<(LegId, bool)> = Vec::new();
        if let Some(leg) = call.client.take() {
            legs.push((leg, !inbound));
        }
        if let Some(leg) = call.trunk.take() {
            legs.push((leg, inbound));
        }
        legs.extend(call.forks.drain(..).map(|leg| (leg, false)));
        let answered = call.phase == Phase::Answered;
        let media = call.media;
        let trunk_index = if call.trunk_released {
            None
        } else {
            call.trunk_index
        };
        call.trunk_released = true;
        for (leg, received) in legs {
            if self.legs.remove(&leg).is_none() {
                continue;
            }
            if received && !answered {
                let status = status
                    .filter(|s| s.code() >= 400)
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                self.ua.reject_with_headers(now, leg, status, &reason);
            } else {
                self.ua.hangup_with_headers(now, leg, &hangup_reason);
            }
        }
        if let Some(index) = trunk_index {
            if let Some(trunk) = self.trunks.get_mut(index) {
                trunk.call_ended();
            }
        }
        match media {
            Some((media_id, shard)) => {
                if self.media.send(shard, Command::Remove(media_id)).is_err() {
                    self.media_calls.remove(&media_id);
                    self.finish_if_done(id);
                }
            }
            None => self.finish_if_done(id),
        }
    }

    /// Writes the record and forgets the call once its legs and media are gone.
    fn finish_if_done(&mut self, id: u64) {
        let done = self.calls.get(&id).is_some_and(|c| {
            c.ended_by.is_some()
                && c.client.is_none()
                && c.trunk.is_none()
                && c.forks.is_empty()
                && c.media
                    .is_none_or(|(m, _)| !self.media_calls.contains_key(&m))
        });
        if !done {
            return;
        }
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        // Sockets bound for a call whose media never started go back to the range here.
        let unused = [
            call.client_session.socket.take(),
            call.trunk_session.as_mut().and_then(|t| t.socket.take()),
        ];
        for socket in unused.into_iter().flatten() {
            self.release_rtp(socket);
        }
        let end = SystemTime::now();
        let outcome = call.outcome();
        self.metrics.call_finished(call.direction, outcome);
        tracing::info!(
            call = id,
            direction = call.direction.as_str(),
            outcome = outcome.as_str(),
            from = %call.from,
            to = %call.to,
            cause = call.hangup_cause.as_deref().unwrap_or(""),
            "call ended"
        );
        self.cdr.record(CallRecord {
            call_id: id.to_string(),
            client_call_id: call.client_call_id.clone(),
            trunk_call_id: call.trunk_call_id.clone(),
            direction: call.direction,
            user: call.user.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            trunk: call
                .trunk_index
                .and_then(|i| self.trunks.get(i))
                .map(|t| t.config.name.as_str().to_owned()),
            start: call.started,
            answer: call.answered,
            end,
            billable_seconds: CallRecord::billable(call.answered, end),
            outcome,
            sip_status: call
                .final_status
                .map(StatusCode::code)
                .unwrap_or(if call.answered.is_some() { 200 } else { 500 }),
            ended_by: call.ended_by.unwrap_or(EndedBy::Gateway),
            hangup_cause: call.hangup_cause.clone().unwrap_or_default(),
            hangup_reason: call.hangup_reason.clone(),
            media: call.media_stats.map(MediaRecord::from),
        });
    }

    fn housekeeping(&mut self, now: Instant) {
        self.probe_trunks(now);
        let bindings: usize = self
            .ua
            .registrar()
            .map(|r| {
                self.config
                    .users
                    .iter()
                    .map(|u| r.lookup(now, u.username.as_str()).len())
                    .sum()
            })
            .unwrap_or(0);
        self.metrics.set_registrations(bindings);
        if let Some(auth) = self.ua.authenticator() {
            self.metrics.set_auth_bans(auth.ban_stats());
        }
    }

    fn hang_up_everything(&mut self, now: Instant) {
        let ids: Vec<u64> = self.calls.keys().copied().collect();
        for id in ids {
            self.end_call_ourselves(now, id, "shutdown", OwnHangup::Shutdown);
        }
    }
}

/// The sans-IO stack's transport for a trunk's configured one.
fn sip_transport(transport: TrunkTransport) -> Transport {
    match transport {
        TrunkTransport::Udp => Transport::Udp,
        TrunkTransport::Tcp => Transport::Tcp,
        TrunkTransport::Tls => Transport::Tls,
    }
}
