//! Drives a running `gateway-server` from outside, as its clients and operators would:
//!
//! - [`abuse`]: the abuse suite, hostile clients over real sockets, each attack with its
//!   expected outcome, the server's memory and descriptors measured around it;
//! - [`bench`]: the side-by-side scenarios (the gateway, the bare baseline, socketioxide);
//! - [`load`]: the load generator (the gateway's protocol, raw frames, Socket.IO), with
//!   latency histograms, exact loss and duplicate counts, and CPU on both sides;
//! - [`scale`]: 100,000 connections over several gateway nodes and several generator
//!   processes, and the total server memory;
//! - [`server`]: a server process under test, and what `/proc` says about it;
//! - [`soak`]: a bounded mixed workload, sampled every few seconds, and its checks;
//! - [`raw`]: a WebSocket client on a raw socket, for frames no library would send.
//!
//! `cargo xtask abuse` runs the suite against the release binary and prints the table that
//! docs/security.md records; `crates/gateway-server/tests/abuse.rs` runs every attack in the
//! test command.

pub mod abuse;
pub mod bench;
pub mod load;
pub mod raw;
pub mod scale;
pub mod server;
pub mod soak;
