//! Sans-IO SIP for landline: state machines fed bytes and time, returning what to send.
//!
//! Nothing here opens a socket, spawns a task or reads a clock. Callers pass received bytes with
//! their source and transport and the current [`std::time::Instant`]; they drain bytes to send,
//! events, and the next time to wake. The gateway's shell does the I/O.

pub mod auth;
pub mod message;
pub mod sdp;
pub mod transaction;
pub mod ua;
