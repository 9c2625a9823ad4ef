//! Shared fixtures for landline benchmarks.
