//! Observers on one node: a connection of an observer user type gets one marked copy of
//! every message sent in its scope (global, one namespace, one namespace and its groups),
//! never of a message that only went to the offline store, not of broadcasts (it gets them
//! anyway); observers can be turned off; copies are counted.

mod support;

use serde_json::{Value, json};
use support::{drain_messages, started};
use wsc_hub::{BroadcastOptions, Hub, HubConfig, HubMessage, Identity, NewTicket, Registration};

fn observer(user: &str) -> Identity {
    Identity::new(user).with_user_type("observer")
}

/// (content, observer_mode, original_sender, original_receiver) of each frame ready now.
fn copies(registration: &mut Registration) -> Vec<(String, Value, Value, Value)> {
    drain_messages(registration)
        .into_iter()
        .map(|f| {
            let meta = &f["data"]["metadata"];
            (
                f["content"].as_str().unwrap_or("").to_owned(),
                meta["observer_mode"].clone(),
                meta["original_sender"].clone(),
                meta["original_receiver"].clone(),
            )
        })
        .collect()
}

fn copy(content: &str, sender: &str, receiver: &str) -> (String, Value, Value, Value) {
    (
        content.to_owned(),
        json!(true),
        json!(sender),
        json!(receiver),
    )
}

#[tokio::test]
async fn a_global_observer_gets_one_marked_copy_of_every_send_that_reached_someone() {
    let hub = started(HubConfig::default());
    let mut watch = hub.register(observer("sup")).await.unwrap();
    let _bob = hub
        .register(
            Identity::new("bob")
                .with_tickets(["t1"])
                .with_groups(["g1"])
                .with_client_id("bob-1"),
        )
        .await
        .unwrap();
    let from_ann = |text: &str| HubMessage {
        sender: "ann".into(),
        ..HubMessage::text(text)
    };
    hub.send_to_user("bob", from_ann("to bob")).await.unwrap();
    hub.send_to_ticket("t1", from_ann("to t1")).await.unwrap();
    hub.send_to_group("g1", from_ann("to g1")).await.unwrap();
    hub.send_to_connection("bob-1", from_ann("to bob-1"))
        .await
        .unwrap();
    let stored = hub.send_to_user("away", from_ann("to away")).await.unwrap();
    assert!(stored.stored_offline);
    hub.broadcast(from_ann("everyone"), BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!(
        copies(&mut watch),
        [
            copy("to bob", "ann", "bob"),
            copy("to t1", "ann", ""),
            copy("to g1", "ann", ""),
            copy("to bob-1", "ann", ""),
            ("everyone".to_owned(), Value::Null, Value::Null, Value::Null),
        ],
        "no copy of the stored message; the broadcast itself, not a copy"
    );
    let stats = hub.stats();
    assert_eq!((stats.observers, stats.observer_copies), (1, 4));
}

#[tokio::test]
async fn each_scope_level_gets_exactly_the_copies_of_its_scope() {
    let hub = started(HubConfig::default());
    let mut global = hub.register(observer("o-global")).await.unwrap();
    let mut shop = hub
        .register(observer("o-shop").with_scope("", "shop"))
        .await
        .unwrap();
    let mut vip = hub
        .register(
            observer("o-vip")
                .with_scope("", "shop")
                .with_groups(["vip"]),
        )
        .await
        .unwrap();
    let _shop_user = hub
        .register(
            Identity::new("sam")
                .with_scope("", "shop")
                .with_groups(["vip", "all"]),
        )
        .await
        .unwrap();
    let _blog_user = hub
        .register(Identity::new("bea").with_scope("", "blog"))
        .await
        .unwrap();
    let scoped = |text: &str, namespace: &str| HubMessage {
        namespace: namespace.into(),
        ..HubMessage::text(text)
    };
    hub.send_to_user("sam", scoped("shop user", "shop"))
        .await
        .unwrap();
    hub.send_to_group("vip", scoped("shop vip", "shop"))
        .await
        .unwrap();
    hub.send_to_group("all", scoped("shop all", "shop"))
        .await
        .unwrap();
    hub.send_to_user("bea", scoped("blog user", "blog"))
        .await
        .unwrap();
    let seen =
        |r: &mut Registration| -> Vec<String> { copies(r).into_iter().map(|c| c.0).collect() };
    assert_eq!(
        seen(&mut global),
        ["shop user", "shop vip", "shop all", "blog user"]
    );
    assert_eq!(seen(&mut shop), ["shop user", "shop vip", "shop all"]);
    assert_eq!(seen(&mut vip), ["shop vip"]);
}

#[tokio::test]
async fn observers_can_be_turned_off_and_other_types_never_observe() {
    let mut config = HubConfig::default();
    config.observers_enabled = false;
    let off = started(config);
    let mut watch = off.register(observer("sup")).await.unwrap();
    let _bob = off.register(Identity::new("bob")).await.unwrap();
    off.send_to_user("bob", HubMessage::text("x"))
        .await
        .unwrap();
    assert!(drain_messages(&mut watch).is_empty());
    assert_eq!(off.stats().observers, 0);

    let hub = started(HubConfig::default());
    let mut agent = hub
        .register(Identity::new("ann").with_user_type("agent"))
        .await
        .unwrap();
    let _bob = hub.register(Identity::new("bob")).await.unwrap();
    hub.send_to_user("bob", HubMessage::text("x"))
        .await
        .unwrap();
    assert!(drain_messages(&mut agent).is_empty());
}

#[tokio::test]
async fn observers_see_ticket_traffic_and_its_notices() {
    let hub: Hub = started(HubConfig::default());
    let mut watch = hub.register(observer("sup")).await.unwrap();
    let _agent = hub
        .register(Identity::new("ann").with_user_type("agent"))
        .await
        .unwrap();
    hub.open_ticket(NewTicket::new("carl").with_id("t9"))
        .await
        .unwrap();
    let types: Vec<String> = drain_messages(&mut watch)
        .iter()
        .map(|f| f["message_type"].as_str().unwrap_or("").to_owned())
        .collect();
    // carl is away: his notices were stored, not delivered. ann's was delivered.
    assert_eq!(types, ["ticket_assigned"]);
}
