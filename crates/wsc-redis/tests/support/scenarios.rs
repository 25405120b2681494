//! The cross-node scenarios particular to Redis, written once and run on one Redis
//! (`cluster_redis.rs`, `history_redis.rs`) and on a Redis Cluster (`cluster_mode.rs`): the
//! shared offline store, the registry, the shared history. The scenarios every backplane
//! passes live in `wsc_testkit::cluster`. Each takes started hubs named `a`, `b` and `c`
//! ([`NODES`]).

use std::sync::Arc;
use std::time::Duration;

use wsc_hub::{HubMessage, Identity};
use wsc_testkit::cluster;

use super::{Cluster, TIMEOUT, next_message};

/// The nodes of every scenario.
pub(crate) const NODES: &[&str] = &["a", "b", "c"];

/// A send to a user on no node is stored in the shared store and replayed when the user
/// connects to another node.
pub(crate) async fn a_user_on_no_node_is_stored_in_the_shared_store_and_replayed_on_another_node(
    cluster: &Cluster,
) {
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
}

/// A stopped node leaves the registry and presence at once; sends to its user are stored.
pub(crate) async fn a_stopped_node_leaves_the_cluster_at_once(cluster: &Cluster) {
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
}

/// An acknowledged send whose ack never comes is stored in the shared store, and the origin
/// reports it.
pub(crate) async fn an_ack_that_never_comes_is_stored_in_the_shared_store_and_replayed_elsewhere(
    cluster: &Cluster,
) {
    let store = cluster.backplanes[0].offline_store(100, Duration::from_secs(60));
    for hub in &cluster.hubs {
        hub.set_offline_store(Some(Arc::new(store.clone())));
    }
    let hubs = [cluster.hub(0), cluster.hub(1), cluster.hub(2)];
    cluster::an_ack_that_never_comes_is_stored_offline_and_reported_on_the_origin(hubs, hubs[2])
        .await;
}

/// Numbers given on two nodes form one sequence, and a client resumes on another node with
/// the messages it missed.
pub(crate) async fn a_client_resumes_on_another_node_with_the_numbers_of_the_cluster(
    cluster: &Cluster,
) {
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let mut phone = a.register(Identity::new("dave")).await.unwrap();
    let mut seen = Vec::new();
    for (node, text) in [(a, "one"), (b, "two"), (a, "three")] {
        node.send_to_user("dave", HubMessage::text(text))
            .await
            .unwrap();
        let frame = next_message(&mut phone).await;
        seen.push((frame["seq_no"].as_i64().unwrap(), frame["content"].clone()));
    }
    assert_eq!(
        seen.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    drop(phone);
    let mut again = b
        .register(Identity::new("dave").with_last_seq(1))
        .await
        .unwrap();
    let mut frames = Vec::new();
    loop {
        let frame = next_message(&mut again).await;
        let done = frame["message_type"] == "recovered";
        frames.push(frame);
        if done {
            break;
        }
    }
    let (notice, replayed) = frames.split_last().unwrap();
    let contents: Vec<&str> = replayed
        .iter()
        .map(|f| f["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["two", "three"]);
    assert_eq!(notice["data"]["recovered"], true);
    assert_eq!(notice["data"]["latest_seq"], 3);
}
