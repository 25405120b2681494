//! `RedisHistory`: one `seq_no` counter and resume window per user for the whole cluster.
//! Numbers stay unique under concurrent appends from several nodes, the window is bounded
//! and expires, scope travels with each message, and a client resumes on another node.
//! With its Redis gone, a hub delivers locally, unnumbered, and counts a cluster error.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::scenarios::{self, NODES};
use support::{Cluster, TIMEOUT, cleanup, eventually, next_message, options, require_redis};
use wsc_hub::codec::{self, UNNUMBERED};
use wsc_hub::{HistoryStore, HubMessage, NewEntry, WindowLimits};
use wsc_redis::RedisHistory;

fn entry(id: &str, app: &str) -> NewEntry {
    let mut msg = HubMessage::text(id);
    msg.message_id = id.to_owned();
    msg.app_id = app.to_owned();
    msg.seq_no = UNNUMBERED;
    let mut entry = NewEntry::new(id, codec::encode(&msg).unwrap());
    entry.app_id = app.to_owned();
    entry
}

#[tokio::test]
async fn concurrent_appends_from_two_nodes_get_unique_consecutive_numbers() {
    require_redis().await;
    let options = options();
    let (a, b) = (
        RedisHistory::new(&options).unwrap(),
        RedisHistory::new(&options).unwrap(),
    );
    let limits = WindowLimits::new(500, Duration::from_secs(60));
    let appends = (0..100).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store
                .append("alice", entry(&format!("m{i}"), ""), limits)
                .await
        })
    });
    let mut numbers = HashSet::new();
    for append in appends {
        numbers.insert(append.await.unwrap().unwrap());
    }
    assert_eq!(numbers, (1..=100).collect::<HashSet<i64>>());
    let window = a.read("alice", 98).await.unwrap();
    assert_eq!((window.latest_seq, window.first_seq), (100, Some(1)));
    let seqs: Vec<i64> = window.entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [99, 100]);
    cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn the_window_keeps_scope_writes_the_number_in_and_is_bounded() {
    require_redis().await;
    let options = options();
    let history = RedisHistory::new(&options).unwrap();
    let limits = WindowLimits::new(2, Duration::from_secs(60));
    for (id, app) in [("a", "app-1"), ("b", "app-2"), ("c", "app-1")] {
        history.append("bob", entry(id, app), limits).await.unwrap();
    }
    let window = history.read("bob", 0).await.unwrap();
    assert_eq!(
        (window.latest_seq, window.first_seq),
        (3, Some(2)),
        "trimmed to 2"
    );
    let kept: Vec<(i64, &str, &str)> = window
        .entries
        .iter()
        .map(|e| (e.seq, e.message_id.as_str(), e.app_id.as_str()))
        .collect();
    assert_eq!(kept, [(2, "b", "app-2"), (3, "c", "app-1")]);
    let frame: HubMessage = serde_json::from_str(window.entries[1].payload.as_str()).unwrap();
    assert_eq!((frame.seq_no, frame.content.as_str()), (3, "c"));
    cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn kept_messages_expire_but_the_counter_goes_on() {
    require_redis().await;
    let options = options();
    let history = RedisHistory::new(&options).unwrap();
    let limits = WindowLimits::new(10, Duration::from_millis(300));
    history
        .append("carol", entry("old", ""), limits)
        .await
        .unwrap();
    eventually("the message expired", TIMEOUT, || {
        let history = history.clone();
        async move { history.read("carol", 0).await.unwrap().entries.is_empty() }
    })
    .await;
    let seq = history
        .append("carol", entry("new", ""), limits)
        .await
        .unwrap();
    assert_eq!(seq, 2, "the counter outlives the window");
    let window = history.read("carol", 0).await.unwrap();
    assert_eq!(window.first_seq, Some(2));
    cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn a_client_resumes_on_another_node_with_the_numbers_of_the_cluster() {
    let cluster = Cluster::start(NODES).await;
    scenarios::a_client_resumes_on_another_node_with_the_numbers_of_the_cluster(&cluster).await;
    cluster.finish().await;
}

#[tokio::test]
async fn with_its_redis_gone_a_user_message_leaves_unnumbered_and_counts_a_cluster_error() {
    let mut redis = wsc_testkit::redis_server::RedisServer::start();
    let options = wsc_redis::RedisOptions::new(redis.url())
        .with_key_prefix("wsc-test:history-down:")
        .with_connect_timeout(Duration::from_millis(500));
    let hub = wsc_hub::Hub::new(wsc_hub::HubConfig::default());
    hub.set_history(std::sync::Arc::new(RedisHistory::new(&options).unwrap()));
    hub.start();
    let mut phone = hub.register(wsc_hub::Identity::new("dora")).await.unwrap();
    hub.send_to_user("dora", HubMessage::text("one"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut phone).await["seq_no"], 1);

    redis.kill();
    let report = tokio::time::timeout(TIMEOUT, hub.send_to_user("dora", HubMessage::text("two")))
        .await
        .expect("the send does not hang on a dead Redis")
        .expect("local delivery goes on");
    assert_eq!(report.delivered, 1);
    let frame = next_message(&mut phone).await;
    assert_eq!(frame["content"], "two");
    assert_eq!(frame["seq_no"], 0, "{frame}");
    assert_eq!(hub.stats().cluster_errors, 1);
}
