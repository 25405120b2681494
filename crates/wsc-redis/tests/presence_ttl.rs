//! Presence and the node registry age out by their TTLs: a node that stops renewing (it
//! crashed: dropped without detach) disappears within one node TTL, a live node stays as
//! long as it renews, and detach removes a node at once.

mod support;

use std::time::{Duration, Instant};

use support::{eventually, require_redis};
use tokio::sync::mpsc;
use wsc_hub::{Backplane, Envelope, UserPage};
use wsc_redis::{RedisBackplane, RedisOptions};

#[tokio::test]
async fn a_node_killed_without_detach_leaves_presence_within_one_node_ttl() {
    require_redis().await;
    let ttl = Duration::from_secs(1);
    let options = support::options().with_node_ttl(ttl).with_presence_ttl(ttl);
    let (survivor, _envelopes_s) = attached(&options, "survivor").await;
    let (crashed, _envelopes_c) = attached(&options, "crashed").await;
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
    assert_eq!(users(&survivor).await, ["ann", "zed"]);

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
    assert_eq!(users(&survivor).await, ["ann"]);
    assert_eq!(survivor.online_users(0, 0).await.unwrap().total, 1);
    assert_eq!(survivor.nodes().await.unwrap(), ["survivor"]);

    // The live node renews: it stays present for several TTLs in a row.
    let until = Instant::now() + ttl * 3;
    while Instant::now() < until {
        assert_eq!(survivor.nodes().await.unwrap(), ["survivor"]);
        assert_eq!(survivor.user_nodes("ann").await.unwrap(), ["survivor"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The crashed node's presence set was removed with it: nothing is left behind.
    let mut raw = support::raw().await;
    let key = format!("{}{{presence}}:node:crashed:users", options.key_prefix);
    let exists: bool = redis::cmd("EXISTS")
        .arg(&key)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!exists, "{key} outlived its node");

    survivor.detach("survivor").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn detach_removes_a_node_and_its_users_at_once() {
    require_redis().await;
    let options = support::options();
    let (staying, _envelopes_s) = attached(&options, "staying").await;
    let (leaving, _envelopes_l) = attached(&options, "leaving").await;
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
    assert_eq!(
        staying.online_users(0, 10).await.unwrap(),
        UserPage::default()
    );
    assert!(!leaving.stats().subscribed);
    assert_eq!(leaving.node_id(), None);

    staying.detach("staying").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn a_user_who_went_offline_is_no_longer_listed() {
    require_redis().await;
    let options = support::options();
    let (node, _envelopes) = attached(&options, "n1").await;
    node.set_user_online("n1", "bob", true).await.unwrap();
    node.set_user_online("n1", "amy", true).await.unwrap();
    assert_eq!(users(&node).await, ["amy", "bob"]);
    node.set_user_online("n1", "bob", false).await.unwrap();
    assert_eq!(users(&node).await, ["amy"]);
    assert!(node.user_nodes("bob").await.unwrap().is_empty());
    assert!(node.health().await.is_ok());
    node.detach("n1").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

/// A backplane attached as `node`, with the receiving end of its inbox.
async fn attached(
    options: &RedisOptions,
    node: &str,
) -> (RedisBackplane, mpsc::Receiver<Envelope>) {
    let backplane = RedisBackplane::connect(options.clone()).await.unwrap();
    let (inbox, envelopes) = mpsc::channel(16);
    backplane.attach(node, inbox).await.unwrap();
    (backplane, envelopes)
}

/// Every online user (one page big enough for the test).
async fn users(backplane: &RedisBackplane) -> Vec<String> {
    let page = backplane.online_users(0, 1000).await.unwrap();
    assert_eq!(page.total, page.users.len());
    page.users
}

#[tokio::test]
async fn the_online_list_pages_in_name_order_and_counts_each_user_once() {
    require_redis().await;
    let options = support::options();
    let (a, _envelopes_a) = attached(&options, "a").await;
    let (b, _envelopes_b) = attached(&options, "b").await;
    for user in ["u3", "u1", "u5", "u2"] {
        a.set_user_online("a", user, true).await.unwrap();
    }
    for user in ["u4", "u1", "u2"] {
        b.set_user_online("b", user, true).await.unwrap();
    }
    let page = |offset, limit| a.online_users(offset, limit);
    assert_eq!(
        page(0, 2).await.unwrap(),
        UserPage::new(5, names(&["u1", "u2"]))
    );
    assert_eq!(
        page(2, 2).await.unwrap(),
        UserPage::new(5, names(&["u3", "u4"]))
    );
    assert_eq!(page(4, 2).await.unwrap(), UserPage::new(5, names(&["u5"])));
    assert_eq!(page(9, 2).await.unwrap(), UserPage::new(5, vec![]));
    assert_eq!(page(0, 0).await.unwrap(), UserPage::new(5, vec![]));
    assert_eq!(page(3, usize::MAX).await.unwrap().users, ["u4", "u5"]);

    // u1 leaves one of its two nodes: still online. u4 leaves its only node: gone.
    a.set_user_online("a", "u1", false).await.unwrap();
    b.set_user_online("b", "u4", false).await.unwrap();
    assert_eq!(users(&b).await, ["u1", "u2", "u3", "u5"]);

    // b leaves: users only b had go, users a has too stay.
    b.detach("b").await.unwrap();
    assert_eq!(users(&a).await, ["u2", "u3", "u5"]);
    a.detach("a").await.unwrap();
    assert_eq!(a.online_users(0, 10).await.unwrap(), UserPage::default());
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn presence_written_out_of_order_ends_in_the_latest_report() {
    require_redis().await;
    let options = support::options();
    let (node, _envelopes) = attached(&options, "n1").await;
    node.set_user_online("n1", "bob", true).await.unwrap();
    // bob's last connection closes and a new one opens at once; the two writes then run
    // in the opposite order, as two tasks may.
    let went = node.set_user_online("n1", "bob", false);
    let came = node.set_user_online("n1", "bob", true);
    came.await.unwrap();
    went.await.unwrap();
    assert_eq!(users(&node).await, ["bob"]);
    assert_eq!(node.user_nodes("bob").await.unwrap(), ["n1"]);
    node.detach("n1").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

#[tokio::test]
async fn presence_lost_with_redis_data_is_written_again_by_the_next_renewal() {
    require_redis().await;
    let ttl = Duration::from_millis(600);
    let options = support::options().with_node_ttl(ttl).with_presence_ttl(ttl);
    let (node, _envelopes) = attached(&options, "n1").await;
    node.set_user_online("n1", "amy", true).await.unwrap();
    node.set_user_online("n1", "bob", true).await.unwrap();
    // Redis loses every key of the cluster (a restart without persistence).
    support::cleanup(&options.key_prefix).await;
    // The next renewal (a third of the TTL) writes the node, its users and the counts.
    eventually("presence written again", ttl, || async {
        node.online_users(0, 10).await.unwrap() == UserPage::new(2, names(&["amy", "bob"]))
    })
    .await;
    assert_eq!(node.user_nodes("amy").await.unwrap(), ["n1"]);
    node.detach("n1").await.unwrap();
    support::cleanup(&options.key_prefix).await;
}

fn names(users: &[&str]) -> Vec<String> {
    users.iter().map(|u| u.to_string()).collect()
}
