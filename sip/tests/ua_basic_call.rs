//! A whole call between two user agents: INVITE, 100, 180, 200, ACK, BYE, over UDP and TCP.

mod common;

use std::time::Duration;

use common::Pair;
use landline_sip::message::{StatusCode, Transport};
use landline_sip::ua::{Event, Reason};

#[test]
fn call_answer_and_hang_up_both_transports() {
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut p = Pair::new(transport.clone());
        let a = p.call();
        p.deliver();
        let b = p.bob_call();
        let now = p.clock.now;
        p.bob.ring(now, b, StatusCode::RINGING, None, false);
        p.deliver();
        assert!(
            p.alice_events
                .iter()
                .any(|e| matches!(e, Event::Progress { status, .. } if status.code() == 180))
        );
        p.bob.answer(now, b, b"v=0 answer\r\n".to_vec());
        p.deliver();
        assert!(p.alice_events.contains(&Event::Answered {
            call: a,
            sdp: Some(b"v=0 answer\r\n".to_vec())
        }));
        assert!(p.bob_events.contains(&Event::Confirmed { call: b }));
        assert_eq!(p.count("A>INVITE"), 1);
        assert_eq!(p.count("B>SIP/2.0 100"), 1, "100 Trying sent at once");
        assert_eq!(p.count("A>ACK"), 1);
        p.run_for(Duration::from_secs(10));
        assert_eq!(
            p.count("B>SIP/2.0 200"),
            1,
            "no 2xx retransmission after the ACK"
        );
        let now = p.clock.now;
        p.alice.hangup(now, a);
        p.deliver();
        assert!(p.alice_events.contains(&Event::Ended {
            call: a,
            reason: Reason::LocalBye
        }));
        assert!(p.bob_events.contains(&Event::Ended {
            call: b,
            reason: Reason::RemoteBye
        }));
        assert_eq!((p.alice.call_count(), p.bob.call_count()), (0, 0));
        p.run_for(Duration::from_secs(60));
        let expected_invites = 1;
        assert_eq!(
            p.count("A>INVITE"),
            expected_invites,
            "{transport:?}: no INVITE retransmission after 100"
        );
    }
}

#[test]
fn reject_is_acked_by_the_transaction() {
    let mut p = Pair::new(Transport::Udp);
    let a = p.call();
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.reject(now, b, StatusCode::new(486).expect("486"));
    p.deliver();
    assert!(p.alice_events.contains(&Event::Failed {
        call: a,
        status: StatusCode::new(486).expect("486")
    }));
    assert_eq!(p.count("A>ACK"), 1);
    p.run_for(Duration::from_secs(40));
    assert_eq!(p.count("B>SIP/2.0 486"), 1, "ACK stopped timer G");
}
