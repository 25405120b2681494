//! Presence and the node registry age out by their TTLs: a node that stops renewing (it
//! crashed: dropped without detach) disappears within one node TTL, a live node stays as
//! long as it renews, and detach removes a node at once.

mod support;

use std::time::{Duration, Instant};

use support::{eventually, require_redis};
use tokio::sync::mpsc;
use wsc_hub::Backplane;
use wsc_redis::RedisBackplane;

#[tokio::test]
async fn a_node_killed_without_detach_leaves_presence_within_one_node_ttl() {
    require_redis().await;
    let ttl = Duration::from_secs(1);
    let options = support::options().with_node_ttl(ttl).with_presence_ttl(ttl);
    let survivor = RedisBackplane::connect(options.clone()).await.unwrap();
    let crashed = RedisBackplane::connect(options.clone()).await.unwrap();
    let (inbox_s, _envelopes_s) = mpsc::channel(16);
    let (inbox_c, _envelopes_c) = mpsc::channel(16);
    survivor.attach("survivor", inbox_s).await.unwrap();
    crashed.attach("crashed", inbox_c).await.unwrap();
    survivor
        .set_user_online("survivor", "ann", true)
        .await
        .unwrap();
    crashed
        .set_user_online("crashed", "ann", true)
        .await
        .unwrap();
    crashed
        .set_user_online("crashed", "zed", true)
        .await
        .unwrap();
    assert_eq!(
        survivor.user_nodes("ann").await.unwrap(),
        ["crashed", "survivor"]
    );
    assert_eq!(survivor.online_users().await.unwrap(), ["ann", "zed"]);

    // No detach: its renewals and its subscription stop, as a killed process's would.
    let killed = Instant::now();
    drop(crashed);
    // Its last renewal was at most one TTL ago; the slack covers polling and round trips.
    eventually(
        "the crashed node left presence",
        ttl + Duration::from_millis(500),
        || async { survivor.user_nodes("zed").await.unwrap().is_empty() },
    )
    .await;
    assert!(killed.elapsed() <= ttl + Duration::from_millis(500));
    assert_eq!(survivor.user_nodes("ann").await.unwrap(), ["survivor"]);
    assert_eq!(survivor.online_users().await.unwrap(), ["ann"]);
    assert_eq!(survivor.nodes().await.unwrap(), ["survivor"]);

    // The live node renews: it stays present for several TTLs in a row.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert_eq!(survivor.nodes().await.unwrap(), ["survivor"]);
        assert_eq!(survivor.user_nodes("ann").await.unwrap(), ["survivor"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The crashed node's presence set expires by itself too: nothing is left behind.
    let mut raw = support::raw().await;
    let key = format!("{}node:crashed:users", options.key_prefix);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!exists, "{key} outlived its TTL");

    survivor.detach("survivor").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn detach_removes_a_node_and_its_users_at_once() {
    require_redis().await;
    let options = support::options();
    let staying = RedisBackplane::connect(options.clone()).await.unwrap();
    let leaving = RedisBackplane::connect(options.clone()).await.unwrap();
    let (inbox_s, _envelopes_s) = mpsc::channel(16);
    let (inbox_l, _envelopes_l) = mpsc::channel(16);
    staying.attach("staying", inbox_s).await.unwrap();
    leaving.attach("leaving", inbox_l).await.unwrap();
    leaving
        .set_user_online("leaving", "bob", true)
        .await
        .unwrap();
    assert_eq!(staying.user_nodes("bob").await.unwrap(), ["leaving"]);
    assert!(leaving.stats().subscribed);

    leaving.detach("leaving").await.unwrap();
    // With the default 30 s TTL, only detach can explain an immediate absence.
    assert_eq!(staying.nodes().await.unwrap(), ["staying"]);
    assert!(staying.user_nodes("bob").await.unwrap().is_empty());
    assert!(staying.online_users().await.unwrap().is_empty());
    assert!(!leaving.stats().subscribed);
    assert_eq!(leaving.node_id(), None);

    staying.detach("staying").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn a_user_who_went_offline_is_no_longer_listed() {
    require_redis().await;
    let options = support::options();
    let node = RedisBackplane::connect(options.clone()).await.unwrap();
    let (inbox, _envelopes) = mpsc::channel(16);
    node.attach("n1", inbox).await.unwrap();
    node.set_user_online("n1", "bob", true).await.unwrap();
    node.set_user_online("n1", "amy", true).await.unwrap();
    assert_eq!(node.online_users().await.unwrap(), ["amy", "bob"]);
    node.set_user_online("n1", "bob", false).await.unwrap();
    assert_eq!(node.online_users().await.unwrap(), ["amy"]);
    assert!(node.user_nodes("bob").await.unwrap().is_empty());
    assert!(node.health().await.is_ok());
    node.detach("n1").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}
