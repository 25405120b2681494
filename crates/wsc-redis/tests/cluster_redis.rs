//! The cross-node scenarios of `wsc-hub`'s `cluster_memory.rs`, on Redis: three hubs in one
//! process, each with its own `RedisBackplane`, under a random key prefix. User sends,
//! broadcasts, tickets, groups, kicks, presence and acks cross nodes; a user on no node is
//! stored in the shared offline store and replayed on whichever node the user connects to.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Cluster, TIMEOUT, next_message};
use wsc_hub::{BroadcastOptions, HubMessage, Identity};

#[tokio::test]
async fn a_user_send_reaches_each_device_on_other_nodes_once() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
    let mut phone = b
        .register(Identity::new("bob").with_device_id("phone"))
        .await
        .unwrap();
    let mut laptop = c
        .register(Identity::new("bob").with_device_id("laptop"))
        .await
        .unwrap();
    let report = a
        .send_to_user("bob", HubMessage::text("from a"))
        .await
        .unwrap();
    assert_eq!(
        (report.delivered, report.nodes, report.stored_offline),
        (0, 2, false),
        "{report:?}"
    );
    for (hub, device) in [(b, &mut phone), (c, &mut laptop)] {
        let frame = next_message(device).await;
        assert_eq!(frame["content"], "from a");
        assert_eq!(frame["receiver"], "bob");
        // Exactly once: a local message queued after it is the next frame.
        hub.send_to_connection(device.connection().client_id(), HubMessage::text("marker"))
            .await
            .unwrap();
        assert_eq!(next_message(device).await["content"], "marker");
    }
    cluster.finish().await;
}

#[tokio::test]
async fn a_user_on_no_node_is_stored_in_the_shared_store_and_replayed_on_another_node() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let store = cluster.backplanes[0].offline_store(100, Duration::from_secs(60));
    for hub in &cluster.hubs {
        hub.set_offline_store(Some(Arc::new(store.clone())));
    }
    let report = a
        .send_to_user("carol", HubMessage::text("later"))
        .await
        .unwrap();
    assert!(report.stored_offline, "{report:?}");
    assert_eq!(report.nodes, 0);
    let mut carol = b.register(Identity::new("carol")).await.unwrap();
    let frame = next_message(&mut carol).await;
    assert_eq!(frame["content"], "later");
    assert_eq!(frame["source"], "offline");
    cluster.finish().await;
}

#[tokio::test]
async fn a_broadcast_reaches_every_node_once() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
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
    for (hub, registration) in [(b, &mut on_b), (c, &mut on_c)] {
        let user = registration.connection().user_id().to_owned();
        hub.send_to_user(&user, HubMessage::text("marker"))
            .await
            .unwrap();
        assert_eq!(next_message(registration).await["content"], "marker");
    }
    cluster.finish().await;
}

#[tokio::test]
async fn a_scoped_broadcast_stays_in_its_app_on_every_node() {
    let cluster = Cluster::start(&["a", "b"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
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
    cluster.finish().await;
}

#[tokio::test]
async fn a_ticket_send_reaches_its_connections_on_other_nodes() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
    let mut agent = b
        .register(Identity::new("agent").with_tickets(["t-1"]))
        .await
        .unwrap();
    let mut other = c
        .register(Identity::new("other").with_tickets(["t-2"]))
        .await
        .unwrap();
    let report = a
        .send_to_ticket("t-1", HubMessage::text("about t-1"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "published to b and c: {report:?}");
    assert_eq!(next_message(&mut agent).await["content"], "about t-1");
    c.send_to_user("other", HubMessage::text("marker"))
        .await
        .unwrap();
    assert_eq!(
        next_message(&mut other).await["content"],
        "marker",
        "a connection of another ticket got the message"
    );
    cluster.finish().await;
}

#[tokio::test]
async fn presence_names_the_nodes_of_a_user() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
    let _bob_b = b.register(Identity::new("bob")).await.unwrap();
    let bob_c = c.register(Identity::new("bob")).await.unwrap();
    let _ann = a.register(Identity::new("ann")).await.unwrap();

    let presence = a.presence("bob").await.unwrap();
    assert!(presence.online);
    assert_eq!(presence.nodes, ["b", "c"]);
    assert!(presence.connections.is_empty());
    assert_eq!(a.cluster_online_users().await, ["ann", "bob"]);

    drop(bob_c);
    support::eventually("bob left c", TIMEOUT, || async {
        a.presence("bob").await.unwrap().nodes == ["b"]
    })
    .await;
    cluster.finish().await;
}

#[tokio::test]
async fn a_kick_closes_the_user_on_every_node_after_the_notice() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
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
    cluster.finish().await;
}

#[tokio::test]
async fn group_membership_made_on_one_node_routes_on_another() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    assert!(a.join_group("vip", "bob").unwrap());
    support::eventually("c learned the membership", TIMEOUT, || async {
        c.group_members("vip").unwrap() == ["bob"]
    })
    .await;
    let report = c
        .send_to_group("vip", HubMessage::text("members only"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 2, "published to a and b: {report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "members only");
    cluster.finish().await;
}

#[tokio::test]
async fn a_stopped_node_leaves_the_cluster_at_once() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let bob = b.register(Identity::new("bob")).await.unwrap();
    let stopping = {
        let b = b.clone();
        tokio::spawn(async move { b.stop(Duration::from_secs(5)).await })
    };
    tokio::time::timeout(TIMEOUT, bob.connection().closed())
        .await
        .unwrap();
    drop(bob);
    assert_eq!(stopping.await.unwrap(), 0);
    // No waiting for a TTL: detach removed b's entries.
    assert_eq!(cluster.backplanes[0].nodes().await.unwrap(), ["a", "c"]);
    assert!(!a.presence("bob").await.unwrap().online);
    let report = a.send_to_user("bob", HubMessage::text("x")).await.unwrap();
    assert!(report.stored_offline);
    cluster.finish().await;
}

#[tokio::test]
async fn an_acknowledged_send_is_acked_by_a_connection_on_another_node() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b) = (cluster.hub(0).clone(), cluster.hub(1));
    let mut bob = b
        .register(Identity::new("bob").with_client_id("bob-phone"))
        .await
        .unwrap();
    let send = tokio::spawn(async move {
        a.send_to_user_with_ack(
            "bob",
            HubMessage::text("ack me"),
            Duration::from_secs(30),
            0,
        )
        .await
    });
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
    let a = cluster.hub(0);
    assert_eq!(a.stats().acks_pending, 0);
    assert_eq!(a.stats().acks_confirmed, 1);
    cluster.finish().await;
}

#[tokio::test]
async fn a_cross_node_ack_that_never_comes_is_stored_in_the_shared_store_and_replayed_elsewhere() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let (a, b, c) = (cluster.hub(0), cluster.hub(1), cluster.hub(2));
    let store = cluster.backplanes[0].offline_store(100, Duration::from_secs(60));
    for hub in &cluster.hubs {
        hub.set_offline_store(Some(Arc::new(store.clone())));
    }
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
                Duration::from_millis(300),
                1,
            )
            .await
        })
    };
    let first = next_message(&mut bob).await;
    let second = next_message(&mut bob).await;
    assert_eq!(
        first["message_id"], second["message_id"],
        "the resend crossed too"
    );
    let report = tokio::time::timeout(TIMEOUT, send)
        .await
        .expect("settled in time")
        .unwrap()
        .unwrap();
    assert_eq!(report.outcomes[0].status, wsc_hub::AckStatus::StoredOffline);
    let message_id = first["message_id"].as_str().unwrap().to_owned();
    assert_eq!(*failures.lock().unwrap(), [(message_id.clone(), 2)]);

    drop(bob);
    let mut again = c.register(Identity::new("bob")).await.unwrap();
    let replayed = next_message(&mut again).await;
    assert_eq!(replayed["message_id"], message_id.as_str());
    assert_eq!(replayed["source"], "offline");
    cluster.finish().await;
}
