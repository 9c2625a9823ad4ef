//! Assembling the gateway from its configuration, and running it until told to stop.

use std::sync::Arc;
use std::time::Duration;

use std::net::SocketAddr;

use landline_sip::auth::{Algorithm, DigestServer};
use landline_sip::message::Transport;
use landline_sip::ua::{Config as UaConfig, Registrar, UserAgent};

use crate::calls::Signalling;
use crate::config::Config;
use crate::edge::{Edge, EdgeConfig, EdgeError, HttpEdgeConfig};
use crate::media::{MediaError, MediaPlane, PortPool};
use crate::ops::cdr::{CdrError, CdrWriter};
use crate::ops::metrics::{self, Metrics, MetricsError};
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
    check_open_files_limit(&config);
    let shards = config.media.shard_count();
    let trunks: Vec<_> = config.trunks.iter().map(|t| t.name.clone()).collect();
    let (metrics, _exporter) = metrics::start(&config.metrics, &trunks, shards).await?;
    let metrics = Arc::new(metrics);
    service::install_panic_hook(metrics.clone());
    let (cdr, cdr_thread) = CdrWriter::start(&config.cdr.path, metrics.clone())?;
    let cdr_reopen = cdr.reopener();

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
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(4);
    let mut calls =
        tokio::spawn(signalling.run(inbound, media_events, reload_rx, stop_rx, DRAIN_LIMIT));

    let mut signals = service::ServiceSignals::install().map_err(RunError::Signals)?;
    tracing::info!(shards, config = %config.summary(), "landline ready");
    service::notify_ready("ready");
    let watchdog = service::spawn_watchdog();

    let mut running = config;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                service::ServiceSignal::Reload => {
                    cdr_reopen.request();
                    if let Some(applied) = reload(&running, &reload_tx, &metrics).await {
                        running = applied;
                    }
                }
                stop => {
                    tracing::info!(?stop, "stopping: draining calls");
                    service::notify_stopping();
                    let _ = stop_tx.send(true);
                    // A second signal, or the drain limit, ends the wait.
                    tokio::select! {
                        _ = &mut calls => {}
                        _ = signals.next_stop() => calls.abort(),
                    }
                    break;
                }
            },
            _ = &mut calls => {
                tracing::error!("call control stopped unexpectedly");
                break;
            }
        }
    }
    for task in [Some(sampler), watchdog].into_iter().flatten() {
        task.abort();
    }
    drop(plane);
    // The writer thread exits once the queue is written out.
    let _ = tokio::task::spawn_blocking(move || cdr_thread.wait()).await;
    Ok(())
}

/// Reads the configuration again (SIGHUP) and hands call control what may change while
/// running; the configuration now in force, or `None` when the files were refused and the
/// running one stays.
async fn reload(
    running: &Arc<Config>,
    call_control: &tokio::sync::mpsc::Sender<Arc<Config>>,
    metrics: &Metrics,
) -> Option<Arc<Config>> {
    service::notify_reloading();
    let path = running.main_path.clone();
    let read = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    let applied = match read {
        Ok(Ok(read)) => {
            let (applied, restart_needed) = running.reloaded(read);
            if !restart_needed.is_empty() {
                tracing::warn!(
                    sections = ?restart_needed,
                    "reload: these sections changed, but their listeners, media plane or files are set up at start: the running values stay until a restart"
                );
            }
            warn_about_laptop_defaults(&applied);
            let applied = Arc::new(applied);
            call_control
                .send(applied.clone())
                .await
                .ok()
                .map(|()| applied)
        }
        Ok(Err(error)) => {
            tracing::error!(%error, "reload refused: the running configuration stays; fix the file and send SIGHUP again");
            None
        }
        Err(error) => {
            tracing::error!(%error, "reload failed: the running configuration stays");
            None
        }
    };
    metrics.config_reloaded(applied.is_some());
    service::notify_ready(if applied.is_some() {
        "ready"
    } else {
        "ready (last reload refused: see the log)"
    });
    applied
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
        max_connections: config.sip.max_connections,
        max_connections_per_source: config.sip.max_connections_per_source,
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
    let mut registrar = Registrar::new(60, 3600, 10);
    let nat = config.sip.nat_register_expires.as_secs();
    if nat > 0 {
        registrar.set_nat_max_expires(u32::try_from(nat).unwrap_or(u32::MAX));
    }
    ua.set_registrar(registrar);
    let secret = random_seed().to_be_bytes();
    let server = DigestServer::new(
        config.sip.realm(),
        Algorithm::Md5,
        &secret,
        Duration::from_secs(300),
    );
    let authenticator = crate::calls::authenticator(config, server);
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

/// Raises the open-files limit and warns when it is below what the configuration can use:
/// one descriptor per RTP port and per connection, plus the listeners and the runtime's own.
fn check_open_files_limit(config: &Config) {
    let rtp_sockets = usize::from(config.media.rtp_port_max - config.media.rtp_port_min) / 2 + 1;
    let needed = (config.sip.max_connections + rtp_sockets + 256) as u64;
    match service::raise_open_files_limit() {
        Ok(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            "the open-files limit is below what sip.max_connections and the RTP range can use: \
             calls or connections would fail once it is reached; raise it (LimitNOFILE= in the \
             systemd unit, `ulimit -n` in a shell) or lower sip.max_connections"
        ),
        Ok(limit) => tracing::debug!(limit, "open-files limit"),
        Err(error) => tracing::warn!(%error, "cannot read the open-files limit"),
    }
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
