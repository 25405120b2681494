//! Shared helpers for the gateway-server integration tests: a server on `127.0.0.1:0`, real
//! WebSocket clients with bounded waits, raw HTTP/1.1 requests and a gRPC client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_server::grpc::proto::gateway_client::GatewayClient;
use gateway_server::{RunningServer, Server};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};
use tonic::transport::Channel;
use wsc_config::GatewayConfig;

/// A WebSocket client.
pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single wait may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The default configuration with every listener on `127.0.0.1:0`.
pub(crate) fn local_config() -> GatewayConfig {
    let mut config = GatewayConfig::default();
    config.wsc.node_ip = "127.0.0.1".to_owned();
    config.wsc.node_port = 0;
    config.http.host = "127.0.0.1".to_owned();
    config.http.port = 0;
    config.grpc.host = "127.0.0.1".to_owned();
    config.grpc.port = 0;
    config
}

/// Starts a server; panics when it cannot.
pub(crate) async fn start(config: GatewayConfig) -> RunningServer {
    Server::new(config).start().await.expect("server starts")
}

/// A gRPC client for a running server.
pub(crate) async fn grpc(server: &RunningServer) -> GatewayClient<Channel> {
    let addr = server.grpc_addr().expect("gRPC enabled");
    GatewayClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connects")
}

/// Connects a WebSocket client with this query; panics when the handshake fails.
pub(crate) async fn connect(addr: SocketAddr, query: &str) -> Client {
    connect_async(format!("ws://{addr}/ws?{query}"))
        .await
        .map(|(ws, _)| ws)
        .unwrap_or_else(|e| panic!("connect with {query}: {e}"))
}

/// The next frame, whatever it is (pings and pongs skipped).
pub(crate) async fn next_frame(ws: &mut Client) -> Message {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame ok");
        match frame {
            Message::Ping(_) | Message::Pong(_) => continue,
            other => return other,
        }
    }
}

/// The next frame, which must be a JSON text frame.
pub(crate) async fn next_json(ws: &mut Client) -> Value {
    match next_frame(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Sends one JSON text frame.
pub(crate) async fn send_json(ws: &mut Client, value: &Value) {
    ws.send(Message::text(value.to_string())).await.unwrap();
}

/// One raw HTTP/1.1 exchange (`connection: close`): status, lower-cased head, body text.
pub(crate) async fn http_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .unwrap();
    let response = String::from_utf8(response).expect("UTF-8 response");
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").expect("chunk size line");
        let size = usize::from_str_radix(size.trim(), 16).expect("hex chunk size");
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
}

/// One HTTP exchange whose answer must be JSON: status and body.
pub(crate) async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let (status, head, body) = http_raw(addr, method, path, headers, body).await;
    assert!(
        head.contains("content-type: application/json"),
        "{method} {path}: not a JSON answer: {head}\n{body}"
    );
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"));
    (status, json)
}

/// The `error` code of a JSON error body.
pub(crate) fn error_code(body: &Value) -> Option<&str> {
    body["error"].as_str()
}

/// The next frame must be a close frame: its code and reason.
pub(crate) async fn next_close(ws: &mut Client) -> (u16, String) {
    match next_frame(ws).await {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Reads until the server ends the stream (the close handshake is over, the connection gone).
pub(crate) async fn wait_closed(ws: &mut Client) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the stream ends in time")
        {
            None | Some(Err(_)) => return,
            Some(Ok(_)) => continue,
        }
    }
}

/// Proves nothing was queued for this client before now: a ping's pong is the next frame.
pub(crate) async fn assert_nothing_pending(ws: &mut Client, label: &str) {
    let id = format!("barrier-{label}");
    ws.send(Message::text(
        json!({"message_type": "ping", "id": id}).to_string(),
    ))
    .await
    .unwrap();
    let frame = next_json(ws).await;
    assert_eq!(
        (frame["message_type"].as_str(), frame["id"].as_str()),
        (Some("pong"), Some(id.as_str())),
        "{label} received an unexpected frame: {frame}"
    );
}

pub(crate) async fn ack(ws: &mut Client, message_id: &str) {
    ws.send(Message::text(
        json!({"message_type": "ack", "message_id": message_id}).to_string(),
    ))
    .await
    .unwrap();
}

pub(crate) async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    http(addr, "GET", path, &[], None).await
}

pub(crate) async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Value) {
    http(addr, "POST", path, &[], Some(body)).await
}

/// A POST that must answer 200: its JSON body.
pub(crate) async fn post_ok(addr: SocketAddr, path: &str, body: &str) -> Value {
    let (status, json) = post(addr, path, body).await;
    assert_eq!(status, 200, "POST {path} {body}: {json}");
    json
}

/// A POST run concurrently (for acknowledged sends, which answer only after the ack).
pub(crate) fn spawn_post(
    addr: SocketAddr,
    path: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let path = path.to_owned();
    tokio::spawn(async move { post(addr, &path, &body.to_string()).await })
}

pub(crate) async fn joined(task: tokio::task::JoinHandle<(u16, Value)>) -> (u16, Value) {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the API answered in time")
        .expect("the request task did not panic")
}
