//! The close-code contract of docs/protocol.md section 7, over real sockets: clients match
//! the reason texts to decide whether to reconnect, so each test asserts the exact code and
//! the exact text. Also the limits behind them: the byte rate, control frames outside the
//! frame rate, and a reconnect that takes over its own `client_id` on a full node.

mod support;

use std::time::Duration;

use futures_util::SinkExt;
use support::{WAIT, connect, local_config, next_json, start};
use tokio_tungstenite::tungstenite::Message;
use wsc_hub::HubMessage;
use wsc_testkit::ws::{SilentClient, close_after_frames, send};

#[tokio::test]
async fn replaced_by_a_newer_connection_is_1000_and_a_full_node_still_takes_the_replacement() {
    let mut config = local_config();
    config.wsc.performance.max_connections_per_node = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut old = connect(addr, "user_id=ann&client_id=c1").await;
    // The node is full, but the same user's client id replaces its live connection.
    let _new = connect(addr, "user_id=ann&client_id=c1").await;
    assert_eq!(
        close_after_frames(&mut old).await,
        (1000, "replaced by a newer connection".to_owned())
    );
    let (status, body) =
        wsc_testkit::ws::refused(&format!("ws://{addr}/ws?user_id=ann&client_id=c2"), &[]).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("node_full")));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn logged_in_elsewhere_is_1008_after_force_offline() {
    let mut config = local_config();
    config.wsc.multi_login.max_connections_per_user = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut old = connect(addr, "user_id=bo&client_id=phone").await;
    let _new = connect(addr, "user_id=bo&client_id=laptop").await;
    assert_eq!(next_json(&mut old).await["message_type"], "force_offline");
    assert_eq!(
        close_after_frames(&mut old).await,
        (1008, "logged in elsewhere".to_owned())
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn kicked_is_1008_with_the_reason() {
    let server = start(local_config()).await;
    let mut ws = connect(server.public_addr(), "user_id=kai").await;
    server
        .hub()
        .kick_user("kai", "spam", false)
        .await
        .expect("kicked");
    assert_eq!(
        close_after_frames(&mut ws).await,
        (1008, "kicked: spam".to_owned())
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_silent_client_times_out_with_1000() {
    let mut config = local_config();
    config.wsc.heartbeat_interval = Duration::from_millis(50);
    config.wsc.client_timeout = Duration::from_millis(200);
    let server = start(config).await;
    let silent = SilentClient::connect(server.public_addr(), "/ws?user_id=sil").await;
    assert_eq!(
        silent.close_frame().await,
        (1000, "client timeout: nothing received in time".to_owned())
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn stopping_the_server_is_1001() {
    let server = start(local_config()).await;
    let mut ws = connect(server.public_addr(), "user_id=sue").await;
    let stopping = tokio::spawn(server.stop(WAIT));
    assert_eq!(
        close_after_frames(&mut ws).await,
        (1001, "server shutting down".to_owned())
    );
    assert!(stopping.await.expect("stop task"));
}

#[tokio::test]
async fn a_client_that_does_not_read_is_a_slow_consumer_1013() {
    let mut config = local_config();
    config.wsc.message_buffer_size = 4;
    let server = start(config).await;
    let mut ws = connect(server.public_addr(), "user_id=slo").await;
    let hub = server.hub().clone();
    let body = "x".repeat(16 * 1024);
    // The socket's buffers take a few megabytes before the queue of 4 overflows.
    for _ in 0..20_000 {
        let _ = hub
            .send_to_user("slo", HubMessage::text(body.clone()))
            .await;
        if hub.stats().slow_consumer_disconnects > 0 {
            break;
        }
    }
    assert_eq!(hub.stats().slow_consumer_disconnects, 1);
    assert_eq!(
        close_after_frames(&mut ws).await,
        (1013, "slow consumer: try again later".to_owned())
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_is_1009() {
    let mut config = local_config();
    config.wsc.security.max_message_size = 1024;
    let server = start(config).await;
    let mut ws = connect(server.public_addr(), "user_id=big").await;
    send(&mut ws, &"x".repeat(2000)).await;
    assert_eq!(
        close_after_frames(&mut ws).await,
        (1009, "message too large".to_owned())
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_frame_rate_is_1008_binary_frames_count_and_control_frames_do_not() {
    let mut config = local_config();
    config.wsc.security.enable_rate_limit = true;
    config.wsc.security.max_messages_per_second = 2;
    config.wsc.security.max_bytes_per_second = 0;
    let server = start(config).await;
    let mut ws = connect(server.public_addr(), "user_id=rat").await;
    for _ in 0..2 {
        ws.send(Message::Ping(Default::default()))
            .await
            .expect("ping");
    }
    // Two pings use their own window; a binary frame and a text frame are the two allowed.
    ws.send(Message::binary(vec![1, 2, 3])).await.expect("sent");
    assert_eq!(
        next_json(&mut ws).await["data"]["code"],
        "binary_not_supported"
    );
    send(&mut ws, r#"{"message_type":"ping","id":"p1"}"#).await;
    assert_eq!(next_json(&mut ws).await["id"], "p1");
    send(&mut ws, r#"{"message_type":"ping","id":"p2"}"#).await;
    assert_eq!(
        close_after_frames(&mut ws).await,
        (
            1008,
            "rate limit exceeded: more than 2 messages per second".to_owned()
        )
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_ping_flood_is_1008_in_a_window_of_its_own() {
    let mut config = local_config();
    config.wsc.security.enable_rate_limit = true;
    config.wsc.security.max_messages_per_second = 5;
    let server = start(config).await;
    let mut ws = connect(server.public_addr(), "user_id=png").await;
    // Five pings and a pong are six control frames in one second: one too many, even
    // though no data frame was sent.
    for _ in 0..5 {
        ws.send(Message::Ping(Default::default()))
            .await
            .expect("ping");
    }
    ws.send(Message::Pong(Default::default()))
        .await
        .expect("pong");
    assert_eq!(
        close_after_frames(&mut ws).await,
        (
            1008,
            "rate limit exceeded: more than 5 control frames per second".to_owned()
        )
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_byte_rate_is_1008() {
    let mut config = local_config();
    config.wsc.security.enable_rate_limit = true;
    config.wsc.security.max_messages_per_second = 1000;
    config.wsc.security.max_bytes_per_second = 100;
    let server = start(config).await;
    let mut ws = connect(server.public_addr(), "user_id=byt").await;
    let frame = format!(
        r#"{{"message_type":"text","content":"{}"}}"#,
        "x".repeat(30)
    );
    assert!((50..=100).contains(&frame.len()), "{}", frame.len());
    send(&mut ws, &frame).await;
    send(&mut ws, &frame).await;
    assert_eq!(
        close_after_frames(&mut ws).await,
        (
            1008,
            "rate limit exceeded: more than 100 bytes per second".to_owned()
        )
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn breaking_the_websocket_protocol_is_1008_protocol_error() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    // A client frame must be masked: an unmasked text frame "hi".
    let mut unmasked = SilentClient::connect(addr, "/ws?user_id=pro").await;
    unmasked.send_raw(&[0x81, 0x02, b'h', b'i']).await;
    let (code, reason) = unmasked.close_frame().await;
    assert_eq!(code, 1008, "{reason}");
    // The detail is the WebSocket library's text (today "Received an unmasked frame from
    // client"); the documented part is the prefix.
    let detail = reason.strip_prefix("protocol error: ").expect("the prefix");
    assert!(detail.contains("unmasked"), "{reason}");
    // Opcode 0x3 is reserved: a masked, empty frame with it.
    let mut reserved = SilentClient::connect(addr, "/ws?user_id=pro2").await;
    reserved.send_raw(&[0x83, 0x80, 1, 2, 3, 4]).await;
    let (code, reason) = reserved.close_frame().await;
    assert_eq!(code, 1008, "{reason}");
    let detail = reason.strip_prefix("protocol error: ").expect("the prefix");
    assert!(!detail.is_empty(), "{reason}");
    server.stop(WAIT).await;
}
