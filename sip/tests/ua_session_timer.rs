//! RFC 4028 session timers: the refresher refreshes at half the interval; the other side ends
//! the call when refreshes stop; 422 with Min-SE raises a too-small interval.

mod common;

use std::time::Duration;

use common::Pair;
use landline_sip::message::Transport;
use landline_sip::ua::{Event, Reason};

fn established(se: u32) -> (Pair, landline_sip::ua::CallId, landline_sip::ua::CallId) {
    let mut p = Pair::with(Transport::Udp, |c| {
        c.session_expires = Some(se);
        c.min_se = 90;
    });
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.deliver();
    (p, a, b)
}

#[test]
fn caller_refreshes_every_half_interval() {
    let (mut p, _a, _b) = established(120);
    p.run_for(Duration::from_secs(59));
    assert_eq!(p.count("A>INVITE"), 1);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.count("A>INVITE"), 2, "refresh at 60 s");
    p.run_for(Duration::from_secs(60));
    assert_eq!(p.count("A>INVITE"), 3, "and every 60 s after");
    assert_eq!((p.alice.call_count(), p.bob.call_count()), (1, 1));
}

#[test]
fn callee_ends_the_call_when_refreshes_stop() {
    let (mut p, a, b) = established(120);
    p.drop = Box::new(|from_alice, t| from_alice && t.data.starts_with(b"INVITE"));
    // Expiry at 120 - min(32, 40) = 88 s.
    p.run_for(Duration::from_secs(87));
    assert_eq!(p.bob.call_count(), 1);
    p.run_for(Duration::from_secs(2));
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::SessionExpired
    }));
    assert_eq!(p.count("B>BYE"), 1);
    let _ = a;
}

#[test]
fn too_small_interval_gets_422_and_a_retry_with_min_se() {
    let mut p = Pair::with(Transport::Udp, |c| c.session_expires = Some(30));
    // Bob insists on 90.
    let a = p.call();
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 422"), 1);
    assert_eq!(p.count("A>INVITE"), 2, "retried with Session-Expires: 90");
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.deliver();
    assert!(
        p.alice_events
            .iter()
            .any(|e| matches!(e, Event::Answered { call, .. } if *call == a))
    );
}
