//! [`TrustRecent`]: deadpool-redis' manager of single-server connections, except that a
//! connection used within the last [`RECENT`] goes back into use without its check.
//!
//! deadpool-redis checks every connection before each reuse with `UNWATCH` + `PING`: one
//! round trip per checkout. A send to a user on a cluster checks out a connection two or
//! three times, so the checks were half of its round trips (measured: point-to-point sends
//! with Redis enabled were bound by round trips, not CPU). A connection used a moment ago
//! was sound then; and a request that fails because Redis cannot be reached takes its
//! connection out of the pool for good (see `Conn`), so a dead connection fails at most the
//! one request that finds it, the same request the check would have spent. Connections idle
//! for longer are still checked, so the first operation after a quiet spell (or after Redis
//! restarted while the node was idle) never meets a dead one.

use std::time::Duration;

use deadpool::managed::{Manager, Metrics, RecycleResult};
use redis::RedisError;
use redis::aio::MultiplexedConnection;

/// How recently a connection must have been checked out to skip its check.
pub(crate) const RECENT: Duration = Duration::from_secs(1);

/// deadpool-redis' single-server manager, trusting recently used connections.
pub(crate) struct TrustRecent(pub(crate) deadpool_redis::Manager);

impl Manager for TrustRecent {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.0.create().await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        metrics: &Metrics,
    ) -> RecycleResult<RedisError> {
        if metrics.last_used() < RECENT {
            return Ok(());
        }
        self.0.recycle(conn, metrics).await
    }
}
