//! Runs the `gateway_callbacks` example with real WebSocket clients and checks its
//! middleware, callback chains, interceptors, echo and printed events.

mod common;

use std::path::Path;

use common::{
    Lines, assert_nothing_queued, close_frame, next_json, refused, send, stop, try_connect,
};
use tokio::sync::mpsc;

async fn start() -> (gateway::Gateway, Lines) {
    let (tx, rx) = mpsc::unbounded_channel();
    let gateway = examples::gateway_callbacks::start(Path::new(examples::CONFIG), tx)
        .await
        .expect("the example starts with its configuration");
    (gateway, Lines::new(rx))
}

#[tokio::test]
async fn a_session_header_connects_as_that_user_and_every_hook_runs() {
    let (gateway, mut lines) = start().await;
    assert!(gateway.is_running());
    lines.until_eq("event websocket.started ").await;

    let mut alice = try_connect(&gateway, "", &[("x-session", "alice")])
        .await
        .expect("the session header supplies the user");
    assert_eq!(
        gateway.get_websocket_online_users().await.unwrap(),
        ["alice"]
    );
    lines
        .until_all(&["connect chain 1: alice", "event client.connected alice"])
        .await;

    // Trimmed by the inbound interceptor, echoed by the message callback, marked by the
    // outbound interceptor.
    send(&mut alice, r#"{"id":"m1","content":"  hi  "}"#).await;
    let echo = next_json(&mut alice).await;
    assert_eq!(echo["content"], "echo: hi", "{echo}");
    assert_eq!(echo["data"]["via"], "gateway", "{echo}");
    assert_eq!(echo["receiver"], "alice");
    lines
        .until_all(&["event message.received alice", "event message.sent alice"])
        .await;

    // Refused by the inbound interceptor: an error frame, and no echo.
    send(&mut alice, r#"{"id":"m2","content":"buy spam"}"#).await;
    let error = next_json(&mut alice).await;
    assert_eq!(error["message_type"], "error", "{error}");
    assert_eq!(error["data"]["code"], "rejected", "{error}");
    assert_eq!(error["reply_to_msg_id"], "m2");
    assert!(
        error["content"].as_str().unwrap().contains("no spam"),
        "{error}"
    );
    assert_nothing_queued(&mut alice, "after-spam").await;

    alice.close(None).await.unwrap();
    lines
        .until_all(&[
            "disconnect: alice (closed by client)",
            "event client.disconnected alice",
        ])
        .await;

    assert!(stop(&gateway, Vec::new()).await);
    lines.until_eq("event websocket.stopped ").await;
}

#[tokio::test]
async fn the_query_user_id_still_works() {
    let (gateway, mut lines) = start().await;
    let mut bob = try_connect(&gateway, "user_id=bob", &[]).await.unwrap();
    lines.until_eq("connect chain 1: bob").await;
    send(&mut bob, r#"{"content":"hello"}"#).await;
    let echo = next_json(&mut bob).await;
    assert_eq!(echo["content"], "echo: hello", "{echo}");
    assert_eq!(echo["data"]["via"], "gateway");
    assert!(stop(&gateway, vec![bob]).await);
}

#[tokio::test]
async fn a_revoked_session_is_401_session_revoked() {
    let (gateway, mut lines) = start().await;
    let (status, body) = refused(&gateway, "user_id=alice", &[("x-session", "revoked")]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "session_revoked", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
    assert_eq!(gateway.get_websocket_online_user_count().await.unwrap(), 0);
    assert!(stop(&gateway, Vec::new()).await);
    // The refusal happened before any connect callback.
    lines.until_eq("event websocket.stopped ").await;
    assert!(
        !lines.seen.iter().any(|l| l.starts_with("connect chain")),
        "{:#?}",
        lines.seen
    );
}

#[tokio::test]
async fn a_banned_user_is_closed_with_1008() {
    let (gateway, mut lines) = start().await;
    let mut banned = try_connect(&gateway, "user_id=banned", &[]).await.unwrap();
    let (code, reason) = close_frame(&mut banned).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("banned"), "{reason}");
    lines.until_eq("connect chain 1: banned").await;
    assert_eq!(gateway.get_websocket_online_user_count().await.unwrap(), 0);
    drop(banned);
    assert!(stop(&gateway, Vec::new()).await);
    lines.until_eq("event websocket.stopped ").await;
    // Never admitted: no connected or disconnect line.
    assert!(
        !lines
            .seen
            .iter()
            .any(|l| l.contains("client.connected banned") || l.starts_with("disconnect: banned")),
        "{:#?}",
        lines.seen
    );
}
