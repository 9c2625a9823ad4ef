//! INVITE dialogs from the UAC side: provisional responses (early dialogs, PRACK), the 2xx that
//! confirms the call (ACK, forks), re-INVITE outcomes (491 glare retry), 422 retries, and the
//! session-timer values a 2xx carries.

use std::time::{Duration, Instant};

use tracing::debug;

use super::call::{State, in_dialog, send_cancel, send_in_dialog};
use super::dialog::Dialog;
use super::route::{self, via};
use super::{CallId, Event, Owner, UserAgent};
use crate::message::{Method, Request, Response, StatusCode};
use crate::transaction::{ClientEvent, TransactionKey};

/// Routes client transaction events of calls.
pub(super) fn client_event(
    ua: &mut UserAgent,
    now: Instant,
    call: CallId,
    owner: Owner,
    req: Request,
    e: ClientEvent,
) {
    match owner {
        Owner::Invite(_) => invite_event(ua, now, call, &req, e),
        Owner::ReInvite(_) => reinvite_event(ua, now, call, &req, e),
        Owner::InDialog(_) => {
            if let ClientEvent::Final(r) = e {
                if req.method != Method::Update {
                    return;
                }
                if r.status.is_success() {
                    rearm_from(ua, now, call, &r);
                } else if !retry_interval(ua, now, call, owner, &req, &r) {
                    refresh_failed(ua, now, call);
                }
            }
        }
        _ => {}
    }
}

fn invite_event(ua: &mut UserAgent, now: Instant, call: CallId, req: &Request, e: ClientEvent) {
    match e {
        ClientEvent::Provisional(r) => provisional(ua, now, call, req, r),
        ClientEvent::Final(r) if r.status.is_success() => success(ua, now, call, req, r),
        ClientEvent::Final(r) => {
            if retry_interval(ua, now, call, Owner::Invite(call), req, &r) {
                return;
            }
            ua.remove_call(call);
            ua.events.push_back(Event::Failed {
                call,
                status: r.status,
            });
        }
        ClientEvent::Timeout => {
            if ua.remove_call(call).is_some() {
                ua.events.push_back(Event::Failed {
                    call,
                    status: StatusCode::REQUEST_TIMEOUT,
                });
            }
        }
    }
}

fn provisional(ua: &mut UserAgent, now: Instant, call: CallId, req: &Request, r: Response) {
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    if r.status == StatusCode::TRYING {
        return;
    }
    let tag = r
        .headers
        .to()
        .and_then(|t| t.tag())
        .unwrap_or("")
        .to_owned();
    if !tag.is_empty() && c.state != State::Confirmed {
        // Early dialog with the latest forking branch that answered.
        let dialog = Dialog::from_uac(&c.invite, &r);
        c.dialog = follow_dialog(c.dialog.take(), dialog);
        c.state = State::Early;
    }
    let first_cancel = c.cancel_requested;
    let reliable = r.headers.has_token("Require", "100rel");
    let rseq = r.headers.number("RSeq");
    if reliable {
        // Each early dialog numbers its reliable provisionals from its own start (RFC 3262 §4).
        let last = c.last_rseq.iter().position(|(t, _)| *t == tag);
        match (rseq, last) {
            (None, _) => return,
            (Some(n), Some(i)) if n <= c.last_rseq[i].1 => return, // retransmission: PRACKed
            (Some(n), Some(i)) => c.last_rseq[i].1 = n,
            (Some(n), None) => {
                if c.last_rseq.len() >= super::call::MAX_EARLY_DIALOGS {
                    c.last_rseq.remove(0);
                }
                c.last_rseq.push((tag, n));
            }
        }
    }
    let body = (!r.body.is_empty()).then(|| r.body.clone());
    if body.is_some() {
        c.remote_sdp = body.clone();
    }
    if let (true, Some(n)) = (reliable, rseq) {
        if let Some(cseq) = req.headers.cseq() {
            if let Some(mut prack) = in_dialog(ua, call, Method::Prack) {
                prack
                    .headers
                    .set("RAck", format!("{n} {} INVITE", cseq.seq));
                send_in_dialog(ua, now, call, prack, Owner::InDialog(call));
            }
        }
    }
    if first_cancel {
        send_cancel(ua, now, call);
    }
    ua.events.push_back(Event::Progress {
        call,
        status: r.status,
        sdp: body,
    });
}

fn success(ua: &mut UserAgent, now: Instant, call: CallId, req: &Request, r: Response) {
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let tag = r
        .headers
        .to()
        .and_then(|t| t.tag())
        .unwrap_or("")
        .to_owned();
    if c.state == State::Confirmed {
        let same = c.dialog.as_ref().is_some_and(|d| d.remote_tag == tag);
        if same {
            if let Some((ack, _)) = c.ack.clone() {
                let dest = c
                    .dialog
                    .as_ref()
                    .map_or(c.peer, |d| d.destination(c.peer, &c.transport));
                let transport = c.transport.clone();
                ua.send(dest, transport, ack);
            }
        } else {
            end_fork(ua, now, call, req, &r);
        }
        return;
    }
    let Some(dialog) = Dialog::from_uac(&c.invite, &r) else {
        return;
    };
    c.dialog = follow_dialog(c.dialog.take(), Some(dialog));
    c.state = State::Confirmed;
    let seq = req.headers.cseq().map_or(1, |s| s.seq);
    c.invite = req.clone();
    if !r.body.is_empty() {
        c.remote_sdp = Some(r.body.clone());
    }
    send_ack(ua, call, seq);
    rearm_from(ua, now, call, &r);
    let sdp = (!r.body.is_empty()).then(|| r.body.clone());
    ua.events.push_back(Event::Answered { call, sdp });
    if ua.calls.get(&call).is_some_and(|c| c.cancel_requested) {
        ua.send_bye(now, call);
    }
}

/// The dialog a new response establishes, numbering its requests after any the previous
/// (early) dialog sent: a PRACK in the early dialog used a CSeq that the confirmed dialog's next
/// request (the BYE, say) must exceed (RFC 3261 §12.2.1.1), and CSeq only has to grow.
fn follow_dialog(previous: Option<Dialog>, new: Option<Dialog>) -> Option<Dialog> {
    match (previous, new) {
        (Some(old), Some(mut new)) => {
            new.local_seq = new.local_seq.max(old.local_seq);
            Some(new)
        }
        (old, new) => new.or(old),
    }
}

/// A second fork answered: ACK it and hang it up at once (RFC 3261 §13.2.2.4).
fn end_fork(ua: &mut UserAgent, now: Instant, call: CallId, req: &Request, r: &Response) {
    let Some(c) = ua.calls.get(&call) else { return };
    let Some(mut d) = Dialog::from_uac(req, r) else {
        return;
    };
    let (peer, transport) = (c.peer, c.transport.clone());
    let dest = d.destination(peer, &transport);
    let contact = ua.contact(Some("landline"), &transport);
    let seq = req.headers.cseq().map_or(1, |s| s.seq);
    let ack = d.request(Method::Ack, via(ua, &transport), &contact, Some(seq));
    ua.send(dest, transport.clone(), ack.to_bytes());
    let bye = d.request(Method::Bye, via(ua, &transport), &contact, None);
    ua.start_client(now, bye, dest, transport, Owner::Detached);
}

fn send_ack(ua: &mut UserAgent, call: CallId, seq: u32) {
    let Some(transport) = ua.calls.get(&call).map(|c| c.transport.clone()) else {
        return;
    };
    let v = via(ua, &transport);
    let contact = ua.contact(Some("landline"), &transport);
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let Some(d) = c.dialog.as_mut() else { return };
    let ack = d.request(Method::Ack, v, &contact, Some(seq)).to_bytes();
    let dest = d.destination(c.peer, &transport);
    c.ack = Some((ack.clone(), seq));
    ua.send(dest, transport, ack);
}

fn reinvite_event(ua: &mut UserAgent, now: Instant, call: CallId, req: &Request, e: ClientEvent) {
    let status = match &e {
        ClientEvent::Provisional(_) => return,
        ClientEvent::Final(r) => r.status,
        ClientEvent::Timeout => StatusCode::REQUEST_TIMEOUT,
    };
    if let ClientEvent::Final(r) = &e {
        // The retry takes over the re-INVITE's place (and its offer) in `reinvite_out`.
        if retry_interval(ua, now, call, Owner::ReInvite(call), req, r) {
            return;
        }
    }
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let offered = c.reinvite_out.take().and_then(|(_, sdp)| sdp);
    if let ClientEvent::Final(r) = e {
        if r.status.is_success() {
            let seq = req.headers.cseq().map_or(1, |s| s.seq);
            if let Some(sdp) = offered {
                c.local_sdp = Some(sdp);
            }
            if !r.body.is_empty() {
                c.remote_sdp = Some(r.body.clone());
            }
            send_ack(ua, call, seq);
            rearm_from(ua, now, call, &r);
            let sdp = (!r.body.is_empty()).then(|| r.body.clone());
            ua.events.push_back(Event::OfferAnswered { call, sdp });
            return;
        }
    }
    match status.code() {
        491 => {
            // RFC 3261 §14.1: the Call-ID owner waits 2.1–4 s, the other side 0–2 s.
            let r = ua.random() % 1000;
            let Some(c) = ua.calls.get_mut(&call) else {
                return;
            };
            let wait = if c.uac { 2100 + r * 19 / 10 } else { r * 2 };
            c.glare_retry = Some((now + Duration::from_millis(wait), offered));
        }
        408 | 481 => {
            ua.send_bye(now, call);
        }
        _ => {
            refresh_failed(ua, now, call);
            ua.events.push_back(Event::OfferRejected { call, status });
        }
    }
}

/// RFC 4028 §7.3: a 422 names the peer's Min-SE; the request is sent again once with
/// Session-Expires raised to it (initial INVITE, re-INVITE or UPDATE). Returns whether it was.
/// Only upward, so a peer repeating 422 cannot loop us.
fn retry_interval(
    ua: &mut UserAgent,
    now: Instant,
    call: CallId,
    owner: Owner,
    req: &Request,
    r: &Response,
) -> bool {
    if r.status != StatusCode::INTERVAL_TOO_SMALL {
        return false;
    }
    let asked = req.headers.number("Session-Expires").unwrap_or(0);
    let Some(min) = r.headers.number("Min-SE").filter(|m| *m > asked) else {
        return false;
    };
    let Some(c) = ua.calls.get(&call) else {
        return false;
    };
    let in_dialog = !matches!(owner, Owner::Invite(_));
    let dest = match (&c.dialog, in_dialog) {
        (Some(d), true) => d.destination(c.peer, &c.transport),
        _ => c.peer,
    };
    let transport = c.transport.clone();
    let mut retry = req.clone();
    // Keep the refresher parameter the request named.
    let params = req
        .headers
        .get("Session-Expires")
        .and_then(|v| v.split_once(';'))
        .map(|(_, p)| format!(";{p}"))
        .unwrap_or_default();
    retry
        .headers
        .set("Session-Expires", format!("{min}{params}"));
    retry.headers.set("Min-SE", min.to_string());
    route::bump_cseq_and_branch(ua, &mut retry);
    if in_dialog {
        // Number it after anything the dialog sent meanwhile (an INFO, a PRACK).
        let Some(d) = ua.calls.get_mut(&call).and_then(|c| c.dialog.as_mut()) else {
            return false;
        };
        d.local_seq += 1;
        let seq = d.local_seq;
        for h in retry.headers.iter_mut() {
            if let crate::message::Header::CSeq(cs) = h {
                cs.seq = seq;
            }
        }
    }
    if let Some(c) = ua.calls.get_mut(&call) {
        if c.session_expires.is_some() {
            c.session_expires = Some(min);
        }
    }
    debug!(?call, min, "422: retrying with the peer's Min-SE");
    let key = ua.start_client(now, retry.clone(), dest, transport, owner);
    auth_retried(ua, owner, &retry, &key);
    true
}

/// A re-INVITE or UPDATE of ours failed (not 408/481, which end the call): it refreshed
/// nothing. As the refresher we try again halfway to the session's end, which stands; once
/// too little is left, the session expires and [`super::call::on_timeout`] sends BYE (§10).
fn refresh_failed(ua: &mut UserAgent, now: Instant, call: CallId) {
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    if !c.we_refresh || c.refresh_at.is_some() {
        return;
    }
    let Some(end) = c.expire_at else { return };
    let left = end.saturating_duration_since(now);
    if left >= Duration::from_secs(u64::from(super::call::MIN_SESSION_INTERVAL)) {
        c.refresh_at = Some(now + left / 2);
    }
}

/// Re-arms session timers from a 2xx (ours as UAC, or a refresh answered).
fn rearm_from(ua: &mut UserAgent, now: Instant, call: CallId, r: &Response) {
    let Some(c) = ua.calls.get_mut(&call) else {
        return;
    };
    let Some(value) = r.headers.get("Session-Expires") else {
        if let Some(se) = c.session_expires {
            let we = c.we_refresh;
            c.arm_session(now, se, we);
        }
        return;
    };
    let mut parts = value.split(';');
    let Some(se) = parts.next().and_then(|s| s.trim().parse::<u32>().ok()) else {
        return;
    };
    let refresher_uac = !parts.any(|p| p.trim().eq_ignore_ascii_case("refresher=uas"));
    // We sent the request this answers, so "uac" means us.
    c.arm_session(now, se, refresher_uac);
}

/// Fixes up a call after an auth or 422 retry replaced its INVITE transaction.
pub(super) fn auth_retried(
    ua: &mut UserAgent,
    owner: Owner,
    retry: &Request,
    key: &TransactionKey,
) {
    match owner {
        Owner::Invite(c) => {
            if let Some(call) = ua.calls.get_mut(&c) {
                call.invite = retry.clone();
                call.invite_key = key.clone();
            }
        }
        Owner::ReInvite(c) => {
            if let Some(call) = ua.calls.get_mut(&c) {
                if let (Some(d), Some(cs)) = (call.dialog.as_mut(), retry.headers.cseq()) {
                    d.local_seq = d.local_seq.max(cs.seq);
                }
                if let Some((k, _)) = call.reinvite_out.as_mut() {
                    *k = key.clone();
                }
            }
        }
        Owner::InDialog(c) | Owner::Bye(c) => {
            if let (Some(call), Some(cs)) = (ua.calls.get_mut(&c), retry.headers.cseq()) {
                if let Some(d) = call.dialog.as_mut() {
                    d.local_seq = d.local_seq.max(cs.seq);
                }
            }
        }
        _ => {}
    }
}
