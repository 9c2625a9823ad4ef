//! landline, the gateway: the I/O shell and the policy around the sans-IO SIP and media cores.
//!
//! - [`media`]: the sharded media plane (one thread per shard, each owning its calls).

pub mod config;
pub mod edge;
pub mod media;
pub mod trunks;
