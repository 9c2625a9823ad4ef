//! Our UA against password crackers and account scanners, in virtual time: a source whose
//! credentials keep failing is banned (its REGISTERs and new INVITEs dropped unanswered) while
//! other sources, carriers and calls in progress go on; and no answer tells an existing user
//! from one that does not exist.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{BOB, Clock, Pair, addr, parse};
use landline_sip::auth::{Algorithm, Challenge, Credentials, DigestClient, DigestServer};
use landline_sip::message::{Message, SipUri, StatusCode, Transport};
use landline_sip::ua::{
    Authenticator, Ban, BanPolicy, BanStats, CallParams, Config, Event, IpRange, Reason, Registrar,
    UserAgent,
};

const PASSWORD: &str = "s3cret";
const CRACKER: &str = "198.51.100.7:5060";
const PHONE: &str = "198.51.100.8:5060";
const CARRIER: &str = "192.0.2.10:5060";

fn policy() -> BanPolicy {
    BanPolicy {
        failures: 5,
        window: Duration::from_secs(60),
        ban: Duration::from_secs(300),
        max_sources: 1000,
    }
}

fn authenticator() -> Authenticator {
    let users = HashMap::from([("alice".to_owned(), PASSWORD.to_owned())]);
    let server = DigestServer::new(
        "landline",
        Algorithm::Md5,
        b"test-secret",
        Duration::from_secs(300),
    );
    let mut auth = Authenticator::new(server, users);
    auth.trust(IpRange::new("192.0.2.0".parse().expect("ip"), 24));
    auth.set_ban_policy(policy());
    auth
}

/// The gateway side: a registrar guarded by the authenticator.
fn gateway() -> UserAgent {
    let mut ua = UserAgent::new(Config::new(addr(BOB), 7));
    ua.set_registrar(Registrar::new(60, 3600, 10));
    ua.set_authenticator(authenticator());
    ua
}

/// A peer talking to `ua` with hand-made requests.
struct Peer {
    from: SocketAddr,
    sent: u32,
    challenge: Option<Challenge>,
}

impl Peer {
    fn new(from: &str) -> Self {
        Self {
            from: addr(from),
            sent: 0,
            challenge: None,
        }
    }

    /// Sends `method` for `user` (in Request-URI, From and To) with credentials for
    /// `password` if given (and a challenge was seen); every message `ua` sent back.
    fn send(
        &mut self,
        ua: &mut UserAgent,
        now: Instant,
        method: &str,
        user: &str,
        password: Option<&str>,
    ) -> Vec<Message> {
        self.sent += 1;
        let n = self.sent;
        let uri = format!("sip:{user}@127.0.0.1:5070");
        let authorization = match (password, &self.challenge) {
            (Some(password), Some(challenge)) => {
                let mut client = DigestClient::new(challenge.clone(), u64::from(n));
                let creds = Credentials {
                    username: user.to_owned(),
                    password: password.to_owned(),
                };
                format!(
                    "Authorization: {}\r\n",
                    client.authorize(&creds, method, &uri)
                )
            }
            _ => String::new(),
        };
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK-{user}-{n};rport\r\n\
             Max-Forwards: 70\r\nFrom: <sip:{user}@landline>;tag=f-{user}-{n}\r\n\
             To: <sip:{user}@landline>\r\nCall-ID: c-{user}-{n}\r\nCSeq: 1 {method}\r\n\
             Contact: <sip:{user}@{from}>\r\n{authorization}Content-Length: 0\r\n\r\n",
            from = self.from,
        );
        ua.handle_receive(now, self.from, Transport::Udp, text.as_bytes());
        let replies: Vec<Message> = std::iter::from_fn(|| ua.poll_transmit())
            .map(|t| parse(&t.data))
            .collect();
        for reply in &replies {
            if let Message::Response(r) = reply {
                if let Some(value) = r.headers.get("WWW-Authenticate") {
                    self.challenge = Challenge::parse(value).ok();
                }
            }
        }
        replies
    }
}

/// The final status among `replies`, if any.
fn status(replies: &[Message]) -> Option<u16> {
    replies.iter().rev().find_map(|m| match m {
        Message::Response(r) if r.status.code() >= 200 => Some(r.status.code()),
        _ => None,
    })
}

fn bans(ua: &mut UserAgent) -> Vec<Ban> {
    std::iter::from_fn(|| ua.poll_event())
        .filter_map(|e| match e {
            Event::SourceBanned(ban) => Some(ban),
            _ => None,
        })
        .collect()
}

fn stats(ua: &UserAgent) -> BanStats {
    ua.authenticator().expect("authenticator").ban_stats()
}

#[test]
fn a_cracker_is_banned_at_the_threshold_and_answered_nothing_until_the_ban_ends() {
    let mut ua = gateway();
    let mut clock = Clock::new();
    let mut cracker = Peer::new(CRACKER);
    assert_eq!(
        status(&cracker.send(&mut ua, clock.now, "REGISTER", "alice", None)),
        Some(401),
        "the first request carries no credentials and does not count"
    );
    for guess in 1..=5 {
        let now = clock.advance(Duration::from_millis(100));
        let replies = cracker.send(&mut ua, now, "REGISTER", "alice", Some("guess"));
        assert_eq!(
            status(&replies),
            Some(401),
            "guess {guess} is challenged again"
        );
    }
    assert_eq!(
        bans(&mut ua),
        vec![Ban {
            source: addr(CRACKER).ip(),
            duration: Duration::from_secs(300),
            failures: 5,
        }]
    );
    let banned_at = clock.now;

    // Banned: guesses, fresh REGISTERs, INVITEs, even the right password get no answer.
    let now = clock.advance(Duration::from_millis(100));
    for (method, password) in [
        ("REGISTER", Some("guess")),
        ("REGISTER", None),
        ("INVITE", None),
        ("REGISTER", Some(PASSWORD)),
    ] {
        let replies = cracker.send(&mut ua, now, method, "alice", password);
        assert!(replies.is_empty(), "{method} answered: {replies:?}");
    }
    assert_eq!(
        stats(&ua),
        BanStats {
            failures: 5,
            bans: 1,
            refused: 4
        }
    );

    // Another source is not disturbed: challenged, then registered with the password.
    let mut phone = Peer::new(PHONE);
    assert_eq!(
        status(&phone.send(&mut ua, now, "REGISTER", "alice", None)),
        Some(401)
    );
    assert_eq!(
        status(&phone.send(&mut ua, now, "REGISTER", "alice", Some(PASSWORD))),
        Some(200)
    );

    // Not a moment before the ban's end; at its end, challenged again.
    let now = clock.set(banned_at + Duration::from_secs(299));
    assert!(
        cracker
            .send(&mut ua, now, "REGISTER", "alice", None)
            .is_empty()
    );
    let now = clock.set(banned_at + Duration::from_secs(300));
    assert_eq!(
        status(&cracker.send(&mut ua, now, "REGISTER", "alice", None)),
        Some(401)
    );
    // Straight back to guessing: banned again, for twice as long.
    for _ in 0..5 {
        let now = clock.advance(Duration::from_millis(100));
        cracker.send(&mut ua, now, "REGISTER", "alice", Some("guess"));
    }
    assert_eq!(
        bans(&mut ua).iter().map(|b| b.duration).collect::<Vec<_>>(),
        vec![Duration::from_secs(600)]
    );
}

#[test]
fn an_unknown_user_counts_like_a_wrong_password_and_fewer_failures_ban_nobody() {
    let mut ua = gateway();
    let mut clock = Clock::new();
    let mut scanner = Peer::new(CRACKER);
    scanner.send(&mut ua, clock.now, "REGISTER", "nobody", None);
    for _ in 0..4 {
        let now = clock.advance(Duration::from_secs(1));
        let replies = scanner.send(&mut ua, now, "REGISTER", "nobody", Some("guess"));
        assert_eq!(status(&replies), Some(401));
    }
    assert!(bans(&mut ua).is_empty(), "four failures are allowed");
    // The window passes: the count starts over, so four more still ban nobody.
    clock.advance(Duration::from_secs(60));
    for _ in 0..4 {
        let now = clock.advance(Duration::from_secs(1));
        let replies = scanner.send(&mut ua, now, "REGISTER", "nobody", Some("guess"));
        assert_eq!(status(&replies), Some(401));
    }
    assert!(bans(&mut ua).is_empty());
    let now = clock.advance(Duration::from_secs(1));
    scanner.send(&mut ua, now, "REGISTER", "nobody", Some("guess"));
    assert_eq!(bans(&mut ua).len(), 1, "the fifth in one window bans");
    assert_eq!(stats(&ua).failures, 9);
}

#[test]
fn a_carrier_is_never_counted_or_banned() {
    let mut ua = gateway();
    let mut clock = Clock::new();
    let mut carrier = Peer::new(CARRIER);
    carrier.send(&mut ua, clock.now, "REGISTER", "alice", None);
    for _ in 0..50 {
        let now = clock.advance(Duration::from_millis(10));
        let replies = carrier.send(&mut ua, now, "REGISTER", "alice", Some("guess"));
        assert_eq!(status(&replies), Some(401));
    }
    assert!(bans(&mut ua).is_empty());
    assert_eq!(stats(&ua), BanStats::default());
    // Its calls still come in without credentials.
    let now = clock.advance(Duration::from_millis(10));
    carrier.send(&mut ua, now, "INVITE", "+15551230001", None);
    assert!(
        std::iter::from_fn(|| ua.poll_event()).any(|e| matches!(e, Event::IncomingCall { .. }))
    );
}

/// A call set up from an address that is banned later goes on to its end: requests inside its
/// dialog are never refused. Only new calls from there are.
#[test]
fn a_call_in_progress_from_a_banned_address_goes_on() {
    let mut p = Pair::new(Transport::Udp);
    p.bob.set_authenticator(authenticator());
    let alice_calls = |p: &mut Pair| {
        let now = p.clock.now;
        p.alice.call(
            now,
            CallParams {
                target: SipUri::new(Some("600"), addr(BOB).ip().into(), Some(5070)),
                to: None,
                from: None,
                destination: addr(BOB),
                transport: Transport::Udp,
                sdp: Some(b"v=0\r\n".to_vec()),
                credentials: Some(Credentials {
                    username: "alice".into(),
                    password: PASSWORD.into(),
                }),
            },
        )
    };
    let a = alice_calls(&mut p);
    p.deliver();
    let b = p.bob_call();
    let now = p.clock.now;
    p.bob.answer(now, b, b"v=0 answer\r\n".to_vec());
    p.deliver();
    assert!(p.bob_events.contains(&Event::Confirmed { call: b }));

    // A cracker on alice's address (another port: the same NAT, say) gets it banned.
    let mut cracker = Peer::new("127.0.0.1:6000");
    let now = p.clock.advance(Duration::from_secs(1));
    cracker.send(&mut p.bob, now, "REGISTER", "alice", None);
    for _ in 0..5 {
        cracker.send(&mut p.bob, now, "REGISTER", "alice", Some("guess"));
    }
    assert!(
        cracker
            .send(&mut p.bob, now, "REGISTER", "alice", None)
            .is_empty()
    );
    p.deliver();
    assert!(
        p.bob_events.iter().any(
            |e| matches!(e, Event::SourceBanned(ban) if ban.source == addr(CRACKER_LOCAL).ip())
        )
    );

    // The call goes on: its BYE is in the dialog.
    p.run_for(Duration::from_secs(30));
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

    // A new call from the banned address is dropped: Alice times out, Bob sees nothing.
    let incoming_before = incoming_calls(&p);
    let second = alice_calls(&mut p);
    p.run_for(Duration::from_secs(40));
    assert!(p.alice_events.contains(&Event::Failed {
        call: second,
        status: StatusCode::REQUEST_TIMEOUT
    }));
    assert_eq!(incoming_calls(&p), incoming_before);
}

/// Alice's address in the pair (the cracker shares its IP).
const CRACKER_LOCAL: &str = common::ALICE;

fn incoming_calls(p: &Pair) -> usize {
    p.bob_events
        .iter()
        .filter(|e| matches!(e, Event::IncomingCall { .. }))
        .count()
}

/// The answer to `method` for `user`, with what may differ between any two answers (nonces,
/// tags) blanked and the username written as USER: what a scanner can compare.
fn answer_shape(
    ua: &mut UserAgent,
    peer: &mut Peer,
    method: &str,
    user: &str,
    creds: bool,
) -> Vec<String> {
    let now = Instant::now();
    if creds {
        // A challenge first, so the request carries credentials (with a wrong password).
        peer.send(ua, now, method, user, None);
    }
    let replies = peer.send(ua, now, method, user, creds.then_some("wrong-password"));
    let Some(Message::Response(r)) = replies
        .into_iter()
        .rev()
        .find(|m| matches!(m, Message::Response(r) if r.status.code() >= 200))
    else {
        panic!("{method} for {user}: no final answer");
    };
    let text = String::from_utf8_lossy(&r.to_bytes()).replace(user, "USER");
    text.lines()
        .map(|line| {
            let blank = |line: &str, key: &str, end: char| match line.find(key) {
                Some(at) => {
                    let rest = &line[at + key.len()..];
                    let stop = rest.find(end).unwrap_or(rest.len());
                    format!("{}{key}…{}", &line[..at], &rest[stop..])
                }
                None => line.to_owned(),
            };
            let line = blank(line, "nonce=\"", '"');
            let line = blank(&line, "tag=", ';');
            // Each request's own number (in its branch, tags and Call-ID).
            let mut out = String::new();
            let mut rest = line.as_str();
            while let Some(at) = rest.find("USER-") {
                out.push_str(&rest[..at + 5]);
                rest = rest[at + 5..].trim_start_matches(|c: char| c.is_ascii_digit());
                out.push('n');
            }
            out + rest
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn an_existing_user_and_an_unknown_one_get_the_same_answers() {
    let mut ua = gateway();
    let mut peer = Peer::new(PHONE);
    let methods = [
        "REGISTER",
        "INVITE",
        "OPTIONS",
        "SUBSCRIBE",
        "MESSAGE",
        "NOTIFY",
        "INFO",
    ];
    for method in methods {
        for creds in [false, true] {
            let known = answer_shape(&mut ua, &mut peer, method, "alice", creds);
            let unknown = answer_shape(&mut ua, &mut peer, method, "nobody", creds);
            assert_eq!(
                known, unknown,
                "{method} (credentials: {creds}) tells alice from nobody"
            );
            if matches!(method, "REGISTER" | "INVITE") {
                assert_eq!(known[0], "SIP/2.0 401 Unauthorized", "{method}");
            }
        }
    }
    // Wrong passwords for alice and any password for nobody counted alike (2 methods × 2).
    assert_eq!(stats(&ua).failures, 4);
}
