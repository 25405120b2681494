//! Shared helpers for the gateway-server integration tests: a server on `127.0.0.1:0`, real
//! WebSocket clients with bounded waits, raw HTTP/1.1 requests and a gRPC client.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway_server::grpc::proto::gateway_client::GatewayClient;
use gateway_server::{RunningServer, Server};
use serde_json::Value;
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
