//! Helpers shared by the example tests: real WebSocket clients and bounded waits on the
//! lines the examples print.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use gateway::Gateway;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The bound on every wait.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The lines an example printed, read in order with a bounded wait.
pub(crate) struct Lines {
    rx: UnboundedReceiver<String>,
    /// Every line read so far.
    pub(crate) seen: Vec<String>,
}

impl Lines {
    pub(crate) fn new(rx: UnboundedReceiver<String>) -> Self {
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next printed line.
    pub(crate) async fn next(&mut self) -> String {
        let line = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no line in time; printed so far: {:#?}", self.seen))
            .expect("the example keeps its sender");
        self.seen.push(line.clone());
        line
    }

    /// Reads lines until one matches; returns it.
    pub(crate) async fn until(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no line matching {what} in time; printed: {:#?}", self.seen)
                })
                .expect("the example keeps its sender");
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    /// Reads lines until each of `expected` was printed (in any order, earlier lines count).
    pub(crate) async fn until_all(&mut self, expected: &[&str]) {
        while !expected.iter().all(|e| self.seen.iter().any(|l| l == e)) {
            let line = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "not all of {expected:#?} printed in time; printed: {:#?}",
                        self.seen
                    )
                })
                .expect("the example keeps its sender");
            self.seen.push(line);
        }
    }

    /// Reads lines until this exact one.
    pub(crate) async fn until_eq(&mut self, expected: &str) -> String {
        self.until(&format!("{expected:?}"), |l| l == expected)
            .await
    }
}

/// The WebSocket listener of a running gateway.
pub(crate) async fn ws_addr(gateway: &Gateway) -> SocketAddr {
    gateway.addresses().await.expect("gateway is running").0
}

/// Connects with this query string and these headers.
pub(crate) async fn try_connect(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, WsError> {
    let addr = ws_addr(gateway).await;
    let mut request = format!("ws://{addr}/ws?{query}")
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).unwrap());
    }
    tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("handshake in time")
        .map(|(ws, _)| ws)
}

/// The status and JSON body of a refused handshake.
pub(crate) async fn refused(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    match try_connect(gateway, query, headers).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).expect("JSON error body");
            (response.status().as_u16(), json)
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

/// Sends one text frame.
pub(crate) async fn send(ws: &mut Client, text: &str) {
    tokio::time::timeout(WAIT, ws.send(Message::text(text.to_owned())))
        .await
        .expect("send in time")
        .expect("send ok");
}

/// The next JSON text frame (WebSocket pings and pongs are skipped).
pub(crate) async fn next_json(ws: &mut Client) -> Value {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time")
            .expect("stream open")
            .expect("frame ok");
        match frame {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected frame {other:?}"),
        }
    }
}

/// The next close frame: (code, reason).
pub(crate) async fn close_frame(ws: &mut Client) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

/// Asserts that nothing was queued for this client before now: a `ping` frame is answered
/// through the same queue as everything else, so the next frame must be its `pong`.
pub(crate) async fn assert_nothing_queued(ws: &mut Client, barrier: &str) {
    send(
        ws,
        &format!(r#"{{"message_type":"ping","id":"{barrier}"}}"#),
    )
    .await;
    let frame = next_json(ws).await;
    assert_eq!(
        (frame["message_type"].as_str(), frame["id"].as_str()),
        (Some("pong"), Some(barrier)),
        "expected nothing before the pong, got {frame}"
    );
}

/// Stops the gateway while answering the 1001 close frames of `clients`; returns whether it
/// drained.
pub(crate) async fn stop(gateway: &Gateway, clients: Vec<Client>) -> bool {
    let stopping = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.stop().await }
    });
    for mut client in clients {
        assert_eq!(close_frame(&mut client).await.0, 1001);
    }
    tokio::time::timeout(WAIT * 2, stopping)
        .await
        .expect("stop in time")
        .unwrap()
        .expect("the gateway was running")
}
