//! Groups on one node: membership belongs to the user (every device, across reconnects),
//! the limits refuse with typed errors and change nothing, concurrent joins never pass a
//! limit, a group message reaches members only, leaving and disbanding stop it, every
//! change is an event, and a store that cannot be reached refuses changes but never a
//! connection.

mod support;

use std::sync::Arc;

use support::{contents, drain_messages, started};
use wsc_hub::{
    BoxFuture, GroupError, GroupLimits, GroupStore, Hub, HubConfig, HubMessage, Identity,
    JoinOutcome, MemoryGroups, StoreError, events,
};

fn limited(max_group_size: usize, max_groups_per_user: usize) -> Hub {
    let mut config = HubConfig::default();
    config.max_group_size = max_group_size;
    config.max_groups_per_user = max_groups_per_user;
    started(config)
}

#[tokio::test]
async fn the_default_limits_are_ten_thousand_members_and_a_hundred_groups() {
    let config = HubConfig::default();
    assert_eq!(
        (config.max_group_size, config.max_groups_per_user),
        (10_000, 100)
    );
}

#[tokio::test]
async fn a_full_group_and_a_user_in_too_many_groups_are_refused_and_nothing_changes() {
    let hub = limited(2, 2);
    assert!(hub.join_group("g", "ann").await.unwrap());
    assert!(hub.join_group("g", "bob").await.unwrap());
    let full = hub.join_group("g", "cat").await.unwrap_err();
    assert_eq!(
        full,
        GroupError::GroupFull {
            group_id: "g".into(),
            limit: 2
        }
    );
    assert_eq!(full.code(), "group_full");
    assert_eq!(full.to_string(), "group g is full: at most 2 members");
    assert!(
        !hub.join_group("g", "ann").await.unwrap(),
        "a member is never refused"
    );

    assert!(hub.join_group("h", "ann").await.unwrap());
    let many = hub.join_group("i", "ann").await.unwrap_err();
    assert_eq!(
        many,
        GroupError::TooManyGroups {
            user_id: "ann".into(),
            limit: 2
        }
    );
    assert_eq!(many.code(), "too_many_groups");
    assert_eq!(
        many.to_string(),
        "user ann is in too many groups: at most 2"
    );

    assert_eq!(hub.group_members("g").await.unwrap(), ["ann", "bob"]);
    assert!(hub.group_members("i").await.unwrap().is_empty());
    assert_eq!(hub.user_groups("ann").await.unwrap(), ["g", "h"]);
    assert!(hub.user_groups("cat").await.unwrap().is_empty());
}

#[tokio::test]
async fn zero_means_no_limit() {
    let hub = limited(0, 0);
    for i in 0..150 {
        assert!(hub.join_group("big", &format!("u{i}")).await.unwrap());
        assert!(hub.join_group(&format!("g{i}"), "ann").await.unwrap());
    }
    assert_eq!(hub.group_members("big").await.unwrap().len(), 150);
    assert_eq!(hub.user_groups("ann").await.unwrap().len(), 150);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_never_pass_the_limits() {
    let hub = limited(5, 3);
    let joins: Vec<_> = (0..40)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.join_group("five", &format!("u{i}")).await })
        })
        .chain((0..10).map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move { hub.join_group(&format!("g{i}"), "ann").await })
        }))
        .collect();
    let mut joined = [0, 0];
    for (i, join) in joins.into_iter().enumerate() {
        if join.await.unwrap() == Ok(true) {
            joined[usize::from(i >= 40)] += 1;
        }
    }
    assert_eq!(joined, [5, 3]);
    assert_eq!(hub.group_members("five").await.unwrap().len(), 5);
    assert_eq!(hub.user_groups("ann").await.unwrap().len(), 3);
}

#[tokio::test]
async fn every_device_of_a_member_receives_and_a_non_member_never_does() {
    let hub = started(HubConfig::default());
    let mut phone = hub
        .register(Identity::new("ann").with_client_id("phone"))
        .await
        .unwrap();
    let mut laptop = hub
        .register(Identity::new("ann").with_client_id("laptop"))
        .await
        .unwrap();
    let mut outsider = hub.register(Identity::new("zed")).await.unwrap();
    assert!(hub.join_group("team", "ann").await.unwrap());
    let report = hub
        .send_to_group("team", HubMessage::text("standup"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    for device in [&mut phone, &mut laptop] {
        assert_eq!(contents(&drain_messages(device)), ["standup"]);
    }
    assert!(drain_messages(&mut outsider).is_empty());
}

#[tokio::test]
async fn membership_survives_reconnects_and_ends_with_a_leave() {
    let hub = started(HubConfig::default());
    assert!(
        hub.join_group("team", "ann").await.unwrap(),
        "joined offline"
    );
    let first = hub.register(Identity::new("ann")).await.unwrap();
    drop(first);
    assert!(!hub.is_user_online("ann"));
    let mut again = hub.register(Identity::new("ann")).await.unwrap();
    hub.send_to_group("team", HubMessage::text("still in"))
        .await
        .unwrap();
    assert_eq!(contents(&drain_messages(&mut again)), ["still in"]);

    assert!(hub.leave_group("team", "ann").await.unwrap());
    assert!(!hub.leave_group("team", "ann").await.unwrap());
    let report = hub
        .send_to_group("team", HubMessage::text("gone"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
    assert!(drain_messages(&mut again).is_empty());
}

#[tokio::test]
async fn disbanding_ends_every_membership_but_not_connect_time_bindings() {
    let hub = started(HubConfig::default());
    let mut ann = hub.register(Identity::new("ann")).await.unwrap();
    let mut bound = hub
        .register(Identity::new("bea").with_groups(["band"]))
        .await
        .unwrap();
    for user in ["ann", "cat"] {
        assert!(hub.join_group("band", user).await.unwrap());
    }
    assert_eq!(
        hub.group_members("band").await.unwrap(),
        ["ann", "bea", "cat"]
    );
    assert_eq!(hub.disband_group("band").await.unwrap(), ["ann", "cat"]);
    assert!(hub.disband_group("band").await.unwrap().is_empty());
    assert_eq!(hub.group_members("band").await.unwrap(), ["bea"]);
    assert!(hub.user_groups("cat").await.unwrap().is_empty());
    hub.send_to_group("band", HubMessage::text("after"))
        .await
        .unwrap();
    assert!(drain_messages(&mut ann).is_empty());
    assert_eq!(contents(&drain_messages(&mut bound)), ["after"]);
}

#[tokio::test]
async fn joins_leaves_and_disbands_are_events() {
    let hub = started(HubConfig::default());
    let mut events = hub.subscribe_events();
    hub.join_group("g", "ann").await.unwrap();
    hub.join_group("g", "ann").await.unwrap(); // no change, no event
    hub.leave_group("g", "ann").await.unwrap();
    hub.leave_group("g", "ann").await.unwrap(); // no change, no event
    hub.join_group("g", "bob").await.unwrap();
    hub.disband_group("g").await.unwrap();
    let mut seen = Vec::new();
    while let Ok(event) = events.try_recv() {
        seen.push((event.name, event.user_id, event.detail));
    }
    let group = serde_json::json!({"group_id": "g"});
    assert_eq!(
        seen,
        [
            (events::GROUP_JOINED, "ann".to_owned(), group.clone()),
            (events::GROUP_LEFT, "ann".to_owned(), group.clone()),
            (events::GROUP_JOINED, "bob".to_owned(), group),
            (
                events::GROUP_DISBANDED,
                String::new(),
                serde_json::json!({"group_id": "g", "members": ["bob"]})
            ),
        ]
    );
}

/// A store shared by two hubs (two nodes without a backplane, as after a restart): a
/// member added through one is a member on the other as soon as the user connects there.
#[tokio::test]
async fn a_shared_store_is_read_when_the_user_connects() {
    let store = Arc::new(MemoryGroups::new());
    let (one, two) = (started(HubConfig::default()), started(HubConfig::default()));
    one.set_group_store(store.clone());
    two.set_group_store(store.clone());
    assert!(one.join_group("club", "ann").await.unwrap());
    assert_eq!(
        store.join("club", "ann", GroupLimits::default()).await,
        Ok(JoinOutcome::AlreadyMember)
    );
    let mut ann = two.register(Identity::new("ann")).await.unwrap();
    let report = two
        .send_to_group("club", HubMessage::text("hello"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(contents(&drain_messages(&mut ann)), ["hello"]);
}

/// A group store that cannot be reached (Redis down).
struct Unreachable;

impl GroupStore for Unreachable {
    fn join(&self, _: &str, _: &str, _: GroupLimits) -> BoxFuture<Result<JoinOutcome, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn leave(&self, _: &str, _: &str) -> BoxFuture<Result<bool, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn members(&self, _: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn groups_of(&self, _: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
    fn disband(&self, _: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        Box::pin(async { Err(StoreError::Unavailable("down".into())) })
    }
}

#[tokio::test]
async fn an_unreachable_store_refuses_changes_and_still_admits_connections() {
    let hub = started(HubConfig::default());
    hub.set_group_store(Arc::new(Unreachable));
    let refused = hub.join_group("g", "ann").await.unwrap_err();
    assert_eq!(refused, GroupError::Unavailable("down".into()));
    assert_eq!(refused.code(), "unavailable");
    assert_eq!(
        hub.group_members("g").await.unwrap_err().code(),
        "unavailable"
    );
    let mut bound = hub
        .register(Identity::new("ann").with_groups(["g"]))
        .await
        .expect("admitted without its stored groups");
    assert_eq!(hub.stats().cluster_errors, 1, "the failed load is counted");
    hub.send_to_group("g", HubMessage::text("connect-time groups work"))
        .await
        .unwrap();
    assert_eq!(
        contents(&drain_messages(&mut bound)),
        ["connect-time groups work"]
    );
}

#[tokio::test]
async fn a_member_also_bound_at_connect_gets_a_group_message_once_per_connection() {
    let hub = started(HubConfig::default());
    let mut bound = hub
        .register(
            Identity::new("ann")
                .with_groups(["g"])
                .with_client_id("ann-bound"),
        )
        .await
        .unwrap();
    let mut other = hub
        .register(Identity::new("ann").with_client_id("ann-other"))
        .await
        .unwrap();
    assert!(hub.join_group("g", "ann").await.unwrap());
    let report = hub
        .send_to_group("g", HubMessage::text("once"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "two connections, each once");
    assert_eq!(contents(&drain_messages(&mut bound)), ["once"]);
    assert_eq!(contents(&drain_messages(&mut other)), ["once"]);
}
