//! INVITE dialogs from the UAC side and everything time-driven about calls: 2xx and reliable
//! provisional retransmission, glare retry, session-timer refresh and expiry (RFC 4028).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dialog::Dialog;
use super::route::{self, via};
use super::{CallId, Event, Owner, UserAgent};
use crate::auth::Credentials;
use crate::message::{Header, Method, NameAddr, Request, Response, SipUri, StatusCode, Transport};
use crate::transaction::TransactionKey;

/// What a caller passes to [`UserAgent::call`].
#[derive(Debug, Clone)]
pub struct CallParams {
    /// Request-URI (and To, unless `to` is given).
    pub target: SipUri,
    /// To: the callee's address-of-record when the Request-URI is one of its registered
    /// contacts (RFC 3261 §8.1.1.2: To names the user, the Request-URI where to reach it).
    pub to: Option<NameAddr>,
    /// From (a tag is added); `None` for `sip:landline@<local ip>`.
    pub from: Option<NameAddr>,
    /// Where to send the INVITE (the shell resolved it).
    pub destination: SocketAddr,
    /// Transport to use.
    pub transport: Transport,
    /// The SDP offer.
    pub sdp: Option<Vec<u8>>,
    /// Credentials for 401/407 challenges.
    pub credentials: Option<Credentials>,
}

/// Why a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// We sent BYE.
    LocalBye,
    /// The peer sent BYE.
    RemoteBye,
    /// The caller cancelled before answer.
    Cancelled,
    /// Our 2xx was never ACKed (RFC 3261 §13.3.1.4).
    AckTimeout,
    /// No session refresh arrived in time (RFC 4028 §10).
    SessionExpired,
    /// A mid-dialog request failed with 408/481, or we rejected the call.
    Failed(StatusCode),
}

/// Early dialogs (forks) whose RSeq we remember; a carrier forking wider is not credible.
pub(super) const MAX_EARLY_DIALOGS: usize = 16;

/// Floor on any session interval we act on, in seconds.
pub(super) const MIN_SESSION_INTERVAL: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    Calling,
    Early,
    /// UAS: 2xx sent, ACK awaited.
    Answered,
    Confirmed,
}

/// A response resent on its own timer (2xx until ACK, reliable 1xx until PRACK).
#[derive(Debug, Clone)]
pub(super) struct Retrans {
    pub(super) data: Vec<u8>,
    pub(super) at: Option<Instant>,
    pub(super) interval: Duration,
    pub(super) deadline: Instant,
}

/// One call.
#[derive(Debug)]
pub(crate) struct Call {
    pub(super) uac: bool,
    pub(super) state: State,
    pub(super) dialog: Option<Dialog>,
    pub(super) invite: Request,
    pub(super) invite_key: TransactionKey,
    pub(super) peer: SocketAddr,
    pub(super) transport: Transport,
    pub(crate) credentials: Option<Credentials>,
    pub(super) local_sdp: Option<Vec<u8>>,
    pub(super) remote_sdp: Option<Vec<u8>>,
    pub(super) ack: Option<(Vec<u8>, u32)>,
    pub(super) cancel_requested: bool,
    /// UAS: hang up once our 2xx is ACKed (RFC 3261 §15: no BYE before the ACK).
    pub(super) bye_after_ack: bool,
    /// Extra headers for the BYE or CANCEL that ends the call (a `Reason`, RFC 3326).
    pub(super) hangup_headers: Vec<(String, String)>,
    /// UAC: the last RSeq PRACKed per early dialog (To tag); each fork numbers its own
    /// (RFC 3262 §4). Bounded by [`MAX_EARLY_DIALOGS`].
    pub(super) last_rseq: Vec<(String, u32)>,
    /// UAS: our last 2xx carried an offer (the INVITE or re-INVITE had none), so its ACK
    /// carries the answer.
    pub(super) offer_in_2xx: bool,
    pub(super) local_tag: String,
    pub(super) pending_2xx: Option<Retrans>,
    pub(super) reliable: Option<(Retrans, u32, bool)>,
    pub(super) rseq: u32,
    pub(super) queued_answer: Option<Response>,
    pub(super) reinvite_out: Option<(TransactionKey, Option<Vec<u8>>)>,
    pub(super) offer_in: Option<(TransactionKey, Request)>,
    pub(super) glare_retry: Option<(Instant, Option<Vec<u8>>)>,
    pub(super) session_expires: Option<u32>,
    pub(super) we_refresh: bool,
    pub(super) refresh_at: Option<Instant>,
    pub(super) expire_at: Option<Instant>,
}

impl Call {
    pub(super) fn next_timer(&self) -> Option<Instant> {
        [
            self.pending_2xx
                .as_ref()
                .and_then(|r| r.at.map(|a| a.min(r.deadline)).or(Some(r.deadline))),
            self.reliable
                .as_ref()
                .and_then(|(r, _, _)| r.at.map(|a| a.min(r.deadline)).or(Some(r.deadline))),
            self.glare_retry.as_ref().map(|(t, _)| *t),
            self.refresh_at,
            self.expire_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Arms RFC 4028 timers: the refresher refreshes at half the interval and, should its
    /// refreshes all fail, ends the session when the interval runs out (§10); the other side
    /// gives up at the interval minus min(32 s, interval/3).
    pub(super) fn arm_session(&mut self, now: Instant, se: u32, we_refresh: bool) {
        // RFC 4028 forbids intervals under 90 s; tolerate short ones (tests use a few seconds)
        // but never 0 or 1, which would make refreshes a storm.
        let se = se.max(MIN_SESSION_INTERVAL);
        self.session_expires = Some(se);
        self.we_refresh = we_refresh;
        let se_d = Duration::from_secs(u64::from(se));
        if we_refresh {
            self.refresh_at = Some(now + se_d / 2);
            self.expire_at = Some(now + se_d);
        } else {
            self.refresh_at = None;
            self.expire_at = Some(now + se_d - Duration::from_secs(32).min(se_d / 3));
        }
    }

    /// The Session-Expires value for a request or response we send.
    pub(super) fn session_header(&self) -> Option<String> {
        let se = self.session_expires?;
        let refresher = if self.we_refresh == self.uac {
            "uac"
        } else {
            "uas"
        };
        Some(format!("{se};refresher={refresher}"))
    }
}

impl UserAgent {
    /// Places a call: sends INVITE and returns the handle events will carry.
    pub fn call(&mut self, now: Instant, params: CallParams) -> CallId {
        self.call_with_headers(now, params, &[])
    }

    /// Places a call with extra headers on the INVITE (P-Asserted-Identity, Privacy, ...).
    pub fn call_with_headers(
        &mut self,
        now: Instant,
        params: CallParams,
        headers: &[(String, String)],
    ) -> CallId {
        let id = CallId(self.new_id());
        let from = params.from.clone().unwrap_or_else(|| {
            NameAddr::new(SipUri::new(
                Some("landline"),
                self.config.local_addr.ip().into(),
                None,
            ))
        });
        let to = params
            .to
            .clone()
            .unwrap_or_else(|| NameAddr::new(params.target.clone()));
        let mut req = route::out_of_dialog_from(
            self,
            Method::Invite,
            params.target,
            from,
            to,
            &params.transport,
        );
        let contact = self.contact(Some("landline"), &params.transport);
        req.headers
            .push(Header::Contact(crate::message::Contact::Addr(contact)));
        req.headers.set("Allow", route::ALLOW);
        req.headers.set("Supported", "100rel, timer");
        if let Some(se) = self.config.session_expires {
            req.headers.set("Session-Expires", se.to_string());
            req.headers.set("Min-SE", self.config.min_se.to_string());
        }
        for (name, value) in headers {
            req.headers.set(name, value.clone());
        }
        set_body(&mut req.headers, &mut req.body, params.sdp.clone());
        let local_tag = req
            .headers
            .from()
            .and_then(|f| f.tag())
            .unwrap_or("")
            .to_owned();
        let key = self.start_client(
            now,
            req.clone(),
            params.destination,
            params.transport.clone(),
            Owner::Invite(id),
        );
        self.add_call(
            id,
            Call {
                uac: true,
                state: State::Calling,
                dialog: None,
                invite: req,
                invite_key: key,
                peer: params.destination,
                transport: params.transport,
                credentials: params.credentials,
                local_sdp: params.sdp,
                remote_sdp: None,
                ack: None,
                cancel_requested: false,
                bye_after_ack: false,
                hangup_headers: Vec::new(),
                last_rseq: Vec::new(),
                offer_in_2xx: false,
                local_tag,
                pending_2xx: None,
                reliable: None,
                rseq: 0,
                queued_answer: None,
                reinvite_out: None,
                offer_in: None,
                glare_retry: None,
                session_expires: None,
                we_refresh: false,
                refresh_at: None,
                expire_at: None,
            },
        );
        self.flush(now);
        id
    }

    /// Ends a call the right way for its state: CANCEL before answer (once a provisional has
    /// arrived, as RFC 3261 §9.1 asks), BYE after, a 480 if we are the unanswered UAS.
    pub fn hangup(&mut self, now: Instant, call: CallId) {
        self.hangup_with_headers(now, call, &[]);
    }

    /// [`UserAgent::hangup`] with extra headers on the BYE, CANCEL or refusal that ends the
    /// call: a `Reason` (RFC 3326) carrying the other leg's cause, say.
    pub fn hangup_with_headers(
        &mut self,
        now: Instant,
        call: CallId,
        headers: &[(String, String)],
    ) {
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.hangup_headers = headers.to_vec();
        match (c.uac, c.state) {
            (true, State::Calling) => c.cancel_requested = true,
            (true, State::Early) => {
                c.cancel_requested = true;
                send_cancel(self, now, call);
            }
            (false, State::Answered) => c.bye_after_ack = true,
            (false, State::Calling | State::Early) => {
                self.reject_with_headers(now, call, StatusCode::TEMPORARILY_UNAVAILABLE, headers);
            }
            _ => self.send_bye(now, call),
        }
        self.flush(now);
    }

    /// Sends a re-INVITE with a new offer (hold: an offer with `a=sendonly`).
    pub fn reinvite(&mut self, now: Instant, call: CallId, sdp: Vec<u8>) {
        send_reinvite(self, now, call, Some(sdp));
        self.flush(now);
    }

    /// Sends INFO in the dialog (e.g. `application/dtmf-relay`).
    pub fn info(&mut self, now: Instant, call: CallId, content_type: &str, body: Vec<u8>) {
        if let Some(mut req) = in_dialog(self, call, Method::Info) {
            req.headers.set("Content-Type", content_type);
            req.body = body;
            send_in_dialog(self, now, call, req, Owner::InDialog(call));
        }
        self.flush(now);
    }

    /// Sends UPDATE (RFC 3311): a session refresh without SDP, or a new offer.
    pub fn update(&mut self, now: Instant, call: CallId, sdp: Option<Vec<u8>>) {
        if let Some(mut req) = in_dialog(self, call, Method::Update) {
            add_session_headers(self, call, &mut req);
            set_body(&mut req.headers, &mut req.body, sdp);
            send_in_dialog(self, now, call, req, Owner::InDialog(call));
        }
        self.flush(now);
    }

    pub(super) fn send_bye(&mut self, now: Instant, call: CallId) {
        if let Some(mut req) = in_dialog(self, call, Method::Bye) {
            if let Some(c) = self.calls.get(&call) {
                for (name, value) in &c.hangup_headers {
                    req.headers.set(name, value.clone());
                }
            }
            send_in_dialog(self, now, call, req, Owner::Bye(call));
        }
        if let Some(c) = self.remove_call(call) {
            drop(c);
            self.events.push_back(Event::Ended {
                call,
                reason: super::Reason::LocalBye,
            });
        }
    }
}

/// Sets a body with its Content-Type (SDP is the only body calls carry).
pub(super) fn set_body(
    headers: &mut crate::message::Headers,
    body: &mut Vec<u8>,
    sdp: Option<Vec<u8>>,
) {
    headers.remove("Content-Type");
    match sdp {
        Some(s) => {
            headers.set("Content-Type", "application/sdp");
            *body = s;
        }
        None => body.clear(),
    }
}

/// A new in-dialog request with a fresh Via.
pub(super) fn in_dialog(ua: &mut UserAgent, call: CallId, method: Method) -> Option<Request> {
    let transport = ua.calls.get(&call)?.transport.clone();
    let v = via(ua, &transport);
    let contact = ua.contact(Some("landline"), &transport);
    let c = ua.calls.get_mut(&call)?;
    let d = c.dialog.as_mut()?;
    let mut req = d.request(method, v, &contact, None);
    req.headers.set("User-Agent", ua.config.user_agent.clone());
    Some(req)
}

pub(super) fn send_in_dialog(
    ua: &mut UserAgent,
    now: Instant,
    call: CallId,
    req: Request,
    owner: Owner,
) -> Option<TransactionKey> {
    let c = ua.calls.get(&call)?;
    let dest = c.dialog.as_ref()?.destination(c.peer, &c.transport);
    let transport = c.transport.clone();
    Some(ua.start_client(now, req, dest, transport, owner))
}

fn add_session_headers(ua: &UserAgent, call: CallId, req: &mut Request) {
    let Some(c) = ua.calls.get(&call) else { return };
    if let Some(se) = c.session_expires {
        // In our own request, "uac" is us.
        let refresher = if c.we_refresh { "uac" } else { "uas" };
        req.headers
            .set("Session-Expires", format!("{se};refresher={refresher}"));
        req.headers.set("Supported", "100rel, timer");
    }
}

fn send_reinvite(ua: &mut UserAgent, now: Instant, call: CallId, sdp: Option<Vec<u8>>) {
    let Some(c) = ua.calls.get(&call) else { return };
    if c.reinvite_out.is_some() || c.offer_in.is_some() || c.state != State::Confirmed {
        // One offer at a time (RFC 3261 §14.1): retry when the other finishes.
        let at = now + ua.config.timers.t1;
        if let Some(c) = ua.calls.get_mut(&call) {
            c.glare_retry = Some((at, sdp));
        }
        return;
    }
    let body = sdp.clone().or_else(|| c.local_sdp.clone());
    let Some(mut req) = in_dialog(ua, call, Method::Invite) else {
        return;
    };
    add_session_headers(ua, call, &mut req);
    set_body(&mut req.headers, &mut req.body, body);
    if let Some(key) = send_in_dialog(ua, now, call, req, Owner::ReInvite(call)) {
        if let Some(c) = ua.calls.get_mut(&call) {
            c.reinvite_out = Some((key, sdp));
            c.refresh_at = None;
        }
    }
}

pub(super) fn send_cancel(ua: &mut UserAgent, now: Instant, call: CallId) {
    let Some(c) = ua.calls.get(&call) else { return };
    let mut req = crate::transaction::cancel_for(&c.invite);
    for (name, value) in &c.hangup_headers {
        req.headers.set(name, value.clone());
    }
    let (dest, transport) = (c.peer, c.transport.clone());
    ua.start_client(now, req, dest, transport, Owner::Detached);
}

/// Call timers due at `now`.
pub(super) fn on_timeout(ua: &mut UserAgent, now: Instant) {
    let ids: Vec<CallId> = ua.calls.due(now);
    for id in ids {
        super::incoming::retransmit(ua, now, id);
        let Some(c) = ua.calls.get_mut(&id) else {
            continue;
        };
        if c.glare_retry.as_ref().is_some_and(|(t, _)| now >= *t) {
            let sdp = c.glare_retry.take().and_then(|(_, s)| s);
            send_reinvite(ua, now, id, sdp);
            continue;
        }
        if c.refresh_at.is_some_and(|t| now >= t) {
            c.refresh_at = None;
            send_reinvite(ua, now, id, None);
            continue;
        }
        if c.expire_at.is_some_and(|t| now >= t) {
            c.expire_at = None;
            ua.send_bye(now, id);
            if let Some(Event::Ended { reason, .. }) = ua.events.back_mut() {
                *reason = Reason::SessionExpired;
            }
        }
    }
}
