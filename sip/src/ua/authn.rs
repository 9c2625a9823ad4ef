//! Digest authentication of incoming INVITE and REGISTER (RFC 3261 §22.2): unauthenticated
//! callers get 401 and never reach the application as calls.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use tracing::debug;

use super::UserAgent;
use super::route::reply;
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
}

impl Authenticator {
    /// Challenges with `server`, checking passwords in `users` (username → password).
    pub fn new(server: DigestServer, users: HashMap<String, String>) -> Self {
        Self {
            server,
            users,
            trusted: Vec::new(),
            required: Vec::new(),
        }
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
    pub fn adopt_accounts(&mut self, other: Authenticator) {
        self.users = other.users;
        self.trusted = other.trusted;
        self.required = other.required;
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

/// Whether `req` must be authenticated and is not: then a 401 has been sent and `None` returned.
/// Otherwise the authenticated username (or `None` if no authenticator is set) in `Some`.
pub(super) fn check(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    req: &Request,
    source: SocketAddr,
) -> Option<Option<String>> {
    let initial_invite =
        req.method == Method::Invite && req.headers.to().and_then(|t| t.tag()).is_none();
    if !(initial_invite || req.method == Method::Register) {
        return Some(None);
    }
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
            debug!(error = %e, "digest authentication failed");
            let challenge = auth
                .server
                .challenge(now, e == AuthError::Stale)
                .to_string();
            // Wrong credentials are challenged again too; a client gives up after one retry.
            reply(ua, now, key, req, StatusCode::UNAUTHORIZED, |h| {
                h.set("WWW-Authenticate", challenge);
            });
            None
        }
    }
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
