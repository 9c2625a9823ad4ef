//! INVITE dialogs from the UAS side: new calls, 18x (reliable or not), 2xx retransmission until
//! ACK, in-dialog requests (re-INVITE with 491 glare, UPDATE, BYE, PRACK, INFO) and CANCEL.

use std::net::SocketAddr;
use std::time::Instant;

use super::call::{Call, Reason, Retrans, State, set_body};
use super::dialog::Dialog;
use super::route::{self, reply};
use super::{CallId, Event, UserAgent};
use crate::message::{Contact, Header, Method, Request, Response, StatusCode, Transport};
use crate::transaction::TransactionKey;

impl UserAgent {
    /// Sends a provisional response (180, 183 with early media). `reliable` asks for RFC 3262
    /// delivery, honoured when the caller supports 100rel.
    pub fn ring(
        &mut self,
        now: Instant,
        call: CallId,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
        reliable: bool,
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.uac || !matches!(c.state, State::Calling | State::Early) {
            return;
        }
        let peer_100rel = c.invite.headers.has_token("Supported", "100rel")
            || c.invite.headers.has_token("Require", "100rel");
        let Some(mut resp) = self.call_response(call, status) else {
            return;
        };
        let has_sdp = sdp.is_some();
        set_body(&mut resp.headers, &mut resp.body, sdp.clone());
        let t1 = self.config.timers.t1;
        let t64 = self.config.timers.t64();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.state = State::Early;
        if sdp.is_some() {
            c.local_sdp = sdp;
        }
        if reliable && peer_100rel {
            c.rseq += 1;
            resp.headers.set("Require", "100rel");
            resp.headers.set("RSeq", c.rseq.to_string());
            let at = (!c.transport.is_reliable()).then_some(now + t1);
            let r = Retrans {
                data: resp.to_bytes(),
                at,
                interval: t1,
                deadline: now + t64,
            };
            c.reliable = Some((r, c.rseq, has_sdp));
        }
        let key = c.invite_key.clone();
        self.respond(now, &key, &resp);
        self.flush(now);
    }

    /// Answers an incoming call with 200 and our SDP answer.
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: Vec<u8>) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.uac || !matches!(c.state, State::Calling | State::Early) {
            return;
        }
        let Some(mut resp) = self.call_response(call, StatusCode::OK) else {
            return;
        };
        set_body(&mut resp.headers, &mut resp.body, Some(sdp.clone()));
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        c.local_sdp = Some(sdp);
        // An INVITE without SDP (late offer): this 200 is our offer, the ACK brings the answer.
        c.offer_in_2xx = c.invite.body.is_empty();
        if let Some(v) = c.session_header() {
            resp.headers.set("Session-Expires", v);
            if c.invite.headers.has_token("Supported", "timer") {
                resp.headers.set("Require", "timer");
            }
        }
        // RFC 3262 §3: no 2xx while a reliable 1xx carrying SDP is unacknowledged.
        if c.reliable.as_ref().is_some_and(|(_, _, sdp)| *sdp) {
            c.queued_answer = Some(resp);
            return;
        }
        send_2xx(self, now, call, resp);
        self.flush(now);
    }

    /// Refuses an incoming call (486, 603, 488...).
    pub fn reject(&mut self, now: Instant, call: CallId, status: StatusCode) {
        self.reject_with_headers(now, call, status, &[]);
    }

    /// Refuses an incoming call with extra headers on the response (a `Reason` carrying the
    /// far side's cause, RFC 3326, say).
    pub fn reject_with_headers(
        &mut self,
        now: Instant,
        call: CallId,
        status: StatusCode,
        headers: &[(String, String)],
    ) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        if c.uac || !matches!(c.state, State::Calling | State::Early) {
            return;
        }
        let key = c.invite_key.clone();
        let Some(mut resp) = self.call_response(call, status) else {
            return;
        };
        for (name, value) in headers {
            resp.headers.set(name, value.clone());
        }
        self.respond(now, &key, &resp);
        self.remove_call(call);
        self.events.push_back(Event::Ended {
            call,
            reason: Reason::Failed(status),
        });
        self.flush(now);
    }

    /// Answers the peer's re-INVITE or UPDATE offer ([`Event::Offer`]).
    pub fn answer_offer(&mut self, now: Instant, call: CallId, sdp: Vec<u8>) {
        self.finish_offer(now, call, StatusCode::OK, Some(sdp));
    }

    /// Refuses the peer's offer (488 when nothing fits); the previous session stays.
    pub fn reject_offer(&mut self, now: Instant, call: CallId, status: StatusCode) {
        self.finish_offer(now, call, status, None);
    }

    fn finish_offer(
        &mut self,
        now: Instant,
        call: CallId,
        status: StatusCode,
        sdp: Option<Vec<u8>>,
    ) {
        let Some((key, req)) = self.calls.get_mut(&call).and_then(|c| c.offer_in.take()) else {
            return;
        };
        answer_in_dialog(self, now, call, &key, &req, status, sdp);
        self.flush(now);
    }

    /// A response on the call's INVITE carrying our tag, Contact and capabilities.
    fn call_response(&mut self, call: CallId, status: StatusCode) -> Option<Response> {
        let c = self.calls.get(&call)?;
        let (invite, tag, transport) = (c.invite.clone(), c.local_tag.clone(), c.transport.clone());
        let mut resp = Response::to_request(&invite, status);
        if let Some(to) = resp.headers.to_mut() {
            to.params.set("tag", Some(&tag));
        }
        if status.code() > 100 && status.code() < 300 {
            resp.headers.push(Header::Contact(Contact::Addr(
                self.contact(Some("landline"), &transport),
            )));
            resp.headers.set("Allow", route::ALLOW);
            resp.headers.set("Supported", "100rel, timer");
        }
        resp.headers.set("Server", self.config.user_agent.clone());
        Some(resp)
    }
}

fn send_2xx(ua: &mut UserAgent, now: Instant, call: CallId, resp: Response) {
    let t1 = ua.config.timers.t1;
    let t64 = ua.config.timers.t64();
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    c.state = State::Answered;
    let at = (!c.transport.is_reliable()).then_some(now + t1);
    c.pending_2xx = Some(Retrans {
        data: resp.to_bytes(),
        at,
        interval: t1,
        deadline: now + t64,
    });
    if let Some(se) = c.session_expires {
        let we = c.we_refresh;
        c.arm_session(now, se, we);
    }
    let key = c.invite_key.clone();
    ua.respond(now, &key, &resp);
}

/// A new request that is not a retransmission, for calls.
pub(super) fn request(
    ua: &mut UserAgent,
    now: Instant,
    source: SocketAddr,
    transport: Transport,
    key: TransactionKey,
    req: Request,
    user: Option<String>,
) {
    let in_dialog = req.headers.to().and_then(|t| t.tag()).is_some();
    if req.method == Method::Invite && !in_dialog {
        return new_call(ua, now, source, transport, key, req, user);
    }
    let found = ua
        .calls_with_call_id(req.headers.call_id())
        .into_iter()
        .find(|id| {
            ua.calls
                .get(id)
                .and_then(|c| c.dialog.as_ref())
                .is_some_and(|d| d.matches_request(&req))
        });
    let Some(call) = found else {
        return reply(ua, now, &key, &req, StatusCode::NO_TRANSACTION, |_| {});
    };
    let seq = req.headers.cseq().map_or(0, |c| c.seq);
    if let Some(d) = ua.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) {
        if d.remote_seq.is_some_and(|r| seq <= r) && req.method != Method::Prack {
            return reply(ua, now, &key, &req, StatusCode::SERVER_ERROR, |h| {
                h.set("Retry-After", "1")
            });
        }
        d.remote_seq = Some(seq.max(d.remote_seq.unwrap_or(0)));
        if let Some(c) = req.headers.contacts().next() {
            d.remote_target = c.uri.clone();
        }
    }
    match req.method {
        Method::Bye => {
            reply(ua, now, &key, &req, StatusCode::OK, |_| {});
            if let Some(c) = ua.remove_call(call) {
                if !c.uac && matches!(c.state, State::Calling | State::Early) {
                    let resp = Response::to_request(&c.invite, StatusCode::REQUEST_TERMINATED);
                    ua.respond(now, &c.invite_key, &resp);
                }
            }
            if let Some(reason) = req.headers.get("Reason") {
                ua.events.push_back(Event::EndReason {
                    call,
                    reason: reason.to_owned(),
                });
            }
            ua.events.push_back(Event::Ended {
                call,
                reason: Reason::RemoteBye,
            });
        }
        Method::Prack => prack(ua, now, call, &key, &req),
        Method::Info => {
            reply(ua, now, &key, &req, StatusCode::OK, |_| {});
            let content_type = req.headers.get("Content-Type").map(str::to_owned);
            ua.events.push_back(Event::Info {
                call,
                content_type,
                body: req.body,
            });
        }
        _ => offer(ua, now, call, key, req),
    }
}

fn new_call(
    ua: &mut UserAgent,
    now: Instant,
    source: SocketAddr,
    transport: Transport,
    key: TransactionKey,
    req: Request,
    user: Option<String>,
) {
    // 100 Trying at once, so the caller's timer A stops (RFC 3261 §8.2.6.1).
    let trying = Response::to_request(&req, StatusCode::TRYING);
    ua.respond(now, &key, &trying);
    if interval_too_small(ua, &req) {
        return refuse_interval(ua, now, &key, &req);
    }
    let se = req.headers.number("Session-Expires");
    let we_refresh = se.is_some() && uas_refreshes(&req);
    let id = CallId(ua.new_id());
    let local_tag = ua.token();
    let dialog = Dialog::from_uas(&req, &local_tag);
    let sdp = (!req.body.is_empty()).then(|| req.body.clone());
    let event = Event::IncomingCall {
        call: id,
        from: req
            .headers
            .from()
            .map(|f| f.uri.to_string())
            .unwrap_or_default(),
        to: req.uri.to_string(),
        to_header: req
            .headers
            .to()
            .map(|t| t.uri.to_string())
            .unwrap_or_default(),
        sdp: sdp.clone(),
        user,
    };
    ua.add_call(
        id,
        Call {
            uac: false,
            state: State::Calling,
            dialog,
            invite: req,
            invite_key: key,
            peer: source,
            transport,
            credentials: None,
            local_sdp: None,
            remote_sdp: sdp,
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
            session_expires: se,
            we_refresh,
            refresh_at: None,
            expire_at: None,
        },
    );
    ua.events.push_back(event);
}

/// re-INVITE or UPDATE from the peer: refresh, new offer, or glare.
fn offer(ua: &mut UserAgent, now: Instant, call: CallId, key: TransactionKey, req: Request) {
    let Some(c) = ua.calls.get(&call) else { return };
    if req.method == Method::Invite && (c.reinvite_out.is_some() || c.offer_in.is_some()) {
        return reply(ua, now, &key, &req, StatusCode::REQUEST_PENDING, |_| {});
    }
    if interval_too_small(ua, &req) {
        // The session goes on as it was: a refused refresh refreshes nothing.
        return refuse_interval(ua, now, &key, &req);
    }
    if let Some(se) = req.headers.number("Session-Expires") {
        let we_refresh = uas_refreshes(&req);
        if let Some(c) = ua.calls.get_mut(&call) {
            c.session_expires = Some(se);
            c.we_refresh = we_refresh;
        }
    }
    let Some(c) = ua.calls.get(&call) else { return };
    if req.method == Method::Update && !req.body.is_empty() {
        if let Some(status) = early_update_refusal(c) {
            return reply(ua, now, &key, &req, status, |h| {
                if status == StatusCode::SERVER_ERROR {
                    h.set("Retry-After", "1");
                }
            });
        }
    }
    if req.method == Method::Invite && req.body.is_empty() {
        // No offer (RFC 3261 §14.2): the application makes one for our 2xx.
        if let Some(c) = ua.calls.get_mut(&call) {
            c.offer_in = Some((key, req));
        }
        ua.events.push_back(Event::OfferWanted { call });
        return;
    }
    if req.body.is_empty() || Some(&req.body) == c.remote_sdp.as_ref() {
        // A session refresh: answer with the session as it is. An UPDATE that repeats the
        // SDP is still an offer and gets an answer (RFC 3311 §5.2); one without SDP gets none.
        let sdp = (!req.body.is_empty())
            .then(|| c.local_sdp.clone())
            .flatten();
        return answer_in_dialog(ua, now, call, &key, &req, StatusCode::OK, sdp);
    }
    let sdp = req.body.clone();
    if let Some(c) = ua.calls.get_mut(&call) {
        c.offer_in = Some((key, req));
    }
    ua.events.push_back(Event::Offer { call, sdp });
}

/// RFC 4028 §9: a Session-Expires below our Min-SE may be refused (422) when the requester
/// supports session timers, and so can retry with our minimum. One that does not got its
/// interval from a proxy, would not understand a 422, and leaves the refreshing to us anyway.
fn interval_too_small(ua: &UserAgent, req: &Request) -> bool {
    let supports_timer =
        req.headers.has_token("Supported", "timer") || req.headers.has_token("Require", "timer");
    supports_timer
        && req
            .headers
            .number("Session-Expires")
            .is_some_and(|se| se < ua.config.min_se)
}

/// 422 Session Interval Too Small carrying our Min-SE (RFC 4028 §6).
fn refuse_interval(ua: &mut UserAgent, now: Instant, key: &TransactionKey, req: &Request) {
    let min = ua.config.min_se.to_string();
    reply(ua, now, key, req, StatusCode::INTERVAL_TOO_SMALL, |h| {
        h.set("Min-SE", min)
    });
}

/// Whether we, the UAS of this INVITE or refresh, are the refresher (RFC 4028 §9): the
/// requester names the refresher ("uac" is its sender); naming none, it refreshes itself only
/// when it supports session timers, otherwise we must.
fn uas_refreshes(req: &Request) -> bool {
    let value = req.headers.get("Session-Expires").unwrap_or("");
    let named = |who: &str| {
        value
            .split(';')
            .skip(1)
            .any(|p| p.trim().eq_ignore_ascii_case(&format!("refresher={who}")))
    };
    let supports_timer = req.headers.has_token("Supported", "timer");
    named("uas") || !supports_timer
}

/// Why an UPDATE offer cannot be taken in an early dialog (RFC 3311 §5.2): 500 while an offer
/// we received still awaits our answer, 491 while our offer still awaits theirs.
fn early_update_refusal(c: &Call) -> Option<StatusCode> {
    if !matches!(c.state, State::Calling | State::Early) {
        return None;
    }
    let offer_received = !c.invite.body.is_empty();
    if !c.uac && offer_received && c.local_sdp.is_none() {
        return Some(StatusCode::SERVER_ERROR);
    }
    if c.uac && c.local_sdp.is_some() && c.remote_sdp.is_none() {
        return Some(StatusCode::REQUEST_PENDING);
    }
    None
}

fn answer_in_dialog(
    ua: &mut UserAgent,
    now: Instant,
    call: CallId,
    key: &TransactionKey,
    req: &Request,
    status: StatusCode,
    sdp: Option<Vec<u8>>,
) {
    let transport = ua
        .calls
        .get(&call)
        .map(|c| c.transport.clone())
        .unwrap_or(Transport::Udp);
    let contact = ua.contact(Some("landline"), &transport);
    let t1 = ua.config.timers.t1;
    let t64 = ua.config.timers.t64();
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let mut resp = Response::to_request(req, status);
    if status.is_success() {
        resp.headers.push(Header::Contact(Contact::Addr(contact)));
        if let Some(se) = c.session_expires {
            // Reply naming the refresher from the requester's point of view.
            let refresher = if c.we_refresh { "uas" } else { "uac" };
            resp.headers
                .set("Session-Expires", format!("{se};refresher={refresher}"));
            // RFC 4028 §9, for every session refresh as for the INVITE: the requester must
            // see that it is to refresh (MUST), and one that supports timers is told so (SHOULD).
            if !c.we_refresh || req.headers.has_token("Supported", "timer") {
                resp.headers.set("Require", "timer");
            }
            let we = c.we_refresh;
            c.arm_session(now, se, we);
        }
        if !req.body.is_empty() {
            c.remote_sdp = Some(req.body.clone());
        }
        if let Some(s) = &sdp {
            c.local_sdp = Some(s.clone());
        }
        // A re-INVITE without SDP answered with our offer: the ACK brings the answer.
        c.offer_in_2xx = req.method == Method::Invite && req.body.is_empty() && sdp.is_some();
        set_body(&mut resp.headers, &mut resp.body, sdp);
        if req.method == Method::Invite {
            let at = (!c.transport.is_reliable()).then_some(now + t1);
            c.pending_2xx = Some(Retrans {
                data: resp.to_bytes(),
                at,
                interval: t1,
                deadline: now + t64,
            });
        }
    }
    ua.respond(now, key, &resp);
}

fn prack(ua: &mut UserAgent, now: Instant, call: CallId, key: &TransactionKey, req: &Request) {
    let rack = req
        .headers
        .get("RAck")
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse::<u32>().ok());
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let matches = c
        .reliable
        .as_ref()
        .is_some_and(|(_, rseq, _)| Some(*rseq) == rack);
    if !matches {
        return reply(ua, now, key, req, StatusCode::NO_TRANSACTION, |_| {});
    }
    c.reliable = None;
    let queued = c.queued_answer.take();
    reply(ua, now, key, req, StatusCode::OK, |_| {});
    if let Some(resp) = queued {
        send_2xx(ua, now, call, resp);
    }
}

/// CANCEL: 200 for the CANCEL, 487 for the INVITE if still unanswered (RFC 3261 §9.2). If our
/// 2xx already went out, the CANCEL changes nothing and the call proceeds.
pub(super) fn cancel(ua: &mut UserAgent, now: Instant, key: &TransactionKey, req: &Request) {
    let invite_key = key.with_method(Method::Invite);
    if !ua.servers.contains_key(&invite_key) {
        return reply(ua, now, key, req, StatusCode::NO_TRANSACTION, |_| {});
    }
    let call = ua
        .calls_with_call_id(req.headers.call_id())
        .into_iter()
        .find(|id| {
            ua.calls
                .get(id)
                .is_some_and(|c| !c.uac && c.invite_key == invite_key)
        });
    let tag = call
        .and_then(|id| ua.calls.get(&id))
        .map(|c| c.local_tag.clone());
    let mut ok = Response::to_request(req, StatusCode::OK);
    if let (Some(to), Some(tag)) = (ok.headers.to_mut(), tag.as_ref()) {
        to.params.set("tag", Some(tag));
    }
    ua.respond(now, key, &ok);
    let Some(call) = call else { return };
    let unanswered = ua.calls.get(&call).is_some_and(|c| {
        matches!(c.state, State::Calling | State::Early) && c.queued_answer.is_none()
    });
    if unanswered {
        let Some(resp) = ua.call_response(call, StatusCode::REQUEST_TERMINATED) else {
            return;
        };
        ua.respond(now, &invite_key, &resp);
        ua.remove_call(call);
        if let Some(reason) = req.headers.get("Reason") {
            ua.events.push_back(Event::EndReason {
                call,
                reason: reason.to_owned(),
            });
        }
        ua.events.push_back(Event::Ended {
            call,
            reason: Reason::Cancelled,
        });
    }
}

/// An ACK that matched no transaction: the ACK for a 2xx.
pub(super) fn ack(ua: &mut UserAgent, now: Instant, req: &Request) {
    let id = ua
        .calls_with_call_id(req.headers.call_id())
        .into_iter()
        .find(|id| {
            ua.calls
                .get(id)
                .and_then(|c| c.dialog.as_ref())
                .is_some_and(|d| d.matches_request(req))
        });
    let Some(id) = id else { return };
    let Some(c) = ua.calls.get_mut(&id) else {
        return;
    };
    c.pending_2xx = None;
    if std::mem::take(&mut c.offer_in_2xx) {
        let sdp = (!req.body.is_empty()).then(|| req.body.clone());
        if sdp.is_some() {
            c.remote_sdp = sdp.clone();
        }
        ua.events.push_back(Event::AckAnswer { call: id, sdp });
    }
    if c.state == State::Answered {
        c.state = State::Confirmed;
        let (call, bye) = (id, c.bye_after_ack);
        ua.events.push_back(Event::Confirmed { call });
        if bye {
            ua.hangup(now, call);
        }
    }
}

/// A 2xx retransmission that outlived its transaction: ACK again from the dialog.
pub(super) fn stray_2xx(ua: &mut UserAgent, resp: &Response) {
    let tag = resp.headers.to().and_then(|t| t.tag());
    let call_id = resp.headers.call_id();
    let candidates = ua.calls_with_call_id(call_id);
    let found = candidates
        .iter()
        .filter_map(|id| ua.calls.get(id))
        .find(|c| {
            c.uac
                && c.dialog.as_ref().is_some_and(|d| {
                    Some(d.call_id.as_str()) == call_id && Some(d.remote_tag.as_str()) == tag
                })
        });
    if let Some(c) = found {
        if let Some((ack, _)) = &c.ack {
            let dest = c
                .dialog
                .as_ref()
                .map_or(c.peer, |d| d.destination(c.peer, &c.transport));
            let (t, data) = (c.transport.clone(), ack.clone());
            ua.send(dest, t, data);
        }
    }
}

/// Resends a 2xx awaiting ACK or a reliable 1xx awaiting PRACK, or gives up on them.
pub(super) fn retransmit(ua: &mut UserAgent, now: Instant, call: CallId) {
    let t2 = ua.config.timers.t2;
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let (peer, transport) = (c.peer, c.transport.clone());
    let mut out = Vec::new();
    let mut ack_timeout = false;
    let mut prack_timeout = false;
    if let Some(r) = c.pending_2xx.as_mut() {
        if now >= r.deadline {
            ack_timeout = true;
        } else if r.at.is_some_and(|a| now >= a) {
            r.interval = (r.interval * 2).min(t2);
            r.at = Some(now + r.interval);
            out.push(r.data.clone());
        }
    }
    if let Some((r, _, _)) = c.reliable.as_mut() {
        if now >= r.deadline {
            prack_timeout = true;
        } else if r.at.is_some_and(|a| now >= a) {
            r.interval *= 2;
            r.at = Some(now + r.interval);
            out.push(r.data.clone());
        }
    }
    for data in out {
        ua.send(peer, transport.clone(), data);
    }
    if ack_timeout {
        // RFC 3261 §13.3.1.4: no ACK in 64*T1 — confirm and end the session with BYE.
        let initial = ua
            .calls
            .get(&call)
            .is_some_and(|c| c.state == State::Answered);
        if let Some(c) = ua.calls.get_mut(&call) {
            c.pending_2xx = None;
            c.state = State::Confirmed;
        }
        if initial {
            ua.hangup(now, call);
            if let Some(Event::Ended { reason, .. }) = ua.events.back_mut() {
                *reason = Reason::AckTimeout;
            }
        }
    }
    if prack_timeout {
        if let Some(c) = ua.calls.get_mut(&call) {
            c.reliable = None;
        }
        ua.reject(now, call, StatusCode::SERVER_ERROR);
    }
}
