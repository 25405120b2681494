//! The dedicated pub/sub connection and its supervisor.
//!
//! Pooled connections cannot subscribe, so each node holds one extra RESP3 connection that
//! subscribes (`SSUBSCRIBE`) to its own channel and to the broadcast channel. Redis pushes
//! the messages on that connection; the push handler decodes each one and hands it to the
//! hub's inbox with `try_send`, so the reader never waits for the hub: a full inbox drops
//! the envelope and counts it, like a lost pub/sub message.
//!
//! The supervisor loop owns the connection: connect, subscribe (one channel per command,
//! so that each command is answered by exactly one confirmation), then wait for the
//! connection's end (the client library pushes a disconnection, or a periodic `PING`
//! fails); then reconnect with a growing, jittered backoff and subscribe again, until the
//! backplane detaches or is dropped. Messages published while the connection is down are
//! lost for this node, as pub/sub is at most once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;
use wsc_hub::Envelope;

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: the most a recovered Redis waits for us.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// What the subscriber counted.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// Everything the supervisor needs; moved into its task.
pub(crate) struct Subscriber {
    pub(crate) client: Client,
    pub(crate) channels: Vec<String>,
    pub(crate) node_id: Arc<str>,
    pub(crate) inbox: mpsc::Sender<Envelope>,
    pub(crate) timeout: Duration,
    pub(crate) counters: Arc<Counters>,
    pub(crate) subscribed: watch::Sender<bool>,
    pub(crate) url: String,
    /// The connection's `CLIENT SETNAME`, so that operators (and tests) can find it.
    pub(crate) name: String,
}

impl Subscriber {
    /// Runs until `token` is cancelled.
    pub(crate) async fn run(self, token: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            let lost = Arc::new(Notify::new());
            let connected = tokio::select! {
                _ = token.cancelled() => return,
                connected = self.connect(lost.clone()) => connected,
            };
            match connected {
                Ok(conn) => {
                    if failing {
                        tracing::info!(url = %self.url, "pub/sub connection restored");
                        failing = false;
                    }
                    backoff = MIN_BACKOFF;
                    self.subscribed.send_replace(true);
                    let cancelled = self.watch(conn, &lost, &token).await;
                    self.subscribed.send_replace(false);
                    if cancelled {
                        return;
                    }
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.url, "pub/sub connection lost; reconnecting");
                    // A short pause even after a connection that worked: a server that
                    // accepts and then drops every connection must not be hammered.
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(jittered(MIN_BACKOFF)) => {}
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(url = %self.url, error = %e, "pub/sub connection failed; retrying");
                        failing = true;
                    }
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(jittered(backoff)) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Connects and subscribes to every channel, all within the timeout.
    async fn connect(&self, lost: Arc<Notify>) -> Result<MultiplexedConnection, String> {
        let handler = PushHandler {
            node_id: self.node_id.clone(),
            inbox: self.inbox.clone(),
            counters: self.counters.clone(),
            lost,
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(move |info| handler.handle(info));
        let attempt = async {
            let mut conn = self
                .client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            let () = redis::cmd("CLIENT")
                .arg("SETNAME")
                .arg(&self.name)
                .query_async(&mut conn)
                .await?;
            for channel in &self.channels {
                let _: Value = redis::cmd("SSUBSCRIBE")
                    .arg(channel)
                    .query_async(&mut conn)
                    .await?;
            }
            Ok::<_, redis::RedisError>(conn)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Waits until the connection is lost (returns false) or `token` is cancelled (true),
    /// sending `PING` now and then so that a silently dead connection is noticed too.
    async fn watch(
        &self,
        mut conn: MultiplexedConnection,
        lost: &Notify,
        token: &CancellationToken,
    ) -> bool {
        let every = self
            .timeout
            .clamp(Duration::from_secs(1), Duration::from_secs(10));
        loop {
            tokio::select! {
                _ = token.cancelled() => return true,
                _ = lost.notified() => return false,
                _ = tokio::time::sleep(every) => {
                    let ping = redis::cmd("PING");
                    match tokio::time::timeout(self.timeout, ping.query_async::<Value>(&mut conn)).await {
                        Ok(Ok(_)) => {}
                        _ => return false,
                    }
                }
            }
        }
    }
}

/// Handles what Redis pushes on the subscribed connection. Runs on the connection's reader:
/// it must never wait.
struct PushHandler {
    node_id: Arc<str>,
    inbox: mpsc::Sender<Envelope>,
    counters: Arc<Counters>,
    lost: Arc<Notify>,
}

impl PushHandler {
    fn handle(&self, info: PushInfo) -> Result<(), std::convert::Infallible> {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                if let Some(Value::BulkString(bytes)) = info.data.get(1) {
                    self.deliver(bytes);
                }
            }
            // `notify_one` keeps a permit when the supervisor is not waiting yet, so a loss
            // right after subscribing is not missed.
            PushKind::Disconnection => self.lost.notify_one(),
            _ => {}
        }
        Ok(())
    }

    fn deliver(&self, bytes: &[u8]) {
        let envelope = match serde_json::from_slice::<Envelope>(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "undecodable envelope on the backplane; skipped");
                return;
            }
        };
        // The broadcast channel reaches the publisher too; a node never applies its own.
        if envelope.origin() == &*self.node_id {
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if self.inbox.try_send(envelope).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, ... drops: visible without flooding the log.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "the hub's inbox is full or closed; envelopes dropped"
                );
            }
        }
    }
}

/// A valid `CLIENT SETNAME` argument: Redis refuses spaces and control characters.
pub(crate) fn connection_name(channel: &str) -> String {
    channel
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect()
}

/// `base` plus up to half of it again, so that nodes cut off together do not all
/// reconnect in the same instant.
fn jittered(base: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    let half = u64::try_from(base.as_millis() / 2).unwrap_or(0).max(1);
    base + Duration::from_millis(nanos % half)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsc_hub::{HubMessage, Route, Target, codec};

    fn envelope(origin: &str) -> Envelope {
        Envelope::Message {
            origin: origin.to_owned(),
            route: Route::new(Target::Broadcast),
            payload: codec::encode(&HubMessage::text("x")).unwrap(),
            awaits_ack: None,
        }
    }

    fn push(kind: PushKind, payload: Vec<u8>) -> PushInfo {
        PushInfo {
            kind,
            data: vec![
                Value::BulkString(b"p:broadcast".to_vec()),
                Value::BulkString(payload),
            ],
        }
    }

    fn handler(capacity: usize) -> (PushHandler, mpsc::Receiver<Envelope>, Arc<Counters>) {
        let (inbox, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let handler = PushHandler {
            node_id: Arc::from("me"),
            inbox,
            counters: counters.clone(),
            lost: Arc::new(Notify::new()),
        };
        (handler, rx, counters)
    }

    #[test]
    fn own_envelopes_are_skipped_others_delivered_and_a_full_inbox_counts() {
        let (handler, mut rx, counters) = handler(1);
        let mine = serde_json::to_vec(&envelope("me")).unwrap();
        let theirs = serde_json::to_vec(&envelope("other")).unwrap();
        handler.handle(push(PushKind::SMessage, mine)).unwrap();
        handler
            .handle(push(PushKind::SMessage, theirs.clone()))
            .unwrap();
        handler.handle(push(PushKind::SMessage, theirs)).unwrap();
        handler
            .handle(push(PushKind::SMessage, b"{not json".to_vec()))
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().origin(), "other");
        assert!(rx.try_recv().is_err());
        assert_eq!(counters.received.load(Ordering::Relaxed), 2);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(counters.undecodable.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn backoff_jitter_stays_within_half_again() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(150));
        }
    }
}
