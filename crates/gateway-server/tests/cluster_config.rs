//! Two gateway servers configured onto a local Redis Cluster (`wsc.redis.cluster_urls`):
//! a message sent through one server's API reaches a client of the other, with its
//! cluster-wide `seq_no`, and presence names the other node.

mod support;

use std::time::{Duration, Instant};

use support::{WAIT, assert_nothing_pending, connect, get, local_config, next_json, post, start};
use wsc_testkit::redis_cluster::RedisCluster;

fn node(name: &str, cluster: &RedisCluster, prefix: &str) -> wsc_config::GatewayConfig {
    let mut config = local_config();
    config.wsc.redis.enabled = true;
    config.wsc.redis.cluster_urls = cluster.urls();
    config.wsc.redis.connect_timeout = Duration::from_secs(2);
    config.wsc.distributed.enabled = true;
    config.wsc.distributed.node_id = name.to_owned();
    config.wsc.distributed.key_prefix = prefix.to_owned();
    config
}

#[tokio::test]
async fn two_servers_on_a_redis_cluster_route_to_each_other() {
    let cluster = RedisCluster::shared();
    let prefix = format!("cfg{}:", std::process::id());
    let one = start(node("one", cluster, &prefix)).await;
    let two = start(node("two", cluster, &prefix)).await;
    for server in [&one, &two] {
        let deadline = Instant::now() + WAIT;
        while get(server.api_addr(), "/ready").await.0 != 200 {
            assert!(Instant::now() < deadline, "not ready on the cluster");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut alice = connect(two.public_addr(), "user_id=alice").await;
    assert_nothing_pending(&mut alice, "joined").await;

    let (status, presence) = get(one.api_addr(), "/api/v1/users/alice/presence").await;
    assert_eq!(
        (status, presence["nodes"].clone()),
        (200, serde_json::json!(["two"]))
    );
    let (status, report) = post(
        one.api_addr(),
        "/api/v1/users/alice/messages",
        r#"{"content":"via the cluster"}"#,
    )
    .await;
    assert_eq!(
        (status, report["nodes"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    let frame = next_json(&mut alice).await;
    assert_eq!(
        (frame["content"].as_str(), frame["seq_no"].as_i64()),
        (Some("via the cluster"), Some(1))
    );

    one.stop(WAIT).await;
    two.stop(WAIT).await;
}
