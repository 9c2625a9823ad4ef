//! Registration: the client that keeps a binding alive (refresh before expiry, 423 Min-Expires,
//! backoff on failure) and a registrar's bookkeeping (several bindings per user, expiry).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::debug;

use super::route::{self, reply};
use super::{Event, Owner, RequestId, UserAgent};
use crate::auth::{Credentials, DigestClient};
use crate::message::{Contact, Header, Method, NameAddr, Request, SipUri, StatusCode, Transport};
use crate::transaction::{ClientEvent, TransactionKey};

/// What [`UserAgent::register`] needs.
#[derive(Debug, Clone)]
pub struct RegisterParams {
    /// The registrar's URI (Request-URI).
    pub registrar: SipUri,
    /// The address of record (From and To).
    pub aor: SipUri,
    /// Where to send.
    pub destination: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// Requested expiry in seconds.
    pub expires: u32,
    /// Credentials for 401/407.
    pub credentials: Option<Credentials>,
    /// Further registrars of the same service (a carrier's other addresses), tried in order
    /// when the current one does not answer (timeout, transport failure) or answers 5xx/6xx:
    /// the next one at once, and only after every one failed in a row does the backoff start
    /// (then from `registrar` again). A registration stays where it last succeeded.
    pub fallbacks: Vec<RegistrarTarget>,
}

/// A registrar to send REGISTER to: its URI and where that is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarTarget {
    /// The Request-URI.
    pub registrar: SipUri,
    /// Where to send.
    pub destination: SocketAddr,
}

#[derive(Debug)]
pub(super) struct Registration {
    pub(super) params: RegisterParams,
    call_id: String,
    from_tag: String,
    seq: u32,
    expires: u32,
    auth: Option<(String, DigestClient)>,
    refresh_at: Option<Instant>,
    failures: u32,
    removing: bool,
    /// Which registrar is in use: 0 is `params.registrar`, then `params.fallbacks`.
    target: usize,
    /// Registrars that failed in a row since the last success (or the last backoff).
    failed_in_round: usize,
}

impl Registration {
    pub(super) fn next_timer(&self) -> Option<Instant> {
        self.refresh_at
    }

    /// The registrar in use now.
    fn current(&self) -> RegistrarTarget {
        match self.target.checked_sub(1) {
            Some(i) if i < self.params.fallbacks.len() => self.params.fallbacks[i].clone(),
            _ => RegistrarTarget {
                registrar: self.params.registrar.clone(),
                destination: self.params.destination,
            },
        }
    }

    fn targets(&self) -> usize {
        1 + self.params.fallbacks.len()
    }
}

impl UserAgent {
    /// Registers `params.aor` and keeps it registered until [`UserAgent::unregister`].
    pub fn register(&mut self, now: Instant, params: RegisterParams) -> RequestId {
        let id = RequestId(self.new_id());
        let call_id = format!("{}@{}", self.token(), self.config.local_addr.ip());
        let from_tag = self.token();
        let expires = params.expires;
        self.registrations.insert(
            id,
            Registration {
                params,
                call_id,
                from_tag,
                seq: 0,
                expires,
                auth: None,
                refresh_at: None,
                failures: 0,
                removing: false,
                target: 0,
                failed_in_round: 0,
            },
        );
        send_register(self, now, id);
        self.flush(now);
        id
    }

    /// Removes the binding (REGISTER with Expires: 0) and stops refreshing.
    pub fn unregister(&mut self, now: Instant, id: RequestId) {
        if let Some(r) = self.registrations.get_mut(&id) {
            r.removing = true;
            r.refresh_at = None;
        }
        send_register(self, now, id);
        self.flush(now);
    }

    /// Where registration `id` sends its REGISTERs now (it moves to a fallback registrar when
    /// the current one fails), if it exists.
    pub fn registration_destination(&self, id: RequestId) -> Option<SocketAddr> {
        self.registrations.get(&id).map(|r| r.current().destination)
    }
}

fn send_register(ua: &mut UserAgent, now: Instant, id: RequestId) {
    let contact = ua.contact(
        Some("landline"),
        &ua.registrations
            .get(&id)
            .map_or(Transport::Udp, |r| r.params.transport.clone()),
    );
    let Some(r) = ua.registrations.get(&id) else {
        return;
    };
    let p = r.params.clone();
    let target = r.current();
    let mut req = route::out_of_dialog_request(
        ua,
        Method::Register,
        target.registrar.clone(),
        p.aor.clone(),
        &p.transport,
    );
    let Some(r) = ua.registrations.get_mut(&id) else {
        return;
    };
    r.seq += 1;
    let expires = if r.removing { 0 } else { r.expires };
    for h in req.headers.iter_mut() {
        match h {
            Header::From(f) => {
                *f = NameAddr::new(p.aor.clone());
                f.params.set("tag", Some(&r.from_tag));
            }
            Header::CallId(c) => c.clone_from(&r.call_id),
            Header::CSeq(c) => c.seq = r.seq,
            _ => {}
        }
    }
    req.headers.push(Header::Contact(Contact::Addr(contact)));
    req.headers.set("Expires", expires.to_string());
    // Reuse the last challenge with the next nonce count, saving a round trip (RFC 7616 §3.4).
    if let (Some((name, client)), Some(creds)) = (r.auth.as_mut(), p.credentials.as_ref()) {
        let value = client.authorize(creds, "REGISTER", &target.registrar.to_string());
        req.headers.push(Header::Other(name.clone(), value));
    }
    ua.start_client(
        now,
        req,
        target.destination,
        p.transport,
        Owner::Register(id),
    );
}

/// Remembers the digest state of an authenticated retry, for later refreshes.
pub(super) fn auth_retried(
    ua: &mut UserAgent,
    owner: Owner,
    retry: &Request,
    client: DigestClient,
) {
    let Owner::Register(id) = owner else { return };
    if let Some(r) = ua.registrations.get_mut(&id) {
        let name = if retry.headers.get("Proxy-Authorization").is_some() {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        r.auth = Some((name.to_owned(), client));
        r.seq = retry.headers.cseq().map_or(r.seq, |c| c.seq);
    }
}

pub(super) fn client_event(
    ua: &mut UserAgent,
    now: Instant,
    id: RequestId,
    req: Request,
    e: ClientEvent,
) {
    let status = match &e {
        ClientEvent::Provisional(_) => return,
        ClientEvent::Final(r) => r.status,
        ClientEvent::Timeout => StatusCode::REQUEST_TIMEOUT,
    };
    let (backoff, backoff_max) = (ua.config.register_backoff, ua.config.register_backoff_max);
    let Some(r) = ua.registrations.get_mut(&id) else {
        return;
    };
    r.seq = r.seq.max(req.headers.cseq().map_or(0, |c| c.seq));
    if let ClientEvent::Final(resp) = &e {
        if status.is_success() {
            if r.removing {
                ua.registrations.remove(&id);
                return;
            }
            // The registrar may shorten our expiry: take it from our Contact or Expires.
            let ours = resp
                .headers
                .contacts()
                .find_map(|c| c.params.value("expires").and_then(|v| v.parse().ok()));
            let granted = ours
                .or_else(|| resp.headers.number("Expires"))
                .unwrap_or(r.expires);
            r.failures = 0;
            r.failed_in_round = 0;
            r.refresh_at = (granted > 0).then(|| now + refresh_after(granted));
            ua.events.push_back(Event::Registered {
                id,
                expires: granted,
            });
            return;
        }
        if status == StatusCode::INTERVAL_TOO_BRIEF {
            if let Some(min) = resp.headers.number("Min-Expires") {
                if min > r.expires {
                    r.expires = min;
                    send_register(ua, now, id);
                    return;
                }
            }
        }
    }
    // Failure: drop a stale auth state (a challenge belongs to the registrar that made it).
    r.auth = None;
    ua.events
        .push_back(Event::RegistrationFailed { id, status });
    // A registrar that does not answer, or refuses as a server: the next one at once, until
    // every one failed in a row. Refusals of the account (401, 403...) are not the
    // registrar's fault and would be the same elsewhere.
    let unreachable = status.code() == 408 || status.code() >= 500;
    if unreachable && !r.removing {
        r.failed_in_round += 1;
        let targets = r.targets();
        r.target = (r.target + 1) % targets;
        if r.failed_in_round < targets {
            debug!(
                registrar = %r.current().destination,
                status = status.code(),
                "registrar failed; registering at the next one"
            );
            r.refresh_at = None;
            send_register(ua, now, id);
            return;
        }
        // Every registrar failed: back off, then start again from the first.
        r.failed_in_round = 0;
        r.target = 0;
    }
    // Retry after an exponential backoff.
    r.failures += 1;
    let wait = backoff
        .saturating_mul(1 << r.failures.min(16).saturating_sub(1))
        .min(backoff_max);
    r.refresh_at = (!r.removing).then(|| now + wait);
}

/// Refresh well before expiry: halfway for short registrations, 30 s early for long ones.
fn refresh_after(expires: u32) -> Duration {
    let e = u64::from(expires);
    Duration::from_secs(if e > 120 { e - 30 } else { e / 2 }.max(1))
}

pub(super) fn on_timeout(ua: &mut UserAgent, now: Instant) {
    let due: Vec<RequestId> = ua
        .registrations
        .iter()
        .filter(|(_, r)| r.refresh_at.is_some_and(|t| now >= t))
        .map(|(id, _)| *id)
        .collect();
    for id in due {
        if let Some(r) = ua.registrations.get_mut(&id) {
            r.refresh_at = None;
        }
        send_register(ua, now, id);
    }
}

/// One contact bound to an address of record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The contact URI as text.
    pub contact: String,
    /// When it lapses.
    pub expires_at: Instant,
    /// Where the REGISTER came from: requests to this contact go there (RFC 5626's flow
    /// idea, in its simplest form), which is what reaches a client behind NAT or on a
    /// connection it opened.
    pub source: SocketAddr,
    /// The transport the REGISTER came over.
    pub transport: Transport,
    /// The device's `+sip.instance` (RFC 5626 §4.1), when it gave one: the same device
    /// registering a new contact (a new port after a restart) replaces its old binding.
    instance: Option<String>,
    /// The registering Call-ID, so reordered REGISTERs are detected (RFC 3261 §10.3).
    call_id: String,
    cseq: u32,
}

/// A registrar's bookkeeping for one domain: bindings per user (the AOR's user part, whatever
/// host the client wrote), with expiry. Authentication is the caller's policy (the user agent
/// checks that the Digest user owns the AOR when an authenticator is set).
#[derive(Debug, Clone)]
pub struct Registrar {
    bindings: HashMap<String, Vec<Binding>>,
    min_expires: u32,
    max_expires: u32,
    max_bindings: usize,
    nat_max_expires: Option<u32>,
}

impl Registrar {
    /// A registrar accepting expiries in `min..=max` seconds and at most `max_bindings` per user.
    pub fn new(min_expires: u32, max_expires: u32, max_bindings: usize) -> Self {
        Self {
            bindings: HashMap::new(),
            min_expires,
            max_expires,
            max_bindings,
            nat_max_expires: None,
        }
    }

    /// Grants at most `secs` to a UDP binding whose contact names another address than the
    /// REGISTER came from (the client is behind NAT): its own refreshes then come often enough
    /// to keep the NAT's mapping open, so a call to it still gets through. Not below the
    /// minimum expiry.
    pub fn set_nat_max_expires(&mut self, secs: u32) {
        self.nat_max_expires = Some(secs.max(self.min_expires));
    }

    /// The live bindings of `user`.
    pub fn lookup(&self, now: Instant, user: &str) -> Vec<&Binding> {
        self.bindings.get(user).map_or_else(Vec::new, |b| {
            b.iter().filter(|b| b.expires_at > now).collect()
        })
    }

    /// Forgets every binding registered from `source` over `transport`, and returns how many.
    ///
    /// For a connection that closed: over WebSocket (and TCP/TLS from behind NAT) the
    /// connection was the only way to reach those contacts, so keeping them until they expire
    /// would ring a client that cannot hear (RFC 5626 §4.4 drops a flow's bindings the same way).
    pub fn remove_source(&mut self, source: SocketAddr, transport: &Transport) -> usize {
        let mut removed = 0;
        self.bindings.retain(|_, list| {
            let before = list.len();
            list.retain(|b| b.source != source || b.transport != *transport);
            removed += before - list.len();
            !list.is_empty()
        });
        removed
    }

    /// Applies a REGISTER that came from `source` over `transport`; returns the status and
    /// the bindings to list in the 200.
    pub fn apply(
        &mut self,
        now: Instant,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
    ) -> (StatusCode, Vec<(String, u32)>) {
        let Some(aor) = aor_user(req) else {
            return (StatusCode::BAD_REQUEST, Vec::new());
        };
        let default = req.headers.number("Expires").unwrap_or(3600);
        let call_id = req.headers.call_id().unwrap_or("").to_owned();
        let cseq = req.headers.cseq().map_or(0, |c| c.seq);
        let list = self.bindings.entry(aor.clone()).or_default();
        list.retain(|b| b.expires_at > now);
        let wildcard = req
            .headers
            .iter()
            .any(|h| matches!(h, Header::Contact(Contact::Wildcard)));
        if wildcard {
            if default != 0 {
                return (StatusCode::BAD_REQUEST, Vec::new());
            }
            list.clear();
        }
        for c in req.headers.contacts() {
            let expires = c
                .params
                .value("expires")
                .and_then(|v| v.parse().ok())
                .unwrap_or(default);
            if expires != 0 && expires < self.min_expires {
                return (StatusCode::INTERVAL_TOO_BRIEF, Vec::new());
            }
            let uri = c.uri.to_string();
            let instance = c.params.value("+sip.instance").map(str::to_owned);
            let existing = list.iter().position(|b| b.contact == uri);
            if let Some(i) = existing {
                if list[i].call_id == call_id && list[i].cseq >= cseq {
                    continue; // an old REGISTER arriving late
                }
                list.remove(i);
            }
            if expires > 0 {
                // The same device under a new contact: its old one is stale.
                if instance.is_some() {
                    list.retain(|b| b.instance != instance);
                }
                // Full: the binding closest to lapsing makes room (a phone restarted on a new
                // port many times must not be locked out until its old bindings expire).
                if list.len() >= self.max_bindings {
                    if let Some(oldest) = list
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| b.expires_at)
                        .map(|(i, _)| i)
                    {
                        list.remove(oldest);
                    }
                }
                let behind_nat = transport == Transport::Udp && !names_source(&c.uri, source);
                let cap = match self.nat_max_expires {
                    Some(nat) if behind_nat => nat.min(self.max_expires),
                    _ => self.max_expires,
                };
                let secs = expires.min(cap);
                let expires_at = now + Duration::from_secs(u64::from(secs));
                list.push(Binding {
                    contact: uri,
                    expires_at,
                    source,
                    transport: transport.clone(),
                    instance,
                    call_id: call_id.clone(),
                    cseq,
                });
            }
        }
        let out = list
            .iter()
            .map(|b| {
                (
                    b.contact.clone(),
                    b.expires_at.saturating_duration_since(now).as_secs() as u32,
                )
            })
            .collect();
        (StatusCode::OK, out)
    }
}

/// Whether a contact URI names the address its REGISTER came from (an IP literal and port,
/// 5060 when none is written). A name or another address means a NAT rewrote the source.
fn names_source(contact: &crate::message::Uri, source: SocketAddr) -> bool {
    contact.as_sip().is_some_and(|uri| {
        uri.host.ip() == Some(source.ip()) && uri.port.unwrap_or(5060) == source.port()
    })
}

/// The AOR's user part: what bindings are filed under.
fn aor_user(req: &Request) -> Option<String> {
    let user = req.headers.to()?.uri.as_sip()?.user.clone()?;
    (!user.is_empty()).then_some(user)
}

/// REGISTER received: answered from the registrar, if we are one. `user` is the Digest user
/// when an authenticator checked it: a user may only bind their own AOR.
pub(super) fn incoming(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    req: &Request,
    (source, transport): (SocketAddr, Transport),
    user: Option<&str>,
) {
    if ua.registrar.is_none() {
        return reply(ua, now, key, req, StatusCode::NOT_IMPLEMENTED, |h| {
            h.set("Allow", route::ALLOW)
        });
    }
    if let Some(user) = user {
        if aor_user(req).as_deref() != Some(user) {
            return reply(ua, now, key, req, StatusCode::FORBIDDEN, |_| {});
        }
    }
    let Some(registrar) = ua.registrar.as_mut() else {
        return;
    };
    let min = registrar.min_expires;
    let (status, bindings) = registrar.apply(now, req, source, transport);
    reply(ua, now, key, req, status, |h| {
        if status == StatusCode::INTERVAL_TOO_BRIEF {
            h.set("Min-Expires", min.to_string());
        }
        for (contact, secs) in bindings {
            h.push(Header::Other(
                "Contact".into(),
                format!("<{contact}>;expires={secs}"),
            ));
        }
    });
}
