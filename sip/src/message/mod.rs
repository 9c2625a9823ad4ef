//! SIP messages: typed at the edge, serialised canonically.
//!
//! Our own parser rather than a facade over rsip 0.4: rsip rejects IPv6 hosts, folded lines and
//! compact names and accepts truncated datagrams, so normalising around it would have been a
//! second parser anyway. This one is small, never panics on input, and maps every failure to the
//! SIP status a UA should answer with.

mod framing;
mod header;
mod parse;
pub(crate) mod text;
mod uri;

use std::fmt;
use std::io::Write as _;

pub use framing::StreamFramer;
pub use header::{CSeq, Contact, Header, Method, NameAddr, Transport, Via};
pub use parse::{Limits, ParseError, reject_response};
pub use text::Params;
pub use uri::{Host, SipUri, Uri};

/// A response status code (100–699).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 100 Trying.
    pub const TRYING: Self = Self(100);
    /// 180 Ringing.
    pub const RINGING: Self = Self(180);
    /// 183 Session Progress.
    pub const SESSION_PROGRESS: Self = Self(183);
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 401 Unauthorized.
    pub const UNAUTHORIZED: Self = Self(401);
    /// 407 Proxy Authentication Required.
    pub const PROXY_AUTH_REQUIRED: Self = Self(407);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 408 Request Timeout (also what a transaction timeout means).
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 413 Request Entity Too Large.
    pub const ENTITY_TOO_LARGE: Self = Self(413);
    /// 416 Unsupported URI Scheme.
    pub const UNSUPPORTED_URI_SCHEME: Self = Self(416);
    /// 420 Bad Extension.
    pub const BAD_EXTENSION: Self = Self(420);
    /// 422 Session Interval Too Small.
    pub const INTERVAL_TOO_SMALL: Self = Self(422);
    /// 423 Interval Too Brief.
    pub const INTERVAL_TOO_BRIEF: Self = Self(423);
    /// 480 Temporarily Unavailable.
    pub const TEMPORARILY_UNAVAILABLE: Self = Self(480);
    /// 481 Call/Transaction Does Not Exist.
    pub const NO_TRANSACTION: Self = Self(481);
    /// 482 Loop Detected.
    pub const LOOP_DETECTED: Self = Self(482);
    /// 483 Too Many Hops.
    pub const TOO_MANY_HOPS: Self = Self(483);
    /// 484 Address Incomplete.
    pub const ADDRESS_INCOMPLETE: Self = Self(484);
    /// 486 Busy Here.
    pub const BUSY_HERE: Self = Self(486);
    /// 487 Request Terminated.
    pub const REQUEST_TERMINATED: Self = Self(487);
    /// 488 Not Acceptable Here.
    pub const NOT_ACCEPTABLE_HERE: Self = Self(488);
    /// 491 Request Pending.
    pub const REQUEST_PENDING: Self = Self(491);
    /// 500 Server Internal Error.
    pub const SERVER_ERROR: Self = Self(500);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 505 Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    /// 513 Message Too Large.
    pub const MESSAGE_TOO_LARGE: Self = Self(513);

    /// A code in 100..=699, or `None`.
    pub fn new(code: u16) -> Option<Self> {
        (100..=699).contains(&code).then_some(Self(code))
    }

    /// The number.
    pub fn code(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// The RFC 3261 reason phrase for codes we send, so callers need not invent one.
    pub fn reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            413 => "Request Entity Too Large",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            422 => "Session Interval Too Small",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            491 => "Request Pending",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            502 => "Bad Gateway",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            _ => "Unknown",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The header fields of a message in wire order, with typed accessors for the ones SIP acts on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty set, for building messages.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Appends a header.
    pub fn push(&mut self, h: Header) {
        self.0.push(h);
    }

    /// Inserts a header before all others (a new top Via).
    pub fn push_front(&mut self, h: Header) {
        self.0.insert(0, h);
    }

    /// All headers in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Mutable access, for proxies and tests that rewrite messages.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Header> {
        self.0.iter_mut()
    }

    /// Removes every header named `name` (case-insensitive).
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name().eq_ignore_ascii_case(name));
    }

    /// Sets an untyped header, replacing any with that name.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.0.push(Header::Other(name.to_owned(), value.into()));
    }

    /// The first untyped header named `name`.
    pub fn get<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        self.get_all(name).next()
    }

    /// Every untyped header value named `name`.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter_map(move |h| match h {
            Header::Other(n, v) if n.eq_ignore_ascii_case(name) => Some(v.as_str()),
            _ => None,
        })
    }

    /// Whether a comma-separated token header (Supported, Require) lists `token`.
    pub fn has_token<'a>(&'a self, name: &'a str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// The Via entries, top first.
    pub fn vias(&self) -> impl Iterator<Item = &Via> {
        self.0.iter().filter_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
    }

    /// The top Via, which names this hop's transaction.
    pub fn top_via(&self) -> Option<&Via> {
        self.vias().next()
    }

    /// Mutable top Via, to add `received`/`rport` on receipt.
    pub fn top_via_mut(&mut self) -> Option<&mut Via> {
        self.0.iter_mut().find_map(|h| match h {
            Header::Via(v) => Some(v),
            _ => None,
        })
    }

    /// `From`.
    pub fn from(&self) -> Option<&NameAddr> {
        self.0.iter().find_map(|h| match h {
            Header::From(a) => Some(a),
            _ => None,
        })
    }

    /// `To`.
    pub fn to(&self) -> Option<&NameAddr> {
        self.0.iter().find_map(|h| match h {
            Header::To(a) => Some(a),
            _ => None,
        })
    }

    /// Mutable `To`, to add the local tag to a response.
    pub fn to_mut(&mut self) -> Option<&mut NameAddr> {
        self.0.iter_mut().find_map(|h| match h {
            Header::To(a) => Some(a),
            _ => None,
        })
    }

    /// `Call-ID`.
    pub fn call_id(&self) -> Option<&str> {
        self.0.iter().find_map(|h| match h {
            Header::CallId(c) => Some(c.as_str()),
            _ => None,
        })
    }

    /// `CSeq`.
    pub fn cseq(&self) -> Option<&CSeq> {
        self.0.iter().find_map(|h| match h {
            Header::CSeq(c) => Some(c),
            _ => None,
        })
    }

    /// `Max-Forwards`.
    pub fn max_forwards(&self) -> Option<u8> {
        self.0.iter().find_map(|h| match h {
            Header::MaxForwards(n) => Some(*n),
            _ => None,
        })
    }

    /// The Contact addresses (not the wildcard).
    pub fn contacts(&self) -> impl Iterator<Item = &NameAddr> {
        self.0.iter().filter_map(|h| match h {
            Header::Contact(Contact::Addr(a)) => Some(a),
            _ => None,
        })
    }

    /// The Record-Route entries in order.
    pub fn record_routes(&self) -> impl Iterator<Item = &NameAddr> {
        self.0.iter().filter_map(|h| match h {
            Header::RecordRoute(a) => Some(a),
            _ => None,
        })
    }

    /// An untyped header parsed as a number (Expires, RSeq, Min-Expires...).
    pub fn number<'a>(&'a self, name: &'a str) -> Option<u32> {
        let v = self.get(name)?;
        let v = v.split(';').next()?.trim();
        v.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| v.parse().ok())
            .flatten()
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Header fields (Content-Length excluded: it is derived from the body).
    pub headers: Headers,
    /// The body bytes.
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as received or chosen.
    pub reason: String,
    /// Header fields (Content-Length excluded).
    pub headers: Headers,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// A response to `req` with the headers RFC 3261 §8.2.6 copies (Via, From, To, Call-ID,
    /// CSeq) and the standard reason phrase.
    pub fn to_request(req: &Request, status: StatusCode) -> Self {
        let mut headers = Headers::new();
        for h in req.headers.iter() {
            if matches!(
                h,
                Header::Via(_)
                    | Header::From(_)
                    | Header::To(_)
                    | Header::CallId(_)
                    | Header::CSeq(_)
            ) || (status.code() > 100 && matches!(h, Header::RecordRoute(_)))
            {
                headers.push(h.clone());
            }
        }
        Self {
            status,
            reason: status.reason().to_owned(),
            headers,
            body: Vec::new(),
        }
    }
}

/// Either kind of message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses one complete message (a datagram, or a frame from [`StreamFramer`]).
    pub fn parse(data: &[u8], limits: &Limits) -> Result<Self, ParseError> {
        parse::parse_message(data, limits)
    }

    /// The headers of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }

    /// Serialises to wire bytes, appending to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }

    /// Serialises to a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_to(&mut out);
        out
    }
}

impl Request {
    /// Serialises to wire bytes with a computed Content-Length, appending to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        // Writing into a Vec cannot fail.
        let _ = write!(out, "{} {} SIP/2.0\r\n", self.method, self.uri);
        write_tail(&self.headers, &self.body, out);
    }

    /// Serialises to a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        self.write_to(&mut out);
        out
    }
}

impl Response {
    /// Serialises to wire bytes with a computed Content-Length, appending to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_tail(&self.headers, &self.body, out);
    }

    /// Serialises to a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512);
        self.write_to(&mut out);
        out
    }
}

fn write_tail(headers: &Headers, body: &[u8], out: &mut Vec<u8>) {
    for h in headers.iter() {
        match h {
            // Text headers are most of a message: copy them without the formatting machinery.
            Header::Other(name, value) => {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            Header::CallId(value) => {
                out.extend_from_slice(b"Call-ID: ");
                out.extend_from_slice(value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
            _ => {
                let _ = write!(out, "{h}\r\n");
            }
        }
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    out.extend_from_slice(body);
}
