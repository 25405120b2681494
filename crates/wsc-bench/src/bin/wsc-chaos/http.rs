//! The chaos run's HTTP client: one bounded HTTP/1.1 exchange per request, answered with
//! JSON, that reports every failure as an error instead of panicking.
//!
//! `wsc_testkit::http` panics on a refused connection or a late answer, which is right in a
//! test and wrong here: a node that was just killed or stopped refuses or hangs by design,
//! and the run must record that and go on.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a query (presence, stats, readiness) may take. A live node answers in
/// milliseconds; a stopped one never does, and the caller must not wait for it long.
pub(crate) const QUERY: Duration = Duration::from_secs(3);

/// One exchange with `connection: close`: the status and the body parsed as JSON (`Null`
/// when the body is not JSON), or why there is none within `within`.
pub(crate) async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    within: Duration,
) -> Result<(u16, Value), String> {
    let request = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect {addr}: {e}"))?;
        let body = body.unwrap_or("");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write to {addr}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read from {addr}: {e}"))?;
        parse(&response)
    };
    tokio::time::timeout(within, request)
        .await
        .map_err(|_| format!("{method} {path} on {addr}: no answer within {within:?}"))?
}

/// A GET with the query bound.
pub(crate) async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Value), String> {
    exchange(addr, "GET", path, None, QUERY).await
}

/// Splits a whole response into its status and JSON body (de-chunked when needed).
fn parse(response: &[u8]) -> Result<(u16, Value), String> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("no complete answer: {:?}", truncate(&text)))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
}

fn dechunk(mut body: &str) -> Result<String, String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").ok_or("a chunk without size line")?;
        let size = usize::from_str_radix(size.trim(), 16).map_err(|e| e.to_string())?;
        if size == 0 {
            return Ok(out);
        }
        let chunk = rest.get(..size).ok_or("a chunk shorter than its size")?;
        out.push_str(chunk);
        body = rest.get(size + 2..).unwrap_or("");
    }
}

/// At most 200 bytes of `text`, for error messages.
fn truncate(text: &str) -> &str {
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
