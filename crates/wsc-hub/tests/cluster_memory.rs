//! Several hubs linked by the in-memory backplane: user sends, broadcasts, presence, kicks
//! and group membership cross nodes; scope holds across nodes; a user on no node is stored
//! offline where the send was made.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{TIMEOUT, next_message, wait_until};
use wsc_hub::{BroadcastOptions, Hub, HubConfig, HubMessage, Identity, MemoryBackplane};

/// Three started hubs (`a`, `b`, `c`) in one cluster.
fn cluster() -> (MemoryBackplane, [Hub; 3]) {
    let backplane = MemoryBackplane::new();
    let node = |name: &str| {
        let mut config = HubConfig::default();
        config.node_id = name.to_owned();
        let hub = Hub::new(config);
        hub.set_backplane(Arc::new(backplane.clone()));
        hub.start();
        hub
    };
    let hubs = [node("a"), node("b"), node("c")];
    (backplane, hubs)
}

#[tokio::test]
async fn a_user_send_reaches_the_node_where_the_user_is() {
    let (_, [a, b, _c]) = cluster();
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let report = a
        .send_to_user("bob", HubMessage::text("from a"))
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.nodes, report.stored_offline),
        (0, 1, false),
        "{report:?}"
    );
    let frame = next_message(&mut bob).await;
    assert_eq!(frame["content"], "from a");
    assert_eq!(frame["receiver"], "bob");
}

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
async fn a_broadcast_reaches_every_node_once() {
    let (_, [a, b, c]) = cluster();
    let mut on_a = a.register(Identity::new("u1")).await.unwrap();
    let mut on_b = b.register(Identity::new("u2")).await.unwrap();
    let mut on_c = c.register(Identity::new("u3")).await.unwrap();
    let report = a
        .broadcast(HubMessage::text("all"), BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!((report.delivered, report.nodes), (1, 3), "{report:?}");
    for registration in [&mut on_a, &mut on_b, &mut on_c] {
        assert_eq!(next_message(registration).await["content"], "all");
    }
    // Exactly once: a message queued after the broadcast is the next frame everywhere.
    for (hub, registration) in [(&b, &mut on_b), (&c, &mut on_c)] {
        let user = registration.connection().user_id().to_owned();
        hub.send_to_user(&user, HubMessage::text("marker"))
            .await
            .unwrap();
        assert_eq!(next_message(registration).await["content"], "marker");
    }
}

#[tokio::test]
async fn a_scoped_broadcast_stays_in_its_app_on_every_node() {
    let (_, [a, b, _c]) = cluster();
    let mut app_a = b
        .register(Identity::new("x").with_scope("appA", ""))
        .await
        .unwrap();
    let mut app_b = b
        .register(Identity::new("y").with_scope("appB", ""))
        .await
        .unwrap();
    a.broadcast(
        HubMessage::text("only A"),
        BroadcastOptions::scoped("appA", ""),
    )
    .await
    .unwrap();
    assert_eq!(next_message(&mut app_a).await["content"], "only A");
    b.send_to_user("y", HubMessage::text("marker"))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut app_b).await["content"],
        "marker",
        "an app-B connection got an app-A broadcast"
    );
}

#[tokio::test]
async fn presence_names_the_nodes_of_a_user() {
    let (_, [a, b, c]) = cluster();
    let _bob_b = b.register(Identity::new("bob")).await.unwrap();
    let bob_c = c.register(Identity::new("bob")).await.unwrap();
    let _ann = a.register(Identity::new("ann")).await.unwrap();

    let presence = a.presence("bob").await.unwrap();
    assert!(presence.online);
    assert_eq!(presence.nodes, ["b", "c"]);
    assert!(
        presence.connections.is_empty(),
        "a holds none of bob's connections"
    );
    assert_eq!(a.cluster_online_users().await, ["ann", "bob"]);

    drop(bob_c);
    wait_until("bob left c", || c.online_user_count() == 0).await;
    let nodes = loop {
        let nodes = a.presence("bob").await.unwrap().nodes;
        if nodes.len() == 1 {
            break nodes;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(nodes, ["b"]);
}

#[tokio::test]
async fn a_kick_closes_the_user_on_every_node_after_the_notice() {
    let (_, [a, b, _c]) = cluster();
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let report = a.kick_user("bob", "banned", true).await.unwrap();
    assert_eq!(report.kicked, 0, "a had no connection of bob");
    let notice = next_message(&mut bob).await;
    assert_eq!(notice["message_type"], "kick_out");
    assert_eq!(notice["data"]["reason"], "banned");
    tokio::time::timeout(TIMEOUT, bob.connection().closed())
        .await
        .expect("bob is closed");
    assert!(!b.is_user_online("bob"));
}

#[tokio::test]
async fn group_membership_made_on_one_node_routes_on_another() {
    let (_, [a, b, c]) = cluster();
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    assert!(a.join_group("vip", "bob").unwrap());
    wait_until("c learned the membership", || {
        c.group_members("vip").unwrap() == ["bob"]
    })
    .await;
    let report = c
        .send_to_group("vip", HubMessage::text("members only"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "published to a and b: {report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "members only");
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

#[tokio::test]
async fn an_acknowledged_send_is_acked_by_a_connection_on_another_node() {
    let (_, [a, b, _c]) = cluster();
    let mut bob = b
        .register(Identity::new("bob").with_client_id("bob-phone"))
        .await
        .unwrap();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_user_with_ack(
                "bob",
                HubMessage::text("ack me"),
                Duration::from_secs(30),
                0,
            )
            .await
        })
    };
    let frame = next_message(&mut bob).await;
    assert_eq!(frame["content"], "ack me");
    assert_eq!(frame["require_ack"], true);
    let ack = serde_json::json!({"message_type": "ack", "message_id": frame["message_id"]});
    bob.handle_text(&ack.to_string()).await;

    let report = tokio::time::timeout(TIMEOUT, send)
        .await
        .expect("the ack crossed back in time")
        .unwrap()
        .unwrap();
    assert_eq!(
        report.outcomes[0].status,
        wsc_hub::AckStatus::Acked {
            client_id: "bob-phone".to_owned()
        }
    );
    assert_eq!(a.stats().acks_pending, 0);
    assert_eq!(a.stats().acks_confirmed, 1);
    // The ack matched remotely, and a repeated ack is a duplicate: bob got no
    // `unknown_ack` error frame for either.
    bob.handle_text(&ack.to_string()).await;
    b.send_to_user("bob", HubMessage::text("marker"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut bob).await["content"], "marker");
}

#[tokio::test(start_paused = true)]
async fn a_resend_reaches_the_other_node_too() {
    let (_, [a, b, _c]) = cluster();
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_user_with_ack("bob", HubMessage::text("again"), Duration::from_secs(1), 1)
                .await
        })
    };
    let first = next_message(&mut bob).await;
    // Not acked: after the timeout the same message (same id and seq_no) comes again.
    let second = next_message(&mut bob).await;
    assert_eq!(first["message_id"], second["message_id"]);
    assert_eq!(first["seq_no"], second["seq_no"]);
    let ack = serde_json::json!({"message_type": "ack", "message_id": second["message_id"]});
    bob.handle_text(&ack.to_string()).await;
    let report = send.await.unwrap().unwrap();
    assert!(matches!(
        report.outcomes[0].status,
        wsc_hub::AckStatus::Acked { .. }
    ));
    assert_eq!(report.outcomes[0].attempts, 2);
}

#[tokio::test(start_paused = true)]
async fn a_cross_node_ack_that_never_comes_is_stored_offline_and_reported_on_the_origin() {
    let (_, [a, b, _c]) = cluster();
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    a.on_ack_failed({
        let failures = failures.clone();
        move |msg: &HubMessage, failure: &wsc_hub::AckFailure| {
            failures
                .lock()
                .unwrap()
                .push((msg.message_id.clone(), failure.attempts));
        }
    });
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    let send = {
        let a = a.clone();
        tokio::spawn(async move {
            a.send_to_user_with_ack(
                "bob",
                HubMessage::text("ignored"),
                Duration::from_secs(1),
                1,
            )
            .await
        })
    };
    // Bob's node delivers both attempts; bob never acks.
    let first = next_message(&mut bob).await;
    let second = next_message(&mut bob).await;
    assert_eq!(first["message_id"], second["message_id"]);
    let report = send.await.unwrap().unwrap();
    assert_eq!(report.outcomes[0].status, wsc_hub::AckStatus::StoredOffline);
    assert_eq!(report.outcomes[0].attempts, 2);
    let message_id = first["message_id"].as_str().unwrap().to_owned();
    assert_eq!(*failures.lock().unwrap(), [(message_id.clone(), 2)]);
    assert_eq!(
        b.stats().ack_failures,
        0,
        "only the origin reports the failure"
    );

    // The origin keeps it (each node has its own store here): bob gets it on connecting
    // there.
    drop(bob);
    let mut again = a.register(Identity::new("bob")).await.unwrap();
    let replayed = next_message(&mut again).await;
    assert_eq!(replayed["message_id"], message_id.as_str());
    assert_eq!(replayed["source"], "offline");
}
