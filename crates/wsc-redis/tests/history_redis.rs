//! `RedisHistory`: one `seq_no` counter and resume window per user for the whole cluster.
//! Numbers stay unique under concurrent appends from several nodes, the window is bounded
//! and expires, scope travels with each message, and a client resumes on another node.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use support::scenarios::{self, NODES};
use support::{Cluster, TIMEOUT, cleanup, eventually, options, require_redis};
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
