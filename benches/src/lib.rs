//! Benchmarks of landline's hot paths: shared fixtures and workloads.
//!
//! Wall time comes from criterion (`cargo bench -p landline-benches`), instruction counts from
//! callgrind (`benches/callgrind.sh`), state size from the `state` binary. All three run the same
//! [`workloads`] on the same [`fixtures`], so their figures describe the same work; see
//! `benches/README.md` for the results and how to rerun them.

pub mod fixtures;
pub mod signal;
pub mod webrtc;
pub mod workloads;

pub use fixtures::{Fixtures, RtpLoop};
pub use workloads::{Workload, WorkloadName};
