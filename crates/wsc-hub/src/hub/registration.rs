//! [`Registration`]: the handle a transport drives for one registered connection.

use super::inbound::Handled;
use super::*;

/// A registered connection, as its transport drives it.
///
/// The transport reads outbound frames with [`recv`](Self::recv) /
/// [`try_recv`](Self::try_recv), feeds inbound frames to [`handle_text`](Self::handle_text),
/// and ends with [`finish`](Self::finish). Dropping it unregisters the connection too, so a
/// transport that fails cannot leak a registration. The disconnect callbacks run exactly once.
pub struct Registration {
    hub: Hub,
    conn: Arc<Connection>,
    /// Replayed frames, served before the queue.
    backlog: Backlog,
    /// Offline messages handed to the transport, deleted from the store once written.
    written_offline: Vec<String>,
    /// Data frames in the current one-second window.
    data: Window,
    /// Control frames (ping, pong) in their own one-second window.
    control: Window,
    finished: bool,
}

impl Registration {
    /// The handle of a connection that was just admitted, with its replay backlog.
    pub(super) fn new(hub: Hub, conn: Arc<Connection>, backlog: Backlog) -> Self {
        Registration {
            hub,
            conn,
            backlog,
            written_offline: Vec::new(),
            data: Window::default(),
            control: Window::default(),
            finished: false,
        }
    }

    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The hub it belongs to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The next outbound frame: replayed frames first, then the queue. Cancel-safe. `None`
    /// only once the connection's queue is closed, which happens when the registration is
    /// dropped: a transport that holds it always gets a frame eventually.
    pub async fn recv(&mut self) -> Option<Outbound> {
        if let Some(frame) = self.next_replayed() {
            return Some(frame);
        }
        self.conn.queue.pop().await
    }

    /// The next outbound frame if one is ready.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if let Some(frame) = self.next_replayed() {
            return Some(frame);
        }
        self.conn.queue.try_pop()
    }

    /// Appends up to `max` frames that are ready to `into`: replayed frames first, then the
    /// queue's, taken under one lock.
    pub fn recv_ready(&mut self, into: &mut Vec<Outbound>, max: usize) {
        let mut left = max;
        while left > 0
            && let Some(frame) = self.next_replayed()
        {
            into.push(frame);
            left -= 1;
        }
        if left > 0 {
            self.conn.queue.pop_ready(into, left);
        }
    }

    fn next_replayed(&mut self) -> Option<Outbound> {
        let (frame, delete_when_written) = self.backlog.frames.pop_front()?;
        self.written_offline.extend(delete_when_written);
        Some(frame)
    }

    /// Records frames the transport wrote and flushed (for stats, and to delete replayed
    /// fire-and-forget offline messages, which count as delivered once written).
    pub fn record_written(&mut self, messages: u64, bytes: u64) {
        let counters = &self.hub.inner.counters;
        Counters::add(&counters.messages_out, messages);
        Counters::add(&counters.bytes_out, bytes);
        let queued = self.conn.oldest_queued_us.swap(0, Ordering::Relaxed);
        if queued > 0 {
            let waited = self.hub.now_us().saturating_sub(queued - 1);
            counters.latency.record(waited);
        }
        if !self.written_offline.is_empty()
            && let Some(store) = self.hub.offline_store()
        {
            let ids = std::mem::take(&mut self.written_offline);
            tokio::spawn(store.remove(self.conn.user_id(), ids));
        }
    }

    /// Marks the connection alive (any inbound frame or pong).
    pub fn touch(&self) {
        self.conn.touch(self.hub.now_ms());
    }

    /// Handles an inbound control frame (a WebSocket ping or pong): liveness, and a rate
    /// limit of its own. Control frames do not use the data frame budget (a client answering
    /// the server's pings must not lose messages to it), but they get the same number per
    /// second in their own window: a flood of pings, each answered with a pong, would
    /// otherwise let one connection keep a core busy. Above it the connection is closed with
    /// 1008, like a data frame flood.
    pub fn control_frame(&mut self) {
        let now = self.hub.now_ms();
        self.conn.touch(now);
        let max = self.hub.config().max_inbound_per_second;
        if max == 0 {
            return;
        }
        if self.control.add(now, 0) > max {
            let detail = format!("rate limit exceeded: more than {max} control frames per second");
            self.conn
                .close(DisconnectReason::PolicyViolation { detail });
        }
    }

    /// Handles one inbound text frame: liveness, rate limit, decoding, then pong, relay or
    /// the message-received callbacks. Invalid frames get an error frame; the connection
    /// stays open unless a limit closes it.
    pub async fn handle_text(&mut self, text: &str) {
        // Routing awaits stores, the backplane and callbacks, and that state is large (about
        // 5 KB). On the heap it exists only while such a frame is handled; inline it would be
        // part of every connection's task for the connection's whole life. The block ends
        // the decoded message's storage before the await for the same reason.
        let routed = {
            let Some((msg, frame_id)) = self.first_look(text) else {
                return;
            };
            Box::pin(self.hub.handle_routed(&self.conn, msg, frame_id))
        };
        routed.await;
    }

    /// Everything of [`handle_text`](Self::handle_text) that does not wait: the limits,
    /// decoding, pings and acks. Returns the frame to route, if any.
    fn first_look(&mut self, text: &str) -> Option<(HubMessage, String)> {
        Counters::add(&self.hub.inner.counters.bytes_in, text.len() as u64);
        let config = self.hub.config();
        if !self.accept_inbound(text.len(), &config) {
            return None;
        }
        match codec::decode(text, config.limits) {
            // Acks that match a delivery answer the server's own traffic: they count against
            // the byte limit but not the frame limit, so a busy client can ack everything it
            // receives. Unknown acks count like any other frame.
            Ok(msg) => match self.hub.handle_message(&self.conn, msg) {
                Handled::Done { matched_ack: true } => {
                    self.data.frames = self.data.frames.saturating_sub(1);
                    None
                }
                Handled::Done { matched_ack: false } => None,
                Handled::Route { msg, frame_id } => Some((msg, frame_id)),
            },
            Err(error) => {
                let reply_to = match error {
                    FrameError::InvalidField(_) | FrameError::TooDeep(_) => {
                        codec::offending_id(text)
                    }
                    _ => String::new(),
                };
                self.hub.reject_frame(&self.conn, error, &reply_to);
                None
            }
        }
    }

    /// Answers a frame the transport could not accept (binary, invalid UTF-8) with an error
    /// frame. Such frames count against the inbound rate limit like any other.
    pub fn reject_frame(&mut self, error: FrameError, len: usize) {
        if self.accept_inbound(len, &self.hub.config()) {
            self.hub.reject_frame(&self.conn, error, "");
        }
    }

    /// Liveness, the `messages_in` counter and the inbound rate limits (frames and bytes per
    /// second, in fixed one-second windows), for every data frame. Returns false (and closes
    /// with 1008) when the frame breaks a limit.
    fn accept_inbound(&mut self, len: usize, config: &HubConfig) -> bool {
        let now = self.hub.now_ms();
        self.conn.touch(now);
        Counters::add(&self.hub.inner.counters.messages_in, 1);
        let (max_frames, max_bytes) = (
            config.max_inbound_per_second,
            config.max_inbound_bytes_per_second,
        );
        if max_frames == 0 && max_bytes == 0 {
            return true;
        }
        let frames = self.data.add(now, len);
        let detail = if max_frames > 0 && frames > max_frames {
            format!("rate limit exceeded: more than {max_frames} messages per second")
        } else if max_bytes > 0 && self.data.bytes > max_bytes {
            format!("rate limit exceeded: more than {max_bytes} bytes per second")
        } else {
            return true;
        };
        self.conn
            .close(DisconnectReason::PolicyViolation { detail });
        false
    }

    /// A write did not finish within `write_timeout`: the client does not read fast enough.
    /// Counted and reported like a queue overflow.
    pub fn write_timed_out(&self) {
        if self.conn.close(DisconnectReason::SlowConsumer) {
            Counters::add(&self.hub.inner.counters.slow_consumer_disconnects, 1);
            tracing::warn!(
                client_id = self.conn.client_id(),
                "write timed out: slow consumer"
            );
            self.hub
                .emit_error(Some(&self.conn), &ErrorEvent::SlowConsumer);
        }
    }

    /// Why the connection ends: the reason recorded when it was closed, or a lost connection
    /// when its transport stopped without one.
    pub fn ending(&self) -> DisconnectReason {
        self.conn
            .disconnect_reason()
            .cloned()
            .unwrap_or(DisconnectReason::ConnectionLost {
                error: "unknown".to_owned(),
            })
    }

    /// Unregisters the connection; `observed` is the reason when none was recorded before.
    pub fn finish(mut self, observed: DisconnectReason) {
        self.finished = true;
        self.hub.unregister(&self.conn, observed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // The reader is gone: later sends are refused, and what was queued is freed now
        // rather than with the last reference to the connection.
        self.conn.queue.close();
        if !self.finished {
            self.hub.unregister(
                &self.conn,
                DisconnectReason::ConnectionLost {
                    error: "transport dropped".to_owned(),
                },
            );
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("connection", &self.conn.id())
            .field("client_id", &self.conn.client_id())
            .finish()
    }
}

/// Frames and bytes counted in fixed one-second windows (the inbound rate limits).
#[derive(Default)]
struct Window {
    start_ms: u64,
    frames: u32,
    bytes: usize,
}

impl Window {
    /// Counts a frame of `len` bytes at `now_ms`, starting a new window when the current one
    /// is a second old; returns the frames in the window.
    fn add(&mut self, now_ms: u64, len: usize) -> u32 {
        if now_ms.saturating_sub(self.start_ms) >= 1000 {
            *self = Window {
                start_ms: now_ms,
                ..Window::default()
            };
        }
        self.frames += 1;
        self.bytes += len;
        self.frames
    }
}
