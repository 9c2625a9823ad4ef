//! landline, the gateway: the I/O shell and the policy around the sans-IO SIP and media cores.
//!
//! - [`edge`]: SIP transports (UDP, TCP, TLS) around the sans-IO user agent.
//! - [`calls`]: call control, the B2BUA between clients and trunks.
//! - [`media`]: the sharded media plane (one thread per shard, each owning its calls).
//! - [`trunks`]: routes and trunk state.
//! - [`config`]: the typed, validated configuration.
//! - [`ops`]: metrics, call records, logging, systemd integration.
//! - [`run()`]: starts everything from a [`config::Config`] and runs until SIGTERM/SIGINT.

pub mod calls;
pub mod config;
pub mod edge;
pub mod media;
pub mod ops;
pub mod trunks;

mod run;

pub use run::{RunError, run};
