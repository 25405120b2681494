//! Frames the server cannot accept: each gets an error frame with a stable `data.code`, and
//! the connection keeps working (a ping right after is answered).

mod support;

use serde_json::Value;
use support::{Client, TestServer, config, drain_messages, started};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use wsc_hub::{HubConfig, Identity};

async fn client() -> (TestServer, Client) {
    let server = TestServer::start(HubConfig::default()).await;
    let client = server.connect_ready("user_id=alice&client_id=a1").await;
    (server, client)
}

/// Sends `frame`, expects an error frame with `code`, then checks the connection still
/// answers a ping. Returns the error frame.
async fn assert_refused(client: &mut Client, frame: Message, code: &str) -> Value {
    client.send(frame).await;
    let error = client.expect_error(code).await;
    assert_eq!(error["sender"], "system", "{error}");
    client.ping().await;
    error
}

async fn assert_text_refused(text: &str, code: &str) -> Value {
    let (server, mut client) = client().await;
    let error = assert_refused(&mut client, Message::text(text), code).await;
    assert_eq!(server.hub.connection_count(), 1);
    assert_eq!(server.hub.stats().invalid_frames, 1);
    error
}

#[tokio::test]
async fn null_is_not_an_object() {
    let error = assert_text_refused("null", "not_an_object").await;
    assert!(
        error["content"].as_str().unwrap().contains("null"),
        "{error}"
    );
}

#[tokio::test]
async fn array_is_not_an_object() {
    assert_text_refused("[1]", "not_an_object").await;
}

#[tokio::test]
async fn number_is_not_an_object() {
    assert_text_refused("42", "not_an_object").await;
}

#[tokio::test]
async fn string_is_not_an_object() {
    assert_text_refused(r#""str""#, "not_an_object").await;
}

#[tokio::test]
async fn garbage_is_invalid_json() {
    assert_text_refused("not json", "invalid_json").await;
}

#[tokio::test]
async fn truncated_object_is_invalid_json() {
    assert_text_refused(r#"{"message_type":"ping""#, "invalid_json").await;
}

/// A frame whose nesting is `levels` deep: the frame itself, `data`, and objects inside.
fn nested(levels: usize) -> String {
    let inner = levels - 2;
    format!(
        r#"{{"message_type":"ping","data":{{{}"x":1{}}}}}"#,
        r#""a":{"#.repeat(inner),
        "}".repeat(inner)
    )
}

#[tokio::test]
async fn nesting_past_32_levels_is_too_deep() {
    assert_text_refused(&nested(33), "too_deep").await;
}

#[tokio::test]
async fn nesting_of_exactly_32_levels_is_accepted() {
    let (server, mut client) = client().await;
    client.send(Message::text(nested(32))).await;
    let answer = client.recv_json().await;
    assert_eq!(answer["message_type"], "pong", "{answer}");
    assert_eq!(server.hub.stats().invalid_frames, 0);
}

#[tokio::test]
async fn wrong_field_type_is_invalid_message_replying_to_its_id() {
    let error = assert_text_refused(r#"{"seq_no":"x","id":"abc"}"#, "invalid_message").await;
    assert_eq!(error["reply_to_msg_id"], "abc", "{error}");
}

#[tokio::test]
async fn ack_for_nothing_is_unknown_ack() {
    let error = assert_text_refused(
        r#"{"message_type":"ack","message_id":"nope","id":"ack-1"}"#,
        "unknown_ack",
    )
    .await;
    assert_eq!(error["reply_to_msg_id"], "ack-1", "{error}");
}

#[tokio::test]
async fn binary_frame_is_not_supported() {
    let (server, mut client) = client().await;
    assert_refused(
        &mut client,
        Message::binary(vec![1u8, 2, 3]),
        "binary_not_supported",
    )
    .await;
    assert_eq!(server.hub.connection_count(), 1);
    assert_eq!(server.hub.stats().invalid_frames, 1);
}

#[tokio::test]
async fn invalid_utf8_text_frame_gets_an_error_frame_then_close_1007() {
    let (server, mut client) = client().await;
    // tungstenite validates `Message::Text`, but a raw frame goes out as it is (masked).
    let raw = Frame::message(vec![0xffu8, 0xfe], OpCode::Data(Data::Text), true);
    client.send(Message::Frame(raw)).await;
    // RFC 6455 fails the connection on invalid UTF-8 (and the WebSocket stream cannot be
    // read past that error), so the client learns why twice: the error frame, then 1007.
    client.expect_error("invalid_utf8").await;
    let (code, reason) = client.expect_close().await;
    assert_eq!(
        (code, reason.as_str()),
        (1007, "text frame is not valid UTF-8")
    );
    assert_eq!(server.hub.stats().invalid_frames, 1);
}

#[tokio::test]
async fn every_malformed_frame_in_a_row_on_one_connection() {
    let (server, mut client) = client().await;
    let cases = [
        ("null", "not_an_object"),
        ("[1]", "not_an_object"),
        ("42", "not_an_object"),
        (r#""str""#, "not_an_object"),
        ("true", "not_an_object"),
        ("not json", "invalid_json"),
        ("", "invalid_json"),
        (r#"{"seq_no":"x","id":"abc"}"#, "invalid_message"),
        (
            r#"{"message_type":"ack","message_id":"nope"}"#,
            "unknown_ack",
        ),
        (r#"{"message_type":"ack"}"#, "unknown_ack"),
    ];
    for (text, code) in cases {
        assert_refused(&mut client, Message::text(text), code).await;
    }
    assert_refused(
        &mut client,
        Message::binary(vec![0u8]),
        "binary_not_supported",
    )
    .await;
    let stats = server.hub.stats();
    assert_eq!(stats.invalid_frames, cases.len() as u64 + 1);
    assert_eq!(server.hub.connection_count(), 1);
}

#[tokio::test]
async fn an_alias_with_its_canonical_name_or_an_unknown_source_refuses_the_frame() {
    let error = assert_text_refused(
        r#"{"id":"d1","type":"text","message_type":"text"}"#,
        "invalid_message",
    )
    .await;
    assert_eq!(error["reply_to_msg_id"], "d1", "{error}");
    let error = assert_text_refused(
        r#"{"id":"s1","message_type":"ping","source":"elsewhere"}"#,
        "invalid_message",
    )
    .await;
    assert_eq!(error["reply_to_msg_id"], "s1", "{error}");

    // `online` and `offline` are the accepted values (and the frame is handled).
    let (server, mut client) = client().await;
    for source in ["online", "offline"] {
        client
            .send_text(&format!(
                r#"{{"id":"ok-{source}","message_type":"ping","source":"{source}"}}"#
            ))
            .await;
        let pong = client.recv_json().await;
        assert_eq!(pong["message_type"], "pong", "{pong}");
        assert_eq!(pong["id"], format!("ok-{source}"), "{pong}");
    }
    assert_eq!(server.hub.stats().invalid_frames, 0);
}

#[tokio::test]
async fn too_deep_names_the_frames_id_and_frames_that_cannot_be_read_name_none() {
    let (_server, mut client) = client().await;
    // An object nested too deep still names the `id` it carried.
    let deep = nested(33).replacen('{', r#"{"id":"deep-1","#, 1);
    client.send_text(&deep).await;
    let error = client.expect_error("too_deep").await;
    assert_eq!(error["reply_to_msg_id"], "deep-1", "{error}");

    // Each of these carries an `id` the server could find, and none is named.
    let no_reply: [(Message, &str); 4] = [
        (Message::text(r#"{"id":"j1","content":"#), "invalid_json"),
        (Message::text(r#"[{"id":"o1"}]"#), "not_an_object"),
        (
            Message::binary(br#"{"id":"b1"}"#.to_vec()),
            "binary_not_supported",
        ),
        (Message::text(r#""{\"id\":\"s1\"}""#), "not_an_object"),
    ];
    for (frame, code) in no_reply {
        client.send(frame).await;
        let error = client.expect_error(code).await;
        assert!(error.get("reply_to_msg_id").is_none(), "{code}: {error}");
    }
    client.ping().await;

    // invalid_utf8: the error frame names nothing, then 1007.
    let mut bytes = br#"{"id":"u1","content":""#.to_vec();
    bytes.extend([0xff, 0xfe]);
    bytes.extend(br#""}"#);
    let raw = Frame::message(bytes, OpCode::Data(Data::Text), true);
    client.send(Message::Frame(raw)).await;
    let error = client.expect_error("invalid_utf8").await;
    assert!(error.get("reply_to_msg_id").is_none(), "{error}");
    assert_eq!(client.expect_close().await.0, 1007);
}

#[tokio::test]
async fn too_large_names_no_id() {
    // Over a WebSocket the transport closes with 1009 first; the hub's own check answers a
    // frame handed to it directly (as a transport without a size limit would).
    let hub = started(config(|c| c.limits.max_message_size = 64));
    let mut registration = hub
        .register(Identity::new("alice"))
        .await
        .expect("register");
    let text = format!(r#"{{"id":"big-1","content":"{}"}}"#, "x".repeat(100));
    registration.handle_text(&text).await;
    let frames = drain_messages(&mut registration);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let error = &frames[0];
    assert_eq!(error["message_type"], "error", "{error}");
    assert_eq!(error["data"]["code"], "too_large", "{error}");
    assert!(error.get("reply_to_msg_id").is_none(), "{error}");
}
