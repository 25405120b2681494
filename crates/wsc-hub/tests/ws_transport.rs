//! The WebSocket writer under pressure: the outbound size limit (refused at the send, and
//! a message at the limit is delivered), fair turns between writing and reading, pong
//! replies and message frames sharing a stream whose every write is partial, and a close
//! frame that survives an oversized inbound frame.

mod support;

use std::time::Duration;

use serde_json::json;
use support::{TestServer, config, started};
use wsc_hub::{AckStatus, BroadcastOptions, HubMessage, Identity, SendError};

fn sized(bytes: usize) -> HubMessage {
    HubMessage::text("x".repeat(bytes))
}

#[tokio::test]
async fn a_message_over_the_outbound_limit_is_refused_by_every_send() {
    let hub = started(config(|c| c.max_outbound_message_size = 4096));
    let _member = hub
        .register(
            Identity::new("u")
                .with_client_id("c")
                .with_tickets(["t"])
                .with_groups(["g"]),
        )
        .await
        .unwrap();
    let too_large = |r: Result<_, SendError>| match r {
        Err(SendError::TooLarge { size, limit }) => {
            assert!(size > limit && limit == 4096, "{size} {limit}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    };
    let ack = Duration::from_secs(1);
    too_large(hub.send_to_user("u", sized(5000)).await.map(drop));
    too_large(hub.send_to_user("nobody", sized(5000)).await.map(drop));
    too_large(hub.send_to_ticket("t", sized(5000)).await.map(drop));
    too_large(hub.send_to_group("g", sized(5000)).await.map(drop));
    too_large(hub.send_to_connection("c", sized(5000)).await.map(drop));
    too_large(
        hub.broadcast(sized(5000), BroadcastOptions::default())
            .await
            .map(drop),
    );
    too_large(
        hub.send_to_user_with_ack("u", sized(5000), ack, 0)
            .await
            .map(drop),
    );
    too_large(
        hub.send_to_ticket_with_ack("t", sized(5000), ack, 0)
            .await
            .map(drop),
    );
    let stats = hub.stats();
    assert_eq!(
        (stats.messages_out, stats.offline_stored, stats.acks_pending),
        (0, 0, 0)
    );
    assert!(
        hub.offline_store()
            .unwrap()
            .load("nobody")
            .await
            .unwrap()
            .is_empty(),
        "a refused message is not stored"
    );
    // Under the limit, the same routes work, and the refused sends did not use up numbers.
    hub.send_to_user("u", sized(100)).await.unwrap();
}

#[tokio::test]
async fn a_message_at_the_outbound_limit_reaches_a_websocket_client() {
    let limit = 4 * 1024 * 1024;
    let server = TestServer::start(config(|c| c.max_outbound_message_size = limit)).await;
    let mut client = server.connect_ready("user_id=big").await;
    let content = limit - 1024;
    let report = server
        .hub
        .send_to_user("big", sized(content))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    let frame = client.recv_json().await;
    assert_eq!(frame["content"].as_str().unwrap().len(), content);
    // The connection is still healthy afterwards.
    client.ping().await;
}

#[tokio::test]
async fn sustained_outbound_traffic_does_not_starve_inbound_acks() {
    const FLOOD: usize = 200;
    let hub = started(config(|c| {
        c.queue_capacity = 4 * FLOOD;
        c.queue_max_bytes = usize::MAX / 2;
        c.max_inbound_per_second = 0;
    }));
    // A pipe of 4 KiB: like a socket buffer, the server can only write ahead of the client
    // by a few frames.
    let (mut client, _server) =
        support::duplex_client_with_capacity(&hub, Identity::new("u"), 4096).await;
    let acked = {
        let hub = hub.clone();
        tokio::spawn(async move {
            hub.send_to_user_with_ack("u", HubMessage::text("ack me"), Duration::from_secs(30), 0)
                .await
        })
    };
    let first = client.recv_json().await;
    assert_eq!(first["content"], "ack me");
    // A long backlog is queued before the server runs again, then the client acks.
    for _ in 0..FLOOD {
        hub.send_to_user("u", HubMessage::text("flood"))
            .await
            .unwrap();
    }
    let ack = json!({"message_type": "ack", "message_id": first["message_id"]});
    client.send_json(&ack).await;

    let mut read_before_ack = 0;
    while hub.stats().acks_confirmed == 0 {
        assert!(
            read_before_ack < FLOOD,
            "the ack was read only after the whole backlog was written"
        );
        assert_eq!(client.recv_json().await["content"], "flood");
        read_before_ack += 1;
    }
    assert!(
        read_before_ack < FLOOD / 2,
        "the ack waited for {read_before_ack} frames of outbound traffic"
    );
    let outcome = acked.await.unwrap().unwrap();
    assert!(matches!(
        outcome.outcomes[0].status,
        AckStatus::Acked { .. }
    ));
}

#[tokio::test]
async fn an_oversized_inbound_frame_gets_a_1009_close_frame_with_its_reason() {
    let server = TestServer::start(config(|c| c.limits.max_message_size = 64 * 1024)).await;
    let mut client = server.connect_ready("user_id=u").await;
    client.send_text(&"x".repeat(10 * 1024 * 1024)).await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("too large"), "{reason}");
}

#[tokio::test]
async fn pongs_and_a_flood_of_frames_share_the_stream_without_tearing_either() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const FLOOD: usize = 700;
    let hub = started(config(|c| {
        c.queue_capacity = 2 * FLOOD;
        c.queue_max_bytes = usize::MAX / 2;
        c.max_inbound_per_second = 0;
    }));
    // A pipe smaller than one frame: every write of the server is partial, so a pong
    // tungstenite queues while reading is left half written whenever the pipe fills, and the
    // message frames written beside it must never land inside it.
    let (mut client, _server) =
        support::duplex_client_with_capacity(&hub, Identity::new("u"), 100).await;
    for i in 0..FLOOD {
        hub.send_to_user("u", HubMessage::text(format!("n-{i}")))
            .await
            .unwrap();
    }
    let (mut texts, mut pongs, mut pings) = (Vec::new(), Vec::new(), 0u8);
    while texts.len() < FLOOD {
        let frame = tokio::time::timeout(Duration::from_secs(10), client.ws.next())
            .await
            .expect("the stream stalled")
            .expect("the stream ended")
            .expect("a torn frame");
        match frame {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
                texts.push(value["content"].as_str().unwrap().to_owned());
                // The server reads one inbound frame per turn of up to `write_batch` (64)
                // frames, so a ping every 70 messages never waits for the server; 60 bytes
                // each, so its pong is often cut by the pipe.
                if texts.len() % 70 == 0 {
                    client
                        .ws
                        .send(Message::Ping(vec![pings; 60].into()))
                        .await
                        .unwrap();
                    pings += 1;
                }
            }
            Message::Pong(data) => pongs.push(data.to_vec()),
            Message::Ping(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<_> = (0..FLOOD).map(|i| format!("n-{i}")).collect();
    assert_eq!(texts, expected, "every message whole and in order");
    // The last pongs may still be on their way.
    while pongs.len() < usize::from(pings) {
        match tokio::time::timeout(Duration::from_secs(10), client.ws.next()).await {
            Ok(Some(Ok(Message::Pong(data)))) => pongs.push(data.to_vec()),
            other => panic!("waiting for the pongs: {other:?}"),
        }
    }
    let expected: Vec<_> = (0..pings).map(|p| vec![p; 60]).collect();
    assert_eq!(pongs, expected, "every pong whole and in order");
}
