//! landline, the gateway: the I/O shell and the policy around the sans-IO SIP and media cores.
//!
//! - [`media`]: the sharded media plane (one thread per shard, each owning its calls).
//! - [`config`]: the typed, validated configuration.
//! - [`ops`]: metrics, call records, logging, systemd integration.
//! - [`run()`]: starts everything from a [`config::Config`] and runs until SIGTERM/SIGINT.

pub mod config;
pub mod edge;
pub mod media;
pub mod ops;
pub mod trunks;

mod run;

pub use run::{RunError, run};
