//! [`Redis`]: the command side shared by the backplane and the offline store: a
//! deadpool-redis pool, every operation bounded by the connect timeout, and errors mapped
//! onto [`Error`].

use std::future::Future;
use std::time::Duration;

use deadpool_redis::{Manager, Pool, PoolError, Runtime};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, ProtocolVersion};

use crate::error::{Error, redact};
use crate::keys::Keys;
use crate::options::RedisOptions;

/// A pool of command connections plus what every operation needs to know.
pub(crate) struct Redis {
    pool: Pool,
    /// A RESP3 client for the dedicated pub/sub connection (pooled connections cannot
    /// subscribe).
    pubsub_client: Client,
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
        let url = redact(&options.url);
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|source| Error::InvalidUrl {
                url: url.clone(),
                source,
            })?;
        let timeout = options.connect_timeout;
        let connection_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        let manager =
            Manager::new_with_config(info.clone(), connection_config).map_err(|source| {
                Error::InvalidUrl {
                    url: url.clone(),
                    source,
                }
            })?;
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Pool(e.to_string()))?;
        // Pushed pub/sub messages share the connection with command replies only in RESP3;
        // that is what lets one multiplexed connection subscribe and still answer PING.
        let resp3 = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let pubsub_client =
            Client::open(info.set_redis_settings(resp3)).map_err(|source| Error::InvalidUrl {
                url: url.clone(),
                source,
            })?;
        Ok(Redis {
            pool,
            pubsub_client,
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

    /// The client for the dedicated pub/sub connection.
    pub(crate) fn pubsub_client(&self) -> &Client {
        &self.pubsub_client
    }

    /// A pooled connection (waiting at most the timeout for one).
    pub(crate) async fn conn(&self) -> Result<deadpool_redis::Connection, Error> {
        self.pool.get().await.map_err(|e| self.pool_error(e))
    }

    /// Runs `op` with the timeout as its bound: whatever it waits for (a pooled connection,
    /// a connect, a reply), the caller gets an answer within the timeout.
    pub(crate) async fn bounded<T>(
        &self,
        op: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out()),
        }
    }

    /// Sends `PING` on a pooled connection.
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

    /// Maps a client error: lost or refused connections and timeouts mean "unreachable",
    /// anything else is an error Redis answered with.
    pub(crate) fn command_error(&self, e: redis::RedisError) -> Error {
        if e.is_timeout() {
            self.timed_out()
        } else if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
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
