//! `/metrics` in the OpenMetrics text format, with `prometheus-client`.
//!
//! Each server has its own [`Registry`] (no process-global recorder), so several servers in
//! one process report independently. The server's own metrics are live `prometheus-client`
//! metrics: handshakes by outcome, API requests by method, route and status, and their
//! latency. The hub's exact counters come from a [`Collector`] that reads the hub's stats
//! snapshot at scrape time. Every label value is bounded: outcomes are a fixed set, methods
//! outside the standard ones are `other`, routes are the router's templates (`unmatched`
//! for the rest), and the hub already folds unknown message types into one label.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// What the metrics handlers need of the server state (taken from it with `FromRef`).
#[derive(Clone)]
pub(crate) struct MetricsState {
    pub(crate) metrics: Arc<ServerMetrics>,
}

/// Upper bounds of the API latency histogram, in seconds: from half a millisecond to five
/// minutes, since an acknowledged send waits for the client up to its ack timeout (at most
/// 300 s).
const BUCKETS: [f64; 18] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 120.0, 300.0,
];

fn api_latency() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

/// The server's registry and its own metrics.
#[derive(Debug)]
pub(crate) struct ServerMetrics {
    registry: Registry,
    /// `wsc.performance.slow_log_threshold` when `enable_slow_log` is on.
    slow_log: Option<Duration>,
    handshakes: Family<HandshakeLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl ServerMetrics {
    /// A registry with the server's metrics and, when `hub_metrics`
    /// (`wsc.performance.enable_metrics`), the hub's.
    pub(crate) fn new(
        hub: wsc_hub::Hub,
        hub_metrics: bool,
        slow_log: Option<Duration>,
        certificates: Vec<Arc<crate::tls::Certificates>>,
    ) -> Self {
        let mut registry = Registry::default();
        let handshakes = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "wsc_handshakes",
            "WebSocket upgrade attempts by outcome",
            handshakes.clone(),
        );
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_api_requests",
            "Server API requests by method, route and status",
            requests.clone(),
        );
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(api_latency);
        // Histograms carry their unit in the name, without a `# UNIT` line: some
        // OpenMetrics parsers refuse units on histograms.
        registry.register(
            "http_api_request_duration_seconds",
            "Server API latency by route",
            latency.clone(),
        );
        if hub_metrics {
            registry.register_collector(Box::new(HubCollector { hub }));
        }
        #[cfg(target_os = "linux")]
        registry.register_collector(Box::new(crate::process_metrics::ProcessCollector));
        registry.register_collector(Box::new(crate::tls::ExpiryCollector(certificates)));
        ServerMetrics {
            registry,
            slow_log,
            handshakes,
            requests,
            latency,
        }
    }

    /// Counts one upgrade attempt by its outcome (`accepted` or the refusal code).
    pub(crate) fn handshake(&self, outcome: &'static str) {
        self.handshakes
            .get_or_create(&HandshakeLabels { outcome })
            .inc();
    }

    fn request(&self, method: &'static str, route: String, status: u16, elapsed: Duration) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                method,
                route,
                status,
            })
            .inc();
    }

    /// The exposition: every metric, then `# EOF`.
    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8192);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
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
    // The request's span (method, path, request id) is the trace layer's (`layers.rs`).
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    if let Some(threshold) = state.metrics.slow_log
        && elapsed > threshold
    {
        tracing::warn!(%method, %route, elapsed_ms = elapsed.as_millis() as u64, "slow API request");
    }
    state
        .metrics
        .request(method, route, response.status().as_u16(), elapsed);
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

/// The OpenMetrics content type (Prometheus negotiates it; plain scrapers read it as text).
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The `/metrics` handler.
pub(crate) async fn render(State(state): State<MetricsState>) -> Response {
    match state.metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(_) => {
            tracing::error!("encoding the metrics failed");
            axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The hub's counters, read from one stats snapshot per scrape.
#[derive(Debug)]
struct HubCollector {
    hub: wsc_hub::Hub,
}

/// One unlabeled value of a hub metric.
enum Value {
    Counter(u64),
    Gauge(u64),
}

impl Collector for HubCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.hub.stats();
        let values = [
            (
                "wsc_connections",
                "Live WebSocket connections",
                Value::Gauge(stats.connections),
            ),
            (
                "wsc_users",
                "Users with at least one live connection",
                Value::Gauge(stats.users),
            ),
            (
                "wsc_messages_in",
                "Data frames received from clients",
                Value::Counter(stats.messages_in),
            ),
            (
                "wsc_messages_out",
                "Message frames written to clients",
                Value::Counter(stats.messages_out),
            ),
            (
                "wsc_bytes_in",
                "Bytes of text frames received",
                Value::Counter(stats.bytes_in),
            ),
            (
                "wsc_bytes_out",
                "Bytes of message frames written",
                Value::Counter(stats.bytes_out),
            ),
            (
                "wsc_messages_dropped",
                "Messages not queued for a connection (queue full or closing)",
                Value::Counter(stats.messages_dropped),
            ),
            (
                "wsc_slow_consumer_disconnects",
                "Connections closed as slow consumers (1013)",
                Value::Counter(stats.slow_consumer_disconnects),
            ),
            (
                "wsc_invalid_frames",
                "Client frames answered with an error frame",
                Value::Counter(stats.invalid_frames),
            ),
            (
                "wsc_connections_accepted",
                "Connections registered",
                Value::Counter(stats.connections_accepted),
            ),
            (
                "wsc_connections_rejected",
                "Registrations refused by the hub",
                Value::Counter(stats.connections_rejected),
            ),
            (
                "wsc_connections_closed",
                "Connections that ended",
                Value::Counter(stats.connections_closed),
            ),
            (
                "wsc_acks_confirmed",
                "Acknowledged deliveries confirmed by a client",
                Value::Counter(stats.acks_confirmed),
            ),
            (
                "wsc_ack_failures",
                "Acknowledged deliveries that finally failed",
                Value::Counter(stats.ack_failures),
            ),
            (
                "wsc_ack_resends",
                "Resends after an ack timeout",
                Value::Counter(stats.ack_resends),
            ),
            (
                "wsc_acks_pending",
                "Deliveries waiting for an ack",
                Value::Gauge(stats.acks_pending),
            ),
            (
                "wsc_offline_stored",
                "Messages put into the offline store",
                Value::Counter(stats.offline_stored),
            ),
            (
                "wsc_offline_replayed",
                "Offline messages replayed on reconnect",
                Value::Counter(stats.offline_replayed),
            ),
            (
                "wsc_offline_dropped",
                "Offline messages dropped by the store (cap or TTL)",
                Value::Counter(stats.offline_dropped),
            ),
            (
                "wsc_cluster_errors",
                "Cluster operations (publish, presence, shared history) that failed: Redis unreachable",
                Value::Counter(stats.cluster_errors),
            ),
            (
                "wsc_observers",
                "Observer connections on this node",
                Value::Gauge(stats.observers),
            ),
            (
                "wsc_observer_copies",
                "Copies of messages queued for this node's observers",
                Value::Counter(stats.observer_copies),
            ),
        ];
        for (name, help, value) in values {
            match value {
                Value::Counter(n) => {
                    let metric =
                        encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
                    ConstCounter::new(n).encode(metric)?;
                }
                Value::Gauge(n) => {
                    let metric = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
                    ConstGauge::new(gauge(n)).encode(metric)?;
                }
            }
        }
        let uptime = encoder.encode_descriptor(
            "wsc_uptime",
            "Time since the hub started",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?;
        ConstGauge::new(gauge(stats.uptime_seconds)).encode(uptime)?;
        by_type(
            &mut encoder,
            "wsc_messages_in_by_type",
            "Valid client frames by message type",
            &stats.messages_in_by_type,
        )?;
        by_type(
            &mut encoder,
            "wsc_messages_out_by_type",
            "Deliveries of sends by message type",
            &stats.messages_out_by_type,
        )?;
        let latency = &stats.delivery_latency;
        let mut metric = encoder.encode_descriptor(
            "wsc_delivery_latency_seconds",
            "Time from queueing a message to writing its batch",
            None,
            MetricType::Histogram,
        )?;
        // The hub's buckets are cumulative; the encoder takes each bucket's own count.
        let mut below = 0;
        let mut buckets: Vec<(f64, u64)> = latency
            .buckets
            .iter()
            .map(|&(bound_us, cumulative)| {
                let own = cumulative.saturating_sub(below);
                below = cumulative;
                (bound_us as f64 / 1e6, own)
            })
            .collect();
        buckets.push((f64::INFINITY, latency.count.saturating_sub(below)));
        metric.encode_histogram::<NoLabelSet>(
            latency.sum_us as f64 / 1e6,
            latency.count,
            &buckets,
            None,
        )
    }
}

/// A counter family labeled by message type.
fn by_type(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    counts: &std::collections::BTreeMap<String, u64>,
) -> Result<(), std::fmt::Error> {
    // Like the registry's own families, an empty family is left out until its first sample.
    if counts.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (kind, n) in counts {
        let labels = [("type", kind.as_str())];
        ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge value (gauges are signed; the hub's values always fit).
fn gauge(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
