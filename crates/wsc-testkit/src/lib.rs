//! Test support shared by the workspace's integration tests (a dev-dependency only): every
//! listener on `127.0.0.1:0`, real WebSocket clients, raw HTTP/1.1 exchanges, and bounded
//! waits, so that a broken test fails with a message instead of hanging.
//!
//! Each crate keeps only its own start-up (a `gateway-server` `Server`, a `gateway`
//! facade, an example) in its `tests/support` module and calls these for the rest.

pub mod cluster;
pub mod fuzz;
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

/// A free port on 127.0.0.1 for a process that must be told its port before it binds.
///
/// Binding port 0 and handing its number on races: between the check and the child's bind,
/// any listener on port 0 (every in-process server of the suite) may get the same number.
/// So the ports come from below Linux's ephemeral range (32768 and up), which port 0 never
/// hands out, each at most once per process, starting at an offset from the process id so
/// that test processes running side by side do not try the same ones first.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const COUNT: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = (std::process::id() % 1000) * 12;
    for _ in 0..COUNT {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (FIRST + (offset + n) % COUNT) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {FIRST}..{}", FIRST + COUNT)
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
