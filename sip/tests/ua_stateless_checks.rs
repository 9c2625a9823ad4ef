//! Requests refused before any dialog logic: 400 for garbage (echoing Via), 483 for
//! Max-Forwards 0, 482 for a merged request, 416 for a non-SIP URI, 420 for an unknown
//! Require, 501 for unknown methods, 481 outside a dialog; Via gets received/rport.

mod common;

use common::{ALICE, BOB, Clock, addr, parse};
use landline_sip::message::{Message, Transport};
use landline_sip::ua::{Config, UserAgent};

fn request(method: &str, uri: &str, branch: &str, extra: &str) -> String {
    format!(
        "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9:5060;branch={branch};rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:a@10.0.0.9>;tag=t1\r\nTo: <sip:bob@127.0.0.1>\r\n\
         Call-ID: c-{branch}\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn status_for(ua: &mut UserAgent, msg: &str) -> (u16, Message) {
    let clock = Clock::new();
    ua.handle_receive(clock.now, addr(ALICE), Transport::Udp, msg.as_bytes());
    let sent: Vec<_> = std::iter::from_fn(|| ua.poll_transmit()).collect();
    let last = sent.last().expect("a response");
    assert_eq!(
        last.destination,
        addr(ALICE),
        "responses go back to the source"
    );
    let m = parse(&last.data);
    let Message::Response(r) = &m else {
        panic!("response expected")
    };
    (r.status.code(), m)
}

fn ua() -> UserAgent {
    UserAgent::new(Config::new(addr(BOB), 3))
}

#[test]
fn each_check_maps_to_its_status() {
    let mut ua = ua();
    let sip = "sip:bob@127.0.0.1:5070";
    assert_eq!(
        status_for(&mut ua, &request("OPTIONS", sip, "z9hG4bK1", "")).0,
        200
    );
    assert_eq!(
        status_for(
            &mut ua,
            &request("INVITE", sip, "z9hG4bK2", "").replace("Max-Forwards: 70", "Max-Forwards: 0")
        )
        .0,
        483
    );
    assert_eq!(
        status_for(
            &mut ua,
            &request("OPTIONS", "tel:+15551234", "z9hG4bK3", "")
        )
        .0,
        416
    );
    assert_eq!(
        status_for(
            &mut ua,
            &request("OPTIONS", sip, "z9hG4bK4", "Require: foo, 100rel\r\n")
        )
        .0,
        420
    );
    assert_eq!(
        status_for(&mut ua, &request("SUBSCRIBE", sip, "z9hG4bK5", "")).0,
        501
    );
    let bye = request("BYE", sip, "z9hG4bK6", "").replace(
        "To: <sip:bob@127.0.0.1>",
        "To: <sip:bob@127.0.0.1>;tag=nope",
    );
    assert_eq!(status_for(&mut ua, &bye).0, 481);
    let (code, m) = status_for(
        &mut ua,
        &request("OPTIONS", sip, "z9hG4bK7", "").replace("CSeq: 1 OPTIONS", "CSeq: 1 INVITE"),
    );
    assert_eq!(code, 400);
    assert!(m.headers().top_via().is_some(), "400 echoes the Via");
}

#[test]
fn via_gets_received_and_rport() {
    let mut ua = ua();
    let (_, m) = status_for(
        &mut ua,
        &request("OPTIONS", "sip:bob@127.0.0.1:5070", "z9hG4bK8", ""),
    );
    let via = m.headers().top_via().expect("via").clone();
    assert_eq!(via.params.value("received"), Some("127.0.0.1"));
    assert_eq!(via.params.value("rport"), Some("5060"));
}

#[test]
fn merged_request_gets_482() {
    let mut ua = ua();
    let sip = "sip:bob@127.0.0.1:5070";
    let first = request("INVITE", sip, "z9hG4bKm1", "");
    let clock = Clock::new();
    ua.handle_receive(clock.now, addr(ALICE), Transport::Udp, first.as_bytes());
    while ua.poll_transmit().is_some() {}
    // Same Call-ID, From tag and CSeq through another path (another branch).
    let second = first
        .replace("z9hG4bKm1;", "z9hG4bKm2;")
        .replace("c-z9hG4bKm2", "c-z9hG4bKm1");
    assert_eq!(status_for(&mut ua, &second).0, 482);
}

#[test]
fn garbage_never_panics_and_never_answers_responses() {
    let mut ua = ua();
    let clock = Clock::new();
    for junk in [
        &b""[..],
        b"\r\n\r\n",
        b"SIP/2.0 200 OK\r\n\r\n",
        b"INVITE\r\n\r\n",
        &[0xff; 64],
    ] {
        ua.handle_receive(clock.now, addr(ALICE), Transport::Udp, junk);
        assert!(ua.poll_transmit().is_none(), "no reply to {junk:?}");
    }
}

#[test]
fn a_draining_agent_answers_options_with_503() {
    let mut ua = ua();
    let sip = "sip:bob@127.0.0.1:5070";
    ua.set_accepting(false);
    assert_eq!(
        status_for(&mut ua, &request("OPTIONS", sip, "z9hG4bK20", "")).0,
        503
    );
    ua.set_accepting(true);
    assert_eq!(
        status_for(&mut ua, &request("OPTIONS", sip, "z9hG4bK21", "")).0,
        200
    );
}

/// The status of the last response `ua` sent for `msg`, received at `now`.
fn status_at(ua: &mut UserAgent, now: std::time::Instant, msg: &str) -> (u16, Option<String>) {
    ua.handle_receive(now, addr(ALICE), Transport::Udp, msg.as_bytes());
    let sent: Vec<_> = std::iter::from_fn(|| ua.poll_transmit()).collect();
    let Message::Response(r) = parse(&sent.last().expect("a response").data) else {
        panic!("response expected")
    };
    (
        r.status.code(),
        r.headers.get("Retry-After").map(str::to_owned),
    )
}

#[test]
fn new_requests_beyond_the_transaction_cap_get_503_until_transactions_end() {
    let mut config = Config::new(addr(BOB), 3);
    config.max_server_transactions = 3;
    let mut ua = UserAgent::new(config);
    let mut clock = Clock::new();
    let sip = "sip:bob@127.0.0.1:5070";
    for branch in ["z9hG4bKc1", "z9hG4bKc2", "z9hG4bKc3"] {
        assert_eq!(
            status_at(&mut ua, clock.now, &request("OPTIONS", sip, branch, "")).0,
            200
        );
    }
    // Each answered OPTIONS keeps its transaction (Timer J) to absorb retransmissions.
    assert_eq!(
        status_at(
            &mut ua,
            clock.now,
            &request("OPTIONS", sip, "z9hG4bKc4", "")
        ),
        (503, Some("5".to_owned()))
    );
    // A retransmission of a held request is still answered by its transaction.
    assert_eq!(
        status_at(
            &mut ua,
            clock.now,
            &request("OPTIONS", sip, "z9hG4bKc2", "")
        )
        .0,
        200
    );
    // Timer J (64 × T1 over UDP) ends them; new requests are taken again.
    let later = clock.advance(std::time::Duration::from_secs(40));
    ua.handle_timeout(later);
    while ua.poll_transmit().is_some() {}
    assert_eq!(
        status_at(&mut ua, later, &request("OPTIONS", sip, "z9hG4bKc5", "")).0,
        200
    );
}

#[test]
fn a_request_repeated_after_its_transaction_ended_is_not_merged() {
    let mut ua = ua();
    let mut clock = Clock::new();
    let sip = "sip:bob@127.0.0.1:5070";
    let first = request("OPTIONS", sip, "z9hG4bKr1", "");
    assert_eq!(status_at(&mut ua, clock.now, &first).0, 200);
    let again = first
        .replace("z9hG4bKr1;", "z9hG4bKr2;")
        .replace("c-z9hG4bKr2", "c-z9hG4bKr1");
    // While the first transaction lives, the same request by another branch is merged...
    assert_eq!(status_at(&mut ua, clock.now, &again).0, 482);
    // ...once it has ended, it is a new request.
    let later = clock.advance(std::time::Duration::from_secs(40));
    ua.handle_timeout(later);
    while ua.poll_transmit().is_some() {}
    assert_eq!(status_at(&mut ua, later, &again).0, 200);
}
