//! Integration tests of the gateway's shortcut methods: `NotRunning` before start and after
//! stop (never a panic), and what each shortcut does for real WebSocket clients.

mod common;

use std::time::Duration;

use common::{
    assert_nothing_queued, built, close_frame, connect, local_config, next_json, send, started,
};
use gateway::{Gateway, GatewayError};
use wsc_hub::{BroadcastOptions, HubMessage};

/// Calls every shortcut and asserts each one returns `NotRunning`.
async fn assert_every_shortcut_is_not_running(gateway: &Gateway) {
    let short = Duration::from_millis(50);
    let not_running = |what: &str, result: Result<(), GatewayError>| match result {
        Err(GatewayError::NotRunning) => {}
        other => panic!("{what}: expected NotRunning, got {other:?}"),
    };
    not_running(
        "send_to_websocket_user",
        gateway
            .send_to_websocket_user("u", HubMessage::text("x"))
            .await
            .map(drop),
    );
    not_running(
        "send_to_websocket_user_with_ack",
        gateway
            .send_to_websocket_user_with_ack("u", HubMessage::text("x"), short, 0)
            .await
            .map(drop),
    );
    not_running(
        "send_to_websocket_ticket",
        gateway
            .send_to_websocket_ticket("t1", HubMessage::text("x"))
            .await
            .map(drop),
    );
    not_running(
        "send_to_websocket_ticket_with_ack",
        gateway
            .send_to_websocket_ticket_with_ack("t1", HubMessage::text("x"), short, 0)
            .await
            .map(drop),
    );
    not_running(
        "send_to_websocket_group",
        gateway
            .send_to_websocket_group("g1", HubMessage::text("x"))
            .await
            .map(drop),
    );
    not_running(
        "broadcast_websocket_message",
        gateway
            .broadcast_websocket_message(HubMessage::text("x"))
            .await
            .map(drop),
    );
    not_running(
        "broadcast_websocket_message_with",
        gateway
            .broadcast_websocket_message_with(
                HubMessage::text("x"),
                BroadcastOptions::excluding("u"),
            )
            .await
            .map(drop),
    );
    not_running(
        "kick_websocket_user",
        gateway
            .kick_websocket_user("u", "bye", true)
            .await
            .map(drop),
    );
    not_running(
        "join_websocket_group",
        gateway.join_websocket_group("g1", "u").await.map(drop),
    );
    not_running(
        "leave_websocket_group",
        gateway.leave_websocket_group("g1", "u").await.map(drop),
    );
    not_running(
        "get_websocket_online_users",
        gateway.get_websocket_online_users().await.map(drop),
    );
    not_running(
        "get_websocket_online_user_count",
        gateway.get_websocket_online_user_count().await.map(drop),
    );
    not_running(
        "get_websocket_stats",
        gateway.get_websocket_stats().map(drop),
    );
}

#[tokio::test]
async fn every_shortcut_before_start_is_not_running() {
    let gateway = built(local_config());
    assert_every_shortcut_is_not_running(&gateway).await;
    // The refusals left the gateway usable.
    gateway.start().await.unwrap();
    assert_eq!(gateway.get_websocket_online_user_count().await.unwrap(), 0);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn every_shortcut_after_stop_is_not_running() {
    let gateway = started(local_config()).await;
    gateway.stop().await.unwrap();
    assert_every_shortcut_is_not_running(&gateway).await;
}

#[tokio::test]
async fn user_ticket_group_and_broadcast_shortcuts_reach_their_clients() {
    let gateway = started(local_config()).await;
    let mut alice = connect(&gateway, "user_id=alice&ticket_id=t1&group_id=g1").await;
    let mut bob = connect(&gateway, "user_id=bob&ticket_id=t1").await;

    assert_eq!(
        gateway.get_websocket_online_users().await.unwrap(),
        ["alice", "bob"]
    );
    assert_eq!(gateway.get_websocket_online_user_count().await.unwrap(), 2);
    let stats = gateway.get_websocket_stats().unwrap();
    assert_eq!((stats.connections, stats.users), (2, 2));

    let report = gateway
        .send_to_websocket_user("alice", HubMessage::text("to alice"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    let frame = next_json(&mut alice).await;
    assert_eq!(
        (frame["content"].as_str(), frame["receiver"].as_str()),
        (Some("to alice"), Some("alice"))
    );

    let report = gateway
        .send_to_websocket_ticket("t1", HubMessage::text("to t1"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(next_json(&mut alice).await["ticket_id"], "t1");
    assert_eq!(next_json(&mut bob).await["content"], "to t1");

    let report = gateway
        .send_to_websocket_group("g1", HubMessage::text("to g1"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "only alice is in g1");
    assert_eq!(next_json(&mut alice).await["content"], "to g1");
    assert_nothing_queued(&mut bob, "b1").await;

    // bob joins g1 through the shortcut; leaving takes him out again.
    assert!(gateway.join_websocket_group("g1", "bob").await.unwrap());
    let report = gateway
        .send_to_websocket_group("g1", HubMessage::text("g1 again"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(next_json(&mut alice).await["content"], "g1 again");
    assert_eq!(next_json(&mut bob).await["content"], "g1 again");
    assert!(gateway.leave_websocket_group("g1", "bob").await.unwrap());
    let report = gateway
        .send_to_websocket_group("g1", HubMessage::text("g1 once more"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut alice).await["content"], "g1 once more");
    assert_nothing_queued(&mut bob, "b2").await;

    let report = gateway
        .broadcast_websocket_message(HubMessage::text("all"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2);
    assert_eq!(next_json(&mut alice).await["content"], "all");
    assert_eq!(next_json(&mut bob).await["content"], "all");

    let report = gateway
        .broadcast_websocket_message_with(
            HubMessage::text("not bob"),
            BroadcastOptions::excluding("bob"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut alice).await["content"], "not bob");
    assert_nothing_queued(&mut bob, "b3").await;

    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn acked_send_to_a_user_reports_the_ack() {
    let gateway = started(local_config()).await;
    let mut client = connect(&gateway, "user_id=u").await;
    let acker = tokio::spawn(async move {
        let frame = next_json(&mut client).await;
        assert_eq!(frame["require_ack"], true, "{frame}");
        let message_id = frame["message_id"].as_str().unwrap().to_owned();
        send(
            &mut client,
            &format!(r#"{{"message_type":"ack","message_id":"{message_id}"}}"#),
        )
        .await;
        client
    });
    let report = gateway
        .send_to_websocket_user_with_ack("u", HubMessage::text("ack me"), common::WAIT, 0)
        .await
        .unwrap();
    assert!(report.all_acked(), "{report:?}");
    let _client = acker.await.unwrap();
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn kick_notifies_and_closes_with_1008() {
    let gateway = started(local_config()).await;
    let mut client = connect(&gateway, "user_id=u").await;
    let report = gateway
        .kick_websocket_user("u", "maintenance", true)
        .await
        .unwrap();
    assert_eq!(report.kicked, 1);
    let notice = next_json(&mut client).await;
    assert_eq!(notice["message_type"], "kick_out");
    assert_eq!(notice["data"]["reason"], "maintenance");
    let (code, reason) = close_frame(&mut client).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("maintenance"), "{reason}");
    assert!(
        gateway
            .get_websocket_online_users()
            .await
            .unwrap()
            .is_empty()
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn membership_shortcuts_refuse_blank_ids_with_a_typed_error() {
    let gateway = started(local_config()).await;
    let invalid = |what: &str, result: Result<bool, GatewayError>| match result {
        Err(GatewayError::Group(wsc_hub::GroupError::InvalidId(_))) => {}
        other => panic!("{what}: expected InvalidId, got {other:?}"),
    };
    invalid(
        "join blank group",
        gateway.join_websocket_group("", "alice").await,
    );
    invalid(
        "join blank user",
        gateway.join_websocket_group("vip", " ").await,
    );
    invalid(
        "leave blank group",
        gateway.leave_websocket_group("", "alice").await,
    );
    assert!(gateway.hub().group_members("vip").await.unwrap().is_empty());
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_message_over_the_outbound_limit_is_a_typed_error() {
    let mut config = local_config();
    config.wsc.security.max_outbound_message_size = 2048;
    let gateway = started(config).await;
    let result = gateway
        .send_to_websocket_user("u", HubMessage::text("x".repeat(4096)))
        .await;
    assert!(
        matches!(
            result,
            Err(GatewayError::Send(wsc_hub::SendError::TooLarge {
                limit: 2048,
                ..
            }))
        ),
        "{result:?}"
    );
    gateway.stop().await.unwrap();
}
