//! Helpers shared by the gateway integration tests: local configurations, real WebSocket
//! clients over 127.0.0.1, and bounded waits on channels fed by callbacks.

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
use wsc_config::GatewayConfig;

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The bound on every wait.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// Every listener on 127.0.0.1 and a free port.
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

/// A gateway built from `config`, not started.
pub(crate) fn built(config: GatewayConfig) -> Gateway {
    Gateway::builder()
        .config(config)
        .build()
        .expect("gateway builds")
}

/// A gateway built from `config` and started.
pub(crate) async fn started(config: GatewayConfig) -> Gateway {
    Gateway::builder()
        .config(config)
        .build_and_start()
        .await
        .expect("gateway starts")
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

/// Connects with this query string; the upgrade must succeed.
pub(crate) async fn connect(gateway: &Gateway, query: &str) -> Client {
    try_connect(gateway, query, &[])
        .await
        .unwrap_or_else(|e| panic!("connect with `{query}` failed: {e}"))
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

/// Asserts that `frame` is an error frame with `data.code` == `code`.
pub(crate) fn assert_error_frame(frame: &Value, code: &str) {
    assert_eq!(frame["message_type"], "error", "{frame}");
    assert_eq!(frame["data"]["code"], code, "{frame}");
}

/// The next item of a channel fed by a callback, within [`WAIT`].
pub(crate) async fn recv<T>(rx: &mut UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a callback in time")
        .expect("channel open")
}

/// Everything a channel holds right now.
pub(crate) fn drain<T>(rx: &mut UnboundedReceiver<T>) -> Vec<T> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        out.push(item);
    }
    out
}
