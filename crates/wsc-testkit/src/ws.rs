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

/// Reads past every other frame to the close frame: its code and reason.
pub async fn close_after_frames(ws: &mut Client) -> (u16, String) {
    loop {
        match next_frame(ws).await {
            Message::Close(Some(frame)) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Message::Close(None) => return (1005, String::new()),
            _ => continue,
        }
    }
}

/// A WebSocket client that never answers: the upgrade is done by hand on a raw socket, and
/// nothing is written after it (no pongs), so the server sees a silent connection.
pub struct SilentClient(TcpStream);

impl SilentClient {
    /// Upgrades `ws://{addr}{path_and_query}`; panics unless the server answers 101.
    pub async fn connect(addr: std::net::SocketAddr, path_and_query: &str) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET {path_and_query} HTTP/1.1\r\nhost: {addr}\r\nupgrade: websocket\r\n\
             connection: upgrade\r\nsec-websocket-version: 13\r\n\
             sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("request");
        // Read the response head byte by byte, so no frame after it is consumed.
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let n = tokio::time::timeout(WAIT, stream.read(&mut byte))
                .await
                .expect("response in time")
                .expect("response read");
            assert!(n == 1, "the server closed during the handshake: {head:?}");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        SilentClient(stream)
    }

    /// Writes `bytes` to the socket as they are: a frame built by hand, for example one that
    /// breaks the WebSocket protocol (unmasked, or with a reserved opcode).
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        use tokio::io::AsyncWriteExt;
        tokio::time::timeout(WAIT, self.0.write_all(bytes))
            .await
            .expect("written in time")
            .expect("written");
    }

    /// Reads the server's frames (pings, text) up to its close frame: its code and reason.
    pub async fn close_frame(mut self) -> (u16, String) {
        use tokio::io::AsyncReadExt;
        let stream = &mut self.0;
        loop {
            let mut header = [0u8; 2];
            tokio::time::timeout(WAIT, stream.read_exact(&mut header))
                .await
                .expect("a frame in time")
                .expect("a frame header");
            let opcode = header[0] & 0x0f;
            let mut len = u64::from(header[1] & 0x7f);
            if len == 126 {
                let mut ext = [0u8; 2];
                stream.read_exact(&mut ext).await.expect("length");
                len = u64::from(u16::from_be_bytes(ext));
            } else if len == 127 {
                let mut ext = [0u8; 8];
                stream.read_exact(&mut ext).await.expect("length");
                len = u64::from_be_bytes(ext);
            }
            let mut payload = vec![0u8; len as usize];
            stream.read_exact(&mut payload).await.expect("payload");
            if opcode == 0x8 {
                let code = payload
                    .get(..2)
                    .map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                return (code, reason.into_owned());
            }
        }
    }
}
