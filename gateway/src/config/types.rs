//! Values that carry meaning, parsed once at load so the rest of the gateway never checks them
//! again: phone numbers, names, addresses, address ranges and the config's keywords.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::Deserialize;

/// Why one value was refused and what to write instead.
///
/// Its text is `problem; fix`: the loader splits it back into the two parts of a
/// [`ConfigError`](super::ConfigError), which adds the file and the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError {
    /// What is wrong with the value.
    pub problem: String,
    /// What to write instead.
    pub fix: String,
}

impl ValueError {
    pub(crate) fn new(problem: impl Into<String>, fix: impl Into<String>) -> Self {
        ValueError {
            problem: problem.into(),
            fix: fix.into(),
        }
    }

    /// A word that is not one of `words`, with the closest one suggested.
    pub(crate) fn keyword(value: &str, words: &[&str]) -> Self {
        let list = words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let fix = match super::error::closest(value, words.iter().copied()) {
            Some(best) => format!("did you mean `{best}`? (one of {list})"),
            None => format!("write one of {list}"),
        };
        ValueError::new(format!("`{value}` is not a known value"), fix)
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}; {}", self.problem, self.fix)
    }
}

impl std::error::Error for ValueError {}

/// A closed set of words in the config file (`kind = "ip"`), parsed with a helpful error.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $word:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every word the config file accepts for this setting.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word the config file uses for this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( Self::$variant => $word, )+
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::config::ValueError;

            fn try_from(word: String) -> Result<Self, Self::Error> {
                match word.as_str() {
                    $( $word => Ok(Self::$variant), )+
                    _ => Err($crate::config::ValueError::keyword(&word, Self::WORDS)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use keyword_enum;

/// A phone number in E.164 form: `+` and 8 to 15 digits, the first not `0`.
///
/// Every number inside the gateway is one of these; the formats carriers want are produced from
/// it at the trunk edge.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct E164(String);

impl E164 {
    /// The digits after the `+`.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// The digits after the country code, when the number is in `country`.
    pub fn national_digits(&self, country: &CountryCode) -> Option<&str> {
        self.0.strip_prefix(country.as_str())
    }

    /// Normalises a number a user dialled, using their country for national numbers.
    ///
    /// Accepts `+CC…`, the international prefix (`00`, or `011` in country 1), a national number
    /// with its trunk prefix `0` (or, in country 1, ten digits); spaces, dots, dashes and
    /// brackets are ignored. Anything else (short codes, extensions) gives `None`.
    pub fn from_dialled(dialled: &str, country: &CountryCode) -> Option<E164> {
        let cleaned: String = dialled
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        if cleaned.starts_with('+') {
            return cleaned.parse().ok();
        }
        if !cleaned.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let nanp = country.as_str() == "1";
        let international = if nanp { "011" } else { "00" };
        let e164 = if let Some(rest) = cleaned.strip_prefix(international) {
            rest.to_string()
        } else if nanp && cleaned.len() == 10 {
            format!("1{cleaned}")
        } else if nanp && cleaned.len() == 11 && cleaned.starts_with('1') {
            cleaned
        } else if let (false, Some(rest)) = (nanp, cleaned.strip_prefix('0')) {
            format!("{country}{rest}")
        } else {
            return None;
        };
        format!("+{e164}").parse().ok()
    }
}

impl FromStr for E164 {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, ValueError> {
        let example = "write it as `+` and the full international number, e.g. `+15551230001`";
        let Some(digits) = text.strip_prefix('+') else {
            return Err(ValueError::new(
                format!("`{text}` is not an E.164 number (it must start with `+`)"),
                example,
            ));
        };
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ValueError::new(
                format!("`{text}` has characters other than digits after the `+`"),
                example,
            ));
        }
        if !(8..=15).contains(&digits.len()) || digits.starts_with('0') {
            return Err(ValueError::new(
                format!(
                    "`{text}` has {} digits; E.164 numbers have 8 to 15, the first not 0",
                    digits.len()
                ),
                example,
            ));
        }
        Ok(E164(digits.to_string()))
    }
}

impl TryFrom<String> for E164 {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        text.parse()
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "+{}", self.0)
    }
}

/// A country calling code (`1`, `44`, `353`): how national numbers become E.164.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct CountryCode(String);

impl CountryCode {
    /// The code's digits, without `+`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for CountryCode {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        let digits = text.strip_prefix('+').unwrap_or(&text);
        if (1..=3).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
        {
            Ok(CountryCode(digits.to_string()))
        } else {
            Err(ValueError::new(
                format!("`{text}` is not a country calling code"),
                "write the 1 to 3 digit dial code, e.g. `1` (North America) or `44` (UK)",
            ))
        }
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a name that is used as a key, in logs and as a metric label.
fn name(text: &str, what: &str, extra: &[char]) -> Result<(), ValueError> {
    let ok = !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(&c));
    if ok {
        Ok(())
    } else {
        let extra: String = extra.iter().collect();
        Err(ValueError::new(
            format!("`{text}` is not a valid {what}"),
            format!("use 1 to 64 letters, digits and `_-{extra}`"),
        ))
    }
}

/// A trunk's name: how routes refer to it, and its metric label.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct TrunkName(String);

impl TrunkName {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TrunkName {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        name(&text, "trunk name", &['.']).map(|()| TrunkName(text))
    }
}

impl fmt::Display for TrunkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A client's SIP username (the user part of its address and its digest username).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Username(String);

impl Username {
    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        name(&text, "username", &['.', '+']).map(|()| Username(text))
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Dial digits (`0-9`, `*`, `#`): a built-in number, a route prefix or a tech prefix.
///
/// A route prefix may be written with a leading `+`, which is dropped: routes match E.164 digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct Digits(String);

impl Digits {
    /// The digits as written (without a leading `+`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for `""` (the default route, or no prefix).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl TryFrom<String> for Digits {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        let digits = text.strip_prefix('+').unwrap_or(&text);
        if digits.len() <= 32
            && digits
                .chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        {
            Ok(Digits(digits.to_string()))
        } else {
            Err(ValueError::new(
                format!("`{text}` is not a string of dial digits"),
                "use only the digits 0-9, `*` and `#`",
            ))
        }
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A SIP peer's `host:port`: an IP literal (IPv6 in brackets) or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct HostPort {
    /// The host: an IP address or a DNS name (resolved when the trunk is used, A/AAAA only).
    pub host: String,
    /// The port.
    pub port: u16,
}

impl HostPort {
    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl TryFrom<String> for HostPort {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        let fix = "write `host:port`, e.g. `203.0.113.5:5060`, `sip.carrier.example:5060` or `[2001:db8::5]:5060`";
        let bad = |problem: &str| ValueError::new(format!("`{text}` {problem}"), fix);
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, port) = rest
                .split_once("]:")
                .ok_or_else(|| bad("has no `]:port` after the IPv6 address"))?;
            ip.parse::<std::net::Ipv6Addr>()
                .map_err(|_| bad("has an invalid IPv6 address"))?;
            (ip, port)
        } else {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| bad("has no port"))?;
            if host.contains(':') {
                return Err(bad("is an IPv6 address without brackets"));
            }
            let dns_ok = host
                .split('.')
                .all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
            if !dns_ok {
                return Err(bad("does not have a valid host name"));
            }
            (host, port)
        };
        let port: u16 = port.parse().map_err(|_| bad("has an invalid port"))?;
        if port == 0 {
            return Err(bad("has port 0"));
        }
        Ok(HostPort {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// An address range in CIDR form (`192.0.2.0/24`), or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// The range holding exactly `ip`.
    pub fn host(ip: IpAddr) -> Cidr {
        let prefix = if ip.is_ipv4() { 32 } else { 128 };
        Cidr {
            network: ip,
            prefix,
        }
    }

    /// True when `ip` is in the range (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range().contains(ip)
    }

    /// The range as the SIP stack's authenticator takes it.
    pub fn range(&self) -> landline_sip::ua::IpRange {
        landline_sip::ua::IpRange::new(self.network, self.prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = ValueError;

    fn try_from(text: String) -> Result<Self, ValueError> {
        let fix = "write an address or a range, e.g. `203.0.113.5` or `203.0.113.0/24`";
        let (addr, prefix) = text.split_once('/').unwrap_or((&text, ""));
        let network: IpAddr = addr
            .parse()
            .map_err(|_| ValueError::new(format!("`{text}` is not an IP address"), fix))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = if prefix.is_empty() {
            max
        } else {
            prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
                ValueError::new(format!("`{text}` has a prefix length over {max}"), fix)
            })?
        };
        let cidr = Cidr { network, prefix };
        let zeroed = zero_host_bits(network, prefix);
        if zeroed != network {
            return Err(ValueError::new(
                format!("`{text}` has bits set after the prefix"),
                format!("did you mean `{zeroed}/{prefix}`?"),
            ));
        }
        Ok(cidr)
    }
}

fn zero_host_bits(ip: IpAddr, prefix: u8) -> IpAddr {
    fn zero<const N: usize>(mut octets: [u8; N], prefix: u8) -> [u8; N] {
        let mut bits = usize::from(prefix);
        for octet in octets.iter_mut() {
            let keep = bits.min(8);
            *octet &= if keep == 0 { 0 } else { 0xffu8 << (8 - keep) };
            bits -= keep;
        }
        octets
    }
    match ip {
        IpAddr::V4(v4) => IpAddr::from(zero(v4.octets(), prefix)),
        IpAddr::V6(v6) => IpAddr::from(zero(v6.octets(), prefix)),
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}
