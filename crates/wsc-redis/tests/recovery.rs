//! Recovery without help: a pub/sub connection killed by the server comes back and
//! subscribes again; a Redis restarted empty gets the registry entries, presence and
//! subscriptions of the live nodes back, and cross-node sends work again.

mod support;

use std::time::{Duration, Instant};

use support::{Cluster, TIMEOUT, eventually, next_message, require_redis};
use wsc_hub::{Backplane, HubMessage, Identity};
use wsc_testkit::redis_server::RedisServer;

/// The id of the client connection named `name`, from `CLIENT LIST`.
async fn client_id(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> Option<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines().find_map(|line| {
        let field = |key: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(key).map(str::to_owned))
        };
        (field("name=").as_deref() == Some(name))
            .then(|| field("id="))
            .flatten()
    })
}

#[tokio::test]
async fn a_killed_pubsub_connection_subscribes_again_by_itself() {
    require_redis().await;
    let cluster = Cluster::start(&["a", "b"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let mut bob = b.register(Identity::new("bob")).await.unwrap();

    let name = format!("{}node:b", cluster.options.key_prefix);
    let mut raw = support::raw().await;
    let id = client_id(&mut raw, &name)
        .await
        .expect("b's pub/sub connection is named after its channel");
    let () = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query_async(&mut raw)
        .await
        .unwrap();

    let backplane = cluster.backplanes[1].clone();
    eventually("b subscribed again", TIMEOUT, || {
        let stats = backplane.stats();
        async move { stats.reconnects >= 1 && stats.subscribed }
    })
    .await;
    let again = client_id(&mut raw, &name).await.expect("a new connection");
    assert_ne!(again, id);

    let report = a
        .send_to_user("bob", HubMessage::text("after the kill"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 1, "{report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "after the kill");
    cluster.finish().await;
}

#[tokio::test]
async fn a_redis_restarted_empty_gets_presence_and_subscriptions_back() {
    let mut server = RedisServer::start();
    let ttl = Duration::from_secs(1);
    let mut options = support::options()
        .with_node_ttl(ttl)
        .with_presence_ttl(ttl)
        .with_connect_timeout(Duration::from_millis(500));
    options.url = server.url();
    let cluster = Cluster::start_with(options, &["a", "b"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    a.send_to_user("bob", HubMessage::text("before"))
        .await
        .unwrap();
    assert_eq!(next_message(&mut bob).await["content"], "before");

    server.kill();
    let started = Instant::now();
    let answer = cluster.backplanes[0].user_nodes("bob").await;
    assert!(answer.is_err(), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Local delivery does not depend on Redis.
    let local = b
        .send_to_user("bob", HubMessage::text("local"))
        .await
        .unwrap();
    assert_eq!(local.delivered, 1);
    assert_eq!(next_message(&mut bob).await["content"], "local");

    // Back, but empty: every key is gone. Nobody restarts anything.
    server.restart();
    let (probe, b_plane) = (cluster.backplanes[0].clone(), cluster.backplanes[1].clone());
    eventually(
        "registry, presence and subscriptions are back",
        TIMEOUT,
        || {
            let (probe, b_plane) = (probe.clone(), b_plane.clone());
            async move {
                probe.stats().subscribed
                    && b_plane.stats().subscribed
                    && probe.nodes().await.is_ok_and(|n| n == ["a", "b"])
                    && probe.user_nodes("bob").await.is_ok_and(|n| n == ["b"])
            }
        },
    )
    .await;
    let report = a
        .send_to_user("bob", HubMessage::text("after"))
        .await
        .unwrap();
    assert_eq!(report.nodes, 1, "{report:?}");
    assert_eq!(next_message(&mut bob).await["content"], "after");
    assert!(b_plane.stats().reconnects >= 1);
    assert!(b_plane.health().await.is_ok());
    cluster.finish().await;
}

#[tokio::test]
async fn messages_stored_while_a_node_was_out_of_presence_reach_its_connected_users() {
    require_redis().await;
    let ttl = Duration::from_secs(3);
    let options = support::options().with_node_ttl(ttl).with_presence_ttl(ttl);
    let cluster = Cluster::start_with(options.clone(), &["a", "b"]).await;
    let (a, b) = (cluster.hub(0), cluster.hub(1));
    for hub in [a, b] {
        let store = wsc_redis::RedisOfflineStore::connect(&options, 100, Duration::from_secs(60))
            .await
            .unwrap();
        hub.set_offline_store(Some(std::sync::Arc::new(store)));
    }
    let mut bob = b.register(Identity::new("bob")).await.unwrap();
    // b's registry entry expires as if b had stalled past its TTL (SIGSTOP): others reap it
    // with its users, and a send to bob meanwhile is stored offline although bob is still
    // connected to b.
    let nodes_key = format!("{}{{presence}}:nodes", options.key_prefix);
    let mut raw = support::raw().await;
    let mut stored = false;
    for attempt in 0..5 {
        let () = redis::cmd("ZADD")
            .arg(&nodes_key)
            .arg(0)
            .arg("b")
            .query_async(&mut raw)
            .await
            .unwrap();
        let report = a
            .send_to_user("bob", HubMessage::text(format!("while away {attempt}")))
            .await
            .unwrap();
        if report.stored_offline {
            stored = true;
            break;
        }
        // b renewed in between (and the message went live): try again.
        assert_eq!(
            next_message(&mut bob).await["content"],
            format!("while away {attempt}")
        );
    }
    assert!(stored, "b renewed before every send");
    // b's next renewal finds its users missing, writes them back, and replays what was
    // stored for them to the connections it has: bob gets it without reconnecting.
    let frame = next_message(&mut bob).await;
    assert!(
        frame["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("while away")),
        "{frame}"
    );
    assert_eq!(frame["source"], "offline");
    cluster.finish().await;
}
