//! Property tests: what we serialise parses back to the same value, and no byte string makes
//! the parser or the stream framer panic.

use landline_sip::message::{
    CSeq, Contact, Header, Headers, Host, Limits, Message, Method, NameAddr, Params, Request,
    Response, SipUri, StatusCode, StreamFramer, Transport, Uri, Via,
};
use proptest::prelude::*;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,12}"
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){0,2}".prop_map(Host::Domain),
        any::<[u8; 4]>().prop_map(|o| Host::V4(o.into())),
        any::<[u16; 8]>().prop_map(|s| Host::V6(s.into())),
    ]
}

fn params() -> impl Strategy<Value = Params> {
    proptest::collection::vec(("[a-z][a-z0-9-]{0,8}", proptest::option::of(token())), 0..4)
        .prop_map(|list| {
            let mut p = Params::new();
            for (n, v) in list {
                p.set(&n, v.as_deref());
            }
            p
        })
}

fn sip_uri() -> impl Strategy<Value = SipUri> {
    (
        any::<bool>(),
        proptest::option::of("[a-zA-Z0-9_.!~*'()%&=+$-]{1,12}"),
        host(),
        any::<Option<u16>>(),
        params(),
    )
        .prop_map(|(secure, user, host, port, params)| SipUri {
            secure,
            user,
            password: None,
            host,
            port,
            params,
            headers: None,
        })
}

fn name_addr() -> impl Strategy<Value = NameAddr> {
    (proptest::option::of("[ -~]{0,12}"), sip_uri(), params()).prop_map(|(display, uri, params)| {
        NameAddr {
            display,
            uri: Uri::Sip(uri),
            params,
        }
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::Invite),
        Just(Method::Ack),
        Just(Method::Bye),
        Just(Method::Options),
        Just(Method::Prack),
        "[A-Z]{3,10}".prop_map(|m| m.parse().unwrap_or(Method::Info)),
    ]
}

fn via() -> impl Strategy<Value = Via> {
    (
        prop_oneof![
            Just(Transport::Udp),
            Just(Transport::Tcp),
            Just(Transport::Tls)
        ],
        host(),
        any::<Option<u16>>(),
        params(),
    )
        .prop_map(|(transport, host, port, params)| Via {
            transport,
            host,
            port,
            params,
        })
}

fn extra_header() -> impl Strategy<Value = Header> {
    prop_oneof![
        name_addr().prop_map(|a| Header::Contact(Contact::Addr(a))),
        name_addr().prop_map(Header::RecordRoute),
        name_addr().prop_map(Header::Route),
        ("X-[a-zA-Z0-9-]{1,10}", "[!-~]([ -~]{0,20}[!-~])?").prop_map(|(n, v)| Header::Other(n, v)),
    ]
}

fn headers(m: Method) -> impl Strategy<Value = Headers> {
    (
        proptest::collection::vec(via(), 1..4),
        name_addr(),
        name_addr(),
        "[!-~]{1,20}",
        0u32..(1 << 31),
        any::<u8>(),
        proptest::collection::vec(extra_header(), 0..6),
    )
        .prop_map(move |(vias, from, to, call_id, seq, mf, extra)| {
            let mut h = Headers::new();
            for v in vias {
                h.push(Header::Via(v));
            }
            h.push(Header::From(from));
            h.push(Header::To(to));
            h.push(Header::CallId(call_id));
            h.push(Header::CSeq(CSeq {
                seq,
                method: m.clone(),
            }));
            h.push(Header::MaxForwards(mf));
            for x in extra {
                h.push(x);
            }
            h
        })
}

fn request() -> impl Strategy<Value = Message> {
    method().prop_flat_map(|m| {
        (
            sip_uri(),
            headers(m.clone()),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(move |(uri, headers, body)| {
                Message::Request(Request {
                    method: m.clone(),
                    uri: Uri::Sip(uri),
                    headers,
                    body,
                })
            })
    })
}

fn response() -> impl Strategy<Value = Message> {
    (100u16..700, "([!-~][ -~]{0,20})?", method())
        .prop_flat_map(|(code, reason, m)| (Just(code), Just(reason), headers(m)))
        .prop_map(|(code, reason, headers)| {
            let status = StatusCode::new(code).unwrap_or(StatusCode::OK);
            Message::Response(Response {
                status,
                reason,
                headers,
                body: Vec::new(),
            })
        })
}

proptest! {
    #[test]
    fn serialize_then_parse_is_identity(msg in prop_oneof![request(), response()]) {
        let bytes = msg.to_bytes();
        let parsed = Message::parse(&bytes, &Limits::default());
        prop_assert_eq!(parsed.as_ref(), Ok(&msg), "{}", String::from_utf8_lossy(&bytes));
        // And serialising what was parsed gives the same bytes.
        if let Ok(p) = parsed {
            prop_assert_eq!(p.to_bytes(), bytes);
        }
    }

    #[test]
    fn framer_reassembles_any_split(msg in request(), cut in 0usize..400) {
        let bytes = msg.to_bytes();
        let cut = cut.min(bytes.len());
        let mut f = StreamFramer::new(Limits::default());
        f.push(&bytes[..cut]);
        let first = f.next_frame().ok().flatten();
        f.push(&bytes[cut..]);
        let frame = first.or_else(|| f.next_frame().ok().flatten());
        prop_assert_eq!(frame, Some(bytes));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = Message::parse(&data, &Limits::default());
        let mut f = StreamFramer::new(Limits::default());
        f.push(&data);
        while let Ok(Some(frame)) = f.next_frame() {
            let _ = Message::parse(&frame, &Limits::default());
        }
    }

    #[test]
    fn sip_like_text_never_panics(text in "(INVITE|SIP/2.0|[A-Za-z:;<>\"@ =,/\\[\\].0-9\r\n\t-]){0,300}") {
        let _ = Message::parse(text.as_bytes(), &Limits::default());
    }
}
