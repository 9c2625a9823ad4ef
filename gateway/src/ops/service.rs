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

/// What a signal asks of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceSignal {
    /// SIGTERM (systemd stop): drain and exit.
    Terminate,
    /// SIGINT (Ctrl-C): drain and exit.
    Interrupt,
    /// SIGHUP (`systemctl reload`): read the configuration again.
    Reload,
}

/// The signals the gateway acts on, installed up front so none is missed between start-up and
/// the first wait.
#[derive(Debug)]
pub struct ServiceSignals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl ServiceSignals {
    /// Installs the handlers (SIGTERM, SIGINT, SIGHUP).
    pub fn install() -> std::io::Result<ServiceSignals> {
        Ok(ServiceSignals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> ServiceSignal {
        tokio::select! {
            _ = self.term.recv() => ServiceSignal::Terminate,
            _ = self.int.recv() => ServiceSignal::Interrupt,
            _ = self.hup.recv() => ServiceSignal::Reload,
        }
    }

    /// Waits for SIGTERM or SIGINT; a SIGHUP meanwhile is logged and ignored (while
    /// draining there is nothing left to reload for).
    pub async fn next_stop(&mut self) -> ServiceSignal {
        loop {
            match self.next().await {
                ServiceSignal::Reload => tracing::info!("SIGHUP while stopping: ignored"),
                stop => return stop,
            }
        }
    }
}

/// Tells systemd a reload started (`RELOADING=1`); [`notify_ready`] ends it.
pub fn notify_reloading() {
    let _ = sd_notify::notify(&[NotifyState::Reloading]);
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

/// Raises the soft limit on open files to the hard one, as servers do: a shell's default soft
/// limit (often 1024) would run out at a few hundred calls and connections, while the hard
/// limit (or systemd's `LimitNOFILE=`) is what the operator allows. Returns the limit in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct we pass, which lives for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass, which lives for the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok(raised.rlim_cur);
        }
    }
    Ok(limit.rlim_cur)
}
