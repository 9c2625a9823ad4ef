//! Living under a service manager: systemd readiness and watchdog (`Type=notify`), the signals
//! that stop the gateway, and a panic hook that counts and logs every panic.
//!
//! Outside systemd (`NOTIFY_SOCKET` unset) the notifications do nothing.

use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::JoinHandle;

use super::metrics::Metrics;

/// Tells systemd the listeners are up (`READY=1`) with a status line.
pub fn notify_ready(status: &str) {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready, NotifyState::Status(status)]) {
        tracing::warn!(error = %e, "cannot notify systemd of readiness");
    }
}

/// Tells systemd the gateway is stopping (`STOPPING=1`).
pub fn notify_stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// When systemd set `WatchdogSec=`, pings it at half the period from a task; a stalled
/// runtime then misses pings and systemd restarts the service.
pub fn spawn_watchdog() -> Option<JoinHandle<()>> {
    let period = sd_notify::watchdog_enabled()?;
    let every = (period / 2).max(Duration::from_millis(100));
    tracing::info!(?period, "systemd watchdog enabled");
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            if let Err(e) = sd_notify::notify(&[NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "cannot ping the systemd watchdog");
            }
        }
    }))
}

/// Why the gateway is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM (systemd stop).
    Terminate,
    /// SIGINT (Ctrl-C).
    Interrupt,
}

/// The signals that stop (or would reload) the gateway, installed up front so none is missed
/// between start-up and the first wait.
#[derive(Debug)]
pub struct StopSignals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl StopSignals {
    /// Installs the handlers (SIGTERM, SIGINT, SIGHUP).
    pub fn install() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for SIGTERM or SIGINT. SIGHUP (reload) is logged and ignored until reload exists.
    pub async fn wait(&mut self) -> Stop {
        loop {
            tokio::select! {
                _ = self.term.recv() => return Stop::Terminate,
                _ = self.int.recv() => return Stop::Interrupt,
                _ = self.hup.recv() => {
                    tracing::warn!(
                        "SIGHUP: configuration reload is not implemented yet; restart to apply changes"
                    );
                }
            }
        }
    }
}

/// Counts every panic in `metrics` and logs it through `tracing`, then runs the previous hook
/// (which prints the message and, with `RUST_BACKTRACE`, the backtrace).
pub fn install_panic_hook(metrics: Arc<Metrics>) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        metrics.panicked();
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            location = info.location().map(ToString::to_string).unwrap_or_default(),
            "panic: {}",
            panic_message(info)
        );
        previous(info);
    }));
}

fn panic_message<'a>(info: &'a std::panic::PanicHookInfo<'_>) -> &'a str {
    if let Some(s) = info.payload().downcast_ref::<&str>() {
        s
    } else if let Some(s) = info.payload().downcast_ref::<String>() {
        s
    } else {
        "(non-string payload)"
    }
}
