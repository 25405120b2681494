//! One node's membership in the cluster while it is attached: the supervised subscribers,
//! the renewal task, and how they stop (detach, or the backplane dropped without detach,
//! which is what a crash looks like to the other nodes).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use wsc_hub::Envelope;

use crate::error::Error;
use crate::options::RedisOptions;
use crate::pool::Redis;
use crate::presence::Presence;
use crate::push::Counters;
use crate::readiness::Readiness;
use crate::subscriber::{Subscriber, connection_name};

/// The tasks of an attached node.
#[derive(Debug)]
pub(crate) struct Attachment {
    pub(crate) node_id: Arc<str>,
    pub(crate) subscribed: watch::Receiver<bool>,
    token: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Attachment {
    /// Starts the subscribers and the renewal task of `node_id` (needs a tokio runtime).
    pub(crate) fn start(
        redis: &Arc<Redis>,
        presence: &Arc<Presence>,
        counters: &Arc<Counters>,
        options: &RedisOptions,
        node_id: &str,
        inbox: mpsc::Sender<Envelope>,
    ) -> Self {
        let node_id: Arc<str> = Arc::from(node_id);
        let token = CancellationToken::new();
        let groups = channel_groups(redis, &node_id);
        let (readiness, subscribed) = Readiness::new(groups.len());
        let readiness = Arc::new(readiness);
        let mut tasks: Vec<JoinHandle<()>> = groups
            .into_iter()
            .enumerate()
            .map(|(part, (name, channels))| {
                let subscriber = Subscriber {
                    endpoint: redis.pubsub().clone(),
                    channels,
                    node_id: node_id.clone(),
                    inbox: inbox.clone(),
                    timeout: redis.timeout(),
                    counters: counters.clone(),
                    readiness: readiness.clone(),
                    part,
                    url: redis.url().to_owned(),
                    name,
                };
                tokio::spawn(subscriber.run(token.clone()))
            })
            .collect();
        let renewal = Renewal {
            redis: redis.clone(),
            presence: presence.clone(),
            node_id: node_id.clone(),
            node_ttl: options.node_ttl,
            every: options.renew_interval(),
            subscribed: subscribed.clone(),
            inbox,
        };
        tasks.push(tokio::spawn(renewal.run(token.clone())));
        Attachment {
            node_id,
            subscribed,
            token,
            tasks,
        }
    }

    /// Stops every task and waits until they ended.
    pub(crate) async fn stop(self) {
        self.token.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }

    /// Stops every task without waiting (drop).
    pub(crate) fn cancel(&self) {
        self.token.cancel();
    }
}

/// The pub/sub connections of a node, as (connection name, channels) each. On one Redis a
/// single connection carries both channels. On a cluster each channel has a connection of
/// its own: the two channels usually hash to different shards, and a connection per channel
/// follows its channel's slot on its own when the slot moves or its shard fails over,
/// without disturbing the other one. The connection of the node channel is named after it
/// (`<p>node:<id>`), the cluster's broadcast connection `<p>node:<id>:broadcast`.
fn channel_groups(redis: &Redis, node_id: &str) -> Vec<(String, Vec<String>)> {
    let keys = redis.keys();
    let (own, broadcast) = (keys.node_channel(node_id), keys.broadcast_channel());
    let name = connection_name(&own);
    if redis.pubsub().is_cluster() {
        vec![
            (name.clone(), vec![own]),
            (format!("{name}:broadcast"), vec![broadcast]),
        ]
    } else {
        vec![(name, vec![own, broadcast])]
    }
}

/// Keeps a node's registry entry and presence set alive.
struct Renewal {
    redis: Arc<Redis>,
    presence: Arc<Presence>,
    node_id: Arc<str>,
    node_ttl: Duration,
    every: Duration,
    subscribed: watch::Receiver<bool>,
    /// The hub's inbox, told when the node's users were missing from presence.
    inbox: mpsc::Sender<Envelope>,
}

impl Renewal {
    async fn run(self, token: CancellationToken) {
        let mut ticker = tokio::time::interval(self.every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate, and attach renews once itself: skip it.
        ticker.tick().await;
        let mut failing = false;
        loop {
            let renewed = tokio::select! {
                _ = token.cancelled() => return,
                _ = ticker.tick() => tokio::select! {
                    _ = token.cancelled() => return,
                    renewed = self.once() => renewed,
                },
            };
            match renewed {
                Ok(()) if failing => {
                    tracing::info!(node_id = %self.node_id, "cluster presence renewed again");
                    failing = false;
                }
                Ok(()) => {}
                Err(e) if !failing => {
                    tracing::warn!(node_id = %self.node_id, error = %e, "renewing cluster presence failed; retrying");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    /// One renewal, only while the node is subscribed: a node that cannot receive is better
    /// absent (senders then store offline) than announced. Its entry then expires, another
    /// node removes it with its users, and the first renewal after it subscribed again
    /// writes them back.
    async fn once(&self) -> Result<(), Error> {
        if !*self.subscribed.borrow() {
            return Ok(());
        }
        let missing = self
            .presence
            .renew(&self.redis, &self.node_id, self.node_ttl)
            .await?;
        if missing {
            // Users of this node were missing from presence (Redis lost its data, or the
            // node was reaped while it could not renew): messages sent to them meanwhile
            // were stored offline. The hub replays them to the connections it has.
            let rejoined = Envelope::Rejoined {
                origin: self.node_id.to_string(),
            };
            if self.inbox.send(rejoined).await.is_err() {
                tracing::debug!(node_id = %self.node_id, "the hub's inbox is closed");
            }
        }
        Ok(())
    }
}

/// What `attach` awaits: the first subscription of every channel, then the first renewal,
/// so that once it returns, other nodes can reach this one. Each step waits at most the
/// timeout.
pub(crate) async fn joined(
    redis: Arc<Redis>,
    presence: Arc<Presence>,
    node_id: Arc<str>,
    node_ttl: Duration,
    mut subscribed: watch::Receiver<bool>,
) -> Result<(), Error> {
    let subscribed_in_time = tokio::time::timeout(redis.timeout(), subscribed.wait_for(|s| *s))
        .await
        .is_ok_and(|waited| waited.is_ok());
    if !subscribed_in_time {
        return Err(Error::Unreachable {
            url: redis.url().to_owned(),
            reason: format!(
                "not subscribed within {:?}; the subscriber keeps retrying",
                redis.timeout()
            ),
        });
    }
    presence.renew(&redis, &node_id, node_ttl).await.map(drop)
}
