//! The shared cross-node scenarios (`wsc_testkit::cluster`) on Redis: three hubs in one
//! process, each with its own `RedisBackplane`, under a random key prefix. Plus what is
//! particular to Redis (`support/scenarios.rs`, also run on a Redis Cluster by
//! `cluster_mode.rs`): a user on no node is stored in the shared offline store and replayed
//! on whichever node the user connects to; a stopped node leaves the registry at once; an
//! ack that never comes is stored in the shared store.

mod support;

use support::Cluster;
use support::scenarios::{self, NODES};

// The scenarios every backplane passes (`wsc_testkit::cluster`), over three hubs on Redis.
wsc_testkit::cross_node_scenarios!(
    #[tokio::test]
    |run| {
        let cluster = Cluster::start(NODES).await;
        run([cluster.hub(0), cluster.hub(1), cluster.hub(2)]).await;
        cluster.finish().await;
    }
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
