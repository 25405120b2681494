//! The stats snapshot is exact: every counter matches what the test did.

mod support;

use std::sync::{Arc, Mutex};

use support::{Client, TestServer};
use wsc_hub::{Hub, HubConfig, HubMessage};

/// Tracks what one client sent and received, in frames and bytes.
#[derive(Default)]
struct Tally {
    frames_in: u64,
    bytes_in: u64,
    frames_out: u64,
    bytes_out: u64,
}

impl Tally {
    async fn send(&mut self, client: &mut Client, text: &str) {
        client.send_text(text).await;
        self.frames_in += 1;
        self.bytes_in += text.len() as u64;
    }

    async fn recv(&mut self, client: &mut Client) -> serde_json::Value {
        let text = client.recv_text().await;
        self.frames_out += 1;
        self.bytes_out += text.len() as u64;
        serde_json::from_str(&text).unwrap()
    }

    async fn ping(&mut self, client: &mut Client, id: &str) {
        self.send(client, &format!(r#"{{"message_type":"ping","id":"{id}"}}"#))
            .await;
        let pong = self.recv(client).await;
        assert_eq!(pong["message_type"], "pong", "{pong}");
        assert_eq!(pong["id"], id, "{pong}");
    }
}

#[tokio::test]
async fn stats_count_exactly_what_happened() {
    let hub = Hub::new(HubConfig::default());
    let before_start = hub.stats();
    assert_eq!(before_start.uptime_seconds, 0);
    assert_eq!(before_start.connections_accepted, 0);
    let mut server = TestServer::serve(hub).await;
    let hub = server.hub.clone();
    let mut tally = Tally::default();

    let mut alice = server.connect("user_id=alice&client_id=a1").await;
    tally.ping(&mut alice, "p1").await;
    let mut bob = server.connect("user_id=bob&client_id=b1").await;
    tally.ping(&mut bob, "p2").await;

    // Handed to the (empty) message-received chain: counted in, nothing out.
    tally
        .send(&mut alice, r#"{"message_type":"text","content":"hello"}"#)
        .await;
    // Two invalid frames, each answered with an error frame.
    tally.send(&mut alice, "null").await;
    assert_eq!(
        tally.recv(&mut alice).await["data"]["code"],
        "not_an_object"
    );
    tally
        .send(&mut alice, r#"{"message_type":"ack","message_id":"nope"}"#)
        .await;
    assert_eq!(tally.recv(&mut alice).await["data"]["code"], "unknown_ack");
    // Two messages from the server API; one to nobody.
    hub.send_to_user("alice", HubMessage::text("one"))
        .await
        .unwrap();
    assert_eq!(tally.recv(&mut alice).await["content"], "one");
    hub.send_to_user("bob", HubMessage::text("two"))
        .await
        .unwrap();
    assert_eq!(tally.recv(&mut bob).await["content"], "two");
    hub.send_to_user("nobody", HubMessage::text("lost"))
        .await
        .unwrap();
    // A final round trip: every frame before it was handled and written.
    tally.ping(&mut alice, "p3").await;

    bob.close(1000).await;
    server.wait_served(1).await;

    let stats = hub.stats();
    assert_eq!(stats.node_id, hub.node_id());
    assert_eq!(stats.connections, 1);
    assert_eq!(stats.users, 1);
    assert_eq!(stats.connections_accepted, 2);
    assert_eq!(stats.connections_rejected, 0);
    assert_eq!(stats.connections_closed, 1);
    assert_eq!(stats.messages_in, tally.frames_in);
    assert_eq!(stats.messages_in, 6);
    assert_eq!(stats.bytes_in, tally.bytes_in);
    assert_eq!(stats.messages_out, tally.frames_out);
    assert_eq!(stats.messages_out, 7);
    assert_eq!(stats.bytes_out, tally.bytes_out);
    assert_eq!(stats.invalid_frames, 2);
    assert_eq!(stats.messages_dropped, 0);
    assert_eq!(stats.slow_consumer_disconnects, 0);
    assert!(stats.uptime_seconds < 3600, "{}", stats.uptime_seconds);

    let json = serde_json::to_value(&stats).unwrap();
    assert!(json["uptime_seconds"].is_u64(), "{json}");
    assert_eq!(json["messages_in"], 6);
}

#[tokio::test]
async fn message_sent_callback_runs_once_per_send_with_the_report() {
    let hub = Hub::new(HubConfig::default());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    hub.on_message_sent(move |msg, report| {
        record
            .lock()
            .unwrap()
            .push((msg.content.clone(), report.delivered));
    });
    let server = TestServer::serve(hub).await;
    let mut a1 = server.connect_ready("user_id=alice&client_id=a1").await;
    let mut a2 = server.connect_ready("user_id=alice&client_id=a2").await;
    // The ready pings' pongs are direct replies, not sends.
    assert!(seen.lock().unwrap().is_empty());

    server
        .hub
        .send_to_user("alice", HubMessage::text("both"))
        .await
        .unwrap();
    server
        .hub
        .send_to_user("nobody", HubMessage::text("none"))
        .await
        .unwrap();
    a1.recv_json().await;
    a2.recv_json().await;
    assert_eq!(
        *seen.lock().unwrap(),
        [("both".to_owned(), 2), ("none".to_owned(), 0)]
    );
}
