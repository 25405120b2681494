//! A user's WebSocket client, as docs/delivery.md asks a client to behave: it acks every
//! frame with `require_ack`, remembers the last `seq_no` it saw and reconnects with
//! `last_seq=<it>` (and the same `client_id`), and records every copy of every message in
//! the ledger before acking it.
//!
//! It runs as a task of its own and is steered by commands: reconnect now (the run uses
//! this to get a user's offline replay, or to move a client back to its home node), stall
//! (stop reading, so the server's writes to it back up until it is disconnected as a slow
//! consumer) and unstall. Its state (where it is registered, how its connections ended) is
//! shared with the controller, which reads it for the presence check.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::Directory;
use crate::ledger::{Copy, Ledger, Via};

/// Bound on connecting (TCP and the WebSocket handshake) and on sending one frame.
const STEP: Duration = Duration::from_secs(5);

/// How long a client keeps trying to connect before it gives up and says so.
const OUTAGE: Duration = Duration::from_secs(60);

/// The receive buffer of a client that will be stalled: small, so that the server's
/// writes back up after a few large messages instead of after megabytes.
const SMALL_RECEIVE_BUFFER: u32 = 4096;

/// What the controller can see of a client.
#[derive(Debug, Default, Clone)]
pub(crate) struct State {
    /// The node (index) it is registered on: its first `pong` on the current connection
    /// came back, so the server admitted it (registration, presence and replay precede
    /// that answer). `None` while disconnected or not yet admitted.
    pub(crate) node: Option<usize>,
    /// Connections opened so far (the current one's number).
    pub(crate) connections: u32,
    /// The last `seq_no` seen, presented as `last_seq` on the next connect.
    pub(crate) last_seq: i64,
    /// Whether it may connect to another node while its home node is down.
    pub(crate) failover: bool,
    /// Whether it stopped reading (a stall command is in force).
    pub(crate) stalled: bool,
    /// How each connection ended, in order: `close <code> <reason>`, `eof` or `error: ...`.
    pub(crate) endings: Vec<String>,
    /// `recovered` frames that said `recovered: false`.
    pub(crate) recovered_false: u32,
    /// Error frames received, by `data.code` (`unknown_ack` after acking a copy whose
    /// delivery was already settled).
    pub(crate) error_frames: BTreeMap<String, u32>,
    /// Acks that could not be written (the connection was going away).
    pub(crate) acks_unsent: u32,
    /// Why it gave up connecting, if it did.
    pub(crate) gave_up: Option<String>,
    /// Why its last attempt to connect failed (cleared by a success).
    pub(crate) connect_error: Option<String>,
    /// Every connection, in order, for the report of a message that arrived late.
    pub(crate) log: Vec<ConnectionLog>,
}

/// One connection of a client.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionLog {
    /// Its number (1 for the first).
    pub(crate) number: u32,
    /// The node it went to.
    pub(crate) node: &'static str,
    /// When the client started to connect (TCP): the server registers the connection
    /// (offline load, resume, admission, presence) before it answers `101`, so the
    /// registration lies between this and `opened`.
    pub(crate) connecting: Instant,
    /// When the handshake succeeded (the `101` came).
    pub(crate) opened: Instant,
    /// What its `recovered` frame said (`true latest=N replayed=N`), if one came.
    pub(crate) recovered: Option<String>,
    /// When the answer to its first ping came (it was admitted).
    pub(crate) admitted: Option<Instant>,
    /// When it ended.
    pub(crate) ended: Option<Instant>,
}

impl State {
    /// The connections as `#n node connect +c open +o admitted +a ended +e (recovered
    /// ...)`, times in ms since `started`.
    pub(crate) fn timeline(&self, started: Instant) -> String {
        let ms = |at: Option<Instant>| {
            at.map_or("?".to_owned(), |at| {
                at.saturating_duration_since(started)
                    .as_millis()
                    .to_string()
            })
        };
        self.log
            .iter()
            .map(|c| {
                format!(
                    "#{} {} connect +{} open +{} admitted +{} ended +{} (recovered {})",
                    c.number,
                    c.node,
                    ms(Some(c.connecting)),
                    ms(Some(c.opened)),
                    ms(c.admitted),
                    ms(c.ended),
                    c.recovered.as_deref().unwrap_or("-")
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug)]
enum Command {
    Reconnect,
    Stall,
    Unstall,
    Stop,
}

/// A running client.
#[derive(Debug)]
pub(crate) struct Client {
    /// Its user.
    pub(crate) user: String,
    /// Its client id, the same on every connection (a reconnect replaces a stale
    /// connection instead of counting against the per-user limit).
    pub(crate) client_id: String,
    /// The node it prefers.
    pub(crate) home: usize,
    state: Arc<Mutex<State>>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

/// What a client task needs.
struct Setup {
    user: String,
    client_id: String,
    home: usize,
    small_buffer: bool,
    directory: Directory,
    ledger: Ledger,
    state: Arc<Mutex<State>>,
}

impl Client {
    /// Starts the client of `user`, whose home node is `home`.
    pub(crate) fn start(
        user: &str,
        home: usize,
        small_buffer: bool,
        directory: Directory,
        ledger: Ledger,
    ) -> Client {
        let state = Arc::new(Mutex::new(State::default()));
        let (commands, rx) = mpsc::unbounded_channel();
        let setup = Setup {
            user: user.to_owned(),
            client_id: format!("{user}-client"),
            home,
            small_buffer,
            directory,
            ledger,
            state: state.clone(),
        };
        let client_id = setup.client_id.clone();
        let task = tokio::spawn(run(setup, rx));
        Client {
            user: user.to_owned(),
            client_id,
            home,
            state,
            commands,
            task,
        }
    }

    /// Its state now.
    pub(crate) fn state(&self) -> State {
        lock(&self.state).clone()
    }

    /// Allows or forbids connecting elsewhere while the home node is down.
    pub(crate) fn set_failover(&self, failover: bool) {
        lock(&self.state).failover = failover;
    }

    /// Closes the current connection and connects again (home first).
    pub(crate) fn reconnect(&self) {
        let _ = self.commands.send(Command::Reconnect);
    }

    /// Stops reading from the socket.
    pub(crate) fn stall(&self) {
        let _ = self.commands.send(Command::Stall);
    }

    /// Reads again.
    pub(crate) fn unstall(&self) {
        let _ = self.commands.send(Command::Unstall);
    }

    /// Closes the connection and ends the task (within a bound).
    pub(crate) async fn stop(self) {
        let _ = self.commands.send(Command::Stop);
        let mut task = self.task;
        if tokio::time::timeout(STEP, &mut task).await.is_err() {
            task.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why a connection's loop returned.
enum End {
    /// The connection ended (or was closed on command): connect again.
    Again,
    /// Stop for good.
    Stop,
}

/// Connects, serves, reconnects, until told to stop or until it could not connect for
/// [`OUTAGE`].
async fn run(setup: Setup, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut backoff = Duration::from_millis(50);
    let mut outage_since = Instant::now();
    loop {
        if outage_since.elapsed() > OUTAGE {
            lock(&setup.state).gave_up = Some(format!("could not connect for {OUTAGE:?}"));
            return;
        }
        let failover = lock(&setup.state).failover;
        let attempt = match setup.directory.pick(setup.home, failover) {
            Some(node) => {
                let connecting = Instant::now();
                connect(&setup, node).await.map(|ws| (node, ws, connecting))
            }
            None => Err("its home node is down".to_owned()),
        };
        match attempt {
            Ok((node, ws, connecting)) => {
                backoff = Duration::from_millis(50);
                lock(&setup.state).connect_error = None;
                if let End::Stop = serve(&setup, node, ws, connecting, &mut commands).await {
                    return;
                }
                outage_since = Instant::now();
            }
            Err(e) => {
                lock(&setup.state).connect_error = Some(e);
                // Commands still count while waiting: a stop ends the task at once.
                match tokio::time::timeout(backoff, commands.recv()).await {
                    Ok(Some(Command::Stop) | None) => return,
                    Ok(Some(Command::Stall)) => lock(&setup.state).stalled = true,
                    Ok(Some(Command::Unstall)) => lock(&setup.state).stalled = false,
                    Ok(Some(Command::Reconnect)) | Err(_) => {}
                }
                backoff = (backoff * 2).min(Duration::from_millis(500));
            }
        }
    }
}

/// One WebSocket handshake to node `node`, with `last_seq` when a number was seen.
async fn connect(setup: &Setup, node: usize) -> Result<WebSocketStream<TcpStream>, String> {
    let public: SocketAddr = setup.directory.get(node).public;
    let last_seq = lock(&setup.state).last_seq;
    let mut query = format!("user_id={}&client_id={}", setup.user, setup.client_id);
    if last_seq > 0 {
        query.push_str(&format!("&last_seq={last_seq}"));
    }
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if setup.small_buffer {
        socket
            .set_recv_buffer_size(SMALL_RECEIVE_BUFFER)
            .map_err(|e| e.to_string())?;
    }
    let handshake = async {
        let stream = socket.connect(public).await.map_err(|e| e.to_string())?;
        tokio_tungstenite::client_async(format!("ws://{public}/ws?{query}"), stream)
            .await
            .map(|(ws, _)| ws)
            .map_err(|e| e.to_string())
    };
    tokio::time::timeout(STEP, handshake)
        .await
        .map_err(|_| format!("no handshake within {STEP:?}"))?
}

/// Serves one connection until it ends or a command ends it.
async fn serve(
    setup: &Setup,
    node: usize,
    mut ws: WebSocketStream<TcpStream>,
    connecting: Instant,
    commands: &mut mpsc::UnboundedReceiver<Command>,
) -> End {
    let node_id = setup.directory.get(node).id;
    let (connection, resumed) = {
        let mut state = lock(&setup.state);
        state.connections += 1;
        let number = state.connections;
        state.log.push(ConnectionLog {
            number,
            node: node_id,
            connecting,
            opened: Instant::now(),
            recovered: None,
            admitted: None,
            ended: None,
        });
        (number, state.last_seq > 0)
    };
    // Frames before the `recovered` frame are the resume replay (replay precedes live
    // traffic); without `last_seq` there is no such frame and no replay of that kind.
    let mut resuming = resumed;
    // The answer to this ping comes after the replay backlog and means "admitted here".
    let ping = json!({"message_type": "ping", "id": format!("admitted-{connection}")});
    if send(&mut ws, ping.to_string()).await.is_err() {
        return ended(setup, "error: the first ping could not be sent".to_owned());
    }
    let mut stalled = lock(&setup.state).stalled;
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Stall) => {
                    stalled = true;
                    lock(&setup.state).stalled = true;
                }
                Some(Command::Unstall) => {
                    stalled = false;
                    lock(&setup.state).stalled = false;
                }
                Some(Command::Reconnect) => {
                    close(&mut ws).await;
                    ended(setup, "closed by the run to reconnect".to_owned());
                    return End::Again;
                }
                Some(Command::Stop) | None => {
                    close(&mut ws).await;
                    ended(setup, "closed by the run at its end".to_owned());
                    return End::Stop;
                }
            },
            frame = ws.next(), if !stalled => match frame {
                Some(Ok(Message::Text(text))) => {
                    let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                        continue;
                    };
                    let seen = Seen { node, node_id, connection, resuming };
                    if let Some(ack) = handle(setup, &frame, seen, &mut resuming) {
                        // A failed ack does not end the connection: frames already in the
                        // socket are still read (and recorded) until the stream ends.
                        let ack = json!({"message_type": "ack", "message_id": ack});
                        if send(&mut ws, ack.to_string()).await.is_err() {
                            lock(&setup.state).acks_unsent += 1;
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    let how = match frame {
                        Some(f) => format!("close {} {}", u16::from(f.code), f.reason),
                        None => "close (no code)".to_owned(),
                    };
                    return ended(setup, how);
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return ended(setup, format!("error: {e}")),
                None => return ended(setup, "eof".to_owned()),
            },
        }
    }
}

/// Where a frame arrived.
#[derive(Clone, Copy)]
struct Seen {
    node: usize,
    node_id: &'static str,
    connection: u32,
    resuming: bool,
}

/// Handles one frame; returns the `message_id` to ack, if any.
fn handle(setup: &Setup, frame: &Value, seen: Seen, resuming: &mut bool) -> Option<String> {
    let kind = frame["message_type"].as_str().unwrap_or("");
    let mut state = lock(&setup.state);
    match kind {
        "pong" => {
            state.node = Some(seen.node);
            if let Some(log) = state.log.last_mut()
                && log.admitted.is_none()
            {
                log.admitted = Some(Instant::now());
            }
            None
        }
        "recovered" => {
            *resuming = false;
            let data = &frame["data"];
            if let Some(log) = state.log.last_mut() {
                log.recovered = Some(format!(
                    "{} latest={} replayed={}",
                    data["recovered"], data["latest_seq"], data["replayed"]
                ));
            }
            if frame["data"]["recovered"] == false {
                // The window no longer covers the gap (or numbering began again after
                // Redis lost its keys): start again from the latest number.
                state.recovered_false += 1;
                state.last_seq = frame["data"]["latest_seq"].as_i64().unwrap_or(0);
            }
            None
        }
        "error" => {
            let code = frame["data"]["code"].as_str().unwrap_or("?").to_owned();
            *state.error_frames.entry(code).or_default() += 1;
            None
        }
        _ => {
            let id = frame["message_id"].as_str()?;
            if !id.starts_with(crate::traffic::ID_PREFIX) {
                return None;
            }
            let seq = frame["seq_no"].as_i64().unwrap_or(0);
            let via = if frame["source"] == "offline" {
                Via::Offline
            } else if seen.resuming {
                Via::Resume
            } else {
                Via::Live
            };
            // Offline replays carry their old numbers; only live and resumed frames move
            // the resume point forward.
            if via != Via::Offline && seq > state.last_seq {
                state.last_seq = seq;
            }
            drop(state);
            setup.ledger.received(
                id,
                Copy {
                    user: setup.user.clone(),
                    node: seen.node_id.to_owned(),
                    connection: seen.connection,
                    via,
                    at: Instant::now(),
                    receiver: frame["receiver"].as_str().unwrap_or("").to_owned(),
                    seq,
                },
            );
            (frame["require_ack"] == true).then(|| id.to_owned())
        }
    }
}

/// Records how a connection ended.
fn ended(setup: &Setup, how: String) -> End {
    let mut state = lock(&setup.state);
    state.node = None;
    state.endings.push(how);
    if let Some(log) = state.log.last_mut() {
        log.ended = Some(Instant::now());
    }
    End::Again
}

async fn send(ws: &mut WebSocketStream<TcpStream>, text: String) -> Result<(), String> {
    match tokio::time::timeout(STEP, ws.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("not written within {STEP:?}")),
    }
}

/// Sends a close frame (bounded) and lets the connection go.
async fn close(ws: &mut WebSocketStream<TcpStream>) {
    let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
}
