//! Carrier trunks: routes, and (with the signalling core) trunk state and probes.

pub mod routes;
