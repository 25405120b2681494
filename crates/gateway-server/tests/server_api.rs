//! End-to-end tests of the REST server API (`/api/v1`), with real WebSocket clients and raw
//! HTTP/1.1 requests over 127.0.0.1.
//!
//! No test sleeps to wait for an event. A client is registered once `connect_async` returned
//! (the server registers before answering 101). To prove that a client did *not* receive a
//! message, the test sends it a ping and expects the pong as its very next frame: the server
//! queues a send before answering the API request, so a message that reached the client
//! would arrive before the pong.

mod support;

use serde_json::json;
use support::*;

// ------------------------------------------------------------------------------ 1. user sends

#[tokio::test]
async fn user_send_reaches_every_device_keeps_fields_and_numbers_messages() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut phone = connect(ws_addr, "user_id=alice&device_id=phone").await;
    let mut laptop = connect(ws_addr, "user_id=alice&device_id=laptop").await;
    let mut other = connect(ws_addr, "user_id=bob").await;

    let body = json!({
        "content": "hello",
        "message_type": "notice",
        "data": {"k": "v", "n": 1, "nested": {"x": [1, 2]}},
    });
    let report = post_ok(api, "/api/v1/users/alice/messages", &body.to_string()).await;
    assert_eq!(report["delivered"], 2, "{report}");
    assert_eq!(report["stored_offline"], false, "{report}");
    let message_id = report["message_id"]
        .as_str()
        .expect("message_id")
        .to_owned();
    assert!(!message_id.is_empty());

    for ws in [&mut phone, &mut laptop] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "hello", "{msg}");
        assert_eq!(msg["message_type"], "notice", "{msg}");
        assert_eq!(msg["data"], body["data"], "{msg}");
        assert_eq!(msg["receiver"], "alice", "{msg}");
        assert_eq!(msg["message_id"], message_id.as_str(), "{msg}");
        assert_eq!(msg["seq_no"], 1, "{msg}");
    }

    let report = post_ok(
        api,
        "/api/v1/users/alice/messages",
        r#"{"content":"again"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 2, "{report}");
    assert_ne!(report["message_id"], message_id.as_str());
    for ws in [&mut phone, &mut laptop] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "again", "{msg}");
        assert_eq!(msg["seq_no"], 2, "{msg}");
    }
    assert_nothing_pending(&mut other, "bob").await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn user_send_to_an_offline_user_is_stored_and_replayed_first_on_connect() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());

    let report = post_ok(
        api,
        "/api/v1/users/dave/messages",
        r#"{"content":"while you were away","data":{"a":1}}"#,
    )
    .await;
    assert_eq!(report["delivered"], 0, "{report}");
    assert_eq!(report["stored_offline"], true, "{report}");
    let message_id = report["message_id"].as_str().unwrap().to_owned();

    let mut ws = connect(ws_addr, "user_id=dave").await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["content"], "while you were away", "{first}");
    assert_eq!(first["source"], "offline", "{first}");
    assert_eq!(first["message_id"], message_id.as_str(), "{first}");
    // Replayed messages keep their data and are marked `data.offline` (docs/protocol.md).
    assert_eq!(first["data"], json!({"a": 1, "offline": true}), "{first}");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------- 2. user acks

#[tokio::test]
async fn user_send_with_ack_reports_the_acking_connection() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut ws = connect(ws_addr, "user_id=erin&client_id=erin-1").await;

    let request = spawn_post(
        api,
        "/api/v1/users/erin/messages",
        json!({"content": "ack me", "ack": {"timeout_ms": 2000, "retries": 1}}),
    );
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["content"], "ack me", "{msg}");
    assert!(
        msg.get("ack").is_none(),
        "`ack` is not a message field: {msg}"
    );
    let message_id = msg["message_id"].as_str().expect("message_id").to_owned();
    ack(&mut ws, &message_id).await;

    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report,
        json!({
            "message_id": message_id,
            "outcomes": [{"target": "erin", "status": "acked", "client_id": "erin-1", "attempts": 1}],
        })
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn user_send_with_ack_never_acked_is_resent_then_stored_offline() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut ws = connect(ws_addr, "user_id=frank").await;

    let request = spawn_post(
        api,
        "/api/v1/users/frank/messages",
        json!({"content": "ignored", "ack": {"timeout_ms": 100, "retries": 1}}),
    );
    let first = next_json(&mut ws).await;
    let second = next_json(&mut ws).await;
    assert_eq!(first["content"], "ignored", "{first}");
    assert_eq!(second["content"], "ignored", "{second}");
    assert_eq!(
        first["message_id"], second["message_id"],
        "a resend keeps the message_id"
    );
    let message_id = first["message_id"].as_str().unwrap();

    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["message_id"], message_id, "{report}");
    let outcomes = report["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 1, "{report}");
    assert_eq!(outcomes[0]["target"], "frank", "{report}");
    assert_eq!(outcomes[0]["status"], "stored_offline", "{report}");
    assert_eq!(outcomes[0]["attempts"], 2, "{report}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn bad_ack_options_are_400_invalid_body() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let _ws = connect(server.public_addr(), "user_id=gina").await;
    for body in [
        r#"{"content":"x","ack":{"timeout_ms":0}}"#,
        r#"{"content":"x","ack":{"bogus":1}}"#,
        r#"{"content":"x","ack":{"timeout_ms":300001}}"#,
        r#"{"content":"x","ack":"yes"}"#,
    ] {
        let (status, error) = post(api, "/api/v1/users/gina/messages", body).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_body")),
            "{body}: {error}"
        );
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------- 3. other send routes

#[tokio::test]
async fn ticket_send_excludes_the_sender_and_acks_per_connection() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut agent = connect(ws_addr, "user_id=agent1&client_id=a1&ticket_id=T1").await;
    let mut visitor = connect(ws_addr, "user_id=vis1&client_id=v1&ticket_id=T1").await;
    let mut visitor2 = connect(ws_addr, "user_id=vis1&client_id=v2&ticket_id=T1").await;
    let mut elsewhere = connect(ws_addr, "user_id=vis2&client_id=x1&ticket_id=T2").await;

    let report = post_ok(
        api,
        "/api/v1/tickets/T1/messages",
        r#"{"content":"on ticket","sender":"agent1"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 2, "{report}");
    for ws in [&mut visitor, &mut visitor2] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "on ticket", "{msg}");
        assert_eq!(msg["ticket_id"], "T1", "{msg}");
    }
    assert_nothing_pending(&mut agent, "sender").await;
    assert_nothing_pending(&mut elsewhere, "other ticket").await;

    // With ack: one outcome per connection.
    let request = spawn_post(
        api,
        "/api/v1/tickets/T1/messages",
        json!({"content": "ack per conn", "sender": "agent1",
               "ack": {"timeout_ms": 5000, "retries": 0}}),
    );
    let mut message_id = String::new();
    for ws in [&mut visitor, &mut visitor2] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "ack per conn", "{msg}");
        message_id = msg["message_id"].as_str().unwrap().to_owned();
        ack(ws, &message_id).await;
    }
    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["message_id"], message_id.as_str(), "{report}");
    let mut outcomes: Vec<(String, String, String, u64)> = report["outcomes"]
        .as_array()
        .expect("outcomes")
        .iter()
        .map(|o| {
            (
                o["target"].as_str().unwrap_or_default().to_owned(),
                o["status"].as_str().unwrap_or_default().to_owned(),
                o["client_id"].as_str().unwrap_or_default().to_owned(),
                o["attempts"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        vec![
            ("v1".into(), "acked".into(), "v1".into(), 1),
            ("v2".into(), "acked".into(), "v2".into(), 1),
        ],
        "{report}"
    );
    assert_nothing_pending(&mut agent, "sender after ack send").await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn group_send_reaches_connect_time_and_api_members() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut at_connect = connect(ws_addr, "user_id=g1&group_id=G,other").await;
    let mut via_api = connect(ws_addr, "user_id=g2").await;
    let mut outsider = connect(ws_addr, "user_id=g3").await;

    let (status, membership) = http(api, "PUT", "/api/v1/groups/G/members/g2", &[], None).await;
    assert_eq!(status, 200, "{membership}");
    assert_eq!(membership["added"], true, "{membership}");

    let report = post_ok(api, "/api/v1/groups/G/messages", r#"{"content":"to G"}"#).await;
    assert_eq!(report["delivered"], 2, "{report}");
    for ws in [&mut at_connect, &mut via_api] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "to G", "{msg}");
        assert!(
            msg["group_ids"]
                .as_array()
                .is_some_and(|g| g.contains(&json!("G"))),
            "{msg}"
        );
    }
    assert_nothing_pending(&mut outsider, "outsider").await;

    // After leaving through the API, g2 no longer receives group messages.
    let (status, _) = http(api, "DELETE", "/api/v1/groups/G/members/g2", &[], None).await;
    assert_eq!(status, 200);
    let report = post_ok(api, "/api/v1/groups/G/messages", r#"{"content":"G again"}"#).await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(next_json(&mut at_connect).await["content"], "G again");
    assert_nothing_pending(&mut via_api, "left the group").await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn connection_send_reaches_only_that_connection() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut c1 = connect(ws_addr, "user_id=hank&client_id=hank-1").await;
    let mut c2 = connect(ws_addr, "user_id=hank&client_id=hank-2").await;

    let report = post_ok(
        api,
        "/api/v1/connections/hank-1/messages",
        r#"{"content":"just you"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(next_json(&mut c1).await["content"], "just you");
    assert_nothing_pending(&mut c2, "the other device").await;

    // With ack: the outcome names the connection.
    let request = spawn_post(
        api,
        "/api/v1/connections/hank-2/messages",
        json!({"content": "ack", "ack": {"timeout_ms": 5000}}),
    );
    let msg = next_json(&mut c2).await;
    let message_id = msg["message_id"].as_str().unwrap().to_owned();
    ack(&mut c2, &message_id).await;
    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcomes"][0]["target"], "hank-2", "{report}");
    assert_eq!(report["outcomes"][0]["status"], "acked", "{report}");
    assert_eq!(report["outcomes"][0]["client_id"], "hank-2", "{report}");
    assert_nothing_pending(&mut c1, "not the acked connection").await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn broadcast_reaches_everyone_and_honours_exclude_user() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut a = connect(ws_addr, "user_id=ann").await;
    let mut b1 = connect(ws_addr, "user_id=ben").await;
    let mut b2 = connect(ws_addr, "user_id=ben").await;

    let report = post_ok(api, "/api/v1/broadcast", r#"{"content":"all"}"#).await;
    assert_eq!(report["delivered"], 3, "{report}");
    for ws in [&mut a, &mut b1, &mut b2] {
        assert_eq!(next_json(ws).await["content"], "all");
    }

    let report = post_ok(
        api,
        "/api/v1/broadcast",
        r#"{"content":"not ben","exclude_user":"ben"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 1, "{report}");
    let msg = next_json(&mut a).await;
    assert_eq!(msg["content"], "not ben", "{msg}");
    assert!(msg.get("exclude_user").is_none(), "{msg}");
    assert_nothing_pending(&mut b1, "ben 1").await;
    assert_nothing_pending(&mut b2, "ben 2").await;

    // Broadcasts are fire and forget.
    let (status, error) = post(
        api,
        "/api/v1/broadcast",
        r#"{"content":"x","ack":{"timeout_ms":100}}"#,
    )
    .await;
    assert_eq!((status, error_code(&error)), (400, Some("invalid_body")));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn broadcast_with_app_id_reaches_only_that_app() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut app1 = connect(ws_addr, "user_id=u1&app_id=app1").await;
    let mut app1b = connect(ws_addr, "user_id=u2&app_id=app1").await;
    let mut app2 = connect(ws_addr, "user_id=u3&app_id=app2").await;
    let mut no_app = connect(ws_addr, "user_id=u4").await;

    let report = post_ok(
        api,
        "/api/v1/broadcast",
        r#"{"content":"app1 only","app_id":"app1"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 2, "{report}");
    for ws in [&mut app1, &mut app1b] {
        let msg = next_json(ws).await;
        assert_eq!(msg["content"], "app1 only", "{msg}");
        assert_eq!(msg["app_id"], "app1", "{msg}");
    }
    assert_nothing_pending(&mut app2, "app2").await;
    assert_nothing_pending(&mut no_app, "no app").await;
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------------ 4. kick

#[tokio::test]
async fn kick_with_notify_sends_kick_out_then_closes_1008() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut k1 = connect(ws_addr, "user_id=kim").await;
    let mut k2 = connect(ws_addr, "user_id=kim").await;
    let mut bystander = connect(ws_addr, "user_id=lee").await;

    let (status, report) = http(
        api,
        "DELETE",
        "/api/v1/users/kim/connections?reason=spam&notify=true",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report, json!({"kicked": 2}));
    for ws in [&mut k1, &mut k2] {
        let notice = next_json(ws).await;
        assert_eq!(notice["message_type"], "kick_out", "{notice}");
        assert_eq!(notice["data"]["reason"], "spam", "{notice}");
        let (code, _) = next_close(ws).await;
        assert_eq!(code, 1008);
    }
    assert_nothing_pending(&mut bystander, "bystander").await;
    server.stop(WAIT).await;
}

#[tokio::test]
async fn kick_without_notify_only_closes() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut ws = connect(ws_addr, "user_id=max").await;

    let (status, report) = http(
        api,
        "DELETE",
        "/api/v1/users/max/connections?reason=spam&notify=false",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["kicked"], 1, "{report}");
    let (code, _) = next_close(&mut ws).await;
    assert_eq!(code, 1008);
    // The server unregisters the connection once the close handshake is over; the end of
    // the stream shows it is.
    wait_closed(&mut ws).await;

    // Nobody left to kick; a bad `notify` is a JSON 400.
    let (status, report) = http(api, "DELETE", "/api/v1/users/max/connections", &[], None).await;
    assert_eq!(
        (status, report["kicked"].as_u64()),
        (200, Some(0)),
        "{report}"
    );
    let (status, error) = http(
        api,
        "DELETE",
        "/api/v1/users/max/connections?notify=maybe",
        &[],
        None,
    )
    .await;
    assert_eq!(
        (status, error_code(&error)),
        (400, Some("invalid_query")),
        "{error}"
    );
    server.stop(WAIT).await;
}
