//! [`Conn`]: a pooled command connection to one Redis or to a Redis Cluster, used the same
//! way by every caller. Commands, pipelines and scripts go through redis'
//! [`ConnectionLike`], which routes each of them to the shard that owns its keys on a
//! cluster; [`Conn::query_each`] runs commands whose keys lie in different slots, which
//! one pipeline cannot do on a cluster.
//!
//! A checked-out connection goes back to the pool only when it is known sound: when one of
//! its requests failed because Redis could not be reached, or did not finish (the caller's
//! bound expired, or the caller gave up), it is taken out of the pool instead, and the
//! next checkout makes a new one. For a cluster connection this matters: after a failover
//! it may keep an outdated topology and hang on the dead master's slots, while a new one
//! reads the topology afresh from the seeds.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use futures_util::future::try_join_all;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, FromRedisValue, Pipeline, RedisFuture, RedisResult, Value};

use crate::error::is_unreachable;
use crate::recycle::TrustRecent;

/// A connection checked out of the pool.
pub(crate) struct Conn {
    /// The checkout itself: it holds the pool slot, and is returned or taken out on drop.
    pooled: Option<Pooled>,
    handle: Handle,
}

enum Pooled {
    Single(deadpool::managed::Object<TrustRecent>),
    Cluster(deadpool_redis::cluster::Connection),
}

/// A clone of a checked-out connection, so that several requests can be on their way at
/// once; what happens to its requests counts for the checkout's soundness.
#[derive(Clone)]
pub(crate) struct Handle {
    link: Link,
    health: Arc<Health>,
}

#[derive(Clone)]
enum Link {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

/// What the requests of one checkout came to.
#[derive(Debug, Default)]
struct Health {
    /// Requests started and not finished: a request whose future was dropped stays here.
    unfinished: AtomicUsize,
    /// Whether a request failed because Redis could not be reached.
    broken: AtomicBool,
}

impl Health {
    async fn track<T>(&self, request: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
        self.unfinished.fetch_add(1, Ordering::Relaxed);
        let result = request.await;
        self.unfinished.fetch_sub(1, Ordering::Relaxed);
        if result.as_ref().is_err_and(is_unreachable) {
            self.broken.store(true, Ordering::Relaxed);
        }
        result
    }

    fn sound(&self) -> bool {
        self.unfinished.load(Ordering::Relaxed) == 0 && !self.broken.load(Ordering::Relaxed)
    }
}

impl Conn {
    /// A checkout from the pool of a single Redis.
    pub(crate) fn single(conn: deadpool::managed::Object<TrustRecent>) -> Self {
        let link = Link::Single((*conn).clone());
        Conn::new(Pooled::Single(conn), link)
    }

    /// A checkout from the pool of a Redis Cluster (each one reaches every shard).
    pub(crate) fn cluster(conn: deadpool_redis::cluster::Connection) -> Self {
        let link = Link::Cluster((*conn).clone());
        Conn::new(Pooled::Cluster(conn), link)
    }

    fn new(pooled: Pooled, link: Link) -> Self {
        Conn {
            pooled: Some(pooled),
            handle: Handle {
                link,
                health: Arc::default(),
            },
        }
    }

    /// Another handle on the same connection.
    pub(crate) fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs `cmds` and returns their replies in order. The commands may touch keys (or
    /// shard channels) in different slots: on one Redis they travel as one pipeline; on a
    /// cluster, where a pipeline must stay in one slot, each goes to its own shard and all
    /// are on their way at once, so both take about one round trip.
    pub(crate) async fn query_each<T: FromRedisValue>(
        &mut self,
        cmds: Vec<Cmd>,
    ) -> RedisResult<Vec<T>> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        if let Link::Single(_) = self.handle.link {
            let mut pipe = redis::pipe();
            for cmd in cmds {
                pipe.add_command(cmd);
            }
            return pipe.query_async(&mut self.handle).await;
        }
        try_join_all(cmds.into_iter().map(|cmd| {
            let mut handle = self.handle();
            async move { cmd.query_async::<T>(&mut handle).await }
        }))
        .await
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.handle.health.sound() {
            return;
        }
        // Taken out of the pool for good (the pool may make a new one in its place); the
        // connection closes when the last handle goes.
        match self.pooled.take() {
            Some(Pooled::Single(conn)) => drop(deadpool::managed::Object::take(conn)),
            Some(Pooled::Cluster(conn)) => drop(deadpool_redis::cluster::Connection::take(conn)),
            None => {}
        }
    }
}

impl ConnectionLike for Handle {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let Handle { link, health } = self;
        let request = match link {
            Link::Single(conn) => conn.req_packed_command(cmd),
            Link::Cluster(conn) => conn.req_packed_command(cmd),
        };
        Box::pin(health.track(request))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Handle { link, health } = self;
        let request = match link {
            Link::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Link::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        };
        Box::pin(health.track(request))
    }

    fn get_db(&self) -> i64 {
        match &self.link {
            Link::Single(conn) => conn.get_db(),
            Link::Cluster(conn) => conn.get_db(),
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.handle.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.handle.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.handle.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::Health;
    use std::io;

    #[tokio::test]
    async fn a_checkout_is_sound_until_a_request_is_lost_or_cannot_reach_redis() {
        let health = Health::default();
        let ok: redis::RedisResult<i64> = health.track(async { Ok(1) }).await;
        assert!(ok.is_ok() && health.sound());
        let answered: redis::RedisResult<i64> = health
            .track(async { Err((redis::ErrorKind::Client, "refused by Redis").into()) })
            .await;
        assert!(
            answered.is_err() && health.sound(),
            "an answer is no sign of trouble"
        );

        let abandoned = Box::pin(health.track(std::future::pending::<redis::RedisResult<i64>>()));
        let _ = tokio::time::timeout(std::time::Duration::from_millis(1), abandoned).await;
        assert!(!health.sound(), "a request that never finished");

        let health = Health::default();
        let lost: redis::RedisResult<i64> = health
            .track(async { Err(io::Error::from(io::ErrorKind::ConnectionReset).into()) })
            .await;
        assert!(lost.is_err() && !health.sound(), "a lost connection");
    }
}
