//! The shared cross-node scenarios (`wsc_testkit::cluster`) on Redis: three hubs in one
//! process, each with its own `RedisBackplane`, under a random key prefix. Plus what is
//! particular to Redis (`support/scenarios.rs`, also run on a Redis Cluster by
//! `cluster_mode.rs`): a user on no node is stored in the shared offline store and replayed
//! on whichever node the user connects to; a stopped node leaves the registry at once; an
//! ack that never comes is stored in the shared store.

mod support;

use support::Cluster;
use support::scenarios::{self, NODES};
use wsc_testkit::cluster;

/// The scenarios every backplane passes (`wsc_testkit::cluster`), over three hubs on Redis.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let cluster = Cluster::start(NODES).await;
            cluster::$name([cluster.hub(0), cluster.hub(1), cluster.hub(2)]).await;
            cluster.finish().await;
        }
    )*};
}

scenarios!(
    a_user_send_reaches_each_device_on_other_nodes_once,
    a_broadcast_reaches_every_node_once,
    a_scoped_broadcast_stays_in_its_app_on_every_node,
    a_namespace_broadcast_stays_in_its_namespace_on_every_node,
    a_ticket_send_reaches_its_connections_on_other_nodes,
    presence_names_the_nodes_of_a_user,
    a_kick_closes_the_user_on_every_node_after_the_notice,
    group_membership_made_on_one_node_routes_on_another,
    an_acknowledged_send_is_acked_by_a_connection_on_another_node,
    a_resend_reaches_the_other_node_too,
    an_acknowledged_send_to_a_connection_on_another_node,
);

/// The scenarios particular to Redis (`support/scenarios.rs`), over three hubs on Redis.
macro_rules! redis_scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let cluster = Cluster::start(NODES).await;
            scenarios::$name(&cluster).await;
            cluster.finish().await;
        }
    )*};
}

redis_scenarios!(
    a_user_on_no_node_is_stored_in_the_shared_store_and_replayed_on_another_node,
    a_stopped_node_leaves_the_cluster_at_once,
    an_ack_that_never_comes_is_stored_in_the_shared_store_and_replayed_elsewhere,
);
