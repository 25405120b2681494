//! The `gateway-server` binary on its embedded defaults: environment overrides choose the
//! ports, a client connects, SIGTERM stops it with close 1001 and exit code 0.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn env_overrides_ports_and_sigterm_exits_zero() {
    let (ws_port, api_port) = (free_port(), free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway-server"))
        .env("GATEWAY__WSC__NODE_IP", "127.0.0.1")
        .env("GATEWAY__WSC__NODE_PORT", ws_port.to_string())
        .env("GATEWAY__HTTP__HOST", "127.0.0.1")
        .env("GATEWAY__HTTP__PORT", api_port.to_string())
        .env("GATEWAY__GRPC__HOST", "127.0.0.1")
        .env("GATEWAY__GRPC__PORT", "0")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains(&format!("127.0.0.1:{ws_port}")), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{api_port}")), "{line}");

    let (mut ws, _) = connect_async(format!("ws://127.0.0.1:{ws_port}/ws?user_id=z"))
        .await
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let close = tokio::time::timeout(Duration::from_secs(10), async {
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
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(exit.code(), Some(0));
}
