//! INVITE client transaction timers A, B, D and the RFC 6026 Accepted state (timer M).

mod common;

use std::time::Duration;

use common::{BOB, Clock, addr, first_line, parse, request, response};
use landline_sip::message::{Message, Method, Transport};
use landline_sip::transaction::{ClientEvent, ClientTransaction, TimerConfig};

fn start(clock: &Clock, transport: Transport) -> ClientTransaction {
    let req = request("INVITE", "z9hG4bKinv");
    ClientTransaction::new(clock.now, req, addr(BOB), transport, TimerConfig::default())
}

fn drain(t: &mut ClientTransaction) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|x| x.data)
        .collect()
}

#[test]
fn timer_a_doubles_without_cap_until_timer_b() {
    let mut clock = Clock::new();
    let t0 = clock.now;
    let mut t = start(&clock, Transport::Udp);
    assert_eq!(drain(&mut t).len(), 1);
    let mut sends = Vec::new();
    while let Some(at) = t.poll_timeout() {
        clock.set(at);
        t.handle_timeout(clock.now);
        for _ in drain(&mut t) {
            sends.push((clock.now - t0).as_millis());
        }
        if t.is_terminated() {
            break;
        }
    }
    // 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s: interval doubles past T2 (INVITE is not capped).
    assert_eq!(sends, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
    assert_eq!((clock.now - t0).as_secs(), 32, "timer B is 64*T1");
}

#[test]
fn reliable_transport_never_retransmits() {
    let mut clock = Clock::new();
    let mut t = start(&clock, Transport::Tcp);
    assert_eq!(drain(&mut t).len(), 1);
    let at = t.poll_timeout().expect("timer B");
    assert_eq!(at - clock.now, Duration::from_secs(32));
    clock.set(at);
    t.handle_timeout(clock.now);
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.poll_event(), Some(ClientEvent::Timeout));
}

#[test]
fn provisional_stops_timer_a() {
    let mut clock = Clock::new();
    let mut t = start(&clock, Transport::Udp);
    drain(&mut t);
    let req = t.request().clone();
    t.handle_response(
        clock.advance(Duration::from_millis(100)),
        response(&req, 180, "b1"),
    );
    assert!(matches!(t.poll_event(), Some(ClientEvent::Provisional(_))));
    clock.advance(Duration::from_secs(5));
    t.handle_timeout(clock.now);
    assert!(drain(&mut t).is_empty(), "no retransmission in Proceeding");
}

#[test]
fn non_2xx_is_acked_and_retransmissions_reacked_until_timer_d() {
    let mut clock = Clock::new();
    let mut t = start(&clock, Transport::Udp);
    drain(&mut t);
    let req = t.request().clone();
    let busy = response(&req, 486, "b1");
    t.handle_response(clock.now, busy.clone());
    let sent = drain(&mut t);
    assert_eq!(sent.len(), 1);
    let Message::Request(ack) = parse(&sent[0]) else {
        panic!("ACK expected")
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(
        ack.headers.cseq().map(|c| c.method.clone()),
        Some(Method::Ack)
    );
    assert_eq!(
        ack.headers.top_via().and_then(|v| v.branch()),
        Some("z9hG4bKinv")
    );
    assert_eq!(ack.headers.to().and_then(|t| t.tag()), Some("b1"));
    assert!(matches!(t.poll_event(), Some(ClientEvent::Final(r)) if r.status.code() == 486));
    // A retransmitted 486 is ACKed again but not passed up.
    t.handle_response(clock.advance(Duration::from_secs(1)), busy);
    assert_eq!(
        first_line(&drain(&mut t)[0]),
        "ACK sip:bob@127.0.0.1:5070 SIP/2.0"
    );
    assert_eq!(t.poll_event(), None);
    let d = t.poll_timeout().expect("timer D");
    assert_eq!(d - clock.now, Duration::from_secs(31));
    t.handle_timeout(clock.set(d));
    assert!(t.is_terminated());
}

#[test]
fn timer_d_is_zero_on_tcp() {
    let clock = Clock::new();
    let mut t = start(&clock, Transport::Tcp);
    let req = t.request().clone();
    t.handle_response(clock.now, response(&req, 404, "b1"));
    assert_eq!(t.poll_timeout(), Some(clock.now));
    t.handle_timeout(clock.now);
    assert!(t.is_terminated());
}

#[test]
fn accepted_state_passes_every_2xx_up_until_timer_m() {
    let mut clock = Clock::new();
    let mut t = start(&clock, Transport::Udp);
    drain(&mut t);
    let req = t.request().clone();
    t.handle_response(clock.now, response(&req, 200, "fork1"));
    t.handle_response(
        clock.advance(Duration::from_millis(10)),
        response(&req, 200, "fork2"),
    );
    t.handle_response(
        clock.advance(Duration::from_millis(500)),
        response(&req, 200, "fork1"),
    );
    let tags: Vec<_> = std::iter::from_fn(|| t.poll_event())
        .map(|e| match e {
            ClientEvent::Final(r) => r
                .headers
                .to()
                .and_then(|t| t.tag())
                .unwrap_or("")
                .to_owned(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(tags, ["fork1", "fork2", "fork1"]);
    assert!(drain(&mut t).is_empty(), "the transaction never ACKs a 2xx");
    let m = t.poll_timeout().expect("timer M");
    t.handle_timeout(clock.set(m));
    assert!(t.is_terminated());
}
