//! Digest authentication of incoming INVITE and REGISTER (RFC 3261 §22.2): unauthenticated
//! callers get 401 and never reach the application as calls.

use std::collections::HashMap;
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
}

impl Authenticator {
    /// Challenges with `server`, checking passwords in `users` (username → password).
    pub fn new(server: DigestServer, users: HashMap<String, String>) -> Self {
        Self { server, users }
    }
}

/// Whether `req` must be authenticated and is not: then a 401 has been sent and `None` returned.
/// Otherwise the authenticated username (or `None` if no authenticator is set) in `Some`.
pub(super) fn check(
    ua: &mut UserAgent,
    now: Instant,
    key: &TransactionKey,
    req: &Request,
) -> Option<Option<String>> {
    let initial_invite =
        req.method == Method::Invite && req.headers.to().and_then(|t| t.tag()).is_none();
    if !(initial_invite || req.method == Method::Register) {
        return Some(None);
    }
    let Some(auth) = ua.authenticator.as_mut() else {
        return Some(None);
    };
    let users = &auth.users;
    let verdict = match req.headers.get("Authorization") {
        Some(value) => auth
            .server
            .verify(now, req.method.as_str(), value, |u| users.get(u).cloned()),
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
