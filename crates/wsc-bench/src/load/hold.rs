//! Clients held for broadcasts another process publishes (a generator of the scale
//! scenario).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::clients::{Connected, Spread, connect_all};
use super::{Endpoint, Fanout, Pattern, now_us};

/// Clients held for broadcasts that another process publishes (a generator of the scale
/// scenario).
pub struct Held {
    connected: Connected,
}

/// What the held clients received.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeldOutcome {
    /// Distinct deliveries.
    pub delivered: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Median latency (publish to receipt), in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

impl Held {
    /// Connections that completed their handshake.
    pub fn connected(&self) -> usize {
        self.connected.connected
    }

    /// Waits until every client received every broadcast, or nothing arrived for `drain`
    /// after the first delivery, or (nothing arrived at all) ten minutes passed; then closes
    /// the clients and reports.
    pub async fn wait(mut self, drain: Duration) -> HeldOutcome {
        let shared = self.connected.shared.clone();
        let started = Instant::now();
        while shared.complete.load(Ordering::Acquire) < self.connected.connected {
            let last = shared.last_delivery_us.load(Ordering::Acquire);
            let quiet = last > 0 && now_us().saturating_sub(last) > drain.as_micros() as u64;
            if quiet || started.elapsed() > Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.connected.clients.abort_all();
        while self.connected.clients.join_next().await.is_some() {}
        let (p50_us, p99_us) = shared
            .latency
            .lock()
            .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
            .unwrap_or_default();
        HeldOutcome {
            delivered: shared.delivered.load(Ordering::Acquire),
            duplicated: shared.duplicated.load(Ordering::Acquire),
            p50_us,
            p99_us,
        }
    }
}

/// Connects `connections` gateway clients for `messages` broadcasts: client `i` is user
/// `load-<first + i>`, connects to `nodes[i % len]`, from `127.0.0.<source_base + i % 4>`.
pub async fn hold(
    endpoint: Endpoint,
    nodes: &[SocketAddr],
    connections: usize,
    (first, source_base): (usize, u8),
    messages: u32,
) -> Result<Held, String> {
    let defaults = Fanout::default();
    let spread = Spread {
        nodes,
        source_base,
        sources: 4,
        first,
    };
    let connected = connect_all(
        endpoint,
        connections,
        (messages, Pattern::Broadcast, false),
        spread,
        defaults.concurrency,
    )
    .await?;
    Ok(Held { connected })
}
