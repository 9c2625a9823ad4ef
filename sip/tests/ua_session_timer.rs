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

#[test]
fn callee_refreshes_when_asked_to_be_the_refresher() {
    use common::{ALICE, BOB, Clock, addr, first_line, parse};
    use landline_sip::ua::{Config, UserAgent};
    let mut clock = Clock::new();
    let mut bob = UserAgent::new(Config::new(addr(BOB), 4));
    let invite = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKst\r\nMax-Forwards: 70\r\n\
        From: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: st\r\n\
        CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5060>\r\nSupported: timer\r\n\
        Session-Expires: 120;refresher=uas\r\nContent-Length: 0\r\n\r\n";
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, invite.as_bytes());
    let Some(Event::IncomingCall { call, .. }) = bob.poll_event() else {
        panic!("no call")
    };
    bob.answer(clock.now, call, b"v=0\r\n".to_vec());
    let sent: Vec<_> = std::iter::from_fn(|| bob.poll_transmit()).collect();
    let ok = parse(&sent.last().expect("200").data);
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("120;refresher=uas")
    );
    assert_eq!(ok.headers().get("Require"), Some("timer"));
    let tag = ok
        .headers()
        .to()
        .and_then(|t| t.tag())
        .map(str::to_owned)
        .expect("tag");
    let ack = format!(
        "ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKack\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>;tag={tag}\r\n\
         Call-ID: st\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    );
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, ack.as_bytes());
    let t0 = clock.now;
    let refresh = loop {
        let at = bob.poll_timeout().expect("a timer is pending");
        bob.handle_timeout(clock.set(at));
        if let Some(t) = bob.poll_transmit() {
            break t;
        }
    };
    assert_eq!(
        clock.now - t0,
        Duration::from_secs(60),
        "refresh at half the interval"
    );
    assert_eq!(
        first_line(&refresh.data),
        "INVITE sip:alice@127.0.0.1:5060 SIP/2.0"
    );
    assert_eq!(
        parse(&refresh.data).headers().get("Session-Expires"),
        Some("120;refresher=uac")
    );
}

#[test]
fn zero_interval_from_a_peer_does_not_cause_a_refresh_storm() {
    use common::{BOB, Clock, addr, parse};
    use landline_sip::message::{Message, Response, StatusCode};
    use landline_sip::ua::{CallParams, Config, UserAgent};
    let mut clock = Clock::new();
    let mut alice = UserAgent::new(Config::new(addr(common::ALICE), 6));
    alice.call(
        clock.now,
        CallParams {
            target: landline_sip::message::SipUri::new(
                Some("bob"),
                addr(BOB).ip().into(),
                Some(5070),
            ),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: None,
            credentials: None,
        },
    );
    let Message::Request(invite) = parse(&alice.poll_transmit().expect("INVITE").data) else {
        panic!()
    };
    let mut ok = Response::to_request(&invite, StatusCode::OK);
    if let Some(to) = ok.headers.to_mut() {
        to.params.set("tag", Some("b"));
    }
    ok.headers.set("Session-Expires", "0;refresher=uac");
    alice.handle_receive(clock.now, addr(BOB), Transport::Udp, &ok.to_bytes());
    let t0 = clock.now;
    let mut refreshes = std::collections::HashSet::new();
    for _ in 0..10_000 {
        if clock.now - t0 >= Duration::from_secs(10) {
            break;
        }
        let Some(at) = alice.poll_timeout() else {
            break;
        };
        alice.handle_timeout(clock.set(at));
        let sent: Vec<_> = std::iter::from_fn(|| alice.poll_transmit()).collect();
        for t in sent {
            let Message::Request(r) = parse(&t.data) else {
                continue;
            };
            if r.method != landline_sip::message::Method::Invite {
                continue;
            }
            refreshes.insert(r.headers.cseq().map(|c| c.seq));
            // The peer keeps answering with a zero interval.
            let mut ok = Response::to_request(&r, StatusCode::OK);
            ok.headers.set("Session-Expires", "0;refresher=uac");
            alice.handle_receive(clock.now, addr(BOB), Transport::Udp, &ok.to_bytes());
        }
    }
    // Floored to 2 s: one refresh a second at most, never a loop at one instant.
    assert!(
        (9..=10).contains(&refreshes.len()),
        "{} refreshes",
        refreshes.len()
    );
}

#[test]
fn repeated_422_is_retried_once_only() {
    use common::{BOB, Clock, addr, parse};
    use landline_sip::message::{Message, Response, StatusCode};
    use landline_sip::ua::{CallParams, Config, UserAgent};
    let clock = Clock::new();
    let mut cfg = Config::new(addr(common::ALICE), 8);
    cfg.session_expires = Some(60);
    let mut alice = UserAgent::new(cfg);
    let call = alice.call(
        clock.now,
        CallParams {
            target: landline_sip::message::SipUri::new(
                Some("bob"),
                addr(BOB).ip().into(),
                Some(5070),
            ),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: None,
            credentials: None,
        },
    );
    let mut invites = 0;
    for _ in 0..10 {
        let sent: Vec<_> = std::iter::from_fn(|| alice.poll_transmit()).collect();
        for t in sent {
            let Message::Request(r) = parse(&t.data) else {
                continue;
            };
            if r.method != landline_sip::message::Method::Invite {
                continue;
            }
            invites += 1;
            let mut too_small = Response::to_request(&r, StatusCode::INTERVAL_TOO_SMALL);
            too_small.headers.set("Min-SE", "90");
            alice.handle_receive(clock.now, addr(BOB), Transport::Udp, &too_small.to_bytes());
        }
    }
    assert_eq!(invites, 2, "one retry at Min-SE, then the 422 is final");
    let events: Vec<_> = std::iter::from_fn(|| alice.poll_event()).collect();
    assert!(events.contains(&Event::Failed {
        call,
        status: StatusCode::INTERVAL_TOO_SMALL
    }));
}

/// JsSIP's defaults, as the callee sees them: Session-Expires 90 with no refresher, then, as
/// the refresher, an UPDATE without SDP. The 200 to the refresh, like the 200 to the INVITE,
/// names the refresher and carries `Require: timer` (RFC 4028 §9), and the callee's expiry
/// moves on from the refresh.
#[test]
fn a_refresh_by_update_is_answered_like_the_invite_and_moves_the_expiry() {
    use common::{ALICE, BOB, Clock, addr, parse};
    use landline_sip::ua::{Config, UserAgent};
    let mut clock = Clock::new();
    let mut bob = UserAgent::new(Config::new(addr(BOB), 9));
    let dialog = "From: <sip:alice@127.0.0.1>;tag=a\r\nCall-ID: js\r\n\
        Contact: <sip:alice@127.0.0.1:5060;transport=udp>\r\n\
        Supported: timer,ice,replaces,outbound\r\n";
    let invite = format!(
        "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKjs1\r\nMax-Forwards: 70\r\n\
         To: <sip:bob@127.0.0.1>\r\n{dialog}CSeq: 6509 INVITE\r\nSession-Expires: 90\r\n\
         Content-Length: 0\r\n\r\n"
    );
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, invite.as_bytes());
    let Some(Event::IncomingCall { call, .. }) = bob.poll_event() else {
        panic!("no call")
    };
    bob.answer(clock.now, call, b"v=0\r\n".to_vec());
    let sent: Vec<_> = std::iter::from_fn(|| bob.poll_transmit()).collect();
    let ok = parse(&sent.last().expect("200").data);
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("90;refresher=uac")
    );
    assert_eq!(ok.headers().get("Require"), Some("timer"));
    let tag = ok
        .headers()
        .to()
        .and_then(|t| t.tag())
        .map(str::to_owned)
        .expect("tag");
    let in_dialog = |method: &str, seq: u32, branch: &str, extra: &str| {
        format!(
            "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{branch}\r\nMax-Forwards: 70\r\n\
             To: <sip:bob@127.0.0.1>;tag={tag}\r\n{dialog}CSeq: {seq} {method}\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        )
    };
    let ack = in_dialog("ACK", 6509, "js2", "");
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, ack.as_bytes());

    // 45 s on, the caller refreshes.
    clock.advance(Duration::from_secs(45));
    bob.handle_timeout(clock.now);
    let update = in_dialog(
        "UPDATE",
        6510,
        "js3",
        "Session-Expires: 90;refresher=uac\r\n",
    );
    bob.handle_receive(clock.now, addr(ALICE), Transport::Udp, update.as_bytes());
    let sent: Vec<_> = std::iter::from_fn(|| bob.poll_transmit()).collect();
    let ok = parse(&sent.last().expect("200 to the UPDATE").data);
    assert_eq!(
        common::first_line(&sent.last().expect("sent").data),
        "SIP/2.0 200 OK"
    );
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("90;refresher=uac")
    );
    assert_eq!(ok.headers().get("Require"), Some("timer"));
    assert_eq!(
        ok.headers().get("Content-Type"),
        None,
        "no SDP asked, none given"
    );

    // Without the refresh the call would have ended at 90 - 30 = 60 s; now at 45 + 60 s.
    clock.advance(Duration::from_secs(59));
    bob.handle_timeout(clock.now);
    assert_eq!(bob.call_count(), 1, "still up at 104 s");
    clock.advance(Duration::from_secs(2));
    bob.handle_timeout(clock.now);
    let events: Vec<_> = std::iter::from_fn(|| bob.poll_event()).collect();
    assert!(
        events.contains(&Event::Ended {
            call,
            reason: Reason::SessionExpired
        }),
        "{events:?}"
    );
}
