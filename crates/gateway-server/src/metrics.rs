//! `/metrics` in the Prometheus text format.
//!
//! The hub's exact counters are read from its stats snapshot at scrape time; the server adds
//! its own: handshakes by outcome and API requests by route and status, with a latency
//! histogram. Everything is per server instance (no process-global recorder), so several
//! servers in one process report independently.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What the metrics handlers need of the server state (taken from it with `FromRef`).
#[derive(Clone)]
pub(crate) struct MetricsState {
    pub(crate) hub: wsc_hub::Hub,
    pub(crate) metrics: std::sync::Arc<ServerMetrics>,
}

/// Upper bounds of the API latency histogram, in seconds.
const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

#[derive(Debug, Default)]
struct Latency {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// The server's own counters.
#[derive(Debug, Default)]
pub(crate) struct ServerMetrics {
    /// `wsc.performance.enable_metrics`: whether `/metrics` includes the hub's counters.
    hub_metrics: bool,
    /// `wsc.performance.slow_log_threshold` when `enable_slow_log` is on.
    slow_log: Option<Duration>,
    handshakes: Mutex<BTreeMap<&'static str, u64>>,
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Latency>>,
}

impl ServerMetrics {
    pub(crate) fn new(hub_metrics: bool, slow_log: Option<Duration>) -> Self {
        ServerMetrics {
            hub_metrics,
            slow_log,
            ..ServerMetrics::default()
        }
    }

    /// Counts one upgrade attempt by its outcome (`accepted` or the refusal code).
    pub(crate) fn handshake(&self, outcome: &'static str) {
        if let Ok(mut map) = self.handshakes.lock() {
            *map.entry(outcome).or_default() += 1;
        }
    }

    fn request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        if let Ok(mut map) = self.requests.lock() {
            *map.entry((method.to_owned(), route.to_owned(), status))
                .or_default() += 1;
        }
        if let Ok(mut map) = self.latency.lock() {
            let entry = map.entry(route.to_owned()).or_default();
            let seconds = elapsed.as_secs_f64();
            for (slot, bound) in entry.buckets.iter_mut().zip(BUCKETS) {
                if seconds <= bound {
                    *slot += 1;
                }
            }
            entry.count += 1;
            entry.sum += seconds;
        }
    }
}

/// Middleware: counts and times every API request by its route template.
pub(crate) async fn track(
    State(state): State<MetricsState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method().as_str());
    let started = Instant::now();
    let span = tracing::info_span!("api", %method, %route);
    let response = tracing::Instrument::instrument(next.run(request), span).await;
    let elapsed = started.elapsed();
    if let Some(threshold) = state.metrics.slow_log
        && elapsed > threshold
    {
        tracing::warn!(%method, %route, elapsed_ms = elapsed.as_millis() as u64, "slow API request");
    }
    state
        .metrics
        .request(method, &route, response.status().as_u16(), elapsed);
    response
}

/// The methods of RFC 9110 and PATCH: the only ones that keep their name as a label.
const STANDARD_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// The `method` label of a request. Any other method is `other`: clients choose the method
/// freely, and a label per invented method would let them grow the series without bound.
fn method_label(method: &str) -> &'static str {
    STANDARD_METHODS
        .into_iter()
        .find(|standard| *standard == method)
        .unwrap_or("other")
}

/// A label value without the characters Prometheus would need escaped (message types are
/// free text from clients).
fn label(value: &str) -> String {
    value
        .chars()
        .filter(|c| !matches!(c, '"' | '\\' | '\n'))
        .take(64)
        .collect()
}

/// The `/metrics` handler.
pub(crate) async fn render(State(state): State<MetricsState>) -> Response {
    let mut out = String::with_capacity(4096);
    if state.metrics.hub_metrics {
        hub_section(&mut out, &state.hub.stats());
    }
    let _ = writeln!(
        out,
        "# HELP wsc_handshakes_total WebSocket upgrade attempts by outcome.\n# TYPE wsc_handshakes_total counter"
    );
    if let Ok(map) = state.metrics.handshakes.lock() {
        for (outcome, n) in map.iter() {
            let _ = writeln!(out, "wsc_handshakes_total{{outcome=\"{outcome}\"}} {n}");
        }
    }
    let _ = writeln!(
        out,
        "# HELP http_api_requests_total Server API requests by route and status.\n# TYPE http_api_requests_total counter"
    );
    if let Ok(map) = state.metrics.requests.lock() {
        for ((method, route, status), n) in map.iter() {
            let _ = writeln!(
                out,
                "http_api_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP http_api_request_duration_seconds Server API latency by route.\n# TYPE http_api_request_duration_seconds histogram"
    );
    if let Ok(map) = state.metrics.latency.lock() {
        for (route, latency) in map.iter() {
            for (bound, n) in BUCKETS.iter().zip(latency.buckets) {
                let _ = writeln!(
                    out,
                    "http_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "http_api_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                latency.count
            );
            let _ = writeln!(
                out,
                "http_api_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                latency.sum
            );
            let _ = writeln!(
                out,
                "http_api_request_duration_seconds_count{{route=\"{route}\"}} {}",
                latency.count
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

/// The hub's counters (skipped when `wsc.performance.enable_metrics` is false).
fn hub_section(out: &mut String, stats: &wsc_hub::HubStats) {
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "wsc_connections",
        "gauge",
        "Live WebSocket connections.",
        stats.connections,
    );
    metric(
        "wsc_users",
        "gauge",
        "Users with at least one live connection.",
        stats.users,
    );
    metric(
        "wsc_messages_in_total",
        "counter",
        "Data frames received from clients.",
        stats.messages_in,
    );
    metric(
        "wsc_messages_out_total",
        "counter",
        "Message frames written to clients.",
        stats.messages_out,
    );
    metric(
        "wsc_bytes_in_total",
        "counter",
        "Bytes of text frames received.",
        stats.bytes_in,
    );
    metric(
        "wsc_bytes_out_total",
        "counter",
        "Bytes of message frames written.",
        stats.bytes_out,
    );
    metric(
        "wsc_messages_dropped_total",
        "counter",
        "Messages not queued for a connection (queue full or closing).",
        stats.messages_dropped,
    );
    metric(
        "wsc_slow_consumer_disconnects_total",
        "counter",
        "Connections closed as slow consumers (1013).",
        stats.slow_consumer_disconnects,
    );
    metric(
        "wsc_invalid_frames_total",
        "counter",
        "Client frames answered with an error frame.",
        stats.invalid_frames,
    );
    metric(
        "wsc_connections_accepted_total",
        "counter",
        "Connections registered.",
        stats.connections_accepted,
    );
    metric(
        "wsc_connections_rejected_total",
        "counter",
        "Registrations refused by the hub.",
        stats.connections_rejected,
    );
    metric(
        "wsc_connections_closed_total",
        "counter",
        "Connections that ended.",
        stats.connections_closed,
    );
    metric(
        "wsc_acks_confirmed_total",
        "counter",
        "Acknowledged deliveries confirmed by a client.",
        stats.acks_confirmed,
    );
    metric(
        "wsc_ack_failures_total",
        "counter",
        "Acknowledged deliveries that finally failed.",
        stats.ack_failures,
    );
    metric(
        "wsc_ack_resends_total",
        "counter",
        "Resends after an ack timeout.",
        stats.ack_resends,
    );
    metric(
        "wsc_acks_pending",
        "gauge",
        "Deliveries waiting for an ack.",
        stats.acks_pending,
    );
    metric(
        "wsc_offline_stored_total",
        "counter",
        "Messages put into the offline store.",
        stats.offline_stored,
    );
    metric(
        "wsc_offline_replayed_total",
        "counter",
        "Offline messages replayed on reconnect.",
        stats.offline_replayed,
    );
    metric(
        "wsc_offline_dropped_total",
        "counter",
        "Offline messages dropped by the store (cap or TTL).",
        stats.offline_dropped,
    );
    metric(
        "wsc_cluster_errors_total",
        "counter",
        "Cluster operations (publish, presence, shared history) that failed: Redis unreachable.",
        stats.cluster_errors,
    );
    metric(
        "wsc_uptime_seconds",
        "gauge",
        "Seconds since the hub started.",
        stats.uptime_seconds,
    );

    let _ = writeln!(
        out,
        "# HELP wsc_messages_in_by_type_total Valid client frames by message type.\n# TYPE wsc_messages_in_by_type_total counter"
    );
    for (kind, n) in &stats.messages_in_by_type {
        let _ = writeln!(
            out,
            "wsc_messages_in_by_type_total{{type=\"{}\"}} {n}",
            label(kind)
        );
    }
    let _ = writeln!(
        out,
        "# HELP wsc_messages_out_by_type_total Deliveries of sends by message type.\n# TYPE wsc_messages_out_by_type_total counter"
    );
    for (kind, n) in &stats.messages_out_by_type {
        let _ = writeln!(
            out,
            "wsc_messages_out_by_type_total{{type=\"{}\"}} {n}",
            label(kind)
        );
    }
    let latency = &stats.delivery_latency;
    let _ = writeln!(
        out,
        "# HELP wsc_delivery_latency_seconds Time from queueing a message to writing its batch.\n# TYPE wsc_delivery_latency_seconds histogram"
    );
    for (bound_us, n) in &latency.buckets {
        let _ = writeln!(
            out,
            "wsc_delivery_latency_seconds_bucket{{le=\"{}\"}} {n}",
            *bound_us as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "wsc_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        latency.count
    );
    let _ = writeln!(
        out,
        "wsc_delivery_latency_seconds_sum {}",
        latency.sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "wsc_delivery_latency_seconds_count {}", latency.count);
}
