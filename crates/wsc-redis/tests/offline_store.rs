//! The offline store contract on Redis: bounded per user (oldest dropped first and
//! counted), a TTL per message, atomic deduplication by `message_id`, oldest first,
//! removal by id, every field (scope included) preserved, shared by every node, and keys
//! hash-tagged per user.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{eventually, require_redis};
use wsc_hub::{HubMessage, OfflineStore};
use wsc_redis::{RedisOfflineStore, RedisOptions};

fn message(id: &str, content: &str) -> HubMessage {
    let mut message = HubMessage::text(content);
    message.message_id = id.to_owned();
    message
}

async fn store(options: &RedisOptions, max: usize, ttl: Duration) -> RedisOfflineStore {
    require_redis().await;
    RedisOfflineStore::connect(options, max, ttl).await.unwrap()
}

fn contents(messages: &[HubMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.content.as_str()).collect()
}

#[tokio::test]
async fn messages_come_back_oldest_first_and_are_removed_by_id() {
    let options = support::options();
    let store = store(&options, 10, Duration::from_secs(60)).await;
    for (id, content) in [("m1", "one"), ("m2", "two"), ("m3", "three")] {
        assert!(store.store("bob", message(id, content)).await.unwrap());
    }
    assert!(store.store("amy", message("m1", "for amy")).await.unwrap());
    let loaded = store.load("bob").await.unwrap();
    assert_eq!(contents(&loaded), ["one", "two", "three"]);
    // Loading does not remove.
    assert_eq!(store.load("bob").await.unwrap().len(), 3);

    store
        .remove(
            "bob",
            vec!["m1".to_owned(), "m3".to_owned(), "nope".to_owned()],
        )
        .await
        .unwrap();
    assert_eq!(contents(&store.load("bob").await.unwrap()), ["two"]);
    assert_eq!(contents(&store.load("amy").await.unwrap()), ["for amy"]);
    store.remove("bob", vec!["m2".to_owned()]).await.unwrap();
    assert!(store.load("bob").await.unwrap().is_empty());
    assert!(store.load("nobody").await.unwrap().is_empty());
    assert_eq!(store.dropped(), 0);
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn a_full_backlog_drops_its_oldest_and_counts_it() {
    let options = support::options();
    let store = store(&options, 3, Duration::from_secs(60)).await;
    for i in 1..=5 {
        assert!(
            store
                .store("bob", message(&format!("m{i}"), &format!("n{i}")))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        contents(&store.load("bob").await.unwrap()),
        ["n3", "n4", "n5"]
    );
    assert_eq!(store.dropped(), 2);
    // A dropped message's id can be stored again: it is gone, not remembered.
    assert!(store.store("bob", message("m1", "again")).await.unwrap());
    assert_eq!(
        contents(&store.load("bob").await.unwrap()),
        ["n4", "n5", "again"]
    );
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn the_same_message_id_is_stored_once_even_from_concurrent_nodes() {
    let options = support::options();
    let node_a = store(&options, 10, Duration::from_secs(60)).await;
    let node_b = store(&options, 10, Duration::from_secs(60)).await;
    assert!(node_a.store("bob", message("m1", "first")).await.unwrap());
    assert!(!node_b.store("bob", message("m1", "second")).await.unwrap());
    // Concurrent stores of one id: exactly one wins.
    let racers: Vec<_> = (0..8)
        .map(|i| {
            let store = if i % 2 == 0 {
                node_a.clone()
            } else {
                node_b.clone()
            };
            tokio::spawn(async move { store.store("bob", message("m2", "race")).await })
        })
        .collect();
    let mut stored = 0;
    for racer in racers {
        if racer.await.unwrap().unwrap() {
            stored += 1;
        }
    }
    assert_eq!(stored, 1);
    // Shared by every node: what one stored, the other loads.
    assert_eq!(
        contents(&node_b.load("bob").await.unwrap()),
        ["first", "race"]
    );
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn every_field_survives_the_round_trip() {
    let options = support::options();
    let store = store(&options, 10, Duration::from_secs(60)).await;
    let mut original = message("m-scope", "scoped | with a bar");
    original.app_id = "appA".to_owned();
    original.namespace = "ns1".to_owned();
    original.trace_id = "trace-1".to_owned();
    original.sender = "alice".to_owned();
    original.receiver = "bob".to_owned();
    original.seq_no = 42;
    original.data = json!({"k": [1, 2, {"deep": "é"}]}).as_object().cloned();
    assert!(store.store("bob", original.clone()).await.unwrap());
    let loaded = store.load("bob").await.unwrap();
    assert_eq!(loaded, [original]);
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn messages_expire_after_the_ttl_and_count_as_dropped() {
    let options = support::options();
    let ttl = Duration::from_secs(1);
    let store = store(&options, 10, ttl).await;
    assert!(store.store("bob", message("m1", "older")).await.unwrap());
    // Setup, not a wait for a result: m2 must be younger than m1 by more than the slack of
    // the polling below, so that there is a moment when only m1 has expired.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(store.store("bob", message("m2", "younger")).await.unwrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let remaining = loop {
        let loaded = store.load("bob").await.unwrap();
        if !loaded.iter().any(|m| m.message_id == "m1") {
            break loaded;
        }
        assert!(std::time::Instant::now() < deadline, "m1 never expired");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(contents(&remaining), ["younger"]);
    assert_eq!(store.dropped(), 1, "the expired message counts as dropped");

    // The keys carry the TTL of the newest message: nothing is left once it expired.
    eventually("every message expired", Duration::from_secs(5), || async {
        store.load("bob").await.unwrap().is_empty()
    })
    .await;
    let mut raw = support::raw().await;
    let left: usize = redis::cmd("EXISTS")
        .arg(format!("{}{{user:bob}}:offline", options.key_prefix))
        .arg(format!("{}{{user:bob}}:offline:msgs", options.key_prefix))
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(left, 0);
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn a_users_keys_share_one_hash_tag_and_carry_the_ttl() {
    let options = support::options();
    let store = store(&options, 10, Duration::from_secs(60)).await;
    store.store("bob", message("m1", "x")).await.unwrap();
    let mut raw = support::raw().await;
    for key in [
        format!("{}{{user:bob}}:offline", options.key_prefix),
        format!("{}{{user:bob}}:offline:msgs", options.key_prefix),
    ] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 60_000, "{key} has PTTL {ttl}");
    }
    support::cleanup(&options.key_prefix).await;
}
