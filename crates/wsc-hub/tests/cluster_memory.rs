//! Several hubs linked by the in-memory backplane: the shared cross-node scenarios
//! (`wsc_testkit::cluster`: user sends, broadcasts, scope, tickets, presence, kicks, group
//! membership, acks and resends), plus what is particular to one process: a user on no
//! node is stored offline where the send was made, a stopped node leaves, an ack that
//! never comes is stored at the origin, and a node that dies mid-send adds no outcomes.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{TIMEOUT, ack_frame, next_message};
use wsc_hub::{
    AckStatus, Backplane, Envelope, Hub, HubConfig, HubMessage, Identity, MemoryBackplane,
    MemoryGroups, MemoryTickets,
};
use wsc_testkit::cluster;

/// Three started hubs (`a`, `b`, `c`) in one cluster.
fn cluster() -> (MemoryBackplane, [Hub; 3]) {
    let backplane = MemoryBackplane::new();
    // One group store and one ticket store for the three, as a cluster shares one Redis.
    let groups = Arc::new(MemoryGroups::new());
    let tickets = Arc::new(MemoryTickets::new());
    let node = |name: &str| {
        let mut config = HubConfig::default();
        config.node_id = name.to_owned();
        let hub = Hub::new(config);
        hub.set_backplane(Arc::new(backplane.clone()));
        hub.set_group_store(groups.clone());
        hub.set_ticket_store(tickets.clone());
        hub.start();
        hub
    };
    let hubs = [node("a"), node("b"), node("c")];
    (backplane, hubs)
}

// The scenarios every backplane passes (`wsc_testkit::cluster`), over three hubs linked in
// memory.
wsc_testkit::cross_node_scenarios!(
    #[tokio::test(start_paused = true)]
    |run| {
        let (_, [a, b, c]) = cluster();
        run([&a, &b, &c]).await;
    }
);

#[tokio::test]
async fn a_user_on_no_node_is_stored_offline_where_the_send_was_made() {
    let (_, [a, _b, _c]) = cluster();
    let report = a
        .send_to_user("carol", HubMessage::text("later"))
        .await
        .unwrap();
    assert!(report.stored_offline);
    assert_eq!(report.nodes, 0);
    // The store is a's own here; a store shared by every node comes with Redis.
    let mut carol = a.register(Identity::new("carol")).await.unwrap();
    assert_eq!(next_message(&mut carol).await["content"], "later");
}

#[tokio::test]
async fn a_stopped_node_leaves_the_cluster() {
    let (backplane, [a, b, _c]) = cluster();
    let bob = b.register(Identity::new("bob")).await.unwrap();
    assert_eq!(backplane.nodes(), ["a", "b", "c"]);
    let stopping = {
        let b = b.clone();
        tokio::spawn(async move { b.stop(Duration::from_secs(5)).await })
    };
    tokio::time::timeout(TIMEOUT, bob.connection().closed())
        .await
        .unwrap();
    drop(bob);
    assert_eq!(stopping.await.unwrap(), 0);
    assert_eq!(backplane.nodes(), ["a", "c"]);
    assert!(!a.presence("bob").await.unwrap().online);
    let report = a.send_to_user("bob", HubMessage::text("x")).await.unwrap();
    assert!(report.stored_offline);
}

#[tokio::test(start_paused = true)]
async fn an_ack_that_never_comes_is_stored_at_the_origin_and_replayed_there() {
    // Each node has its own in-memory store: the origin keeps the message.
    let (_, [a, b, c]) = cluster();
    cluster::an_ack_that_never_comes_is_stored_offline_and_reported_on_the_origin([&a, &b, &c], &a)
        .await;
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_mid_send_adds_no_outcomes_and_the_send_ends_after_one_timeout() {
    let (backplane, [a, b, _c]) = cluster();
    // A node that took the send and died before answering: attached, it never reads.
    let (ghost_inbox, mut ghost) = tokio::sync::mpsc::channel(16);
    backplane.attach("ghost", ghost_inbox).await.unwrap();
    let mut member = b
        .register(
            Identity::new("bob")
                .with_client_id("bob-b")
                .with_groups(["crew"]),
        )
        .await
        .unwrap();
    let timeout = Duration::from_secs(5);
    let started = tokio::time::Instant::now();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_group_with_ack("crew", HubMessage::text("all hands"), timeout, 0)
                .await
        })
    };
    let frame = next_message(&mut member).await;
    let id = frame["message_id"].as_str().unwrap().to_owned();
    member.handle_text(&ack_frame(&id)).await;
    let report = tokio::time::timeout(TIMEOUT, send)
        .await
        .expect("the send ends")
        .unwrap()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= timeout && took < timeout + Duration::from_millis(500),
        "the send ended after {took:?}, not after one timeout"
    );
    let outcomes: Vec<(String, AckStatus, u32)> = report
        .outcomes
        .into_iter()
        .map(|o| (o.target, o.status, o.attempts))
        .collect();
    let acked = AckStatus::Acked {
        client_id: "bob-b".to_owned(),
    };
    assert_eq!(outcomes, [("bob-b".to_owned(), acked, 1)]);
    assert_eq!(a.stats().ack_failures, 0);
    assert_eq!(a.stats().acks_pending, 0);
    // The dead node was handed the send (so the origin waited for it).
    assert!(
        matches!(ghost.try_recv(), Ok(Envelope::Message { .. })),
        "the dead node never got the send"
    );
}

/// An offline store shared by the nodes whose writes wait at a gate: a store that has begun
/// but not finished while another node admits the user.
struct GatedStore {
    inner: Arc<wsc_hub::MemoryOfflineStore>,
    gate: Arc<tokio::sync::Semaphore>,
    entered: Arc<tokio::sync::Notify>,
}

impl wsc_hub::OfflineStore for GatedStore {
    fn store(
        &self,
        user_id: &str,
        message: HubMessage,
    ) -> wsc_hub::BoxFuture<Result<bool, wsc_hub::StoreError>> {
        let (gate, entered, inner) = (self.gate.clone(), self.entered.clone(), self.inner.clone());
        let user_id = user_id.to_owned();
        Box::pin(async move {
            entered.notify_one();
            let _open = gate.acquire().await.expect("the gate stays");
            // The memory store writes when called: call it once the gate opens.
            inner.store(&user_id, message).await
        })
    }

    fn load(
        &self,
        user_id: &str,
    ) -> wsc_hub::BoxFuture<Result<Vec<HubMessage>, wsc_hub::StoreError>> {
        self.inner.load(user_id)
    }

    fn remove(
        &self,
        user_id: &str,
        message_ids: Vec<String>,
    ) -> wsc_hub::BoxFuture<Result<(), wsc_hub::StoreError>> {
        self.inner.remove(user_id, message_ids)
    }
}

#[tokio::test]
async fn a_message_stored_while_its_user_connects_on_another_node_reaches_that_connection() {
    let (_, [a, b, _c]) = cluster();
    let store = Arc::new(GatedStore {
        inner: Arc::new(wsc_hub::MemoryOfflineStore::new(
            100,
            Duration::from_secs(3600),
        )),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
        entered: Arc::new(tokio::sync::Notify::new()),
    });
    a.set_offline_store(Some(store.clone()));
    b.set_offline_store(Some(store.clone()));
    // a finds carol on no node and starts storing the message...
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_user("carol", HubMessage::text("in between"))
                .await
        })
    };
    tokio::time::timeout(TIMEOUT, store.entered.notified())
        .await
        .expect("the store write starts");
    // ...carol connects on b, whose replay reads the store before the write lands...
    let mut carol = b.register(Identity::new("carol")).await.unwrap();
    // ...and the write lands afterwards.
    store.gate.add_permits(1);
    let report = send.await.unwrap().unwrap();
    assert!(report.stored_offline);
    let frame = next_message(&mut carol).await;
    assert_eq!(frame["content"], "in between");
    assert_eq!(frame["source"], "offline");
}
