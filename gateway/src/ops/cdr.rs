//! Call detail records: one JSON object per finished call, appended to a file.
//!
//! Calls hand a [`CallRecord`] to a [`CdrWriter`] (a non-blocking `try_send` into a bounded
//! channel); a dedicated thread does the file I/O, so a slow or full disk delays records, never
//! calls. When the channel is full the record is dropped, counted and logged.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::SystemTime;

use serde::{Serialize, Serializer};
use tokio::sync::mpsc;

use super::metrics::{Direction, Metrics, Outcome};
use crate::media::CallMediaStats;

/// Records waiting for the disk before new ones are dropped.
const QUEUE: usize = 4096;

/// Which side ended a call (pingora's upstream/downstream/internal): it decides the hangup
/// cause and whether a failure was ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndedBy {
    /// The user's client (BYE, CANCEL, an error response).
    Client,
    /// The carrier's trunk.
    Trunk,
    /// The gateway itself (media timeout, overload, shutdown, a bug).
    Gateway,
}

/// One finished call.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// The gateway's own id for the call (the same in logs).
    pub call_id: String,
    /// The SIP Call-ID of the client leg, if there was one.
    pub client_call_id: Option<String>,
    /// The SIP Call-ID of the trunk leg, if one was set up.
    pub trunk_call_id: Option<String>,
    /// Which way the call went.
    pub direction: Direction,
    /// The user who called or was called.
    pub user: Option<String>,
    /// The calling number (E.164 where known).
    pub from: String,
    /// The called number (E.164 where known, or a built-in number).
    pub to: String,
    /// The trunk that carried the call (the last one tried).
    pub trunk: Option<String>,
    /// When the call was set up.
    #[serde(serialize_with = "rfc3339")]
    pub start: SystemTime,
    /// When it was answered.
    #[serde(serialize_with = "rfc3339_opt")]
    pub answer: Option<SystemTime>,
    /// When it ended.
    #[serde(serialize_with = "rfc3339")]
    pub end: SystemTime,
    /// Seconds from answer to end (0 if unanswered): what a carrier bills.
    pub billable_seconds: f64,
    /// How it ended.
    pub outcome: Outcome,
    /// The final SIP status of the call's setup (200 when answered).
    pub sip_status: u16,
    /// Who ended it.
    pub ended_by: EndedBy,
    /// Why, in words (`normal_clearing`, `media_timeout`, `carrier_503`, ...).
    pub hangup_cause: String,
    /// The RFC 3326 `Reason` the call's hang-up carried: a leg's BYE or CANCEL's (passed on
    /// to the other leg), or the gateway's own when it ended the call (media timeout,
    /// shutdown: `Q.850;cause=41;text="Media timeout"`).
    pub hangup_reason: Option<String>,
    /// Media counters, when media ran.
    pub media: Option<MediaRecord>,
}

impl CallRecord {
    /// Seconds between `answer` and `end`, for `billable_seconds`.
    pub fn billable(answer: Option<SystemTime>, end: SystemTime) -> f64 {
        answer
            .and_then(|a| end.duration_since(a).ok())
            .map_or(0.0, |d| (d.as_millis() as f64) / 1000.0)
    }
}

/// A call's media counters in its record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MediaRecord {
    /// Packets received from the client.
    pub client_packets_in: u64,
    /// Packets received from the trunk.
    pub trunk_packets_in: u64,
    /// Packets the client's stream lost before reaching us.
    pub client_lost: u64,
    /// Packets the trunk's stream lost before reaching us.
    pub trunk_lost: u64,
    /// 8 kHz samples concealed, both ways.
    pub concealed_samples: u64,
}

impl From<CallMediaStats> for MediaRecord {
    fn from(s: CallMediaStats) -> Self {
        MediaRecord {
            client_packets_in: s.client_packets_in,
            trunk_packets_in: s.trunk_packets_in,
            client_lost: s.client_lost,
            trunk_lost: s.trunk_lost,
            concealed_samples: s.concealed_samples,
        }
    }
}

fn rfc3339<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime_serde::re::humantime::format_rfc3339_millis(
        *time,
    ))
}

fn rfc3339_opt<S: Serializer>(time: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match time {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// Errors opening the record file (at start, so a bad path stops the gateway before it binds).
#[derive(Debug, thiserror::Error)]
pub enum CdrError {
    /// The file cannot be opened for appending.
    #[error("cannot open the CDR file {path}: {source}")]
    Open {
        /// The configured path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The writer thread could not be started.
    #[error("cannot start the CDR writer: {0}")]
    Spawn(#[source] std::io::Error),
}

/// Hands records to the writer thread. Clone it freely.
#[derive(Debug, Clone)]
pub struct CdrWriter {
    records: mpsc::Sender<CallRecord>,
    metrics: Arc<Metrics>,
    reopen: CdrReopener,
}

/// Asks the writer to open its file again by name before the next record (SIGHUP), so a
/// log rotation that renames the file moves records to a fresh one without a restart.
#[derive(Debug, Clone, Default)]
pub struct CdrReopener(Arc<AtomicBool>);

impl CdrReopener {
    /// The next record goes to the file now at the configured path.
    pub fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn requested(&self) -> bool {
        self.0.swap(false, Ordering::AcqRel)
    }
}

/// The writer thread; [`wait`](CdrThread::wait) returns once every [`CdrWriter`] is dropped and
/// the queue is written out.
#[derive(Debug)]
pub struct CdrThread(JoinHandle<()>);

impl CdrWriter {
    /// Opens `path` for appending (creating it) and starts the writer thread.
    pub fn start(path: &Path, metrics: Arc<Metrics>) -> Result<(CdrWriter, CdrThread), CdrError> {
        let file = open(path)?;
        let (records, queue) = mpsc::channel(QUEUE);
        let thread_metrics = metrics.clone();
        let reopen = CdrReopener::default();
        let output = Output {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            reopen: reopen.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("cdr-writer".to_string())
            .spawn(move || write_records(output, queue, &thread_metrics))
            .map_err(CdrError::Spawn)?;
        Ok((
            CdrWriter {
                records,
                metrics,
                reopen,
            },
            CdrThread(thread),
        ))
    }

    /// A handle that makes the writer reopen its file (see [`CdrReopener`]).
    pub fn reopener(&self) -> CdrReopener {
        self.reopen.clone()
    }

    /// Queues a record without waiting; when the queue is full the record is dropped and counted.
    pub fn record(&self, record: CallRecord) {
        if let Err(e) = self.records.try_send(record) {
            self.metrics.cdr_dropped();
            let record = match &e {
                mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
            };
            tracing::warn!(call_id = %record.call_id, "call record dropped: the writer is behind");
        }
    }
}

impl CdrThread {
    /// Blocks until the writer has written everything queued; call after dropping the writers.
    pub fn wait(self) {
        if self.0.join().is_err() {
            tracing::error!("the CDR writer thread panicked");
        }
    }
}

fn open(path: &Path) -> Result<File, CdrError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| CdrError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// The writer thread's file.
struct Output {
    path: PathBuf,
    out: BufWriter<File>,
    reopen: CdrReopener,
}

/// Writes records as they come; flushes whenever the queue is momentarily empty, so records
/// reach the file promptly without a syscall per record under load.
fn write_records(output: Output, mut queue: mpsc::Receiver<CallRecord>, metrics: &Metrics) {
    let Output {
        path,
        mut out,
        reopen,
    } = output;
    let mut line = Vec::with_capacity(1024);
    while let Some(first) = queue.blocking_recv() {
        if reopen.requested() {
            match open(&path) {
                Ok(file) => {
                    if let Err(e) = out.flush() {
                        metrics.cdr_write_failed();
                        tracing::error!(error = %e, "call records not flushed");
                    }
                    out = BufWriter::new(file);
                    tracing::info!(path = %path.display(), "call record file reopened");
                }
                Err(e) => {
                    metrics.cdr_write_failed();
                    tracing::error!(error = %e, "call record file not reopened: still writing to the old one");
                }
            }
        }
        let mut next = Some(first);
        while let Some(record) = next {
            line.clear();
            let written = serde_json::to_writer(&mut line, &record)
                .map_err(std::io::Error::from)
                .and_then(|()| {
                    line.push(b'\n');
                    out.write_all(&line)
                });
            if let Err(e) = written {
                metrics.cdr_write_failed();
                tracing::error!(call_id = %record.call_id, error = %e, "call record not written");
            }
            next = queue.try_recv().ok();
        }
        if let Err(e) = out.flush() {
            metrics.cdr_write_failed();
            tracing::error!(error = %e, "call records not flushed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn record(n: u32) -> CallRecord {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let answer = Some(start + Duration::from_millis(2500));
        let end = start + Duration::from_secs(65);
        CallRecord {
            call_id: format!("call-{n}"),
            client_call_id: Some("abc@client".to_string()),
            trunk_call_id: None,
            direction: Direction::Outbound,
            user: Some("alice".to_string()),
            from: "+15551230001".to_string(),
            to: "+442079460000".to_string(),
            trunk: Some("carrier-a".to_string()),
            start,
            answer,
            end,
            billable_seconds: CallRecord::billable(answer, end),
            outcome: Outcome::Answered,
            sip_status: 200,
            ended_by: EndedBy::Client,
            hangup_cause: "normal_clearing".to_string(),
            hangup_reason: Some("Q.850;cause=16;text=\"Normal call clearing\"".to_string()),
            media: Some(MediaRecord {
                client_packets_in: 3000,
                ..MediaRecord::default()
            }),
        }
    }

    #[test]
    fn records_are_appended_as_parseable_json_lines() {
        let path = std::env::temp_dir().join(format!("landline-cdr-{}.jsonl", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = Arc::new(Metrics::register(&recorder, &[], 1));
        for round in 0..2 {
            let (writer, thread) = CdrWriter::start(&path, metrics.clone()).expect("opens");
            for n in 0..3 {
                writer.record(record(round * 3 + n));
            }
            drop(writer);
            thread.wait();
        }
        let text = std::fs::read_to_string(&path).expect("written");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("each line is JSON"))
            .collect();
        assert_eq!(lines.len(), 6, "appended, not truncated");
        let first = &lines[0];
        assert_eq!(first["call_id"], "call-0");
        assert_eq!(lines[5]["call_id"], "call-5");
        assert_eq!(first["direction"], "outbound");
        assert_eq!(first["outcome"], "answered");
        assert_eq!(first["ended_by"], "client");
        assert_eq!(first["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(first["answer"], "2023-11-14T22:13:22.500Z");
        assert_eq!(first["billable_seconds"], 62.5);
        assert_eq!(first["trunk_call_id"], serde_json::Value::Null);
        assert_eq!(first["media"]["client_packets_in"], 3000);
        assert_eq!(
            first["hangup_reason"],
            "Q.850;cause=16;text=\"Normal call clearing\""
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn an_unwritable_path_fails_at_start() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = Arc::new(Metrics::register(&recorder, &[], 1));
        let e = CdrWriter::start(Path::new("/nonexistent/dir/cdr.jsonl"), metrics).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/dir/cdr.jsonl"), "{e}");
    }

    #[test]
    fn a_reopen_moves_the_next_records_to_a_fresh_file_after_a_rotation() {
        let path =
            std::env::temp_dir().join(format!("landline-cdr-rot-{}.jsonl", std::process::id()));
        let rotated = path.with_extension("jsonl.1");
        let _ = std::fs::remove_file(&path);
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let metrics = Arc::new(Metrics::register(&recorder, &[], 1));
        let (writer, thread) = CdrWriter::start(&path, metrics).expect("opens");
        writer.record(record(0));
        // Written out before the rename (the writer flushes when its queue is empty).
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&path)
            .unwrap_or_default()
            .is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "first record never written"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::rename(&path, &rotated).expect("rotate");
        writer.reopener().request();
        writer.record(record(1));
        drop(writer);
        thread.wait();
        let old = std::fs::read_to_string(&rotated).expect("rotated file");
        let new = std::fs::read_to_string(&path).expect("a fresh file");
        assert!(old.contains("call-0") && !old.contains("call-1"), "{old}");
        assert!(new.contains("call-1") && !new.contains("call-0"), "{new}");
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&rotated);
    }
}
