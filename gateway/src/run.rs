//! Assembling the gateway from its configuration, and running it until told to stop.

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use landline_sip::auth::{Algorithm, DigestServer};
use landline_sip::message::Transport;
use landline_sip::ua::{Authenticator, Config as UaConfig, Registrar, UserAgent};

use crate::calls::Signalling;
use crate::config::Config;
use crate::edge::{Edge, EdgeConfig, EdgeError, HttpEdgeConfig};
use crate::media::{MediaError, MediaPlane, PortPool};
use crate::ops::cdr::{CdrError, CdrWriter};
use crate::ops::metrics::{self, MetricsError};
use crate::ops::service;

/// How often the media shards' counters are copied into the metrics.
const MEDIA_SAMPLE_PERIOD: Duration = Duration::from_secs(1);

/// Why the gateway could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The metrics exporter could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// The media plane could not start.
    #[error("media plane: {0}")]
    Media(#[from] MediaError),
    /// The call record file could not be opened.
    #[error(transparent)]
    Cdr(#[from] CdrError),
    /// A SIP listener could not start.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

/// Starts the gateway described by `config` and runs it until SIGTERM or SIGINT.
///
/// Everything that can fail on bad configuration or a taken port fails here, before systemd is
/// told the service is ready.
pub async fn run(config: Config) -> Result<(), RunError> {
    warn_about_laptop_defaults(&config);
    let shards = config.media.shard_count();
    let trunks: Vec<_> = config.trunks.iter().map(|t| t.name.clone()).collect();
    let (metrics, _exporter) = metrics::start(&config.metrics, &trunks, shards).await?;
    let metrics = Arc::new(metrics);
    service::install_panic_hook(metrics.clone());
    let (cdr, cdr_thread) = CdrWriter::start(&config.cdr.path, metrics.clone())?;

    let ports = Arc::new(PortPool::new(
        config.media.rtp_port_min,
        config.media.rtp_port_max,
    ));
    let webrtc = Some(config.media.bind_address);
    let (plane, media_events) =
        MediaPlane::start(shards, ports, webrtc, config.media.realtime_priority)?;
    let plane = Arc::new(plane);
    let sampler = tokio::spawn({
        let (metrics, plane) = (metrics.clone(), plane.clone());
        async move {
            let mut tick = tokio::time::interval(MEDIA_SAMPLE_PERIOD);
            loop {
                tick.tick().await;
                metrics.sample_media(&plane);
            }
        }
    });
    let (edge, inbound) = Edge::start(edge_config(&config), metrics.clone()).await?;
    let ua = user_agent(&config);
    let config = Arc::new(config);
    let signalling = Signalling::new(
        ua,
        edge,
        plane.clone(),
        config.clone(),
        metrics.clone(),
        cdr,
        random_seed(),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut calls = tokio::spawn(signalling.run(inbound, media_events, stop_rx, DRAIN_LIMIT));

    let mut signals = service::StopSignals::install().map_err(RunError::Signals)?;
    tracing::info!(shards, config = %config.summary(), "landline ready");
    service::notify_ready("ready");
    let watchdog = service::spawn_watchdog();

    tokio::select! {
        stop = signals.wait() => {
            tracing::info!(?stop, "stopping: draining calls");
            service::notify_stopping();
            let _ = stop_tx.send(true);
            // A second signal, or the drain limit, ends the wait.
            tokio::select! {
                _ = &mut calls => {}
                _ = signals.wait() => calls.abort(),
            }
        }
        _ = &mut calls => tracing::error!("call control stopped unexpectedly"),
    }
    for task in [Some(sampler), watchdog].into_iter().flatten() {
        task.abort();
    }
    drop(plane);
    // The writer thread exits once the queue is written out.
    let _ = tokio::task::spawn_blocking(move || cdr_thread.wait()).await;
    Ok(())
}

/// How long SIGTERM waits for active calls to end before hanging them up: under the systemd
/// unit's `TimeoutStopSec=90`, so the hang-ups and CDRs happen before systemd kills us.
const DRAIN_LIMIT: Duration = Duration::from_secs(80);

/// The SIP transports the configuration asks for.
fn edge_config(config: &Config) -> EdgeConfig {
    EdgeConfig {
        udp: Some(config.sip.udp),
        tcp: Some(config.sip.tcp),
        tls: config.sip.tls_listener().map(|t| {
            (
                t.listen,
                crate::edge::TlsFiles {
                    cert: t.cert,
                    key: t.key,
                },
            )
        }),
        limits: config.sip.limits(),
        max_connections: 10_000,
        idle_timeout: Duration::from_secs(600),
        http: Some(HttpEdgeConfig {
            listen: config.http.listen,
            secure: config.http.secure_listener().map(|t| {
                (
                    t.listen,
                    crate::edge::TlsFiles {
                        cert: t.cert,
                        key: t.key,
                    },
                )
            }),
            ws_path: config.http.ws_path.clone(),
            allowed_origins: config.http.allowed_origins.clone(),
            ping_interval: config.http.ping_interval,
            idle_timeout: config.http.idle_timeout,
        }),
    }
}

/// The sans-IO user agent with the gateway's registrar and its users' credentials.
fn user_agent(config: &Config) -> UserAgent {
    let local = SocketAddr::new(config.media.public_address, config.sip.udp.port());
    let mut ua_config = UaConfig::new(local, random_seed());
    ua_config.timers = config.sip.timers();
    ua_config.limits = config.sip.limits();
    ua_config.max_server_transactions = config.sip.max_transactions;
    // Browsers reach us on the HTTP listeners, not the SIP UDP port (RFC 7118 §5).
    let public = config.media.public_address;
    ua_config.contact_addrs = std::iter::once((
        Transport::Ws,
        SocketAddr::new(public, config.http.listen.port()),
    ))
    .chain(
        config
            .http
            .secure_listener()
            .map(|t| (Transport::Wss, SocketAddr::new(public, t.listen.port()))),
    )
    .collect();
    let mut ua = UserAgent::new(ua_config);
    ua.set_registrar(Registrar::new(60, 3600, 10));
    let secret = random_seed().to_be_bytes();
    let server = DigestServer::new(
        config.sip.realm(),
        Algorithm::Md5,
        &secret,
        Duration::from_secs(300),
    );
    let users = config
        .users
        .iter()
        .map(|u| (u.username.as_str().to_owned(), u.password.clone()))
        .collect();
    let mut authenticator = Authenticator::new(server, users);
    // Calls from trunks are admitted by their address, not by a password; a trunk with
    // `challenge_inbound` must also answer a challenge with its own account.
    for trunk in &config.trunks {
        for cidr in &trunk.allow {
            match trunk.auth.as_ref().filter(|a| a.challenge_inbound) {
                Some(auth) => authenticator.require(
                    cidr.range(),
                    auth.username.clone(),
                    auth.password.clone(),
                ),
                None => authenticator.trust(cidr.range()),
            }
        }
    }
    ua.set_authenticator(authenticator);
    ua
}

/// Entropy for tags, SSRCs and nonces, from the kernel.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        if urandom.read_exact(&mut bytes).is_ok() {
            return u64::from_ne_bytes(bytes);
        }
    }
    // No /dev/urandom: the clock and the process id still differ between runs.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The shipped demo user's password: fine on loopback, dangerous anywhere else.
const DEMO_PASSWORD: &str = "demo-password-change-me";

fn warn_about_laptop_defaults(config: &Config) {
    for user in config.users.iter().filter(|u| u.password == DEMO_PASSWORD) {
        tracing::warn!(
            user = %user.username,
            "user has the shipped demo password: change it before anyone else can reach this gateway"
        );
    }
    if config.media.public_address.is_loopback() {
        tracing::warn!(
            public_address = %config.media.public_address,
            "media.public_address is a loopback address: only clients on this machine will get audio"
        );
    }
}
