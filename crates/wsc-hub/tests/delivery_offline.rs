//! The offline store: a final ack failure is stored and replayed on reconnect (marked
//! `source: "offline"`, `data.offline: true`) until acked; fire-and-forget messages to an
//! offline user are replayed before any live message and deleted once written; the memory
//! store's per-user cap and TTL.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use support::{TestServer, ack_frame, contents, drain_messages as drain, started, wait_until};
use tokio::sync::Semaphore;
use wsc_hub::{
    AckFailure, AckStatus, BoxFuture, Hub, HubConfig, HubMessage, Identity, MemoryOfflineStore,
    OfflineStore, StoreError,
};

/// A hub whose offline store is `store` (the test keeps an `Arc` to inspect it).
fn hub_with_store(store: &Arc<MemoryOfflineStore>) -> Hub {
    let hub = started(HubConfig::default());
    hub.set_offline_store(Some(store.clone()));
    hub
}

fn assert_replayed(frame: &Value) {
    assert_eq!(
        frame["source"], "offline",
        "not marked as replayed: {frame}"
    );
    assert_eq!(frame["data"]["offline"], true, "no data.offline: {frame}");
}

/// Lets spawned tasks run (no timers involved); fails after a bounded number of turns.
async fn settle(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if condition() {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("never happened: {what}");
}

// 7.
#[tokio::test(start_paused = true)]
async fn failed_ack_is_stored_and_replayed_until_acked() {
    let store = Arc::new(MemoryOfflineStore::new(10, Duration::from_secs(3600)));
    let hub = hub_with_store(&store);
    let failures: Arc<Mutex<Vec<(HubMessage, AckFailure)>>> = Arc::default();
    let sink = failures.clone();
    hub.on_ack_failed(move |msg, failure| sink.lock().push((msg.clone(), failure.clone())));

    let mut first = hub
        .register(Identity::new("alice").with_client_id("a1"))
        .await
        .unwrap();
    let report = hub
        .send_to_user_with_ack(
            "alice",
            HubMessage::text("important"),
            Duration::from_secs(1),
            1,
        )
        .await
        .unwrap();
    assert_eq!(report.outcomes[0].status, AckStatus::StoredOffline);
    assert_eq!(report.outcomes[0].attempts, 2);
    {
        let failures = failures.lock();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0].0.message_id, report.message_id);
        assert_eq!(failures[0].1.attempts, 2);
        assert!(failures[0].1.stored_offline);
    }
    assert_eq!(store.len("alice"), 1);
    let live_copies = drain(&mut first);
    assert_eq!(live_copies.len(), 2, "{live_copies:?}");
    let original = live_copies[0].clone();
    drop(first);

    // Reconnect and do not ack (even though the transport "wrote" it): replayed again.
    for round in 0..2 {
        let mut again = hub
            .register(Identity::new("alice").with_client_id(format!("r{round}")))
            .await
            .unwrap();
        let frames = drain(&mut again);
        assert_eq!(frames.len(), 1, "round {round}: {frames:?}");
        let replay = &frames[0];
        assert_replayed(replay);
        assert_eq!(replay["require_ack"], true, "{replay}");
        assert_eq!(replay["message_id"], report.message_id.as_str(), "{replay}");
        assert_eq!(replay["seq_no"], original["seq_no"], "{replay}");
        assert_eq!(replay["content"], "important", "{replay}");
        again.record_written(1, 100);
        tokio::task::yield_now().await;
        assert_eq!(
            store.len("alice"),
            1,
            "round {round}: an unacked message left the store"
        );
        drop(again);
    }

    // Reconnect and ack: gone from the store, and not replayed any more.
    let mut acking = hub
        .register(Identity::new("alice").with_client_id("acker"))
        .await
        .unwrap();
    let frames = drain(&mut acking);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_replayed(&frames[0]);
    acking.handle_text(&ack_frame(&report.message_id)).await;
    settle("the acked message left the store", || {
        store.is_empty("alice")
    })
    .await;
    assert!(drain(&mut acking).is_empty(), "the ack was answered");
    drop(acking);

    let mut last = hub.register(Identity::new("alice")).await.unwrap();
    assert!(drain(&mut last).is_empty(), "replayed after its ack");

    let stats = hub.stats();
    assert_eq!(stats.offline_stored, 1, "{stats:?}");
    assert_eq!(stats.offline_replayed, 3, "{stats:?}");
    assert_eq!(stats.acks_confirmed, 1, "{stats:?}");
    assert_eq!(stats.ack_failures, 1, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert_eq!(stats.invalid_frames, 0, "{stats:?}");
    assert_eq!(failures.lock().len(), 1, "the callback fired again");
}

// 8. (bare registrations: the store keeps replayed fire-and-forget messages until written)
#[tokio::test]
async fn offline_messages_precede_live_ones_and_leave_once_written() {
    let store = Arc::new(MemoryOfflineStore::default());
    let hub = hub_with_store(&store);
    for content in ["off-1", "off-2"] {
        let report = hub
            .send_to_user("bob", HubMessage::text(content))
            .await
            .unwrap();
        assert!(report.stored_offline, "{report:?}");
        assert_eq!(report.delivered, 0, "{report:?}");
    }
    assert_eq!(store.len("bob"), 2);

    let mut bob = hub.register(Identity::new("bob")).await.unwrap();
    let live = hub
        .send_to_user("bob", HubMessage::text("live"))
        .await
        .unwrap();
    assert_eq!(live.delivered, 1);
    assert!(!live.stored_offline);

    let frames = drain(&mut bob);
    assert_eq!(contents(&frames), ["off-1", "off-2", "live"], "{frames:?}");
    assert_replayed(&frames[0]);
    assert_replayed(&frames[1]);
    assert_ne!(frames[2]["source"], "offline", "{}", frames[2]);
    assert!(frames[0]["require_ack"].is_null(), "{}", frames[0]);
    let seqs: Vec<i64> = frames
        .iter()
        .map(|f| f["seq_no"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);

    // Handed to the transport is not written yet.
    assert_eq!(store.len("bob"), 2, "deleted before it was written");
    bob.record_written(3, 300);
    settle("written offline messages left the store", || {
        store.is_empty("bob")
    })
    .await;
    assert_eq!(hub.stats().offline_replayed, 2);
}

// 8. (over a real WebSocket: the writer reports the write)
#[tokio::test]
async fn offline_messages_over_websocket_are_replayed_first_and_deleted() {
    let store = Arc::new(MemoryOfflineStore::default());
    let hub = Hub::new(HubConfig::default());
    hub.set_offline_store(Some(store.clone()));
    let server = TestServer::serve(hub.clone()).await;
    for content in ["off-1", "off-2", "off-3"] {
        let report = hub
            .send_to_user("carol", HubMessage::text(content))
            .await
            .unwrap();
        assert!(report.stored_offline);
        assert_eq!(report.delivered, 0);
    }

    let mut carol = server.connect("user_id=carol").await;
    wait_until("carol is registered", || hub.is_user_online("carol")).await;
    let live = hub
        .send_to_user("carol", HubMessage::text("live"))
        .await
        .unwrap();
    assert_eq!(live.delivered, 1);

    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(carol.recv_json().await);
    }
    assert_eq!(
        contents(&frames),
        ["off-1", "off-2", "off-3", "live"],
        "{frames:?}"
    );
    for frame in &frames[..3] {
        assert_replayed(frame);
    }
    assert_ne!(frames[3]["source"], "offline");
    wait_until("written offline messages left the store", || {
        store.is_empty("carol")
    })
    .await;
    carol.assert_nothing_received().await;
    carol.close(1000).await;

    // Nothing is replayed on the next connect.
    let mut again = server.connect_ready("user_id=carol").await;
    again.assert_nothing_received().await;
}

// 9. (per-user cap)
#[tokio::test]
async fn per_user_cap_keeps_the_newest_messages() {
    let store = Arc::new(MemoryOfflineStore::new(3, Duration::from_secs(3600)));
    let hub = hub_with_store(&store);
    for i in 1..=5 {
        let report = hub
            .send_to_user("dave", HubMessage::text(format!("m{i}")))
            .await
            .unwrap();
        assert!(report.stored_offline);
    }
    assert_eq!(store.len("dave"), 3);
    assert_eq!(store.dropped(), 2);
    let stats = hub.stats();
    assert_eq!(stats.offline_dropped, 2, "{stats:?}");
    assert_eq!(stats.offline_stored, 5, "{stats:?}");

    let mut dave = hub.register(Identity::new("dave")).await.unwrap();
    let frames = drain(&mut dave);
    assert_eq!(contents(&frames), ["m3", "m4", "m5"], "{frames:?}");
    assert_eq!(hub.stats().offline_replayed, 3);
}

// 9. (TTL)
#[tokio::test(start_paused = true)]
async fn expired_offline_messages_are_dropped() {
    let store = Arc::new(MemoryOfflineStore::new(10, Duration::from_secs(10)));
    let hub = hub_with_store(&store);
    hub.send_to_user("erin", HubMessage::text("old"))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    hub.send_to_user("erin", HubMessage::text("young"))
        .await
        .unwrap();
    assert_eq!(store.len("erin"), 2);
    tokio::time::advance(Duration::from_secs(5)).await;
    // 11 s after "old", 5 s after "young".
    assert_eq!(store.len("erin"), 1);

    let mut erin = hub.register(Identity::new("erin")).await.unwrap();
    let frames = drain(&mut erin);
    assert_eq!(contents(&frames), ["young"], "{frames:?}");
    assert_eq!(store.dropped(), 1);
    assert_eq!(hub.stats().offline_dropped, 1);
    drop(erin);

    tokio::time::advance(Duration::from_secs(10)).await;
    let mut erin = hub.register(Identity::new("erin")).await.unwrap();
    assert!(
        drain(&mut erin).is_empty(),
        "an expired message was replayed"
    );
    assert_eq!(store.dropped(), 2);
    assert_eq!(hub.stats().offline_dropped, 2);
}

/// A memory store whose `load` or `store` can be held at a gate, to force the interleavings
/// of a registration with a concurrent send.
struct GatedStore {
    inner: Arc<MemoryOfflineStore>,
    gate_loads: AtomicBool,
    gate_stores: AtomicBool,
    loads: Arc<AtomicUsize>,
    stores: Arc<AtomicUsize>,
    gate: Arc<Semaphore>,
}

impl GatedStore {
    fn new() -> Arc<Self> {
        Arc::new(GatedStore {
            inner: Arc::new(MemoryOfflineStore::default()),
            gate_loads: AtomicBool::new(false),
            gate_stores: AtomicBool::new(false),
            loads: Arc::default(),
            stores: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        })
    }
}

impl OfflineStore for GatedStore {
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<bool, StoreError>> {
        let (inner, gate, user) = (self.inner.clone(), self.gate.clone(), user_id.to_owned());
        let gated = self.gate_stores.swap(false, Ordering::SeqCst);
        self.stores.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            if gated {
                gate.acquire().await.expect("gate").forget();
            }
            inner.store(&user, message).await
        })
    }

    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>> {
        // The snapshot is taken now; a gated load returns it only once released.
        let snapshot = self.inner.load(user_id);
        let gate = self.gate.clone();
        let gated = self.gate_loads.swap(false, Ordering::SeqCst);
        self.loads.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let messages = snapshot.await;
            if gated {
                gate.acquire().await.expect("gate").forget();
            }
            messages
        })
    }

    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>> {
        self.inner.remove(user_id, message_ids)
    }
}

/// A message stored while the user's registration is loading its offline messages is still
/// replayed on that connection, ahead of live messages.
#[tokio::test]
async fn message_stored_during_registration_is_replayed_before_live() {
    let store = GatedStore::new();
    let hub = started(HubConfig::default());
    hub.set_offline_store(Some(store.clone()));
    store.gate_loads.store(true, Ordering::SeqCst);

    let registering = tokio::spawn({
        let hub = hub.clone();
        async move { hub.register(Identity::new("fay")).await.unwrap() }
    });
    let loads = store.loads.clone();
    wait_until("the registration loads offline messages", || {
        loads.load(Ordering::SeqCst) == 1
    })
    .await;
    // The first load saw an empty store; the user is not reachable yet.
    let report = hub
        .send_to_user("fay", HubMessage::text("during"))
        .await
        .unwrap();
    assert!(report.stored_offline, "{report:?}");
    store.gate.add_permits(1);
    let mut fay = registering.await.unwrap();
    hub.send_to_user("fay", HubMessage::text("live"))
        .await
        .unwrap();

    let frames = drain(&mut fay);
    assert_eq!(contents(&frames), ["during", "live"], "{frames:?}");
    assert_replayed(&frames[0]);
}

/// A send that found the user offline but whose store write completes only after the user
/// connected: the message must still reach the user's live connection, not wait in the
/// store for some later reconnect.
#[tokio::test]
async fn message_stored_after_the_user_connected_is_not_stranded() {
    let store = GatedStore::new();
    let hub = started(HubConfig::default());
    hub.set_offline_store(Some(store.clone()));
    store.gate_stores.store(true, Ordering::SeqCst);

    let sending = tokio::spawn({
        let hub = hub.clone();
        async move { hub.send_to_user("gus", HubMessage::text("in flight")).await }
    });
    let stores = store.stores.clone();
    wait_until("the send writes to the store", || {
        stores.load(Ordering::SeqCst) == 1
    })
    .await;
    // The user connects while the store write is in flight (a slow Redis, say).
    let mut gus = hub.register(Identity::new("gus")).await.unwrap();
    store.gate.add_permits(1);
    let report = sending.await.unwrap().unwrap();
    assert!(report.stored_offline, "{report:?}");
    assert_eq!(report.delivered, 0);

    let frames = drain(&mut gus);
    assert_eq!(
        contents(&frames),
        ["in flight"],
        "the message sits in the offline store (len {}) while its user is connected",
        store.inner.len("gus")
    );
    assert_replayed(&frames[0]);
}

/// The same late store, but the connection ends before its transport wrote the message: a
/// fire-and-forget offline message leaves the store only once written, so the next connect
/// still gets it.
#[tokio::test]
async fn late_stored_message_survives_a_connection_that_ends_before_writing_it() {
    let store = GatedStore::new();
    let hub = started(HubConfig::default());
    hub.set_offline_store(Some(store.clone()));
    store.gate_stores.store(true, Ordering::SeqCst);

    let sending = tokio::spawn({
        let hub = hub.clone();
        async move { hub.send_to_user("hal", HubMessage::text("in flight")).await }
    });
    let stores = store.stores.clone();
    wait_until("the send writes to the store", || {
        stores.load(Ordering::SeqCst) == 1
    })
    .await;
    let first = hub.register(Identity::new("hal")).await.unwrap();
    store.gate.add_permits(1);
    let report = sending.await.unwrap().unwrap();
    assert!(report.stored_offline, "{report:?}");
    // The transport dies before writing anything.
    drop(first);

    let mut second = hub.register(Identity::new("hal")).await.unwrap();
    let frames = drain(&mut second);
    assert_eq!(
        contents(&frames),
        ["in flight"],
        "deleted from the store before it was written: lost"
    );
    assert_replayed(&frames[0]);
    second.record_written(1, 100);
    settle("written, then deleted", || store.inner.is_empty("hal")).await;
}
