//! Who may call and where calls go: `[[users]]`, `[[trunks]]` and `[[routes]]`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use landline_codecs::G711Law;
use serde::Deserialize;

use super::ConfigError;
use super::layers::Layers;
use super::types::{Cidr, CountryCode, Digits, E164, HostPort, TrunkName, Username, keyword_enum};

/// `[[users]]`: a client account.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The SIP username (and digest username).
    pub username: Username,
    /// The digest password.
    pub password: String,
    /// The numbers that ring this user, and the first one is its caller ID.
    #[serde(default)]
    pub dids: Vec<E164>,
    /// The user's country, for turning dialled national numbers into E.164.
    pub country: CountryCode,
    /// A name shown to the people this user calls internally and in logs.
    #[serde(default)]
    pub display_name: Option<String>,
}

keyword_enum! {
    /// How a trunk is reached and how it knows us.
    pub enum TrunkKind {
        /// Peered by IP address: the carrier sends from known addresses (`allow`).
        Ip = "ip",
        /// We REGISTER to the carrier with `auth`, and it sends calls to that registration.
        Registration = "registration",
    }
}

keyword_enum! {
    /// The SIP transport towards a trunk.
    #[derive(Default)]
    pub enum TrunkTransport {
        /// UDP.
        #[default]
        Udp = "udp",
        /// TCP.
        Tcp = "tcp",
        /// TLS over TCP.
        Tls = "tls",
    }
}

keyword_enum! {
    /// A G.711 codec a trunk may negotiate.
    pub enum TrunkCodec {
        /// µ-law.
        Pcmu = "pcmu",
        /// A-law.
        Pcma = "pcma",
    }
}

impl TrunkCodec {
    /// The G.711 law for the codecs crate.
    pub fn law(self) -> G711Law {
        match self {
            TrunkCodec::Pcmu => G711Law::Mu,
            TrunkCodec::Pcma => G711Law::A,
        }
    }
}

keyword_enum! {
    /// How numbers are written in the trunk's Request-URI, To and From.
    #[derive(Default)]
    pub enum NumberFormat {
        /// `+15551230001`.
        #[default]
        E164 = "e164",
        /// `15551230001`.
        E164NoPlus = "e164_no_plus",
        /// National form in the trunk's `country`: `national_prefix` then the national digits;
        /// numbers in other countries are sent as `00`/`011` + E.164 digits.
        National = "national",
    }
}

keyword_enum! {
    /// What the trunk leg's From user part carries.
    #[derive(Default)]
    pub enum FromUser {
        /// The calling user's first DID (in the trunk's number format).
        #[default]
        Did = "did",
        /// The trunk's `auth.username` (carriers that check the From against the account);
        /// pair it with `pai = true` so the DID still reaches the carrier.
        AuthUsername = "auth_username",
    }
}

keyword_enum! {
    /// Caller-ID privacy requested from the carrier (RFC 3323/3325).
    #[derive(Default)]
    pub enum Privacy {
        /// Show the caller's number.
        #[default]
        None = "none",
        /// `Privacy: id`: the carrier withholds the number from the callee; From is anonymous,
        /// and the DID still goes to the carrier in P-Asserted-Identity (whatever `pai` says),
        /// since the carrier must know whose number it withholds (RFC 3325 §9.3).
        Id = "id",
    }
}

/// Digest credentials on a trunk.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkAuth {
    /// The account's username.
    pub username: String,
    /// The account's password.
    pub password: String,
    /// Answer only challenges from this realm; any realm when unset.
    #[serde(default)]
    pub realm: Option<String>,
    /// Also challenge the carrier's INVITEs with these credentials (peers that authenticate
    /// both ways).
    #[serde(default)]
    pub challenge_inbound: bool,
}

/// `[[trunks]]`: a carrier connection.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkConfig {
    /// How routes refer to it; also its metric label.
    pub name: TrunkName,
    /// IP-peered or registration.
    pub kind: TrunkKind,
    /// The single-address form; merged into `addresses` at load, then `None`.
    #[serde(default)]
    pub address: Option<HostPort>,
    /// The carrier's SIP addresses, tried in order (failover within the trunk). After load this
    /// holds every address, `address` included, and is never empty.
    #[serde(default)]
    pub addresses: Vec<HostPort>,
    /// The transport to use.
    #[serde(default)]
    pub transport: TrunkTransport,
    /// TLS only: a PEM file of the CA certificates that may sign the carrier's certificate
    /// (a private CA). When unset, the public web PKI roots built into landline are trusted.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// TLS only: the name the carrier's certificate must carry (SNI and verification); each
    /// address's host by default. An IP address here is checked against the certificate's
    /// IP addresses.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// Sources allowed to send calls in. For IP trunks it defaults (at load) to the addresses,
    /// which must then be IP literals; for registration trunks to those addresses that are IP
    /// literals (the registrar is usually the proxy that delivers the registration's calls;
    /// a carrier that sends from elsewhere needs its IPs listed here).
    #[serde(default)]
    pub allow: Vec<Cidr>,
    /// Digest credentials: answered when the carrier challenges (and used to REGISTER).
    #[serde(default)]
    pub auth: Option<TrunkAuth>,
    /// Registration lifetime asked for (registration trunks).
    #[serde(default = "default_expires", with = "humantime_serde")]
    pub expires: Duration,
    /// Codecs offered, preferred first.
    #[serde(default = "default_codecs")]
    pub codecs: Vec<TrunkCodec>,
    /// How numbers are written towards the carrier.
    #[serde(default)]
    pub number_format: NumberFormat,
    /// The trunk's country (required for `number_format = "national"`).
    #[serde(default)]
    pub country: Option<CountryCode>,
    /// The national trunk prefix for the national format (`0` in most countries; default
    /// `0`, or nothing in country 1).
    #[serde(default)]
    pub national_prefix: Option<Digits>,
    /// Digits put before every called number (carriers that select a route by prefix).
    #[serde(default)]
    pub tech_prefix: Digits,
    /// What the From user carries.
    #[serde(default)]
    pub from_user: FromUser,
    /// Send P-Asserted-Identity with the caller's DID.
    #[serde(default)]
    pub pai: bool,
    /// Caller-ID privacy.
    #[serde(default)]
    pub privacy: Privacy,
    /// Most concurrent calls (both ways); unlimited when unset.
    #[serde(default)]
    pub max_calls: Option<u32>,
    /// OPTIONS probe period; `0s` disables probing (the trunk is always up).
    #[serde(default = "default_probe_interval", with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Consecutive answered probes before a down trunk is up again.
    #[serde(default = "default_probe_up_after")]
    pub probe_up_after: u32,
    /// Consecutive failed probes before the trunk is marked down.
    #[serde(default = "default_probe_down_after")]
    pub probe_down_after: u32,
}

fn default_expires() -> Duration {
    Duration::from_secs(3600)
}
fn default_codecs() -> Vec<TrunkCodec> {
    vec![TrunkCodec::Pcmu, TrunkCodec::Pcma]
}
fn default_probe_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_probe_up_after() -> u32 {
    2
}
fn default_probe_down_after() -> u32 {
    3
}

impl TrunkConfig {
    /// The national trunk prefix in effect (see `national_prefix`).
    pub fn national_prefix(&self) -> &str {
        match (&self.national_prefix, &self.country) {
            (Some(p), _) => p.as_str(),
            (None, Some(c)) if c.as_str() == "1" => "",
            (None, _) => "0",
        }
    }

    /// Writes `number` as this trunk wants it (format and tech prefix).
    pub fn format_number(&self, number: &E164) -> String {
        let body = match (self.number_format, &self.country) {
            (NumberFormat::E164, _) => number.to_string(),
            (NumberFormat::E164NoPlus, _) => number.digits().to_string(),
            (NumberFormat::National, Some(country)) => match number.national_digits(country) {
                Some(national) => format!("{}{national}", self.national_prefix()),
                None if country.as_str() == "1" => format!("011{}", number.digits()),
                None => format!("00{}", number.digits()),
            },
            // Validation requires a country for the national format.
            (NumberFormat::National, None) => number.digits().to_string(),
        };
        format!("{}{body}", self.tech_prefix)
    }

    fn validate(&mut self, layers: &Layers, key: &str) -> Result<(), ConfigError> {
        match (self.address.take(), self.addresses.is_empty()) {
            (Some(one), true) => self.addresses.push(one),
            (Some(_), false) => {
                return Err(layers.invalid(
                    &format!("{key}.addresses"),
                    "both `address` and `addresses` are set",
                    "keep one: `address` for one carrier address, `addresses` for failover",
                ));
            }
            (None, true) => {
                return Err(layers.missing(
                    &format!("{key}.address"),
                    "add `address = \"host:port\"` (or `addresses = [..]` for failover)",
                ));
            }
            (None, false) => {}
        }
        self.validate_tls(layers, key)?;
        if self.allow.is_empty() && self.kind == TrunkKind::Ip {
            for (i, address) in self.addresses.iter().enumerate() {
                let Some(ip) = address.ip() else {
                    return Err(layers.missing(
                        &format!("{key}.allow"),
                        format!(
                            "addresses[{i}] `{address}` is a name, so the sources allowed to send \
                             calls cannot be derived; list the carrier's signalling IPs in `allow`"
                        ),
                    ));
                };
                self.allow.push(Cidr::host(ip));
            }
        }
        if self.allow.is_empty() && self.kind == TrunkKind::Registration {
            // The carrier sends the calls for our registration from its registrar/proxy, the
            // address we register at, in the common case: trust its IP literals (a name cannot
            // be trusted by address; list the carrier's IPs in `allow` then).
            self.allow.extend(
                self.addresses
                    .iter()
                    .filter_map(HostPort::ip)
                    .map(Cidr::host),
            );
        }
        if self.kind == TrunkKind::Registration {
            if self.auth.is_none() {
                return Err(layers.missing(
                    &format!("{key}.auth"),
                    "a registration trunk needs credentials: add \
                     `auth = { username = \"…\", password = \"…\" }`",
                ));
            }
            if !(Duration::from_secs(60)..=Duration::from_secs(86400)).contains(&self.expires) {
                return Err(layers.invalid(
                    &format!("{key}.expires"),
                    format!("{:?} is outside 60s–1d", self.expires),
                    "write e.g. `1h` (carriers usually shorten it anyway)",
                ));
            }
        }
        if self.auth.as_ref().is_some_and(|a| a.challenge_inbound) && self.allow.is_empty() {
            return Err(layers.missing(
                &format!("{key}.allow"),
                "`challenge_inbound` challenges calls from the trunk's addresses, and there are \
                 none: list the carrier's signalling IPs in `allow`, or remove challenge_inbound",
            ));
        }
        if self.from_user == FromUser::AuthUsername && self.auth.is_none() {
            return Err(layers.missing(
                &format!("{key}.auth"),
                "`from_user = \"auth_username\"` needs `auth`; add it or use `from_user = \"did\"`",
            ));
        }
        if self.codecs.is_empty() {
            return Err(layers.invalid(
                &format!("{key}.codecs"),
                "is empty",
                "list at least one of `pcmu`, `pcma`, preferred first",
            ));
        }
        if self.codecs.len() == 2 && self.codecs[0] == self.codecs[1] {
            return Err(layers.invalid(
                &format!("{key}.codecs"),
                format!("lists `{}` twice", self.codecs[0]),
                "list each codec once",
            ));
        }
        if self.number_format == NumberFormat::National && self.country.is_none() {
            return Err(layers.missing(
                &format!("{key}.country"),
                "the national number format needs the trunk's country: add e.g. `country = \"44\"`",
            ));
        }
        if self.max_calls == Some(0) {
            return Err(layers.invalid(
                &format!("{key}.max_calls"),
                "0 would refuse every call",
                "remove it for no limit, or write the carrier's channel count",
            ));
        }
        let probing = !self.probe_interval.is_zero();
        if probing
            && (self.probe_interval < Duration::from_secs(1)
                || self.probe_up_after == 0
                || self.probe_down_after == 0)
        {
            return Err(layers.invalid(
                &format!("{key}.probe_interval"),
                "probing needs an interval of at least 1s and thresholds of at least 1",
                "write e.g. `probe_interval = \"30s\"`, `probe_up_after = 2`, `probe_down_after = 3` \
                 (or `probe_interval = \"0s\"` to disable)",
            ));
        }
        Ok(())
    }
}

impl TrunkConfig {
    /// The TLS keys make sense only with `transport = "tls"`; the CA file must hold
    /// certificates and the server name must be one a certificate can carry.
    fn validate_tls(&self, layers: &Layers, key: &str) -> Result<(), ConfigError> {
        if self.transport != TrunkTransport::Tls {
            for (name, set) in [
                ("tls_ca", self.tls_ca.is_some()),
                ("tls_server_name", self.tls_server_name.is_some()),
            ] {
                if set {
                    return Err(layers.invalid(
                        &format!("{key}.{name}"),
                        format!("is set but the trunk's transport is `{}`", self.transport),
                        "set `transport = \"tls\"`, or remove it",
                    ));
                }
            }
            return Ok(());
        }
        if let Some(path) = &self.tls_ca {
            let certificates = std::fs::read(path).map(|pem| {
                rustls_pemfile::certs(&mut pem.as_slice())
                    .filter(Result::is_ok)
                    .count()
            });
            match certificates {
                Err(e) => {
                    return Err(layers.invalid(
                        &format!("{key}.tls_ca"),
                        format!("`{}` cannot be read: {e}", path.display()),
                        "point it at the carrier's CA certificates (a PEM file), or remove it \
                         to trust the public roots",
                    ));
                }
                Ok(0) => {
                    return Err(layers.invalid(
                        &format!("{key}.tls_ca"),
                        format!("`{}` holds no PEM certificate", path.display()),
                        "put the CA certificates in it as `-----BEGIN CERTIFICATE-----` blocks",
                    ));
                }
                Ok(_) => {}
            }
        }
        let names: Vec<&str> = match &self.tls_server_name {
            Some(name) => vec![name.as_str()],
            None => self.addresses.iter().map(|a| a.host.as_str()).collect(),
        };
        for name in names {
            if tokio_rustls::rustls::pki_types::ServerName::try_from(name).is_err() {
                return Err(layers.invalid(
                    &format!("{key}.tls_server_name"),
                    format!("`{name}` is not a DNS name or IP address a certificate can carry"),
                    "write the name in the carrier's certificate, e.g. `sip.carrier.example`",
                ));
            }
        }
        Ok(())
    }

    /// The name a TLS connection to an address with `host` (as configured) verifies the
    /// carrier's certificate against: `tls_server_name`, else that host.
    pub fn tls_name_for<'a>(&'a self, host: &'a str) -> &'a str {
        self.tls_server_name.as_deref().unwrap_or(host)
    }
}

/// `[[routes]]`: which trunks carry calls to numbers starting with a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// E.164 digits (without `+`) the called number starts with; `""` matches every number.
    /// The longest matching prefix wins.
    pub prefix: Digits,
    /// Trunks to try, in order, while they fail with 503, 408 or a timeout.
    pub trunks: Vec<TrunkName>,
}

/// Checks users, trunks and routes together (names unique, routes refer to trunks that exist),
/// completing the trunks' derived fields.
pub(crate) fn validate(
    users: &[UserConfig],
    trunks: &mut [TrunkConfig],
    routes: &[RouteConfig],
    layers: &Layers,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    let mut dids = HashMap::new();
    for (i, user) in users.iter().enumerate() {
        let key = format!("users[{i}]");
        if !names.insert(&user.username) {
            return Err(layers.invalid(
                &format!("{key}.username"),
                format!("`{}` is already a user", user.username),
                "give each user its own username",
            ));
        }
        if user.password.is_empty() {
            return Err(layers.invalid(
                &format!("{key}.password"),
                "is empty",
                "set a password; clients authenticate with it",
            ));
        }
        for (j, did) in user.dids.iter().enumerate() {
            if let Some(owner) = dids.insert(did, &user.username) {
                return Err(layers.invalid(
                    &format!("{key}.dids[{j}]"),
                    format!("{did} already belongs to user `{owner}`"),
                    "a DID rings one user: remove it from one of them",
                ));
            }
        }
    }

    let mut trunk_names = HashSet::new();
    for (i, trunk) in trunks.iter_mut().enumerate() {
        let key = format!("trunks[{i}]");
        if !trunk_names.insert(trunk.name.clone()) {
            return Err(layers.invalid(
                &format!("{key}.name"),
                format!("`{}` is already a trunk", trunk.name),
                "give each trunk its own name",
            ));
        }
        trunk.validate(layers, &key)?;
    }

    let mut prefixes = HashSet::new();
    for (i, route) in routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        if !prefixes.insert(&route.prefix) {
            return Err(layers.invalid(
                &format!("{key}.prefix"),
                format!("prefix `{}` has another route", route.prefix),
                "merge the two routes' trunk lists",
            ));
        }
        if route.trunks.is_empty() {
            return Err(layers.invalid(
                &format!("{key}.trunks"),
                "is empty",
                "list the trunks to try, e.g. `trunks = [\"carrier\"]`",
            ));
        }
        for (j, name) in route.trunks.iter().enumerate() {
            if !trunk_names.contains(name) {
                let mut known: Vec<&str> = trunk_names.iter().map(TrunkName::as_str).collect();
                known.sort_unstable();
                let fix = match super::error::closest(name.as_str(), known.iter().copied()) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None if known.is_empty() => "define it in a `[[trunks]]` table".to_string(),
                    None => format!("use one of the trunks: {}", known.join(", ")),
                };
                return Err(layers.invalid(
                    &format!("{key}.trunks[{j}]"),
                    format!("no trunk is named `{name}`"),
                    fix,
                ));
            }
        }
    }
    Ok(())
}
