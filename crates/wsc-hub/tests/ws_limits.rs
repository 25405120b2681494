//! Inbound limits: frame size (close 1009) and the per-connection rate limit (close 1008),
//! which every data frame counts, valid or not.

mod support;

use std::time::Duration;

use support::{Disconnects, TestServer, config, duplex_client};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use wsc_hub::{DisconnectReason, Hub, Identity};

fn ping_of_len(len: usize) -> String {
    let head = r#"{"message_type":"ping","id":"big","content":""#;
    let tail = r#""}"#;
    format!("{head}{}{tail}", "a".repeat(len - head.len() - tail.len()))
}

#[tokio::test]
async fn frame_at_the_size_limit_is_accepted() {
    let server = TestServer::start(config(|c| c.limits.max_message_size = 1024)).await;
    let mut client = server.connect_ready("user_id=alice&client_id=a1").await;
    let text = ping_of_len(1024);
    assert_eq!(text.len(), 1024);
    client.send_text(&text).await;
    let pong = client.recv_json().await;
    assert_eq!(pong["message_type"], "pong", "{pong}");
    assert_eq!(pong["id"], "big", "{pong}");
}

#[tokio::test]
async fn oversized_frame_closes_with_1009() {
    let hub = Hub::new(config(|c| c.limits.max_message_size = 1024));
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut client = server.connect_ready("user_id=alice&client_id=a1").await;

    client.send_text(&ping_of_len(1025)).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    let (_, reason) = disconnects.next().await;
    assert_eq!(reason, DisconnectReason::MessageTooLarge);
    server.wait_served(1).await;
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn inbound_rate_limit_closes_with_1008() {
    let hub = Hub::new(config(|c| c.max_inbound_per_second = 5));
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut client = server.connect("user_id=alice&client_id=a1").await;

    for i in 0..20 {
        client
            .send_text(&format!(r#"{{"message_type":"text","content":"{i}"}}"#))
            .await;
    }
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("rate limit"), "close reason: {reason}");
    let (_, reason) = disconnects.next().await;
    assert!(
        matches!(reason, DisconnectReason::PolicyViolation { .. }),
        "{reason:?}"
    );
    server.wait_served(1).await;
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn inbound_rate_limit_allows_the_limit_in_every_second() {
    let hub = Hub::new(config(|c| c.max_inbound_per_second = 5));
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    let (mut client, server_task) = duplex_client(&hub, Identity::new("alice")).await;

    for _second in 0..3 {
        for _ in 0..5 {
            client.ping().await;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert_eq!(disconnects.count(), 0);
    for _ in 0..5 {
        client.ping().await;
    }
    client
        .send_text(r#"{"message_type":"ping","id":"one-too-many"}"#)
        .await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    server_task.await.unwrap();
    let (_, reason) = disconnects.next().await;
    assert!(
        matches!(reason, DisconnectReason::PolicyViolation { .. }),
        "{reason:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn invalid_text_frames_count_against_the_frame_rate() {
    let hub = Hub::new(config(|c| c.max_inbound_per_second = 3));
    hub.start();
    let (mut client, server_task) = duplex_client(&hub, Identity::new("alice")).await;

    // Two frames that are not JSON, each answered, then one valid frame: the limit is three.
    client.send_text("not json").await;
    client.expect_error("invalid_json").await;
    client.send_text(r#"{"id":"#).await;
    client.expect_error("invalid_json").await;
    client.ping().await;
    client
        .send_text(r#"{"message_type":"ping","id":"fourth"}"#)
        .await;
    assert_eq!(
        client.expect_close().await,
        (
            1008,
            "rate limit exceeded: more than 3 messages per second".to_owned()
        )
    );
    server_task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_invalid_utf8_frame_counts_against_the_frame_rate() {
    let hub = Hub::new(config(|c| c.max_inbound_per_second = 2));
    hub.start();
    let (mut client, server_task) = duplex_client(&hub, Identity::new("alice")).await;
    client.ping().await;
    client.ping().await;
    // The third frame of the second is over the limit: the rate limit closes the connection
    // (1008) before the frame is answered as invalid UTF-8 (an error frame and 1007).
    let raw = Frame::message(vec![0xffu8, 0xfe], OpCode::Data(Data::Text), true);
    client.send(Message::Frame(raw)).await;
    assert_eq!(
        client.expect_close().await,
        (
            1008,
            "rate limit exceeded: more than 2 messages per second".to_owned()
        )
    );
    server_task.await.unwrap();
    assert_eq!(hub.stats().invalid_frames, 0);
}
