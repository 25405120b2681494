//! The server-sent events transport: one registered connection served as a
//! `text/event-stream`, for clients that cannot open a WebSocket.
//!
//! The HTTP layer (axum in `gateway-server`, or any other) answers the request with a body
//! that streams the chunks [`serve`] sends into a bounded channel, and hands the frames the
//! client POSTs to the inbound channel. Everything else is the hub's: the same registration,
//! routing, replay, queue, slow-consumer policy and batching writer as a WebSocket
//! (`transport::write_batch`), only the framing differs:
//!
//! ```text
//! event: connected                 first: the client id, node id and session for POSTs
//! data: {"message_type":"connected",...}
//!
//! id: 42                           only on numbered (per-user) messages: Last-Event-ID
//! event: text                      the message type
//! data: {"message_type":"text","seq_no":42,...}
//!
//! : ping                           a keepalive comment
//!
//! event: disconnected              last, unless the client went away: code and reason
//! data: {"message_type":"disconnected","data":{"code":1008,"reason":"kicked: abuse"},...}
//! ```
//!
//! An event stream has no way back, so liveness is the stream's: every write that finishes
//! (keepalive comments included) refreshes the connection, and a client that stops reading
//! is found by the write deadline (`write_timeout`), like a WebSocket slow consumer.

use std::borrow::Cow;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::mpsc;

use crate::codec::{self, Payload};
use crate::connection::{DisconnectReason, Outbound};
use crate::hub::Registration;
use crate::message::{HubMessage, MessageType};
use crate::transport::{FrameSink, drain, with_deadline, write_batch};

/// How long the final `disconnected` event may take to write.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The keepalive comment.
const PING: &[u8] = b": ping\n\n";

/// What a stream needs besides its registration.
#[derive(Debug, Clone)]
pub struct SseOptions {
    /// Interval of keepalive comments (`wsc.sse.heartbeat`), besides the hub's own
    /// keepalives: proxies close a response that stays silent too long.
    pub heartbeat: Duration,
    /// The secret a client names to POST frames for this connection; sent in the
    /// `connected` event only.
    pub session: String,
}

/// The error of a stream whose client went away (the body's receiver was dropped).
#[derive(Debug, thiserror::Error)]
#[error("event stream closed by the client")]
pub struct StreamClosed;

/// Serves a registered connection as an event stream until it ends, then unregisters it.
///
/// `out` carries the response body's chunks (a small bound: a chunk waits there only while
/// the client's socket is full, which is what the write deadline measures); `inbound`
/// carries the text frames the client POSTs, each handled as a WebSocket text frame would
/// be (acks, pings, status frames, rate limits, error frames back on the stream).
pub async fn serve(
    mut registration: Registration,
    out: mpsc::Sender<Bytes>,
    mut inbound: mpsc::Receiver<String>,
    options: SseOptions,
) {
    let conn = registration.connection().clone();
    let hub = registration.hub().clone();
    let config = hub.config();
    let (write_timeout, batch) = (config.write_timeout, config.write_batch.max(1));
    let mut sink = SseSink::new(out);
    let opening = connected(
        conn.client_id(),
        hub.node_id(),
        conn.user_id(),
        &options.session,
    );
    sink.event(&opening);
    if with_deadline(write_timeout, sink.send_buffered())
        .await
        .is_err()
    {
        registration.write_timed_out();
    }
    let closed = conn.closed();
    tokio::pin!(closed);
    let heartbeat = options.heartbeat.max(Duration::from_millis(10));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + heartbeat, heartbeat);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inbound_open = true;
    while !conn.is_closing() {
        tokio::select! {
            biased;
            _ = &mut closed => break,
            _ = sink.out.closed() => {
                conn.close(DisconnectReason::ConnectionLost { error: StreamClosed.to_string() });
                break;
            }
            text = inbound.recv(), if inbound_open => match text {
                Some(text) => registration.handle_text(&text).await,
                None => inbound_open = false,
            },
            frame = registration.recv() => {
                let Some(first) = frame else { break };
                let written = with_deadline(
                    write_timeout,
                    write_batch(&mut registration, &mut sink, first, batch),
                )
                .await;
                if !written_ok(&registration, written) {
                    break;
                }
            }
            _ = ticks.tick() => {
                let written =
                    with_deadline(write_timeout, sink.write(&[Outbound::Keepalive])).await;
                if !written_ok(&registration, written) {
                    break;
                }
            }
        }
    }
    let reason = registration.ending();
    if !matches!(reason, DisconnectReason::ConnectionLost { .. }) {
        if reason.drains_queue() {
            drain(&mut registration, &mut sink, write_timeout).await;
        }
        sink.event(&disconnected(&reason));
        let _ = tokio::time::timeout(CLOSE_GRACE, sink.send_buffered()).await;
    }
    registration.finish(reason);
}

/// Whether a write finished; otherwise closes the connection with the reason. A finished
/// write is the stream's sign of life (the client cannot answer pings), so it refreshes the
/// connection's liveness.
fn written_ok(
    registration: &Registration,
    written: Result<Result<(), StreamClosed>, crate::transport::DeadlinePassed>,
) -> bool {
    match written {
        Ok(Ok(())) => {
            registration.touch();
            true
        }
        Ok(Err(e)) => {
            registration
                .connection()
                .close(DisconnectReason::ConnectionLost {
                    error: e.to_string(),
                });
            false
        }
        Err(_) => {
            registration.write_timed_out();
            false
        }
    }
}

/// The first event of every stream: who this connection is, and the session its POSTs name.
pub fn connected(client_id: &str, node_id: &str, user_id: &str, session: &str) -> HubMessage {
    let mut msg = HubMessage::new(MessageType::Connected, "connected");
    msg.receiver = user_id.to_owned();
    msg.with_data("client_id", client_id)
        .with_data("node_id", node_id)
        .with_data("session", session)
        .with_data("transport", "sse")
}

/// The last event of a stream the server ends: the WebSocket close code and reason of the
/// same ending, so a client decides about reconnecting the same way on both transports.
pub fn disconnected(reason: &DisconnectReason) -> HubMessage {
    let text = reason.close_text();
    HubMessage::new(MessageType::Disconnected, text.clone())
        .with_data("code", reason.close_code())
        .with_data("reason", text)
}

/// The SSE side of [`FrameSink`]: events are buffered and flushed as one body chunk.
struct SseSink {
    out: mpsc::Sender<Bytes>,
    buffer: BytesMut,
}

impl SseSink {
    fn new(out: mpsc::Sender<Bytes>) -> Self {
        SseSink {
            out,
            buffer: BytesMut::new(),
        }
    }

    /// Buffers a message the server makes itself (not counted as a delivered message).
    fn event(&mut self, msg: &HubMessage) {
        if let Ok(payload) = codec::encode(msg) {
            write_event(&mut self.buffer, &payload);
        }
    }

    /// Sends what is buffered as one body chunk.
    async fn send_buffered(&mut self) -> Result<(), StreamClosed> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = self.buffer.split().freeze();
        self.out.send(chunk).await.map_err(|_| StreamClosed)
    }
}

impl FrameSink for SseSink {
    type Error = StreamClosed;

    async fn write(&mut self, items: &[Outbound]) -> Result<(), StreamClosed> {
        for item in items {
            match item {
                Outbound::Message(payload) => write_event(&mut self.buffer, payload),
                Outbound::Keepalive => self.buffer.put_slice(PING),
            }
        }
        self.send_buffered().await
    }
}

/// Writes one event: `id:` (numbered messages only, so `Last-Event-ID` is always the last
/// per-user sequence seen), `event:` (the message type) and `data:` (the frame: serde_json
/// writes it on one line, escaping every newline).
pub fn write_event(buffer: &mut BytesMut, payload: &Payload) {
    let head = Head::of(payload);
    buffer.reserve(payload.len() + 64);
    if head.seq_no > 0 {
        buffer.put_slice(b"id: ");
        buffer.put_slice(head.seq_no.to_string().as_bytes());
        buffer.put_u8(b'\n');
    }
    buffer.put_slice(b"event: ");
    buffer.put_slice(head.event_name().as_bytes());
    buffer.put_slice(b"\ndata: ");
    buffer.put_slice(payload.bytes());
    buffer.put_slice(b"\n\n");
}

/// The two fields of a frame the event lines need.
#[derive(serde::Deserialize, Default)]
struct Head<'a> {
    #[serde(borrow, default)]
    message_type: Cow<'a, str>,
    #[serde(default)]
    seq_no: i64,
}

impl<'a> Head<'a> {
    fn of(payload: &'a Payload) -> Head<'a> {
        serde_json::from_slice(payload.bytes()).unwrap_or_default()
    }

    /// The event name: the message type, or `message` when it is empty or could break the
    /// line (an application may send any type name).
    fn event_name(&self) -> &str {
        let name = self.message_type.as_ref();
        if name.is_empty() || name.contains(['\n', '\r']) {
            "message"
        } else {
            name
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event_of(msg: &HubMessage) -> String {
        let mut buffer = BytesMut::new();
        write_event(&mut buffer, &codec::encode(msg).unwrap());
        String::from_utf8(buffer.to_vec()).unwrap()
    }

    #[test]
    fn a_numbered_message_carries_its_sequence_as_the_event_id() {
        let mut msg = HubMessage::text("hi\nthere");
        msg.seq_no = 42;
        let event = event_of(&msg);
        assert!(event.starts_with("id: 42\nevent: text\ndata: {"), "{event}");
        assert!(event.ends_with("}\n\n"));
        assert_eq!(
            event.lines().count(),
            4,
            "the data stays on one line: {event}"
        );
    }

    #[test]
    fn an_unnumbered_message_has_no_id_so_last_event_id_keeps_the_last_sequence() {
        let event = event_of(&HubMessage::new(MessageType::Notice, "hello"));
        assert!(event.starts_with("event: notice\ndata: "), "{event}");
    }

    #[test]
    fn a_type_name_that_could_break_the_line_becomes_message() {
        let msg = HubMessage::new(MessageType::parse("evil\nid: 9"), "x");
        let event = event_of(&msg);
        assert!(event.starts_with("event: message\ndata: "), "{event}");
        assert_eq!(event.lines().count(), 3, "{event}");
    }

    #[test]
    fn the_closing_event_names_the_websocket_code_and_reason() {
        let msg = disconnected(&DisconnectReason::Kicked {
            reason: "abuse".to_owned(),
        });
        assert_eq!(msg.data_value("code"), Some(&serde_json::json!(1008)));
        assert_eq!(msg.content, "kicked: abuse");
    }
}
