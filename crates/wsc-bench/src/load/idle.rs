//! An idle run: clients held with heartbeats, the server's memory per connection and CPU per
//! connection-second.

use std::time::Duration;

use super::clients::{Spread, connect_all};
use super::{Endpoint, Fanout, Pattern, cpu_seconds};

/// What an idle run measured.
#[derive(Debug, Clone, Default)]
pub struct IdleResult {
    /// Connections held.
    pub connected: usize,
    /// Server resident memory per connection, in bytes (growth over the empty server).
    pub bytes_per_connection: f64,
    /// Server resident memory with every connection held, in bytes.
    pub rss: u64,
    /// Server CPU per connection-second while idle, in nanoseconds.
    pub cpu_ns_per_connection_second: f64,
    /// Connections that ended during the idle window (should be none).
    pub dropped: usize,
}

/// Holds `connections` idle clients (heartbeats answered) for `window` after `settle`; the
/// server's memory per connection and CPU per connection-second.
pub async fn idle(
    endpoint: Endpoint,
    connections: usize,
    settle: Duration,
    window: Duration,
) -> Result<IdleResult, String> {
    // The fan-out's connect settings (source addresses, handshakes in flight).
    let defaults = Fanout::default();
    let mut held = connect_all(
        endpoint,
        connections,
        (0, Pattern::Broadcast, false),
        Spread::over(&[], defaults.sources),
        defaults.concurrency,
    )
    .await?;
    tokio::time::sleep(settle).await;
    let rss = crate::server::sample(endpoint.pid)?.rss;
    let cpu0 = cpu_seconds(endpoint.pid)?;
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds(endpoint.pid)? - cpu0;
    // A client task ends only when its connection ended.
    let mut dropped = 0;
    while held.clients.try_join_next().is_some() {
        dropped += 1;
    }
    held.clients.abort_all();
    while held.clients.join_next().await.is_some() {}
    let connected = held.connected;
    Ok(IdleResult {
        connected,
        bytes_per_connection: rss.saturating_sub(held.rss_before) as f64 / connected as f64,
        rss,
        cpu_ns_per_connection_second: cpu * 1e9
            / (connected as f64 * window.as_secs_f64()).max(1e-9),
        dropped,
    })
}
