//! The running client: [`Client`] (the handle that sends), [`Events`] (what arrives, as a
//! `Stream`) and the background task between them, which serves one connection at a time
//! and reconnects with backoff, resuming after the last `seq_no` received.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures_util::{SinkExt, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;
use wsc_hub::{HubMessage, MessageType};

use crate::builder::ClientBuilder;
use crate::connect::{Dialer, Opened, Socket};
use crate::dedupe::SeenIds;
use crate::error::{ConnectError, SendError};

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection is open: the first one, or a reconnect (`reconnect: true`).
    Connected {
        /// The connection's client id (the same on every reconnect).
        client_id: String,
        /// The node serving it.
        node_id: String,
        /// Whether this replaces a lost connection.
        reconnect: bool,
    },
    /// A frame from the server, deduplicated by `message_id`: messages, `recovered`,
    /// `error`, `kick_out`... (the heartbeat's own `pong`s are not passed on). Boxed: a
    /// message is much larger than the other events.
    Message(Box<HubMessage>),
    /// The connection ended. `retry_in` is the delay before the next attempt; `None` means
    /// the client stopped (closed, kicked, replaced, logged in elsewhere, refused, or out of
    /// attempts) and the stream ends after this event.
    Disconnected {
        /// The close code the server sent, if it sent one.
        code: Option<u16>,
        /// The close reason, or what went wrong.
        reason: String,
        /// When the client tries again.
        retry_in: Option<Duration>,
    },
}

enum Command {
    Frame(String),
}

/// The handle that sends frames; cheap to clone. Frames sent while the client reconnects
/// wait (up to 1024) and go out on the next connection.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    shutdown: CancellationToken,
    connected: Arc<AtomicBool>,
    client_id: Arc<str>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

impl Client {
    /// Sends a message (its `sender` is stamped by the server from the connection).
    pub async fn send(&self, msg: &HubMessage) -> Result<(), SendError> {
        let text = serde_json::to_string(msg).map_err(|e| SendError::Encode(e.to_string()))?;
        self.send_raw(text).await
    }

    /// Sends one frame as it is (JSON text).
    pub async fn send_raw(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.commands
            .send(Command::Frame(text.into()))
            .await
            .map_err(|_| SendError::Closed)
    }

    /// Acknowledges a message (only needed with [`ClientBuilder::auto_ack`] off).
    pub async fn ack(&self, message_id: &str) -> Result<(), SendError> {
        let frame = serde_json::json!({"message_type": "ack", "message_id": message_id});
        self.send_raw(frame.to_string()).await
    }

    /// Closes the connection (code 1000) and stops reconnecting; the events end with a
    /// final [`ClientEvent::Disconnected`].
    pub fn close(&self) {
        self.shutdown.cancel();
    }

    /// Whether a connection is open right now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// This client's id, kept across reconnects.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

/// What arrives, in order; ends after the final [`ClientEvent::Disconnected`]. Reading is
/// back-pressure: while the application does not read, the client does not read the socket
/// either (the server's queue for it fills, see its slow-consumer policy).
#[derive(Debug)]
pub struct Events {
    events: mpsc::Receiver<ClientEvent>,
}

impl Events {
    /// The next event (`None` once the client stopped).
    pub async fn recv(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// The next [`ClientEvent::Message`], skipping the others; `None` once the client
    /// stopped.
    pub async fn next_message(&mut self) -> Option<HubMessage> {
        while let Some(event) = self.events.recv().await {
            if let ClientEvent::Message(msg) = event {
                return Some(*msg);
            }
        }
        None
    }
}

impl Stream for Events {
    type Item = ClientEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ClientEvent>> {
        self.events.poll_recv(cx)
    }
}

/// How one connection ended.
struct Ending {
    code: Option<u16>,
    reason: String,
    retry: bool,
}

/// Close reasons after which reconnecting would be wrong (docs/protocol.md section 7).
const FINAL_REASONS: [&str; 4] = [
    "replaced by a newer connection",
    "logged in elsewhere",
    "kicked: ",
    "connection rejected: ",
];

/// The prefix of the heartbeat pings' ids, whose pongs are not passed on.
const HEARTBEAT_ID: &str = "wsc-client-heartbeat-";

pub(crate) async fn start(builder: ClientBuilder) -> Result<(Client, Events), ConnectError> {
    let dialer = Dialer::new(builder)?;
    let first = dialer.open(dialer.builder().last_seq).await?;
    let builder = dialer.builder();
    let (commands_tx, commands) = mpsc::channel(1024);
    let (events_tx, events) = mpsc::channel(builder.event_buffer.max(1));
    let shutdown = CancellationToken::new();
    let connected = Arc::new(AtomicBool::new(true));
    let client = Client {
        commands: commands_tx,
        shutdown: shutdown.clone(),
        connected: connected.clone(),
        client_id: Arc::from(first.client_id.as_str()),
    };
    let task = Task {
        seen: SeenIds::new(builder.dedupe_window),
        last_seq: builder.last_seq,
        dialer,
        commands,
        events: events_tx,
        shutdown,
        connected,
        pings: 0,
    };
    tokio::spawn(task.run(first));
    Ok((client, Events { events }))
}

struct Task {
    dialer: Dialer,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    shutdown: CancellationToken,
    connected: Arc<AtomicBool>,
    seen: SeenIds,
    last_seq: Option<i64>,
    pings: u64,
}

impl Task {
    async fn run(mut self, first: Opened) {
        let mut opened = first;
        let mut reconnect = false;
        loop {
            self.connected.store(true, Ordering::Relaxed);
            self.emit(ClientEvent::Connected {
                client_id: opened.client_id.clone(),
                node_id: opened.node_id.clone(),
                reconnect,
            })
            .await;
            let ending = self.serve(opened.socket).await;
            self.connected.store(false, Ordering::Relaxed);
            if !ending.retry || self.shutdown.is_cancelled() {
                return self.stop(ending.code, ending.reason).await;
            }
            match self.reconnect(ending).await {
                Some(next) => opened = next,
                None => return,
            }
            reconnect = true;
        }
    }

    /// Tries again with backoff until a connection opens; `None` when the client stopped.
    async fn reconnect(&mut self, lost: Ending) -> Option<Opened> {
        let builder = self.dialer.builder();
        let mut backoff = ExponentialBuilder::default()
            .with_min_delay(builder.min_backoff)
            .with_max_delay(builder.max_backoff)
            .with_factor(2.0)
            .with_jitter();
        backoff = match builder.max_attempts {
            Some(n) => backoff.with_max_times(n),
            None => backoff.without_max_times(),
        };
        let mut delays = backoff.build();
        let (mut code, mut reason) = (lost.code, lost.reason);
        let mut announced = false;
        loop {
            let Some(delay) = delays.next() else {
                self.stop(code, format!("gave up reconnecting: {reason}"))
                    .await;
                return None;
            };
            if !announced {
                announced = true;
                let event = ClientEvent::Disconnected {
                    code,
                    reason: reason.clone(),
                    retry_in: Some(delay),
                };
                self.emit(event).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => {
                    self.stop(None, "closed by the client".to_owned()).await;
                    return None;
                }
            }
            match self.dialer.open(self.last_seq).await {
                Ok(opened) => return Some(opened),
                Err(e) if e.is_retryable() => {
                    tracing::debug!(error = %e, "reconnect attempt failed");
                    (code, reason) = (None, e.to_string());
                }
                Err(e) => {
                    self.stop(None, e.to_string()).await;
                    return None;
                }
            }
        }
    }

    async fn stop(&mut self, code: Option<u16>, reason: String) {
        let event = ClientEvent::Disconnected {
            code,
            reason,
            retry_in: None,
        };
        self.emit(event).await;
    }

    async fn emit(&self, event: ClientEvent) {
        // An application that dropped its `Events` still sends; nothing to tell it then.
        let _ = self.events.send(event).await;
    }

    /// Serves one connection until it ends.
    async fn serve(&mut self, mut socket: Socket) -> Ending {
        let builder = self.dialer.builder();
        let (heartbeat, pong_timeout) = (builder.heartbeat, builder.pong_timeout);
        let mut ticks = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => {
                    close(&mut socket).await;
                    return Ending { code: Some(1000), reason: "closed by the client".to_owned(), retry: false };
                }
                command = self.commands.recv() => {
                    let Some(Command::Frame(text)) = command else {
                        // Every handle is gone: nobody can send or close any more.
                        close(&mut socket).await;
                        return Ending { code: Some(1000), reason: "every client handle was dropped".to_owned(), retry: false };
                    };
                    if let Err(e) = socket.send(Message::text(text)).await {
                        return lost(e.to_string());
                    }
                }
                frame = socket.next() => {
                    last_heard = Instant::now();
                    match frame {
                        Some(Ok(Message::Text(text))) => {
                            if let Err(e) = self.receive(&mut socket, text.as_str()).await {
                                return lost(e);
                            }
                        }
                        Some(Ok(Message::Close(frame))) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.to_string()))
                                .unwrap_or((1005, String::new()));
                            let retry = !FINAL_REASONS.iter().any(|r| reason.starts_with(r));
                            // tungstenite answers the close; let the reply go out.
                            let _ = tokio::time::timeout(Duration::from_secs(1), socket.flush()).await;
                            return Ending { code: Some(code), reason, retry };
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return lost(e.to_string()),
                        None => return lost("connection closed without a close frame".to_owned()),
                    }
                }
                _ = ticks.tick() => {
                    if last_heard.elapsed() >= pong_timeout {
                        return lost(format!("nothing received for {pong_timeout:?}"));
                    }
                    self.pings += 1;
                    let ping = serde_json::json!({
                        "message_type": "ping",
                        "id": format!("{HEARTBEAT_ID}{}", self.pings),
                    });
                    if let Err(e) = socket.send(Message::text(ping.to_string())).await {
                        return lost(e.to_string());
                    }
                }
            }
        }
    }

    /// One text frame from the server: ack, dedupe, the resume position, then the event.
    async fn receive(&mut self, socket: &mut Socket, text: &str) -> Result<(), String> {
        let msg: HubMessage = match serde_json::from_str(text) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!(error = %e, "a frame that is not a message was skipped");
                return Ok(());
            }
        };
        if msg.message_type == MessageType::Pong && msg.id.starts_with(HEARTBEAT_ID) {
            return Ok(());
        }
        // A resend of a message already seen is acked again (the first ack may have been
        // lost), but reaches the application once.
        if msg.require_ack && self.dialer.builder().auto_ack && !msg.message_id.is_empty() {
            let ack = serde_json::json!({"message_type": "ack", "message_id": msg.message_id});
            socket
                .send(Message::text(ack.to_string()))
                .await
                .map_err(|e| e.to_string())?;
        }
        if !msg.message_id.is_empty() && !self.seen.insert(&msg.message_id) {
            return Ok(());
        }
        if msg.seq_no > 0 {
            self.last_seq = Some(self.last_seq.unwrap_or(0).max(msg.seq_no));
        }
        if msg.message_type == MessageType::Recovered
            && let Some(latest) = msg.data_value("latest_seq").and_then(|v| v.as_i64())
        {
            // After a server lost its history, numbering starts again: follow the server.
            self.last_seq = Some(latest);
        }
        self.emit(ClientEvent::Message(Box::new(msg))).await;
        Ok(())
    }
}

fn lost(reason: String) -> Ending {
    Ending {
        code: None,
        reason,
        retry: true,
    }
}

async fn close(socket: &mut Socket) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "closed by the client".into(),
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        if socket.send(Message::Close(Some(frame))).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
}
