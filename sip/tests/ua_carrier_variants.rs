//! Legal SIP that carriers send and our own peer never does: late offers (an INVITE or
//! re-INVITE without SDP, the answer in the ACK), an ACK that reuses the INVITE's branch, an
//! UPDATE repeating its SDP or arriving before our answer, and reliable provisionals from
//! several early dialogs (RFC 3261 §13/§14, RFC 3262, RFC 3264, RFC 3311).

mod common;

use common::{ALICE, BOB, Clock, addr, first_line, parse};
use landline_sip::message::{Message, Request, Response, SipUri, StatusCode, Transport};
use landline_sip::ua::{CallId, CallParams, Config, Event, UserAgent};

const OFFER: &[u8] = b"v=0\r\no=them 1 1 IN IP4 127.0.0.1\r\ns=-\r\n";
const OURS: &[u8] = b"v=0\r\no=us 2 1 IN IP4 127.0.0.1\r\ns=-\r\n";
const ANSWER: &[u8] = b"v=0\r\no=them 1 2 IN IP4 127.0.0.1\r\ns=-\r\n";

/// A request from the carrier (Alice's address) to Bob, the UA under test.
fn text_request(
    method: &str,
    branch: &str,
    cseq: u32,
    cseq_method: &str,
    to_tag: Option<&str>,
    body: &[u8],
) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    let content_type = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_owned()
    };
    let mut text = format!(
        "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:carrier@127.0.0.1>;tag=c1\r\n\
         To: <sip:bob@127.0.0.1>{to_tag}\r\nCall-ID: late\r\nCSeq: {cseq} {cseq_method}\r\n\
         Contact: <sip:carrier@127.0.0.1:5060>\r\nSupported: 100rel\r\n{content_type}\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    text.extend_from_slice(body);
    text
}

/// Bob, and what it sent and reported.
struct Bob {
    ua: UserAgent,
    clock: Clock,
    sent: Vec<Vec<u8>>,
    events: Vec<Event>,
}

impl Bob {
    fn new() -> Self {
        Bob {
            ua: UserAgent::new(Config::new(addr(BOB), 7)),
            clock: Clock::new(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    fn receive(&mut self, data: &[u8]) {
        let now = self.clock.now;
        self.ua
            .handle_receive(now, addr(ALICE), Transport::Udp, data);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            self.sent.push(t.data);
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
    }

    fn last_response(&self, code: &str) -> Response {
        let data = self
            .sent
            .iter()
            .rev()
            .find(|d| first_line(d).starts_with(&format!("SIP/2.0 {code}")))
            .unwrap_or_else(|| panic!("no {code} sent: {:?}", self.lines()));
        match parse(data) {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!("a response was matched"),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.sent.iter().map(|d| first_line(d)).collect()
    }

    fn incoming(&self) -> (CallId, Option<Vec<u8>>) {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::IncomingCall { call, sdp, .. } => Some((*call, sdp.clone())),
                _ => None,
            })
            .expect("an incoming call")
    }

    /// A late-offer call answered with our offer and ACKed (with `ack_branch`) with `ack`.
    fn answered_late_offer(ack_branch: &str, ack: &[u8]) -> (Bob, CallId, String) {
        let mut bob = Bob::new();
        bob.receive(&text_request(
            "INVITE",
            "z9hG4bKinv",
            1,
            "INVITE",
            None,
            b"",
        ));
        let (call, sdp) = bob.incoming();
        assert_eq!(sdp, None, "no offer in the INVITE");
        let now = bob.clock.now;
        bob.ua.answer(now, call, OURS.to_vec());
        bob.drain();
        let ok = bob.last_response("200");
        assert_eq!(ok.body, OURS, "our offer goes in the 200");
        let tag = ok
            .headers
            .to()
            .and_then(|t| t.tag())
            .expect("To tag")
            .to_owned();
        bob.receive(&text_request("ACK", ack_branch, 1, "ACK", Some(&tag), ack));
        (bob, call, tag)
    }
}

#[test]
fn a_late_offer_gets_our_offer_in_the_200_and_its_answer_from_the_ack() {
    let (bob, call, _) = Bob::answered_late_offer("z9hG4bKack", ANSWER);
    assert!(bob.events.contains(&Event::AckAnswer {
        call,
        sdp: Some(ANSWER.to_vec())
    }));
    assert!(bob.events.contains(&Event::Confirmed { call }));
}

#[test]
fn an_ack_without_the_answer_is_reported_as_none() {
    let (bob, call, _) = Bob::answered_late_offer("z9hG4bKack", b"");
    assert!(bob.events.contains(&Event::AckAnswer { call, sdp: None }));
}

#[test]
fn an_ack_reusing_the_invite_branch_still_confirms_and_answers() {
    let (mut bob, call, _) = Bob::answered_late_offer("z9hG4bKinv", ANSWER);
    assert!(bob.events.contains(&Event::Confirmed { call }));
    assert!(bob.events.contains(&Event::AckAnswer {
        call,
        sdp: Some(ANSWER.to_vec())
    }));
    // Confirmed: the 200 is not resent any more.
    let before = bob.sent.len();
    for _ in 0..10 {
        let now = bob.clock.advance(std::time::Duration::from_secs(1));
        bob.ua.handle_timeout(now);
        bob.drain();
    }
    let resent = bob.sent[before..]
        .iter()
        .filter(|d| first_line(d).starts_with("SIP/2.0 200"))
        .count();
    assert_eq!(resent, 0, "{:?}", bob.lines());
}

#[test]
fn an_offerless_reinvite_asks_the_application_for_an_offer_and_the_ack_answers_it() {
    let (mut bob, call, tag) = Bob::answered_late_offer("z9hG4bKack", ANSWER);
    bob.events.clear();
    bob.receive(&text_request(
        "INVITE",
        "z9hG4bKre",
        2,
        "INVITE",
        Some(&tag),
        b"",
    ));
    assert_eq!(bob.events, vec![Event::OfferWanted { call }]);
    let now = bob.clock.now;
    bob.ua.answer_offer(now, call, OURS.to_vec());
    bob.drain();
    let ok = bob.last_response("200");
    assert_eq!(ok.headers.cseq().map(|c| c.seq), Some(2));
    assert_eq!(ok.body, OURS);
    bob.receive(&text_request(
        "ACK",
        "z9hG4bKreack",
        2,
        "ACK",
        Some(&tag),
        ANSWER,
    ));
    assert!(bob.events.contains(&Event::AckAnswer {
        call,
        sdp: Some(ANSWER.to_vec())
    }));
}

#[test]
fn an_update_repeating_its_sdp_is_still_answered_with_sdp() {
    let mut bob = Bob::new();
    bob.receive(&text_request(
        "INVITE",
        "z9hG4bKinv",
        1,
        "INVITE",
        None,
        OFFER,
    ));
    let (call, _) = bob.incoming();
    let now = bob.clock.now;
    bob.ua.answer(now, call, OURS.to_vec());
    bob.drain();
    let tag = bob
        .last_response("200")
        .headers
        .to()
        .and_then(|t| t.tag())
        .map(str::to_owned);
    let tag = tag.expect("To tag");
    bob.receive(&text_request(
        "ACK",
        "z9hG4bKack",
        1,
        "ACK",
        Some(&tag),
        b"",
    ));
    bob.receive(&text_request(
        "UPDATE",
        "z9hG4bKup",
        2,
        "UPDATE",
        Some(&tag),
        OFFER,
    ));
    let ok = bob.last_response("200");
    assert_eq!(ok.headers.cseq().map(|c| c.seq), Some(2));
    assert_eq!(
        ok.body, OURS,
        "an offer always gets an answer (RFC 3311 §5.2)"
    );
    // Without SDP it is a refresh, answered without SDP.
    bob.receive(&text_request(
        "UPDATE",
        "z9hG4bKup2",
        3,
        "UPDATE",
        Some(&tag),
        b"",
    ));
    let ok = bob.last_response("200");
    assert_eq!(ok.headers.cseq().map(|c| c.seq), Some(3));
    assert!(ok.body.is_empty());
}

#[test]
fn an_early_update_offer_before_our_answer_gets_500_with_retry_after() {
    let mut bob = Bob::new();
    bob.receive(&text_request(
        "INVITE",
        "z9hG4bKinv",
        1,
        "INVITE",
        None,
        OFFER,
    ));
    let (call, _) = bob.incoming();
    let now = bob.clock.now;
    bob.ua.ring(now, call, StatusCode::RINGING, None, false);
    bob.drain();
    let tag = bob
        .last_response("180")
        .headers
        .to()
        .and_then(|t| t.tag())
        .map(str::to_owned);
    let tag = tag.expect("To tag");
    bob.events.clear();
    bob.receive(&text_request(
        "UPDATE",
        "z9hG4bKup",
        2,
        "UPDATE",
        Some(&tag),
        ANSWER,
    ));
    let refused = bob.last_response("500");
    assert_eq!(refused.headers.get("Retry-After"), Some("1"));
    assert!(bob.events.is_empty(), "{:?}", bob.events);
    // A refresh without SDP is fine while ringing.
    bob.receive(&text_request(
        "UPDATE",
        "z9hG4bKup2",
        3,
        "UPDATE",
        Some(&tag),
        b"",
    ));
    assert_eq!(
        bob.last_response("200").headers.cseq().map(|c| c.seq),
        Some(3)
    );
}

/// Alice, the UA under test as a caller, and the INVITE it sent.
struct Alice {
    ua: UserAgent,
    clock: Clock,
    invite: Request,
    sent: Vec<Vec<u8>>,
    events: Vec<Event>,
}

impl Alice {
    fn call() -> (Alice, CallId) {
        let mut ua = UserAgent::new(Config::new(addr(ALICE), 3));
        let clock = Clock::new();
        let params = CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(addr(BOB).port())),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: Some(OURS.to_vec()),
            credentials: None,
        };
        let call = ua.call(clock.now, params);
        let data = ua.poll_transmit().expect("INVITE sent").data;
        let Message::Request(invite) = parse(&data) else {
            panic!("not a request")
        };
        let alice = Alice {
            ua,
            clock,
            invite,
            sent: Vec::new(),
            events: Vec::new(),
        };
        (alice, call)
    }

    fn respond(&mut self, code: u16, tag: &str, rseq: Option<u32>, body: &[u8]) {
        let mut resp = common::response(&self.invite, code, tag);
        resp.headers
            .set("Contact", "<sip:carrier@127.0.0.1:5070>".to_owned());
        if let Some(n) = rseq {
            resp.headers.set("Require", "100rel");
            resp.headers.set("RSeq", n.to_string());
        }
        if !body.is_empty() {
            resp.headers.set("Content-Type", "application/sdp");
            resp.body = body.to_vec();
        }
        let now = self.clock.now;
        self.ua
            .handle_receive(now, addr(BOB), Transport::Udp, &resp.to_bytes());
        while let Some(t) = self.ua.poll_transmit() {
            self.sent.push(t.data);
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push(e);
        }
    }

    /// CSeq numbers and To tags of the requests we sent with `method`.
    fn sent(&self, method: &str) -> Vec<(u32, String)> {
        self.sent
            .iter()
            .filter_map(|d| match parse(d) {
                Message::Request(r) if r.method.as_str() == method => Some((
                    r.headers.cseq().map_or(0, |c| c.seq),
                    r.headers
                        .to()
                        .and_then(|t| t.tag())
                        .unwrap_or("")
                        .to_owned(),
                )),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn reliable_provisionals_of_one_dialog_are_pracked_with_growing_cseqs_and_the_bye_exceeds_them() {
    let (mut alice, call) = Alice::call();
    alice.respond(180, "t1", Some(7), b"");
    alice.respond(183, "t1", Some(8), ANSWER);
    alice.respond(183, "t1", Some(8), ANSWER); // retransmission: not PRACKed again
    let pracks = alice.sent("PRACK");
    assert_eq!(pracks.len(), 2, "{pracks:?}");
    assert!(
        pracks[1].0 > pracks[0].0,
        "CSeq grows in a dialog: {pracks:?}"
    );
    alice.respond(200, "t1", None, ANSWER);
    let now = alice.clock.now;
    alice.ua.hangup(now, call);
    while let Some(t) = alice.ua.poll_transmit() {
        alice.sent.push(t.data);
    }
    let bye = alice.sent("BYE");
    assert_eq!(bye.len(), 1);
    assert!(
        bye[0].0 > pracks[1].0,
        "BYE {bye:?} after PRACKs {pracks:?}"
    );
}

#[test]
fn reliable_provisionals_from_two_forks_are_each_pracked() {
    let (mut alice, _call) = Alice::call();
    alice.respond(183, "fork-a", Some(500), ANSWER);
    // The second fork numbers from its own start, lower than the first's.
    alice.respond(180, "fork-b", Some(3), b"");
    let pracks = alice.sent("PRACK");
    let tags: Vec<&str> = pracks.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tags, ["fork-a", "fork-b"], "{pracks:?}");
    let progress = alice
        .events
        .iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .count();
    assert_eq!(progress, 2);
}
