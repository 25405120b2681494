//! The log line of a refused handshake. Alone in its test binary: the subscriber that
//! captures the log is the process-wide default, and no other test may log meanwhile.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gateway_server::Server;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Error as WsError;
use wsc_config::GatewayConfig;

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_refused_handshake_is_logged_with_code_peer_and_path() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

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
