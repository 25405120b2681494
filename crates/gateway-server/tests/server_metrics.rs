//! `/metrics` (OpenMetrics text, read back with an OpenMetrics parser) moves with what the server does; `/ready` reports its checks.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::StreamExt;
use gateway_server::{RunningServer, Server};
use openmetrics_parser::OpenMetricsValue;
use openmetrics_parser::openmetrics::parse_openmetrics;
use support::{WAIT, local_config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

async fn start() -> RunningServer {
    support::start(local_config()).await
}

async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// One sample of a scrape, found in what an OpenMetrics parser made of the whole body (a
/// body that does not parse fails the test). `series` is the sample as the exposition writes
/// it: `name{label="value",...}`, with the suffix of its kind (`_total`, `_count`, `_sum`,
/// `_bucket` with `le`).
fn value(metrics: &str, series: &str) -> Option<f64> {
    let exposition = parse_openmetrics(metrics)
        .unwrap_or_else(|e| panic!("not valid OpenMetrics ({e:?}):\n{metrics}"));
    let (name, mut wanted) = selector(series);
    let le = wanted.remove("le");
    for family in exposition.families.values() {
        let family_name = family.family_name.as_str();
        for sample in family.iter_samples() {
            let labelset = sample.get_labelset().expect("a sample's labels");
            let labels: BTreeMap<String, String> = labelset
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if labels != wanted {
                continue;
            }
            let found = match &sample.value {
                OpenMetricsValue::Counter(c) if name == format!("{family_name}_total") => {
                    Some(c.value.as_f64())
                }
                OpenMetricsValue::Gauge(n) if name == family_name => Some(n.as_f64()),
                OpenMetricsValue::Histogram(h) => {
                    let bound = |b: &str| {
                        if b == "+Inf" {
                            f64::INFINITY
                        } else {
                            b.parse().unwrap()
                        }
                    };
                    match name.strip_prefix(family_name) {
                        Some("_count") => h.count.map(|c| c as f64),
                        Some("_sum") => h.sum.map(|s| s.as_f64()),
                        Some("_bucket") => h
                            .buckets
                            .iter()
                            .find(|b| Some(b.upper_bound) == le.as_deref().map(bound))
                            .map(|b| b.count.as_f64()),
                        _ => None,
                    }
                }
                _ => None,
            };
            if found.is_some() {
                return found;
            }
        }
    }
    None
}

/// `name{a="1",b="2"}` as the name and its labels.
fn selector(series: &str) -> (String, BTreeMap<String, String>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series.to_owned(), BTreeMap::new());
    };
    let mut labels = BTreeMap::new();
    let mut rest = rest.strip_suffix('}').expect("a closing brace");
    while let Some((key, after)) = rest.split_once("=\"") {
        let (value, after) = after.split_once('"').expect("a closing quote");
        labels.insert(key.to_owned(), value.to_owned());
        rest = after.strip_prefix(',').unwrap_or(after);
    }
    (name.to_owned(), labels)
}

#[tokio::test]
async fn metrics_follow_connections_handshakes_messages_and_api_calls() {
    let server = start().await;
    let (ws, api) = (server.public_addr(), server.api_addr());
    let (mut client, _) = connect_async(format!("ws://{ws}/ws?user_id=m1"))
        .await
        .unwrap();
    assert!(connect_async(format!("ws://{ws}/ws")).await.is_err());

    let (status, _) = http(
        api,
        "POST",
        "/api/v1/users/m1/messages",
        r#"{"content":"hi"}"#,
    )
    .await;
    assert_eq!(status, 200);
    let frame = tokio::time::timeout(WAIT, client.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(matches!(frame, Message::Text(_)));

    // The writer records the frame right after its flush; poll the endpoint until it shows.
    let metrics = tokio::time::timeout(WAIT, async {
        loop {
            let (status, body) = http(api, "GET", "/metrics", "").await;
            assert_eq!(status, 200);
            if value(&body, "wsc_messages_out_total") == Some(1.0) {
                return body;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("messages_out reached 1");

    assert_eq!(value(&metrics, "wsc_connections"), Some(1.0));
    assert_eq!(value(&metrics, "wsc_users"), Some(1.0));
    assert_eq!(
        value(&metrics, r#"wsc_handshakes_total{outcome="accepted"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"wsc_handshakes_total{outcome="missing_user_id"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"http_api_requests_total{method="POST",route="/api/v1/users/{user_id}/messages",status="200"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"http_api_request_duration_seconds_count{route="/api/v1/users/{user_id}/messages"}"#
        ),
        Some(1.0)
    );
    assert!(metrics.contains("# TYPE http_api_request_duration_seconds histogram"));
    assert!(
        metrics.ends_with("# EOF\n"),
        "an OpenMetrics exposition ends with # EOF"
    );
    // Acked sends wait up to 300 s: the API latency buckets reach that far.
    assert_eq!(
        value(
            &metrics,
            r#"http_api_request_duration_seconds_bucket{route="/api/v1/users/{user_id}/messages",le="300.0"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, r#"wsc_messages_out_by_type_total{type="text"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&metrics, "wsc_delivery_latency_seconds_count"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &metrics,
            r#"wsc_delivery_latency_seconds_bucket{le="+Inf"}"#
        ),
        Some(1.0)
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn ready_lists_its_checks_and_turns_not_ready_when_the_hub_stops() {
    let server = start().await;
    let api = server.api_addr();
    let (status, body) = http(api, "GET", "/ready", "").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["checks"]["hub"], "ok");
    let (status, _) = http(api, "GET", "/health", "").await;
    assert_eq!(status, 200);

    server.hub().stop(Duration::ZERO).await;
    let (status, body) = http(api, "GET", "/ready", "").await;
    assert_eq!(status, 503);
    assert!(body.contains("not_ready"), "{body}");
    server.stop(WAIT).await;
}

async fn start_with_redis(url: &str) -> RunningServer {
    let mut config = local_config();
    config.wsc.redis.enabled = true;
    config.wsc.redis.url = url.to_owned();
    Server::new(config).start().await.expect("server starts")
}

#[tokio::test]
async fn ready_checks_redis_when_it_is_enabled() {
    // `cargo xtask ci` (and .ci/run) make sure a Redis answers and export its URL; without
    // one this test fails: it never passes by skipping.
    let url = std::env::var("WSC_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned());
    let server = start_with_redis(&url).await;
    let (status, body) = http(server.api_addr(), "GET", "/ready", "").await;
    assert_eq!(
        status, 200,
        "Redis at {url} must answer for this test: {body}"
    );
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["checks"]["redis"], "ok");
    server.stop(WAIT).await;

    // A Redis that is down makes the node not ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = start_with_redis(&format!("redis://127.0.0.1:{port}/0")).await;
    let (status, body) = http(server.api_addr(), "GET", "/ready", "").await;
    assert_eq!(status, 503, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["status"], "not_ready");
    assert!(
        json["checks"]["redis"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{body}"
    );
    assert_eq!(json["checks"]["hub"], "ok");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn hub_metrics_can_be_turned_off() {
    let mut config = local_config();
    config.wsc.performance.enable_metrics = false;
    let server = Server::new(config).start().await.expect("server starts");
    let (_client, _) = connect_async(format!("ws://{}/ws?user_id=m", server.public_addr()))
        .await
        .unwrap();
    let (status, body) = http(server.api_addr(), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    assert_eq!(value(&body, "wsc_connections"), None, "{body}");
    assert_eq!(
        value(&body, r#"wsc_handshakes_total{outcome="accepted"}"#),
        Some(1.0),
        "the server's own metrics stay"
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn invented_methods_share_one_method_label() {
    let server = start().await;
    let api = server.api_addr();
    // Each invented method used to add its own series; they must all count as `other`.
    for method in ["FOO", "BAR1", "PURGE", "X-SCAN"] {
        let (status, _) = http(api, method, "/nowhere", "").await;
        assert_eq!(status, 404, "{method}");
    }
    let (status, _) = http(api, "DELETE", "/nowhere", "").await;
    assert_eq!(status, 404);
    let (_, metrics) = http(api, "GET", "/metrics", "").await;
    assert_eq!(
        value(
            &metrics,
            r#"http_api_requests_total{method="other",route="unmatched",status="404"}"#
        ),
        Some(4.0),
        "{metrics}"
    );
    // Standard methods keep their name.
    assert_eq!(
        value(
            &metrics,
            r#"http_api_requests_total{method="DELETE",route="unmatched",status="404"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    for method in ["FOO", "BAR1", "PURGE", "X-SCAN"] {
        assert!(
            !metrics.contains(&format!("method=\"{method}\"")),
            "{method} has its own series:\n{metrics}"
        );
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn process_metrics_describe_this_process() {
    let server = start().await;
    let (status, body) = http(server.api_addr(), "GET", "/metrics", "").await;
    assert_eq!(status, 200);
    let open = value(&body, "process_open_fds").expect("process_open_fds");
    let max = value(&body, "process_max_fds").expect("process_max_fds");
    // This test holds at least its listeners open, and the limit is above what is open.
    assert!(open >= 3.0 && open < max, "open {open}, max {max}");
    let rss = value(&body, "process_resident_memory_bytes").expect("rss");
    assert!(rss > 1_000_000.0, "{rss}");
    assert!(value(&body, "process_cpu_seconds_total").is_some_and(|cpu| cpu > 0.0));
    assert!(value(&body, "process_threads").is_some_and(|n| n >= 1.0));
    // At least the listeners' accept loops run as tasks.
    assert!(value(&body, "tokio_alive_tasks").is_some_and(|n| n >= 2.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let started = value(&body, "process_start_time_seconds").expect("start time");
    assert!(
        started <= now + 1.0 && started > now - 86_400.0,
        "{started} vs {now}"
    );
    server.stop(WAIT).await;
}
