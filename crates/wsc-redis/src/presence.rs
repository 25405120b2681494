//! User presence: which users have a connection on which node.
//!
//! Each node owns one set, `<p>node:<id>:users`, with a key TTL (the presence TTL) that the
//! node renews with the registry. A user is present on a node when the node is live in the
//! registry and the user is in its set; so a killed node's users disappear from every
//! query within one node TTL (the registry filters it out), and its set then expires by
//! itself. A query never scans keys: it reads the registry, then asks each live node's set.
//! Every node's set is a key of its own, so on a Redis Cluster the sets are spread over the
//! shards; no command or transaction ever touches two of them (or a set and the registry)
//! at once.
//!
//! The node also keeps the set's content in memory (the mirror), so that when the set was
//! lost (Redis restarted, or expired during an outage) the next renewal writes it again.

use std::collections::BTreeSet;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::Error;
use crate::options::millis;
use crate::pool::Redis;
use crate::registry;

/// What this node reported, with a generation that changes on every report.
#[derive(Debug, Default)]
struct Mirror {
    users: BTreeSet<String>,
    generation: u64,
}

/// This node's presence writes and the cluster's presence reads.
#[derive(Debug)]
pub(crate) struct Presence {
    ttl: Duration,
    mirror: Mutex<Mirror>,
}

/// How many times a rewrite of the set is retried when reports keep changing under it.
const REWRITE_ATTEMPTS: usize = 3;

impl Presence {
    pub(crate) fn new(ttl: Duration) -> Self {
        Presence {
            ttl,
            mirror: Mutex::new(Mirror::default()),
        }
    }

    /// Records a user's first connection (`online`) or last disconnection on `node_id`.
    pub(crate) async fn set(
        &self,
        redis: &Redis,
        node_id: &str,
        user_id: &str,
        online: bool,
    ) -> Result<(), Error> {
        {
            // The mirror changes first: if Redis is down now, the next renewal after it
            // returns still writes the truth.
            let mut mirror = self.mirror.lock();
            mirror.generation += 1;
            if online {
                mirror.users.insert(user_id.to_owned());
            } else {
                mirror.users.remove(user_id);
            }
        }
        let key = redis.keys().node_users(node_id);
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                let mut pipe = redis::pipe();
                if online {
                    // A new set has no TTL until PEXPIRE; MULTI makes the pair one step,
                    // so no crash between them can leave a set that never expires.
                    pipe.atomic()
                        .sadd(&key, user_id)
                        .ignore()
                        .pexpire(&key, millis(self.ttl) as i64)
                        .ignore();
                } else {
                    pipe.srem(&key, user_id).ignore();
                }
                pipe.query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await
    }

    /// Renews the TTL of this node's set; rewrites the set from the mirror when its size
    /// differs (it was lost, or an update failed while Redis was unreachable).
    pub(crate) async fn renew(&self, redis: &Redis, node_id: &str) -> Result<(), Error> {
        let key = redis.keys().node_users(node_id);
        let (_, stored): (i64, usize) = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                redis::pipe()
                    .pexpire(&key, millis(self.ttl) as i64)
                    .scard(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        if stored != self.mirror.lock().users.len() {
            self.rewrite(redis, &key).await?;
        }
        Ok(())
    }

    /// Replaces the set with the mirror. A report made while the rewrite was on its way
    /// may have reached Redis before it and been overwritten: the generation shows that,
    /// and the rewrite runs again with the newer mirror.
    async fn rewrite(&self, redis: &Redis, key: &str) -> Result<(), Error> {
        for _ in 0..REWRITE_ATTEMPTS {
            let (generation, users) = {
                let mirror = self.mirror.lock();
                (mirror.generation, mirror.users.clone())
            };
            redis
                .bounded(async {
                    let mut conn = redis.conn().await?;
                    let mut pipe = redis::pipe();
                    pipe.atomic().del(key).ignore();
                    if !users.is_empty() {
                        pipe.sadd(key, &users)
                            .ignore()
                            .pexpire(key, millis(self.ttl) as i64)
                            .ignore();
                    }
                    pipe.query_async::<()>(&mut conn)
                        .await
                        .map_err(|e| redis.command_error(e))
                })
                .await?;
            if self.mirror.lock().generation == generation {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Forgets this node's users, here and in Redis (detach).
    pub(crate) async fn clear(&self, redis: &Redis, node_id: &str) -> Result<(), Error> {
        {
            let mut mirror = self.mirror.lock();
            mirror.generation += 1;
            mirror.users.clear();
        }
        let key = redis.keys().node_users(node_id);
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                redis::cmd("DEL")
                    .arg(&key)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await
    }
}

/// The live nodes where a user is present, sorted. Two round trips: the registry, then one
/// `SISMEMBER` per live node, all sent at once.
pub(crate) async fn user_nodes(redis: &Redis, user_id: &str) -> Result<Vec<String>, Error> {
    redis
        .bounded(async {
            let mut conn = redis.conn().await?;
            let live = registry::read_live(redis, &mut conn)
                .await
                .map_err(|e| redis.command_error(e))?;
            let asks = live
                .iter()
                .map(|node| redis::Cmd::sismember(redis.keys().node_users(node), user_id))
                .collect();
            let member: Vec<bool> = conn
                .query_each(asks)
                .await
                .map_err(|e| redis.command_error(e))?;
            Ok(live
                .into_iter()
                .zip(member)
                .filter_map(|(node, here)| here.then_some(node))
                .collect())
        })
        .await
}

/// Every user present on a live node, sorted and deduplicated. Two round trips: the
/// registry, then one `SMEMBERS` per live node, all sent at once.
pub(crate) async fn online_users(redis: &Redis) -> Result<Vec<String>, Error> {
    redis
        .bounded(async {
            let mut conn = redis.conn().await?;
            let live = registry::read_live(redis, &mut conn)
                .await
                .map_err(|e| redis.command_error(e))?;
            let asks = live
                .iter()
                .map(|node| redis::Cmd::smembers(redis.keys().node_users(node)))
                .collect();
            let sets: Vec<Vec<String>> = conn
                .query_each(asks)
                .await
                .map_err(|e| redis.command_error(e))?;
            let users: BTreeSet<String> = sets.into_iter().flatten().collect();
            Ok(users.into_iter().collect())
        })
        .await
}
