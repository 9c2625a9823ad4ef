//! Prometheus metrics: every metric described once, every handle registered once at start.
//!
//! A `counter!()` macro call looks its metric up each time (~50 ns); a registered handle is an
//! atomic add (~5 ns). So the rest of the gateway holds [`Metrics`] and calls its methods.
//! Labels are bounded by the configuration (direction, outcome, trunk name, shard index), never
//! a call or a number. The media shards' atomics are copied in by [`Metrics::sample_media`]
//! once a second, so the packet path never touches the metrics registry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::Ordering;
use std::time::Duration;

use landline_sip::ua::BanStats;
use metrics::{
    Counter, Gauge, Recorder, Unit, counter, describe_counter, describe_gauge, gauge,
    with_local_recorder,
};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::config::{MetricsConfig, TrunkName};
use crate::media::MediaPlane;

/// Which way a call goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A client calls out through a trunk (or a built-in number).
    Outbound,
    /// A trunk calls a DID.
    Inbound,
}

impl Direction {
    const ALL: [Direction; 2] = [Direction::Outbound, Direction::Inbound];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// How a call ended, as counted and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It was answered (whatever ended it afterwards).
    Answered,
    /// It failed before answer (an error from a trunk, a client or us).
    Failed,
    /// The caller gave up before answer (CANCEL).
    Cancelled,
    /// The callee was busy (486/600).
    Busy,
    /// Nobody answered in time (480/408, no registration).
    NoAnswer,
}

impl Outcome {
    const ALL: [Outcome; 5] = [
        Outcome::Answered,
        Outcome::Failed,
        Outcome::Cancelled,
        Outcome::Busy,
        Outcome::NoAnswer,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
        }
    }
}

/// Names of every metric, so docs and tests can list them.
pub const METRIC_NAMES: &[&str] = &[
    "landline_build_info",
    "landline_calls_active",
    "landline_calls_finished_total",
    "landline_trunk_up",
    "landline_trunk_registered",
    "landline_registrations",
    "landline_shard_calls",
    "landline_shard_webrtc_sessions",
    "landline_shard_packets_in_total",
    "landline_shard_packets_out_total",
    "landline_shard_packets_dropped_total",
    "landline_shard_packets_lost_total",
    "landline_shard_samples_concealed_total",
    "landline_shard_panics_total",
    "landline_shard_events_dropped_total",
    "landline_rtp_ports",
    "landline_rtp_ports_in_use",
    "landline_panics_total",
    "landline_cdr_dropped_total",
    "landline_cdr_write_errors_total",
    "landline_websocket_connections",
    "landline_http_requests_total",
    "landline_config_reloads_total",
    "landline_auth_failures_total",
    "landline_auth_bans_total",
    "landline_auth_refused_total",
];

/// HTTP status classes, the label of `landline_http_requests_total`.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The gateway's registered metric handles. Cheap to call from anywhere (atomics).
#[derive(Debug)]
pub struct Metrics {
    calls_active: [Gauge; 2],
    calls_finished: [[Counter; 5]; 2],
    /// Per-trunk gauges; behind a lock only because a reload may add trunks (control plane
    /// only, a handful of writes a minute).
    trunks: RwLock<BTreeMap<TrunkName, TrunkGauges>>,
    registrations: Gauge,
    shards: Vec<ShardMetrics>,
    rtp_ports: Gauge,
    rtp_ports_in_use: Gauge,
    panics: Counter,
    cdr_dropped: Counter,
    cdr_write_errors: Counter,
    websocket_connections: Gauge,
    http_requests: [Counter; 5],
    config_reloads: [Counter; 2],
    auth_failures: Counter,
    auth_bans: Counter,
    auth_refused: Counter,
}

/// A trunk's gauges.
#[derive(Debug)]
struct TrunkGauges {
    up: Gauge,
    registered: Gauge,
}

impl TrunkGauges {
    fn register(trunk: &TrunkName) -> TrunkGauges {
        let label = trunk.as_str().to_string();
        TrunkGauges {
            up: gauge!("landline_trunk_up", "trunk" => label.clone()),
            registered: gauge!("landline_trunk_registered", "trunk" => label),
        }
    }
}

#[derive(Debug)]
struct ShardMetrics {
    calls: Gauge,
    webrtc_sessions: Gauge,
    packets_in: Counter,
    packets_out: Counter,
    packets_dropped: Counter,
    packets_lost: Counter,
    samples_concealed: Counter,
    panics: Counter,
    events_dropped: Counter,
}

impl Metrics {
    /// Describes every metric and registers every handle with `recorder`, for the configured
    /// trunks and `shards` media shards.
    pub fn register(recorder: &dyn Recorder, trunks: &[TrunkName], shards: usize) -> Metrics {
        with_local_recorder(recorder, || {
            describe();
            gauge!("landline_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            let by_direction =
                |d: Direction| gauge!("landline_calls_active", "direction" => d.as_str());
            let finished = |d: Direction| {
                Outcome::ALL.map(|o| {
                    counter!("landline_calls_finished_total",
                        "direction" => d.as_str(), "outcome" => o.as_str())
                })
            };
            Metrics {
                calls_active: Direction::ALL.map(by_direction),
                calls_finished: Direction::ALL.map(finished),
                trunks: RwLock::new(
                    trunks
                        .iter()
                        .map(|t| (t.clone(), TrunkGauges::register(t)))
                        .collect(),
                ),
                registrations: gauge!("landline_registrations"),
                shards: (0..shards).map(ShardMetrics::register).collect(),
                rtp_ports: gauge!("landline_rtp_ports"),
                rtp_ports_in_use: gauge!("landline_rtp_ports_in_use"),
                panics: counter!("landline_panics_total"),
                cdr_dropped: counter!("landline_cdr_dropped_total"),
                cdr_write_errors: counter!("landline_cdr_write_errors_total"),
                websocket_connections: gauge!("landline_websocket_connections"),
                http_requests: STATUS_CLASSES
                    .map(|class| counter!("landline_http_requests_total", "status" => class)),
                config_reloads: ["applied", "refused"]
                    .map(|result| counter!("landline_config_reloads_total", "result" => result)),
                auth_failures: counter!("landline_auth_failures_total"),
                auth_bans: counter!("landline_auth_bans_total"),
                auth_refused: counter!("landline_auth_refused_total"),
            }
        })
    }

    /// A call was set up (before it rings).
    pub fn call_started(&self, direction: Direction) {
        self.calls_active[direction as usize].increment(1.0);
    }

    /// A call that [`call_started`](Self::call_started) ended.
    pub fn call_finished(&self, direction: Direction, outcome: Outcome) {
        self.calls_active[direction as usize].decrement(1.0);
        self.calls_finished[direction as usize][outcome as usize].increment(1);
    }

    /// A trunk's probe state changed (unknown names are ignored: the label set is the config's).
    pub fn set_trunk_up(&self, trunk: &TrunkName, up: bool) {
        self.with_trunk(trunk, |g| g.up.set(if up { 1.0 } else { 0.0 }));
    }

    /// A registration trunk's registration succeeded or lapsed.
    pub fn set_trunk_registered(&self, trunk: &TrunkName, registered: bool) {
        self.with_trunk(trunk, |g| {
            g.registered.set(if registered { 1.0 } else { 0.0 })
        });
    }

    /// A trunk added by a configuration reload gets its gauges (through the process-wide
    /// recorder, which [`start`] installed); a known name keeps its own.
    pub fn add_trunk(&self, trunk: &TrunkName) {
        let mut trunks = self.trunks.write().unwrap_or_else(|e| e.into_inner());
        trunks
            .entry(trunk.clone())
            .or_insert_with(|| TrunkGauges::register(trunk));
    }

    /// The SIP stack's running totals of failed authentications, bans and requests refused
    /// from banned sources (copied in by call control's housekeeping, so a flood of guesses
    /// costs no metrics call per guess).
    pub fn set_auth_bans(&self, stats: BanStats) {
        self.auth_failures.absolute(stats.failures);
        self.auth_bans.absolute(stats.bans);
        self.auth_refused.absolute(stats.refused);
    }

    /// A configuration reload was applied (`true`) or refused as invalid (`false`).
    pub fn config_reloaded(&self, applied: bool) {
        self.config_reloads[usize::from(!applied)].increment(1);
    }

    fn with_trunk(&self, trunk: &TrunkName, f: impl FnOnce(&TrunkGauges)) {
        // A poisoned lock still holds valid gauges: a panic elsewhere must not silence them.
        let trunks = self.trunks.read().unwrap_or_else(|e| e.into_inner());
        if let Some(gauges) = trunks.get(trunk) {
            f(gauges);
        }
    }

    /// The number of client registrations (bindings) now held by the registrar.
    pub fn set_registrations(&self, bindings: usize) {
        self.registrations.set(bindings as f64);
    }

    /// Counts a panic anywhere in the process (the panic hook calls this).
    pub fn panicked(&self) {
        self.panics.increment(1);
    }

    /// A call record was dropped because the writer could not keep up.
    pub(crate) fn cdr_dropped(&self) {
        self.cdr_dropped.increment(1);
    }

    /// Writing a call record failed.
    pub(crate) fn cdr_write_failed(&self) {
        self.cdr_write_errors.increment(1);
    }

    /// A SIP WebSocket connection opened.
    pub(crate) fn websocket_opened(&self) {
        self.websocket_connections.increment(1.0);
    }

    /// A SIP WebSocket connection that [`websocket_opened`](Self::websocket_opened) closed.
    pub(crate) fn websocket_closed(&self) {
        self.websocket_connections.decrement(1.0);
    }

    /// The HTTP listener answered with `status` (counted by class: 1xx–5xx).
    pub(crate) fn http_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.http_requests[class].increment(1);
    }

    /// Copies the media shards' counters and the RTP port use into the metrics.
    pub fn sample_media(&self, plane: &MediaPlane) {
        for (shard, counters) in self.shards.iter().zip(plane.counters()) {
            let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            shard.calls.set(load(&counters.calls) as f64);
            shard
                .webrtc_sessions
                .set(load(&counters.webrtc_sessions) as f64);
            shard.packets_in.absolute(load(&counters.packets_in));
            shard.packets_out.absolute(load(&counters.packets_out));
            shard
                .packets_dropped
                .absolute(load(&counters.packets_dropped));
            shard.packets_lost.absolute(load(&counters.packets_lost));
            shard
                .samples_concealed
                .absolute(load(&counters.samples_concealed));
            shard.panics.absolute(load(&counters.panics));
            shard
                .events_dropped
                .absolute(load(&counters.events_dropped));
        }
        let ports = plane.ports();
        self.rtp_ports.set(ports.capacity() as f64);
        self.rtp_ports_in_use
            .set(ports.capacity().saturating_sub(ports.available()) as f64);
    }
}

impl ShardMetrics {
    fn register(index: usize) -> ShardMetrics {
        let shard = index.to_string();
        let c = |name: &'static str| counter!(name, "shard" => shard.clone());
        ShardMetrics {
            calls: gauge!("landline_shard_calls", "shard" => shard.clone()),
            webrtc_sessions: gauge!("landline_shard_webrtc_sessions", "shard" => shard.clone()),
            packets_in: c("landline_shard_packets_in_total"),
            packets_out: c("landline_shard_packets_out_total"),
            packets_dropped: c("landline_shard_packets_dropped_total"),
            packets_lost: c("landline_shard_packets_lost_total"),
            samples_concealed: c("landline_shard_samples_concealed_total"),
            panics: c("landline_shard_panics_total"),
            events_dropped: c("landline_shard_events_dropped_total"),
        }
    }
}

fn describe() {
    describe_gauge!(
        "landline_build_info",
        "Always 1; the version label says which build runs."
    );
    describe_gauge!(
        "landline_calls_active",
        Unit::Count,
        "Calls set up and not yet ended."
    );
    describe_counter!(
        "landline_calls_finished_total",
        Unit::Count,
        "Calls ended, by direction and outcome."
    );
    describe_gauge!(
        "landline_trunk_up",
        "1 when the trunk's OPTIONS probes succeed, else 0."
    );
    describe_gauge!(
        "landline_trunk_registered",
        "1 while a registration trunk is registered."
    );
    describe_counter!(
        "landline_config_reloads_total",
        Unit::Count,
        "SIGHUP reloads of the configuration, applied or refused (invalid: the running one stays)."
    );
    describe_gauge!(
        "landline_registrations",
        Unit::Count,
        "Client registrations (bindings) held."
    );
    describe_gauge!(
        "landline_shard_calls",
        Unit::Count,
        "Calls running on each media shard."
    );
    describe_gauge!(
        "landline_shard_webrtc_sessions",
        Unit::Count,
        "Browser (WebRTC) legs each media shard runs on its WebRTC port."
    );
    describe_counter!(
        "landline_shard_packets_in_total",
        Unit::Count,
        "RTP packets received."
    );
    describe_counter!(
        "landline_shard_packets_out_total",
        Unit::Count,
        "RTP packets sent."
    );
    describe_counter!(
        "landline_shard_packets_dropped_total",
        Unit::Count,
        "Datagrams dropped: unknown source, malformed, or a failed send."
    );
    describe_counter!(
        "landline_shard_packets_lost_total",
        Unit::Count,
        "Packets the far ends lost on the way to us."
    );
    describe_counter!(
        "landline_shard_samples_concealed_total",
        Unit::Count,
        "8 kHz samples rebuilt by FEC or PLC, or filled with comfort noise."
    );
    describe_counter!(
        "landline_shard_panics_total",
        Unit::Count,
        "Calls ended by a panic caught in their media step."
    );
    describe_counter!(
        "landline_shard_events_dropped_total",
        Unit::Count,
        "Media events dropped because the control plane did not read them."
    );
    describe_gauge!(
        "landline_rtp_ports",
        Unit::Count,
        "Even RTP ports in the configured range."
    );
    describe_gauge!(
        "landline_rtp_ports_in_use",
        Unit::Count,
        "RTP ports held by calls."
    );
    describe_counter!(
        "landline_panics_total",
        Unit::Count,
        "Panics in any thread of the process."
    );
    describe_counter!(
        "landline_cdr_dropped_total",
        Unit::Count,
        "Call records dropped because the writer fell behind."
    );
    describe_counter!(
        "landline_cdr_write_errors_total",
        Unit::Count,
        "Call records that could not be written."
    );
    describe_gauge!(
        "landline_websocket_connections",
        Unit::Count,
        "SIP over WebSocket connections open (WS and WSS)."
    );
    describe_counter!(
        "landline_auth_failures_total",
        Unit::Count,
        "Digest authentications that failed (wrong password, unknown user, bad credentials) from addresses that can be banned."
    );
    describe_counter!(
        "landline_auth_bans_total",
        Unit::Count,
        "Source addresses banned for failing authentication sip.auth_failures_before_ban times."
    );
    describe_counter!(
        "landline_auth_refused_total",
        Unit::Count,
        "REGISTERs and new INVITEs dropped unanswered because their source was banned."
    );
    describe_counter!(
        "landline_http_requests_total",
        Unit::Count,
        "HTTP requests answered (page, files, WebSocket upgrades), by status class."
    );
}

/// Errors starting the exporter.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The metrics listener could not be bound.
    #[error(
        "cannot listen for metrics on {address}: {source}; if another process holds the port \
         (another landline?), stop it, or set another address in `metrics.listen`"
    )]
    Bind {
        /// The configured address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The running exporter: its address and the task serving scrapes.
#[derive(Debug)]
pub struct Exporter {
    /// Where it listens (the real port when the config said port 0).
    pub local_addr: SocketAddr,
    /// Renders the current values (for tests and an admin page).
    pub handle: PrometheusHandle,
    task: JoinHandle<()>,
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Registers the metrics, installs the recorder process-wide (so `tracing`-style macro use
/// elsewhere is exported too) and serves `config.path` on `config.listen`.
///
/// Must be called inside a tokio runtime. A second call in one process (tests) keeps its own
/// registry: only the first one becomes the global recorder.
pub async fn start(
    config: &MetricsConfig,
    trunks: &[TrunkName],
    shards: usize,
) -> Result<(Metrics, Exporter), MetricsError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| MetricsError::Bind {
            address: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| MetricsError::Bind {
        address: config.listen,
        source,
    })?;
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let metrics = Metrics::register(&recorder, trunks, shards);
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::debug!("a global metrics recorder is already installed; keeping the first");
    }
    let task = tokio::spawn(serve(listener, handle.clone(), config.path.clone()));
    tracing::info!(%local_addr, path = %config.path, "metrics exporter listening");
    Ok((
        metrics,
        Exporter {
            local_addr,
            handle,
            task,
        },
    ))
}

/// How long a scraper may take to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most request bytes read before answering.
const MAX_REQUEST: usize = 8192;

async fn serve(listener: TcpListener, handle: PrometheusHandle, path: String) {
    let path: std::sync::Arc<str> = path.into();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, usually; back off instead of spinning.
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        let path = path.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &handle, &path).await {
                tracing::debug!(error = %e, "metrics scrape failed");
            }
        });
    }
}

/// Answers one HTTP/1 request and closes: Prometheus scrapes do not need more.
async fn answer(
    mut stream: TcpStream,
    handle: &PrometheusHandle,
    path: &str,
) -> std::io::Result<()> {
    let mut request = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    let read_head = async {
        while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            request.extend_from_slice(&buf[..n]);
        }
        Ok::<(), std::io::Error>(())
    };
    tokio::time::timeout(REQUEST_TIMEOUT, read_head)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let line = request.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let target = target.split('?').next().unwrap_or("");
    let (status, body) = match (method, target) {
        ("GET", t) if t == path => {
            handle.run_upkeep();
            ("200 OK", handle.render())
        }
        ("GET", "/health") => ("200 OK", "OK\n".to_string()),
        ("GET", _) => ("404 Not Found", format!("metrics are at {path}\n")),
        _ => ("405 Method Not Allowed", String::new()),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("exporter accepts");
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = String::new();
        stream.read_to_string(&mut response).await.expect("read");
        response
    }

    #[tokio::test]
    async fn the_exporter_serves_every_described_metric() {
        let config = MetricsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            path: "/metrics".to_string(),
        };
        let trunk = TrunkName::try_from("carrier-a".to_string()).unwrap();
        let (metrics, exporter) = start(&config, std::slice::from_ref(&trunk), 2)
            .await
            .expect("binds");
        metrics.call_started(Direction::Outbound);
        metrics.call_started(Direction::Outbound);
        metrics.call_finished(Direction::Outbound, Outcome::Busy);
        metrics.set_trunk_up(&trunk, true);
        metrics.set_registrations(3);
        metrics.set_auth_bans(BanStats {
            failures: 12,
            bans: 1,
            refused: 7,
        });

        let response = get(exporter.local_addr, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        for name in METRIC_NAMES {
            assert!(
                response.contains(&format!("# TYPE {name} ")),
                "{name} missing:\n{response}"
            );
        }
        assert!(
            response.contains("landline_calls_active{direction=\"outbound\"} 1"),
            "{response}"
        );
        assert!(
            response.contains(
                "landline_calls_finished_total{direction=\"outbound\",outcome=\"busy\"} 1"
            ),
            "{response}"
        );
        assert!(
            response.contains("landline_trunk_up{trunk=\"carrier-a\"} 1"),
            "{response}"
        );
        assert!(
            response.contains("landline_shard_calls{shard=\"1\"} 0"),
            "{response}"
        );
        assert!(response.contains("landline_registrations 3"), "{response}");
        for line in [
            "landline_auth_failures_total 12",
            "landline_auth_bans_total 1",
            "landline_auth_refused_total 7",
        ] {
            assert!(response.contains(line), "{line}:\n{response}");
        }

        let other = get(exporter.local_addr, "/other").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
    }
}
