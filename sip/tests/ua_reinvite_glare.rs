//! re-INVITE: hold/unhold offers, 491 on glare with the RFC 3261 §14.1 randomized retry.

mod common;

use std::time::Duration;

use common::Pair;
use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::Event;

fn established() -> (Pair, landline_sip::ua::CallId, landline_sip::ua::CallId) {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0 b1\r\n".to_vec());
    p.deliver();
    (p, a, b)
}

#[test]
fn hold_offer_reaches_the_peer_and_is_answered() {
    let (mut p, a, b) = established();
    let now = p.clock.now;
    p.alice.reinvite(now, a, b"v=0 sendonly\r\n".to_vec());
    p.deliver();
    assert!(p.bob_events.contains(&Event::Offer {
        call: b,
        sdp: b"v=0 sendonly\r\n".to_vec()
    }));
    p.bob.answer_offer(now, b, b"v=0 recvonly\r\n".to_vec());
    p.deliver();
    assert!(p.alice_events.contains(&Event::OfferAnswered {
        call: a,
        sdp: Some(b"v=0 recvonly\r\n".to_vec())
    }));
    assert_eq!(p.count("A>ACK"), 2);
    p.run_for(Duration::from_secs(5));
    assert_eq!(
        p.count("B>SIP/2.0 200"),
        2,
        "re-INVITE 2xx not retransmitted after ACK"
    );
}

#[test]
fn rejected_offer_keeps_the_call() {
    let (mut p, a, b) = established();
    let now = p.clock.now;
    p.alice.reinvite(now, a, b"v=0 video\r\n".to_vec());
    p.deliver();
    p.bob.reject_offer(now, b, StatusCode::NOT_ACCEPTABLE_HERE);
    p.deliver();
    assert!(p.alice_events.contains(&Event::OfferRejected {
        call: a,
        status: StatusCode::NOT_ACCEPTABLE_HERE
    }));
    assert_eq!((p.alice.call_count(), p.bob.call_count()), (1, 1));
}

#[test]
fn glare_gets_491_on_both_sides_then_one_retry_wins() {
    let (mut p, a, b) = established();
    let now = p.clock.now;
    p.alice.reinvite(now, a, b"v=0 alice-offer\r\n".to_vec());
    p.bob.reinvite(now, b, b"v=0 bob-offer\r\n".to_vec());
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 491"), 1);
    assert_eq!(p.count("A>SIP/2.0 491"), 1);
    // Bob (not the Call-ID owner) retries within 2 s, Alice after 2.1 s; Bob's lands first.
    p.run_for(Duration::from_millis(2050));
    assert!(p.alice_events.contains(&Event::Offer {
        call: a,
        sdp: b"v=0 bob-offer\r\n".to_vec()
    }));
    let now = p.clock.now;
    p.alice.answer_offer(now, a, b"v=0 answer\r\n".to_vec());
    p.deliver();
    assert!(p.bob_events.contains(&Event::OfferAnswered {
        call: b,
        sdp: Some(b"v=0 answer\r\n".to_vec())
    }));
    p.run_for(Duration::from_secs(3));
    assert!(p.bob_events.contains(&Event::Offer {
        call: b,
        sdp: b"v=0 alice-offer\r\n".to_vec()
    }));
}

#[test]
fn update_and_info_in_dialog() {
    let (mut p, a, b) = established();
    let now = p.clock.now;
    p.alice.info(
        now,
        a,
        "application/dtmf-relay",
        b"Signal=5\r\nDuration=160\r\n".to_vec(),
    );
    p.alice.update(now, a, None);
    p.deliver();
    assert!(p.bob_events.contains(&Event::Info {
        call: b,
        content_type: Some("application/dtmf-relay".into()),
        body: b"Signal=5\r\nDuration=160\r\n".to_vec()
    }));
    assert_eq!(
        p.count("B>SIP/2.0 200"),
        3,
        "INVITE, INFO and UPDATE answered"
    );
}
