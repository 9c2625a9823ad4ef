//! Registration client against our own registrar: refresh before expiry, 423 Min-Expires,
//! backoff after failures, unregister; registrar bindings per user and expiry.

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Clock, Pair, addr};
use landline_sip::message::{Limits, Message, SipUri, StatusCode, Transport};
use landline_sip::ua::{Event, RegisterParams, Registrar, RegistrarTarget};

fn params(expires: u32) -> RegisterParams {
    RegisterParams {
        registrar: SipUri::new(None, addr(BOB).ip().into(), Some(5070)),
        aor: SipUri::new(
            Some("alice"),
            "127.0.0.1".parse::<std::net::IpAddr>().expect("ip").into(),
            None,
        ),
        destination: addr(BOB),
        transport: Transport::Udp,
        expires,
        credentials: None,
        fallbacks: Vec::new(),
    }
}

#[test]
fn registers_and_refreshes_before_expiry() {
    let mut p = Pair::new(Transport::Udp);
    p.bob.set_registrar(Registrar::new(30, 3600, 5));
    let now = p.clock.now;
    let id = p.alice.register(now, params(60));
    p.deliver();
    assert!(
        p.alice_events
            .contains(&Event::Registered { id, expires: 60 })
    );
    let aor = "alice";
    assert_eq!(
        p.bob.registrar().map(|r| r.lookup(p.clock.now, aor).len()),
        Some(1)
    );
    p.run_for(Duration::from_secs(29));
    assert_eq!(p.count("A>REGISTER"), 1);
    p.run_for(Duration::from_secs(2));
    assert_eq!(p.count("A>REGISTER"), 2, "refreshed at half of 60 s");
    p.run_for(Duration::from_secs(120));
    assert_eq!(
        p.bob.registrar().map(|r| r.lookup(p.clock.now, aor).len()),
        Some(1),
        "still bound"
    );
    let now = p.clock.now;
    p.alice.unregister(now, id);
    p.deliver();
    assert_eq!(
        p.bob.registrar().map(|r| r.lookup(p.clock.now, aor).len()),
        Some(0)
    );
    p.run_for(Duration::from_secs(600));
    let registers = p.count("A>REGISTER");
    p.run_for(Duration::from_secs(600));
    assert_eq!(
        p.count("A>REGISTER"),
        registers,
        "no refresh after unregister"
    );
}

#[test]
fn interval_too_brief_is_raised_to_min_expires() {
    let mut p = Pair::new(Transport::Udp);
    p.bob.set_registrar(Registrar::new(300, 3600, 5));
    let now = p.clock.now;
    let id = p.alice.register(now, params(60));
    p.deliver();
    assert_eq!(p.count("B>SIP/2.0 423"), 1);
    assert!(
        p.alice_events
            .contains(&Event::Registered { id, expires: 300 })
    );
}

#[test]
fn failures_back_off_exponentially() {
    let mut p = Pair::new(Transport::Udp);
    // No registrar: Bob answers 501.
    let now = p.clock.now;
    let t0 = now;
    let id = p.alice.register(now, params(60));
    p.deliver();
    assert!(p.alice_events.contains(&Event::RegistrationFailed {
        id,
        status: StatusCode::NOT_IMPLEMENTED
    }));
    let mut times = Vec::new();
    for _ in 0..3 {
        let before = p.count("A>REGISTER");
        while p.count("A>REGISTER") == before {
            p.run_for(Duration::from_secs(1));
        }
        times.push((p.clock.now - t0).as_secs());
    }
    assert_eq!(times, vec![30, 90, 210], "30 s, then 60 s, then 120 s");
}

/// A registrar address where nothing answers (the test network drops what goes there).
fn dead() -> std::net::SocketAddr {
    "127.0.0.9:5060".parse().unwrap()
}

fn target(destination: std::net::SocketAddr) -> RegistrarTarget {
    RegistrarTarget {
        registrar: SipUri::new(None, destination.ip().into(), Some(destination.port())),
        destination,
    }
}

/// Registration `params` whose first registrar is `first` and whose fallback is `then`.
fn with_fallback(first: std::net::SocketAddr, then: std::net::SocketAddr) -> RegisterParams {
    let mut p = params(60);
    let first = target(first);
    p.registrar = first.registrar;
    p.destination = first.destination;
    p.fallbacks = vec![target(then)];
    p
}

/// The destinations of Alice's REGISTERs, in order.
fn register_destinations(sent: &[(std::net::SocketAddr, String)]) -> Vec<std::net::SocketAddr> {
    sent.iter()
        .filter(|(_, line)| line.starts_with("REGISTER"))
        .map(|(d, _)| *d)
        .collect()
}

#[test]
fn a_registrar_that_does_not_answer_is_left_for_the_next_at_once() {
    let mut p = Pair::new(Transport::Udp);
    p.bob.set_registrar(Registrar::new(30, 3600, 5));
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = sent.clone();
    p.drop = Box::new(move |from_alice, t| {
        if from_alice {
            let line = String::from_utf8_lossy(&t.data)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned();
            log.borrow_mut().push((t.destination, line));
        }
        t.destination == dead()
    });
    let t0 = p.clock.now;
    let id = p.alice.register(t0, with_fallback(dead(), addr(BOB)));
    assert_eq!(p.alice.registration_destination(id), Some(dead()));
    p.run_for(Duration::from_secs(40));
    // Timer F (64 × T1 = 32 s) at the dead one, then straight to Bob: no backoff in between.
    assert!(p.alice_events.contains(&Event::RegistrationFailed {
        id,
        status: StatusCode::REQUEST_TIMEOUT
    }));
    assert!(
        p.alice_events
            .contains(&Event::Registered { id, expires: 60 })
    );
    assert_eq!(p.alice.registration_destination(id), Some(addr(BOB)));
    let destinations = register_destinations(&sent.borrow());
    assert_eq!(destinations.first(), Some(&dead()));
    assert_eq!(destinations.last(), Some(&addr(BOB)));
    // It stays where it succeeded: refreshes go to Bob.
    p.run_for(Duration::from_secs(60));
    assert!(
        register_destinations(&sent.borrow())
            .iter()
            .skip_while(|d| **d == dead())
            .all(|d| *d == addr(BOB)),
        "refreshes stay at the registrar that answered"
    );
    assert_eq!(
        p.bob
            .registrar()
            .map(|r| r.lookup(p.clock.now, "alice").len()),
        Some(1)
    );
}

#[test]
fn when_every_registrar_fails_the_backoff_starts_from_the_first_again() {
    let mut p = Pair::new(Transport::Udp);
    // Bob has no registrar: 501, a server's refusal, as from a broken registrar.
    let sent = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let log = sent.clone();
    p.drop = Box::new(move |from_alice, t| {
        if from_alice {
            log.borrow_mut().push((
                t.destination,
                String::from_utf8_lossy(&t.data)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            ));
        }
        false
    });
    let other: std::net::SocketAddr = "127.0.0.1:5071".parse().unwrap();
    let t0 = p.clock.now;
    let id = p.alice.register(t0, with_fallback(addr(BOB), other));
    p.deliver();
    // Both refused at once (the test network hands everything to Bob), then one backoff.
    assert_eq!(
        register_destinations(&sent.borrow()),
        vec![addr(BOB), other],
        "the second registrar is tried at once"
    );
    assert_eq!(
        p.alice_events
            .iter()
            .filter(|e| matches!(e, Event::RegistrationFailed { .. }))
            .count(),
        2
    );
    p.run_for(Duration::from_secs(29));
    assert_eq!(
        register_destinations(&sent.borrow()).len(),
        2,
        "backing off"
    );
    p.run_for(Duration::from_secs(2));
    assert_eq!(
        register_destinations(&sent.borrow()),
        vec![addr(BOB), other, addr(BOB), other],
        "after 30 s, the first again, then the next"
    );
    assert_eq!(p.alice.registration_destination(id), Some(addr(BOB)));
}

fn source() -> std::net::SocketAddr {
    "127.0.0.1:5099".parse().unwrap()
}

#[test]
fn registrar_keeps_several_bindings_and_expires_them() {
    let mut reg = Registrar::new(10, 3600, 2);
    let clock = Clock::new();
    let req = |contact: &str, expires: u32, cseq: u32| {
        let text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{cseq}\r\n\
             From: <sip:alice@127.0.0.1>;tag=x\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <{contact}>;expires={expires}\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes(), &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(
        reg.apply(
            clock.now,
            &req("sip:a@10.0.0.1", 60, 1),
            source(),
            Transport::Udp
        )
        .0,
        StatusCode::OK
    );
    let (status, bindings) = reg.apply(
        clock.now,
        &req("sip:a@10.0.0.2", 20, 2),
        source(),
        Transport::Udp,
    );
    assert_eq!((status, bindings.len()), (StatusCode::OK, 2));
    // Full (2): the binding closest to lapsing (10.0.0.2, 20 s) makes room.
    let (status, bindings) = reg.apply(
        clock.now,
        &req("sip:a@10.0.0.3", 60, 3),
        source(),
        Transport::Udp,
    );
    assert_eq!(status, StatusCode::OK);
    let contacts: Vec<&str> = bindings.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(
        contacts,
        ["sip:a@10.0.0.1", "sip:a@10.0.0.3"],
        "binding limit"
    );
    assert_eq!(
        reg.apply(
            clock.now,
            &req("sip:a@10.0.0.3", 5, 4),
            source(),
            Transport::Udp
        )
        .0,
        StatusCode::INTERVAL_TOO_BRIEF
    );
    let later = clock.now + Duration::from_secs(30);
    assert_eq!(reg.lookup(later, "alice").len(), 2);
    let (_, left) = reg.apply(
        later,
        &req("sip:a@10.0.0.1", 0, 5),
        source(),
        Transport::Udp,
    );
    let contacts: Vec<&str> = left.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(contacts, ["sip:a@10.0.0.3"], "expires=0 removes");
    let _ = (ALICE, BOB);
}

/// A REGISTER for alice with `contact` and its header parameters `params`.
fn register_with(contact: &str, params: &str, cseq: u32) -> landline_sip::message::Request {
    let text = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK{cseq}\r\n\
         From: <sip:alice@127.0.0.1>;tag=x\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: reg-{cseq}\r\n\
         CSeq: {cseq} REGISTER\r\nContact: <{contact}>{params}\r\nContent-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes(), &Limits::default()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

/// The same device (its `+sip.instance`) registering from a new port after a restart replaces
/// its old binding instead of adding one that rings a dead port.
#[test]
fn the_same_instance_under_a_new_contact_replaces_its_binding() {
    let mut reg = Registrar::new(10, 3600, 5);
    let clock = Clock::new();
    let instance = ";+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";expires=600";
    for (port, cseq) in [(5070, 1), (5072, 2), (5074, 3)] {
        let from: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let (status, _) = reg.apply(
            clock.now,
            &register_with(&format!("sip:alice@127.0.0.1:{port}"), instance, cseq),
            from,
            Transport::Udp,
        );
        assert_eq!(status, StatusCode::OK);
    }
    let bindings = reg.lookup(clock.now, "alice");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(bindings[0].contact, "sip:alice@127.0.0.1:5074");
    // Another device (no instance) is a binding of its own.
    let (_, all) = reg.apply(
        clock.now,
        &register_with("sip:alice@127.0.0.1:6000", ";expires=600", 4),
        "127.0.0.1:6000".parse().unwrap(),
        Transport::Udp,
    );
    assert_eq!(all.len(), 2);
}

/// A UDP client behind NAT (its contact is not where the REGISTER came from) is granted a short
/// registration, so its refreshes keep the NAT open; one that is not, and other transports,
/// get what they asked up to the maximum.
#[test]
fn a_udp_client_behind_nat_gets_a_short_registration() {
    let mut reg = Registrar::new(60, 3600, 5);
    reg.set_nat_max_expires(120);
    let clock = Clock::new();
    let public: std::net::SocketAddr = "203.0.113.7:40123".parse().unwrap();
    let granted = |reg: &mut Registrar, contact: &str, from, transport, cseq| {
        let (status, bindings) = reg.apply(
            clock.now,
            &register_with(contact, ";expires=3600", cseq),
            from,
            transport,
        );
        assert_eq!(status, StatusCode::OK);
        bindings
            .iter()
            .find(|(c, _)| c == contact)
            .map(|(_, secs)| *secs)
            .expect("bound")
    };
    assert_eq!(
        granted(
            &mut reg,
            "sip:alice@192.168.1.20:5060",
            public,
            Transport::Udp,
            1
        ),
        120
    );
    assert_eq!(
        granted(
            &mut reg,
            "sip:alice@phone.example",
            public,
            Transport::Udp,
            2
        ),
        120
    );
    assert_eq!(
        granted(
            &mut reg,
            "sip:alice@203.0.113.7:40123",
            public,
            Transport::Udp,
            3
        ),
        3600
    );
    assert_eq!(
        granted(
            &mut reg,
            "sip:alice@192.168.1.20:5060;transport=tcp",
            public,
            Transport::Tcp,
            4
        ),
        3600
    );
}

#[test]
fn a_closed_connection_takes_only_its_own_bindings() {
    let mut reg = Registrar::new(10, 3600, 5);
    let clock = Clock::new();
    let register = |user: &str, contact: &str, cseq: u32| {
        let text = format!(
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/WS h.invalid;branch=z9hG4bK{cseq}\r\n\
             From: <sip:{user}@127.0.0.1>;tag=x\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: reg-{user}\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <{contact}>;expires=600\r\nContent-Length: 0\r\n\r\n"
        );
        match Message::parse(text.as_bytes(), &Limits::default()) {
            Ok(Message::Request(r)) => r,
            other => panic!("{other:?}"),
        }
    };
    let browser: std::net::SocketAddr = "127.0.0.1:40001".parse().unwrap();
    let other_tab: std::net::SocketAddr = "127.0.0.1:40002".parse().unwrap();
    let ws = |reg: &mut Registrar, user, contact, cseq, from| {
        reg.apply(
            clock.now,
            &register(user, contact, cseq),
            from,
            Transport::Ws,
        )
        .0
    };
    assert_eq!(
        ws(
            &mut reg,
            "alice",
            "sip:a1@x1.invalid;transport=ws",
            1,
            browser
        ),
        StatusCode::OK
    );
    assert_eq!(
        ws(
            &mut reg,
            "bob",
            "sip:b1@x2.invalid;transport=ws",
            1,
            browser
        ),
        StatusCode::OK
    );
    assert_eq!(
        ws(
            &mut reg,
            "alice",
            "sip:a2@x3.invalid;transport=ws",
            2,
            other_tab
        ),
        StatusCode::OK
    );
    // The same address over another transport is another flow.
    assert_eq!(
        reg.apply(
            clock.now,
            &register("alice", "sip:a@127.0.0.1:40001", 3),
            browser,
            Transport::Udp
        )
        .0,
        StatusCode::OK
    );

    assert_eq!(reg.remove_source(browser, &Transport::Ws), 2);
    let alice: Vec<String> = reg
        .lookup(clock.now, "alice")
        .iter()
        .map(|b| b.contact.clone())
        .collect();
    assert_eq!(
        alice,
        ["sip:a2@x3.invalid;transport=ws", "sip:a@127.0.0.1:40001"]
    );
    assert!(reg.lookup(clock.now, "bob").is_empty());
    assert_eq!(
        reg.remove_source(browser, &Transport::Ws),
        0,
        "nothing left"
    );
}
