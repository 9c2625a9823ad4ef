//! Typed header values: the ones transactions and dialogs act on are parsed at the edge, every
//! other header is kept as its (unfolded) text.

use std::fmt;
use std::str::FromStr;

use super::text::{Params, is_token, split_unquoted, take_quoted, write_quoted};
use super::uri::{Host, Uri, split_host_port};

/// A SIP method; unknown extension methods are kept by name (a UA answers them 501).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Starts a session (RFC 3261).
    Invite,
    /// Confirms a final response to INVITE.
    Ack,
    /// Ends a session.
    Bye,
    /// Cancels a pending INVITE.
    Cancel,
    /// Queries capabilities; also a keep-alive probe for trunks.
    Options,
    /// Binds an address of record to contacts.
    Register,
    /// Acknowledges a reliable provisional response (RFC 3262).
    Prack,
    /// Changes session parameters before or after answer (RFC 3311).
    Update,
    /// Mid-dialog application information (RFC 6086), e.g. DTMF.
    Info,
    /// Any other method, kept as written (case-sensitive).
    Other(String),
}

impl Method {
    /// The method as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Prack => "PRACK",
            Method::Update => "UPDATE",
            Method::Info => "INFO",
            Method::Other(s) => s,
        }
    }
}

impl FromStr for Method {
    type Err = ();

    /// Methods are case-sensitive tokens (RFC 3261 §7.1).
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "PRACK" => Method::Prack,
            "UPDATE" => Method::Update,
            "INFO" => Method::Info,
            other if is_token(other) => Method::Other(other.to_owned()),
            _ => return Err(()),
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The transport named in a Via and used to send; decides whether timers retransmit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Transport {
    /// Unreliable: transactions retransmit.
    Udp,
    /// Reliable stream.
    Tcp,
    /// TCP with TLS.
    Tls,
    /// SCTP (parsed, not used by landline).
    Sctp,
    /// WebSocket (RFC 7118).
    Ws,
    /// Secure WebSocket (RFC 7118).
    Wss,
    /// Any other transport token.
    Other(String),
}

impl Transport {
    /// Whether the transport delivers reliably, so RFC 3261 retransmission timers stay off.
    pub fn is_reliable(&self) -> bool {
        !matches!(self, Transport::Udp | Transport::Other(_))
    }

    /// The Via token (upper case).
    pub fn as_str(&self) -> &str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other(s) => s,
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_uppercase().as_str() {
            "UDP" => Transport::Udp,
            "TCP" => Transport::Tcp,
            "TLS" => Transport::Tls,
            "SCTP" => Transport::Sctp,
            "WS" => Transport::Ws,
            "WSS" => Transport::Wss,
            _ if is_token(s) => Transport::Other(s.to_owned()),
            _ => return None,
        })
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Via entry: where the response goes and which transaction it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport the request was sent over.
    pub transport: Transport,
    /// The sent-by host.
    pub host: Host,
    /// The sent-by port.
    pub port: Option<u16>,
    /// `branch`, `received`, `rport` and others.
    pub params: Params,
}

impl Via {
    /// The transaction id (RFC 3261 §17.2.3).
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// `host:port` as a string, the sent-by that transaction matching compares.
    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.to_string(),
        }
    }
}

impl FromStr for Via {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut parts = s.splitn(3, '/');
        let (name, version, rest) = (parts.next(), parts.next(), parts.next());
        let (name, version, rest) = (name.ok_or(())?, version.ok_or(())?, rest.ok_or(())?);
        if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
            return Err(());
        }
        let rest = rest.trim_start();
        let end = rest.find(|c: char| c.is_ascii_whitespace()).ok_or(())?;
        let transport = Transport::parse(&rest[..end]).ok_or(())?;
        let rest = rest[end..].trim_start();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), Params::parse(&rest[i..]).ok_or(())?),
            None => (rest.trim(), Params::new()),
        };
        let (host, port) = split_host_port(sent_by).ok_or(())?;
        Ok(Via {
            transport,
            host: Host::parse(host).ok_or(())?,
            port,
            params,
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        write!(f, "{}", self.params)
    }
}

/// `"Display" <uri>;params`: From, To, Contact, Route and Record-Route values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped.
    pub display: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters (`tag`, `expires`, `q`...), not URI parameters.
    pub params: Params,
}

impl NameAddr {
    /// A bare address, as a UA builds for To or Contact.
    pub fn new(uri: impl Into<Uri>) -> Self {
        Self {
            display: None,
            uri: uri.into(),
            params: Params::new(),
        }
    }

    /// The dialog tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }
}

impl FromStr for NameAddr {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let s = s.trim();
        let (display, rest) = if s.starts_with('"') {
            let (d, rest) = take_quoted(s).ok_or(())?;
            (Some(d), rest.trim_start())
        } else if let Some(lt) = s.find('<') {
            let d = s[..lt].trim();
            let words_ok = d.split_ascii_whitespace().all(is_token);
            if !words_ok {
                return Err(());
            }
            ((!d.is_empty()).then(|| d.to_owned()), &s[lt..])
        } else {
            (None, s)
        };
        if let Some(inner) = rest.strip_prefix('<') {
            let end = inner.find('>').ok_or(())?;
            // No LWS inside the brackets (RFC 4475 §3.1.2.14).
            let uri = inner[..end].parse().map_err(|_| ())?;
            let params = Params::parse(&inner[end + 1..]).ok_or(())?;
            return Ok(NameAddr {
                display,
                uri,
                params,
            });
        }
        if display.is_some() {
            return Err(());
        }
        // A bare addr-spec: parameters after the first `;` belong to the header (RFC 3261 §20).
        let (uri, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), Params::parse(&rest[i..]).ok_or(())?),
            None => (rest, Params::new()),
        };
        // A URI with `?` or `,` must be in brackets (RFC 3261 §20.10).
        if uri.contains(['?', ',']) {
            return Err(());
        }
        Ok(NameAddr {
            display: None,
            uri: uri.parse().map_err(|_| ())?,
            params,
        })
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write_quoted(f, d)?;
            f.write_str(" ")?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A Contact value: an address, or `*` (REGISTER removing every binding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    /// `Contact: *`.
    Wildcard,
    /// A contact address with its parameters (`expires`, `q`).
    Addr(NameAddr),
}

impl fmt::Display for Contact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Contact::Wildcard => f.write_str("*"),
            Contact::Addr(a) => a.fmt(f),
        }
    }
}

/// The CSeq: orders requests in a dialog and names the method a response answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31 (RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The request method.
    pub method: Method,
}

impl FromStr for CSeq {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let mut it = s.split_ascii_whitespace();
        let (num, method) = (it.next().ok_or(())?, it.next().ok_or(())?);
        if it.next().is_some() || !num.bytes().all(|b| b.is_ascii_digit()) || num.len() > 10 {
            return Err(());
        }
        let seq: u64 = num.parse().map_err(|_| ())?;
        if seq >= 1 << 31 {
            return Err(());
        }
        Ok(CSeq {
            seq: seq as u32,
            method: method.parse()?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// One header field. Comma-separated lists of Via, Contact, Route and Record-Route are split into
/// one entry per value, so code never re-splits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// `Via`.
    Via(Via),
    /// `From`.
    From(NameAddr),
    /// `To`.
    To(NameAddr),
    /// `Call-ID`.
    CallId(String),
    /// `CSeq`.
    CSeq(CSeq),
    /// `Max-Forwards` (0–255).
    MaxForwards(u8),
    /// `Contact`.
    Contact(Contact),
    /// `Route`.
    Route(NameAddr),
    /// `Record-Route`.
    RecordRoute(NameAddr),
    /// Any other header: canonical name (or as written when unknown) and unfolded value.
    Other(String, String),
}

impl Header {
    /// The header's name as serialised.
    pub fn name(&self) -> &str {
        match self {
            Header::Via(_) => "Via",
            Header::From(_) => "From",
            Header::To(_) => "To",
            Header::CallId(_) => "Call-ID",
            Header::CSeq(_) => "CSeq",
            Header::MaxForwards(_) => "Max-Forwards",
            Header::Contact(_) => "Contact",
            Header::Route(_) => "Route",
            Header::RecordRoute(_) => "Record-Route",
            Header::Other(n, _) => n,
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.name())?;
        match self {
            Header::Via(v) => v.fmt(f),
            Header::From(a) | Header::To(a) | Header::Route(a) | Header::RecordRoute(a) => a.fmt(f),
            Header::CallId(s) | Header::Other(_, s) => f.write_str(s),
            Header::CSeq(c) => c.fmt(f),
            Header::MaxForwards(n) => write!(f, "{n}"),
            Header::Contact(c) => c.fmt(f),
        }
    }
}

/// Splits a list-valued header into its values; empty elements (`a,,b`) are an error.
pub(crate) fn split_list(value: &str) -> Option<Vec<&str>> {
    let parts = split_unquoted(value, b',');
    parts.iter().all(|p| !p.trim().is_empty()).then_some(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v: Via = "SIP  /   2.0\t/ TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8"
            .parse()
            .unwrap();
        assert_eq!(v.transport, Transport::Tcp);
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/TCP spindle.example.com;branch=z9hG4bK9ikj8"
        );
    }

    #[test]
    fn via_ipv6_and_rport() {
        let v: Via = "SIP/2.0/UDP [2001:db8::9]:5060;branch=z9hG4bKx;rport"
            .parse()
            .unwrap();
        assert_eq!(v.port, Some(5060));
        assert_eq!(v.params.get("rport"), Some(None));
        assert_eq!(v.sent_by(), "[2001:db8::9]:5060");
    }

    #[test]
    fn name_addr_forms() {
        let a: NameAddr = r#""J Rosenberg \\\"" <sip:jdrosen@example.com>;tag=98"#
            .parse()
            .unwrap();
        assert_eq!(a.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(a.tag(), Some("98"));
        let b: NameAddr = "sip:bob@example.com;tag=1".parse().unwrap();
        assert_eq!(b.tag(), Some("1"));
        assert!(b.uri.as_sip().unwrap().params.is_empty());
        let c: NameAddr = "Bob Smith <sip:bob@example.com>".parse().unwrap();
        assert_eq!(c.display.as_deref(), Some("Bob Smith"));
        assert!("\"unbalanced <sip:a@b>".parse::<NameAddr>().is_err());
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!("0009 INVITE".parse::<CSeq>().unwrap().seq, 9);
        assert!("2147483648 INVITE".parse::<CSeq>().is_err());
        assert!("36893488147419103232 REGISTER".parse::<CSeq>().is_err());
        assert!("1".parse::<CSeq>().is_err());
    }
}
