//! Where every received message goes: parse, Via `received`/`rport` (RFC 3581), transaction
//! matching, stateless checks (483, 482, 416, 420, 501), then the call or registration logic.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::debug;

use super::{Owner, UserAgent, incoming, outgoing, register};
use crate::message::{
    CSeq, Header, Headers, Message, Method, NameAddr, Request, Response, SipUri, StatusCode,
    Transport, Via, reject_response,
};
use crate::transaction::{ClientEvent, ServerTransaction, TransactionKey};

/// Extensions we implement; a Require outside this list gets 420.
const SUPPORTED: &[&str] = &["100rel", "timer"];
/// Methods we answer.
pub(crate) const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, PRACK, UPDATE, INFO, REGISTER";

pub(super) fn receive(
    ua: &mut UserAgent,
    now: Instant,
    source: SocketAddr,
    transport: Transport,
    data: &[u8],
) {
    tracing::trace!(from = %source, %transport, line = %super::first_line(data), "receive");
    let msg = match Message::parse(data, &ua.config.limits) {
        Ok(m) => m,
        Err(e) => {
            debug!(%source, error = %e, "unparseable message");
            if let Some(reply) = reject_response(data, &e) {
                ua.send(source, transport, reply);
            }
            return;
        }
    };
    match msg {
        Message::Request(mut req) => {
            stamp_via(&mut req, source);
            request(ua, now, source, transport, req);
        }
        Message::Response(resp) => response(ua, now, resp),
    }
}

/// RFC 3581 / RFC 3261 §18.2.1: record where the request really came from, so responses go
/// back the way it came (through NATs), which is also how we send them.
fn stamp_via(req: &mut Request, source: SocketAddr) {
    if let Some(via) = req.headers.top_via_mut() {
        if via.host.ip() != Some(source.ip()) {
            via.params.set("received", Some(&source.ip().to_string()));
        }
        if via.params.contains("rport") {
            via.params.set("received", Some(&source.ip().to_string()));
            via.params.set("rport", Some(&source.port().to_string()));
        }
    }
}

fn response(ua: &mut UserAgent, now: Instant, resp: Response) {
    let Some(key) = TransactionKey::for_response(&resp) else {
        return;
    };
    if let Some((t, _)) = ua.clients.get_mut(&key) {
        t.handle_response(now, resp);
        return;
    }
    // A 2xx retransmission after the INVITE transaction is gone: re-ACK from the dialog.
    if resp.status.is_success()
        && resp
            .headers
            .cseq()
            .is_some_and(|c| c.method == Method::Invite)
    {
        incoming::stray_2xx(ua, &resp);
    }
}

fn request(
    ua: &mut UserAgent,
    now: Instant,
    source: SocketAddr,
    transport: Transport,
    req: Request,
) {
    let Some(key) = TransactionKey::for_server(&req) else {
        return;
    };
    if let Some((t, _)) = ua.servers.get_mut(&key) {
        // An ACK for our 2xx that reuses the INVITE's branch (RFC 2543 peers, some SBCs) still
        // confirms the dialog and may carry the answer to an offer we made in the 2xx.
        let ack_for_2xx = req.method == Method::Ack && t.is_accepted();
        t.handle_request(now, &req);
        if ack_for_2xx {
            incoming::ack(ua, now, &req);
        }
        return;
    }
    if req.method == Method::Ack {
        incoming::ack(ua, now, &req);
        return;
    }
    // A banned source's REGISTER or new INVITE: dropped before it costs a transaction.
    if super::authn::refused(ua, now, &req, source) {
        return;
    }
    // RFC 3261 §8.2.2.2: the same request arriving by another path is a merged request.
    let initial = req
        .headers
        .to()
        .is_some_and(|t| t.tag().is_none())
        .then(|| merge_key(&req))
        .flatten();
    if initial.as_ref().is_some_and(|k| is_merged(ua, k, &key)) {
        return stateless(ua, source, transport, &req, StatusCode::LOOP_DETECTED);
    }
    if ua.servers.len() >= ua.config.max_server_transactions {
        debug!(%source, held = ua.servers.len(), "server transactions at their cap: 503");
        let mut resp = response_to(ua, &req, StatusCode::SERVICE_UNAVAILABLE);
        resp.headers.set("Retry-After", "5");
        return ua.send(source, transport, resp.to_bytes());
    }
    if req.headers.max_forwards() == Some(0) && req.method != Method::Options {
        return stateless(ua, source, transport, &req, StatusCode::TOO_MANY_HOPS);
    }
    let t = ServerTransaction::new(
        key.clone(),
        req.clone(),
        source,
        transport.clone(),
        ua.config.timers,
    );
    ua.servers.insert(key.clone(), (t, None));
    if let Some(initial) = initial {
        note_initial(ua, initial, &key);
    }
    if req.uri.as_sip().is_none() {
        return reply(
            ua,
            now,
            &key,
            &req,
            StatusCode::UNSUPPORTED_URI_SCHEME,
            |_| {},
        );
    }
    let unsupported: Vec<String> = req
        .headers
        .get_all("Require")
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
        .collect();
    if !unsupported.is_empty() {
        let list = unsupported.join(", ");
        return reply(ua, now, &key, &req, StatusCode::BAD_EXTENSION, |h| {
            h.set("Unsupported", list)
        });
    }
    let Some(user) = super::authn::check(ua, now, &key, &req, source) else {
        return;
    };
    match req.method {
        Method::Invite | Method::Bye | Method::Prack | Method::Update | Method::Info => {
            incoming::request(ua, now, source, transport, key, req, user);
        }
        Method::Cancel => incoming::cancel(ua, now, &key, &req),
        Method::Options => {
            // A draining node says so, so load balancers probing with OPTIONS move away.
            let status = if ua.accepting {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(ua, now, &key, &req, status, |h| {
                h.set("Allow", ALLOW);
                h.set("Accept", "application/sdp");
                h.set("Supported", "100rel, timer");
            });
        }
        Method::Register => {
            register::incoming(ua, now, &key, &req, (source, transport), user.as_deref());
        }
        _ => reply(ua, now, &key, &req, StatusCode::NOT_IMPLEMENTED, |h| {
            h.set("Allow", ALLOW)
        }),
    }
}

/// What makes two requests the same request for merge detection: Call-ID, From tag, CSeq
/// number and method.
pub(super) type MergeKey = (String, String, u32, Method);

fn merge_key(req: &Request) -> Option<MergeKey> {
    let h = &req.headers;
    let cseq = h.cseq()?;
    Some((
        h.call_id()?.to_owned(),
        h.from()?.tag()?.to_owned(),
        cseq.seq,
        req.method.clone(),
    ))
}

/// Whether another live server transaction (another branch) holds this same request.
fn is_merged(ua: &UserAgent, initial: &MergeKey, key: &TransactionKey) -> bool {
    ua.initial_requests
        .get(initial)
        .is_some_and(|other| other.branch != key.branch && ua.servers.get(other).is_some())
}

/// Records an out-of-dialog request's transaction for merge detection, first dropping the
/// entries of ended transactions once they outnumber the live ones: the map stays within
/// twice the transactions held (plus a constant), at an amortised constant cost per request.
fn note_initial(ua: &mut UserAgent, initial: MergeKey, key: &TransactionKey) {
    if ua.initial_requests.len() >= 2 * ua.servers.len() + 1024 {
        let servers = &ua.servers;
        ua.initial_requests.retain(|_, k| servers.get(k).is_some());
    }
    ua.initial_requests.insert(initial, key.clone());
}

fn stateless(
    ua: &mut UserAgent,
    source: SocketAddr,
    transport: Transport,
    req: &Request,
    status: StatusCode,
) {
    if req.method == Method::Ack {
        return;
    }
    let resp = response_to(ua, req, status);
    ua.send(source, transport, resp.to_bytes());
}

/// A response with our To tag (kept if present) and Server header.
pub(super) fn response_to(ua: &mut UserAgent, req: &Request, status: StatusCode) -> Response {
    let mut resp = Response::to_request(req, status);
    if status.code() > 100 && resp.headers.to().and_then(|t| t.tag()).is_none() {
        let tag = ua.token();
        if let Some(to) = resp.headers.to_mut() {
            to.params.set("tag", Some(&tag));
        }
    }
    resp.headers.set("Server", ua.config.user_agent.clone());
    resp
}

/// Answers a server transaction with `status`, letting `extra` add headers.
pub(super) fn reply(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    req: &Request,
    status: StatusCode,
    extra: impl FnOnce(&mut Headers),
) {
    let mut resp = response_to(ua, req, status);
    extra(&mut resp.headers);
    ua.respond(now, key, &resp);
}

pub(super) fn client_event(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    owner: Owner,
    req: Request,
    e: ClientEvent,
) {
    // Digest challenges are answered the same way for every owner.
    if let ClientEvent::Final(resp) = &e {
        let code = resp.status.code();
        if (code == 401 || code == 407) && retry_with_auth(ua, now, key, owner, &req, resp) {
            return;
        }
    }
    match owner {
        Owner::Invite(c) | Owner::ReInvite(c) | Owner::InDialog(c) | Owner::Bye(c) => {
            outgoing::client_event(ua, now, c, owner, req, e);
        }
        Owner::Register(r) => register::client_event(ua, now, r, req, e),
        Owner::Options(id) => {
            let status = match e {
                ClientEvent::Final(r) => Some(r.status),
                ClientEvent::Timeout => Some(StatusCode::REQUEST_TIMEOUT),
                ClientEvent::Provisional(_) => None,
            };
            if let Some(status) = status {
                ua.events
                    .push_back(super::Event::OptionsResult { id, status });
            }
        }
        Owner::Detached => {}
    }
}

/// Re-sends `req` with credentials for the challenge in `resp`; false if we cannot or already
/// failed with this nonce (then the 401/407 goes to the owner as a failure).
fn retry_with_auth(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    owner: Owner,
    req: &Request,
    resp: &Response,
) -> bool {
    use crate::auth::{Challenge, DigestClient};
    let Some(creds) = ua.credentials_for(owner) else {
        return false;
    };
    let (challenge_name, answer_name) = if resp.status.code() == 407 {
        ("Proxy-Authenticate", "Proxy-Authorization")
    } else {
        ("WWW-Authenticate", "Authorization")
    };
    let Some(challenge) = Challenge::best(resp.headers.get_all(challenge_name)) else {
        return false;
    };
    // We already answered a challenge and are challenged again: the credentials are wrong,
    // unless the server only says our nonce went stale (RFC 7616 §3.3).
    if req.headers.get(answer_name).is_some() && !challenge.stale {
        return false;
    }
    let mut client = DigestClient::new(challenge, ua.random());
    let mut retry = req.clone();
    let uri = retry.uri.to_string();
    retry.headers.remove("Authorization");
    retry.headers.remove("Proxy-Authorization");
    retry.headers.push(Header::Other(
        answer_name.into(),
        client.authorize(&creds, req.method.as_str(), &uri),
    ));
    bump_cseq_and_branch(ua, &mut retry);
    let Some((t, _)) = ua.clients.get(key) else {
        return false;
    };
    let (dest, transport) = (t.destination(), t.transport().clone());
    let new_key = ua.start_client(now, retry.clone(), dest, transport, owner);
    outgoing::auth_retried(ua, owner, &retry, &new_key);
    register::auth_retried(ua, owner, &retry, client);
    true
}

/// A new transaction for the same request: new branch, CSeq + 1 (RFC 3261 §22.2).
pub(super) fn bump_cseq_and_branch(ua: &mut UserAgent, req: &mut Request) {
    let branch = ua.branch();
    for h in req.headers.iter_mut() {
        match h {
            Header::CSeq(c) => c.seq += 1,
            Header::Via(v) => v.params.set("branch", Some(&branch)),
            _ => {}
        }
    }
}

/// A new out-of-dialog request from us (OPTIONS, REGISTER, initial INVITE).
pub(super) fn out_of_dialog_request(
    ua: &mut UserAgent,
    method: Method,
    uri: SipUri,
    to: SipUri,
    transport: &Transport,
) -> Request {
    let from_uri = SipUri::new(Some("landline"), ua.config.local_addr.ip().into(), None);
    out_of_dialog_from(
        ua,
        method,
        uri,
        NameAddr::new(from_uri),
        NameAddr::new(to),
        transport,
    )
}

pub(super) fn out_of_dialog_from(
    ua: &mut UserAgent,
    method: Method,
    uri: SipUri,
    mut from: NameAddr,
    to: NameAddr,
    transport: &Transport,
) -> Request {
    let tag = ua.token();
    from.params.set("tag", Some(&tag));
    let call_id = format!("{}@{}", ua.token(), ua.config.local_addr.ip());
    let mut headers = Headers::new();
    headers.push(Header::Via(via(ua, transport)));
    headers.push(Header::MaxForwards(70));
    headers.push(Header::From(from));
    headers.push(Header::To(to));
    headers.push(Header::CallId(call_id));
    headers.push(Header::CSeq(CSeq {
        seq: 1,
        method: method.clone(),
    }));
    headers.set("User-Agent", ua.config.user_agent.clone());
    Request {
        method,
        uri: uri.into(),
        headers,
        body: Vec::new(),
    }
}

/// Our Via for a new client transaction, asking for `rport`.
pub(super) fn via(ua: &mut UserAgent, transport: &Transport) -> Via {
    let mut params = crate::message::Params::new();
    params.set("branch", Some(&ua.branch()));
    params.set("rport", None);
    let addr = ua.config.local_addr;
    Via {
        transport: transport.clone(),
        host: addr.ip().into(),
        port: Some(addr.port()),
        params,
    }
}
