//! RFC 3262 reliable provisional responses: RSeq/RAck, retransmission until PRACK, the 2xx held
//! back while an SDP-carrying 1xx is unacknowledged, and the 64*T1 give-up.

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Clock, Pair, addr};
use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::{Config, Event, UserAgent};

#[test]
fn reliable_183_is_pracked_before_the_200_goes_out() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    // Lose the PRACK's first copy to see the 183 retransmitted.
    let mut lost = false;
    p.drop = Box::new(move |from_alice, t| {
        let hit = from_alice && !lost && t.data.starts_with(b"PRACK");
        lost |= hit;
        hit
    });
    p.bob.ring(
        now,
        b,
        StatusCode::SESSION_PROGRESS,
        Some(b"v=0 early\r\n".to_vec()),
        true,
    );
    p.bob.answer(now, b, b"v=0 final\r\n".to_vec());
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 200"), 0, "2xx held until PRACK");
    p.run_for(Duration::from_secs(1));
    assert!(
        p.count("B>SIP/2.0 183") >= 2,
        "183 retransmitted: {:?}",
        p.wire
    );
    assert!(p.count("A>PRACK") >= 2);
    assert_eq!(
        p.alice_events
            .iter()
            .filter(|e| matches!(e, Event::Progress { .. }))
            .count(),
        1,
        "duplicate 183 not reported"
    );
    assert!(p.alice_events.contains(&Event::Answered {
        call: a,
        sdp: Some(b"v=0 final\r\n".to_vec())
    }));
    assert!(p.bob_events.contains(&Event::Confirmed { call: b }));
}

#[test]
fn unpracked_reliable_provisional_fails_the_call_after_64_t1() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    p.drop = Box::new(|from_alice, t| from_alice && t.data.starts_with(b"PRACK"));
    let now = p.clock.now;
    p.bob.ring(now, b, StatusCode::SESSION_PROGRESS, None, true);
    p.run_for(Duration::from_secs(40));
    assert!(p.alice_events.contains(&Event::Failed {
        call: a,
        status: StatusCode::SERVER_ERROR
    }));
}

#[test]
fn no_reliability_when_the_caller_lacks_100rel() {
    let mut bob = UserAgent::new(Config::new(addr(BOB), 9));
    let invite = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKnorel\r\n\
        Max-Forwards: 70\r\nFrom: <sip:old@127.0.0.1>;tag=o1\r\nTo: <sip:bob@127.0.0.1>\r\n\
        Call-ID: norel\r\nCSeq: 1 INVITE\r\nContact: <sip:old@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";
    let clock = Clock::new();
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, invite.as_bytes());
    let Some(Event::IncomingCall { call, .. }) = bob.poll_event() else {
        panic!("no call")
    };
    bob.ring(clock.now, call, StatusCode::SESSION_PROGRESS, None, true);
    let sent: Vec<String> = std::iter::from_fn(|| bob.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.data).into_owned())
        .collect();
    let ringing = sent
        .iter()
        .find(|m| m.starts_with("SIP/2.0 183"))
        .expect("183 sent");
    assert!(
        !ringing.contains("RSeq") && !ringing.contains("Require: 100rel"),
        "{ringing}"
    );
}
