//! A churn run: clients connecting and closing in a loop.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::clients::connect;
use super::{Endpoint, cpu_seconds, round_trip_histogram};

/// A churn run: `workers` clients each connect, close and connect again for `duration`.
#[derive(Debug, Clone)]
pub struct Churn {
    /// Clients connecting and closing at once.
    pub workers: usize,
    /// How long they keep at it.
    pub duration: Duration,
    /// Source addresses `127.0.0.1` ... `127.0.0.<sources>` (every cycle takes a port).
    pub sources: u8,
}

impl Default for Churn {
    fn default() -> Self {
        Churn {
            workers: 64,
            duration: Duration::from_secs(10),
            sources: 32,
        }
    }
}

/// What a churn run measured.
#[derive(Debug, Clone, Default)]
pub struct ChurnResult {
    /// Connects that completed (handshake and, for Socket.IO, the namespace join) and were
    /// then closed.
    pub cycles: u64,
    /// Cycles per second.
    pub cycles_per_s: f64,
    /// Connects that failed.
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Connect latency (TCP connect to a usable connection), in microseconds.
    pub connect_p50_us: u64,
    /// 99th percentile of the connect latency.
    pub connect_p99_us: u64,
    /// Server CPU per cycle, in microseconds.
    pub server_us_per_cycle: f64,
    /// Server descriptors open two seconds after the run, minus those before it (a leak
    /// shows here).
    pub descriptors_left: i64,
    /// Server resident memory after the run, minus before it, in bytes.
    pub rss_growth: i64,
}

/// Runs a churn against `endpoint`: every cycle a new connection that completes its
/// handshake, closes with a close frame and waits for the server's answer (or the end of
/// the stream).
pub async fn churn(endpoint: Endpoint, run: &Churn) -> Result<ChurnResult, String> {
    let before = crate::server::sample(endpoint.pid)?;
    let server_cpu0 = cpu_seconds(endpoint.pid)?;
    let started = Instant::now();
    let deadline = started + run.duration;
    let mut workers = tokio::task::JoinSet::new();
    let stride = run.workers.max(1);
    for w in 0..stride {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (w % run.sources.max(1) as usize) as u8);
        workers.spawn(async move {
            let mut latencies = round_trip_histogram()?;
            let (mut cycles, mut failed, mut first_error) = (0u64, 0u64, None);
            let mut i = w;
            while Instant::now() < deadline {
                let begun = Instant::now();
                match connect(i, source, endpoint, false).await {
                    Ok(mut ws) => {
                        latencies.saturating_record((begun.elapsed().as_micros() as u64).max(1));
                        let _ = ws.close(None).await;
                        // Read until the server's close answer ends the stream.
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while let Some(Ok(_)) = ws.next().await {}
                        })
                        .await;
                        cycles += 1;
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
                // Each cycle is a new user: user ids never repeat across workers.
                i += stride;
            }
            Ok::<_, String>((latencies, cycles, failed, first_error))
        });
    }
    let mut result = ChurnResult::default();
    let mut latencies = round_trip_histogram()?;
    while let Some(done) = workers.join_next().await {
        let (worker, cycles, failed, first_error) = done.map_err(|e| e.to_string())??;
        latencies.add(&worker).map_err(|e| e.to_string())?;
        result.cycles += cycles;
        result.failed += failed;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(endpoint.pid)? - server_cpu0;
    // The server closes its side of the last connections a moment after their close
    // frames; give it that moment before counting what is left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = crate::server::sample(endpoint.pid)?;
    result.cycles_per_s = result.cycles as f64 / elapsed.max(1e-9);
    result.connect_p50_us = latencies.value_at_quantile(0.5);
    result.connect_p99_us = latencies.value_at_quantile(0.99);
    result.server_us_per_cycle = server_cpu * 1e6 / result.cycles.max(1) as f64;
    result.descriptors_left = after.fds as i64 - before.fds as i64;
    result.rss_growth = after.rss as i64 - before.rss as i64;
    Ok(result)
}
