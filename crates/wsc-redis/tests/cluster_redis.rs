//! The shared cross-node scenarios (`wsc_testkit::cluster`) on Redis: three hubs in one
//! process, each with its own `RedisBackplane`, under a random key prefix. Plus what is
//! particular to Redis: a user on no node is stored in the shared offline store and
//! replayed on whichever node the user connects to; a stopped node leaves the registry at
//! once; an ack that never comes is stored in the shared store.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::{Cluster, TIMEOUT, next_message};
use wsc_hub::{HubMessage, Identity};
use wsc_testkit::cluster;

/// The scenarios every backplane passes (`wsc_testkit::cluster`), over three hubs on Redis.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let cluster = Cluster::start(&["a", "b", "c"]).await;
            cluster::$name([cluster.hub(0), cluster.hub(1), cluster.hub(2)]).await;
            cluster.finish().await;
        }
    )*};
}

scenarios!(
    a_user_send_reaches_each_device_on_other_nodes_once,
    a_broadcast_reaches_every_node_once,
    a_scoped_broadcast_stays_in_its_app_on_every_node,
    a_ticket_send_reaches_its_connections_on_other_nodes,
    presence_names_the_nodes_of_a_user,
    a_kick_closes_the_user_on_every_node_after_the_notice,
    group_membership_made_on_one_node_routes_on_another,
    an_acknowledged_send_is_acked_by_a_connection_on_another_node,
    a_resend_reaches_the_other_node_too,
    an_acknowledged_send_to_a_connection_on_another_node,
);

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
async fn an_ack_that_never_comes_is_stored_in_the_shared_store_and_replayed_elsewhere() {
    let cluster = Cluster::start(&["a", "b", "c"]).await;
    let store = cluster.backplanes[0].offline_store(100, Duration::from_secs(60));
    for hub in &cluster.hubs {
        hub.set_offline_store(Some(Arc::new(store.clone())));
    }
    let hubs = [cluster.hub(0), cluster.hub(1), cluster.hub(2)];
    cluster::an_ack_that_never_comes_is_stored_offline_and_reported_on_the_origin(hubs, hubs[2])
        .await;
    cluster.finish().await;
}
