//! RFC 4475 torture messages: every valid one parses, every invalid one is refused with the
//! status the RFC expects, and nothing panics. Fixtures are in `tests/fixtures/rfc4475/`.

use landline_sip::message::{
    Contact, Header, Limits, Message, Method, ParseError, reject_response,
};

fn load(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/rfc4475/{name}.dat",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> Result<Message, ParseError> {
    Message::parse(&load(name), &Limits::default())
}

fn request(name: &str) -> landline_sip::message::Request {
    match parse(name) {
        Ok(Message::Request(r)) => r,
        other => panic!("{name}: expected a request, got {other:?}"),
    }
}

/// §3.1.1 and the syntactically valid messages of §3.2/§3.3 (refused later by policy, not here).
const VALID: &[&str] = &[
    "wsinv",
    "intmeth",
    "esc01",
    "escnull",
    "esc02",
    "lwsdisp",
    "longreq",
    "dblreq",
    "semiuri",
    "transports",
    "mpart01",
    "unreason",
    "noreason",
    "unkscm",
    "novelsc",
    "bext01",
    "zeromf",
    "inv2543",
    "baddate",
];

/// §3.1.2: (fixture, status a UA answers with).
const INVALID: &[(&str, u16)] = &[
    ("badinv01", 400),
    ("clerr", 400),
    ("ncl", 400),
    ("scalar02", 400),
    ("scalarlg", 400),
    ("quotbal", 400),
    ("ltgtruri", 400),
    ("lwsruri", 400),
    ("lwsstart", 400),
    ("trws", 400),
    ("escruri", 400),
    ("regbadct", 400),
    ("badaspec", 400),
    ("baddn", 400),
    ("badvers", 505),
    ("mismatch01", 400),
    ("mismatch02", 400),
    ("bigcode", 400),
    ("insuf", 400),
    ("multi01", 400),
    ("mcl01", 400),
];

#[test]
fn every_valid_message_parses_and_reparses_identically() {
    for name in VALID {
        let msg = parse(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        let again = Message::parse(&msg.to_bytes(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name} reserialised: {e}"));
        assert_eq!(msg, again, "{name} does not round-trip");
    }
}

#[test]
fn every_invalid_message_is_refused_with_its_status() {
    for (name, status) in INVALID {
        let err = match parse(name) {
            Err(e) => e,
            Ok(m) => panic!("{name} was accepted: {m:?}"),
        };
        assert_eq!(err.status().code(), *status, "{name}: {err}");
    }
}

#[test]
fn refused_requests_get_an_echoing_error_response_when_possible() {
    let bytes = load("badvers");
    let err = Message::parse(&bytes, &Limits::default()).unwrap_err();
    let reply = reject_response(&bytes, &err).expect("badvers has all headers to echo");
    let Ok(Message::Response(resp)) = Message::parse(&reply, &Limits::default()) else {
        panic!("reply does not parse");
    };
    assert_eq!(resp.status.code(), 505);
    assert_eq!(resp.headers.call_id(), Some("badvers.39sdfj3w"));
    // insuf lacks From/To/Call-ID; RFC 4475 §3.1.2.18: "Ideally, it will respond with a 400 Bad
    // Request error". It has a Via to send it to and a CSeq to match it by, which are echoed.
    let bytes = load("insuf");
    let err = Message::parse(&bytes, &Limits::default()).unwrap_err();
    let reply = reject_response(&bytes, &err).expect("insuf has a Via and a CSeq");
    let reply = String::from_utf8(reply).expect("ASCII");
    assert!(
        reply.starts_with("SIP/2.0 400 Bad Request\r\nVia: "),
        "{reply}"
    );
    assert!(reply.contains("\r\nCSeq: "), "{reply}");
}

#[test]
fn wsinv_fields() {
    let r = request("wsinv");
    assert_eq!(r.method, Method::Invite);
    assert_eq!(r.headers.vias().count(), 3);
    let branches: Vec<_> = r.headers.vias().filter_map(|v| v.branch()).collect();
    assert_eq!(branches, ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]);
    assert_eq!(r.headers.to().and_then(|t| t.tag()), Some("1918181833n"));
    let from = r.headers.from().expect("From");
    assert_eq!(from.display.as_deref(), Some(r#"J Rosenberg \""#));
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(r.headers.max_forwards(), Some(68));
    assert_eq!(r.headers.cseq().map(|c| c.seq), Some(9));
    assert_eq!(r.headers.get("Subject"), Some(""));
    assert_eq!(
        r.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        r.headers.get("UnknownHeaderWithUnusualValue"),
        Some(";;,,;;,;")
    );
    let contact = r.headers.contacts().next().expect("Contact");
    assert_eq!(contact.display.as_deref(), Some(r#"Quoted string """#));
    assert_eq!(contact.params.value("newparam"), Some("newvalue"));
    assert_eq!(contact.params.get("secondparam"), Some(None));
    assert_eq!(contact.params.value("q"), Some("0.33"));
    assert_eq!(r.body.len(), 150);
}

#[test]
fn intmeth_unusual_characters() {
    let r = request("intmeth");
    assert_eq!(
        r.method,
        Method::Other("!interesting-Method0123456789_*+`.%indeed'~".into())
    );
    let uri = r.uri.as_sip().expect("sip uri");
    assert_eq!(
        uri.user.as_deref(),
        Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*")
    );
    assert_eq!(
        r.headers.call_id(),
        Some(r#"intmeth.word%ZK-!.*_+'@word`~)(><:\/"][?}{"#)
    );
    assert_eq!(
        r.headers.from().and_then(|f| f.tag()),
        Some("_token~1'+`*%!-.")
    );
    assert!(r.headers.get("extensionHeader-!.%*+_`'~").is_some());
}

#[test]
fn other_valid_details() {
    // dblreq: the second request in the datagram is ignored.
    assert_eq!(request("dblreq").method, Method::Register);
    assert!(request("dblreq").body.is_empty());
    // esc02: a % in a method is not an escape; C%6Fntact is an unknown header.
    let r = request("esc02");
    assert_eq!(r.method, Method::Other("RE%47IST%45R".into()));
    assert_eq!(r.headers.contacts().count(), 2);
    // escnull: two Contact lines.
    assert_eq!(request("escnull").headers.contacts().count(), 2);
    // transports: five Vias with five transports, one unknown.
    let vias: Vec<_> = request("transports")
        .headers
        .vias()
        .map(|v| v.transport.to_string())
        .collect();
    assert_eq!(vias, ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]);
    // longreq: 32 Vias.
    assert_eq!(request("longreq").headers.vias().count(), 32);
    // lwsdisp: no space between display name and <.
    let f = request("lwsdisp").headers.from().cloned().expect("From");
    assert_eq!(f.display.as_deref(), Some("caller"));
    // semiuri: a ; inside the user part.
    let r = request("semiuri");
    assert_eq!(
        r.uri.as_sip().and_then(|u| u.user.as_deref()),
        Some("user;par=u%40example.net")
    );
    // Contact: * is typed.
    assert!(
        !r.headers
            .iter()
            .any(|h| matches!(h, Header::Contact(Contact::Wildcard)))
    );
    // unkscm / novelsc: opaque Request-URIs (a UA answers 416).
    assert!(request("unkscm").uri.as_sip().is_none());
    assert!(request("novelsc").uri.as_sip().is_none());
    // noreason: empty reason phrase.
    let Ok(Message::Response(resp)) = parse("noreason") else {
        panic!("noreason")
    };
    assert_eq!((resp.status.code(), resp.reason.as_str()), (100, ""));
}

#[test]
fn every_prefix_and_corruption_is_handled_without_panic() {
    let limits = Limits::default();
    for name in VALID.iter().chain(INVALID.iter().map(|(n, _)| n)) {
        let bytes = load(name);
        for cut in 0..bytes.len() {
            let _ = Message::parse(&bytes[..cut], &limits);
        }
        for i in (0..bytes.len()).step_by(7) {
            let mut b = bytes.clone();
            b[i] = b[i].wrapping_add(0x55);
            if let Err(e) = Message::parse(&b, &limits) {
                let _ = reject_response(&b, &e);
            }
        }
    }
}
