//! Our UA as the authenticating side: INVITE and REGISTER without valid Digest credentials get
//! 401 and never become calls; the right password gets through with the username attached.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{BOB, Pair, addr};
use landline_sip::auth::{Algorithm, Credentials, DigestServer};
use landline_sip::message::{SipUri, StatusCode, Transport};
use landline_sip::ua::{Authenticator, CallParams, Event, RegisterParams, Registrar};

fn guarded_pair() -> Pair {
    let mut p = Pair::new(Transport::Udp);
    let users = HashMap::from([("alice".to_owned(), "s3cret".to_owned())]);
    let server = DigestServer::new(
        "landline",
        Algorithm::Sha256,
        b"test-secret",
        Duration::from_secs(300),
    );
    p.bob.set_authenticator(Authenticator::new(server, users));
    p.bob.set_registrar(Registrar::new(60, 3600, 3));
    p
}

fn call_with(p: &mut Pair, password: &str) -> landline_sip::ua::CallId {
    let now = p.clock.now;
    p.alice.call(
        now,
        CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(5070)),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: None,
            credentials: Some(Credentials {
                username: "alice".into(),
                password: password.into(),
            }),
        },
    )
}

#[test]
fn right_password_reaches_the_application_with_the_username() {
    let mut p = guarded_pair();
    call_with(&mut p, "s3cret");
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 401"), 1);
    assert_eq!(p.count("A>INVITE"), 2);
    assert!(
        p.bob_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall { user: Some(u), .. } if u == "alice"))
    );
}

#[test]
fn wrong_password_never_becomes_a_call() {
    let mut p = guarded_pair();
    let a = call_with(&mut p, "guess");
    p.deliver();
    assert_eq!(p.count("A>INVITE"), 2, "one retry, then give up");
    assert!(p.alice_events.contains(&Event::Failed {
        call: a,
        status: StatusCode::UNAUTHORIZED
    }));
    assert!(p.bob_events.is_empty(), "{:?}", p.bob_events);
    assert_eq!(p.bob.call_count(), 0);
}

/// Alice registers for 120 s with her password, through the challenge.
fn register_alice(p: &mut Pair) {
    let now = p.clock.now;
    let id = p.alice.register(
        now,
        RegisterParams {
            registrar: SipUri::new(None, addr(BOB).ip().into(), Some(5070)),
            aor: SipUri::new(Some("alice"), addr(BOB).ip().into(), None),
            destination: addr(BOB),
            transport: Transport::Udp,
            expires: 120,
            credentials: Some(Credentials {
                username: "alice".into(),
                password: "s3cret".into(),
            }),
            fallbacks: Vec::new(),
        },
    );
    p.deliver();
    assert!(
        p.alice_events
            .contains(&Event::Registered { id, expires: 120 })
    );
}

#[test]
fn register_is_authenticated_and_refreshes_reuse_the_nonce() {
    let mut p = guarded_pair();
    register_alice(&mut p);
    p.run_for(Duration::from_secs(61));
    assert_eq!(
        p.count("B>SIP/2.0 401"),
        1,
        "the refresh carried nc=2 on the same nonce"
    );
    assert_eq!(
        p.alice_events
            .iter()
            .filter(|e| matches!(e, Event::Registered { .. }))
            .count(),
        2
    );
}

/// A configuration reload swaps the accounts: the new password is the one that works, and a
/// nonce handed out before the swap is still honoured (no client is bounced mid-refresh).
#[test]
fn adopted_accounts_replace_passwords_and_keep_outstanding_nonces() {
    let mut p = guarded_pair();
    register_alice(&mut p);
    // The same password, another user added: the refresh reuses the nonce without a 401.
    let reloaded = |users: &[(&str, &str)]| {
        let users = users
            .iter()
            .map(|(u, pw)| ((*u).to_owned(), (*pw).to_owned()))
            .collect();
        let server = DigestServer::new(
            "landline",
            Algorithm::Sha256,
            b"another-secret",
            Duration::from_secs(300),
        );
        Authenticator::new(server, users)
    };
    p.bob
        .authenticator_mut()
        .expect("authenticator set")
        .adopt_accounts(reloaded(&[("alice", "s3cret"), ("carol", "x")]));
    p.run_for(Duration::from_secs(61));
    assert_eq!(p.count("B>SIP/2.0 401"), 1, "the old nonce still verifies");
    assert_eq!(
        p.alice_events
            .iter()
            .filter(|e| matches!(e, Event::Registered { .. }))
            .count(),
        2
    );
    // Alice's password changed: the old one no longer makes a call, the new one does.
    p.bob
        .authenticator_mut()
        .expect("authenticator set")
        .adopt_accounts(reloaded(&[("alice", "n3w")]));
    let refused = call_with(&mut p, "s3cret");
    p.deliver();
    assert!(p.alice_events.contains(&Event::Failed {
        call: refused,
        status: StatusCode::UNAUTHORIZED
    }));
    call_with(&mut p, "n3w");
    p.deliver();
    assert!(
        p.bob_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall { user: Some(u), .. } if u == "alice"))
    );
}
