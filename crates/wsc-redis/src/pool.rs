//! [`Redis`]: the command side shared by the backplane and the stores: a deadpool-redis
//! pool (of single-server connections, or of cluster connections that reach every shard),
//! every operation bounded by the connect timeout, and errors mapped onto [`Error`].

use std::future::Future;
use std::time::{Duration, Instant};

use deadpool_redis::{PoolError, Runtime};
use parking_lot::Mutex;
use redis::{AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo};

use crate::conn::Conn;
use crate::endpoint::Endpoint;
use crate::error::{Error, is_unreachable, redact};
use crate::keys::Keys;
use crate::options::RedisOptions;
use crate::recycle::TrustRecent;

/// The pool of the mode the options name.
enum Pool {
    Single(deadpool::managed::Pool<TrustRecent>),
    Cluster(deadpool_redis::cluster::Pool),
}

/// A pool of command connections plus what every operation needs to know.
pub(crate) struct Redis {
    pool: Pool,
    /// When an operation last could not reach the cluster: pooled cluster connections made
    /// before then are not used again (see [`Redis::retire`]).
    failed_at: Mutex<Option<Instant>>,
    /// Where the dedicated pub/sub connections go (pooled connections cannot subscribe).
    pubsub: Endpoint,
    url: String,
    timeout: Duration,
    keys: Keys,
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("prefix", &self.keys.prefix())
            .finish()
    }
}

impl Redis {
    /// Builds the pool without connecting: a bad URL or bad options fail here, an
    /// unreachable server only when an operation runs.
    pub(crate) fn new(options: &RedisOptions) -> Result<Self, Error> {
        options.validate()?;
        let timeout = options.connect_timeout;
        let (pool, pubsub, url) = if options.is_cluster() {
            cluster_pool(options)?
        } else {
            single_pool(options)?
        };
        Ok(Redis {
            pool,
            failed_at: Mutex::new(None),
            pubsub,
            url,
            timeout,
            keys: Keys::new(&options.key_prefix),
        })
    }

    /// The key and channel names.
    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The bound of every operation.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL, password masked.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Where the dedicated pub/sub connections go.
    pub(crate) fn pubsub(&self) -> &Endpoint {
        &self.pubsub
    }

    /// A pooled connection (waiting at most the timeout for one). A cluster connection
    /// made before the last failure to reach the cluster is dropped instead of used.
    pub(crate) async fn conn(&self) -> Result<Conn, Error> {
        match &self.pool {
            Pool::Single(pool) => pool
                .get()
                .await
                .map(Conn::single)
                .map_err(|e| self.pool_error(e)),
            Pool::Cluster(pool) => loop {
                let conn = pool.get().await.map_err(|e| self.pool_error(e))?;
                let created = deadpool_redis::cluster::Connection::metrics(&conn).created;
                if self.failed_at.lock().is_some_and(|failed| created < failed) {
                    drop(deadpool_redis::cluster::Connection::take(conn));
                    continue;
                }
                break Ok(Conn::cluster(conn));
            },
        }
    }

    /// Runs `op` with the timeout as its bound: whatever it waits for (a pooled connection,
    /// a connect, a reply), the caller gets an answer within the timeout.
    pub(crate) async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result,
            Err(_) => {
                self.retire();
                Err(self.timed_out())
            }
        }
    }

    /// After an operation could not reach a Redis Cluster, retires every pooled cluster
    /// connection made until now: their view of the topology is likely outdated (a
    /// failover, a shard gone). A cluster connection keeps the topology it read until a
    /// redirection corrects it, and one that read it from a node that had not yet learned
    /// of a failover keeps sending a dead master's slots to the dead master, waiting out
    /// its retries (seen with redis 1.8). The idle ones are dropped at once, the ones in use
    /// when they are checked out again (see [`conn`](Self::conn)), and the one the failed
    /// operation used by its own checkout (see `Conn`). New ones, made on demand, read the
    /// topology afresh from the seeds.
    fn retire(&self) {
        if let Pool::Cluster(pool) = &self.pool {
            *self.failed_at.lock() = Some(Instant::now());
            let retired = pool.retain(|_, _| false).removed.len();
            if retired > 0 {
                tracing::debug!(retired, url = %self.url, "cluster connections retired after a failure");
            }
        }
    }

    /// Sends `PING` on a pooled connection (on a cluster, to every master: each one must
    /// answer).
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        self.bounded(async {
            let mut conn = self.conn().await?;
            let _: String = redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .map_err(|e| self.command_error(e))?;
            Ok(())
        })
        .await
    }

    /// The timeout error for this server.
    pub(crate) fn timed_out(&self) -> Error {
        Error::Timeout {
            url: self.url.clone(),
            timeout: self.timeout,
        }
    }

    /// Maps a client error: a timeout, and anything else that means Redis cannot be
    /// reached right now (see [`is_unreachable`]), mean "unreachable"; anything else is an
    /// error Redis answered with.
    pub(crate) fn command_error(&self, e: redis::RedisError) -> Error {
        if e.is_timeout() {
            self.retire();
            self.timed_out()
        } else if is_unreachable(&e) {
            self.retire();
            Error::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        } else {
            Error::Command(e)
        }
    }

    fn pool_error(&self, e: PoolError) -> Error {
        match e {
            PoolError::Timeout(_) => self.timed_out(),
            PoolError::Backend(e) => self.command_error(e),
            other => Error::Unreachable {
                url: self.url.clone(),
                reason: other.to_string(),
            },
        }
    }
}

/// The pool, pub/sub endpoint and display URL of a single Redis. Its manager skips the
/// check before reuse of a connection used within the last second (see `recycle.rs`).
fn single_pool(options: &RedisOptions) -> Result<(Pool, Endpoint, String), Error> {
    let url = redact(&options.url);
    let info = parse(&options.url)?;
    let timeout = options.connect_timeout;
    let connection_config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let manager = deadpool_redis::Manager::new_with_config(info.clone(), connection_config)
        .map_err(|source| Error::InvalidUrl {
            url: url.clone(),
            source,
        })?;
    let pool = deadpool::managed::Pool::builder(TrustRecent(manager))
        .max_size(options.pool_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Pool(e.to_string()))?;
    Ok((Pool::Single(pool), Endpoint::single(info), url))
}

/// The pool, pub/sub endpoint and display URL (the seeds, passwords masked) of a cluster.
///
/// deadpool-redis' cluster manager builds its `ClusterClient` with the client library's
/// defaults: no response timeout (so a slow reply is never sent again behind the caller's
/// back) and a 1 s connect timeout per node; the connect timeout of the options bounds every
/// operation as a whole, as on a single Redis.
///
/// Checking a pooled cluster connection before reuse (`PING` to every master) gets a
/// quarter of the timeout: a cluster connection that holds an outdated topology can hang
/// on a dead master's slots, and a short check lets the same checkout drop it and make a
/// new one, which reads the topology afresh, instead of spending the whole operation on it.
fn cluster_pool(options: &RedisOptions) -> Result<(Pool, Endpoint, String), Error> {
    let url = options
        .cluster_urls
        .iter()
        .map(|seed| redact(seed))
        .collect::<Vec<_>>()
        .join(",");
    let seeds = options
        .cluster_urls
        .iter()
        .map(|seed| parse(seed))
        .collect::<Result<Vec<_>, _>>()?;
    let manager =
        deadpool_redis::cluster::Manager::new(seeds.clone(), false).map_err(|source| {
            Error::InvalidUrl {
                url: url.clone(),
                source,
            }
        })?;
    let timeout = options.connect_timeout;
    let pool = deadpool_redis::cluster::Pool::builder(manager)
        .max_size(options.pool_size)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout / 4))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| Error::Pool(e.to_string()))?;
    Ok((Pool::Cluster(pool), Endpoint::cluster(seeds), url))
}

/// Parses one URL, its password masked in the error.
fn parse(url: &str) -> Result<ConnectionInfo, Error> {
    url.into_connection_info()
        .map_err(|source| Error::InvalidUrl {
            url: redact(url),
            source,
        })
}
