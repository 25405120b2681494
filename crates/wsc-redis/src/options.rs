//! [`RedisOptions`]: where Redis is (one server, or the seed nodes of a Redis Cluster), how
//! the pool is sized, and the key prefix and TTLs every node of one cluster must share.

use std::time::Duration;

use crate::error::Error;

/// How to reach Redis and how to lay out this cluster's keys in it.
///
/// The fields mirror the gateway's `wsc.redis` and `wsc.distributed` configuration
/// sections; the defaults are theirs.
///
/// One Redis is named by [`url`](Self::url) ([`RedisOptions::new`]); a Redis Cluster by the
/// URLs of some of its nodes in [`cluster_urls`](Self::cluster_urls)
/// ([`RedisOptions::cluster`] or [`with_cluster`](Self::with_cluster)). Everything else
/// means the same in both modes.
///
/// ```
/// use std::time::Duration;
/// use wsc_redis::RedisOptions;
///
/// let options = RedisOptions::new("redis://127.0.0.1:6379/0")
///     .with_key_prefix("chat:")
///     .with_node_ttl(Duration::from_secs(10));
/// assert_eq!(options.presence_ttl, Duration::from_secs(30));
/// assert!(!options.is_cluster());
/// assert!(options.validate().is_ok());
///
/// let cluster = RedisOptions::cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
/// assert!(cluster.is_cluster());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisOptions {
    /// `redis://[user[:password]@]host:port/db` (or `rediss://` when the redis crate's TLS
    /// feature is enabled by the application). Not used when
    /// [`cluster_urls`](Self::cluster_urls) names a cluster.
    pub url: String,
    /// The seed nodes of a Redis Cluster, `redis://[user[:password]@]host:port` each (the
    /// database is always 0 on a cluster). Any reachable subset of the cluster's nodes will
    /// do: the rest of the topology is discovered from them and followed as it changes.
    /// Empty (the default) means the single Redis at [`url`](Self::url).
    pub cluster_urls: Vec<String>,
    /// Most pooled command connections (the pub/sub connection is extra).
    pub pool_size: usize,
    /// Bound on connecting and on every operation: a call never waits longer than this for
    /// Redis, so a Redis outage turns into quick errors instead of stuck callers.
    pub connect_timeout: Duration,
    /// Prefix of every key and channel. Nodes of one cluster share it; tests use a random
    /// one. It must hold no `{` on a Redis Cluster, so that the per-user hash tags of the
    /// keys stay in effect.
    pub key_prefix: String,
    /// How long the presence keys (every node's user set, the online list and counts)
    /// outlive the last renewal of any node; at least `node_ttl` is used.
    pub presence_ttl: Duration,
    /// How long this node's registry entry outlives its last renewal: a node that stops
    /// renewing (killed) disappears from presence queries within this time.
    pub node_ttl: Duration,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            url: "redis://127.0.0.1:6379/0".to_owned(),
            cluster_urls: Vec::new(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            key_prefix: "wsc:".to_owned(),
            presence_ttl: Duration::from_secs(30),
            node_ttl: Duration::from_secs(30),
        }
    }
}

impl RedisOptions {
    /// The defaults, with this URL.
    pub fn new(url: impl Into<String>) -> Self {
        RedisOptions {
            url: url.into(),
            ..RedisOptions::default()
        }
    }

    /// The defaults, on the Redis Cluster that these nodes belong to.
    pub fn cluster<I>(urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisOptions::default().with_cluster(urls)
    }

    /// Runs on the Redis Cluster that these nodes belong to instead of the single Redis at
    /// [`url`](Self::url); an empty list goes back to the single Redis.
    pub fn with_cluster<I>(mut self, urls: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        self.cluster_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// Whether these options name a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster_urls.is_empty()
    }

    /// Sets the most pooled connections.
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Sets the bound on connecting and on every operation.
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the prefix of every key and channel.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets how long presence outlives its last renewal.
    pub fn with_presence_ttl(mut self, ttl: Duration) -> Self {
        self.presence_ttl = ttl;
        self
    }

    /// Sets how long a node's registry entry outlives its last renewal.
    pub fn with_node_ttl(mut self, ttl: Duration) -> Self {
        self.node_ttl = ttl;
        self
    }

    /// Checks what cannot work: an empty prefix (keys would collide with anything else in
    /// the database), a prefix with `{` on a cluster (it would put every key in one slot),
    /// an empty cluster URL, a zero pool, timeout or TTL, or a TTL under 100 ms (Redis
    /// expiry is in milliseconds and renewals need time to happen).
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |what: &str| Err(Error::InvalidOptions(what.to_owned()));
        if self.key_prefix.is_empty() {
            return invalid("key_prefix must not be empty");
        }
        // A `{` in the prefix would become the hash tag of every key, so that all of them,
        // every user's included, would land in one cluster slot.
        if self.is_cluster() && self.key_prefix.contains('{') {
            return invalid("key_prefix must not hold '{' on a Redis Cluster");
        }
        if self.cluster_urls.iter().any(|url| url.trim().is_empty()) {
            return invalid("cluster_urls must not hold an empty URL");
        }
        if self.pool_size == 0 {
            return invalid("pool_size must be at least 1");
        }
        if self.connect_timeout.is_zero() {
            return invalid("connect_timeout must be positive");
        }
        let floor = Duration::from_millis(100);
        if self.presence_ttl < floor || self.node_ttl < floor {
            return invalid("presence_ttl and node_ttl must be at least 100ms");
        }
        Ok(())
    }

    /// How long presence outlives the last renewal: `presence_ttl`, at least `node_ttl` (the
    /// registry must not expire while an entry in it is live).
    pub(crate) fn presence_keep(&self) -> Duration {
        self.presence_ttl.max(self.node_ttl)
    }

    /// How often a live node renews its registry entry and presence set: a third of the
    /// shorter TTL, so that two renewals in a row can fail before an entry expires.
    pub(crate) fn renew_interval(&self) -> Duration {
        self.presence_ttl.min(self.node_ttl) / 3
    }
}

/// Milliseconds of a duration, as Redis' `PEXPIRE` and scores take them.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cannot_work_is_refused() {
        assert!(RedisOptions::default().validate().is_ok());
        for bad in [
            RedisOptions::default().with_key_prefix(""),
            RedisOptions::default().with_pool_size(0),
            RedisOptions::default().with_connect_timeout(Duration::ZERO),
            RedisOptions::default().with_node_ttl(Duration::from_millis(10)),
            RedisOptions::default().with_presence_ttl(Duration::ZERO),
            RedisOptions::cluster(["redis://h:7000"]).with_key_prefix("{wsc}:"),
            RedisOptions::cluster(["redis://h:7000", " "]),
        ] {
            assert!(
                matches!(bad.validate(), Err(Error::InvalidOptions(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_cluster_is_named_by_its_seed_nodes() {
        let single = RedisOptions::new("redis://h:6379/0");
        assert!(!single.is_cluster());
        let cluster = single.with_cluster(["redis://a:7000", "redis://b:7000"]);
        assert!(cluster.is_cluster());
        assert_eq!(cluster.cluster_urls.len(), 2);
        assert!(cluster.validate().is_ok());
        assert!(!cluster.with_cluster(Vec::<String>::new()).is_cluster());
        // A `{` is harmless on a single Redis, where hash tags mean nothing.
        assert!(
            RedisOptions::default()
                .with_key_prefix("{wsc}:")
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn renewals_come_three_times_per_shortest_ttl() {
        let options = RedisOptions::default()
            .with_presence_ttl(Duration::from_secs(9))
            .with_node_ttl(Duration::from_secs(3));
        assert_eq!(options.renew_interval(), Duration::from_secs(1));
    }
}
