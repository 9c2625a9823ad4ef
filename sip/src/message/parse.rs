//! The message parser: start line, unfolded header lines, compact names, typed values, body
//! framing by Content-Length, and the limits that keep a hostile peer from costing us memory.

use std::borrow::Cow;
use std::io::Write as _;

use super::header::{CSeq, Contact, Header, Method, NameAddr, split_list};
use super::{Headers, Message, Request, Response, StatusCode, Uri};

/// Bounds on what we accept, so one peer cannot make us allocate without limit.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest whole message in bytes (headers and body).
    pub max_message: usize,
    /// Most header fields (after splitting folded lines, before splitting lists).
    pub max_headers: usize,
    /// Largest body in bytes.
    pub max_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message: 65_535,
            max_headers: 128,
            max_body: 32_768,
        }
    }
}

/// Why a message was rejected; [`ParseError::status`] is the response a UA should send back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The message is larger than [`Limits::max_message`].
    #[error("message larger than {0} bytes")]
    TooLarge(usize),
    /// The body is larger than [`Limits::max_body`].
    #[error("body larger than {0} bytes")]
    BodyTooLarge(usize),
    /// More header fields than [`Limits::max_headers`].
    #[error("more than {0} header fields")]
    TooManyHeaders(usize),
    /// No blank line ends the headers: a truncated datagram, or a stream still filling.
    #[error("headers not terminated")]
    Incomplete,
    /// Content-Length promises more bytes than arrived.
    #[error("Content-Length {declared} exceeds the {available} bytes received")]
    Truncated {
        /// What the header said.
        declared: usize,
        /// What we had.
        available: usize,
    },
    /// The header section is not UTF-8.
    #[error("header section is not UTF-8")]
    Encoding,
    /// The request or status line is malformed.
    #[error("malformed start line")]
    StartLine,
    /// A SIP version other than 2.0.
    #[error("unsupported SIP version {0:?}")]
    Version(String),
    /// A header line without a colon or with an illegal name.
    #[error("malformed header line")]
    HeaderLine,
    /// A known header whose value does not parse.
    #[error("malformed {0} header")]
    BadHeader(&'static str),
    /// A single-valued header appears more than once with different values.
    #[error("more than one {0} header")]
    Duplicate(&'static str),
    /// A mandatory header is missing.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// A Request-URI with a `?headers` part (RFC 3261 §19.1.5).
    #[error("Request-URI carries headers")]
    UriHeaders,
}

impl ParseError {
    /// The status a UA answers a request that fails this way with.
    pub fn status(&self) -> StatusCode {
        match self {
            ParseError::Version(_) => StatusCode::VERSION_NOT_SUPPORTED,
            ParseError::TooLarge(_) | ParseError::TooManyHeaders(_) => {
                StatusCode::MESSAGE_TOO_LARGE
            }
            ParseError::BodyTooLarge(_) => StatusCode::ENTITY_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// Header names, compact forms included, mapped to the names we serialise.
const CANONICAL: &[(&str, &str)] = &[
    ("v", "Via"),
    ("via", "Via"),
    ("f", "From"),
    ("from", "From"),
    ("t", "To"),
    ("to", "To"),
    ("i", "Call-ID"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("max-forwards", "Max-Forwards"),
    ("m", "Contact"),
    ("contact", "Contact"),
    ("route", "Route"),
    ("record-route", "Record-Route"),
    ("l", "Content-Length"),
    ("content-length", "Content-Length"),
    ("c", "Content-Type"),
    ("content-type", "Content-Type"),
    ("e", "Content-Encoding"),
    ("content-encoding", "Content-Encoding"),
    ("s", "Subject"),
    ("subject", "Subject"),
    ("k", "Supported"),
    ("supported", "Supported"),
    ("require", "Require"),
    ("x", "Session-Expires"),
    ("session-expires", "Session-Expires"),
    ("min-se", "Min-SE"),
    ("o", "Event"),
    ("r", "Refer-To"),
    ("b", "Referred-By"),
    ("u", "Allow-Events"),
    ("expires", "Expires"),
    ("min-expires", "Min-Expires"),
    ("allow", "Allow"),
    ("rseq", "RSeq"),
    ("rack", "RAck"),
    ("www-authenticate", "WWW-Authenticate"),
    ("authorization", "Authorization"),
    ("proxy-authenticate", "Proxy-Authenticate"),
    ("proxy-authorization", "Proxy-Authorization"),
    ("user-agent", "User-Agent"),
    ("server", "Server"),
];

fn canonical(name: &str) -> Cow<'_, str> {
    CANONICAL
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map_or(Cow::Borrowed(name), |(_, v)| Cow::Borrowed(*v))
}

/// Splits the header section from the body: the index of the first byte after the blank line and
/// the end of the header text. Accepts bare LF line ends as RFC 3261 §7.5 asks of receivers.
pub(crate) fn find_head_end(data: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'\n' {
            if data.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

/// Raw, unfolded header lines as (name, value); used by the parser and by [`reject_response`].
/// Borrowed from the input unless a folded line had to be joined.
type Lines<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

fn header_lines<'a>(head: &'a str, limits: &Limits) -> Result<Lines<'a>, ParseError> {
    let mut lines: Lines<'a> = Vec::with_capacity(24);
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            let last = lines.last_mut().ok_or(ParseError::HeaderLine)?;
            let folded = line.trim();
            if !folded.is_empty() {
                let v = last.1.to_mut();
                if !v.is_empty() {
                    v.push(' ');
                }
                v.push_str(folded);
            }
            continue;
        }
        if lines.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders(limits.max_headers));
        }
        let (name, value) = line.split_once(':').ok_or(ParseError::HeaderLine)?;
        let name = name.trim_end_matches([' ', '\t']);
        if !super::text::is_token(name) {
            return Err(ParseError::HeaderLine);
        }
        lines.push((canonical(name), Cow::Borrowed(value.trim())));
    }
    Ok(lines)
}

pub(crate) fn parse_message(data: &[u8], limits: &Limits) -> Result<Message, ParseError> {
    if data.len() > limits.max_message {
        return Err(ParseError::TooLarge(limits.max_message));
    }
    // Keep-alive CRLFs may precede a message on streams.
    let skip = data
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let data = &data[skip..];
    let (head_end, body_start) = find_head_end(data).ok_or(ParseError::Incomplete)?;
    let head = std::str::from_utf8(&data[..head_end]).map_err(|_| ParseError::Encoding)?;
    let (start, rest) = head.split_once('\n').unwrap_or((head, ""));
    let start = start.strip_suffix('\r').unwrap_or(start);
    let lines = if rest.is_empty() {
        Vec::new()
    } else {
        header_lines(rest, limits)?
    };

    let mut headers = Headers::new();
    let mut content_length: Option<usize> = None;
    for (name, value) in lines {
        if name == "Content-Length" {
            let len = parse_content_length(&value)?;
            if content_length.is_some_and(|l| l != len) {
                return Err(ParseError::Duplicate("Content-Length"));
            }
            content_length = Some(len);
            continue;
        }
        push_typed(&mut headers, name, value)?;
    }
    let body = frame_body(&data[body_start..], content_length, limits)?;

    let msg = if let Some(rest) = start.strip_prefix("SIP/") {
        parse_status_line(rest, headers, body)?
    } else {
        parse_request_line(start, headers, body)?
    };
    validate(&msg)?;
    Ok(msg)
}

fn parse_content_length(value: &str) -> Result<usize, ParseError> {
    let ok = !value.is_empty() && value.len() <= 9 && value.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| value.parse().ok())
        .flatten()
        .ok_or(ParseError::BadHeader("Content-Length"))
}

/// RFC 3261 §18.3: over a datagram the body is what Content-Length says (extra bytes dropped,
/// missing bytes an error); without Content-Length it is the rest of the datagram.
fn frame_body(
    rest: &[u8],
    content_length: Option<usize>,
    limits: &Limits,
) -> Result<Vec<u8>, ParseError> {
    let len = content_length.unwrap_or(rest.len());
    if len > limits.max_body {
        return Err(ParseError::BodyTooLarge(limits.max_body));
    }
    if len > rest.len() {
        return Err(ParseError::Truncated {
            declared: len,
            available: rest.len(),
        });
    }
    Ok(rest[..len].to_vec())
}

fn push_typed(
    headers: &mut Headers,
    name: Cow<'_, str>,
    value: Cow<'_, str>,
) -> Result<(), ParseError> {
    let single = |headers: &Headers, h: &Header, label: &'static str| {
        let dup = headers.iter().any(|x| x.name() == h.name());
        if dup {
            Err(ParseError::Duplicate(label))
        } else {
            Ok(())
        }
    };
    let header = match &*name {
        "Via" | "Contact" | "Route" | "Record-Route" => {
            let label = static_name(&name);
            let parts = split_list(&value).ok_or(ParseError::BadHeader(label))?;
            for part in parts {
                let part = part.trim();
                let h = match label {
                    "Via" => Header::Via(part.parse().map_err(|_| ParseError::BadHeader(label))?),
                    "Contact" if part == "*" => Header::Contact(Contact::Wildcard),
                    "Contact" => Header::Contact(Contact::Addr(parse_addr(part, label)?)),
                    "Route" => Header::Route(parse_addr(part, label)?),
                    _ => Header::RecordRoute(parse_addr(part, label)?),
                };
                headers.push(h);
            }
            return Ok(());
        }
        "From" => Header::From(parse_addr(&value, "From")?),
        "To" => Header::To(parse_addr(&value, "To")?),
        "Call-ID" => {
            let ok = !value.is_empty() && !value.bytes().any(|b| b.is_ascii_whitespace());
            ok.then(|| Header::CallId(value.clone().into_owned()))
                .ok_or(ParseError::BadHeader("Call-ID"))?
        }
        "CSeq" => Header::CSeq(
            value
                .parse::<CSeq>()
                .map_err(|_| ParseError::BadHeader("CSeq"))?,
        ),
        "Max-Forwards" => {
            let ok =
                !value.is_empty() && value.len() <= 5 && value.bytes().all(|b| b.is_ascii_digit());
            let n: Option<u8> = ok.then(|| value.parse().ok()).flatten();
            Header::MaxForwards(n.ok_or(ParseError::BadHeader("Max-Forwards"))?)
        }
        _ => {
            headers.push(Header::Other(name.into_owned(), value.into_owned()));
            return Ok(());
        }
    };
    single(headers, &header, static_name(header.name()))?;
    headers.push(header);
    Ok(())
}

fn parse_addr(value: &str, label: &'static str) -> Result<NameAddr, ParseError> {
    // A comma in a single-valued From/To is two values (RFC 4475 §3.1.2.17 style).
    if matches!(label, "From" | "To") && split_list(value).is_none_or(|p| p.len() != 1) {
        return Err(ParseError::BadHeader(label));
    }
    value.parse().map_err(|_| ParseError::BadHeader(label))
}

fn static_name(name: &str) -> &'static str {
    [
        "Via",
        "Contact",
        "Route",
        "Record-Route",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Max-Forwards",
    ]
    .into_iter()
    .find(|n| *n == name)
    .unwrap_or("header")
}

fn parse_request_line(line: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    let mut it = line.split(' ');
    let (method, uri, version) = (it.next(), it.next(), it.next());
    let (Some(method), Some(uri), Some(version), None) = (method, uri, version, it.next()) else {
        return Err(ParseError::StartLine);
    };
    let method: Method = method.parse().map_err(|_| ParseError::StartLine)?;
    let uri: Uri = uri.parse().map_err(|_| ParseError::StartLine)?;
    check_version(version)?;
    if uri.as_sip().is_some_and(|u| u.headers.is_some()) {
        return Err(ParseError::UriHeaders);
    }
    Ok(Message::Request(Request {
        method,
        uri,
        headers,
        body,
    }))
}

fn parse_status_line(rest: &str, headers: Headers, body: Vec<u8>) -> Result<Message, ParseError> {
    let (version, rest) = rest.split_once(' ').ok_or(ParseError::StartLine)?;
    check_version(&format!("SIP/{version}"))?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit());
    let status = code_ok
        .then(|| code.parse().ok().and_then(StatusCode::new))
        .flatten()
        .ok_or(ParseError::StartLine)?;
    Ok(Message::Response(Response {
        status,
        reason: reason.to_owned(),
        headers,
        body,
    }))
}

fn check_version(v: &str) -> Result<(), ParseError> {
    let (proto, num) = v.split_once('/').ok_or(ParseError::StartLine)?;
    if !proto.eq_ignore_ascii_case("SIP") {
        return Err(ParseError::StartLine);
    }
    if num != "2.0" {
        return Err(ParseError::Version(v.to_owned()));
    }
    Ok(())
}

/// The checks RFC 3261 §8.2 and §16.3 make before a message reaches a transaction.
fn validate(msg: &Message) -> Result<(), ParseError> {
    let h = msg.headers();
    h.top_via().ok_or(ParseError::Missing("Via"))?;
    h.from().ok_or(ParseError::Missing("From"))?;
    h.to().ok_or(ParseError::Missing("To"))?;
    h.call_id().ok_or(ParseError::Missing("Call-ID"))?;
    let cseq = h.cseq().ok_or(ParseError::Missing("CSeq"))?;
    if let Message::Request(r) = msg {
        if cseq.method != r.method {
            return Err(ParseError::CSeqMismatch);
        }
    }
    Ok(())
}

/// Builds the stateless error response for a request that failed to parse, echoing its raw Via,
/// From, To, Call-ID and CSeq lines (RFC 3261 §8.2.6.2). Via (where the response goes) and CSeq
/// (how the sender matches it to its transaction) must be there; a missing From, To or Call-ID
/// is the very error being reported (400 naming it), so the response goes without it. `None`
/// when the head is unreadable, Via or CSeq is missing, or it was a response.
pub fn reject_response(data: &[u8], err: &ParseError) -> Option<Vec<u8>> {
    let (head_end, _) = find_head_end(data)?;
    let head = std::str::from_utf8(&data[..head_end]).ok()?;
    let (start, rest) = head.trim_start_matches(['\r', '\n']).split_once('\n')?;
    if start.starts_with("SIP/") {
        return None;
    }
    let lines = header_lines(rest, &Limits::default()).ok()?;
    let wanted = ["Via", "From", "To", "Call-ID", "CSeq"];
    let mut out = Vec::with_capacity(512);
    let status = err.status();
    let _ = write!(out, "SIP/2.0 {} {}\r\n", status, status.reason());
    for name in wanted {
        let mut found = false;
        for (n, v) in lines.iter().filter(|(n, _)| n == name) {
            let _ = write!(out, "{n}: {v}\r\n");
            found = true;
        }
        if !found && matches!(name, "Via" | "CSeq") {
            return None;
        }
    }
    let _ = write!(
        out,
        "Warning: 399 landline \"{err}\"\r\nContent-Length: 0\r\n\r\n"
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1\r\n\
        f: <sip:alice@example.com>;tag=1\r\n\
        t: <sip:bob@example.com>\r\n\
        i: abc\r\n\
        CSeq: 1 INVITE\r\n\
        Max-Forwards: 70\r\n\
        l: 4\r\n\r\nbodyEXTRA";

    #[test]
    fn compact_names_ipv6_and_extra_bytes() {
        let Message::Request(r) = parse_message(INVITE.as_bytes(), &Limits::default()).unwrap()
        else {
            panic!("request expected");
        };
        assert_eq!(r.body, b"body");
        assert_eq!(r.headers.call_id(), Some("abc"));
        assert_eq!(r.headers.top_via().unwrap().port, Some(5060));
    }

    #[test]
    fn a_request_missing_call_id_gets_400_naming_it() {
        let no_call_id = INVITE.replace("i: abc\r\n", "");
        let err = parse_message(no_call_id.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(err, ParseError::Missing("Call-ID"));
        let reply =
            String::from_utf8(reject_response(no_call_id.as_bytes(), &err).unwrap()).unwrap();
        assert!(
            reply.starts_with("SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP"),
            "{reply}"
        );
        assert!(reply.contains("\r\nCSeq: 1 INVITE\r\n"), "{reply}");
        assert!(!reply.contains("\r\nCall-ID:"), "{reply}");
        assert!(
            reply.contains("Warning: 399 landline \"missing Call-ID header\""),
            "{reply}"
        );
        // Without Via the response has nowhere to go; without CSeq it matches no transaction.
        for header in [
            "v: SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1\r\n",
            "CSeq: 1 INVITE\r\n",
        ] {
            let broken = no_call_id.replace(header, "");
            let err = parse_message(broken.as_bytes(), &Limits::default()).unwrap_err();
            assert_eq!(reject_response(broken.as_bytes(), &err), None, "{broken}");
        }
    }

    #[test]
    fn truncated_datagram_is_rejected() {
        let short = INVITE.replace("l: 4", "l: 40");
        let err = parse_message(short.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, ParseError::Truncated { declared: 40, .. }));
        let reply = reject_response(short.as_bytes(), &err).unwrap();
        assert!(reply.starts_with(b"SIP/2.0 400 Bad Request\r\nVia: SIP/2.0/UDP"));
    }

    #[test]
    fn limits_map_to_513_and_413() {
        let tiny = Limits {
            max_message: 10,
            ..Limits::default()
        };
        let err = parse_message(INVITE.as_bytes(), &tiny).unwrap_err();
        assert_eq!(err.status().code(), 513);
        let few = Limits {
            max_headers: 3,
            ..Limits::default()
        };
        assert_eq!(
            parse_message(INVITE.as_bytes(), &few)
                .unwrap_err()
                .status()
                .code(),
            513
        );
        let small_body = Limits {
            max_body: 2,
            ..Limits::default()
        };
        assert_eq!(
            parse_message(INVITE.as_bytes(), &small_body)
                .unwrap_err()
                .status()
                .code(),
            413
        );
    }

    #[test]
    fn version_maps_to_505() {
        let v7 = INVITE.replace("SIP/2.0\r\n", "SIP/7.0\r\n");
        assert_eq!(
            parse_message(v7.as_bytes(), &Limits::default())
                .unwrap_err()
                .status()
                .code(),
            505
        );
    }
}
