//! docs/security.md "Warnings at start": a start with open listeners and `enable_auth` off
//! logs each warning once, at `warn`; a start with API keys, loopback listeners and tokens
//! logs none. Each test captures the log of its own thread (the server runs on the test's
//! current-thread runtime), so tests running side by side do not mix their lines.

mod support;

use support::{CapturedLog, WAIT, connect, local_config, start};
use wsc_config::{GatewayConfig, TokenAlgorithm};

/// Starts a server with `config`, connects a client, stops it: the log of that whole life.
async fn log_of_a_start(config: GatewayConfig, query: &str) -> String {
    let captured = CapturedLog::default();
    let _local = tracing::subscriber::set_default(captured.subscriber(tracing::Level::INFO));
    let server = start(config).await;
    if !query.is_empty() {
        let _client = connect(server.public_addr(), query).await;
    }
    assert!(server.stop(WAIT).await, "stops in time");
    captured.text()
}

/// The lines logged at `warn`.
fn warnings(log: &str) -> Vec<&str> {
    log.lines().filter(|line| line.contains(" WARN ")).collect()
}

#[tokio::test]
async fn open_listeners_and_auth_off_are_each_warned_once_per_start() {
    let mut config = local_config();
    config.http.host = "0.0.0.0".to_owned();
    config.grpc.host = "0.0.0.0".to_owned();
    let log = log_of_a_start(config, "user_id=a").await;
    let warned = warnings(&log);
    assert_eq!(warned.len(), 3, "{log}");
    for (needle, line) in [
        "the API listener (0.0.0.0:0) is reachable beyond this machine without API keys",
        "the gRPC listener (0.0.0.0:0) is reachable beyond this machine without API keys",
        "wsc.security.enable_auth is off",
    ]
    .iter()
    .zip(&warned)
    {
        assert!(line.contains(needle), "expected `{needle}` in {line}");
    }
    // Nothing else is logged above `info`.
    assert!(!log.contains(" ERROR "), "{log}");
}

#[tokio::test]
async fn keys_loopback_and_tokens_start_without_a_warning() {
    let mut config = local_config();
    config.api.keys = vec!["a-key-of-the-test".to_owned()];
    config.http.host = "0.0.0.0".to_owned();
    config.wsc.security.enable_auth = true;
    config.wsc.security.token.algorithm = TokenAlgorithm::Hs256;
    config.wsc.security.token.secret = "a-secret-of-the-test-of-32-bytes!".to_owned();
    let log = log_of_a_start(config, "").await;
    assert_eq!(warnings(&log), Vec::<&str>::new(), "{log}");
}
