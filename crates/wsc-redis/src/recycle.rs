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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use wsc_testkit::redis_server::RedisServer;

    use super::*;

    fn used(ago: Duration) -> Metrics {
        let at = Instant::now() - ago;
        Metrics {
            created: at,
            recycled: Some(at),
            recycle_count: 1,
        }
    }

    #[tokio::test]
    async fn a_recently_used_connection_is_trusted_and_an_idle_one_is_checked() {
        let mut server = RedisServer::start();
        let manager = deadpool_redis::Manager::new(server.url()).expect("a valid URL");
        let manager = TrustRecent(manager);
        let mut conn = manager.create().await.expect("a connection");
        assert!(manager.recycle(&mut conn, &used(RECENT * 2)).await.is_ok());

        // The server is gone: only the check can tell.
        server.kill();
        assert!(
            manager
                .recycle(&mut conn, &used(Duration::ZERO))
                .await
                .is_ok(),
            "a connection used a moment ago goes back into use without a round trip"
        );
        assert!(
            manager.recycle(&mut conn, &used(RECENT * 2)).await.is_err(),
            "an idle connection is checked, and a dead one fails the check"
        );
    }
}
