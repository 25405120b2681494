//! The `gateway-server` binary on its embedded defaults: environment overrides choose the
//! ports, a client connects, SIGTERM stops it with close 1001 and exit code 0.

use std::process::{Command, Stdio};

use futures_util::StreamExt;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use wsc_testkit::WAIT;
use wsc_testkit::process::{KillOnDrop, Lines, wait_exit, wait_for_line};

use wsc_testkit::free_port;

#[tokio::test]
async fn env_overrides_ports_and_sigterm_exits_zero() {
    let (ws_port, api_port) = (free_port(), free_port());
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_gateway-server"))
            .env("GATEWAY__WSC__NODE_IP", "127.0.0.1")
            .env("GATEWAY__WSC__NODE_PORT", ws_port.to_string())
            .env("GATEWAY__HTTP__HOST", "127.0.0.1")
            .env("GATEWAY__HTTP__PORT", api_port.to_string())
            .env("GATEWAY__GRPC__HOST", "127.0.0.1")
            .env("GATEWAY__GRPC__PORT", "0")
            .env("RUST_LOG", "warn,gateway_server=info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The ready line is a log event (the logs stay one format) naming every listener.
    let stdout = child.stdout.take().unwrap();
    let line = wait_for_line(stdout, "gateway-server listening", WAIT);
    assert!(
        line.contains(&format!("websocket=ws://127.0.0.1:{ws_port}/ws")),
        "{line}"
    );
    assert!(
        line.contains(&format!("api=http://127.0.0.1:{api_port}")),
        "{line}"
    );
    assert!(line.contains("grpc=http://127.0.0.1:"), "{line}");
    assert!(line.contains("(commit "), "{line}");

    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{ws_port}/ws?user_id=z"))
        .await
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = tokio::time::timeout(WAIT, async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(Some(frame)))) => return u16::from(frame.code),
                Some(Ok(_)) => continue,
                other => panic!("expected close, got {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(close, 1001);
    drop(ws);
    let exit = tokio::task::spawn_blocking(move || wait_exit(&mut child, WAIT))
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[tokio::test]
async fn json_logs_stay_json_lines_with_the_ready_event() {
    // A file with an unknown key: its warning is a log event too, not a plain stderr line.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join(format!("json-logs-{}.yaml", std::process::id()));
    std::fs::write(&file, "wsc:\n  no_such_key: 1\n").unwrap();
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_gateway-server"))
            .arg("--config")
            .arg(&file)
            .env("GATEWAY__WSC__NODE_IP", "127.0.0.1")
            .env("GATEWAY__WSC__NODE_PORT", "0")
            .env("GATEWAY__HTTP__HOST", "127.0.0.1")
            .env("GATEWAY__HTTP__PORT", "0")
            .env("GATEWAY__GRPC__ENABLED", "false")
            .env("GATEWAY__LOGGING__FORMAT", "json")
            .env("GATEWAY__NAME", "chat-gateway")
            .env("GATEWAY__ENVIRONMENT", "staging")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stdout = Lines::new(child.stdout.take().unwrap());
    let warning = stdout.wait_for("no_such_key", WAIT);
    let event: serde_json::Value = serde_json::from_str(&warning)
        .unwrap_or_else(|e| panic!("the warning is not JSON ({e}): {warning}"));
    assert_eq!(event["level"], "WARN", "{warning}");
    let line = stdout.wait_for("listening", WAIT);
    let event: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("the ready line is not JSON ({e}): {line}"));
    assert_eq!(event["fields"]["message"], "gateway-server listening");
    assert!(
        event["fields"]["websocket"]
            .as_str()
            .is_some_and(|ws| ws.starts_with("ws://127.0.0.1:") && ws.ends_with("/ws")),
        "{line}"
    );
    assert_eq!(event["fields"]["grpc"], "off");
    // The service's name, version and environment name it in the logs (and in traces).
    assert_eq!(event["fields"]["service"], "chat-gateway");
    assert_eq!(event["fields"]["environment"], "staging");
    assert_eq!(
        event["fields"]["service_version"],
        env!("CARGO_PKG_VERSION")
    );
    drop(child);
}
