//! Inbound client frames: the server stamps the sender from the connection, relays status
//! frames to `receiver`, and hands the rest to the message-received callbacks.

mod support;

use std::sync::Arc;

use serde_json::json;
use support::TestServer;
use tokio::sync::mpsc;
use wsc_hub::{CallbackError, Connection, Hub, HubConfig, HubMessage, MessageType};

/// A hub whose message-received callback records every message (and its connection's
/// client id), refusing those whose content is `forbidden`.
fn recording_hub() -> (Hub, mpsc::UnboundedReceiver<(String, HubMessage)>) {
    let hub = Hub::new(HubConfig::default());
    let (tx, rx) = mpsc::unbounded_channel();
    hub.on_message_received(move |conn: Arc<Connection>, msg: Arc<HubMessage>| {
        let _ = tx.send((conn.client_id().to_owned(), (*msg).clone()));
        async move {
            if msg.content == "forbidden" {
                Err(CallbackError::from("not allowed here"))
            } else {
                Ok(())
            }
        }
    });
    (hub, rx)
}

#[tokio::test]
async fn sender_is_stamped_from_the_connection() {
    let (hub, mut received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server
        .connect_ready("user_id=alice&client_id=a1&user_type=customer&app_id=app1&namespace=ns1")
        .await;

    alice
        .send_json(&json!({
            "message_type": "text",
            "id": "m1",
            "sender": "mallory",
            "sender_type": "admin",
            "sender_client": "evil",
            "app_id": "other-app",
            "namespace": "other-ns",
            "content": "x",
        }))
        .await;
    // The ping's pong proves the frame before it was handled (frames are handled in order).
    alice.assert_nothing_received().await;

    let (client_id, msg) = received.try_recv().expect("callback did not run");
    assert_eq!(client_id, "a1");
    assert_eq!(msg.message_type, MessageType::Text);
    assert_eq!(msg.content, "x");
    assert_eq!(msg.id, "m1");
    assert_eq!(msg.sender, "alice");
    assert_eq!(msg.sender_client, "a1");
    assert_eq!(msg.sender_type, "customer");
    assert_eq!(msg.app_id, "app1");
    assert_eq!(msg.namespace, "ns1");
    assert!(!msg.create_at.is_empty(), "create_at is filled");
    // Pings are answered by the hub itself and never reach the callbacks.
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn typing_is_relayed_to_the_receiver_with_the_real_sender() {
    let (hub, mut received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    let mut alice2 = server.connect_ready("user_id=alice&client_id=a2").await;
    let mut bob = server.connect_ready("user_id=bob&client_id=b1").await;
    let mut carol = server.connect_ready("user_id=carol&client_id=c1").await;

    alice
        .send_json(&json!({
            "message_type": "typing",
            "sender": "mallory",
            "receiver": "bob",
            "id": "t1",
        }))
        .await;
    let frame = bob.recv_json().await;
    assert_eq!(frame["message_type"], "typing", "{frame}");
    assert_eq!(frame["sender"], "alice", "{frame}");
    assert_eq!(frame["sender_client"], "a1", "{frame}");
    assert_eq!(frame["receiver"], "bob", "{frame}");
    alice.assert_nothing_received().await;
    alice2.assert_nothing_received().await;
    carol.assert_nothing_received().await;
    // Relayed frames are handled by the hub, not by the message-received callbacks.
    assert!(received.try_recv().is_err());

    // Relaying to one's own user reaches the other devices, not the sending connection.
    alice
        .send_json(&json!({"message_type": "read", "receiver": "alice"}))
        .await;
    let frame = alice2.recv_json().await;
    assert_eq!(frame["message_type"], "read", "{frame}");
    assert_eq!(frame["sender_client"], "a1", "{frame}");
    alice.assert_nothing_received().await;
}

#[tokio::test]
async fn typing_without_receiver_is_missing_receiver() {
    let (hub, _received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    alice
        .send_json(&json!({"message_type": "typing", "id": "t2"}))
        .await;
    let error = alice.expect_error("missing_receiver").await;
    assert_eq!(error["reply_to_msg_id"], "t2", "{error}");
    alice.ping().await;
}

#[tokio::test]
async fn relay_policy_can_deny() {
    let hub = Hub::new(HubConfig::default());
    hub.set_relay_policy(|conn, msg| conn.user_id() == "agent" || msg.receiver == "agent");
    let server = TestServer::serve(hub).await;
    let mut customer = server.connect_ready("user_id=cust&client_id=c1").await;
    let mut other = server.connect_ready("user_id=other&client_id=o1").await;
    customer
        .send_json(&json!({"message_type": "typing", "receiver": "other", "id": "t3"}))
        .await;
    let error = customer.expect_error("relay_denied").await;
    assert_eq!(error["reply_to_msg_id"], "t3", "{error}");
    other.assert_nothing_received().await;
}

#[tokio::test]
async fn callback_error_answers_rejected() {
    let (hub, mut received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    alice
        .send_json(&json!({"message_type": "text", "content": "forbidden", "id": "bad"}))
        .await;
    let error = alice.expect_error("rejected").await;
    assert_eq!(error["reply_to_msg_id"], "bad", "{error}");
    assert!(
        error["content"]
            .as_str()
            .unwrap()
            .contains("not allowed here"),
        "{error}"
    );
    assert_eq!(received.try_recv().unwrap().1.content, "forbidden");
    // The connection stays open and later frames still reach the callbacks.
    alice
        .send_json(&json!({"message_type": "text", "content": "fine"}))
        .await;
    alice.ping().await;
    assert_eq!(received.try_recv().unwrap().1.content, "fine");
    assert_eq!(server.hub.stats().invalid_frames, 1);
}

#[tokio::test]
async fn callbacks_run_in_registration_order_and_stop_at_the_first_error() {
    let hub = Hub::new(HubConfig::default());
    let (tx, mut order) = mpsc::unbounded_channel();
    for name in ["first", "second", "third"] {
        let tx = tx.clone();
        hub.on_message_received(move |_conn, msg: Arc<HubMessage>| {
            let _ = tx.send(name);
            let refuse = name == "second" && msg.content == "stop";
            async move {
                if refuse {
                    Err(CallbackError::from("stopped"))
                } else {
                    Ok(())
                }
            }
        });
    }
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;

    alice.send_text(r#"{"content":"go"}"#).await;
    alice.ping().await;
    let seen: Vec<_> = std::iter::from_fn(|| order.try_recv().ok()).collect();
    assert_eq!(seen, ["first", "second", "third"]);

    alice.send_text(r#"{"content":"stop"}"#).await;
    alice.expect_error("rejected").await;
    let seen: Vec<_> = std::iter::from_fn(|| order.try_recv().ok()).collect();
    assert_eq!(seen, ["first", "second"]);
}

#[tokio::test]
async fn relays_stay_in_the_exact_scope_and_honour_receiver_client() {
    let (hub, _received) = recording_hub();
    let server = TestServer::serve(hub).await;
    // A connection without app/namespace must not reach users of a scoped app.
    let mut unscoped = server.connect_ready("user_id=eve&client_id=e1").await;
    let mut scoped = server
        .connect_ready("user_id=bob&client_id=b1&app_id=app1&namespace=ns1")
        .await;
    let mut bob_phone = server.connect_ready("user_id=bob&client_id=b2").await;
    let mut bob_tablet = server.connect_ready("user_id=bob&client_id=b3").await;

    unscoped
        .send_json(&json!({"message_type": "typing", "receiver": "bob", "receiver_client": "b3"}))
        .await;
    let frame = bob_tablet.recv_json().await;
    assert_eq!(frame["message_type"], "typing", "{frame}");
    assert_eq!(frame["sender"], "eve", "{frame}");
    bob_phone.assert_nothing_received().await;
    scoped.assert_nothing_received().await;
    unscoped.assert_nothing_received().await;
}

#[tokio::test]
async fn error_frames_name_only_the_id_the_client_sent() {
    let (hub, _received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice").await;
    alice
        .send_json(&json!({"message_type": "text", "content": "forbidden"}))
        .await;
    let error = alice.expect_error("rejected").await;
    assert!(error.get("reply_to_msg_id").is_none(), "{error}");
    alice
        .send_json(&json!({"message_type": "typing", "id": "t9"}))
        .await;
    let error = alice.expect_error("missing_receiver").await;
    assert_eq!(error["reply_to_msg_id"], "t9");
}

/// The keys of a frame, sorted.
fn keys(frame: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = frame
        .as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The keys docs/protocol.md section 3 marks "always", sorted.
const ALWAYS: [&str; 14] = [
    "content",
    "create_at",
    "id",
    "message_id",
    "message_type",
    "priority",
    "receiver",
    "receiver_name",
    "receiver_type",
    "sender",
    "sender_name",
    "sender_type",
    "seq_no",
    "session_id",
];

#[tokio::test]
async fn always_present_fields_are_in_every_frame_and_an_empty_scope_is_left_out() {
    let (hub, _received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    let mut bob = server.connect_ready("user_id=bob&client_id=b1").await;

    // A pong: exactly the always-present fields, the empty ones as "" and 0.
    let pong = alice.ping().await;
    assert_eq!(keys(&pong), ALWAYS, "{pong}");
    for key in ["sender_name", "receiver_name", "session_id", "content"] {
        assert_eq!(pong[key], "", "{key}: {pong}");
    }
    assert_eq!(pong["seq_no"], 0, "{pong}");
    assert_eq!(pong["receiver_type"], "visitor", "{pong}");

    // A relay from an unscoped connection: the sender's client id is added, but no empty
    // `app_id` / `namespace`.
    alice
        .send_json(&json!({"message_type": "typing", "receiver": "bob", "id": "t1"}))
        .await;
    let relayed = bob.recv_json().await;
    let mut expected = ALWAYS.to_vec();
    expected.push("sender_client");
    expected.sort_unstable();
    assert_eq!(keys(&relayed), expected, "{relayed}");

    // An error frame: `data` and `reply_to_msg_id` besides the always-present ones.
    alice
        .send_json(&json!({"message_type": "typing", "id": "t2"}))
        .await;
    let error = alice.expect_error("missing_receiver").await;
    let mut expected = ALWAYS.to_vec();
    expected.extend(["data", "reply_to_msg_id"]);
    expected.sort_unstable();
    assert_eq!(keys(&error), expected, "{error}");

    // A pushed message to a user carries its number.
    server
        .hub
        .send_to_user("bob", HubMessage::text("hi"))
        .await
        .expect("sent");
    let pushed = bob.recv_json().await;
    assert_eq!(keys(&pushed), ALWAYS, "{pushed}");
    assert_eq!(pushed["seq_no"], 1, "{pushed}");
}

#[tokio::test]
async fn input_defaults_a_missing_null_or_empty_type_is_text_and_ids_and_times_are_kept() {
    let (hub, mut received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;

    for frame in [
        json!({"id": "m1", "content": "a"}),
        json!({"id": "m2", "message_type": null, "content": "b"}),
        json!({"id": "m3", "message_type": "", "content": "c"}),
    ] {
        alice.send_json(&frame).await;
        alice.assert_nothing_received().await;
        let (_, msg) = received.try_recv().expect("the callback ran");
        assert_eq!(msg.message_type, MessageType::Text, "{frame}");
        assert_eq!(msg.message_type.as_str(), "text", "{frame}");
        // `message_id` defaults to the frame's `id`.
        assert_eq!(msg.message_id, frame["id"].as_str().unwrap(), "{frame}");
    }

    // A `message_id` and a `create_at` the client sends are kept as they are (not checked).
    alice
        .send_json(&json!({"id": "m4", "message_id": "biz-4", "create_at": "not a time"}))
        .await;
    alice.assert_nothing_received().await;
    let (_, msg) = received.try_recv().expect("the callback ran");
    assert_eq!(msg.id, "m4");
    assert_eq!(msg.message_id, "biz-4");
    assert_eq!(msg.create_at, "not a time");

    // A ping without an `id` gets a pong with an id the server generated (UUIDv7).
    alice.send_json(&json!({"message_type": "ping"})).await;
    let pong = alice.recv_json().await;
    assert_eq!(pong["message_type"], "pong", "{pong}");
    let id = pong["id"].as_str().expect("an id");
    assert_eq!(id.len(), 36, "{pong}");
    assert_eq!(&id[14..15], "7", "not a UUIDv7: {pong}");
    assert_eq!(pong["message_id"], id, "{pong}");
    assert!(received.try_recv().is_err());
}

/// The eight status types docs/protocol.md section 4 relays to `receiver`.
const RELAYED: [&str; 8] = [
    "typing",
    "read",
    "delivered",
    "recall",
    "edit",
    "reaction",
    "open_window",
    "close_window",
];

#[tokio::test]
async fn every_status_type_is_relayed_with_the_rest_of_the_frame_unchanged_and_no_unknown_field() {
    let (hub, mut received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    let mut bob = server.connect_ready("user_id=bob&client_id=b1").await;

    for kind in RELAYED {
        alice
            .send_json(&json!({
                "id": format!("{kind}-1"),
                "message_type": kind,
                "receiver": "bob",
                "content": "seen",
                "data": {"read_up_to": "m-42", "nested": {"n": [1, 2]}},
                "session_id": "s-7",
                "sender_name": "Alice A.",
                "receiver_name": "Bob B.",
                "custom_field": "dropped",
            }))
            .await;
        let frame = bob.recv_json().await;
        assert_eq!(frame["message_type"], kind, "{frame}");
        assert_eq!(frame["id"], format!("{kind}-1"), "{frame}");
        assert_eq!(frame["content"], "seen", "{frame}");
        assert_eq!(
            frame["data"],
            json!({"read_up_to": "m-42", "nested": {"n": [1, 2]}}),
            "{frame}"
        );
        assert_eq!(frame["session_id"], "s-7", "{frame}");
        assert_eq!(frame["sender_name"], "Alice A.", "{frame}");
        assert_eq!(frame["receiver_name"], "Bob B.", "{frame}");
        assert!(frame.get("custom_field").is_none(), "{frame}");
    }
    alice.assert_nothing_received().await;
    bob.assert_nothing_received().await;
    // Relays are the hub's own: none reached the callbacks.
    assert!(received.try_recv().is_err());
}

#[tokio::test]
async fn a_relay_skips_its_sender_even_when_named_and_is_dropped_for_an_offline_receiver() {
    let (hub, _received) = recording_hub();
    let server = TestServer::serve(hub).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    let mut alice2 = server.connect_ready("user_id=alice&client_id=a2").await;

    // `receiver_client` names the sending connection: nobody gets the frame.
    alice
        .send_json(&json!({"message_type": "typing", "receiver": "alice", "receiver_client": "a1"}))
        .await;
    alice.assert_nothing_received().await;
    alice2.assert_nothing_received().await;

    // An offline receiver: the frame is dropped, not stored for later.
    alice
        .send_json(&json!({"message_type": "read", "receiver": "dave", "id": "r1"}))
        .await;
    alice.assert_nothing_received().await;
    assert_eq!(server.hub.stats().offline_stored, 0);
    let mut dave = server.connect_ready("user_id=dave&client_id=d1").await;
    dave.assert_nothing_received().await;
    assert_eq!(server.hub.stats().offline_replayed, 0);
}
