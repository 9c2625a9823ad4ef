//! A forked INVITE: early dialogs from several branches, the first 2xx confirms the call, a
//! later 2xx from another branch is ACKed and hung up at once (RFC 3261 §13.2.2.4).

mod common;

use common::{BOB, Clock, addr, parse};
use landline_sip::message::{Header, Message, NameAddr, Response, SipUri, StatusCode, Transport};
use landline_sip::ua::{CallParams, Config, Event, UserAgent};

fn fork_response(
    invite: &landline_sip::message::Request,
    code: u16,
    tag: &str,
    port: u16,
) -> Vec<u8> {
    let mut r = Response::to_request(invite, StatusCode::new(code).expect("status"));
    if let Some(to) = r.headers.to_mut() {
        to.params.set("tag", Some(tag));
    }
    let contact = SipUri::new(Some(tag), addr(BOB).ip().into(), Some(port));
    r.headers
        .push(Header::Contact(landline_sip::message::Contact::Addr(
            NameAddr::new(contact),
        )));
    r.to_bytes()
}

#[test]
fn second_2xx_is_acked_and_released() {
    let clock = Clock::new();
    let mut alice = UserAgent::new(Config::new(addr(common::ALICE), 5));
    let call = alice.call(
        clock.now,
        CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(5070)),
            to: None,
            from: None,
            destination: addr(BOB),
            transport: Transport::Udp,
            sdp: None,
            credentials: None,
        },
    );
    let invite = match parse(&alice.poll_transmit().expect("INVITE").data) {
        Message::Request(r) => r,
        other => panic!("{other:?}"),
    };
    for (code, tag, port) in [
        (180, "fork1", 6001),
        (183, "fork2", 6002),
        (200, "fork1", 6001),
        (200, "fork2", 6002),
    ] {
        alice.handle_receive(
            clock.now,
            addr(BOB),
            Transport::Udp,
            &fork_response(&invite, code, tag, port),
        );
    }
    let sent: Vec<_> = std::iter::from_fn(|| alice.poll_transmit())
        .map(|t| (t.destination.port(), common::first_line(&t.data)))
        .collect();
    assert_eq!(
        sent,
        [
            (6001, "ACK sip:fork1@127.0.0.1:6001 SIP/2.0".to_owned()),
            (6002, "ACK sip:fork2@127.0.0.1:6002 SIP/2.0".to_owned()),
            (6002, "BYE sip:fork2@127.0.0.1:6002 SIP/2.0".to_owned()),
        ]
    );
    let events: Vec<_> = std::iter::from_fn(|| alice.poll_event()).collect();
    let progress = events
        .iter()
        .filter(|e| matches!(e, Event::Progress { .. }))
        .count();
    let answered = events
        .iter()
        .filter(|e| matches!(e, Event::Answered { .. }))
        .count();
    assert_eq!((progress, answered), (2, 1), "{events:?}");
    // The confirmed dialog is fork1's: BYE goes there.
    alice.hangup(clock.now, call);
    let bye = alice.poll_transmit().expect("BYE");
    assert_eq!(
        common::first_line(&bye.data),
        "BYE sip:fork1@127.0.0.1:6001 SIP/2.0"
    );
}
