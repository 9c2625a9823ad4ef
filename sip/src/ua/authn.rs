//! Digest authentication of incoming INVITE and REGISTER (RFC 3261 §22.2): unauthenticated
//! callers get 401 and never reach the application as calls, and a source whose credentials
//! keep failing is banned for a while (see [`super::bans`]).
//!
//! Answers never tell users apart: a user that exists and one that does not both get the same
//! 401, with or without credentials (a wrong password and an unknown user are the same
//! failure, and cost the same hashing), so scanners such as `svwar` cannot list accounts.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tracing::debug;

use super::bans::{AuthBans, BanPolicy, BanStats};
use super::route::reply;
use super::{Event, UserAgent};
use crate::auth::{AuthError, DigestServer};
use crate::message::{Method, Request, StatusCode};
use crate::transaction::TransactionKey;

/// Verifies INVITE and REGISTER against a user table.
#[derive(Debug)]
pub struct Authenticator {
    server: DigestServer,
    users: HashMap<String, String>,
    trusted: Vec<IpRange>,
    /// Peers whose INVITEs must carry one account's credentials: (range, username, password).
    required: Vec<(IpRange, String, String)>,
    bans: AuthBans,
    /// When the last failure was logged, and how many went unlogged since (a flood of wrong
    /// passwords must not flood the log).
    failure_log: (Option<Instant>, u64),
}

impl Authenticator {
    /// Challenges with `server`, checking passwords in `users` (username → password).
    pub fn new(server: DigestServer, users: HashMap<String, String>) -> Self {
        Self {
            server,
            users,
            trusted: Vec::new(),
            required: Vec::new(),
            bans: AuthBans::new(BanPolicy::default()),
            failure_log: (None, 0),
        }
    }

    /// Sets when sources are banned for failed authentications (default:
    /// [`BanPolicy::default`], 10 failures in a minute ban for 5 minutes). A banned source's
    /// REGISTERs and new INVITEs are dropped without an answer; its requests inside dialogs
    /// (a call in progress) go on. Sources in [`Authenticator::trust`] or
    /// [`Authenticator::require`] ranges are never counted or banned.
    pub fn set_ban_policy(&mut self, policy: BanPolicy) {
        self.bans.set_policy(policy);
    }

    /// Failures counted, bans imposed and requests refused since the start, for metrics.
    pub fn ban_stats(&self) -> BanStats {
        self.bans.stats()
    }

    /// INVITEs from `range` are challenged and admitted only with credentials for `username`
    /// and `password` (a carrier that authenticates its calls to us), not with the user
    /// table's: they reach the application with that username. This comes before
    /// [`Authenticator::trust`] for the same addresses.
    pub fn require(&mut self, range: IpRange, username: String, password: String) {
        self.required.push((range, username, password));
    }

    /// INVITEs from `range` are admitted without credentials (peers known by address, such
    /// as carrier trunks); they reach the application with no user. REGISTER is always
    /// authenticated.
    pub fn trust(&mut self, range: IpRange) {
        self.trusted.push(range);
    }

    /// Takes `other`'s users, trusted and required ranges in place of ours (a configuration
    /// reload), keeping our digest server: nonces already handed out stay valid, so clients in
    /// the middle of a challenge are not bounced.
    /// Bans and failure counts are kept too.
    pub fn adopt_accounts(&mut self, other: Authenticator) {
        self.users = other.users;
        self.trusted = other.trusted;
        self.required = other.required;
    }

    /// Whether `ip` is a carrier's (trusted or credential-required): never counted or banned.
    fn exempt(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|r| r.contains(ip))
            || self.required.iter().any(|(r, ..)| r.contains(ip))
    }
}

/// An IP address range (CIDR): `network` with its first `prefix` bits significant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: IpAddr,
    prefix: u8,
}

impl IpRange {
    /// The range; a prefix longer than the address is cut to its length.
    pub fn new(network: IpAddr, prefix: u8) -> Self {
        let max = if network.is_ipv4() { 32 } else { 128 };
        Self {
            network,
            prefix: prefix.min(max),
        }
    }

    /// Whether `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let bits = |a: &[u8], b: &[u8]| {
            let mut left = usize::from(self.prefix);
            a.iter().zip(b).all(|(x, y)| {
                let take = left.min(8);
                left -= take;
                take == 0 || (x ^ y) & (0xffu8 << (8 - take)) == 0
            })
        };
        match (self.network, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => bits(&n.octets(), &i.octets()),
            (IpAddr::V6(n), IpAddr::V6(i)) => bits(&n.octets(), &i.octets()),
            _ => false,
        }
    }
}

/// Whether `req` is one we authenticate: a REGISTER or an INVITE outside a dialog.
fn guarded(req: &Request) -> bool {
    req.method == Method::Register
        || (req.method == Method::Invite && req.headers.to().and_then(|t| t.tag()).is_none())
}

/// Whether `req` comes from a banned source and must be dropped unanswered, before it opens a
/// transaction. Only what would be authenticated is refused: requests inside a dialog (BYE,
/// re-INVITE, ACK, CANCEL...) from the same source go on, so a ban never disturbs its calls.
///
/// Dropped rather than answered 403: what carrier SBCs and fail2ban-style setups do. A
/// scanner waits for its timeout and learns nothing (not even that a ban exists), a flood
/// costs no bytes out (nor a reflected answer to a spoofed source), and a real phone
/// misconfigured behind that address retries on its own timer and gets back in when the ban
/// ends, where a 403 makes many phones stop until someone touches them.
pub(super) fn refused(ua: &mut UserAgent, now: Instant, req: &Request, source: SocketAddr) -> bool {
    if !guarded(req) {
        return false;
    }
    let Some(auth) = ua.authenticator.as_mut() else {
        return false;
    };
    !auth.exempt(source.ip()) && auth.bans.is_banned(now, source.ip())
}

/// Whether `req` must be authenticated and is not: then a 401 has been sent and `None` returned.
/// Otherwise the authenticated username (or `None` if no authenticator is set) in `Some`.
pub(super) fn check(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    req: &Request,
    source: SocketAddr,
) -> Option<Option<String>> {
    if !guarded(req) {
        return Some(None);
    }
    let initial_invite = req.method == Method::Invite;
    let Some(auth) = ua.authenticator.as_mut() else {
        return Some(None);
    };
    let required = initial_invite
        .then(|| auth.required.iter().find(|(r, ..)| r.contains(source.ip())))
        .flatten();
    if required.is_none() && initial_invite && auth.trusted.iter().any(|r| r.contains(source.ip()))
    {
        return Some(None);
    }
    let users = &auth.users;
    let password = |u: &str| match required {
        Some((_, name, password)) => (u == name).then(|| password.clone()),
        None => users.get(u).cloned(),
    };
    let verdict = match req.headers.get("Authorization") {
        Some(value) => auth
            .server
            .verify(now, req.method.as_str(), value, password),
        None => Err(AuthError::Malformed("no credentials")),
    };
    match verdict {
        Ok(user) => Some(Some(user)),
        Err(e) => {
            // Credentials that did not verify count towards a ban; a request without any (every
            // client's first), a stale nonce (a restart) or a replay (the password was right)
            // do not.
            let counts = req.headers.get("Authorization").is_some()
                && !matches!(e, AuthError::Stale | AuthError::Replay)
                && !auth.exempt(source.ip());
            let ban = if counts {
                log_failure(auth, now, source, &e);
                auth.bans.record_failure(now, source.ip())
            } else {
                None
            };
            let challenge = auth
                .server
                .challenge(now, e == AuthError::Stale)
                .to_string();
            if let Some(ban) = ban {
                ua.events.push_back(Event::SourceBanned(ban));
            }
            // Wrong credentials are challenged again too (a client gives up after one retry),
            // the request that earns a ban included: its transaction ends as any other; the
            // source's next requests are dropped (`refused`).
            reply(ua, now, key, req, StatusCode::UNAUTHORIZED, |h| {
                h.set("WWW-Authenticate", challenge);
            });
            None
        }
    }
}

/// Logs a failed authentication at debug level, at most one line a second: the line carries
/// how many failures went unlogged before it.
fn log_failure(auth: &mut Authenticator, now: Instant, source: SocketAddr, error: &AuthError) {
    let (last, unlogged) = &mut auth.failure_log;
    if last.is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1)) {
        *unlogged += 1;
        return;
    }
    debug!(%source, %error, unlogged_since_last = *unlogged, "digest authentication failed");
    *last = Some(now);
    *unlogged = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_match_by_prefix() {
        let net = IpRange::new("203.0.113.0".parse().unwrap(), 24);
        assert!(net.contains("203.0.113.77".parse().unwrap()));
        assert!(net.contains("::ffff:203.0.113.5".parse().unwrap()));
        assert!(!net.contains("203.0.114.1".parse().unwrap()));
        let host = IpRange::new("2001:db8::1".parse().unwrap(), 200);
        assert!(host.contains("2001:db8::1".parse().unwrap()));
        assert!(!host.contains("2001:db8::2".parse().unwrap()));
        assert!(IpRange::new("0.0.0.0".parse().unwrap(), 0).contains("8.8.8.8".parse().unwrap()));
    }
}
