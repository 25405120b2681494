//! Raw HTTP/1.1 exchanges (`connection: close`), so tests see exactly what the server sent:
//! status, head and body, with JSON helpers for the API.

use std::net::SocketAddr;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::WAIT;

/// One exchange: status, lower-cased head, body text (de-chunked).
pub async fn raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        request.push_str("content-type: application/json\r\n");
    }
    request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request written");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("response read");
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

/// One exchange whose answer must be JSON: status and body.
pub async fn json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Value) {
    let (status, head, body) = raw(addr, method, path, headers, body).await;
    assert!(
        head.contains("content-type: application/json"),
        "{method} {path}: not a JSON answer: {head}\n{body}"
    );
    let json = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{method} {path}: body is not JSON ({e}): {body:?}"));
    (status, json)
}

/// A GET answered with JSON.
pub async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    json(addr, "GET", path, &[], None).await
}

/// A POST answered with JSON.
pub async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Value) {
    json(addr, "POST", path, &[], Some(body)).await
}

/// A POST that must answer 200: its JSON body.
pub async fn post_ok(addr: SocketAddr, path: &str, body: &str) -> Value {
    let (status, json) = post(addr, path, body).await;
    assert_eq!(status, 200, "POST {path} {body}: {json}");
    json
}

/// A POST run concurrently (for acknowledged sends, which answer only after the ack).
pub fn spawn_post(
    addr: SocketAddr,
    path: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value)> {
    let path = path.to_owned();
    tokio::spawn(async move { post(addr, &path, &body.to_string()).await })
}

/// The answer of a [`spawn_post`], within the wait bound.
pub async fn joined(task: tokio::task::JoinHandle<(u16, Value)>) -> (u16, Value) {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the API answered in time")
        .expect("the request task did not panic")
}

/// The `error` code of a JSON error body.
pub fn error_code(body: &Value) -> Option<&str> {
    body["error"].as_str()
}
