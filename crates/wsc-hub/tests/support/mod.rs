//! Shared helpers for the integration tests: a hub served over real TCP WebSockets on
//! `127.0.0.1:0`, an in-memory (duplex) variant for paused-time tests, and a WebSocket
//! client with bounded waits so that a broken test fails instead of hanging.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use wsc_hub::{Hub, HubConfig, Identity, IdentityParams, RegisterError};

/// How long a client waits for one frame before the test fails.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// How one server-side connection task ended.
#[derive(Debug)]
pub(crate) enum ConnEnd {
    /// The WebSocket handshake failed (for example HTTP 400 for a missing user id).
    Handshake(String),
    /// The handshake succeeded; this is what `wsc_hub::tungstenite::accept` returned
    /// (after the connection was served to its end and unregistered).
    Accepted(Result<(), RegisterError>),
}

/// A started hub served on `127.0.0.1:0` by `wsc_hub::tungstenite`.
pub(crate) struct TestServer {
    pub(crate) hub: Hub,
    pub(crate) addr: SocketAddr,
    ends: mpsc::UnboundedReceiver<ConnEnd>,
    accept_loop: JoinHandle<()>,
}

impl TestServer {
    /// Builds a hub from `config`, starts it and serves it.
    pub(crate) async fn start(config: HubConfig) -> Self {
        let hub = Hub::new(config);
        Self::serve(hub).await
    }

    /// Starts (if needed) and serves an existing hub, for example one with callbacks.
    pub(crate) async fn serve(hub: Hub) -> Self {
        hub.start();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, ends) = mpsc::unbounded_channel();
        let server_hub = hub.clone();
        let accept_loop = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let hub = server_hub.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _ = stream.set_nodelay(true);
                    let handshake = wsc_hub::tungstenite::accept_with_identity(
                        stream,
                        &IdentityParams::default(),
                        &hub.config(),
                    )
                    .await;
                    let end = match handshake {
                        Ok((ws, identity)) => ConnEnd::Accepted(
                            wsc_hub::tungstenite::accept(&hub, identity, ws).await,
                        ),
                        Err(e) => ConnEnd::Handshake(e.to_string()),
                    };
                    let _ = tx.send(end);
                });
            }
        });
        TestServer {
            hub,
            addr,
            ends,
            accept_loop,
        }
    }

    /// The WebSocket URL with the given query string.
    pub(crate) fn url(&self, query: &str) -> String {
        format!("ws://{}/ws?{}", self.addr, query)
    }

    /// Connects a client (the handshake is done; registration may still be running).
    pub(crate) async fn connect(&self, query: &str) -> Client {
        Client::connect(&self.url(query)).await
    }

    /// Connects a client and waits until the server has registered and serves it.
    pub(crate) async fn connect_ready(&self, query: &str) -> Client {
        let mut client = self.connect(query).await;
        client.ready().await;
        client
    }

    /// Waits until one server-side connection task has ended.
    pub(crate) async fn next_end(&mut self) -> ConnEnd {
        tokio::time::timeout(TIMEOUT, self.ends.recv())
            .await
            .expect("timed out waiting for a server connection task to end")
            .expect("accept loop ended")
    }

    /// Waits until `n` server-side connection tasks ended with a served connection.
    pub(crate) async fn wait_served(&mut self, n: usize) {
        for _ in 0..n {
            match self.next_end().await {
                ConnEnd::Accepted(Ok(())) => {}
                other => panic!("expected a served connection to end, got {other:?}"),
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

/// Registers `identity` directly with the hub and serves it over an in-memory duplex pipe:
/// still the real WebSocket protocol on both ends, but no socket, so it is deterministic
/// under paused time. Returns the client and the server task (which ends when the
/// connection was unregistered).
pub(crate) async fn duplex_client(
    hub: &Hub,
    identity: Identity,
) -> (Client<DuplexStream>, JoinHandle<()>) {
    duplex_client_with_capacity(hub, identity, 256 * 1024).await
}

/// [`duplex_client`] with a pipe of `capacity` bytes in each direction (a small pipe makes
/// the server's writes wait for the client to read, like a socket buffer).
pub(crate) async fn duplex_client_with_capacity(
    hub: &Hub,
    identity: Identity,
    capacity: usize,
) -> (Client<DuplexStream>, JoinHandle<()>) {
    let (client_io, server_io) = tokio::io::duplex(capacity);
    let config = wsc_hub::tungstenite::websocket_config(&hub.config());
    let server_ws = WebSocketStream::from_raw_socket(server_io, Role::Server, Some(config)).await;
    let registration = hub.register(identity).await.expect("register");
    let task = tokio::spawn(wsc_hub::tungstenite::serve(registration, server_ws));
    let client_ws = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    (Client::from_stream(client_ws), task)
}

/// A WebSocket client with bounded waits.
pub(crate) struct Client<S = MaybeTlsStream<TcpStream>> {
    /// The underlying stream, for tests that need raw access.
    pub(crate) ws: WebSocketStream<S>,
    timeout: Duration,
}

static PING_SEQ: AtomicU64 = AtomicU64::new(1);

impl Client {
    /// Connects to `url`; panics when the handshake fails.
    pub(crate) async fn connect(url: &str) -> Self {
        let (ws, _response) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
            .await
            .expect("timed out connecting")
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        Client::from_stream(ws)
    }
}

impl<S> Client<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    /// Wraps a stream.
    pub(crate) fn from_stream(ws: WebSocketStream<S>) -> Self {
        Client {
            ws,
            timeout: TIMEOUT,
        }
    }

    /// Changes how long each wait may take.
    pub(crate) fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The next frame of any kind; panics on timeout, error or end of stream.
    pub(crate) async fn next_frame(&mut self) -> Message {
        match tokio::time::timeout(self.timeout, self.ws.next()).await {
            Err(_) => panic!("timed out after {:?} waiting for a frame", self.timeout),
            Ok(None) => panic!("connection ended without a close frame"),
            Ok(Some(Err(e))) => panic!("websocket error while waiting for a frame: {e}"),
            Ok(Some(Ok(message))) => message,
        }
    }

    /// The next text frame, skipping WebSocket pings and pongs; panics on anything else.
    pub(crate) async fn recv_text(&mut self) -> String {
        loop {
            match self.next_frame().await {
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Text(text) => return text.as_str().to_owned(),
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame as JSON.
    pub(crate) async fn recv_json(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"))
    }

    /// Sends one text frame.
    pub(crate) async fn send_text(&mut self, text: &str) {
        self.send(Message::Text(Utf8Bytes::from(text))).await;
    }

    /// Sends one JSON text frame.
    pub(crate) async fn send_json(&mut self, value: &Value) {
        self.send_text(&value.to_string()).await;
    }

    /// Sends any frame.
    pub(crate) async fn send(&mut self, message: Message) {
        tokio::time::timeout(self.timeout, self.ws.send(message))
            .await
            .expect("timed out sending")
            .expect("send failed");
    }

    /// Sends `{"message_type":"ping","id":...}` and asserts that the very next text frame
    /// is its `pong`. Returns the pong.
    pub(crate) async fn ping(&mut self) -> Value {
        let id = format!("ping-{}", PING_SEQ.fetch_add(1, Ordering::Relaxed));
        self.send_json(&serde_json::json!({"message_type": "ping", "id": id}))
            .await;
        let pong = self.recv_json().await;
        assert_eq!(
            pong["message_type"], "pong",
            "expected the pong of {id} as the next frame, got {pong}"
        );
        assert_eq!(pong["id"], id.as_str(), "pong answers another ping: {pong}");
        pong
    }

    /// Waits until the server has registered the connection and serves it (ping / pong).
    pub(crate) async fn ready(&mut self) {
        self.ping().await;
    }

    /// Asserts that nothing was queued for this client: a ping's pong is the next frame.
    pub(crate) async fn assert_nothing_received(&mut self) {
        self.ping().await;
    }

    /// Expects an error frame with `data.code == code`; returns it.
    pub(crate) async fn expect_error(&mut self, code: &str) -> Value {
        let frame = self.recv_json().await;
        assert_eq!(
            frame["message_type"], "error",
            "expected an error frame: {frame}"
        );
        assert_eq!(frame["data"]["code"], code, "wrong error code: {frame}");
        assert!(
            frame["content"].as_str().is_some_and(|c| !c.is_empty()),
            "error frame without a human-readable reason: {frame}"
        );
        frame
    }

    /// Expects a close frame next (pings and pongs are skipped, any text frame fails the
    /// test); returns its code and reason and completes the closing handshake.
    pub(crate) async fn expect_close(&mut self) -> (u16, String) {
        let (texts, code, reason) = self.expect_close_after_texts().await;
        assert!(
            texts.is_empty(),
            "expected a close frame, got text frames first: {texts:?}"
        );
        (code, reason)
    }

    /// Reads until a close frame, collecting the text frames before it.
    pub(crate) async fn expect_close_after_texts(&mut self) -> (Vec<String>, u16, String) {
        let mut texts = Vec::new();
        loop {
            match self.next_frame().await {
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Text(text) => texts.push(text.as_str().to_owned()),
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                        .unwrap_or((1005, String::new()));
                    // Reading on flushes tungstenite's close reply and sees the end.
                    let _ = tokio::time::timeout(Duration::from_secs(2), async {
                        while let Some(Ok(_)) = self.ws.next().await {}
                    })
                    .await;
                    return (texts, code, reason);
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Sends a close frame with `code` and waits for the server's reply.
    pub(crate) async fn close(&mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from("bye"),
        };
        tokio::time::timeout(self.timeout, self.ws.close(Some(frame)))
            .await
            .expect("timed out closing")
            .expect("close failed");
        let _ = tokio::time::timeout(self.timeout, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }
}

/// A test config: defaults, with the given changes applied.
pub(crate) fn config(change: impl FnOnce(&mut HubConfig)) -> HubConfig {
    let mut config = HubConfig::default();
    change(&mut config);
    config
}

/// Polls `condition` (yielding to other tasks, never sleeping) until it holds; fails the
/// test after [`TIMEOUT`].
pub(crate) async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(TIMEOUT, async {
        while !condition() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting until {what}");
}

/// Records every disconnect callback: how many ran, and each `(client_id, reason)` in a
/// channel so that a test can wait for one without sleeping.
pub(crate) struct Disconnects {
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    rx: mpsc::UnboundedReceiver<(String, wsc_hub::DisconnectReason)>,
}

impl Disconnects {
    /// Installs the recorder on `hub`.
    pub(crate) fn record(hub: &Hub) -> Self {
        let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (tx, rx) = mpsc::unbounded_channel();
        let counter = count.clone();
        hub.on_client_disconnect(move |conn, reason| {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send((conn.client_id().to_owned(), reason.clone()));
        });
        Disconnects { count, rx }
    }

    /// Waits for the next disconnect callback.
    pub(crate) async fn next(&mut self) -> (String, wsc_hub::DisconnectReason) {
        tokio::time::timeout(TIMEOUT, self.rx.recv())
            .await
            .expect("timed out waiting for a disconnect callback")
            .expect("hub dropped")
    }

    /// How many disconnect callbacks ran so far.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Asserts that no disconnect callback ran since the last [`next`](Self::next).
    pub(crate) fn assert_none_pending(&mut self) {
        if let Ok(event) = self.rx.try_recv() {
            panic!("unexpected extra disconnect callback: {event:?}");
        }
    }
}

/// A started hub with these settings (no transport: tests drive `Registration`s).
pub(crate) fn started(config: HubConfig) -> Hub {
    let hub = Hub::new(config);
    hub.start();
    hub
}

/// Every message frame a registration has ready now, as JSON (pings skipped).
pub(crate) fn drain_messages(registration: &mut wsc_hub::Registration) -> Vec<Value> {
    let mut frames = Vec::new();
    while let Some(frame) = registration.try_recv() {
        if let wsc_hub::Outbound::Message(payload) = frame {
            frames.push(serde_json::from_str(payload.as_str()).expect("frame is JSON"));
        }
    }
    frames
}

/// The `content` of each frame (`<none>` when absent).
pub(crate) fn contents(frames: &[Value]) -> Vec<&str> {
    frames
        .iter()
        .map(|f| f["content"].as_str().unwrap_or("<none>"))
        .collect()
}

/// The longest wait for one message of a bare registration (virtual time in paused tests,
/// where acknowledged sends wait out timeouts of tens of seconds).
pub(crate) const MESSAGE_WAIT: Duration = Duration::from_secs(60);

/// The next message frame of a registration, waiting for it (pings skipped).
pub(crate) async fn next_message(registration: &mut wsc_hub::Registration) -> Value {
    loop {
        let frame = tokio::time::timeout(MESSAGE_WAIT, registration.recv())
            .await
            .expect("timed out waiting for a frame")
            .expect("queue closed");
        if let wsc_hub::Outbound::Message(payload) = frame {
            return serde_json::from_str(payload.as_str()).expect("frame is JSON");
        }
    }
}

/// An `ack` frame for a message.
pub(crate) fn ack_frame(message_id: &str) -> String {
    serde_json::json!({"message_type": "ack", "message_id": message_id}).to_string()
}
