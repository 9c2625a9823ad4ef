//! Loose routing (RFC 3261 §12.1, §16.12): the route set from Record-Route, reversed on the UAC
//! side, rides every in-dialog request, and the first route decides where it is sent.

mod common;

use common::{ALICE, BOB, Clock, addr, parse};
use landline_sip::message::{Header, Message, NameAddr, Response, SipUri, StatusCode, Transport};
use landline_sip::ua::{CallParams, Config, Event, UserAgent};

fn routes(data: &[u8]) -> Vec<String> {
    parse(data)
        .headers()
        .iter()
        .filter_map(|h| match h {
            Header::Route(r) => Some(r.uri.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn uac_reverses_record_route_and_sends_to_the_nearest_proxy() {
    let clock = Clock::new();
    let mut alice = UserAgent::new(Config::new(addr(ALICE), 11));
    let call = alice.call(
        clock.now,
        CallParams {
            target: SipUri::new(Some("bob"), addr(BOB).ip().into(), Some(5070)),
            to: None,
            from: None,
            destination: "10.0.0.1:5060".parse().expect("addr"),
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
        to.params.set("tag", Some("b1"));
    }
    // As the proxies appended them: the one next to Bob on top.
    for rr in ["<sip:10.0.0.2:5080;lr>", "<sip:10.0.0.1;lr>"] {
        ok.headers
            .push(Header::RecordRoute(rr.parse().expect("rr")));
    }
    let contact: NameAddr = "<sip:bob@192.0.2.50:5070>".parse().expect("contact");
    ok.headers
        .push(Header::Contact(landline_sip::message::Contact::Addr(
            contact,
        )));
    alice.handle_receive(
        clock.now,
        "10.0.0.1:5060".parse().expect("addr"),
        Transport::Udp,
        &ok.to_bytes(),
    );
    let ack = alice.poll_transmit().expect("ACK");
    assert_eq!(
        common::first_line(&ack.data),
        "ACK sip:bob@192.0.2.50:5070 SIP/2.0",
        "Request-URI is the remote target"
    );
    assert_eq!(
        routes(&ack.data),
        ["sip:10.0.0.1;lr", "sip:10.0.0.2:5080;lr"]
    );
    assert_eq!(
        ack.destination.to_string(),
        "10.0.0.1:5060",
        "sent to the first route"
    );
    assert!(matches!(alice.poll_event(), Some(Event::Answered { .. })));
    alice.hangup(clock.now, call);
    let bye = alice.poll_transmit().expect("BYE");
    assert_eq!(
        routes(&bye.data),
        ["sip:10.0.0.1;lr", "sip:10.0.0.2:5080;lr"]
    );
}

#[test]
fn uas_keeps_record_route_order_and_echoes_it_in_responses() {
    let clock = Clock::new();
    let mut bob = UserAgent::new(Config::new(addr(BOB), 12));
    let invite = "INVITE sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.2:5080;branch=z9hG4bKp2\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa1\r\n\
        Record-Route: <sip:10.0.0.2:5080;lr>, <sip:10.0.0.1;lr>\r\n\
        Max-Forwards: 68\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nTo: <sip:bob@127.0.0.1>\r\n\
        Call-ID: rr\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5060>\r\nContent-Length: 0\r\n\r\n";
    bob.handle_receive(
        clock.now,
        "10.0.0.2:5080".parse().expect("addr"),
        Transport::Udp,
        invite.as_bytes(),
    );
    let Some(Event::IncomingCall { call, .. }) = bob.poll_event() else {
        panic!("no call")
    };
    bob.answer(clock.now, call, b"v=0\r\n".to_vec());
    let sent: Vec<_> = std::iter::from_fn(|| bob.poll_transmit()).collect();
    let ok = sent
        .iter()
        .find(|t| t.data.starts_with(b"SIP/2.0 200"))
        .expect("200");
    let rr: Vec<_> = parse(&ok.data)
        .headers()
        .record_routes()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(rr, ["sip:10.0.0.2:5080;lr", "sip:10.0.0.1;lr"]);
    assert_eq!(
        parse(&ok.data).headers().vias().count(),
        2,
        "all Vias echoed"
    );
    bob.hangup(clock.now, call);
    assert!(
        bob.poll_transmit().is_none(),
        "no BYE before the ACK (RFC 3261 §15)"
    );
    let ack = "ACK sip:bob@127.0.0.1:5070 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 10.0.0.2:5080;branch=z9hG4bKp3\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa2\r\n\
        Max-Forwards: 68\r\nFrom: <sip:alice@127.0.0.1>;tag=a\r\nCall-ID: rr\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n";
    let to_tag = parse(&ok.data)
        .headers()
        .to()
        .and_then(|t| t.tag())
        .map(str::to_owned)
        .expect("tag");
    let ack = format!("{ack}To: <sip:bob@127.0.0.1>;tag={to_tag}\r\n\r\n");
    bob.handle_receive(
        clock.now,
        "10.0.0.2:5080".parse().expect("addr"),
        Transport::Udp,
        ack.as_bytes(),
    );
    let bye = bob.poll_transmit().expect("BYE after the ACK");
    assert_eq!(
        routes(&bye.data),
        ["sip:10.0.0.2:5080;lr", "sip:10.0.0.1;lr"]
    );
    assert_eq!(bye.destination.to_string(), "10.0.0.2:5080");
}

/// RFC 7118 §5: a WebSocket client can only be reached down the connection it opened, so an
/// in-dialog request goes there even when its Contact names an IP address (as some clients
/// write their private address), and its `.invalid` host is never looked at.
#[test]
fn in_dialog_requests_to_a_websocket_client_go_down_its_connection() {
    let clock = Clock::new();
    let mut gateway = UserAgent::new(Config::new(addr(BOB), 12));
    let connection: std::net::SocketAddr = "127.0.0.1:40123".parse().expect("addr");
    for contact in [
        "<sip:alice@192.0.2.7:5060;transport=ws>",
        "<sip:alice@df7jal23ls0d.invalid;transport=ws>",
    ] {
        let invite = format!(
            "INVITE sip:600@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@landline.test>;tag=a{n}\r\n\
             To: <sip:600@landline.test>\r\nCall-ID: ws-{n}\r\nCSeq: 1 INVITE\r\n\
             Contact: {contact}\r\nContent-Length: 0\r\n\r\n",
            n = contact.len()
        );
        gateway.handle_receive(clock.now, connection, Transport::Ws, invite.as_bytes());
        let call = match gateway.poll_event() {
            Some(Event::IncomingCall { call, .. }) => call,
            other => panic!("{other:?}"),
        };
        while gateway.poll_transmit().is_some() {}
        gateway.answer(clock.now, call, Vec::new());
        let ok = gateway.poll_transmit().expect("200");
        assert_eq!(ok.destination, connection, "response down the connection");
        assert_eq!(ok.transport, Transport::Ws);
        let ack = format!(
            "ACK sip:bob@127.0.0.1 SIP/2.0\r\n\
             Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKack{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:alice@landline.test>;tag=a{n}\r\n\
             To: {to}\r\nCall-ID: ws-{n}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
            n = contact.len(),
            to = match parse(&ok.data) {
                Message::Response(r) => r.headers.to().map(ToString::to_string).unwrap_or_default(),
                other => panic!("{other:?}"),
            }
        );
        gateway.handle_receive(clock.now, connection, Transport::Ws, ack.as_bytes());
        while gateway.poll_event().is_some() {}
        gateway.hangup(clock.now, call);
        let bye = gateway.poll_transmit().expect("BYE");
        assert!(common::first_line(&bye.data).starts_with("BYE sip:alice@"));
        assert_eq!(
            (bye.destination, bye.transport),
            (connection, Transport::Ws),
            "BYE for Contact {contact} goes down the WebSocket"
        );
        while gateway.poll_event().is_some() {}
    }
}
