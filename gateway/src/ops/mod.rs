//! Operations: what an operator sees and controls around the calls.
//!
//! - [`metrics`]: the Prometheus exporter and the registered handles the gateway updates.
//! - [`cdr`]: call records as JSON lines, written off the call path.
//! - [`logging`]: `tracing` output, text or JSON.
//! - [`service`]: systemd readiness and watchdog, signals, the panic hook.

pub mod cdr;
pub mod logging;
pub mod metrics;
pub mod service;
