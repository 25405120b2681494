//! The scale scenario: 100,000 concurrent WebSocket connections on this machine, all
//! receiving a broadcast, and the total server memory they cost.
//!
//! A process may hold at most 20,000 descriptors here, so neither side fits in one process:
//! the gateway runs as several nodes over a Redis of the run's own, and the clients come
//! from several generator processes (this binary's `hold` command), each with its own share
//! of the connections, its own source addresses (`127.0.0.x`) and user ids. Client `i`
//! connects to node `i % nodes`. Once every generator has connected, the parent publishes
//! the broadcasts through the first node's API (the others get them through Redis) and
//! collects every generator's counts and latency percentiles.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use wsc_testkit::process::{KillOnDrop, Lines};
use wsc_testkit::redis_server::RedisServer;

use crate::load::{Endpoint, Fanout, Protocol};

/// A scale run.
#[derive(Debug, Clone)]
pub struct Scale {
    /// Connections in all.
    pub connections: usize,
    /// Gateway nodes.
    pub nodes: usize,
    /// Generator processes.
    pub generators: usize,
    /// Broadcasts, one per second.
    pub broadcasts: u32,
}

impl Default for Scale {
    fn default() -> Self {
        Scale {
            connections: 100_000,
            nodes: 6,
            generators: 6,
            broadcasts: 5,
        }
    }
}

/// What a scale run measured.
#[derive(Debug, Clone, Default)]
pub struct ScaleResult {
    /// Connections that completed their handshake.
    pub connected: usize,
    /// The nodes' resident memory before any client, summed.
    pub rss_empty: u64,
    /// The nodes' resident memory with every client connected, summed.
    pub rss: u64,
    /// Deliveries expected (connected × broadcasts).
    pub expected: u64,
    /// Distinct deliveries.
    pub delivered: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// The median of the generators' median latencies, in microseconds.
    pub p50_us: u64,
    /// The highest of the generators' 99th percentiles, in microseconds.
    pub p99_us: u64,
}

impl ScaleResult {
    /// Server memory per connection, in bytes (growth over the empty nodes).
    pub fn bytes_per_connection(&self) -> f64 {
        self.rss.saturating_sub(self.rss_empty) as f64 / self.connected.max(1) as f64
    }

    /// The markdown table of this run.
    pub fn table(&self, scale: &Scale) -> String {
        format!(
            "| connections | nodes | generators | total server RSS | RSS / connection | broadcasts | delivered | lost | duplicated | p50 | p99 (worst generator) |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | {} | {} | {} | {:.0} MiB | {:.2} KiB | {} | {} | {} | {} | {:.1} ms | {:.1} ms |\n",
            self.connected,
            scale.nodes,
            scale.generators,
            self.rss as f64 / (1024.0 * 1024.0),
            self.bytes_per_connection() / 1024.0,
            scale.broadcasts,
            self.delivered,
            self.expected.saturating_sub(self.delivered),
            self.duplicated,
            self.p50_us as f64 / 1000.0,
            self.p99_us as f64 / 1000.0,
        )
    }
}

/// How long generators may take to connect their share.
const CONNECT: Duration = Duration::from_secs(300);

/// How long a generator waits for deliveries once none arrive.
const DRAIN: Duration = Duration::from_secs(20);

/// Runs the scenario: `gateway` is the `gateway-server` binary, `generator` this binary.
pub async fn run(gateway: &Path, generator: &Path, scale: &Scale) -> Result<ScaleResult, String> {
    let redis = RedisServer::start();
    let nodes = tokio::task::block_in_place(|| {
        crate::bench::start_nodes(gateway, scale.nodes.max(1), Some(&redis))
    })?;
    let rss_of = |nodes: &[crate::server::ServerProcess]| -> Result<u64, String> {
        nodes.iter().map(|n| Ok(n.sample()?.rss)).sum()
    };
    let rss_empty = rss_of(&nodes)?;
    let addresses: Vec<String> = nodes.iter().map(|n| n.public.to_string()).collect();
    let generators = scale.generators.max(1);
    let share = scale.connections.div_ceil(generators);
    let mut children = Vec::new();
    for g in 0..generators {
        let first = g * share;
        let count = share.min(scale.connections.saturating_sub(first));
        let mut child = KillOnDrop(
            Command::new(generator)
                .arg("hold")
                .args(["--nodes", &addresses.join(",")])
                .args(["--connections", &count.to_string()])
                .args(["--first", &first.to_string()])
                // Four source addresses per generator, none shared.
                .args(["--source-base", &(1 + 4 * g).to_string()])
                .args(["--messages", &scale.broadcasts.to_string()])
                .args(["--server-pid", &nodes[0].pid().to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", generator.display()))?,
        );
        let stdout = child.stdout.take().ok_or("no stdout")?;
        children.push((child, Lines::new(stdout)));
    }
    let mut connected = 0;
    for (_, lines) in &children {
        let line = tokio::task::block_in_place(|| lines.wait_for("connected", CONNECT));
        connected += value(&line, "connected")? as usize;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_of(&nodes)?;
    let endpoint = Endpoint::gateway(&nodes[0]);
    let publishes = Fanout {
        connections: connected,
        messages: scale.broadcasts,
        rate: Some(1.0),
        publishers: 1,
        ..Fanout::default()
    };
    crate::load::publish_all(endpoint, &publishes).await?;
    let mut result = ScaleResult {
        connected,
        rss_empty,
        rss,
        expected: connected as u64 * u64::from(scale.broadcasts),
        ..ScaleResult::default()
    };
    let mut medians = Vec::new();
    for (_, lines) in &children {
        let line = tokio::task::block_in_place(|| lines.wait_for("result", DRAIN + CONNECT));
        result.delivered += value(&line, "delivered")?;
        result.duplicated += value(&line, "duplicated")?;
        medians.push(value(&line, "p50_us")?);
        result.p99_us = result.p99_us.max(value(&line, "p99_us")?);
    }
    medians.sort_unstable();
    result.p50_us = medians.get(medians.len() / 2).copied().unwrap_or_default();
    drop(children);
    drop(nodes);
    Ok(result)
}

/// The number after `key=` in a generator's line.
fn value(line: &str, key: &str) -> Result<u64, String> {
    line.split_whitespace()
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no {key}= in {line:?}"))
}

/// One generator (the `hold` command): connects `connections` clients, client `first + i`
/// to `nodes[i % len]` from `127.0.0.<source_base + i % 4>`; prints `connected=N`; then
/// waits until every client received `messages` broadcasts (or none arrived for the drain
/// time) and prints `result delivered=... duplicated=... p50_us=... p99_us=...`.
pub async fn hold(
    nodes: Vec<SocketAddr>,
    connections: usize,
    (first, source_base): (usize, u8),
    messages: u32,
    server_pid: u32,
) -> Result<(), String> {
    let endpoint = Endpoint {
        protocol: Protocol::Wsc,
        ws: nodes[0],
        publish: nodes[0],
        pid: server_pid,
    };
    let held = crate::load::hold(
        endpoint,
        &nodes,
        connections,
        (first, source_base),
        messages,
    )
    .await?;
    println!("connected={}", held.connected());
    let outcome = held.wait(DRAIN).await;
    println!(
        "result delivered={} duplicated={} p50_us={} p99_us={}",
        outcome.delivered, outcome.duplicated, outcome.p50_us, outcome.p99_us
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_line_gives_its_numbers() {
        let line = "result delivered=500 duplicated=0 p50_us=1200 p99_us=9000";
        assert_eq!(value(line, "delivered"), Ok(500));
        assert_eq!(value(line, "p99_us"), Ok(9000));
        assert!(value(line, "lost").is_err());
        assert_eq!(value("connected=17", "connected"), Ok(17));
    }
}
