//! The log line of a refused handshake, and the rate of such lines. The first test captures
//! the process-wide log (the server's tasks may log from any thread); the other captures the
//! log of its own thread only (a current-thread runtime runs the server there), so the two
//! do not see each other's lines.

mod support;

use std::time::Duration;

use gateway_server::Server;
use support::CapturedLog;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Error as WsError;
use wsc_config::GatewayConfig;

#[tokio::test]
async fn a_refused_handshake_is_logged_with_code_peer_and_path() {
    let captured = CapturedLog::default();
    tracing::subscriber::set_global_default(captured.subscriber(tracing::Level::INFO))
        .expect("the only global subscriber");

    let mut config = GatewayConfig::default();
    config.wsc.node_ip = "127.0.0.1".to_owned();
    config.wsc.node_port = 0;
    config.http.host = "127.0.0.1".to_owned();
    config.http.port = 0;
    config.grpc.enabled = false;
    config.wsc.security.blocked_ips = vec!["127.0.0.1".to_owned()];
    let server = Server::new(config).start().await.expect("server starts");
    let url = format!("ws://{}/ws?user_id=a", server.public_addr());
    match connect_async(url).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 403),
        other => panic!("expected a 403 refusal, got {other:?}"),
    }
    // The line is written before the response goes out, so it is there once the client
    // has the 403.
    server.stop(Duration::from_secs(10)).await;

    let logs = captured.text();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("WebSocket handshake refused"))
        .collect();
    assert_eq!(lines.len(), 1, "{logs}");
    let line = lines[0];
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains("code=\"ip_blocked\""), "{line}");
    assert!(line.contains("status=403"), "{line}");
    assert!(line.contains("peer=127.0.0.1:"), "{line}");
    assert!(line.contains("path=/ws"), "{line}");
    assert!(line.contains("is blocked"), "{line}");
    assert!(line.contains("suppressed=0"), "{line}");
}

#[tokio::test]
async fn the_refusal_log_writes_at_most_10_lines_a_second_and_counts_the_rest() {
    let captured = CapturedLog::default();
    let _local = tracing::subscriber::set_default(captured.subscriber(tracing::Level::INFO));
    let mut config = wsc_testkit::local_config();
    config.grpc.enabled = false;
    config.wsc.security.blocked_ips = vec!["127.0.0.1".to_owned()];
    let server = Server::new(config).start().await.expect("server starts");
    let addr = server.public_addr();
    let started = std::time::Instant::now();
    for _ in 0..40 {
        let (status, _) = wsc_testkit::http::get(addr, "/ws?user_id=a").await;
        assert_eq!(status, 403);
    }
    let flood = started.elapsed();
    let lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("WebSocket handshake refused"))
            .map(str::to_owned)
            .collect()
    };
    let written = lines(&captured.text()).len();
    // A burst of 10, then one more per 100 ms of the flood.
    let refilled = usize::try_from(flood.as_millis() / 100).unwrap_or(usize::MAX);
    assert!(
        (10..=10 + refilled + 1).contains(&written),
        "{written} lines for 40 refusals in {flood:?}"
    );
    // Once a line may be written again, it counts every refusal that was skipped.
    let mut last = String::new();
    for _ in 0..50 {
        let (status, _) = wsc_testkit::http::get(addr, "/ws?user_id=a").await;
        assert_eq!(status, 403);
        let now = lines(&captured.text());
        if now.len() > written {
            last = now.last().cloned().unwrap_or_default();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let suppressed: usize = last
        .rsplit("suppressed=")
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no suppressed count in {last:?}"));
    let skipped_in_flood = 40 - written;
    assert!(
        suppressed >= skipped_in_flood,
        "{last}: {skipped_in_flood} were skipped in the flood"
    );
    server.stop(Duration::from_secs(10)).await;
}
