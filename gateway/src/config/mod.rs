//! The typed configuration: read once at start (and on reload), validated completely before
//! anything binds, so a mistake is a clear message and exit code 2, never a half-started gateway.
//!
//! Layers, later ones winning key by key (a list such as `[[trunks]]` is replaced whole):
//! 1. the file given with `--config` (default [`DEFAULT_PATH`]),
//! 2. [`SYSTEM_PATH`], if it exists,
//! 3. `LANDLINE__SECTION__KEY` environment variables (`LANDLINE__MEDIA__PUBLIC_ADDRESS=…`).
//!
//! Every error names the file (or variable), the dotted key, the problem and the fix.

mod directory;
mod error;
mod layers;
mod reload;
mod sections;
mod types;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use directory::{
    FromUser, NumberFormat, Privacy, RouteConfig, TrunkAuth, TrunkCodec, TrunkConfig, TrunkKind,
    TrunkTransport, UserConfig,
};
pub use error::ConfigError;
pub use layers::ENV_PREFIX;
pub use sections::{
    CdrConfig, HttpConfig, LogConfig, LogFormat, MediaConfig, MetricsConfig, NumbersConfig,
    OpusConfig, SipConfig, TlsListener,
};
pub use types::{Cidr, CountryCode, Digits, E164, HostPort, TrunkName, Username, ValueError};

use layers::Layers;

/// Where `landline run` looks without `--config` (relative to the working directory).
pub const DEFAULT_PATH: &str = "conf/landline.toml";

/// The machine's own overrides, read after the main file when present.
pub const SYSTEM_PATH: &str = "/etc/landline/landline.toml";

/// The whole configuration, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// SIP listeners, domain and timers.
    #[serde(default)]
    pub sip: SipConfig,
    /// The web dialer and SIP over WebSocket.
    #[serde(default)]
    pub http: HttpConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// RTP addresses, ports, shards and timing.
    #[serde(default)]
    pub media: MediaConfig,
    /// Opus encoding towards clients.
    #[serde(default)]
    pub opus: OpusConfig,
    /// The built-in echo and tone numbers.
    #[serde(default)]
    pub numbers: NumbersConfig,
    /// Client accounts.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    /// Carrier trunks (validated: `addresses` non-empty, `allow` derived for IP trunks).
    #[serde(default)]
    pub trunks: Vec<TrunkConfig>,
    /// Routes by called-number prefix (validated: every trunk exists).
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// Call records.
    #[serde(default)]
    pub cdr: CdrConfig,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The files this configuration was read from, in order (for logs and `check-config`).
    #[serde(skip)]
    pub sources: Vec<String>,
    /// The main file (`--config`), read again on reload.
    #[serde(skip)]
    pub main_path: PathBuf,
}

impl Config {
    /// Loads `path`, then [`SYSTEM_PATH`] if it exists, then the process environment.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Config::load_layers(path, Some(Path::new(SYSTEM_PATH)), None)
    }

    /// Loads `main`, then `system` if given and present, then the environment: the process's
    /// when `env` is `None`, else exactly the variables in `env` (for tests and tools).
    pub fn load_layers(
        main: &Path,
        system: Option<&Path>,
        env: Option<HashMap<String, String>>,
    ) -> Result<Config, ConfigError> {
        let layers = Layers::read(main, system, env)?;
        let mut config: Config = layers
            .merged()
            .try_deserialize()
            .map_err(|e| error::from_deserialize(e, &layers))?;
        config.sources = layers.files();
        config.main_path = main.to_path_buf();
        config.validate(&layers)?;
        Ok(config)
    }

    /// A one-line summary of what is configured, for `check-config` and the start-up log.
    pub fn summary(&self) -> String {
        let tls = self
            .sip
            .tls_listener()
            .map_or_else(|| "off".to_string(), |t| t.listen.to_string());
        let https = self
            .http
            .secure_listener()
            .map_or_else(|| "off".to_string(), |t| t.listen.to_string());
        let dids: usize = self.users.iter().map(|u| u.dids.len()).sum();
        let trunks: Vec<String> = self
            .trunks
            .iter()
            .map(|t| format!("{} ({})", t.name, t.kind))
            .collect();
        format!(
            "sip udp {} tcp {} tls {}; http {} (ws {}) https {}; metrics {}{}; media {} ports {}-{} \
             shards {}; {} users ({} DIDs); {} trunks [{}]; {} routes; echo {} tone {}",
            self.sip.udp,
            self.sip.tcp,
            tls,
            self.http.listen,
            self.http.ws_path,
            https,
            self.metrics.listen,
            self.metrics.path,
            self.media.public_address,
            self.media.rtp_port_min,
            self.media.rtp_port_max,
            self.media.shard_count(),
            self.users.len(),
            dids,
            self.trunks.len(),
            trunks.join(", "),
            self.routes.len(),
            self.numbers.echo,
            self.numbers.tone,
        )
    }

    fn validate(&mut self, layers: &Layers) -> Result<(), ConfigError> {
        self.sip.validate(layers)?;
        self.http.validate(layers)?;
        self.metrics.validate(layers)?;
        self.media.validate(layers)?;
        self.opus.validate(layers)?;
        self.numbers.validate(layers)?;
        self.cdr.validate(layers)?;
        self.log.validate(layers)?;
        directory::validate(&self.users, &mut self.trunks, &self.routes, layers)?;
        self.check_listeners(layers)
    }

    /// The TCP listeners must not collide (UDP and TCP may share a port), nor SIP over UDP
    /// with the RTP range.
    fn check_listeners(&self, layers: &Layers) -> Result<(), ConfigError> {
        let mut tcp: Vec<(&str, SocketAddr)> = vec![
            ("sip.tcp", self.sip.tcp),
            ("http.listen", self.http.listen),
            ("metrics.listen", self.metrics.listen),
        ];
        if let Some(tls) = self.sip.tls_listener() {
            tcp.push(("sip.tls", tls.listen));
        }
        if let Some(secure) = self.http.secure_listener() {
            tcp.push(("http.secure_listen", secure.listen));
        }
        let rtp = self.media.rtp_port_min..=self.media.rtp_port_max;
        if rtp.contains(&self.sip.udp.port()) {
            return Err(layers.invalid(
                "sip.udp",
                format!(
                    "port {} is inside the RTP range {}–{}",
                    self.sip.udp.port(),
                    rtp.start(),
                    rtp.end()
                ),
                "move SIP (5060 is usual) or the RTP range",
            ));
        }
        for (i, (key, addr)) in tcp.iter().enumerate() {
            for (other_key, other) in &tcp[..i] {
                let overlap = addr.ip() == other.ip()
                    || addr.ip().is_unspecified()
                    || other.ip().is_unspecified();
                if addr.port() == other.port() && addr.port() != 0 && overlap {
                    return Err(layers.invalid(
                        key,
                        format!("{addr} is also `{other_key}` ({other})"),
                        "give each TCP listener its own port",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
