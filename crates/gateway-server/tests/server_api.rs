//! End-to-end tests of the REST server API (`/api/v1`), with real WebSocket clients and raw
//! HTTP/1.1 requests over 127.0.0.1.
//!
//! No test sleeps to wait for an event. A client is registered once `connect_async` returned
//! (the server registers before answering 101). To prove that a client did *not* receive a
//! message, the test sends it a ping and expects the pong as its very next frame: the server
//! queues a send before answering the API request, so a message that reached the client
//! would arrive before the pong.

mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{
    Client, WAIT, connect, error_code, http, http_raw, local_config, next_frame, next_json, start,
};
use tokio_tungstenite::tungstenite::Message;

/// The next frame must be a close frame: its code and reason.
async fn next_close(ws: &mut Client) -> (u16, String) {
    match next_frame(ws).await {
        Message::Close(Some(frame)) => (u16::from(frame.code), frame.reason.to_string()),
        Message::Close(None) => (1005, String::new()),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

/// Reads until the server ends the stream (the close handshake is over, the connection gone).
async fn wait_closed(ws: &mut Client) {
    loop {
        match tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the stream ends in time")
        {
            None | Some(Err(_)) => return,
            Some(Ok(_)) => continue,
        }
    }
}

/// Proves nothing was queued for this client before now: a ping's pong is the next frame.
async fn assert_nothing_pending(ws: &mut Client, label: &str) {
    let id = format!("barrier-{label}");
    ws.send(Message::text(
        json!({"message_type": "ping", "id": id}).to_string(),
    ))
    .await
    .unwrap();
    let frame = next_json(ws).await;
    assert_eq!(
        (frame["message_type"].as_str(), frame["id"].as_str()),
        (Some("pong"), Some(id.as_str())),
        "{label} received an unexpected frame: {frame}"
    );
}

async fn ack(ws: &mut Client, message_id: &str) {
    ws.send(Message::text(
        json!({"message_type": "ack", "message_id": message_id}).to_string(),
    ))
    .await
    .unwrap();
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    http(addr, "GET", path, &[], None).await
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, Value) {
    http(addr, "POST", path, &[], Some(body)).await
}

/// A POST that must answer 200: its JSON body.
async fn post_ok(addr: SocketAddr, path: &str, body: &str) -> Value {
    let (status, json) = post(addr, path, body).await;
    assert_eq!(status, 200, "POST {path} {body}: {json}");
    json
}

/// A POST run concurrently (for acknowledged sends, which answer only after the ack).
fn spawn_post(addr: SocketAddr, path: &str, body: Value) -> tokio::task::JoinHandle<(u16, Value)> {
    let path = path.to_owned();
    tokio::spawn(async move { post(addr, &path, &body.to_string()).await })
}

async fn joined(task: tokio::task::JoinHandle<(u16, Value)>) -> (u16, Value) {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the API answered in time")
        .expect("the request task did not panic")
}

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

// ------------------------------------------------------------------------- 5. users paging

#[tokio::test]
async fn online_users_are_paged_with_a_total() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut clients = Vec::new();
    for user in ["u0", "u1", "u2", "u3", "u4"] {
        clients.push(connect(ws_addr, &format!("user_id={user}")).await);
    }
    // A second connection of a user does not count twice.
    clients.push(connect(ws_addr, "user_id=u2").await);

    let (status, page) = get(api, "/api/v1/users?offset=0&limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 5, "{page}");
    assert_eq!(page["offset"], 0, "{page}");
    assert_eq!(page["limit"], 2, "{page}");
    assert_eq!(page["users"], json!(["u0", "u1"]), "{page}");

    let (_, page) = get(api, "/api/v1/users?offset=2&limit=2").await;
    assert_eq!(page["users"], json!(["u2", "u3"]), "{page}");

    let (status, page) = get(api, "/api/v1/users?offset=4&limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].as_u64(), &page["users"]),
        (Some(5), &json!(["u4"]))
    );

    let (status, page) = get(api, "/api/v1/users?offset=10").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].as_u64(), &page["users"]),
        (Some(5), &json!([]))
    );

    let (status, page) = get(api, "/api/v1/users").await;
    assert_eq!(status, 200);
    assert_eq!(page["users"].as_array().map(Vec::len), Some(5), "{page}");

    for query in ["limit=0", "limit=5000", "limit=abc", "offset=-1"] {
        let (status, error) = get(api, &format!("/api/v1/users?{query}")).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_query")),
            "{query}: {error}"
        );
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------- 6. presence

#[tokio::test]
async fn presence_lists_connections_and_the_node() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let _a = connect(ws_addr, "user_id=pat&client_id=pat-1").await;
    let _b = connect(ws_addr, "user_id=pat&client_id=pat-2").await;

    let (status, presence) = get(api, "/api/v1/users/pat/presence").await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["user_id"], "pat");
    assert_eq!(presence["online"], true);
    let mut clients: Vec<&str> = presence["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["client_id"].as_str().expect("client_id"))
        .collect();
    clients.sort();
    assert_eq!(clients, ["pat-1", "pat-2"], "{presence}");
    assert!(
        presence["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user_id"] == "pat"),
        "{presence}"
    );
    assert_eq!(presence["nodes"], json!([server.hub().node_id()]));

    let (status, presence) = get(api, "/api/v1/users/nobody/presence").await;
    assert_eq!(status, 200);
    assert_eq!(
        presence,
        json!({"user_id": "nobody", "online": false, "connections": [], "nodes": []})
    );
    server.stop(WAIT).await;
}

// ---------------------------------------------------------------------------------- 7. stats

#[tokio::test]
async fn stats_move_after_a_send() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let (status, before) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["connections"], 0, "{before}");
    assert_eq!(before["messages_out"], 0, "{before}");
    assert_eq!(before["node_id"], server.hub().node_id());

    let mut a = connect(ws_addr, "user_id=sam").await;
    let mut b = connect(ws_addr, "user_id=sam").await;
    post_ok(
        api,
        "/api/v1/users/sam/messages",
        r#"{"content":"count me"}"#,
    )
    .await;
    for ws in [&mut a, &mut b] {
        assert_eq!(next_json(ws).await["content"], "count me");
        // The server writes the pong after it recorded the message as written.
        assert_nothing_pending(ws, "stats").await;
    }

    let (status, after) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["connections"], 2, "{after}");
    assert_eq!(after["users"], 1, "{after}");
    assert_eq!(after["connections_accepted"], 2, "{after}");
    // Two copies of the message plus the two pongs.
    assert_eq!(after["messages_out"], 4, "{after}");
    assert_eq!(after["messages_in"], 2, "the two pings: {after}");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 8. groups

#[tokio::test]
async fn group_membership_add_list_remove() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let _connected = connect(server.public_addr(), "user_id=bea&group_id=team").await;

    for (user, added) in [("zed", true), ("adam", true), ("zed", false)] {
        let (status, body) = http(
            api,
            "PUT",
            &format!("/api/v1/groups/team/members/{user}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"group_id": "team", "user_id": user, "member": true, "added": added})
        );
    }
    let (status, members) = get(api, "/api/v1/groups/team/members").await;
    assert_eq!(status, 200);
    assert_eq!(
        members,
        json!({"group_id": "team", "total": 3, "members": ["adam", "bea", "zed"]})
    );

    for (user, removed) in [("zed", true), ("zed", false), ("nobody", false)] {
        let (status, body) = http(
            api,
            "DELETE",
            &format!("/api/v1/groups/team/members/{user}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"group_id": "team", "user_id": user, "member": false, "removed": removed})
        );
    }
    let (_, members) = get(api, "/api/v1/groups/team/members").await;
    assert_eq!(
        members,
        json!({"group_id": "team", "total": 2, "members": ["adam", "bea"]})
    );
    let (_, members) = get(api, "/api/v1/groups/empty/members").await;
    assert_eq!(
        members,
        json!({"group_id": "empty", "total": 0, "members": []})
    );
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 9. errors

#[tokio::test]
async fn bad_bodies_and_unknown_routes_are_json_errors() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    for body in [
        "{not json",
        "[1]",
        r#""text""#,
        r#"{"content": 5}"#,
        r#"{"data": "not an object"}"#,
    ] {
        let (status, error) = post(api, "/api/v1/users/x/messages", body).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_body")),
            "{body}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }

    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/nope"),
        ("POST", "/api/v1/users/x/messages/extra"),
    ] {
        let (status, error) = http(api, method, path, &[], None).await;
        assert_eq!(
            (status, error_code(&error)),
            (404, Some("not_found")),
            "{method} {path}: {error}"
        );
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn wrong_method_on_a_route_is_405() {
    let server = start(local_config()).await;
    let (status, head, _body) =
        http_raw(server.api_addr(), "GET", "/api/v1/broadcast", &[], None).await;
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("\r\nallow: post"), "{head}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_stopped_hub_answers_503_not_running() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let (status, _) = get(api, "/ready").await;
    assert_eq!(status, 200);

    // Stopping the hub alone keeps both listeners answering.
    server.hub().stop(WAIT).await;
    assert!(!server.hub().is_running());
    for path in ["/api/v1/users/x/messages", "/api/v1/broadcast"] {
        let (status, error) = post(api, path, r#"{"content":"x"}"#).await;
        assert_eq!(
            (status, error_code(&error)),
            (503, Some("not_running")),
            "{path}: {error}"
        );
    }
    let (status, error) = http(api, "DELETE", "/api/v1/users/x/connections", &[], None).await;
    assert_eq!((status, error_code(&error)), (503, Some("not_running")));
    let (status, ready) = get(api, "/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["checks"]["hub"], "stopped", "{ready}");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 10. API keys

#[tokio::test]
async fn api_keys_guard_the_api_but_not_health_ready_or_openapi() {
    let mut config = local_config();
    config.api.keys = vec!["k1".to_owned(), "k2".to_owned()];
    let server = start(config).await;
    let api = server.api_addr();

    let (status, error) = get(api, "/api/v1/stats").await;
    assert_eq!(
        (status, error_code(&error)),
        (401, Some("missing_api_key")),
        "{error}"
    );
    for auth in ["Bearer nope", "Bearer k", "Bearer k1k2", "Basic k1"] {
        let (status, error) = http(
            api,
            "GET",
            "/api/v1/stats",
            &[("authorization", auth)],
            None,
        )
        .await;
        assert_eq!(status, 401, "{auth}: {error}");
    }
    let (status, error) = http(
        api,
        "GET",
        "/api/v1/stats",
        &[("authorization", "Bearer wrong")],
        None,
    )
    .await;
    assert_eq!((status, error_code(&error)), (401, Some("invalid_api_key")));

    for key in ["k1", "k2"] {
        let auth = format!("Bearer {key}");
        let (status, stats) = http(
            api,
            "GET",
            "/api/v1/stats",
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
        assert_eq!(status, 200, "{key}: {stats}");
        assert_eq!(stats["node_id"], server.hub().node_id());
    }
    // A send with the key works; without it, nothing is sent.
    let (status, error) = post(api, "/api/v1/broadcast", r#"{"content":"x"}"#).await;
    assert_eq!((status, error_code(&error)), (401, Some("missing_api_key")));
    let (status, report) = http(
        api,
        "POST",
        "/api/v1/broadcast",
        &[("authorization", "Bearer k2")],
        Some(r#"{"content":"x"}"#),
    )
    .await;
    assert_eq!(
        (status, report["delivered"].as_u64()),
        (200, Some(0)),
        "{report}"
    );

    for path in ["/health", "/ready", "/api/v1/openapi.json"] {
        let (status, body) = get(api, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 11. OpenAPI

/// The REST routes of the product spec (section 7), plus health and readiness.
const SPEC_ROUTES: &[(&str, &str)] = &[
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/api/v1/openapi.json"),
    ("post", "/api/v1/users/{user_id}/messages"),
    ("post", "/api/v1/tickets/{ticket_id}/messages"),
    ("post", "/api/v1/groups/{group_id}/messages"),
    ("post", "/api/v1/connections/{client_id}/messages"),
    ("post", "/api/v1/broadcast"),
    ("delete", "/api/v1/users/{user_id}/connections"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}/presence"),
    ("get", "/api/v1/stats"),
    ("put", "/api/v1/groups/{group_id}/members/{user_id}"),
    ("delete", "/api/v1/groups/{group_id}/members/{user_id}"),
    ("get", "/api/v1/groups/{group_id}/members"),
];

fn fill_params(path: &str) -> String {
    path.replace("{user_id}", "oa-user")
        .replace("{ticket_id}", "oa-ticket")
        .replace("{group_id}", "oa-group")
        .replace("{client_id}", "oa-client")
}

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    // Targets exist, so every send has somewhere to go.
    let _ws = connect(
        server.public_addr(),
        "user_id=oa-user&client_id=oa-client&ticket_id=oa-ticket&group_id=oa-group",
    )
    .await;

    let (status, doc) = get(api, "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string());
    let paths = doc["paths"].as_object().expect("paths");

    let mut documented = Vec::new();
    for (path, operations) in paths {
        for method in operations.as_object().expect("operations").keys() {
            documented.push((method.to_owned(), path.to_owned()));
        }
    }
    for (method, path) in SPEC_ROUTES {
        assert!(
            documented.iter().any(|(m, p)| m == method && p == path),
            "{method} {path} is not documented"
        );
    }

    for (method, path) in &documented {
        let filled = fill_params(path);
        assert!(!filled.contains('{'), "unknown path parameter in {path}");
        let body = match method.as_str() {
            "post" if path.contains("/messages") || path.ends_with("/broadcast") => {
                Some(r#"{"content":"x"}"#)
            }
            "post" | "put" => Some("{}"),
            _ => None,
        };
        let method = method.to_ascii_uppercase();
        let (status, head, text) = http_raw(api, &method, &filled, &[], body).await;
        assert!(
            status != 404 && status != 405,
            "{method} {filled} (documented as {path}) answered {status}: {head}\n{text}"
        );
        assert!(status < 500, "{method} {filled} answered {status}: {text}");
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------- 12. error shapes

/// The API's body limit (docs/server-api.md).
const MAX_BODY: usize = 1024 * 1024;

/// A send body of exactly `len` bytes: a message padded with trailing spaces.
fn body_of_len(len: usize) -> String {
    let mut body = r#"{"content":"big"}"#.to_owned();
    body.push_str(&" ".repeat(len - body.len()));
    body
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    // One byte over: axum's body limit used to answer in plain text.
    let body = body_of_len(MAX_BODY + 1);
    for path in ["/api/v1/users/big/messages", "/api/v1/broadcast"] {
        let (status, error) = post(api, path, &body).await;
        assert_eq!(
            (status, error_code(&error)),
            (413, Some("body_too_large")),
            "{path}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }
    // Exactly the limit is accepted.
    let (status, report) = post(api, "/api/v1/users/big/messages", &body_of_len(MAX_BODY)).await;
    assert_eq!(status, 200, "{report}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn undecodable_paths_are_json_400_invalid_path() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    for (method, path, body) in [
        ("GET", "/api/v1/users/%FF/presence", None),
        (
            "POST",
            "/api/v1/users/%C3%28/messages",
            Some(r#"{"content":"x"}"#),
        ),
        ("DELETE", "/api/v1/users/%FF%FE/connections", None),
        ("GET", "/api/v1/groups/%80/members", None),
        ("PUT", "/api/v1/groups/g/members/%FF", None),
        ("DELETE", "/api/v1/groups/%FF/members/u", None),
        (
            "POST",
            "/api/v1/connections/%E2%82/messages",
            Some(r#"{"content":"x"}"#),
        ),
    ] {
        let (status, error) = http(api, method, path, &[], body).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_path")),
            "{method} {path}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }
    server.stop(WAIT).await;
}

/// The OpenAPI schema `schema` (resolving `$ref`s in `doc`).
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            let target = doc
                .pointer(pointer)
                .unwrap_or_else(|| panic!("dangling {reference}"));
            resolve(doc, target)
        }
        None => schema,
    }
}

/// Every problem of `value` against `schema`: keys the schema does not list, required keys
/// that are missing, and values of another type. Stricter than JSON Schema on purpose: a key
/// is documented only if it is a listed property or the schema describes its map values.
fn undocumented(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        let fits: Vec<Vec<String>> = choices
            .iter()
            .map(|choice| undocumented(doc, choice, value, at))
            .collect();
        return match fits.iter().filter(|problems| problems.is_empty()).count() {
            1 => Vec::new(),
            0 => vec![format!("{at}: matches no `oneOf` choice: {fits:?}")],
            _ => vec![format!("{at}: matches several `oneOf` choices")],
        };
    }
    let mut problems = Vec::new();
    let kind = schema["type"].as_str();
    let fits = match (kind, value) {
        (None, _) => true,
        (Some("object"), Value::Object(_)) | (Some("array"), Value::Array(_)) => true,
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_u64() || n.is_i64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !fits {
        problems.push(format!("{at}: {value} is not of type {kind:?}"));
        return problems;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    problems.push(format!("{at}: required `{name}` is missing"));
                }
            }
            for (key, field) in fields {
                let path = format!("{at}.{key}");
                match properties.and_then(|p| p.get(key)) {
                    Some(property) => problems.extend(undocumented(doc, property, field, &path)),
                    None => match &schema["additionalProperties"] {
                        Value::Bool(true) => {}
                        additional @ Value::Object(_) => {
                            problems.extend(undocumented(doc, additional, field, &path));
                        }
                        _ => problems.push(format!("{path}: not in the schema")),
                    },
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                problems.extend(undocumented(
                    doc,
                    &schema["items"],
                    item,
                    &format!("{at}[{index}]"),
                ));
            }
        }
        _ => {}
    }
    problems
}

/// Checks a real answer against the documented 200 response of `method path`.
fn check_documented(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let operation = &doc["paths"][path][method];
    let response = match &operation["responses"][status.to_string()] {
        Value::Null => &operation["responses"]["default"],
        response => response,
    };
    let schema = &response["content"]["application/json"]["schema"];
    assert!(
        !schema.is_null(),
        "{method} {path}: no schema for status {status}"
    );
    let problems = undocumented(doc, schema, body, "$");
    assert!(
        problems.is_empty(),
        "{method} {path} returned fields the OpenAPI document does not describe:\n{}\n{body}",
        problems.join("\n")
    );
}

#[tokio::test]
async fn the_openapi_document_is_valid_openapi_3_0() {
    let server = start(local_config()).await;
    let (status, doc) = get(server.api_addr(), "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.0.3");
    // The 3.0 object model: a `"type": [..]` list (JSON Schema 2020-12 / OpenAPI 3.1) or a
    // malformed schema fails here.
    let parsed: openapiv3::OpenAPI = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("not an OpenAPI 3.0 document: {e}"));
    assert_eq!(parsed.openapi, "3.0.3");
    // And every `type` anywhere is one of the 3.0 names.
    fn types(value: &Value, at: &str, bad: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let path = format!("{at}/{key}");
                    if key == "type"
                        && !matches!(
                            child.as_str(),
                            Some(
                                "object"
                                    | "array"
                                    | "string"
                                    | "integer"
                                    | "number"
                                    | "boolean"
                                    | "http"
                                    | "apiKey"
                                    | "oauth2"
                                    | "openIdConnect"
                            )
                        )
                    {
                        bad.push(format!("{path}: {child}"));
                    }
                    types(child, &path, bad);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    types(item, &format!("{at}/{i}"), bad);
                }
            }
            _ => {}
        }
    }
    let mut bad = Vec::new();
    types(&doc, "", &mut bad);
    assert!(bad.is_empty(), "invalid types: {bad:?}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn every_response_field_is_in_the_openapi_document() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let (_, doc) = get(api, "/api/v1/openapi.json").await;
    let mut ws = connect(
        ws_addr,
        "user_id=doc-user&client_id=doc-client&ticket_id=doc-ticket&group_id=doc-group&app_id=a&namespace=n",
    )
    .await;
    let _other = connect(ws_addr, "user_id=doc-other&ticket_id=doc-ticket").await;
    let mut checked = Vec::new();
    let mut check = |method: &str, path: &str, status: u16, body: &Value| {
        check_documented(&doc, method, path, status, body);
        checked.push((method.to_owned(), path.to_owned()));
    };

    for (path, real) in [
        ("/health", "/health".to_owned()),
        ("/ready", "/ready".to_owned()),
        ("/api/v1/openapi.json", "/api/v1/openapi.json".to_owned()),
        ("/api/v1/users", "/api/v1/users?limit=10".to_owned()),
        (
            "/api/v1/users/{user_id}/presence",
            "/api/v1/users/doc-user/presence".to_owned(),
        ),
        (
            "/api/v1/groups/{group_id}/members",
            "/api/v1/groups/doc-group/members".to_owned(),
        ),
    ] {
        let (status, body) = get(api, &real).await;
        assert_eq!(status, 200, "{real}: {body}");
        check("get", path, status, &body);
    }

    // Plain sends: delivery reports.
    for (path, real) in [
        (
            "/api/v1/users/{user_id}/messages",
            "/api/v1/users/doc-user/messages",
        ),
        (
            "/api/v1/tickets/{ticket_id}/messages",
            "/api/v1/tickets/doc-ticket/messages",
        ),
        (
            "/api/v1/groups/{group_id}/messages",
            "/api/v1/groups/doc-group/messages",
        ),
        (
            "/api/v1/connections/{client_id}/messages",
            "/api/v1/connections/doc-client/messages",
        ),
        ("/api/v1/broadcast", "/api/v1/broadcast"),
    ] {
        let body = post_ok(api, real, r#"{"content":"doc","message_type":"notice"}"#).await;
        check("post", path, 200, &body);
        next_json(&mut ws).await;
    }
    // An offline user: stored offline.
    let body = post_ok(
        api,
        "/api/v1/users/nobody-here/messages",
        r#"{"content":"x"}"#,
    )
    .await;
    check("post", "/api/v1/users/{user_id}/messages", 200, &body);

    // An acknowledged send: the ack report, with an acked outcome (it carries `client_id`).
    let request = spawn_post(
        api,
        "/api/v1/users/doc-user/messages",
        json!({"content": "ack", "ack": {"timeout_ms": 5000}}),
    );
    let message = next_json(&mut ws).await;
    ack(&mut ws, message["message_id"].as_str().unwrap()).await;
    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    check("post", "/api/v1/users/{user_id}/messages", 200, &report);
    // And one that times out into the offline store.
    let (status, report) = post(
        api,
        "/api/v1/users/nobody-here/messages",
        r#"{"content":"x","ack":{"timeout_ms":50,"retries":0}}"#,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    check("post", "/api/v1/users/{user_id}/messages", 200, &report);

    // Stats after traffic, so the by-type maps and the latency buckets are filled.
    let (status, stats) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200);
    assert!(
        !stats["messages_out_by_type"]
            .as_object()
            .unwrap()
            .is_empty(),
        "{stats}"
    );
    check("get", "/api/v1/stats", status, &stats);

    for (method, path, real) in [
        (
            "put",
            "/api/v1/groups/{group_id}/members/{user_id}",
            "/api/v1/groups/doc-group/members/zed",
        ),
        (
            "delete",
            "/api/v1/groups/{group_id}/members/{user_id}",
            "/api/v1/groups/doc-group/members/zed",
        ),
        (
            "delete",
            "/api/v1/users/{user_id}/connections",
            "/api/v1/users/doc-other/connections",
        ),
    ] {
        let (status, body) = http(api, &method.to_ascii_uppercase(), real, &[], None).await;
        assert_eq!(status, 200, "{real}: {body}");
        check(method, path, status, &body);
    }

    // Errors, with the documented error schema.
    let (status, error) = get(api, "/api/v1/users?limit=0").await;
    assert_eq!(status, 400);
    check("get", "/api/v1/users", status, &error);

    // Every documented operation was checked against a real answer.
    let mut documented = Vec::new();
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            documented.push((method.clone(), path.clone()));
        }
    }
    for operation in &documented {
        assert!(checked.contains(operation), "{operation:?} was not checked");
    }
    server.stop(WAIT).await;
}
