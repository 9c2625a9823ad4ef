//! SIP and other URIs (RFC 3261 §19.1), including IPv6 references, which rsip 0.4 rejects.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::text::Params;

/// A host as written in a URI or Via: a domain name or an IP literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, kept as written (compare with `eq_ignore_ascii_case`).
    Domain(String),
    /// A dotted-quad IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 reference, written in brackets.
    V6(Ipv6Addr),
}

impl Host {
    /// The IP address, if this host is a literal; transports need it without DNS.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }

    /// Parses a host: `[v6]`, dotted quad, or a hostname of alphanumerics, `-`, `.` and `_`.
    pub fn parse(s: &str) -> Option<Self> {
        if let Some(inner) = s.strip_prefix('[') {
            return inner.strip_suffix(']')?.parse().ok().map(Host::V6);
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return s.parse().ok().map(Host::V4);
        }
        let valid = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
            && !s.starts_with(['-', '.']);
        valid.then(|| Host::Domain(s.to_owned()))
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI, split into the parts routing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, still escaped as on the wire.
    pub user: Option<String>,
    /// The password part (deprecated by RFC 3261 but legal), still escaped.
    pub password: Option<String>,
    /// Where requests to this URI go.
    pub host: Host,
    /// An explicit port; `None` means the transport's default.
    pub port: Option<u16>,
    /// URI parameters such as `transport`, `lr`, `maddr`.
    pub params: Params,
    /// The `?headers` part, kept opaque; it is illegal in a Request-URI.
    pub headers: Option<String>,
}

impl SipUri {
    /// A URI for `user@host:port`, the shape a UA builds for Contact and Request-URI.
    pub fn new(user: Option<&str>, host: Host, port: Option<u16>) -> Self {
        Self {
            secure: false,
            user: user.map(str::to_owned),
            password: None,
            host,
            port,
            params: Params::new(),
            headers: None,
        }
    }

    fn parse_rest(secure: bool, s: &str) -> Option<Self> {
        let (userinfo, hostpart) = match s.find('@') {
            Some(at) => (Some(&s[..at]), &s[at + 1..]),
            None => (None, s),
        };
        let (user, password) = match userinfo {
            Some(ui) => {
                let (u, p) = match ui.split_once(':') {
                    Some((u, p)) => (u, Some(p.to_owned())),
                    None => (ui, None),
                };
                if u.is_empty() || u.bytes().any(|b| b <= b' ' || b"<>\"".contains(&b)) {
                    return None;
                }
                (Some(u.to_owned()), p)
            }
            None => (None, None),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((h, q)) => (h, Some(q.to_owned())),
            None => (hostpart, None),
        };
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], Params::parse(&hostpart[i..])?),
            None => (hostpart, Params::new()),
        };
        let (host, port) = split_host_port(hostport)?;
        Some(Self {
            secure,
            user,
            password,
            host: Host::parse(host)?,
            port,
            params,
            headers,
        })
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}", self.params)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

/// Any URI a SIP message may carry: SIP URIs parsed, the rest (`tel:`, `isbn:`...) kept opaque.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absolute URI; a UA answers 416 when one is its Request-URI.
    Other {
        /// The scheme, e.g. `tel`.
        scheme: String,
        /// Everything after the colon, unparsed.
        rest: String,
    },
}

impl Uri {
    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other { .. } => None,
        }
    }
}

impl From<SipUri> for Uri {
    fn from(u: SipUri) -> Self {
        Uri::Sip(u)
    }
}

impl FromStr for Uri {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (scheme, rest) = s.split_once(':').ok_or(())?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok
            || rest.is_empty()
            || rest.bytes().any(|b| b <= b' ' || b == b'<' || b == b'>')
        {
            return Err(());
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            let secure = scheme.eq_ignore_ascii_case("sips");
            SipUri::parse_rest(secure, rest).map(Uri::Sip).ok_or(())
        } else {
            Ok(Uri::Other {
                scheme: scheme.to_owned(),
                rest: rest.to_owned(),
            })
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

/// Splits `host[:port]`, where host may be a bracketed IPv6 reference.
pub(crate) fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')? + 1;
        match &s[end..] {
            "" => (&s[..end], None),
            p => (&s[..end], Some(p.strip_prefix(':')?)),
        }
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    let port = match port {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
        None => None,
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_uri_round_trips() {
        let s = "sip:[2001:db8::10]:5070;transport=udp";
        let uri: Uri = s.parse().unwrap();
        let sip = uri.as_sip().unwrap();
        assert_eq!(sip.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(sip.port, Some(5070));
        assert_eq!(uri.to_string(), s);
    }

    #[test]
    fn user_password_params_headers() {
        let uri: Uri = "sips:alice:pw@example.com;lr?subject=x".parse().unwrap();
        let sip = uri.as_sip().unwrap();
        assert!(sip.secure);
        assert_eq!(sip.user.as_deref(), Some("alice"));
        assert_eq!(sip.password.as_deref(), Some("pw"));
        assert!(sip.params.contains("lr"));
        assert_eq!(sip.headers.as_deref(), Some("subject=x"));
    }

    #[test]
    fn rejects_bad_hosts_and_ports() {
        assert!("sip:user@exa mple.com".parse::<Uri>().is_err());
        assert!("sip:user@example.com:99999".parse::<Uri>().is_err());
        assert!("sip:user@[::1".parse::<Uri>().is_err());
        assert!("<sip:user@example.com>".parse::<Uri>().is_err());
    }

    #[test]
    fn other_schemes_stay_opaque() {
        let uri: Uri = "tel:+12125551212".parse().unwrap();
        assert_eq!(
            uri,
            Uri::Other {
                scheme: "tel".into(),
                rest: "+12125551212".into()
            }
        );
    }
}
