//! The SSE transport (`wsc_hub::sse::serve`) under paused time: keepalive comments keep a
//! stream alive past `client_timeout` (an event stream has no way back for pongs), a
//! client that stops reading is closed as a slow consumer after `write_timeout`, and a
//! client that goes away is unregistered at once.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use wsc_hub::sse::{self, SseOptions};
use wsc_hub::{Hub, HubConfig, HubMessage, Identity};

fn hub() -> Hub {
    let mut config = HubConfig::default();
    config.heartbeat_interval = Duration::from_secs(30);
    config.client_timeout = Duration::from_secs(90);
    config.write_timeout = Duration::from_secs(10);
    let hub = Hub::new(config);
    hub.start();
    hub
}

/// Serves `user` as a stream; returns the body's receiver, the inbound sender and the task.
async fn stream(
    hub: &Hub,
    user: &str,
    capacity: usize,
) -> (
    mpsc::Receiver<Bytes>,
    mpsc::Sender<String>,
    tokio::task::JoinHandle<()>,
) {
    let registration = hub.register(Identity::new(user)).await.expect("registered");
    let (out_tx, out_rx) = mpsc::channel(capacity);
    let (in_tx, in_rx) = mpsc::channel(8);
    let options = SseOptions {
        heartbeat: Duration::from_secs(20),
        session: "s".to_owned(),
    };
    let task = tokio::spawn(sse::serve(registration, out_tx, in_rx, options));
    (out_rx, in_tx, task)
}

#[tokio::test(start_paused = true)]
async fn keepalive_comments_keep_a_stream_alive_past_the_client_timeout() {
    let hub = hub();
    let (mut body, _inbound, task) = stream(&hub, "alice", 2).await;
    let reader = tokio::spawn(async move {
        let mut text = String::new();
        while let Some(chunk) = body.recv().await {
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        text
    });
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(
        hub.connection_count(),
        1,
        "still registered after 300 s of silence"
    );
    hub.send_to_user("alice", HubMessage::text("still here"))
        .await
        .expect("sent");
    hub.stop(Duration::from_secs(5)).await;
    task.await.expect("serve ends");
    let text = reader.await.expect("reader");
    assert!(text.starts_with("event: connected\n"), "{text}");
    // 300 s: 15 comments of the 20 s heartbeat and 10 of the hub's 30 s keepalive, at least.
    assert!(text.matches(": ping\n\n").count() >= 20, "{text}");
    assert!(text.contains(r#""content":"still here""#), "{text}");
    assert!(text.contains("event: disconnected\n"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stops_reading_is_a_slow_consumer_after_the_write_timeout() {
    let hub = hub();
    let (_body, _inbound, task) = stream(&hub, "bob", 1).await;
    // The `connected` event fills the body's one slot; nothing reads it.
    for n in 0..3 {
        hub.send_to_user("bob", HubMessage::text(format!("m{n}")))
            .await
            .expect("queued");
    }
    tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("closed within the write timeout and the close grace")
        .expect("serve ends");
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_goes_away_is_unregistered_at_once() {
    let hub = hub();
    let (body, _inbound, task) = stream(&hub, "carol", 2).await;
    drop(body);
    tokio::time::timeout(Duration::from_millis(10), task)
        .await
        .expect("ended without waiting for a write")
        .expect("serve ends");
    assert_eq!(hub.connection_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn posted_frames_are_handled_in_order_and_answered_on_the_stream() {
    let hub = hub();
    let (mut body, inbound, _task) = stream(&hub, "dave", 8).await;
    for id in ["p1", "p2"] {
        let ping = format!(r#"{{"message_type":"ping","id":"{id}"}}"#);
        inbound.send(ping).await.expect("stream open");
    }
    let mut text = String::new();
    while !text.contains(r#""id":"p2""#) {
        let chunk = body.recv().await.expect("stream open");
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    let first = text.find(r#""id":"p1""#).expect("p1 answered");
    assert!(first < text.find(r#""id":"p2""#).unwrap(), "{text}");
    assert_eq!(text.matches("event: pong\n").count(), 2, "{text}");
}
