//! Integration tests of the gateway's relay policy (`wsc.relay`): client messages that name a
//! ticket, a group or a user are relayed only when the sender is bound to the ticket, a
//! member of the group, or of a user type allowed to address users; with the relay off they
//! only reach the callbacks.

mod common;

use common::{
    assert_error_frame, assert_nothing_queued, built, connect, local_config, next_json, recv, send,
    started,
};
use serde_json::Value;
use tokio::sync::mpsc;
use wsc_config::GatewayConfig;
use wsc_hub::HubMessage;

fn relay_config() -> GatewayConfig {
    let mut config = local_config();
    config.wsc.relay.enabled = true;
    config
}

/// Asserts a `rejected` error frame whose text names `relay_denied`.
fn assert_relay_denied(frame: &Value, reply_to: &str) {
    assert_error_frame(frame, "rejected");
    assert_eq!(frame["reply_to_msg_id"], reply_to, "{frame}");
    assert!(
        frame["content"].as_str().unwrap().contains("relay_denied"),
        "{frame}"
    );
}

#[tokio::test]
async fn a_customer_relays_to_its_own_ticket_only() {
    let gateway = started(relay_config()).await;
    let mut customer = connect(&gateway, "user_id=cust&user_type=customer&ticket_id=t1").await;
    let mut agent = connect(&gateway, "user_id=agent1&user_type=agent&ticket_id=t1").await;
    let mut other_agent = connect(&gateway, "user_id=agent2&user_type=agent&ticket_id=t2").await;

    send(
        &mut customer,
        r#"{"id":"m1","ticket_id":"t1","content":"x"}"#,
    )
    .await;
    let relayed = next_json(&mut agent).await;
    assert_eq!(relayed["content"], "x", "{relayed}");
    assert_eq!(relayed["ticket_id"], "t1");
    assert_eq!(relayed["sender"], "cust");
    assert_eq!(relayed["sender_type"], "customer");
    // The sender does not get its own message back, and t2 does not get it at all.
    assert_nothing_queued(&mut customer, "c1").await;
    assert_nothing_queued(&mut other_agent, "o1").await;

    send(
        &mut customer,
        r#"{"id":"m2","ticket_id":"t2","content":"x"}"#,
    )
    .await;
    assert_relay_denied(&next_json(&mut customer).await, "m2");
    assert_nothing_queued(&mut other_agent, "o2").await;
    assert_nothing_queued(&mut agent, "a1").await;
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_group_member_relays_to_its_group_and_a_non_member_is_refused() {
    let gateway = started(relay_config()).await;
    let mut member = connect(&gateway, "user_id=m1&group_id=g1").await;
    let mut peer = connect(&gateway, "user_id=m2&group_id=g1").await;
    let mut joined = connect(&gateway, "user_id=j1").await;
    let mut outsider = connect(&gateway, "user_id=out").await;
    // j1 becomes a member through the shortcut rather than at connect.
    assert!(gateway.join_websocket_group("g1", "j1").await.unwrap());

    send(
        &mut member,
        r#"{"id":"g-1","group_ids":["g1"],"content":"to the group"}"#,
    )
    .await;
    for client in [&mut peer, &mut joined] {
        let relayed = next_json(client).await;
        assert_eq!(relayed["content"], "to the group", "{relayed}");
        assert_eq!(relayed["sender"], "m1");
        assert_eq!(relayed["group_ids"], serde_json::json!(["g1"]));
    }
    assert_nothing_queued(&mut outsider, "x1").await;

    // A member by `join_websocket_group` may relay too.
    send(
        &mut joined,
        r#"{"id":"g-2","group_ids":["g1"],"content":"from j1"}"#,
    )
    .await;
    let relayed = next_json(&mut peer).await;
    assert_eq!(
        (relayed["content"].as_str(), relayed["sender"].as_str()),
        (Some("from j1"), Some("j1"))
    );

    send(
        &mut outsider,
        r#"{"id":"g-3","group_ids":["g1"],"content":"intrude"}"#,
    )
    .await;
    assert_relay_denied(&next_json(&mut outsider).await, "g-3");
    // Nobody in g1 got the outsider's message: after j1's message, nothing else.
    // (Whether a group relay echoes back to its sender is not specified: tolerated.)
    let mut next = next_json(&mut member).await;
    if next["content"] == "to the group" {
        next = next_json(&mut member).await;
    }
    assert_eq!(next["content"], "from j1", "{next}");
    assert_nothing_queued(&mut member, "m-1").await;
    assert_nothing_queued(&mut peer, "p-1").await;
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn an_agent_may_message_a_user_and_a_customer_may_not() {
    let gateway = started(relay_config()).await;
    let mut agent = connect(&gateway, "user_id=agent1&user_type=agent").await;
    let mut customer = connect(&gateway, "user_id=cust&user_type=customer").await;

    send(
        &mut agent,
        r#"{"id":"u-1","receiver":"cust","content":"y"}"#,
    )
    .await;
    let relayed = next_json(&mut customer).await;
    assert_eq!(relayed["content"], "y", "{relayed}");
    assert_eq!(relayed["receiver"], "cust");
    assert_eq!(relayed["sender"], "agent1");
    assert_nothing_queued(&mut agent, "a1").await;

    send(
        &mut customer,
        r#"{"id":"u-2","receiver":"agent1","content":"z"}"#,
    )
    .await;
    assert_relay_denied(&next_json(&mut customer).await, "u-2");
    assert_nothing_queued(&mut agent, "a2").await;
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn user_targets_come_from_the_config() {
    let mut config = relay_config();
    config.wsc.relay.user_targets = vec!["customer".to_owned()];
    let gateway = started(config).await;
    let mut agent = connect(&gateway, "user_id=agent1&user_type=agent").await;
    let mut customer = connect(&gateway, "user_id=cust&user_type=customer").await;

    send(
        &mut customer,
        r#"{"id":"u-1","receiver":"agent1","content":"z"}"#,
    )
    .await;
    assert_eq!(next_json(&mut agent).await["content"], "z");
    send(
        &mut agent,
        r#"{"id":"u-2","receiver":"cust","content":"y"}"#,
    )
    .await;
    assert_relay_denied(&next_json(&mut agent).await, "u-2");
    assert_nothing_queued(&mut customer, "c1").await;
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_relay_does_not_reach_the_callbacks_and_an_allowed_one_does() {
    let gateway = built(relay_config());
    let (tx, mut received) = mpsc::unbounded_channel::<String>();
    gateway.on_websocket_message_received(move |_conn, msg| {
        let _ = tx.send(msg.content.clone());
        async { Ok(()) }
    });
    gateway.start().await.unwrap();
    let mut customer = connect(&gateway, "user_id=cust&user_type=customer&ticket_id=t1").await;

    send(
        &mut customer,
        r#"{"id":"r1","ticket_id":"t2","content":"denied"}"#,
    )
    .await;
    assert_relay_denied(&next_json(&mut customer).await, "r1");
    send(
        &mut customer,
        r#"{"id":"r2","ticket_id":"t1","content":"allowed"}"#,
    )
    .await;
    send(&mut customer, r#"{"id":"r3","content":"no target"}"#).await;
    assert_eq!(recv(&mut received).await, "allowed");
    assert_eq!(recv(&mut received).await, "no target");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn with_the_relay_off_a_receiver_gets_nothing_and_callbacks_get_the_message() {
    let config = local_config();
    assert!(!config.wsc.relay.enabled, "the relay is off by default");
    let gateway = built(config);
    let (tx, mut received) = mpsc::unbounded_channel::<(String, String, String)>();
    gateway.on_websocket_message_received(move |conn, msg| {
        let _ = tx.send((
            conn.user_id().to_owned(),
            msg.receiver.clone(),
            msg.content.clone(),
        ));
        async { Ok(()) }
    });
    gateway.start().await.unwrap();
    let mut agent = connect(&gateway, "user_id=agent1&user_type=agent&ticket_id=t1").await;
    let mut bob = connect(&gateway, "user_id=bob&ticket_id=t1").await;

    send(
        &mut agent,
        r#"{"id":"n1","receiver":"bob","content":"secret"}"#,
    )
    .await;
    assert_eq!(
        recv(&mut received).await,
        ("agent1".to_owned(), "bob".to_owned(), "secret".to_owned())
    );
    send(
        &mut agent,
        r#"{"id":"n2","ticket_id":"t1","content":"ticket"}"#,
    )
    .await;
    assert_eq!(recv(&mut received).await.2, "ticket");

    // No error frame for the sender, nothing for bob.
    assert_nothing_queued(&mut agent, "a1").await;
    assert_nothing_queued(&mut bob, "b1").await;
    let report = gateway
        .send_to_websocket_user("bob", HubMessage::text("marker"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut bob).await["content"], "marker");
    gateway.stop().await.unwrap();
}
