//! Carrier trunks: routes, and each trunk's run-time state (probes, calls, registration).

pub mod routes;
pub mod state;
