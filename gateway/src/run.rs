//! Assembling the gateway from its configuration, and running it until told to stop.

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
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
    let (plane, mut media_events) = MediaPlane::start(shards, ports)?;
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
    // No call control yet: drain the events so the shards never see a full queue.
    let events = tokio::spawn(async move {
        while let Some(event) = media_events.recv().await {
            tracing::debug!(?event, "media event with no call control to receive it");
        }
    });

    let mut signals = service::StopSignals::install().map_err(RunError::Signals)?;
    tracing::info!(shards, config = %config.summary(), "landline ready");
    service::notify_ready("ready");
    let watchdog = service::spawn_watchdog();

    let stop = signals.wait().await;
    tracing::info!(?stop, "stopping");
    service::notify_stopping();
    for task in [Some(sampler), Some(events), watchdog]
        .into_iter()
        .flatten()
    {
        task.abort();
    }
    drop(plane);
    drop(cdr);
    // The writer thread exits once the queue is written out.
    let _ = tokio::task::spawn_blocking(move || cdr_thread.wait()).await;
    Ok(())
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
