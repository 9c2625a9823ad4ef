//! What an INVITE to a registered contact says about the two ends: the Request-URI is the
//! contact, To the user's address-of-record (RFC 3261 §8.1.1.2); our Contact names the
//! listener the transport reaches us on (RFC 7118 §5 for WebSocket), else `local_addr`.

mod common;

use common::{BOB, Clock, addr, first_line, parse};
use landline_sip::message::{Host, NameAddr, SipUri, Transport};
use landline_sip::ua::{CallParams, Config, UserAgent};

fn invite(transport: Transport, to: Option<NameAddr>) -> (String, Option<String>, Option<String>) {
    let clock = Clock::new();
    let mut cfg = Config::new(addr(common::ALICE), 21);
    cfg.contact_addrs = vec![(Transport::Ws, "192.0.2.7:8080".parse().expect("addr"))];
    let mut ua = UserAgent::new(cfg);
    let mut contact = SipUri::new(Some("bob"), Host::parse("c1.invalid").expect("host"), None);
    contact
        .params
        .set("transport", Some(&transport.as_str().to_ascii_lowercase()));
    ua.call(
        clock.now,
        CallParams {
            target: contact,
            to,
            from: None,
            destination: addr(BOB),
            transport,
            sdp: None,
            credentials: None,
        },
    );
    let sent = ua.poll_transmit().expect("INVITE");
    let msg = parse(&sent.data);
    let h = msg.headers();
    (
        first_line(&sent.data),
        h.to().map(|t| t.to_string()),
        h.contacts().next().map(|c| c.to_string()),
    )
}

#[test]
fn an_invite_to_a_contact_names_the_user_in_to() {
    let aor = NameAddr::new(SipUri::new(
        Some("bob"),
        Host::parse("example.com").expect("host"),
        None,
    ));
    let (line, to, contact) = invite(Transport::Ws, Some(aor));
    assert_eq!(line, "INVITE sip:bob@c1.invalid;transport=ws SIP/2.0");
    assert_eq!(to.as_deref(), Some("<sip:bob@example.com>"));
    assert_eq!(
        contact.as_deref(),
        Some("<sip:landline@192.0.2.7:8080;transport=ws>"),
        "the WebSocket listener, not the UDP port"
    );
}

#[test]
fn without_a_to_the_target_is_the_to_and_other_transports_keep_local_addr() {
    let (line, to, contact) = invite(Transport::Tcp, None);
    assert_eq!(line, "INVITE sip:bob@c1.invalid;transport=tcp SIP/2.0");
    assert_eq!(to.as_deref(), Some("<sip:bob@c1.invalid;transport=tcp>"));
    assert_eq!(
        contact.as_deref(),
        Some("<sip:landline@127.0.0.1:5060;transport=tcp>")
    );
}
