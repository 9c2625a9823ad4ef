//! What a B2BUA needs to pass a call's end between its legs: a `Reason` (RFC 3326) on the BYE
//! or CANCEL it sends and the one it receives, each leg's Call-ID, and a transport failure that
//! fails a call at once (RFC 3261 §8.1.3.1) instead of after Timer B.

mod common;

use common::{Pair, addr};
use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::{Event, Reason};

const CAUSE: &str = "Q.850;cause=16;text=\"Normal call clearing\"";

fn reason() -> Vec<(String, String)> {
    vec![("Reason".to_owned(), CAUSE.to_owned())]
}

#[test]
fn a_bye_carries_the_reason_given_and_the_peer_reports_it() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0 answer\r\n".to_vec());
    p.deliver();
    let call_id = p.alice.sip_call_id(a).map(str::to_owned);
    assert!(call_id.is_some(), "a live call has a Call-ID");
    assert_eq!(
        call_id.as_deref(),
        p.bob.sip_call_id(b),
        "both ends of one dialog share it"
    );
    p.alice.hangup_with_headers(now, a, &reason());
    p.deliver();
    let at = |events: &[Event], wanted: &Event| events.iter().position(|e| e == wanted);
    let reported = at(
        &p.bob_events,
        &Event::EndReason {
            call: b,
            reason: CAUSE.to_owned(),
        },
    );
    let ended = at(
        &p.bob_events,
        &Event::Ended {
            call: b,
            reason: Reason::RemoteBye,
        },
    );
    assert!(
        reported.is_some() && reported < ended,
        "the Reason comes just before the end: {:?}",
        p.bob_events
    );
    assert_eq!(p.alice.sip_call_id(a), None, "gone with the call");
}

#[test]
fn a_cancel_carries_the_reason_given_and_the_peer_reports_it() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.ring(now, b, StatusCode::RINGING, None, false);
    p.deliver();
    p.alice.hangup_with_headers(now, a, &reason());
    p.deliver();
    assert_eq!(p.count("A>CANCEL"), 1);
    assert!(p.bob_events.contains(&Event::EndReason {
        call: b,
        reason: CAUSE.to_owned(),
    }));
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::Cancelled,
    }));
}

#[test]
fn a_plain_hangup_reports_no_reason() {
    let mut p = Pair::new(Transport::Tcp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0 answer\r\n".to_vec());
    p.deliver();
    p.alice.hangup(now, a);
    p.deliver();
    assert!(
        !p.bob_events
            .iter()
            .any(|e| matches!(e, Event::EndReason { .. })),
        "{:?}",
        p.bob_events
    );
}

#[test]
fn a_transport_failure_fails_the_invite_with_503_at_once() {
    let mut p = Pair::new(Transport::Tls);
    // The network loses everything: without the report, only Timer B (32 s) would end it.
    p.drop = Box::new(|_, _| true);
    let a = p.call();
    p.deliver();
    let now = p.clock.now;
    // A failure towards somewhere else changes nothing.
    p.alice
        .handle_transport_error(now, addr("192.0.2.9:5061"), Transport::Tls);
    p.alice
        .handle_transport_error(now, addr(common::BOB), Transport::Tcp);
    while let Some(e) = p.alice.poll_event() {
        p.alice_events.push(e);
    }
    assert!(p.alice_events.is_empty(), "{:?}", p.alice_events);
    p.alice
        .handle_transport_error(now, addr(common::BOB), Transport::Tls);
    while let Some(e) = p.alice.poll_event() {
        p.alice_events.push(e);
    }
    assert_eq!(
        p.alice_events,
        vec![Event::Failed {
            call: a,
            status: StatusCode::SERVICE_UNAVAILABLE
        }]
    );
    assert_eq!(p.alice.call_count(), 0);
    // Nothing is retransmitted or reported later.
    p.run_for(std::time::Duration::from_secs(40));
    assert_eq!(p.alice_events.len(), 1, "{:?}", p.alice_events);
    assert_eq!(p.count("A>INVITE"), 1);
}
