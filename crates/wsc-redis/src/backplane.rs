//! [`RedisBackplane`]: the hub's [`Backplane`] on Redis, and how `publish` routes each
//! kind of envelope.
//!
//! | envelope | channel | returns |
//! |---|---|---|
//! | message to a user | `<p>node:<id>` of each other node where the user is present | nodes whose channel had a subscriber |
//! | `Ack`, `Delivered` | `<p>node:<to_node>` | 1 when that channel had a subscriber, else 0 |
//! | any other message, `Kick`, `Membership` | `<p>broadcast` | live nodes in the registry other than the origin (0 when nobody subscribed) |

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use wsc_hub::{Backplane, BackplaneError, BoxFuture, Envelope, Target, UserPage};

use crate::attachment::{self, Attachment};
use crate::error::Error;
use crate::groups::RedisGroups;
use crate::history::RedisHistory;
use crate::offline::RedisOfflineStore;
use crate::options::RedisOptions;
use crate::pool::Redis;
use crate::presence::{self, Presence};
use crate::push::Counters;
use crate::registry;
use crate::tickets::RedisTickets;

/// A [`Backplane`] on Redis: one per node (per hub).
///
/// Commands go through a deadpool-redis pool; pub/sub runs on dedicated RESP3 connections
/// (one per node on a single Redis, one per channel on a Redis Cluster, each on the shard
/// that owns its channel) that reconnect and subscribe again by themselves. Presence and the
/// node registry live in keys with TTLs that the node renews while it is attached, so a
/// node that dies without [`detach`](Backplane::detach) leaves every presence answer
/// within one node TTL. Every operation waits at most the connect timeout (`attach` at
/// most twice: subscribing, then registering): with Redis down, calls fail quickly with
/// [`BackplaneError::Unavailable`], and the subscription and renewals resume by themselves
/// when Redis is back.
///
/// Use one per node: it renews the presence of the node it is attached as, from what that
/// node reported through [`set_user_online`](Backplane::set_user_online).
///
/// ```no_run
/// use std::sync::Arc;
/// use wsc_hub::{Hub, HubConfig};
/// use wsc_redis::{RedisBackplane, RedisOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), wsc_redis::Error> {
/// let backplane = RedisBackplane::connect(RedisOptions::new("redis://127.0.0.1:6379/0")).await?;
/// let hub = Hub::new(HubConfig::default());
/// hub.set_backplane(Arc::new(backplane));
/// hub.start();
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisBackplane {
    inner: Arc<Inner>,
}

struct Inner {
    redis: Arc<Redis>,
    options: RedisOptions,
    presence: Arc<Presence>,
    counters: Arc<Counters>,
    attachment: Mutex<Option<Attachment>>,
}

impl Drop for Inner {
    /// The last handle is gone without a detach: stop renewing and listening, as a crashed
    /// node would. Its entries age out of Redis by their TTLs.
    fn drop(&mut self) {
        if let Some(attachment) = self.attachment.get_mut().take() {
            attachment.cancel();
        }
    }
}

/// What the backplane counted since it was built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BackplaneStats {
    /// Envelopes from other nodes decoded and offered to the hub's inbox.
    pub received: u64,
    /// Of those, envelopes dropped because the inbox was full or closed.
    pub dropped: u64,
    /// Payloads on the channels that were not envelopes (skipped).
    pub undecodable: u64,
    /// Times a pub/sub connection lost its subscription after it had subscribed: the
    /// connection was lost, or (on a Redis Cluster) its channel's slot moved to another
    /// shard; each time it subscribed again.
    pub reconnects: u64,
    /// Whether every channel of the node is subscribed now (both channels, on whichever
    /// shards they live).
    pub subscribed: bool,
}

impl std::fmt::Debug for RedisBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackplane")
            .field("redis", &self.inner.redis)
            .field("node_id", &self.node_id())
            .finish()
    }
}

impl RedisBackplane {
    /// Builds the backplane without connecting: only bad options or a bad URL fail here.
    /// Operations connect when they run (and fail quickly while Redis is unreachable).
    pub fn new(options: RedisOptions) -> Result<Self, Error> {
        let redis = Arc::new(Redis::new(&options)?);
        Ok(RedisBackplane {
            inner: Arc::new(Inner {
                redis,
                presence: Arc::new(Presence::new(options.presence_keep())),
                options,
                counters: Arc::new(Counters::default()),
                attachment: Mutex::new(None),
            }),
        })
    }

    /// Builds the backplane and checks that Redis answers (`PING`) within the connect
    /// timeout.
    pub async fn connect(options: RedisOptions) -> Result<Self, Error> {
        let backplane = Self::new(options)?;
        backplane.inner.redis.ping().await?;
        Ok(backplane)
    }

    /// The options it was built with.
    pub fn options(&self) -> &RedisOptions {
        &self.inner.options
    }

    /// The node it is attached as, if any.
    pub fn node_id(&self) -> Option<String> {
        self.inner
            .attachment
            .lock()
            .as_ref()
            .map(|a| a.node_id.to_string())
    }

    /// The live nodes of the cluster (registry entries not expired), sorted.
    pub async fn nodes(&self) -> Result<Vec<String>, Error> {
        registry::live_nodes(&self.inner.redis).await
    }

    /// What it counted so far.
    pub fn stats(&self) -> BackplaneStats {
        let c = &self.inner.counters;
        BackplaneStats {
            received: c.received.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            undecodable: c.undecodable.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            subscribed: self.is_subscribed(),
        }
    }

    /// An offline store on the same pool and prefix: at most `max_per_user` messages per
    /// user, each kept for `ttl`.
    pub fn offline_store(&self, max_per_user: usize, ttl: Duration) -> RedisOfflineStore {
        RedisOfflineStore::with_redis(self.inner.redis.clone(), max_per_user, ttl)
    }

    /// A group store (memberships shared by every node) on the same pool and prefix.
    pub fn groups(&self) -> RedisGroups {
        RedisGroups::with_redis(self.inner.redis.clone())
    }

    /// A ticket store (tickets, the queue, agents' workloads) on the same pool and prefix.
    pub fn tickets(&self) -> RedisTickets {
        RedisTickets::with_redis(self.inner.redis.clone())
    }

    /// A history store (sequence numbers and resume windows) on the same pool and prefix.
    pub fn history(&self) -> RedisHistory {
        RedisHistory::with_redis(self.inner.redis.clone())
    }

    fn is_subscribed(&self) -> bool {
        self.inner
            .attachment
            .lock()
            .as_ref()
            .is_some_and(|a| *a.subscribed.borrow())
    }
}

impl Inner {
    async fn publish(&self, envelope: Envelope) -> Result<usize, Error> {
        let payload = serde_json::to_vec(&envelope).map_err(|e| Error::Codec(e.to_string()))?;
        let origin = envelope.origin();
        let user = match &envelope {
            Envelope::Message { route, .. } => match &route.target {
                Target::User { user_id } => Some(user_id.as_str()),
                _ => None,
            },
            Envelope::Stored { user_id, .. } => Some(user_id.as_str()),
            _ => None,
        };
        if let Some(user_id) = user {
            let nodes: Vec<String> = presence::user_nodes(&self.redis, user_id)
                .await?
                .into_iter()
                .filter(|node| node != origin)
                .collect();
            return self.publish_to_nodes(&nodes, &payload).await;
        }
        if let Some(to_node) = envelope.to_node() {
            return self.publish_to_nodes(&[to_node.to_owned()], &payload).await;
        }
        self.publish_to_all(origin, &payload).await
    }

    /// `SPUBLISH` on each node's channel, all sent at once (the channels may live on
    /// different shards); counts the channels that had a subscriber.
    async fn publish_to_nodes(&self, nodes: &[String], payload: &[u8]) -> Result<usize, Error> {
        if nodes.is_empty() {
            return Ok(0);
        }
        let redis = &self.redis;
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                let publishes = nodes
                    .iter()
                    .map(|node| redis::Cmd::spublish(redis.keys().node_channel(node), payload))
                    .collect();
                let receivers: Vec<usize> = conn
                    .query_each(publishes)
                    .await
                    .map_err(|e| redis.command_error(e))?;
                Ok(receivers.into_iter().filter(|r| *r > 0).count())
            })
            .await
    }

    /// `SPUBLISH` on the broadcast channel and, at the same time, a read of the registry
    /// (two requests: on a cluster the channel and the registry live on shards of their
    /// own): the count is the live nodes other than the origin (the receiver count would
    /// include the origin and any other subscriber of the channel).
    async fn publish_to_all(&self, origin: &str, payload: &[u8]) -> Result<usize, Error> {
        let redis = &self.redis;
        redis
            .bounded(async {
                let conn = redis.conn().await?;
                let (mut publisher, mut reader) = (conn.handle(), conn.handle());
                let publish = redis::Cmd::spublish(redis.keys().broadcast_channel(), payload);
                let (receivers, live) = tokio::try_join!(
                    publish.query_async::<usize>(&mut publisher),
                    registry::read_live(redis, &mut reader),
                )
                .map_err(|e| redis.command_error(e))?;
                if receivers == 0 {
                    return Ok(0);
                }
                Ok(live.iter().filter(|node| *node != origin).count())
            })
            .await
    }
}

/// Boxes an operation for the trait, its errors as the hub's `BackplaneError`.
fn to_backplane<T: Send + 'static>(
    future: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> BoxFuture<Result<T, BackplaneError>> {
    Box::pin(async move { future.await.map_err(BackplaneError::from) })
}

impl Backplane for RedisBackplane {
    fn has_peers(&self) -> bool {
        true
    }

    fn attach(
        &self,
        node_id: &str,
        inbox: mpsc::Sender<Envelope>,
    ) -> BoxFuture<Result<(), BackplaneError>> {
        let inner = &self.inner;
        let attachment = Attachment::start(
            &inner.redis,
            &inner.presence,
            &inner.counters,
            &inner.options,
            node_id,
            inbox,
        );
        let joined = attachment::joined(
            inner.redis.clone(),
            inner.presence.clone(),
            attachment.node_id.clone(),
            inner.options.node_ttl,
            attachment.subscribed.clone(),
        );
        if let Some(previous) = inner.attachment.lock().replace(attachment) {
            previous.cancel();
        }
        to_backplane(joined)
    }

    fn detach(&self, node_id: &str) -> BoxFuture<Result<(), BackplaneError>> {
        let attachment = self.inner.attachment.lock().take();
        let inner = self.inner.clone();
        let node_id = node_id.to_owned();
        to_backplane(async move {
            if let Some(attachment) = attachment {
                attachment.stop().await;
            }
            // What could not be removed now (Redis unreachable) is removed by another node
            // once this node's entry expired.
            inner.presence.leave(&inner.redis, &node_id).await
        })
    }

    fn publish(&self, envelope: Envelope) -> BoxFuture<Result<usize, BackplaneError>> {
        let inner = self.inner.clone();
        // A user message takes two steps (presence, then publishing); one bound covers both.
        to_backplane(async move { inner.redis.bounded(inner.publish(envelope)).await })
    }

    fn set_user_online(
        &self,
        node_id: &str,
        user_id: &str,
        online: bool,
    ) -> BoxFuture<Result<(), BackplaneError>> {
        // The report is recorded now, in call order; the write sends whatever the report
        // of this user is when it runs.
        self.inner.presence.report(user_id, online);
        let inner = self.inner.clone();
        let (node_id, user_id) = (node_id.to_owned(), user_id.to_owned());
        to_backplane(async move { inner.presence.write(&inner.redis, &node_id, &user_id).await })
    }

    fn user_nodes(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, BackplaneError>> {
        let redis = self.inner.redis.clone();
        let user_id = user_id.to_owned();
        to_backplane(async move { presence::user_nodes(&redis, &user_id).await })
    }

    fn online_users(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<Result<UserPage, BackplaneError>> {
        let redis = self.inner.redis.clone();
        to_backplane(async move {
            let (total, users) = presence::online_users(&redis, offset, limit).await?;
            Ok(UserPage::new(total, users))
        })
    }

    fn health(&self) -> BoxFuture<Result<(), BackplaneError>> {
        let redis = self.inner.redis.clone();
        let attached = self.node_id().is_some();
        let subscribed = self.is_subscribed();
        to_backplane(async move {
            redis.ping().await?;
            if attached && !subscribed {
                return Err(Error::Unreachable {
                    url: redis.url().to_owned(),
                    reason: "the pub/sub connection is not subscribed".to_owned(),
                });
            }
            Ok(())
        })
    }
}
