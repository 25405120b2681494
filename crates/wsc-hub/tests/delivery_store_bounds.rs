//! The memory offline store's bounds: expired users are swept without a connect, the store
//! has a global cap with a documented eviction order, and the counters are exact.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{config, started};
use wsc_hub::{HubMessage, MemoryOfflineStore, OfflineStore};

fn message(id: &str) -> HubMessage {
    HubMessage {
        message_id: id.to_owned(),
        ..HubMessage::text(id)
    }
}

#[tokio::test(start_paused = true)]
async fn expired_messages_of_users_who_never_return_are_swept() {
    let store = MemoryOfflineStore::new(10, Duration::from_secs(60));
    for user in ["a", "b", "c"] {
        assert!(
            store
                .store(user, message(&format!("{user}-1")))
                .await
                .unwrap()
        );
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    store.store("d", message("d-1")).await.unwrap();
    tokio::time::advance(Duration::from_secs(31)).await;

    store.purge_expired();
    assert_eq!(store.total(), 1, "only d's message is still alive");
    assert_eq!(store.user_count(), 1, "expired users are gone");
    assert_eq!(store.dropped(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_hub_sweep_purges_the_offline_store() {
    let store = Arc::new(MemoryOfflineStore::new(10, Duration::from_secs(5)));
    let hub = started(config(|c| c.heartbeat_interval = Duration::from_secs(1)));
    hub.set_offline_store(Some(store.clone()));
    hub.send_to_user("gone", HubMessage::text("x"))
        .await
        .unwrap();
    assert_eq!(store.total(), 1);
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(
        store.total(),
        0,
        "the periodic sweep removed the expired message"
    );
    assert_eq!(hub.stats().offline_dropped, 1);
}

#[tokio::test]
async fn a_full_store_drops_its_oldest_message_whoever_owns_it() {
    let store = MemoryOfflineStore::new(10, Duration::from_secs(60)).with_max_total(3);
    for (user, id) in [("a", "a1"), ("b", "b1"), ("a", "a2"), ("c", "c1")] {
        store.store(user, message(id)).await.unwrap();
    }
    assert_eq!(store.total(), 3);
    assert_eq!(store.dropped(), 1);
    let ids = |messages: Vec<HubMessage>| -> Vec<String> {
        messages.into_iter().map(|m| m.message_id).collect()
    };
    assert_eq!(
        ids(store.load("a").await.unwrap()),
        ["a2"],
        "a1 was the oldest"
    );
    assert_eq!(ids(store.load("b").await.unwrap()), ["b1"]);
    assert_eq!(ids(store.load("c").await.unwrap()), ["c1"]);
}

#[tokio::test]
async fn a_repeated_message_id_is_stored_and_counted_once() {
    let hub = started(Default::default());
    for _ in 0..3 {
        let report = hub
            .send_to_user("offline", message("same-id"))
            .await
            .unwrap();
        assert!(report.stored_offline);
    }
    assert_eq!(hub.stats().offline_stored, 1);
    let stored = hub.offline_store().unwrap().load("offline").await.unwrap();
    assert_eq!(stored.len(), 1);
}

#[tokio::test]
async fn the_store_reports_whether_a_message_was_new() {
    let store = MemoryOfflineStore::default();
    assert!(store.store("u", message("m")).await.unwrap());
    assert!(!store.store("u", message("m")).await.unwrap());
    assert_eq!(store.len("u"), 1);
}
