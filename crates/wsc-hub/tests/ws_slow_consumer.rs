//! Slow consumers: a client that stops reading fills its socket, then its bounded queue;
//! the policy applies to it alone and never blocks delivery to anyone else.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{Client, Disconnects, TestServer, config, duplex_client};
use tokio::time::Instant;
use wsc_hub::{
    DeliveryReport, DisconnectReason, ErrorEvent, FailureReason, Hub, HubMessage, Identity,
    SlowConsumerPolicy,
};

const BIG: usize = 128 * 1024;

fn big_message(i: usize) -> HubMessage {
    HubMessage::text(format!("{i}:{}", "x".repeat(BIG)))
}

/// Floods `slow` (which never reads) while `healthy` receives and checks every message sent
/// to it in the same loop. Returns how many floods were accepted and the first report
/// with a failure.
async fn flood(hub: &Hub, healthy: &mut Client) -> (usize, DeliveryReport) {
    for i in 0..5_000 {
        let report = hub.send_to_user("slow", big_message(i)).await.unwrap();
        if report.delivered != 1 {
            return (i, report);
        }
        let content = format!("to healthy {i}");
        let other = hub
            .send_to_user("healthy", HubMessage::text(content.clone()))
            .await
            .unwrap();
        assert_eq!(other.delivered, 1, "{other:?}");
        assert_eq!(healthy.recv_json().await["content"], content.as_str());
    }
    panic!("the slow consumer never filled its queue");
}

fn index_of(frame: &Value) -> usize {
    let content = frame["content"].as_str().expect("content");
    content.split(':').next().unwrap().parse().expect("index")
}

#[tokio::test]
async fn slow_consumer_is_disconnected_and_others_keep_receiving() {
    let hub = Hub::new(config(|c| {
        c.queue_capacity = 4;
        c.slow_consumer = SlowConsumerPolicy::Disconnect;
    }));
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let hub = server.hub.clone();
    let mut slow = server.connect_ready("user_id=slow&client_id=s1").await;
    let mut healthy = server.connect_ready("user_id=healthy&client_id=h1").await;

    let (accepted, report) = flood(&hub, &mut healthy).await;
    assert!(accepted >= 4, "only {accepted} messages were accepted");
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].client_id, "s1");
    assert_eq!(
        report.failures[0].reason,
        FailureReason::SlowConsumerDisconnected
    );
    let stats = hub.stats();
    assert_eq!(stats.slow_consumer_disconnects, 1);
    assert!(stats.messages_dropped >= 1);

    // Later sends to the closing connection fail without counting a second disconnect.
    let again = hub
        .send_to_user("slow", big_message(accepted))
        .await
        .unwrap();
    assert_eq!(again.delivered, 0);
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);

    // The healthy user is not affected.
    hub.send_to_user("healthy", HubMessage::text("after"))
        .await
        .unwrap();
    assert_eq!(healthy.recv_json().await["content"], "after");
    healthy.assert_nothing_received().await;

    // The slow client finally reads: what was written, in order, then a 1013 close.
    let (texts, code, reason) = slow.expect_close_after_texts().await;
    assert_eq!(code, 1013, "{reason}");
    assert!(texts.len() <= accepted, "{} > {accepted}", texts.len());
    for (expected, text) in texts.iter().enumerate() {
        let frame: Value = serde_json::from_str(text).unwrap();
        assert_eq!(index_of(&frame), expected, "out of order or duplicated");
    }
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "s1");
    assert_eq!(reason, DisconnectReason::SlowConsumer);
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);
}

#[tokio::test]
async fn drop_message_policy_drops_and_keeps_the_connection() {
    let hub = Hub::new(config(|c| {
        c.queue_capacity = 4;
        c.slow_consumer = SlowConsumerPolicy::DropMessage;
    }));
    let disconnects = Disconnects::record(&hub);
    let server = TestServer::serve(hub).await;
    let hub = server.hub.clone();
    let mut slow = server.connect_ready("user_id=slow&client_id=s1").await;
    let mut healthy = server.connect_ready("user_id=healthy&client_id=h1").await;

    let (accepted, report) = flood(&hub, &mut healthy).await;
    assert_eq!(report.delivered, 0, "{report:?}");
    assert_eq!(report.failures.len(), 1, "{report:?}");
    assert_eq!(report.failures[0].reason, FailureReason::QueueFull);
    let stats = hub.stats();
    assert_eq!(stats.messages_dropped, 1);
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert_eq!(hub.connection_count(), 2);

    // The slow client reads again: every accepted message arrives, in order, none of the
    // dropped one, and the connection still answers a ping.
    slow.send_text(r#"{"message_type":"ping","id":"back"}"#)
        .await;
    let mut received = 0;
    loop {
        let frame = slow.recv_json().await;
        if frame["message_type"] == "pong" {
            assert_eq!(frame["id"], "back");
            break;
        }
        assert_eq!(index_of(&frame), received, "out of order or duplicated");
        received += 1;
    }
    assert_eq!(received, accepted, "accepted messages were lost");
    let report = hub
        .send_to_user("slow", HubMessage::text("welcome back"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(slow.recv_json().await["content"], "welcome back");
    assert_eq!(disconnects.count(), 0);
    assert_eq!(hub.stats().messages_dropped, 1);
}

#[tokio::test(start_paused = true)]
async fn write_timeout_counts_as_a_slow_consumer_disconnect() {
    let hub = Hub::new(config(|c| {
        c.slow_consumer = SlowConsumerPolicy::DropMessage;
        c.write_timeout = Duration::from_secs(2);
    }));
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    let slow_events = Arc::new(AtomicUsize::new(0));
    let counter = slow_events.clone();
    hub.on_error(move |_, event| {
        if *event == ErrorEvent::SlowConsumer {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    // The client never reads; one message larger than the pipe's buffer stalls the write.
    let (_client, server_task) = duplex_client(&hub, Identity::new("stalled")).await;
    let start = Instant::now();
    let report = hub
        .send_to_user("stalled", HubMessage::text("y".repeat(512 * 1024)))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);

    let (_, reason) = tokio::time::timeout(Duration::from_secs(60), disconnects.next())
        .await
        .expect("the stalled connection was never closed");
    assert_eq!(reason, DisconnectReason::SlowConsumer);
    assert!(
        start.elapsed() >= Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    server_task.await.unwrap();
    assert_eq!(hub.connection_count(), 0);
    // Closed as a slow consumer: counted like one and reported to the error chain.
    assert_eq!(
        hub.stats().slow_consumer_disconnects,
        1,
        "a write-timeout slow-consumer close is not counted in stats"
    );
    assert_eq!(slow_events.load(Ordering::SeqCst), 1);
}
