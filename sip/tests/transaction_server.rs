//! Server transactions: timers G, H, I, J, L; request retransmissions answered from the
//! transaction; ACK matching; RFC 6026 Accepted.

mod common;

use std::time::Duration;

use common::{ALICE, Clock, addr, first_line, request, response};
use landline_sip::message::Transport;
use landline_sip::transaction::{ServerEvent, ServerTransaction, TimerConfig, TransactionKey};

fn server(method: &str, transport: Transport) -> ServerTransaction {
    let req = request(method, "z9hG4bKsrv");
    let key = TransactionKey::for_server(&req).expect("key");
    ServerTransaction::new(key, req, addr(ALICE), transport, TimerConfig::default())
}

fn sent(t: &mut ServerTransaction) -> Vec<String> {
    std::iter::from_fn(|| t.poll_transmit())
        .map(|x| first_line(&x.data))
        .collect()
}

#[test]
fn invite_non_2xx_retransmits_with_timer_g_until_ack() {
    let mut clock = Clock::new();
    let mut t = server("INVITE", Transport::Udp);
    let req = t.request().clone();
    t.send_response(clock.now, &response(&req, 486, "b"));
    assert_eq!(sent(&mut t), ["SIP/2.0 486 Busy Here"]);
    let t0 = clock.now;
    let mut times = Vec::new();
    for _ in 0..5 {
        let at = t.poll_timeout().expect("timer G");
        t.handle_timeout(clock.set(at));
        for _ in sent(&mut t) {
            times.push((clock.now - t0).as_millis());
        }
    }
    assert_eq!(
        times,
        vec![500, 1500, 3500, 7500, 11500],
        "G doubles up to T2"
    );
    let ack = request("ACK", "z9hG4bKsrv");
    assert_eq!(
        TransactionKey::for_server(&ack).as_ref(),
        Some(t.key()),
        "ACK matches the INVITE"
    );
    t.handle_request(clock.now, &ack);
    assert_eq!(t.poll_event(), Some(ServerEvent::Acked));
    let i = t.poll_timeout().expect("timer I");
    assert_eq!(i - clock.now, Duration::from_secs(5));
    t.handle_timeout(clock.set(i));
    assert!(t.is_terminated());
    assert!(sent(&mut t).is_empty());
}

#[test]
fn timer_h_fires_without_ack() {
    let mut clock = Clock::new();
    let mut t = server("INVITE", Transport::Tcp);
    let req = t.request().clone();
    t.send_response(clock.now, &response(&req, 603, "b"));
    sent(&mut t);
    let h = t.poll_timeout().expect("timer H");
    assert_eq!(h - clock.now, Duration::from_secs(32));
    t.handle_timeout(clock.set(h));
    assert!(sent(&mut t).is_empty(), "no timer G on TCP");
    assert_eq!(t.poll_event(), Some(ServerEvent::AckTimeout));
}

#[test]
fn retransmitted_invite_gets_last_provisional_and_accepted_absorbs() {
    let clock = Clock::new();
    let mut t = server("INVITE", Transport::Udp);
    let req = t.request().clone();
    t.handle_request(clock.now, &req);
    assert!(sent(&mut t).is_empty(), "nothing to resend yet");
    t.send_response(clock.now, &response(&req, 180, "b"));
    t.handle_request(clock.now, &req);
    assert_eq!(sent(&mut t), ["SIP/2.0 180 Ringing", "SIP/2.0 180 Ringing"]);
    t.send_response(clock.now, &response(&req, 200, "b"));
    assert_eq!(sent(&mut t), ["SIP/2.0 200 OK"]);
    t.handle_request(clock.now, &req);
    assert!(
        sent(&mut t).is_empty(),
        "RFC 6026: the TU retransmits 2xx, not the transaction"
    );
    let l = t.poll_timeout().expect("timer L");
    assert_eq!(l - clock.now, Duration::from_secs(32));
}

#[test]
fn non_invite_timer_j_and_response_resend() {
    let clock = Clock::new();
    let mut t = server("OPTIONS", Transport::Udp);
    let req = t.request().clone();
    t.send_response(clock.now, &response(&req, 200, "b"));
    t.handle_request(clock.now, &req);
    assert_eq!(sent(&mut t), ["SIP/2.0 200 OK", "SIP/2.0 200 OK"]);
    assert_eq!(
        t.poll_timeout(),
        Some(clock.now + Duration::from_secs(32)),
        "timer J"
    );
    let mut tcp = server("OPTIONS", Transport::Tcp);
    tcp.send_response(clock.now, &response(&req, 200, "b"));
    assert_eq!(
        tcp.poll_timeout(),
        Some(clock.now),
        "timer J is zero on TCP"
    );
}

#[test]
fn cancel_finds_its_invite_by_branch() {
    let invite = request("INVITE", "z9hG4bKsame");
    let cancel = request("CANCEL", "z9hG4bKsame");
    let ik = TransactionKey::for_server(&invite).expect("key");
    let ck = TransactionKey::for_server(&cancel).expect("key");
    assert_ne!(ik, ck, "CANCEL is its own transaction");
    assert_eq!(ck.with_method(landline_sip::message::Method::Invite), ik);
}
