//! Shared setup of the Redis tests: where Redis is, a random key prefix per test (so the
//! tests run in parallel on one server), hubs linked by `RedisBackplane`s (on the test
//! Redis, or on a local Redis Cluster under a prefix that spreads their channels over the
//! shards), polling with a deadline, and removal of a test's keys.
//!
//! Every test here needs Redis and fails, saying how to start it, when none answers: a
//! missing Redis must never look like a passing suite.

#![allow(dead_code)]

pub(crate) mod scenarios;
pub(crate) mod shards;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use wsc_hub::{Backplane, Hub, HubConfig, Outbound, Registration};
use wsc_redis::{RedisBackplane, RedisOptions};
use wsc_testkit::redis_cluster::RedisCluster;

/// The longest a test waits for one thing to happen.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(10);

/// The Redis of the tests: `WSC_TEST_REDIS_URL` (set by `cargo xtask ci`), else the local
/// default.
pub(crate) fn redis_url() -> String {
    std::env::var("WSC_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// Options on the test Redis under a fresh random prefix.
pub(crate) fn options() -> RedisOptions {
    RedisOptions::new(redis_url())
        .with_key_prefix(format!("wsc-test:{}:", uuid::Uuid::now_v7().simple()))
        .with_connect_timeout(Duration::from_secs(2))
}

/// Panics, loudly, when the test Redis does not answer.
pub(crate) async fn require_redis() {
    let url = redis_url();
    let answered = async {
        let client = redis::Client::open(url.as_str()).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    let pong = tokio::time::timeout(Duration::from_secs(3), answered)
        .await
        .ok()
        .flatten();
    assert!(
        pong.is_some(),
        "these tests need Redis at {url}, and it does not answer. Start one with \
         `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save \"\" \
         --appendonly no` (or run `cargo xtask ci`, or set WSC_TEST_REDIS_URL)"
    );
}

/// A plain connection to the test Redis, for looking at keys directly.
pub(crate) async fn raw() -> redis::aio::MultiplexedConnection {
    raw_at(&redis_url()).await
}

/// A plain connection to the Redis at `url`.
pub(crate) async fn raw_at(url: &str) -> redis::aio::MultiplexedConnection {
    let client = redis::Client::open(url).expect("test Redis URL");
    client
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the test Redis")
}

/// Deletes every key under `prefix` on the test Redis (SCAN is fine here: tests only).
pub(crate) async fn cleanup(prefix: &str) {
    cleanup_at(&redis_url(), prefix).await;
}

/// Options on a local Redis Cluster (every node a seed) under `prefix`.
pub(crate) fn cluster_options(cluster: &RedisCluster, prefix: &str) -> RedisOptions {
    RedisOptions::cluster(cluster.urls())
        .with_key_prefix(prefix)
        .with_connect_timeout(Duration::from_secs(2))
}

/// Deletes every key under the prefix of `options`, on its Redis or on every node of its
/// cluster.
pub(crate) async fn cleanup_options(options: &RedisOptions) {
    if options.is_cluster() {
        for url in &options.cluster_urls {
            cleanup_node(url, &options.key_prefix).await;
        }
    } else {
        cleanup_at(&options.url, &options.key_prefix).await;
    }
}

/// Deletes the keys under `prefix` that one cluster node holds, one `DEL` each: a node
/// refuses a `DEL` of keys in different slots, even slots of its own. A node that is gone
/// (killed by its test) holds nothing any more.
async fn cleanup_node(url: &str, prefix: &str) {
    let Ok(client) = redis::Client::open(url) else {
        return;
    };
    let Ok(Ok(mut conn)) = tokio::time::timeout(
        Duration::from_secs(2),
        client.get_multiplexed_async_connection(),
    )
    .await
    else {
        return;
    };
    for key in scan(&mut conn, prefix).await {
        // A replica refuses writes; its master deletes the same keys.
        let _: Result<(), _> = redis::cmd("DEL").arg(&key).query_async(&mut conn).await;
    }
}

/// Every key under `prefix` on one server (SCAN is fine here: tests only).
async fn scan(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .expect("SCAN");
        keys.extend(batch);
        if next == 0 {
            return keys;
        }
        cursor = next;
    }
}

/// Deletes every key under `prefix` on the Redis at `url`.
pub(crate) async fn cleanup_at(url: &str, prefix: &str) {
    let mut conn = raw_at(url).await;
    let keys = scan(&mut conn, prefix).await;
    if !keys.is_empty() {
        let () = redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .expect("DEL");
    }
}

/// Polls `condition` every 20 ms until it holds; fails the test after `within`.
pub(crate) async fn eventually<F, Fut>(what: &str, within: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next message frame of a registration (pings skipped), as JSON.
pub(crate) async fn next_message(registration: &mut Registration) -> Value {
    loop {
        let frame = tokio::time::timeout(TIMEOUT, registration.recv())
            .await
            .expect("a frame in time")
            .expect("queue open");
        if let Outbound::Message(payload) = frame {
            return serde_json::from_str(payload.as_str()).unwrap();
        }
    }
}

/// Started hubs, each with its own `RedisBackplane` (its own pool and pub/sub connection),
/// all under one random prefix.
pub(crate) struct Cluster {
    pub(crate) options: RedisOptions,
    pub(crate) hubs: Vec<Hub>,
    pub(crate) backplanes: Vec<RedisBackplane>,
}

impl Cluster {
    /// Hubs named `names`, started, and every one of them attached (subscribed and in the
    /// registry) before this returns.
    pub(crate) async fn start(names: &[&str]) -> Self {
        require_redis().await;
        Self::start_with(options(), names).await
    }

    /// [`start`](Self::start) on a local Redis Cluster, under a fresh prefix that spreads
    /// the nodes' channels over the shards (see [`shards::spread_prefix`]).
    pub(crate) async fn start_on(cluster: &RedisCluster, names: &[&str]) -> Self {
        let prefix = shards::spread_prefix(&cluster.urls()[0], names).await;
        Self::start_with(cluster_options(cluster, &prefix), names).await
    }

    /// [`start`](Self::start) with these options (which may name another Redis, or a
    /// cluster).
    pub(crate) async fn start_with(options: RedisOptions, names: &[&str]) -> Self {
        let mut hubs = Vec::new();
        let mut backplanes = Vec::new();
        for name in names {
            let backplane = RedisBackplane::connect(options.clone())
                .await
                .expect("connect to the test Redis");
            let mut config = HubConfig::default();
            config.node_id = (*name).to_owned();
            let hub = Hub::new(config);
            hub.set_backplane(Arc::new(backplane.clone()));
            hub.set_history(Arc::new(backplane.history()));
            hub.set_group_store(Arc::new(backplane.groups()));
            hub.set_ticket_store(Arc::new(backplane.tickets()));
            hub.start();
            hubs.push(hub);
            backplanes.push(backplane);
        }
        let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        expected.sort();
        let probe = backplanes[0].clone();
        eventually("every node joined", TIMEOUT, || {
            let probe = probe.clone();
            let expected = expected.clone();
            async move { probe.nodes().await.is_ok_and(|nodes| nodes == expected) }
        })
        .await;
        Cluster {
            options,
            hubs,
            backplanes,
        }
    }

    /// The hub at `i`.
    pub(crate) fn hub(&self, i: usize) -> &Hub {
        &self.hubs[i]
    }

    /// Detaches every node still attached and deletes the test's keys.
    pub(crate) async fn finish(self) {
        for backplane in &self.backplanes {
            if let Some(node) = backplane.node_id() {
                let _ = backplane.detach(&node).await;
            }
        }
        cleanup_options(&self.options).await;
    }
}
