//! Test support shared by the workspace's integration tests (a dev-dependency only): every
//! listener on `127.0.0.1:0`, real WebSocket clients, raw HTTP/1.1 exchanges, and bounded
//! waits, so that a broken test fails with a message instead of hanging.
//!
//! Each crate keeps only its own start-up (a `gateway-server` `Server`, a `gateway`
//! facade, an example) in its `tests/support` module and calls these for the rest.

pub mod cluster;
pub mod http;
pub mod process;
pub mod redis_cluster;
pub mod redis_server;
pub mod sse;
pub mod tls;
pub mod ws;

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use wsc_config::GatewayConfig;

pub use ws::Client;

/// The bound on every single wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// The default configuration with every listener on `127.0.0.1` and a free port.
pub fn local_config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.wsc.node_ip = "127.0.0.1".to_owned();
    config.wsc.node_port = 0;
    config.http.host = "127.0.0.1".to_owned();
    config.http.port = 0;
    config.grpc.host = "127.0.0.1".to_owned();
    config.grpc.port = 0;
    config
}

/// A port that was free a moment ago on 127.0.0.1 (for processes that must be told their
/// port before they bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}

/// The next item of a channel (fed by a callback, for example), within [`WAIT`].
pub async fn recv<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("an item in time")
        .expect("channel open")
}

/// Everything a channel holds right now.
pub fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        out.push(item);
    }
    out
}
