//! Runnable examples of the wsc gateway; see the `[[example]]` targets of this package.
//!
//! The two gateway examples keep their logic here, so that the integration tests in
//! `tests/` run exactly what the examples run, with real WebSocket clients.

pub mod gateway_basic;
pub mod gateway_callbacks;

/// The examples' configuration file (every listener on a free local port).
pub const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gateway.yaml");
