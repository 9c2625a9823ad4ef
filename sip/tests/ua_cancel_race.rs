//! CANCEL before answer, and the 200/487 race: a CANCEL that crosses our 2xx changes nothing,
//! and the caller then hangs up with BYE.

mod common;

use std::time::Duration;

use common::Pair;
use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::{Event, Reason};

#[test]
fn cancel_after_ringing_gives_487_and_ack() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.ring(now, b, StatusCode::RINGING, None, false);
    p.deliver();
    p.alice.hangup(now, a);
    p.deliver();
    assert_eq!(p.count("A>CANCEL"), 1);
    assert!(p.alice_events.contains(&Event::Failed {
        call: a,
        status: StatusCode::REQUEST_TERMINATED
    }));
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::Cancelled
    }));
    // 200 for the CANCEL comes before the 487, then the ACK.
    let order: Vec<_> = p
        .wire
        .iter()
        .filter(|l| l.contains("487") || l.contains("B>SIP/2.0 200") || l.starts_with("A>ACK"))
        .cloned()
        .collect();
    assert_eq!(
        order,
        [
            "B>SIP/2.0 200 OK",
            "B>SIP/2.0 487 Request Terminated",
            "A>ACK sip:bob@127.0.0.1:5070 SIP/2.0"
        ]
    );
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.count("B>SIP/2.0 487"), 1);
}

#[test]
fn hangup_before_any_provisional_waits_then_cancels() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    // Alice hangs up before Bob's 100 arrives: RFC 3261 §9.1 says wait for a provisional.
    let now = p.clock.now;
    p.alice.hangup(now, a);
    assert_eq!(p.count("A>CANCEL"), 0);
    p.deliver();
    let b = p.bob_call();
    p.bob.ring(now, b, StatusCode::RINGING, None, false);
    p.deliver();
    assert_eq!(p.count("A>CANCEL"), 1);
    assert!(p.alice_events.contains(&Event::Failed {
        call: a,
        status: StatusCode::REQUEST_TERMINATED
    }));
}

#[test]
fn cancel_crossing_the_200_ends_with_bye() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.ring(now, b, StatusCode::RINGING, None, false);
    p.deliver();
    // Both act before seeing each other's message.
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.alice.hangup(now, a);
    p.deliver();
    // Bob's INVITE was answered: the CANCEL gets 200 but no 487.
    assert_eq!(p.count("B>SIP/2.0 487"), 0);
    assert!(
        p.alice_events
            .iter()
            .any(|e| matches!(e, Event::Answered { .. }))
    );
    assert_eq!(
        p.count("A>BYE"),
        1,
        "the caller still wanted out: BYE after the 2xx"
    );
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::RemoteBye
    }));
    assert_eq!((p.alice.call_count(), p.bob.call_count()), (0, 0));
}
