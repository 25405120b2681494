//! A dedicated pub/sub connection and its supervisor.
//!
//! Pooled connections cannot subscribe, so a node holds extra RESP3 connections that
//! subscribe (`SSUBSCRIBE`) to its own channel and to the broadcast channel: one connection
//! for both on a single Redis; on a Redis Cluster one per channel, each on the shard that
//! owns the channel's slot (see [`Endpoint`]). Redis pushes the messages on the connection
//! and the push handler hands them to the hub's inbox (see the `push` module).
//!
//! The supervisor loop owns one connection: connect where the channels live (following
//! `MOVED` on a cluster), subscribe (one channel per command, so that each command is
//! answered by exactly one confirmation), then wait for the subscription's end (the client
//! library pushes a disconnection, Redis pushes `sunsubscribe` because the slot moved, or a
//! periodic `PING` fails); then reconnect with a growing, jittered backoff and subscribe
//! again, until the backplane detaches or is dropped. Messages published while the
//! connection is down are lost for this node, as pub/sub is at most once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionInfo, Value};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use wsc_hub::Envelope;

use crate::endpoint::{Endpoint, MAX_REDIRECTS, describe, redirected};
use crate::push::{Counters, PushHandler};
use crate::readiness::Readiness;

/// First wait before reconnecting; doubled after each failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// Longest wait between reconnection attempts: the most a recovered Redis waits for us.
const MAX_BACKOFF: Duration = Duration::from_secs(3);

/// Everything the supervisor of one connection needs; moved into its task.
pub(crate) struct Subscriber {
    pub(crate) endpoint: Endpoint,
    pub(crate) channels: Vec<String>,
    pub(crate) node_id: Arc<str>,
    pub(crate) inbox: mpsc::Sender<Envelope>,
    pub(crate) timeout: Duration,
    pub(crate) counters: Arc<Counters>,
    /// Where this connection reports whether it is subscribed, as part number `part`.
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) part: usize,
    /// The configured URL(s), password masked, for logs.
    pub(crate) url: String,
    /// The connection's `CLIENT SETNAME`, so that operators (and tests) can find it.
    pub(crate) name: String,
}

/// A connection subscribed to every channel of its subscriber.
struct Subscribed {
    conn: MultiplexedConnection,
    /// Notified when the subscription ends.
    lost: Arc<Notify>,
    /// The node it is on.
    at: ConnectionInfo,
}

/// Why subscribing at one node did not work.
enum Failure {
    /// A cluster node of another shard named the owner of the channel's slot.
    Moved(ConnectionInfo),
    /// Anything else.
    Failed(String),
}

impl Subscriber {
    /// Runs until `token` is cancelled.
    pub(crate) async fn run(self, token: CancellationToken) {
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        // The node that served the channels last: the first one asked after a loss, since
        // a lost connection usually comes back to the same node.
        let mut last: Option<ConnectionInfo> = None;
        let mut attempt = 0usize;
        loop {
            let connected = tokio::select! {
                _ = token.cancelled() => return,
                connected = self.connect(last.as_ref(), attempt) => connected,
            };
            attempt = attempt.wrapping_add(1);
            match connected {
                Ok(subscribed) => {
                    let node = describe(&subscribed.at);
                    if failing {
                        tracing::info!(url = %self.url, %node, channels = ?self.channels, "pub/sub connection restored");
                        failing = false;
                    }
                    backoff = MIN_BACKOFF;
                    last = Some(subscribed.at);
                    self.readiness.set(self.part, true);
                    let cancelled = self.watch(subscribed.conn, &subscribed.lost, &token).await;
                    self.readiness.set(self.part, false);
                    if cancelled {
                        return;
                    }
                    self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.url, %node, channels = ?self.channels, "pub/sub subscription lost; subscribing again");
                    // A short pause even after a connection that worked: a server that
                    // accepts and then drops every connection must not be hammered.
                    tokio::select! {
                        _ = token.cancelled() => return,
                        _ = tokio::time::sleep(jittered(MIN_BACKOFF)) => {}
                    }
                }
                Err(e) => {
                    // A node that cannot be reached is not asked first again: the next
                    // attempt starts from the seeds.
                    last = None;
                    if !failing {
                        tracing::warn!(url = %self.url, error = %e, channels = ?self.channels, "pub/sub connection failed; retrying");
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

    /// Connects where the channels live and subscribes to every one of them, all within
    /// the timeout: each candidate node in turn, following up to [`MAX_REDIRECTS`] `MOVED`
    /// answers from each.
    async fn connect(
        &self,
        last: Option<&ConnectionInfo>,
        attempt: usize,
    ) -> Result<Subscribed, String> {
        let attempt = async {
            let mut error = "no node to connect to".to_owned();
            for candidate in self.endpoint.candidates(last, attempt) {
                let mut at = candidate;
                let mut redirects = 0;
                loop {
                    match self.subscribe_at(&at).await {
                        Ok(subscribed) => return Ok(subscribed),
                        Err(Failure::Moved(owner)) if redirects < MAX_REDIRECTS => {
                            redirects += 1;
                            at = owner;
                        }
                        Err(Failure::Moved(owner)) => {
                            error = format!(
                                "still redirected to {} after {MAX_REDIRECTS} redirections",
                                describe(&owner)
                            );
                            break;
                        }
                        Err(Failure::Failed(e)) => {
                            error = format!("{}: {e}", describe(&at));
                            break;
                        }
                    }
                }
            }
            Err(error)
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Connects to one node, names the connection and subscribes to every channel. Each
    /// connection gets a handler of its own, so that the end of a connection given up
    /// here (redirected) cannot be taken for the end of the one that is kept.
    async fn subscribe_at(&self, at: &ConnectionInfo) -> Result<Subscribed, Failure> {
        let failed = |e: redis::RedisError| Failure::Failed(e.to_string());
        let lost = Arc::new(Notify::new());
        let handler = PushHandler {
            node_id: self.node_id.clone(),
            inbox: self.inbox.clone(),
            counters: self.counters.clone(),
            lost: lost.clone(),
        };
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_push_sender(move |info| handler.handle(info));
        let client = Client::open(at.clone()).map_err(failed)?;
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(failed)?;
        let () = redis::cmd("CLIENT")
            .arg("SETNAME")
            .arg(&self.name)
            .query_async(&mut conn)
            .await
            .map_err(failed)?;
        for channel in &self.channels {
            let subscribed: Result<Value, _> = redis::cmd("SSUBSCRIBE")
                .arg(channel)
                .query_async(&mut conn)
                .await;
            if let Err(e) = subscribed {
                let owner = e
                    .redirect_node()
                    .and_then(|(node, _slot)| redirected(at, node));
                return Err(owner.map_or_else(|| failed(e), Failure::Moved));
            }
        }
        Ok(Subscribed {
            conn,
            lost,
            at: at.clone(),
        })
    }

    /// Waits until the subscription ends (returns false) or `token` is cancelled (true),
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

/// A valid `CLIENT SETNAME` argument: Redis refuses spaces and control characters.
pub(crate) fn connection_name(name: &str) -> String {
    name.chars()
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

    #[test]
    fn backoff_jitter_stays_within_half_again() {
        for _ in 0..100 {
            let d = jittered(Duration::from_millis(100));
            assert!(d >= Duration::from_millis(100) && d < Duration::from_millis(150));
        }
    }

    #[test]
    fn a_connection_name_has_no_spaces() {
        assert_eq!(connection_name("p:node:a b\n"), "p:node:a_b_");
    }
}
