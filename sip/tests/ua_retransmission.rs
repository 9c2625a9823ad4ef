//! The UAS core's 2xx retransmission (RFC 3261 §13.3.1.4): until ACK, re-ACKed by the caller
//! from its dialog, and a BYE when no ACK ever comes. Timer A for a lost INVITE.

mod common;

use std::time::Duration;

use common::Pair;
use landline_sip::message::Transport;
use landline_sip::ua::{Event, Reason};

#[test]
fn lost_ack_makes_the_200_come_again_and_get_reacked() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let mut lost = false;
    p.drop = Box::new(move |from_alice, t| {
        let hit = from_alice && !lost && t.data.starts_with(b"ACK");
        lost |= hit;
        hit
    });
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.count("B>SIP/2.0 200"), 2, "one retransmission at T1");
    assert_eq!(p.count("A>ACK"), 2);
    assert!(p.bob_events.contains(&Event::Confirmed { call: b }));
    assert_eq!(
        p.alice_events
            .iter()
            .filter(|e| matches!(e, Event::Answered { .. }))
            .count(),
        1
    );
    let _ = a;
}

#[test]
fn no_ack_at_all_ends_the_call_with_bye() {
    let mut p = Pair::new(Transport::Udp);
    p.call();
    p.deliver();
    let b = p.bob_call();
    p.drop = Box::new(|from_alice, t| from_alice && t.data.starts_with(b"ACK"));
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.run_for(Duration::from_secs(40));
    // 0, 0.5, 1.5, 3.5, 7.5, 11.5, ... capped at T2 until 32 s.
    assert_eq!(p.count("B>SIP/2.0 200"), 11, "{:?}", p.wire);
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::AckTimeout
    }));
    assert_eq!(p.count("B>BYE"), 1);
}

#[test]
fn tcp_never_retransmits_the_200() {
    let mut p = Pair::new(Transport::Tcp);
    p.call();
    p.deliver();
    let b = p.bob_call();
    p.drop = Box::new(|from_alice, t| from_alice && t.data.starts_with(b"ACK"));
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0\r\n".to_vec());
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.count("B>SIP/2.0 200"), 1);
    assert!(p.bob_events.contains(&Event::Ended {
        call: b,
        reason: Reason::AckTimeout
    }));
}

#[test]
fn lost_invite_is_retransmitted_by_timer_a() {
    let mut p = Pair::new(Transport::Udp);
    let mut lost = false;
    p.drop = Box::new(move |from_alice, t| {
        let hit = from_alice && !lost && t.data.starts_with(b"INVITE");
        lost |= hit;
        hit
    });
    p.call();
    p.run_for(Duration::from_millis(600));
    assert_eq!(p.count("A>INVITE"), 2);
    assert_eq!(p.bob_events.len(), 1, "bob sees one call");
}
