//! The single-table sections: listeners, media, Opus, built-in numbers, CDRs and logging.
//!
//! Every section has defaults that run on a laptop over loopback, so an empty table (or none)
//! is valid.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use landline_codecs::{OpusSettings, Timing};
use landline_sip::message::Limits;
use landline_sip::transaction::TimerConfig;
use landline_sip::ua::BanPolicy;
use serde::Deserialize;

use super::ConfigError;
use super::layers::Layers;
use super::types::{Digits, keyword_enum};

fn any(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
}

/// `[sip]`: the SIP listeners for clients and carriers, the domain, and protocol timers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SipConfig {
    /// SIP over UDP.
    pub udp: SocketAddr,
    /// SIP over TCP.
    pub tcp: SocketAddr,
    /// SIP over TLS; only listened on when `tls_cert` and `tls_key` are set.
    pub tls: SocketAddr,
    /// PEM certificate chain for the TLS listener.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listener.
    pub tls_key: Option<PathBuf>,
    /// The domain users register in (`alice@domain`), also the digest realm by default.
    pub domain: String,
    /// The digest realm clients are challenged with; defaults to `domain`.
    pub realm: Option<String>,
    /// RFC 3261 T1, the round-trip estimate.
    #[serde(with = "humantime_serde")]
    pub t1: Duration,
    /// RFC 3261 T2, the longest retransmit interval.
    #[serde(with = "humantime_serde")]
    pub t2: Duration,
    /// RFC 3261 T4, how long a message may live in the network.
    #[serde(with = "humantime_serde")]
    pub t4: Duration,
    /// The largest SIP message accepted, in bytes.
    pub max_message_size: usize,
    /// SIP server transactions held at once; a new request beyond them gets 503 with
    /// Retry-After, so a flood costs bounded memory and calls in progress go on.
    pub max_transactions: usize,
    /// TCP connections held at once, SIP TCP/TLS and HTTP/WebSocket together (each is a file
    /// descriptor): beyond it new ones are closed at once and running ones go on.
    pub max_connections: usize,
    /// Connections one source address may hold at once, so one host cannot take the slots
    /// every other client needs (clients behind one NAT share an address).
    pub max_connections_per_source: usize,
    /// Failed digest authentications from one address (an IPv6 /64) within
    /// `auth_failure_window` that ban it for `auth_ban_time`: a password cracker gets a few
    /// guesses, then silence. 0 turns banning off. Carrier trunks' addresses are never banned.
    pub auth_failures_before_ban: u32,
    /// The window failed authentications are counted in.
    #[serde(with = "humantime_serde")]
    pub auth_failure_window: Duration,
    /// How long a first ban lasts; each ban soon after the last doubles, up to 16 times this.
    #[serde(with = "humantime_serde")]
    pub auth_ban_time: Duration,
    /// The longest registration granted to a UDP client behind NAT (its Contact is not the
    /// address its REGISTER came from), so that its own refreshes keep the NAT's mapping open
    /// and calls still reach it. 0 grants what it asks, like everyone else.
    #[serde(with = "humantime_serde")]
    pub nat_register_expires: Duration,
}

impl Default for SipConfig {
    fn default() -> Self {
        let timers = TimerConfig::default();
        SipConfig {
            udp: any(5060),
            tcp: any(5060),
            tls: any(5061),
            tls_cert: None,
            tls_key: None,
            domain: "landline.local".to_string(),
            realm: None,
            t1: timers.t1,
            t2: timers.t2,
            t4: timers.t4,
            max_message_size: Limits::default().max_message,
            max_transactions: 100_000,
            max_connections: 10_000,
            max_connections_per_source: 200,
            auth_failures_before_ban: 10,
            auth_failure_window: Duration::from_secs(60),
            auth_ban_time: Duration::from_secs(300),
            nat_register_expires: Duration::from_secs(120),
        }
    }
}

impl SipConfig {
    /// The TLS listener with its certificate and key, when both are configured.
    pub fn tls_listener(&self) -> Option<TlsListener> {
        Some(TlsListener {
            listen: self.tls,
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// The digest realm: `realm`, or the domain.
    pub fn realm(&self) -> &str {
        self.realm.as_deref().unwrap_or(&self.domain)
    }

    /// The transaction timers for the sip crate.
    pub fn timers(&self) -> TimerConfig {
        TimerConfig {
            t1: self.t1,
            t2: self.t2,
            t4: self.t4,
        }
    }

    /// The parser limits for the sip crate.
    pub fn limits(&self) -> Limits {
        Limits {
            max_message: self.max_message_size,
            ..Limits::default()
        }
    }

    /// When the SIP stack bans a source for failed authentications.
    pub fn ban_policy(&self) -> BanPolicy {
        BanPolicy {
            failures: self.auth_failures_before_ban,
            window: self.auth_failure_window,
            ban: self.auth_ban_time,
            ..BanPolicy::default()
        }
    }

    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        cert_pair(layers, "sip", &self.tls_cert, &self.tls_key)?;
        self.validate_bans(layers)?;
        if self.max_transactions < 100 {
            return Err(layers.invalid(
                "sip.max_transactions",
                format!(
                    "{} is too few: each request holds one for up to 32 s after its answer",
                    self.max_transactions
                ),
                "keep the default 100000, or at least 100 times the requests per second you expect",
            ));
        }
        if self.max_connections == 0 {
            return Err(layers.invalid(
                "sip.max_connections",
                "0 would refuse every TCP, TLS and WebSocket client",
                "keep the default 10000 (the process needs as many file descriptors, and more)",
            ));
        }
        if !(1..=self.max_connections).contains(&self.max_connections_per_source) {
            return Err(layers.invalid(
                "sip.max_connections_per_source",
                format!(
                    "{} is outside 1–{} (sip.max_connections)",
                    self.max_connections_per_source, self.max_connections
                ),
                "keep the default 200, or raise it to the clients you expect behind one NAT address",
            ));
        }
        if self.domain.is_empty() || self.domain.contains(char::is_whitespace) {
            return Err(layers.invalid(
                "sip.domain",
                format!("`{}` is not a domain", self.domain),
                "write a DNS name such as `sip.example.com` (or keep `landline.local`)",
            ));
        }
        if self.t1.is_zero() || self.t2 < self.t1 || self.t4.is_zero() {
            return Err(layers.invalid(
                "sip.t2",
                "timers must be positive with t2 ≥ t1",
                "keep the RFC 3261 defaults `500ms`, `4s`, `5s` unless you know why",
            ));
        }
        if !(1500..=1 << 20).contains(&self.max_message_size) {
            return Err(layers.invalid(
                "sip.max_message_size",
                format!("{} bytes is outside 1500–1048576", self.max_message_size),
                "keep the default 65535",
            ));
        }
        Ok(())
    }
}

impl SipConfig {
    fn validate_bans(&self, layers: &Layers) -> Result<(), ConfigError> {
        if (1..3).contains(&self.auth_failures_before_ban) {
            return Err(layers.invalid(
                "sip.auth_failures_before_ban",
                format!(
                    "{} would ban a phone whose user mistypes a password once",
                    self.auth_failures_before_ban
                ),
                "keep the default 10 (at least 3), or 0 to turn banning off",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600)).contains(&self.auth_failure_window)
        {
            return Err(layers.invalid(
                "sip.auth_failure_window",
                format!("{:?} is outside 1s–1h", self.auth_failure_window),
                "keep the default `60s`",
            ));
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(86_400)).contains(&self.auth_ban_time) {
            return Err(layers.invalid(
                "sip.auth_ban_time",
                format!("{:?} is outside 1s–24h", self.auth_ban_time),
                "keep the default `5m` (repeat offenders get up to 16 times as long)",
            ));
        }
        let nat = self.nat_register_expires;
        if !nat.is_zero() && !(Duration::from_secs(60)..=Duration::from_secs(3600)).contains(&nat) {
            return Err(layers.invalid(
                "sip.nat_register_expires",
                format!("{nat:?} is outside 60s–1h"),
                "keep the default `2m` (most NATs forget a UDP mapping after 30 s to a few \
                 minutes), or `0s` to grant NATed clients what they ask",
            ));
        }
        Ok(())
    }
}

/// A TLS listener's address, certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListener {
    /// Where to listen.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[http]`: the dialer page and SIP over WebSocket, plain and secure.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// HTTP and WS.
    pub listen: SocketAddr,
    /// The WebSocket path SIP clients connect to.
    pub ws_path: String,
    /// HTTPS and WSS; only listened on when `tls_cert` and `tls_key` are set.
    pub secure_listen: SocketAddr,
    /// PEM certificate chain for `secure_listen`.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `secure_listen`.
    pub tls_key: Option<PathBuf>,
    /// Origins (`https://phone.example.com`) whose pages may open a SIP WebSocket; empty
    /// allows any (clients still need a password). Clients that send no Origin (native apps)
    /// are let through, since only browsers can be made to connect by another site's page.
    pub allowed_origins: Vec<String>,
    /// How often an open WebSocket is pinged, so dead clients are noticed and NATs keep state.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// A WebSocket that sends nothing (not even a pong) for this long is closed, and its
    /// registrations with it.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: any(8080),
            ws_path: "/ws".to_string(),
            secure_listen: any(8443),
            tls_cert: None,
            tls_key: None,
            allowed_origins: Vec::new(),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
        }
    }
}

impl HttpConfig {
    /// The HTTPS/WSS listener, when a certificate and key are configured.
    pub fn secure_listener(&self) -> Option<TlsListener> {
        Some(TlsListener {
            listen: self.secure_listen,
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        cert_pair(layers, "http", &self.tls_cert, &self.tls_key)?;
        url_path(layers, "http.ws_path", &self.ws_path)?;
        if matches!(
            self.ws_path.as_str(),
            "/" | "/index.html" | "/app.js" | "/app.css" | "/sip.js"
        ) {
            return Err(layers.invalid(
                "http.ws_path",
                format!("`{}` is a file of the web dialer", self.ws_path),
                "keep the default `/ws`, or pick another path",
            ));
        }
        for origin in &self.allowed_origins {
            if !is_origin(origin) {
                return Err(layers.invalid(
                    "http.allowed_origins",
                    format!("`{origin}` is not an origin"),
                    "write each as a browser sends it: scheme and host, optional port, no path \
                     or trailing slash (e.g. `https://phone.example.com`)",
                ));
            }
        }
        if self.ping_interval.is_zero() || self.idle_timeout < self.ping_interval * 2 {
            return Err(layers.invalid(
                "http.idle_timeout",
                format!(
                    "{:?} with pings every {:?} would close live clients between pings",
                    self.idle_timeout, self.ping_interval
                ),
                "make idle_timeout at least twice ping_interval (defaults: 30s and 90s)",
            ));
        }
        Ok(())
    }
}

/// `http://host[:port]` or `https://host[:port]`, as a browser writes an `Origin` header.
fn is_origin(origin: &str) -> bool {
    let Some(authority) = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
    else {
        return false;
    };
    let allowed =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']');
    if authority.is_empty() || !authority.bytes().all(allowed) {
        return false;
    }
    // An IPv6 literal keeps its colons inside brackets; a port follows the last `:` outside.
    let after_host = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) if !ip.is_empty() => rest,
            _ => return false,
        },
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    match after_host.strip_prefix(':') {
        Some(port) => port.parse::<u16>().is_ok(),
        None => after_host.is_empty() && !authority.starts_with(':'),
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Where the exporter listens.
    pub listen: SocketAddr,
    /// The path it serves.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: any(9090),
            path: "/metrics".to_string(),
        }
    }
}

/// `[media]`: RTP addresses and ports, shards, and the media timing knobs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// The address written into SDP: where clients and carriers send RTP.
    pub public_address: IpAddr,
    /// The address browsers are given (their ICE candidate), when they reach the gateway on
    /// another address than carriers do; `public_address` when unset.
    pub webrtc_address: Option<IpAddr>,
    /// The address RTP sockets bind to.
    pub bind_address: IpAddr,
    /// The first RTP port (even).
    pub rtp_port_min: u16,
    /// The last RTP port.
    pub rtp_port_max: u16,
    /// Media shard threads; 0 means one per core.
    pub shards: usize,
    /// A leg that sends no RTP for this long (and is not on hold) ends the call.
    #[serde(with = "humantime_serde")]
    pub rtp_timeout: Duration,
    /// How long past its due time a packet is waited for before it is concealed.
    #[serde(with = "humantime_serde")]
    pub jitter_hold: Duration,
    /// How long a loss is concealed by the codec before comfort noise takes over.
    #[serde(with = "humantime_serde")]
    pub max_conceal: Duration,
    /// `SCHED_RR` priority (1–99) for the shard threads, so they take a core the moment a
    /// packet arrives on a host shared with other work; 0 (the default) leaves them at
    /// normal priority.
    pub realtime_priority: u8,
}

impl Default for MediaConfig {
    fn default() -> Self {
        let timing = Timing::default();
        MediaConfig {
            public_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            webrtc_address: None,
            bind_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            rtp_port_min: 20000,
            rtp_port_max: 29999,
            shards: 0,
            rtp_timeout: Duration::from_secs(30),
            jitter_hold: timing.hold,
            max_conceal: timing.max_conceal,
            realtime_priority: 0,
        }
    }
}

/// Each call takes two even ports (client and trunk legs); fewer than this is a typo.
const MIN_RTP_PORTS: u32 = 4;

impl MediaConfig {
    /// The number of shard threads to start: `shards`, or the number of cores.
    pub fn shard_count(&self) -> usize {
        match self.shards {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// The pipeline timing for calls.
    pub fn timing(&self) -> Timing {
        Timing {
            hold: self.jitter_hold,
            max_conceal: self.max_conceal,
        }
    }

    /// The address in browsers' ICE candidates.
    pub fn webrtc_address(&self) -> IpAddr {
        self.webrtc_address.unwrap_or(self.public_address)
    }

    /// Even ports in the range (one per call leg).
    pub fn rtp_ports(&self) -> u32 {
        (u32::from(self.rtp_port_min)..=u32::from(self.rtp_port_max))
            .filter(|p| p % 2 == 0)
            .count() as u32
    }

    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        if self.public_address.is_unspecified() {
            return Err(layers.invalid(
                "media.public_address",
                "is unspecified (0.0.0.0 or ::), but it is written into SDP",
                "write the address clients and carriers can reach, e.g. `127.0.0.1` on a laptop",
            ));
        }
        if self.webrtc_address.is_some_and(|a| a.is_unspecified()) {
            return Err(layers.invalid(
                "media.webrtc_address",
                "is unspecified (0.0.0.0 or ::), but browsers are told to send to it",
                "write the address browsers reach, or remove the key to use public_address",
            ));
        }
        if self.realtime_priority > 99 {
            return Err(layers.invalid(
                "media.realtime_priority",
                format!(
                    "{} is above 99, the highest SCHED_RR priority",
                    self.realtime_priority
                ),
                "write 0 (off) or a priority from 1 to 99; 10 is plenty for media threads",
            ));
        }
        if self.rtp_port_min % 2 != 0 {
            return Err(layers.invalid(
                "media.rtp_port_min",
                format!("{} is odd; RTP uses even ports", self.rtp_port_min),
                format!("write {}", self.rtp_port_min.saturating_add(1)),
            ));
        }
        if self.rtp_port_min < 1024 {
            return Err(layers.invalid(
                "media.rtp_port_min",
                format!("{} is a privileged port", self.rtp_port_min),
                "use ports from 1024 up, e.g. 20000",
            ));
        }
        if self.rtp_port_max < self.rtp_port_min {
            return Err(layers.invalid(
                "media.rtp_port_max",
                format!(
                    "{} is below rtp_port_min {}",
                    self.rtp_port_max, self.rtp_port_min
                ),
                "make rtp_port_max the larger end of the range, e.g. 29999",
            ));
        }
        // Each shard keeps one port of the range for its browsers' WebRTC sessions.
        let needed = MIN_RTP_PORTS + self.shard_count() as u32;
        if self.rtp_ports() < needed {
            return Err(layers.invalid(
                "media.rtp_port_max",
                format!(
                    "the range {}–{} has {} even ports, too few for two calls and one WebRTC \
                     port per media shard ({} shards)",
                    self.rtp_port_min,
                    self.rtp_port_max,
                    self.rtp_ports(),
                    self.shard_count()
                ),
                "allow two even ports per concurrent call plus one per shard, e.g. 20000–29999",
            ));
        }
        if self.shards > 1024 {
            return Err(layers.invalid(
                "media.shards",
                format!("{} shard threads is far more than cores", self.shards),
                "write 0 (one per core) or the number of cores to use",
            ));
        }
        if self.rtp_timeout < Duration::from_secs(1) {
            return Err(layers.invalid(
                "media.rtp_timeout",
                "is under 1s, which would end calls on normal jitter",
                "write e.g. `30s`",
            ));
        }
        if self.jitter_hold > Duration::from_secs(1) || self.max_conceal > Duration::from_secs(10) {
            return Err(layers.invalid(
                "media.jitter_hold",
                "jitter_hold over 1s or max_conceal over 10s",
                "keep the defaults `60ms` and `100ms` unless measurements say otherwise",
            ));
        }
        Ok(())
    }
}

/// `[opus]`: how audio towards clients is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpusConfig {
    /// 0 (cheapest) to 10.
    pub complexity: u8,
    /// Bits per second, 6000 to 510000.
    pub bitrate: u32,
    /// In-band forward error correction.
    pub fec: bool,
    /// Expected loss in percent; FEC only spends bits when this is above 0.
    pub expected_loss_percent: u8,
    /// Discontinuous transmission during silence.
    pub dtx: bool,
}

impl Default for OpusConfig {
    fn default() -> Self {
        let s = OpusSettings::default();
        OpusConfig {
            complexity: s.complexity,
            bitrate: s.bitrate,
            fec: s.inband_fec,
            expected_loss_percent: s.expected_loss_percent,
            dtx: s.dtx,
        }
    }
}

impl OpusConfig {
    /// The encoder settings for the codecs crate.
    pub fn settings(&self) -> OpusSettings {
        OpusSettings {
            bitrate: self.bitrate,
            complexity: self.complexity,
            inband_fec: self.fec,
            expected_loss_percent: self.expected_loss_percent,
            dtx: self.dtx,
        }
    }

    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        if self.complexity > 10 {
            return Err(layers.invalid(
                "opus.complexity",
                format!("{} is over 10", self.complexity),
                "write 0 to 10; 1 keeps a call under 40 µs per frame",
            ));
        }
        if !(6_000..=510_000).contains(&self.bitrate) {
            return Err(layers.invalid(
                "opus.bitrate",
                format!("{} b/s is outside Opus's 6000–510000", self.bitrate),
                "write e.g. 24000",
            ));
        }
        if self.expected_loss_percent > 100 {
            return Err(layers.invalid(
                "opus.expected_loss_percent",
                format!("{} is over 100", self.expected_loss_percent),
                "write a percentage, e.g. 5",
            ));
        }
        Ok(())
    }
}

/// `[numbers]`: the built-in test numbers any user can dial.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NumbersConfig {
    /// Dial this to hear yourself (through both transcoding directions).
    pub echo: Digits,
    /// Dial this to hear a steady tone.
    pub tone: Digits,
    /// The tone's frequency in Hz.
    pub tone_hz: u32,
}

impl Default for NumbersConfig {
    fn default() -> Self {
        NumbersConfig {
            echo: Digits::try_from("600".to_string()).unwrap_or_default(),
            tone: Digits::try_from("601".to_string()).unwrap_or_default(),
            tone_hz: 1000,
        }
    }
}

impl NumbersConfig {
    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        for (key, number) in [("numbers.echo", &self.echo), ("numbers.tone", &self.tone)] {
            if number.is_empty() {
                return Err(layers.invalid(
                    key,
                    "is empty",
                    "write the digits to dial, e.g. `600`",
                ));
            }
        }
        if self.echo == self.tone {
            return Err(layers.invalid(
                "numbers.tone",
                format!("`{}` is also the echo number", self.tone),
                "give the tone its own number, e.g. `601`",
            ));
        }
        if !(50..=3900).contains(&self.tone_hz) {
            return Err(layers.invalid(
                "numbers.tone_hz",
                format!("{} Hz cannot be carried at 8 kHz", self.tone_hz),
                "write 50 to 3900, e.g. 1000",
            ));
        }
        Ok(())
    }
}

/// `[cdr]`: where call records go.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdrConfig {
    /// The JSON-lines file records are appended to.
    pub path: PathBuf,
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            path: PathBuf::from("/tmp/landline-cdr.jsonl"),
        }
    }
}

impl CdrConfig {
    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        let dir = match self.path.parent() {
            Some(d) if d.as_os_str().is_empty() => std::path::Path::new("."),
            Some(d) => d,
            None => {
                return Err(layers.invalid(
                    "cdr.path",
                    "is not a file path",
                    "write a file path, e.g. `/var/lib/landline/cdr.jsonl`",
                ));
            }
        };
        if !dir.is_dir() {
            return Err(layers.invalid(
                "cdr.path",
                format!("its directory `{}` does not exist", dir.display()),
                "create the directory, or point cdr.path somewhere writable",
            ));
        }
        Ok(())
    }
}

keyword_enum! {
    /// How log lines are written.
    #[derive(Default)]
    pub enum LogFormat {
        /// Human-readable lines.
        #[default]
        Text = "text",
        /// One JSON object per line, for log shippers.
        Json = "json",
    }
}

/// `[log]`: what is logged and how.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A `tracing` filter (`info`, `landline=debug,info`); `RUST_LOG` overrides it.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

impl LogConfig {
    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.level)
            .map(drop)
            .map_err(|e| {
                layers.invalid(
                    "log.level",
                    format!("`{}` is not a log filter ({e})", self.level),
                    "write `error`, `warn`, `info`, `debug` or `trace`, or e.g. `landline=debug,info`",
                )
            })
    }
}

impl MetricsConfig {
    pub(crate) fn validate(&self, layers: &Layers) -> Result<(), ConfigError> {
        url_path(layers, "metrics.path", &self.path)
    }
}

/// A certificate and its key come together.
fn cert_pair(
    layers: &Layers,
    section: &str,
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
) -> Result<(), ConfigError> {
    match (cert, key) {
        (Some(_), None) => Err(layers.missing(
            &format!("{section}.tls_key"),
            "set tls_key to the certificate's PEM private key, or remove tls_cert",
        )),
        (None, Some(_)) => Err(layers.missing(
            &format!("{section}.tls_cert"),
            "set tls_cert to the PEM certificate chain, or remove tls_key",
        )),
        (Some(cert), Some(key)) => {
            for (name, path) in [("tls_cert", cert), ("tls_key", key)] {
                if !path.is_file() {
                    return Err(layers.invalid(
                        &format!("{section}.{name}"),
                        format!("`{}` is not a readable file", path.display()),
                        "point it at an existing PEM file",
                    ));
                }
            }
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

fn url_path(layers: &Layers, key: &str, path: &str) -> Result<(), ConfigError> {
    if path.starts_with('/') && !path.contains(char::is_whitespace) {
        Ok(())
    } else {
        Err(layers.invalid(
            key,
            format!("`{path}` is not an absolute URL path"),
            "start it with `/`, e.g. `/metrics`",
        ))
    }
}
