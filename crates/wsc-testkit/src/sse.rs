//! A server-sent events client for tests: opens `GET /sse?...` over HTTP/1.1 (hyper's
//! client connection) and reads the body event by event, with bounded waits.
//!
//! The events are split by hand on purpose: tests check the exact lines the server writes,
//! keepalive comments included, which event-stream parsers drop.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::WAIT;

/// One event (or comment) as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `id:` line, if any.
    pub id: Option<String>,
    /// The `event:` line, if any.
    pub event: Option<String>,
    /// The `data:` lines, joined with newlines.
    pub data: String,
    /// The comment lines (`: ping`), without the colon and space.
    pub comments: Vec<String>,
}

impl Event {
    /// The data as JSON; panics when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {:?}", self.data))
    }

    fn parse(block: &str) -> Event {
        let mut event = Event::default();
        let mut data = Vec::new();
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "" => event.comments.push(value.to_owned()),
                "id" => event.id = Some(value.to_owned()),
                "event" => event.event = Some(value.to_owned()),
                "data" => data.push(value),
                other => panic!("unexpected field {other:?} in {block:?}"),
            }
        }
        event.data = data.join("\n");
        event
    }
}

/// An open event stream.
pub struct SseStream {
    /// The response status.
    pub status: u16,
    /// The response headers.
    pub headers: hyper::HeaderMap,
    body: Incoming,
    pending: String,
    connection: JoinHandle<()>,
}

impl Drop for SseStream {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The status and body of a refused stream.
pub type Refusal = (u16, Value);

/// Opens `path_and_query` on `addr` with these extra headers. A response other than 200 is
/// returned as its status and JSON body.
pub async fn open(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> Result<SseStream, Refusal> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut request = hyper::Request::get(path_and_query).header("host", addr.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Empty::<Bytes>::new()).expect("request");
    let response = tokio::time::timeout(WAIT, sender.send_request(request))
        .await
        .expect("response in time")
        .expect("response");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    if status != 200 {
        let bytes = tokio::time::timeout(WAIT, response.into_body().collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        let body = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_str(&body).unwrap_or(Value::String(body));
        return Err((status, json));
    }
    Ok(SseStream {
        status,
        headers,
        body: response.into_body(),
        pending: String::new(),
        connection,
    })
}

impl SseStream {
    /// The next event or comment block, within [`WAIT`]; `None` when the stream ended.
    pub async fn next_block(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block = self.pending[..end].to_owned();
                self.pending.drain(..end + 2);
                return Some(Event::parse(&block));
            }
            let frame = tokio::time::timeout(WAIT, self.body.frame())
                .await
                .expect("an event in time");
            match frame {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let text = std::str::from_utf8(data).expect("UTF-8 event stream");
                        self.pending.push_str(text);
                    }
                }
                Some(Err(_)) | None => {
                    assert!(self.pending.is_empty(), "unterminated: {:?}", self.pending);
                    return None;
                }
            }
        }
    }

    /// The next event, skipping comments; panics when the stream ends first.
    pub async fn next_event(&mut self) -> Event {
        loop {
            let block = self.next_block().await.expect("the stream is still open");
            if block.event.is_some() || !block.data.is_empty() {
                return block;
            }
        }
    }

    /// The next event's data as JSON, skipping comments and `pong`s.
    pub async fn next_json(&mut self) -> Value {
        loop {
            let json = self.next_event().await.json();
            if json["message_type"] != "pong" {
                return json;
            }
        }
    }

    /// The `connected` event every stream starts with: (client id, session).
    pub async fn connected(&mut self) -> (String, String) {
        let event = self.next_event().await;
        assert_eq!(event.event.as_deref(), Some("connected"), "{event:?}");
        let data = event.json();
        (
            data["data"]["client_id"]
                .as_str()
                .expect("client_id")
                .to_owned(),
            data["data"]["session"]
                .as_str()
                .expect("session")
                .to_owned(),
        )
    }

    /// Waits for the end of the stream; returns every event before it.
    pub async fn until_end(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(block) = self.next_block().await {
            events.push(block);
        }
        events
    }
}
