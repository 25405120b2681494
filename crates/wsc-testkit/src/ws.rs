//! A real WebSocket client: connect (or be refused), send, and read frames with bounded
//! waits. WebSocket pings and pongs are skipped by every read.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::WAIT;

/// A WebSocket client.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects to `url` with these extra request headers.
pub async fn try_connect(url: &str, headers: &[(&'static str, &str)]) -> Result<Client, WsError> {
    let mut request = url.into_client_request().expect("a valid WebSocket URL");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, HeaderValue::from_str(value).expect("a valid header"));
    }
    tokio::time::timeout(WAIT, connect_async(request))
        .await
        .expect("handshake in time")
        .map(|(ws, _)| ws)
}

/// Connects to `url`; the upgrade must succeed.
pub async fn connect(url: &str) -> Client {
    try_connect(url, &[])
        .await
        .unwrap_or_else(|e| panic!("connect to {url} failed: {e}"))
}

/// The status and JSON body of a refused handshake.
pub async fn refused(url: &str, headers: &[(&'static str, &str)]) -> (u16, Value) {
    match try_connect(url, headers).await {
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
pub async fn send(ws: &mut Client, text: &str) {
    tokio::time::timeout(WAIT, ws.send(Message::text(text.to_owned())))
        .await
        .expect("send in time")
        .expect("send ok");
}

/// Sends one JSON text frame.
pub async fn send_json(ws: &mut Client, value: &Value) {
    send(ws, &value.to_string()).await;
}

/// Acknowledges a message.
pub async fn ack(ws: &mut Client, message_id: &str) {
    send_json(
        ws,
        &json!({"message_type": "ack", "message_id": message_id}),
    )
    .await;
}

/// The next frame, whatever it is.
pub async fn next_frame(ws: &mut Client) -> Message {
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
pub async fn next_json(ws: &mut Client) -> Value {
    match next_frame(ws).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).expect("a JSON frame"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The next frame, which must be a close frame: its code and reason (1005 without a code).
pub async fn next_close(ws: &mut Client) -> (u16, String) {
    match next_frame(ws).await {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Reads until the server ends the stream (the close handshake is over, the connection gone).
pub async fn wait_closed(ws: &mut Client) {
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

/// Proves nothing was queued for this client before now: a `ping` is answered through the
/// same queue as everything else, so the next frame must be its `pong` (with id `barrier`).
pub async fn assert_nothing_queued(ws: &mut Client, barrier: &str) {
    send_json(ws, &json!({"message_type": "ping", "id": barrier})).await;
    let frame = next_json(ws).await;
    assert_eq!(
        (frame["message_type"].as_str(), frame["id"].as_str()),
        (Some("pong"), Some(barrier)),
        "expected nothing before the pong, got {frame}"
    );
}

/// Asserts that `frame` is an error frame with `data.code` == `code`.
pub fn assert_error_frame(frame: &Value, code: &str) {
    assert_eq!(frame["message_type"], "error", "{frame}");
    assert_eq!(frame["data"]["code"], code, "{frame}");
}
