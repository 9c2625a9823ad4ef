//! Carrier trunks: numbers, routes, and (with the signalling core) trunk state and probes.

pub mod number;
pub mod routes;
