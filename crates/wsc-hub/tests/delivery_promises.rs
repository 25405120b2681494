//! Promises of docs/delivery.md and protocol.md that no other test holds: the bound on
//! unacknowledged deliveries per connection, a user's `seq_no` restarting at 1 once the
//! window forgot them, broadcasts, group and ticket sends carrying `seq_no: 0`, priority as
//! metadata only, the byte bound of a queue, what a pushed message and a kick notice carry,
//! and the per-user limit across apps.

use std::time::Duration;

use serde_json::Value;
use wsc_hub::{BroadcastOptions, Hub, HubConfig, HubMessage, Identity, Registration};
use wsc_testkit::cluster::next_message;

fn hub(config: HubConfig) -> Hub {
    let hub = Hub::new(config);
    hub.start();
    hub
}

async fn ack(registration: &mut Registration, message_id: &str) {
    let frame = serde_json::json!({"message_type": "ack", "message_id": message_id});
    registration.handle_text(&frame.to_string()).await;
}

/// Whether anything is queued for the registration right now (pings skipped).
fn queued_message(registration: &mut Registration) -> Option<Value> {
    while let Some(frame) = registration.try_recv() {
        if let wsc_hub::Outbound::Message(payload) = frame {
            return Some(serde_json::from_str(payload.as_str()).expect("JSON"));
        }
    }
    None
}

#[tokio::test(start_paused = true)]
async fn a_connection_with_max_pending_unacknowledged_deliveries_is_skipped_until_it_acks() {
    let mut config = HubConfig::default();
    config.max_pending_acks = 2;
    let hub = hub(config);
    let mut conn = hub
        .register(Identity::new("pat"))
        .await
        .expect("registered");
    let sends: Vec<_> = ["m1", "m2", "m3"]
        .into_iter()
        .map(|text| {
            let hub = hub.clone();
            tokio::spawn(async move {
                hub.send_to_user_with_ack("pat", HubMessage::text(text), Duration::from_secs(1), 3)
                    .await
            })
        })
        .collect();
    tokio::task::yield_now().await;
    let first = next_message(&mut conn).await;
    let second = next_message(&mut conn).await;
    let mut contents = vec![first["content"].clone(), second["content"].clone()];
    contents.sort_by_key(|c| c.to_string());
    assert_eq!(contents, ["m1", "m2"]);
    assert_eq!(
        queued_message(&mut conn),
        None,
        "the third waits for a free slot"
    );

    // An ack frees a slot: the third message's next attempt reaches the connection.
    ack(&mut conn, first["message_id"].as_str().unwrap()).await;
    ack(&mut conn, second["message_id"].as_str().unwrap()).await;
    let third = next_message(&mut conn).await;
    assert_eq!(third["content"], "m3");
    ack(&mut conn, third["message_id"].as_str().unwrap()).await;
    for send in sends {
        let report = send.await.expect("task").expect("sent");
        assert!(report.all_acked(), "{report:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_users_seq_no_restarts_at_1_once_the_window_forgot_the_user() {
    let hub = hub(HubConfig::default());
    // Connects `sid`, sends it `count` messages and returns their numbers (then leaves).
    let session = |count: usize| {
        let hub = hub.clone();
        async move {
            let mut conn = hub
                .register(Identity::new("sid"))
                .await
                .expect("registered");
            let mut numbers = Vec::new();
            for _ in 0..count {
                hub.send_to_user("sid", HubMessage::text("x"))
                    .await
                    .expect("sent");
                numbers.push(next_message(&mut conn).await["seq_no"].as_i64());
            }
            numbers
        }
    };
    assert_eq!(session(2).await, [Some(1), Some(2)]);
    // Back within the window (120 s): numbering goes on.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(session(1).await, [Some(3)]);
    // Offline with no message for longer than the window: numbering starts again.
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(session(1).await, [Some(1)]);
}

#[tokio::test]
async fn broadcasts_group_and_ticket_sends_carry_seq_no_0() {
    let hub = hub(HubConfig::default());
    let identity = Identity::new("gil").with_groups(["g"]).with_tickets(["t"]);
    let mut conn = hub.register(identity).await.expect("registered");
    hub.send_to_user("gil", HubMessage::text("user"))
        .await
        .expect("sent");
    hub.send_to_group("g", HubMessage::text("group"))
        .await
        .expect("sent");
    hub.send_to_ticket("t", HubMessage::text("ticket"))
        .await
        .expect("sent");
    hub.broadcast(HubMessage::text("all"), BroadcastOptions::default())
        .await
        .expect("sent");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let msg = next_message(&mut conn).await;
        seen.push((
            msg["content"].as_str().unwrap().to_owned(),
            msg["seq_no"].as_i64(),
        ));
    }
    assert_eq!(
        seen,
        [
            ("user".to_owned(), Some(1)),
            ("group".to_owned(), Some(0)),
            ("ticket".to_owned(), Some(0)),
            ("all".to_owned(), Some(0)),
        ]
    );
}

#[tokio::test]
async fn priority_is_metadata_and_never_reorders_delivery() {
    let hub = hub(HubConfig::default());
    let mut conn = hub
        .register(Identity::new("pri"))
        .await
        .expect("registered");
    for (content, priority) in [
        ("first", wsc_hub::Priority::Low),
        ("second", wsc_hub::Priority::Critical),
        ("third", wsc_hub::Priority::Normal),
    ] {
        let mut msg = HubMessage::text(content);
        msg.priority = priority;
        hub.send_to_user("pri", msg).await.expect("sent");
    }
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(next_message(&mut conn).await["content"].clone());
    }
    assert_eq!(order, ["first", "second", "third"]);
}

#[tokio::test]
async fn a_queue_full_by_bytes_below_its_message_count_is_a_slow_consumer() {
    let mut config = HubConfig::default();
    config.queue_capacity = 256;
    config.queue_max_bytes = 4096;
    let hub = hub(config);
    let conn = hub
        .register(Identity::new("fat"))
        .await
        .expect("registered");
    let body = "x".repeat(1000);
    for _ in 0..10 {
        let _ = hub
            .send_to_user("fat", HubMessage::text(body.clone()))
            .await;
    }
    assert_eq!(
        conn.connection().disconnect_reason(),
        Some(&wsc_hub::DisconnectReason::SlowConsumer),
        "five 1 KB frames exceed 4 KiB long before 256 messages"
    );
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);
}

#[tokio::test]
async fn a_pushed_message_is_from_system_with_a_creation_time_and_a_kick_notice_names_its_reason() {
    let hub = hub(HubConfig::default());
    let mut conn = hub.register(Identity::new("pu")).await.expect("registered");
    let mut msg = HubMessage::text("hello");
    msg.sender.clear();
    msg.sender_type.clear();
    hub.send_to_user("pu", msg).await.expect("sent");
    let pushed = next_message(&mut conn).await;
    assert_eq!(
        (pushed["sender"].as_str(), pushed["sender_type"].as_str()),
        (Some("system"), Some("system"))
    );
    let created = pushed["create_at"].as_str().expect("create_at");
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{created}"
    );

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    hub.kick_user("pu", "spam", true).await.expect("kicked");
    let notice = next_message(&mut conn).await;
    assert_eq!(notice["message_type"], "kick_out");
    assert_eq!(
        (
            notice["content"].as_str(),
            notice["data"]["reason"].as_str()
        ),
        (Some("spam"), Some("spam"))
    );
    let kicked_at = notice["data"]["kicked_at"].as_u64().expect("Unix seconds");
    assert!(
        (before..=before + 5).contains(&kicked_at),
        "{kicked_at} vs {before}"
    );
}

#[tokio::test]
async fn the_per_user_connection_limit_spans_apps_and_namespaces() {
    let mut config = HubConfig::default();
    config.max_connections_per_user = 1;
    config.multi_login = wsc_hub::MultiLoginPolicy::KickNew;
    let hub = hub(config);
    let _shop = hub
        .register(Identity::new("ana").with_scope("shop", "eu"))
        .await
        .expect("registered");
    let other_app = hub
        .register(Identity::new("ana").with_scope("blog", "us"))
        .await;
    assert!(
        matches!(
            other_app,
            Err(wsc_hub::RegisterError::UserConnectionLimit { .. })
        ),
        "{other_app:?}"
    );
}
