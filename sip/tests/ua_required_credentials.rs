//! A peer known by address that must still authenticate its INVITEs (a carrier trunk with
//! inbound digest): from its range only its own account is accepted, the user table's is not,
//! and trusting the same range does not let it through without credentials.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ALICE, BOB, Pair, addr};
use landline_sip::auth::{Algorithm, Credentials, DigestServer};
use landline_sip::message::{SipUri, StatusCode, Transport};
use landline_sip::ua::{Authenticator, CallParams, Event, IpRange};

/// Bob challenges Alice's address for the account `carrier`/`trunk-pass`; his user table has
/// `alice`/`s3cret`.
fn pair(trust_too: bool) -> Pair {
    let mut p = Pair::new(Transport::Udp);
    let users = HashMap::from([("alice".to_owned(), "s3cret".to_owned())]);
    let server = DigestServer::new(
        "landline",
        Algorithm::Md5,
        b"test-secret",
        Duration::from_secs(300),
    );
    let mut auth = Authenticator::new(server, users);
    let range = IpRange::new(addr(ALICE).ip(), 32);
    if trust_too {
        auth.trust(range);
    }
    auth.require(range, "carrier".into(), "trunk-pass".into());
    p.bob.set_authenticator(auth);
    p
}

fn call_as(p: &mut Pair, credentials: Option<(&str, &str)>) -> landline_sip::ua::CallId {
    let now = p.clock.now;
    p.alice.call(
        now,
        CallParams {
            target: SipUri::new(Some("+15551230001"), addr(BOB).ip().into(), Some(5070)),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: None,
            credentials: credentials.map(|(username, password)| Credentials {
                username: username.into(),
                password: password.into(),
            }),
        },
    )
}

#[test]
fn the_peers_account_gets_through_after_a_challenge() {
    let mut p = pair(true);
    call_as(&mut p, Some(("carrier", "trunk-pass")));
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 401"), 1, "challenged although trusted");
    assert!(
        p.bob_events
            .iter()
            .any(|e| matches!(e, Event::IncomingCall { user: Some(u), .. } if u == "carrier")),
        "{:?}",
        p.bob_events
    );
}

#[test]
fn no_credentials_a_wrong_password_or_a_users_account_never_become_calls() {
    for credentials in [None, Some(("carrier", "guess")), Some(("alice", "s3cret"))] {
        let mut p = pair(true);
        let a = call_as(&mut p, credentials);
        p.deliver();
        assert!(
            p.alice_events.contains(&Event::Failed {
                call: a,
                status: StatusCode::UNAUTHORIZED
            }),
            "{credentials:?}: {:?}",
            p.alice_events
        );
        assert!(
            p.bob_events.is_empty(),
            "{credentials:?}: {:?}",
            p.bob_events
        );
    }
}
