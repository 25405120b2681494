//! A fan-out run (a broadcast to every client, or point to point, with or without acks):
//! its settings, its results, and the run itself.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::clients::{Connected, Spread, connect_all};
use super::publish::publish_all;
use super::{Endpoint, Pattern, Via, cpu_seconds, ms, now_us};

/// A fan-out run: every client receives every publish, or each publish goes to one client.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Client connections.
    pub connections: usize,
    /// Who receives each publish.
    pub pattern: Pattern,
    /// Publishes.
    pub messages: u32,
    /// Publishes per second; `None` sends them as fast as `publishers` connections can.
    pub rate: Option<f64>,
    /// Each publish waits for the client's acknowledgement (per-client publishes only).
    pub ack: bool,
    /// The API the publishes go through.
    pub via: Via,
    /// Where clients connect when the server is several nodes: client `i` to
    /// `nodes[i % len]`; empty means the endpoint's own `ws` address.
    pub nodes: Vec<SocketAddr>,
    /// Publishing HTTP connections.
    pub publishers: usize,
    /// Payload bytes.
    pub size: usize,
    /// Source addresses `127.0.0.1` ... `127.0.0.<sources>`.
    pub sources: u8,
    /// Handshakes in flight.
    pub concurrency: usize,
    /// Wait after connecting before idle memory is read.
    pub settle: Duration,
    /// How long the run may wait for deliveries after the last publish.
    pub drain: Duration,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout {
            connections: 10_000,
            pattern: Pattern::Broadcast,
            messages: 200,
            rate: None,
            ack: false,
            via: Via::Http,
            nodes: Vec::new(),
            publishers: 8,
            size: 100,
            sources: 4,
            concurrency: 256,
            settle: Duration::from_secs(2),
            drain: Duration::from_secs(30),
        }
    }
}

/// What a fan-out run measured.
#[derive(Debug, Clone, Default)]
pub struct FanoutResult {
    /// Connections that completed their handshake.
    pub connected: usize,
    /// Server resident memory per connection once idle, in bytes.
    pub idle_bytes_per_connection: f64,
    /// Server resident memory per connection after the deliveries (what the burst left
    /// behind in buffers), in bytes.
    pub after_bytes_per_connection: f64,
    /// Deliveries expected: connected × messages (a broadcast) or messages (per client).
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// First publish to last delivery, in seconds.
    pub elapsed_s: f64,
    /// Distinct deliveries per second over `elapsed_s`.
    pub deliveries_per_s: f64,
    /// Mean size of a delivered frame's text, in bytes (the gateway's envelope against the
    /// peers' bare payload).
    pub frame_bytes: f64,
    /// Latency percentiles (send to receive), in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Publish calls answered per second (a call with an ack answers once the client
    /// acked).
    pub calls_per_s: f64,
    /// Publish call round trip percentiles (request sent to answer read), in microseconds.
    pub call_p50_us: u64,
    /// 99th percentile of the call round trip.
    pub call_p99_us: u64,
    /// Calls with an ack that were answered without one (the server gave up waiting).
    pub unacked: u64,
    /// Server CPU over the run, in seconds.
    pub server_cpu_s: f64,
    /// The generator's own CPU over the run, in seconds (a saturated generator shows here).
    pub loadgen_cpu_s: f64,
}

impl FanoutResult {
    /// The markdown cells `p50 | p99 | p99.9 | lost | duplicated` of a table row.
    pub fn latency_and_loss_cells(&self) -> String {
        format!(
            "{} | {} | {} | {} | {}",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            self.lost,
            self.duplicated
        )
    }

    /// Server CPU per delivery, in microseconds.
    pub fn server_us_per_delivery(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.delivered.max(1) as f64
    }

    /// Server CPU per publish call, in microseconds.
    pub fn server_us_per_call(&self, calls: u32) -> f64 {
        self.server_cpu_s * 1e6 / f64::from(calls.max(1))
    }

    /// One line of `key=value` pairs.
    pub fn line(&self) -> String {
        format!(
            "connected={} idle_bytes_per_conn={:.0} after_bytes_per_conn={:.0} expected={} delivered={} lost={} \
             duplicated={} elapsed_s={:.3} deliveries_per_s={:.0} frame_bytes={:.0} \
             p50_us={} p99_us={} p999_us={} calls_per_s={:.0} call_p50_us={} call_p99_us={} \
             unacked={} server_cpu_s={:.2} server_us_per_delivery={:.3} loadgen_cpu_s={:.2}",
            self.connected,
            self.idle_bytes_per_connection,
            self.after_bytes_per_connection,
            self.expected,
            self.delivered,
            self.lost,
            self.duplicated,
            self.elapsed_s,
            self.deliveries_per_s,
            self.frame_bytes,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.calls_per_s,
            self.call_p50_us,
            self.call_p99_us,
            self.unacked,
            self.server_cpu_s,
            self.server_us_per_delivery(),
            self.loadgen_cpu_s
        )
    }
}

/// Runs a fan-out against `endpoint`.
pub async fn fanout(endpoint: Endpoint, run: &Fanout) -> Result<FanoutResult, String> {
    let Connected {
        shared,
        mut clients,
        connected,
        rss_before,
    } = connect_all(
        endpoint,
        run.connections,
        (run.messages, run.pattern, run.ack),
        Spread::over(&run.nodes, run.sources),
        run.concurrency,
    )
    .await?;
    tokio::time::sleep(run.settle).await;
    let rss_idle = crate::server::sample(endpoint.pid)?.rss;
    let server_cpu0 = cpu_seconds(endpoint.pid)?;
    let own_cpu0 = cpu_seconds(std::process::id())?;
    let started = Instant::now();
    let started_us = now_us();
    let calls = publish_all(endpoint, run).await?;
    let publish_elapsed = started.elapsed().as_secs_f64();
    // Wait for the deliveries: until every client has everything, or nothing arrived for
    // the drain time.
    let published_us = now_us();
    while shared.complete.load(Ordering::Acquire) < connected {
        let last = shared
            .last_delivery_us
            .load(Ordering::Acquire)
            .max(published_us);
        if now_us().saturating_sub(last) > run.drain.as_micros() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server_cpu = cpu_seconds(endpoint.pid)? - server_cpu0;
    let own_cpu = cpu_seconds(std::process::id())? - own_cpu0;
    let rss_after = crate::server::sample(endpoint.pid)?.rss;
    clients.abort_all();
    while clients.join_next().await.is_some() {}
    let last = shared.last_delivery_us.load(Ordering::Acquire);
    let elapsed_s = last.saturating_sub(started_us) as f64 / 1e6;
    let delivered = shared.delivered.load(Ordering::Acquire);
    let expected = match run.pattern {
        Pattern::Broadcast => connected as u64 * u64::from(run.messages),
        Pattern::PerClient => u64::from(run.messages),
    };
    let histogram = shared.latency.lock().map_err(|e| e.to_string())?;
    Ok(FanoutResult {
        connected,
        idle_bytes_per_connection: rss_idle.saturating_sub(rss_before) as f64 / connected as f64,
        after_bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / connected as f64,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicated: shared.duplicated.load(Ordering::Acquire),
        elapsed_s,
        deliveries_per_s: delivered as f64 / elapsed_s.max(1e-9),
        frame_bytes: shared.frame_bytes.load(Ordering::Acquire) as f64 / delivered.max(1) as f64,
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        calls_per_s: f64::from(run.messages) / publish_elapsed.max(1e-9),
        call_p50_us: calls.round_trips.value_at_quantile(0.5),
        call_p99_us: calls.round_trips.value_at_quantile(0.99),
        unacked: calls.unacked,
        server_cpu_s: server_cpu,
        loadgen_cpu_s: own_cpu,
    })
}
