//! Presence and the node registry: which nodes are live, which users have a connection on
//! which node, and the cluster-wide list and count of online users.
//!
//! Four kinds of keys under one hash tag (`<p>{presence}:…`, so one Redis Cluster slot holds
//! them all and one script can update them together): the registry (node -> expiry in
//! Redis time), one set per node of the users connected there, the sorted set of users
//! online anywhere, and a hash counting how many node sets hold each user. Every write is a
//! Lua script that keeps the four consistent, so the count is `ZCARD` and a page is one
//! `ZRANGE`, never a scan.
//!
//! A node renews its registry entry every renewal interval. One that stops (killed) is
//! removed with its users by the next renewal of any node or the next listing, whichever
//! comes first (the scripts reap expired entries before anything else), and every query
//! filters expired entries out in the meantime: a killed node's users leave every answer
//! within one node TTL. All presence keys share one expiry, refreshed by each renewal, so
//! they can only vanish together, when no node renewed for the presence TTL.
//!
//! The node also keeps what it reported in memory (the mirror). A write that could not
//! reach Redis, or Redis losing its data, is repaired by the next renewal, which rewrites
//! the node's set from the mirror. Writes for one user are serialized (a striped lock) and
//! write the mirror's state at the moment they run, so a quick offline-online sequence can
//! never leave Redis with the older state.

use std::collections::BTreeSet;
use std::hash::{BuildHasher, BuildHasherDefault};
use std::sync::LazyLock;
use std::time::Duration;

use parking_lot::Mutex;
use redis::Script;

use crate::error::Error;
use crate::options::millis;
use crate::pool::Redis;

/// Builds a script from the shared functions and its own body.
fn script(body: &str) -> Script {
    Script::new(&format!(
        "{}\n{body}",
        include_str!("lua/presence_common.lua")
    ))
}

static RENEW: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/presence_renew.lua")));
static SET_USER: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/presence_set_user.lua")));
static REPLACE: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/presence_replace.lua")));
static REMOVE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/presence_remove.lua")));
static PAGE: LazyLock<Script> = LazyLock::new(|| script(include_str!("lua/presence_page.lua")));
static USER_NODES: LazyLock<Script> =
    LazyLock::new(|| script(include_str!("lua/presence_user_nodes.lua")));

/// What this node reported: its users, a generation that changes on every report, and
/// whether Redis may disagree (a write failed or was refused).
#[derive(Debug, Default)]
struct Mirror {
    users: BTreeSet<String>,
    generation: u64,
    dirty: bool,
}

/// Striped locks serializing the writes of one user.
const TURNS: usize = 64;

/// How many times a rewrite of the set is retried when reports keep changing under it.
const REWRITE_ATTEMPTS: usize = 3;

/// One page of online users and how many there are in all.
pub(crate) type UserPage = (usize, Vec<String>);

/// This node's presence writes.
#[derive(Debug)]
pub(crate) struct Presence {
    keep: Duration,
    mirror: Mutex<Mirror>,
    turns: Vec<tokio::sync::Mutex<()>>,
}

/// A script invocation with the three shared keys and the set prefix already given.
fn invocation<'a>(script: &'a Script, redis: &Redis) -> redis::ScriptInvocation<'a> {
    let keys = redis.keys();
    let mut invocation = script.prepare_invoke();
    invocation
        .key(keys.nodes())
        .key(keys.online_users())
        .key(keys.user_node_counts())
        .arg(keys.node_users_prefix());
    invocation
}

impl Presence {
    /// `keep` is how long presence outlives the last renewal of every node.
    pub(crate) fn new(keep: Duration) -> Self {
        Presence {
            keep,
            mirror: Mutex::new(Mirror::default()),
            turns: (0..TURNS).map(|_| tokio::sync::Mutex::new(())).collect(),
        }
    }

    /// Records at once that a user's first connection on this node opened (`online`) or
    /// its last one closed; [`write`](Self::write) then brings Redis in line.
    pub(crate) fn report(&self, user_id: &str, online: bool) {
        let mut mirror = self.mirror.lock();
        mirror.generation += 1;
        if online {
            mirror.users.insert(user_id.to_owned());
        } else {
            mirror.users.remove(user_id);
        }
    }

    /// Writes the user's reported state to Redis. A failure marks the node for a rewrite
    /// at its next renewal; a node not live in the registry (not attached yet, or expired
    /// while it could not renew) is rewritten by the renewal that makes it live again.
    pub(crate) async fn write(
        &self,
        redis: &Redis,
        node_id: &str,
        user_id: &str,
    ) -> Result<(), Error> {
        let stripe = BuildHasherDefault::<std::hash::DefaultHasher>::default().hash_one(user_id);
        let _turn = self.turns[stripe as usize % TURNS].lock().await;
        let online = self.mirror.lock().users.contains(user_id);
        let written = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                invocation(&SET_USER, redis)
                    .arg(node_id)
                    .arg(user_id)
                    .arg(if online { "1" } else { "0" })
                    .arg(millis(self.keep))
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await;
        if !matches!(written, Ok(1)) {
            self.mirror.lock().dirty = true;
        }
        written.map(drop)
    }

    /// Renews the node's registry entry for `node_ttl` (reaping expired nodes first) and
    /// the expiry of every presence key; rewrites the node's set from the mirror when a
    /// write failed or the set's size differs (it was lost with Redis' data, or the node
    /// was reaped while it could not renew). Returns whether users were missing from the
    /// set: senders found them offline meanwhile and stored their messages.
    pub(crate) async fn renew(
        &self,
        redis: &Redis,
        node_id: &str,
        node_ttl: Duration,
    ) -> Result<bool, Error> {
        let stored: usize = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                invocation(&RENEW, redis)
                    .arg(node_id)
                    .arg(millis(node_ttl))
                    .arg(millis(self.keep))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        let (stale, missing) = {
            let mirror = self.mirror.lock();
            (
                mirror.dirty || stored != mirror.users.len(),
                stored < mirror.users.len(),
            )
        };
        if stale {
            self.rewrite(redis, node_id).await?;
        }
        Ok(missing)
    }

    /// Replaces the node's set with the mirror. A report made while the rewrite was on its
    /// way may have reached Redis before it and been overwritten: the generation shows
    /// that, and the rewrite runs again with the newer mirror.
    async fn rewrite(&self, redis: &Redis, node_id: &str) -> Result<(), Error> {
        for _ in 0..REWRITE_ATTEMPTS {
            let (generation, users) = {
                let mut mirror = self.mirror.lock();
                mirror.dirty = false;
                (mirror.generation, mirror.users.clone())
            };
            let replaced = redis
                .bounded(async {
                    let mut conn = redis.conn().await?;
                    let mut invocation = invocation(&REPLACE, redis);
                    invocation.arg(node_id).arg(millis(self.keep));
                    for user in &users {
                        invocation.arg(user);
                    }
                    invocation
                        .invoke_async::<i64>(&mut conn)
                        .await
                        .map_err(|e| redis.command_error(e))
                })
                .await;
            match replaced {
                Ok(1) if self.mirror.lock().generation == generation => return Ok(()),
                Ok(1) => {}
                Ok(_) => break,
                Err(e) => {
                    self.mirror.lock().dirty = true;
                    return Err(e);
                }
            }
        }
        self.mirror.lock().dirty = true;
        Ok(())
    }

    /// Forgets this node's users and removes it from the registry, here and in Redis
    /// (detach).
    pub(crate) async fn leave(&self, redis: &Redis, node_id: &str) -> Result<(), Error> {
        {
            let mut mirror = self.mirror.lock();
            mirror.generation += 1;
            mirror.users.clear();
            mirror.dirty = false;
        }
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                invocation(&REMOVE, redis)
                    .arg(node_id)
                    .invoke_async::<i64>(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
                    .map(drop)
            })
            .await
    }
}

/// The live nodes where a user is present, sorted. One round trip: a script reads the
/// registry and asks each live node's set (every send to a user on a cluster asks this, so
/// its round trips are the send's latency).
pub(crate) async fn user_nodes(redis: &Redis, user_id: &str) -> Result<Vec<String>, Error> {
    redis
        .bounded(async {
            let mut conn = redis.conn().await?;
            let mut nodes: Vec<String> = invocation(&USER_NODES, redis)
                .arg(user_id)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis.command_error(e))?;
            nodes.sort();
            Ok(nodes)
        })
        .await
}

/// `limit` online users from `offset`, in name order, and how many are online in all
/// (`limit` 0 asks for the count only). One round trip, `O(log n + limit)`.
pub(crate) async fn online_users(
    redis: &Redis,
    offset: usize,
    limit: usize,
) -> Result<UserPage, Error> {
    redis
        .bounded(async {
            let mut conn = redis.conn().await?;
            // The last rank to return, -1 for "to the end" when the page reaches past what
            // a Redis integer holds.
            let last = offset
                .checked_add(limit)
                .and_then(|end| i64::try_from(end).ok())
                .map_or(-1, |end| end - 1);
            invocation(&PAGE, redis)
                .arg(offset)
                .arg(last)
                .arg(limit.min(1))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| redis.command_error(e))
        })
        .await
}
