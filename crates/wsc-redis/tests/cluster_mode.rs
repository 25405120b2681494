//! The same code on a Redis Cluster: a local three-master cluster (`wsc-testkit`'s
//! `RedisCluster::shared`, started by the first test that needs it and stopped when the test
//! process ends) and every hub's `RedisBackplane` built with `RedisOptions::cluster`.
//!
//! - The cross-node scenarios of `cluster_redis.rs` (`wsc_testkit::cluster` and
//!   `support/scenarios.rs`), each under a prefix whose node and broadcast channels are owned
//!   by all three masters (checked with `CLUSTER KEYSLOT`), so that publishing and
//!   subscribing really cross shards.
//! - The offline store and the history with users whose keys live on different shards; the
//!   keys one script touches share a slot; an unreachable cluster fails quickly.
//! - Topology changes, each on a cluster of its own: a channel's slot moved to another
//!   master (the subscription follows it), and a master killed and replaced by its replica
//!   (subscriptions, presence and sends come back without help).

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use support::scenarios::{self, NODES};
use support::shards::{self, ShardMap, keyslot};
use support::{Cluster, TIMEOUT, cluster_options, eventually, next_message, raw_at};
use wsc_hub::codec::{self, UNNUMBERED};
use wsc_hub::{
    Backplane, BackplaneError, HistoryStore, HubMessage, Identity, NewEntry, OfflineStore,
    StoreError, WindowLimits,
};
use wsc_redis::{Error, RedisBackplane, RedisHistory, RedisOfflineStore, RedisOptions};
use wsc_testkit::redis_cluster::RedisCluster;

/// Users whose `{user:<id>}` keys hash to the three masters of a fresh cluster (slots
/// 2036, 7068 and 12691; the tests check it).
const USERS: [&str; 3] = ["bob", "amy", "frank"];

// The scenarios every backplane passes (`wsc_testkit::cluster`), over three hubs on the
// shared local cluster.
wsc_testkit::cross_node_scenarios!(
    #[tokio::test]
    |run| {
        let cluster = Cluster::start_on(RedisCluster::shared(), NODES).await;
        run([cluster.hub(0), cluster.hub(1), cluster.hub(2)]).await;
        assert!(cluster.backplanes[0].health().await.is_ok());
        cluster.finish().await;
    }
);

/// The scenarios particular to Redis (`support/scenarios.rs`), over three hubs on the
/// shared local cluster.
macro_rules! redis_scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let cluster = Cluster::start_on(RedisCluster::shared(), NODES).await;
            scenarios::$name(&cluster).await;
            cluster.finish().await;
        }
    )*};
}

redis_scenarios!(
    a_user_on_no_node_is_stored_in_the_shared_store_and_replayed_on_another_node,
    a_stopped_node_leaves_the_cluster_at_once,
    an_ack_that_never_comes_is_stored_in_the_shared_store_and_replayed_elsewhere,
    a_client_resumes_on_another_node_with_the_numbers_of_the_cluster,
);

/// Asserts that the keys of [`USERS`] under `prefix` live on three different masters.
async fn assert_users_on_every_shard(redis: &RedisCluster, prefix: &str) {
    let keys: Vec<String> = USERS
        .iter()
        .map(|user| format!("{prefix}{{user:{user}}}:offline"))
        .collect();
    let owners = shards::shards_of(&redis.urls()[0], &keys).await;
    assert_eq!(
        owners.len(),
        3,
        "{USERS:?} do not span the shards: {owners:?}"
    );
}

fn message(id: &str, content: &str) -> HubMessage {
    let mut message = HubMessage::text(content);
    message.message_id = id.to_owned();
    message
}

fn contents(messages: &[HubMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.content.as_str()).collect()
}

#[tokio::test]
async fn the_offline_store_keeps_its_contract_for_users_on_every_shard() {
    let redis = RedisCluster::shared();
    let options = cluster_options(redis, &fresh_prefix());
    assert_users_on_every_shard(redis, &options.key_prefix).await;
    let ttl = Duration::from_secs(60);
    let node_a = RedisOfflineStore::connect(&options, 3, ttl).await.unwrap();
    let node_b = RedisOfflineStore::connect(&options, 3, ttl).await.unwrap();
    for user in USERS {
        for i in 1..=4 {
            let stored = node_a
                .store(user, message(&format!("m{i}"), &format!("{user}-{i}")))
                .await
                .unwrap();
            assert!(stored, "{user} m{i}");
        }
        // Bounded: the oldest went; shared: the other node loads the same list.
        let expected: Vec<String> = (2..=4).map(|i| format!("{user}-{i}")).collect();
        assert_eq!(contents(&node_b.load(user).await.unwrap()), expected);
        // Concurrent stores of one id from both nodes: exactly one wins.
        let racers: Vec<_> = (0..6)
            .map(|i| {
                let store = if i % 2 == 0 {
                    node_a.clone()
                } else {
                    node_b.clone()
                };
                let user = user.to_owned();
                tokio::spawn(async move { store.store(&user, message("race", "race")).await })
            })
            .collect();
        let mut stored = 0;
        for racer in racers {
            stored += usize::from(racer.await.unwrap().unwrap());
        }
        assert_eq!(stored, 1, "{user}");
        node_b
            .remove(user, vec!["m3".to_owned(), "race".to_owned()])
            .await
            .unwrap();
        // The winner pushed the oldest out: m3, m4, race; two of them are removed.
        assert_eq!(
            contents(&node_a.load(user).await.unwrap()),
            [format!("{user}-4")]
        );
    }
    assert_eq!(
        node_a.dropped() + node_b.dropped(),
        2 * 3,
        "two dropped for the bound per user"
    );
    support::cleanup_options(&options).await;
}

fn entry(id: &str) -> NewEntry {
    let mut msg = HubMessage::text(id);
    msg.message_id = id.to_owned();
    msg.seq_no = UNNUMBERED;
    NewEntry::new(id, codec::encode(&msg).unwrap())
}

#[tokio::test]
async fn history_numbers_are_unique_across_nodes_for_users_on_every_shard() {
    let redis = RedisCluster::shared();
    let options = cluster_options(redis, &fresh_prefix());
    assert_users_on_every_shard(redis, &options.key_prefix).await;
    let (a, b) = (
        RedisHistory::new(&options).unwrap(),
        RedisHistory::new(&options).unwrap(),
    );
    let limits = WindowLimits::new(100, Duration::from_secs(60));
    let appends: Vec<_> = (0..90)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let user = USERS[i % 3];
            tokio::spawn(async move {
                let seq = store
                    .append(user, entry(&format!("m{i}")), limits)
                    .await
                    .unwrap();
                (user, seq)
            })
        })
        .collect();
    let mut numbers: Vec<(&str, i64)> = Vec::new();
    for append in appends {
        numbers.push(append.await.unwrap());
    }
    for user in USERS {
        let given: HashSet<i64> = numbers
            .iter()
            .filter(|(u, _)| *u == user)
            .map(|(_, seq)| *seq)
            .collect();
        assert_eq!(given, (1..=30).collect::<HashSet<i64>>(), "{user}");
        let window = b.read(user, 28).await.unwrap();
        assert_eq!(
            (window.latest_seq, window.first_seq),
            (30, Some(1)),
            "{user}"
        );
        let seqs: Vec<i64> = window.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [29, 30], "{user}");
    }
    support::cleanup_options(&options).await;
}

#[tokio::test]
async fn the_keys_one_script_touches_share_a_slot() {
    let redis = RedisCluster::shared();
    let mut conn = raw_at(&redis.urls()[0]).await;
    let prefix = fresh_prefix();
    for user in USERS.iter().chain(&["a:b", "{odd}", "é"]) {
        // The offline scripts touch the list and the hash; the history scripts the
        // counter and the window.
        for (first, second) in [("offline", "offline:msgs"), ("seq", "history")] {
            let first = format!("{prefix}{{user:{user}}}:{first}");
            let second = format!("{prefix}{{user:{user}}}:{second}");
            assert_eq!(
                keyslot(&mut conn, &first).await,
                keyslot(&mut conn, &second).await,
                "{first} and {second}"
            );
        }
    }
    // The presence scripts touch the registry, the online list, the counts and the node
    // sets (whose names they build themselves) together.
    let registry = keyslot(&mut conn, &format!("{prefix}{{presence}}:nodes")).await;
    for name in ["users", "user_nodes", "node:n1:users", "node:{odd}:users"] {
        let key = format!("{prefix}{{presence}}:{name}");
        assert_eq!(keyslot(&mut conn, &key).await, registry, "{key}");
    }
}

#[tokio::test]
async fn an_unreachable_cluster_fails_quickly_without_the_password() {
    let port = wsc_testkit::free_port();
    let options = RedisOptions::cluster([format!("redis://:hunter2@127.0.0.1:{port}/")])
        .with_key_prefix("wsc-test:down:")
        .with_connect_timeout(Duration::from_millis(500));
    let started = Instant::now();
    let err = RedisBackplane::connect(options.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::Unreachable { .. } | Error::Timeout { .. }),
        "{err:?}"
    );
    assert!(text.contains("127.0.0.1"), "{text}");
    assert!(!text.contains("hunter2"), "the password leaked: {text}");
    let backplane = RedisBackplane::new(options.clone()).unwrap();
    assert!(matches!(
        backplane.user_nodes("bob").await,
        Err(BackplaneError::Unavailable(_))
    ));
    let store = RedisOfflineStore::new(&options, 10, Duration::from_secs(60)).unwrap();
    assert!(matches!(
        store.load("bob").await,
        Err(StoreError::Unavailable(_))
    ));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?} with the cluster down",
        started.elapsed()
    );
}

/// A random key prefix for the tests that place users, not channels.
fn fresh_prefix() -> String {
    format!("wsc-test:{}:", uuid::Uuid::now_v7().simple())
}

/// The launcher's index (start order) of the master that owns `slot`.
fn master_index(redis: &RedisCluster, map: &ShardMap, slot: u16) -> usize {
    let address = map.owner_address(slot);
    redis
        .ports()
        .iter()
        .position(|port| address == format!("127.0.0.1:{port}"))
        .unwrap_or_else(|| panic!("slot {slot} is owned by {address}, not a started node"))
}

/// How many subscribers the node at `url` has for a shard channel (`PUBSUB SHARDNUMSUB`).
async fn shard_subscribers(url: &str, channel: &str) -> u64 {
    let mut conn = raw_at(url).await;
    let (_, count): (String, u64) = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(channel)
        .query_async(&mut conn)
        .await
        .expect("PUBSUB SHARDNUMSUB");
    count
}

#[tokio::test]
async fn a_subscription_follows_its_channel_when_the_slot_moves() {
    let redis = RedisCluster::start();
    let cluster = Cluster::start_on(&redis, NODES).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let mut bob = b.register(Identity::new("bob")).await.unwrap();

    let urls = redis.urls();
    let channel = format!("{}node:b", cluster.options.key_prefix);
    let mut conn = raw_at(&urls[0]).await;
    let slot = keyslot(&mut conn, &channel).await;
    let map = ShardMap::read(&urls[0]).await;
    let from = master_index(&redis, &map, slot);
    let to = (from + 1) % urls.len();
    assert_eq!(shard_subscribers(&urls[from], &channel).await, 1);
    let keys_in_slot: u64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut raw_at(&urls[from]).await)
        .await
        .unwrap();
    assert_eq!(
        keys_in_slot, 0,
        "slot {slot} holds keys: moving it would lose them"
    );

    // Resharding of a slot without keys: the new owner first, then the old one, then the
    // rest (the order `redis-cli --cluster reshard` uses). The old owner then drops the
    // channel's subscribers with a `sunsubscribe`.
    let target = redis.node_id(to);
    for node in [to, from, (to + 1) % urls.len()] {
        let () = redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg("NODE")
            .arg(&target)
            .query_async(&mut raw_at(&urls[node]).await)
            .await
            .unwrap();
    }
    let backplane = cluster.backplanes[1].clone();
    let new_owner = urls[to].clone();
    eventually("b subscribed at the slot's new owner", TIMEOUT, || {
        let (backplane, new_owner, channel) =
            (backplane.clone(), new_owner.clone(), channel.clone());
        async move {
            let stats = backplane.stats();
            stats.reconnects >= 1
                && stats.subscribed
                && shard_subscribers(&new_owner, &channel).await == 1
        }
    })
    .await;
    assert_eq!(shard_subscribers(&urls[from], &channel).await, 0);

    let report = a
        .send_to_user("bob", HubMessage::text("after the move"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 1, "{report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "after the move");
    cluster.finish().await;
}

#[tokio::test]
async fn subscriptions_presence_and_sends_survive_a_failover() {
    let mut redis = RedisCluster::start();
    let urls = redis.urls();
    let prefix = shards::spread_prefix(&urls[0], NODES).await;
    let channel = format!("{prefix}node:b");
    let slot = keyslot(&mut raw_at(&urls[0]).await, &channel).await;
    let master = master_index(&redis, &ShardMap::read(&urls[0]).await, slot);
    let replica = redis.add_replica(master);

    // Short TTLs: what the failed master held and its replica had not copied yet comes
    // back with the next renewal.
    let ttl = Duration::from_secs(1);
    let options = cluster_options(&redis, &prefix)
        .with_node_ttl(ttl)
        .with_presence_ttl(ttl);
    let cluster = Cluster::start_with(options, NODES).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    a.send_to_user("bob", HubMessage::text("before"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut bob).await["content"], "before");

    redis.kill(master);
    redis.promote(replica);
    let replica_url = format!("redis://127.0.0.1:{}/", redis.ports()[replica]);
    let (probe, b_plane) = (cluster.backplanes[0].clone(), cluster.backplanes[1].clone());
    eventually(
        "b subscribed at the promoted replica, presence back",
        TIMEOUT,
        || {
            let (probe, b_plane) = (probe.clone(), b_plane.clone());
            let (replica_url, channel) = (replica_url.clone(), channel.clone());
            async move {
                let stats = b_plane.stats();
                stats.reconnects >= 1
                    && stats.subscribed
                    && shard_subscribers(&replica_url, &channel).await == 1
                    && probe.user_nodes("bob").await.is_ok_and(|n| n == ["b"])
            }
        },
    )
    .await;
    // An operation may still fail right after the failover (within the timeout, counted in
    // the hub's cluster errors, the message not delivered) while pooled connections made
    // with the old topology are replaced: send until one reaches b, then bob gets it.
    let deadline = Instant::now() + TIMEOUT;
    let mut attempts = 0;
    let delivered = loop {
        attempts += 1;
        let text = format!("after the failover ({attempts})");
        let report = a
            .send_to_user("bob", HubMessage::text(&text))
            .await
            .unwrap();
        if report.nodes == 1 {
            break text;
        }
        assert!(Instant::now() < deadline, "no send reached b: {report:?}");
    };
    loop {
        // A failed attempt may have been published all the same (only its reply was lost).
        let content = next_message(&mut bob).await["content"].clone();
        if content == delivered.as_str() {
            break;
        }
        assert!(
            content
                .as_str()
                .is_some_and(|c| c.starts_with("after the failover")),
            "{content}"
        );
    }
    assert!(b_plane.health().await.is_ok());
    cluster.finish().await;
}
