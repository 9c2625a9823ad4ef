//! RFC 4028's rules between the two ends, against a scripted peer: a refresh asking less than
//! our Min-SE is refused with 422 and changes nothing (§9); a peer's 422 to our refresh is
//! retried once at its Min-SE (§7.3); a refresh that names no refresher from a peer without
//! timer support makes us the refresher (§9), and we then refresh, and end the session with
//! BYE when our refreshes fail (§10).

mod common;

use std::time::Duration;

use common::{ALICE, BOB, Clock, addr, parse};
use landline_sip::message::{Message, Method, Request, Response, SipUri, StatusCode, Transport};
use landline_sip::ua::{CallId, CallParams, Config, Event, Reason, UserAgent};

/// Bob (our UA, default Min-SE 90) answers a scripted caller.
struct Callee {
    ua: UserAgent,
    clock: Clock,
    call: CallId,
    tag: String,
    seq: u32,
    events: Vec<Event>,
}

const DIALOG: &str = "From: <sip:alice@127.0.0.1>;tag=a\r\nCall-ID: rules\r\n\
    Contact: <sip:alice@127.0.0.1:5060>\r\n";

impl Callee {
    /// An INVITE with `extra` headers, answered 200 and ACKed; returns the 200 too.
    fn answered(extra: &str) -> (Self, Message) {
        let clock = Clock::new();
        let mut ua = UserAgent::new(Config::new(addr(BOB), 11));
        let invite = format!(
            "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr1\r\nMax-Forwards: 70\r\n\
             To: <sip:bob@127.0.0.1>\r\n{DIALOG}CSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        ua.handle_receive(clock.now, addr(ALICE), Transport::Udp, invite.as_bytes());
        let Some(Event::IncomingCall { call, .. }) = ua.poll_event() else {
            panic!("no call")
        };
        ua.answer(clock.now, call, b"v=0\r\n".to_vec());
        let sent: Vec<_> = std::iter::from_fn(|| ua.poll_transmit()).collect();
        let ok = parse(&sent.last().expect("200").data);
        let tag = ok
            .headers()
            .to()
            .and_then(|t| t.tag())
            .map(str::to_owned)
            .expect("tag");
        let mut me = Self {
            ua,
            clock,
            call,
            tag,
            seq: 1,
            events: Vec::new(),
        };
        me.receive("ACK", "");
        (me, ok)
    }

    /// The caller sends an in-dialog request; returns what Bob sent back at once.
    fn receive(&mut self, method: &str, extra: &str) -> Vec<Message> {
        if method != "ACK" {
            self.seq += 1;
        }
        let (seq, tag) = (self.seq, &self.tag);
        let text = format!(
            "{method} sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKr{method}{seq}\r\nMax-Forwards: 70\r\n\
             To: <sip:bob@127.0.0.1>;tag={tag}\r\n{DIALOG}CSeq: {seq} {method}\r\n{extra}\
             Content-Length: 0\r\n\r\n"
        );
        let now = self.clock.now;
        self.ua
            .handle_receive(now, addr(ALICE), Transport::Udp, text.as_bytes());
        self.drain()
    }

    fn drain(&mut self) -> Vec<Message> {
        self.events
            .extend(std::iter::from_fn(|| self.ua.poll_event()));
        std::iter::from_fn(|| self.ua.poll_transmit())
            .map(|t| parse(&t.data))
            .collect()
    }

    /// Runs Bob's timers for `d`; returns the requests he sent.
    fn run_for(&mut self, d: Duration) -> Vec<Request> {
        let end = self.clock.now + d;
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_timeout().filter(|t| *t <= end) {
            self.ua.handle_timeout(self.clock.set(t));
            for m in self.drain() {
                if let Message::Request(r) = m {
                    out.push(r);
                }
            }
        }
        self.clock.set(end);
        out
    }

    /// Bob's requests are answered by the caller with `code`.
    fn respond(&mut self, req: &Request, code: u16) {
        let resp = Response::to_request(req, StatusCode::new(code).expect("status"));
        let now = self.clock.now;
        self.ua
            .handle_receive(now, addr(ALICE), Transport::Udp, &resp.to_bytes());
        self.drain();
    }

    fn ended(&self) -> Option<Reason> {
        self.events.iter().find_map(|e| match e {
            Event::Ended { call, reason } if *call == self.call => Some(*reason),
            _ => None,
        })
    }
}

/// The CSeqs of the INVITEs among `sent`, retransmissions counted once.
fn refreshes(sent: &[Request]) -> Vec<u32> {
    let mut seqs: Vec<u32> = sent
        .iter()
        .filter(|r| r.method == Method::Invite)
        .filter_map(|r| r.headers.cseq().map(|c| c.seq))
        .collect();
    seqs.dedup();
    seqs
}

/// The refresh CSeqs in `sent` not yet answered, when `answered` refreshes were.
fn refreshes_seen(sent: &[Request], answered: usize) -> Vec<u32> {
    refreshes(sent)
        .into_iter()
        .filter(|s| *s as usize > answered)
        .collect()
}

fn status(m: &Message) -> u16 {
    match m {
        Message::Response(r) => r.status.code(),
        Message::Request(r) => panic!("a request, not a response: {:?}", r.method),
    }
}

fn final_response(sent: &[Message]) -> &Message {
    sent.iter()
        .rev()
        .find(|m| matches!(m, Message::Response(r) if r.status.code() >= 200))
        .expect("a final response")
}

#[test]
fn a_refresh_below_min_se_gets_422_and_the_session_stands() {
    let (mut bob, ok) =
        Callee::answered("Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n");
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("120;refresher=uac")
    );
    bob.clock.advance(Duration::from_secs(10));
    for method in ["UPDATE", "INVITE"] {
        let sent = bob.receive(
            method,
            "Supported: timer\r\nSession-Expires: 30;refresher=uac\r\n",
        );
        let resp = final_response(&sent);
        assert_eq!(status(resp), 422, "{method} asking 30 s");
        assert_eq!(resp.headers().get("Min-SE"), Some("90"));
        if method == "INVITE" {
            bob.receive("ACK", "");
        }
    }
    // The refused refreshes moved nothing: the session still ends at 120 - 32 = 88 s.
    bob.run_for(Duration::from_secs(77));
    assert_eq!(bob.ended(), None, "up at 87 s");
    let sent = bob.run_for(Duration::from_secs(2));
    assert!(sent.iter().any(|r| r.method == Method::Bye));
    assert_eq!(bob.ended(), Some(Reason::SessionExpired));
}

#[test]
fn a_refresh_at_min_se_is_taken() {
    let (mut bob, _) =
        Callee::answered("Supported: timer\r\nSession-Expires: 120;refresher=uac\r\n");
    bob.clock.advance(Duration::from_secs(50));
    let sent = bob.receive(
        "UPDATE",
        "Supported: timer\r\nSession-Expires: 90;refresher=uac\r\n",
    );
    let resp = final_response(&sent);
    assert_eq!(status(resp), 200);
    assert_eq!(
        resp.headers().get("Session-Expires"),
        Some("90;refresher=uac")
    );
    // Expiry now 50 + 90 - 30 = 110 s, past the first one at 88 s.
    bob.run_for(Duration::from_secs(59));
    assert_eq!(bob.ended(), None, "up at 109 s");
    bob.run_for(Duration::from_secs(2));
    assert_eq!(bob.ended(), Some(Reason::SessionExpired));
}

/// A caller without timer support naming no refresher: we refresh (the INVITE case), and the
/// same for a refresh of a session the caller had been refreshing.
#[test]
fn no_refresher_and_no_timer_support_makes_us_the_refresher() {
    let (_, ok) = Callee::answered("Session-Expires: 120\r\n");
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("120;refresher=uas")
    );
    assert_eq!(ok.headers().get("Require"), None, "it cannot require timer");

    let (mut bob, ok) = Callee::answered("Supported: timer\r\nSession-Expires: 120\r\n");
    assert_eq!(
        ok.headers().get("Session-Expires"),
        Some("120;refresher=uac"),
        "a timer-capable caller naming none refreshes itself"
    );
    bob.clock.advance(Duration::from_secs(30));
    let sent = bob.receive("UPDATE", "Session-Expires: 120\r\n");
    let resp = final_response(&sent);
    assert_eq!(status(resp), 200);
    assert_eq!(
        resp.headers().get("Session-Expires"),
        Some("120;refresher=uas")
    );
    assert_eq!(resp.headers().get("Require"), None);
    // We refresh at half the interval from the UPDATE: 30 + 60 s, and go on doing so.
    let sent = bob.run_for(Duration::from_secs(59));
    assert!(sent.is_empty(), "nothing before 89 s: {sent:?}");
    let sent = bob.run_for(Duration::from_secs(2));
    let refresh = sent
        .iter()
        .find(|r| r.method == Method::Invite)
        .expect("our refresh");
    assert_eq!(
        refresh.headers.get("Session-Expires"),
        Some("120;refresher=uac")
    );
    let refresh = refresh.clone();
    bob.respond(&refresh, 200);
    let sent = bob.run_for(Duration::from_secs(61));
    assert_eq!(
        refreshes(&sent),
        vec![2],
        "the next refresh 60 s after the answered one"
    );
    assert_eq!(bob.ended(), None);
}

#[test]
fn our_refresh_refused_481_ends_the_call_with_bye() {
    let (mut bob, _) = Callee::answered("Session-Expires: 120\r\n");
    let sent = bob.run_for(Duration::from_secs(61));
    let refresh = sent
        .iter()
        .find(|r| r.method == Method::Invite)
        .expect("refresh")
        .clone();
    let resp = Response::to_request(&refresh, StatusCode::new(481).expect("status"));
    let now = bob.clock.now;
    bob.ua
        .handle_receive(now, addr(ALICE), Transport::Udp, &resp.to_bytes());
    let sent = bob.drain();
    assert!(
        sent.iter()
            .any(|m| matches!(m, Message::Request(r) if r.method == Method::Bye)),
        "BYE at once"
    );
    assert_eq!(bob.ended(), Some(Reason::LocalBye));
}

#[test]
fn our_refreshes_failing_otherwise_end_the_session_when_it_expires() {
    let (mut bob, _) = Callee::answered("Session-Expires: 120\r\n");
    // Every refresh refused 500: each failure tries again halfway to the end, which stands
    // at 120 s; then BYE.
    let start = bob.clock.now;
    let mut refreshes = Vec::new();
    let mut bye_at = None;
    for _ in 0..1000 {
        let sent = bob.run_for(Duration::from_millis(250));
        let new = refreshes_seen(&sent, refreshes.len());
        for r in sent {
            match r.method {
                Method::Invite if new.contains(&r.headers.cseq().map_or(0, |c| c.seq)) => {
                    refreshes.push((bob.clock.now - start).as_secs_f64());
                    bob.respond(&r, 500);
                }
                Method::Bye => bye_at = Some(bob.clock.now - start),
                _ => {}
            }
        }
        if bye_at.is_some() {
            break;
        }
    }
    let bye_at = bye_at.expect("BYE at expiry").as_secs_f64();
    assert!(
        (119.0..=121.0).contains(&bye_at),
        "BYE at {bye_at} s, refreshes at {refreshes:?}"
    );
    assert!(
        refreshes.len() >= 3 && (59.0..=61.0).contains(&refreshes[0]),
        "{refreshes:?}"
    );
    assert!(refreshes.windows(2).all(|w| w[1] > w[0]), "{refreshes:?}");
    assert_eq!(bob.ended(), Some(Reason::SessionExpired));
}

/// Alice (our UA) calls with 120 s; the scripted callee makes her the refresher, then answers
/// her refreshes 422 with a larger Min-SE.
#[test]
fn a_422_to_our_refresh_is_retried_once_at_the_peers_min_se() {
    let mut clock = Clock::new();
    let mut cfg = Config::new(addr(ALICE), 12);
    cfg.session_expires = Some(120);
    let mut alice = UserAgent::new(cfg);
    let call = alice.call(
        clock.now,
        CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(5070)),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: Some(b"v=0\r\n".to_vec()),
            credentials: None,
        },
    );
    let requests = |ua: &mut UserAgent| -> Vec<Request> {
        std::iter::from_fn(|| ua.poll_transmit())
            .filter_map(|t| match parse(&t.data) {
                Message::Request(r) => Some(r),
                Message::Response(_) => None,
            })
            .filter(|r| r.method != Method::Ack)
            .collect()
    };
    let reply = |ua: &mut UserAgent, now, req: &Request, code: u16, extra: &[(&str, &str)]| {
        let mut resp = Response::to_request(req, StatusCode::new(code).expect("status"));
        if let Some(to) = resp.headers.to_mut() {
            if to.tag().is_none() {
                to.params.set("tag", Some("b"));
            }
        }
        for (n, v) in extra {
            resp.headers.set(n, (*v).to_owned());
        }
        ua.handle_receive(now, addr(BOB), Transport::Udp, &resp.to_bytes());
    };
    let invite = requests(&mut alice).pop().expect("INVITE");
    reply(
        &mut alice,
        clock.now,
        &invite,
        200,
        &[
            ("Session-Expires", "120;refresher=uac"),
            ("Contact", "<sip:bob@127.0.0.1:5070>"),
        ],
    );
    // The refresh at 60 s, refused 422 with Min-SE 300.
    let mut refresh = None;
    while refresh.is_none() {
        let at = alice.poll_timeout().expect("timer");
        alice.handle_timeout(clock.set(at));
        refresh = requests(&mut alice)
            .into_iter()
            .find(|r| r.method == Method::Invite);
    }
    let refresh = refresh.expect("refresh");
    let first_seq = refresh.headers.cseq().map(|c| c.seq).expect("cseq");
    reply(&mut alice, clock.now, &refresh, 422, &[("Min-SE", "300")]);
    let retry = requests(&mut alice)
        .into_iter()
        .find(|r| r.method == Method::Invite)
        .expect("the refresh retried at once");
    assert_eq!(
        retry.headers.get("Session-Expires"),
        Some("300;refresher=uac")
    );
    assert_eq!(retry.headers.get("Min-SE"), Some("300"));
    assert!(retry.headers.cseq().map(|c| c.seq) > Some(first_seq));
    reply(
        &mut alice,
        clock.now,
        &retry,
        200,
        &[("Session-Expires", "300;refresher=uac")],
    );
    let events: Vec<_> = std::iter::from_fn(|| alice.poll_event()).collect();
    assert!(
        events.contains(&Event::OfferAnswered { call, sdp: None }),
        "{events:?}"
    );

    // An UPDATE refresh refused 422 is retried the same way, once.
    alice.update(clock.now, call, None);
    let update = requests(&mut alice).pop().expect("UPDATE");
    assert_eq!(
        update.headers.get("Session-Expires"),
        Some("300;refresher=uac")
    );
    reply(&mut alice, clock.now, &update, 422, &[("Min-SE", "600")]);
    let retry = requests(&mut alice).pop().expect("UPDATE retried");
    assert_eq!(retry.method, Method::Update);
    assert_eq!(
        retry.headers.get("Session-Expires"),
        Some("600;refresher=uac")
    );
    reply(&mut alice, clock.now, &retry, 422, &[("Min-SE", "600")]);
    assert!(
        requests(&mut alice).is_empty(),
        "a second 422 at the same Min-SE is final"
    );
    assert_eq!(alice.call_count(), 1, "the call goes on");
}
