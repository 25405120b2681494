//! End-to-end tests of the server-sent events transport (`/sse`, docs/protocol.md section
//! 10): delivery as numbered events, keepalive comments, acks and frames by POST,
//! `Last-Event-ID` resume, cleanup when the client goes away, the closing event, CORS, and
//! the same refusals as `/ws`.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use gateway_server::RunningServer;
use serde_json::{Value, json};
use support::{WAIT, connect, http, joined, local_config, next_json, post_ok, spawn_post, start};
use wsc_testkit::cluster::eventually;
use wsc_testkit::sse::{self, SseStream};

async fn open(addr: SocketAddr, query: &str) -> SseStream {
    sse::open(addr, &format!("/sse?{query}"), &[])
        .await
        .unwrap_or_else(|(status, body)| panic!("stream refused: {status} {body}"))
}

async fn refused(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match sse::open(addr, &format!("/sse?{query}"), headers).await {
        Ok(stream) => panic!("stream opened with status {}", stream.status),
        Err(refusal) => refusal,
    }
}

/// POSTs `body` to `/sse/{what}` naming `session`.
async fn post_frame(addr: SocketAddr, what: &str, session: &str, body: &str) -> (u16, Value) {
    let headers: Vec<(&str, &str)> = if session.is_empty() {
        vec![]
    } else {
        vec![("x-wsc-session", session)]
    };
    http(addr, "POST", &format!("/sse/{what}"), &headers, Some(body)).await
}

async fn stopped(server: RunningServer) {
    assert!(server.stop(WAIT).await, "the server drains in time");
}

#[tokio::test]
async fn a_stream_starts_with_connected_then_gets_messages_as_events() {
    let server = start(local_config()).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    let mut stream = open(addr, "user_id=alice&client_id=a1").await;
    assert_eq!(stream.headers["content-type"], "text/event-stream");
    assert_eq!(stream.headers["cache-control"], "no-cache");
    assert_eq!(stream.headers["x-wsc-client-id"], "a1");
    assert_eq!(stream.headers["x-wsc-node-id"], server.hub().node_id());
    let (client_id, session) = stream.connected().await;
    assert_eq!(client_id, "a1");
    assert_eq!(session.len(), 32, "{session}");
    assert_eq!(server.hub().connection_count(), 1);

    post_ok(api, "/api/v1/users/alice/messages", r#"{"content":"hi"}"#).await;
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("text"), "{event:?}");
    assert_eq!(event.id.as_deref(), Some("1"), "numbered: the id is seq_no");
    let msg = event.json();
    assert_eq!(
        (msg["content"].as_str(), msg["seq_no"].as_i64()),
        (Some("hi"), Some(1))
    );

    // A broadcast is not numbered per user: no id, so Last-Event-ID keeps the last seq_no.
    post_ok(
        api,
        "/api/v1/broadcast",
        r#"{"content":"all","message_type":"notice"}"#,
    )
    .await;
    let event = stream.next_event().await;
    assert_eq!(event.event.as_deref(), Some("notice"), "{event:?}");
    assert_eq!(event.id, None);
    assert_eq!(event.json()["content"], "all");

    let listed = server.hub().user_connections("alice").expect("valid id");
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].metadata.get("transport").map(String::as_str),
        Some("sse")
    );
    stopped(server).await;
}

#[tokio::test]
async fn keepalive_comments_come_every_heartbeat() {
    let mut config = local_config();
    config.wsc.sse.heartbeat = Duration::from_millis(50);
    let server = start(config).await;
    let mut stream = open(server.public_addr(), "user_id=hb").await;
    stream.connected().await;
    for _ in 0..2 {
        let block = stream.next_block().await.expect("stream open");
        assert_eq!(block.comments, ["ping"], "{block:?}");
        assert_eq!((block.event, block.data.as_str()), (None, ""));
    }
    stopped(server).await;
}

#[tokio::test]
async fn an_ack_posted_for_the_stream_settles_an_acknowledged_send() {
    let server = start(local_config()).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    let mut stream = open(addr, "user_id=bob&client_id=bob-1").await;
    let (_, session) = stream.connected().await;
    let request = spawn_post(
        api,
        "/api/v1/users/bob/messages",
        json!({"content": "ack me", "ack": {"timeout_ms": 5000, "retries": 0}}),
    );
    let msg = stream.next_json().await;
    assert_eq!(msg["require_ack"], true, "{msg}");
    let message_id = msg["message_id"].as_str().expect("message_id");
    let body = json!({ "message_id": message_id }).to_string();
    assert_eq!(
        post_frame(addr, "ack", &session, &body).await,
        (202, json!({"accepted": 1}))
    );
    let (status, report) = joined(request).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["outcomes"],
        json!([{"target": "bob", "status": "acked", "client_id": "bob-1", "attempts": 1}])
    );
    stopped(server).await;
}

#[tokio::test]
async fn frames_posted_to_send_are_handled_like_websocket_frames() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let mut carol = connect(addr, "user_id=carol").await;
    let mut stream = open(addr, "user_id=dave").await;
    let (_, session) = stream.connected().await;

    let ping = r#"{"message_type":"ping","id":"p1"}"#;
    assert_eq!(post_frame(addr, "send", &session, ping).await.0, 202);
    let pong = stream.next_event().await;
    assert_eq!(pong.event.as_deref(), Some("pong"));
    assert_eq!(pong.json()["id"], "p1");

    // A bad frame gets its error frame on the stream, as on a WebSocket.
    assert_eq!(post_frame(addr, "send", &session, "not json").await.0, 202);
    let error = stream.next_json().await;
    assert_eq!(error["message_type"], "error", "{error}");
    assert_eq!(error["data"]["code"], "invalid_json", "{error}");

    // A status frame is relayed with the stream's identity stamped on it.
    let typing = r#"{"message_type":"typing","receiver":"carol","sender":"mallory"}"#;
    assert_eq!(post_frame(addr, "send", &session, typing).await.0, 202);
    let relayed = next_json(&mut carol).await;
    assert_eq!(
        (relayed["message_type"].as_str(), relayed["sender"].as_str()),
        (Some("typing"), Some("dave"))
    );
    stopped(server).await;
}

#[tokio::test]
async fn posts_without_a_live_session_or_with_a_bad_body_are_refused() {
    let mut config = local_config();
    config.wsc.security.max_message_size = 1024;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut stream = open(addr, "user_id=erin").await;
    let (_, session) = stream.connected().await;

    let (status, body) = post_frame(addr, "ack", "", r#"{"message_id":"m"}"#).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_session"))
    );
    let (status, body) = post_frame(addr, "send", "nope", "{}").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("sse_session_not_found"))
    );
    let large = format!(r#"{{"content":"{}"}}"#, "x".repeat(2000));
    let (status, body) = post_frame(addr, "send", &session, &large).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (413, Some("message_too_large"))
    );
    for bad in ["{}", r#"{"message_ids":[]}"#, r#"{"id":"m"}"#, "[]"] {
        let (status, body) = post_frame(addr, "ack", &session, bad).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_ack")),
            "{bad}"
        );
    }
    // An ack that matches nothing is an error frame on the stream, as on a WebSocket.
    assert_eq!(
        post_frame(addr, "ack", &session, r#"{"message_id":"m"}"#)
            .await
            .0,
        202
    );
    let error = stream.next_json().await;
    assert_eq!(error["data"]["code"], "unknown_ack", "{error}");
    stopped(server).await;
}

#[tokio::test]
async fn last_event_id_resumes_without_loss_or_duplicates() {
    let server = start(local_config()).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    let mut stream = open(addr, "user_id=fay&client_id=f1").await;
    stream.connected().await;
    for n in 1..=3 {
        let body = json!({ "content": format!("m{n}") }).to_string();
        post_ok(api, "/api/v1/users/fay/messages", &body).await;
    }
    let mut last = String::new();
    for n in 1..=3 {
        let event = stream.next_event().await;
        assert_eq!(event.json()["content"], format!("m{n}"));
        last = event.id.expect("numbered");
    }
    drop(stream);
    let hub = server.hub().clone();
    eventually("the stream is unregistered", || {
        let hub = hub.clone();
        async move { hub.connection_count() == 0 }
    })
    .await;
    for n in 4..=5 {
        let body = json!({ "content": format!("m{n}") }).to_string();
        post_ok(api, "/api/v1/users/fay/messages", &body).await;
    }

    let resumed = sse::open(
        addr,
        "/sse?user_id=fay&client_id=f1",
        &[("last-event-id", &last)],
    )
    .await
    .expect("resumed stream opens");
    let mut resumed = resumed;
    resumed.connected().await;
    let mut contents = Vec::new();
    loop {
        let msg = resumed.next_json().await;
        if msg["message_type"] == "recovered" {
            assert_eq!(msg["data"]["recovered"], true, "{msg}");
            break;
        }
        contents.push((
            msg["content"].as_str().unwrap_or("").to_owned(),
            msg["seq_no"].clone(),
        ));
    }
    assert_eq!(
        contents,
        [("m4".to_owned(), json!(4)), ("m5".to_owned(), json!(5))],
        "each missed message once, in order"
    );
    stopped(server).await;
}

#[tokio::test]
async fn a_stream_the_client_drops_is_unregistered_and_its_session_ends() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let mut stream = open(addr, "user_id=gus").await;
    let (_, session) = stream.connected().await;
    drop(stream);
    let hub = server.hub().clone();
    eventually("the stream is unregistered", || {
        let hub = hub.clone();
        async move { hub.connection_count() == 0 && hub.online_user_count() == 0 }
    })
    .await;
    let (status, body) = post_frame(addr, "send", &session, "{}").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("sse_session_not_found"))
    );
    stopped(server).await;
}

#[tokio::test]
async fn a_kick_ends_the_stream_with_the_notice_then_the_websocket_code_and_reason() {
    let server = start(local_config()).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    let mut stream = open(addr, "user_id=kim").await;
    stream.connected().await;
    let (status, _) = http(
        api,
        "DELETE",
        "/api/v1/users/kim/connections?reason=spam&notify=true",
        &[],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let events = stream.until_end().await;
    let names: Vec<_> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names, ["kick_out", "disconnected"], "{events:?}");
    let closing = events.last().expect("events").json();
    assert_eq!(
        closing["data"],
        json!({"code": 1008, "reason": "kicked: spam"})
    );
    stopped(server).await;
}

#[tokio::test]
async fn stopping_the_server_ends_streams_with_1001() {
    let server = start(local_config()).await;
    let mut stream = open(server.public_addr(), "user_id=sam").await;
    stream.connected().await;
    let stopping = tokio::spawn(server.stop(WAIT));
    let events = stream.until_end().await;
    let closing = events.last().expect("a closing event").json();
    assert_eq!(closing["message_type"], "disconnected");
    assert_eq!(
        closing["data"],
        json!({"code": 1001, "reason": "server shutting down"})
    );
    assert!(stopping.await.expect("stop task"), "drained in time");
}

#[tokio::test]
async fn the_inbound_rate_limit_ends_the_stream_with_1008() {
    let mut config = local_config();
    config.wsc.security.enable_rate_limit = true;
    config.wsc.security.max_messages_per_second = 2;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut stream = open(addr, "user_id=rex").await;
    let (_, session) = stream.connected().await;
    for _ in 0..3 {
        post_frame(addr, "send", &session, r#"{"message_type":"text"}"#).await;
    }
    let events = stream.until_end().await;
    let closing = events.last().expect("a closing event").json();
    assert_eq!(
        closing["data"],
        json!({"code": 1008, "reason": "rate limit exceeded: more than 2 messages per second"})
    );
    stopped(server).await;
}

#[tokio::test]
async fn the_stream_is_refused_like_a_websocket() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    config.wsc.security.allowed_user_types = vec!["customer".to_owned(), "agent".to_owned()];
    config.wsc.performance.max_connections_per_node = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let code = |(status, body): (u16, Value)| (status, body["error"].as_str().map(str::to_owned));

    let refusal = refused(addr, "user_type=customer", &[]).await;
    assert_eq!(code(refusal), (400, Some("missing_user_id".to_owned())));
    let evil = [("origin", "https://evil.example")];
    let refusal = refused(addr, "user_id=a&user_type=customer", &evil).await;
    assert_eq!(code(refusal), (403, Some("origin_not_allowed".to_owned())));
    let refusal = refused(addr, "user_id=a&user_type=visitor", &[]).await;
    assert_eq!(
        code(refusal),
        (403, Some("user_type_not_allowed".to_owned()))
    );
    let bad_resume = [("last-event-id", "abc")];
    let refusal = refused(addr, "user_id=a&user_type=customer", &bad_resume).await;
    assert_eq!(code(refusal), (400, Some("invalid_identity".to_owned())));

    let ok = [("origin", "https://app.example")];
    let mut first = sse::open(addr, "/sse?user_id=a&user_type=customer", &ok)
        .await
        .expect("an allowed origin opens");
    assert_eq!(
        first.headers["access-control-allow-origin"],
        "https://app.example"
    );
    first.connected().await;
    let refusal = refused(addr, "user_id=b&user_type=agent", &[]).await;
    assert_eq!(code(refusal), (503, Some("node_full".to_owned())));
    stopped(server).await;
}

#[tokio::test]
async fn cors_preflights_are_answered_for_allowed_origins_only() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    let server = start(config).await;
    let addr = server.public_addr();
    let preflight = |origin: &'static str| {
        let headers = [
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "x-wsc-session,content-type",
            ),
        ];
        async move { wsc_testkit::http::raw(addr, "OPTIONS", "/sse/send", &headers, None).await }
    };
    let (status, head, _) = preflight("https://app.example").await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example"),
        "{head}"
    );
    assert!(head.contains("x-wsc-session"), "{head}");
    let (_, head, _) = preflight("https://evil.example").await;
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    stopped(server).await;
}

#[tokio::test]
async fn sse_can_be_turned_off() {
    let mut config = local_config();
    config.wsc.sse.enabled = false;
    let server = start(config).await;
    let (status, _) = refused(server.public_addr(), "user_id=a", &[]).await;
    assert_eq!(status, 404);
    stopped(server).await;
}

#[tokio::test]
async fn a_custom_path_an_ack_list_and_the_ack_limit() {
    let mut config = local_config();
    config.wsc.sse.path = "/events".to_owned();
    let server = start(config).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    let mut stream = sse::open(addr, "/events?user_id=lia", &[])
        .await
        .expect("the stream opens at the configured path");
    let (_, session) = stream.connected().await;
    let mut ids = Vec::new();
    for n in 0..2 {
        let request = spawn_post(
            api,
            "/api/v1/users/lia/messages",
            json!({"content": format!("m{n}"), "ack": {"timeout_ms": 5000, "retries": 0}}),
        );
        ids.push((stream.next_json().await["message_id"].clone(), request));
    }
    let body = json!({"message_ids": ids.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>()});
    let post = |path: &'static str, body: String| {
        let session = session.clone();
        async move {
            http(
                addr,
                "POST",
                path,
                &[("x-wsc-session", &session)],
                Some(&body),
            )
            .await
        }
    };
    assert_eq!(
        post("/events/ack", body.to_string()).await,
        (202, json!({"accepted": 2}))
    );
    for (_, request) in ids {
        let (status, report) = joined(request).await;
        assert_eq!(
            report["outcomes"][0]["status"], "acked",
            "{status} {report}"
        );
    }
    let many: Vec<String> = (0..65).map(|n| format!("m{n}")).collect();
    let (status, body) = post("/events/ack", json!({ "message_ids": many }).to_string()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_ack")));
    stopped(server).await;
}

#[tokio::test]
async fn last_seq_wins_over_last_event_id_and_a_replaced_stream_says_so() {
    let server = start(local_config()).await;
    let (addr, api) = (server.public_addr(), server.api_addr());
    for n in 1..=3 {
        let body = json!({ "content": format!("m{n}") }).to_string();
        post_ok(api, "/api/v1/users/max/messages", &body).await;
    }
    // Offline messages are replayed first; the resume then starts after last_seq=2.
    let mut stream = sse::open(
        addr,
        "/sse?user_id=max&client_id=c1&last_seq=2",
        &[("last-event-id", "0")],
    )
    .await
    .expect("opens");
    stream.connected().await;
    let mut recovered = Value::Null;
    while recovered.is_null() {
        let msg = stream.next_json().await;
        if msg["message_type"] == "recovered" {
            recovered = msg;
        }
    }
    assert_eq!(recovered["data"]["from_seq"], 2, "{recovered}");

    // The same client id opened again replaces the stream, which ends by saying so.
    let _newer = sse::open(addr, "/sse?user_id=max&client_id=c1", &[])
        .await
        .expect("opens");
    let events = stream.until_end().await;
    let closing = events.last().expect("a closing event").json();
    assert_eq!(
        closing["data"],
        json!({"code": 1000, "reason": "replaced by a newer connection"})
    );
    stopped(server).await;
}

#[tokio::test]
async fn a_posted_body_that_is_not_utf8_is_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let mut stream = open(addr, "user_id=utf").await;
    let (_, session) = stream.connected().await;
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /sse/send HTTP/1.1\r\nhost: {addr}\r\nx-wsc-session: {session}\r\n\
         content-length: 2\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.expect("head");
    tcp.write_all(&[0xff, 0xfe]).await.expect("body");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .expect("read");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#""error":"invalid_utf8""#), "{answer}");
    stopped(server).await;
}

/// The comma list of a header in a lower-cased head, sorted.
fn header_list<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    let prefix = format!("{name}: ");
    let line = head
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {name} in {head}"));
    let mut items: Vec<&str> = line.split(',').map(str::trim).collect();
    items.sort_unstable();
    items
}

#[tokio::test]
async fn cors_allows_credentials_and_the_client_headers_and_exposes_the_id_headers() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    let server = start(config).await;
    let addr = server.public_addr();
    let preflight = [
        ("origin", "https://app.example"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,last-event-id,x-wsc-session",
        ),
    ];
    let (status, head, _) =
        wsc_testkit::http::raw(addr, "OPTIONS", "/sse/send", &preflight, None).await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        header_list(&head, "access-control-allow-credentials"),
        ["true"]
    );
    assert_eq!(
        header_list(&head, "access-control-allow-headers"),
        [
            "authorization",
            "content-type",
            "last-event-id",
            "x-wsc-session"
        ]
    );

    // The stream itself: the origin and credentials allowed, the id headers readable.
    let stream = sse::open(
        addr,
        "/sse?user_id=cor",
        &[("origin", "https://app.example")],
    )
    .await
    .expect("opens");
    let header = |name: &str| {
        stream
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name}: {:?}", stream.headers))
            .to_str()
            .expect("ASCII")
            .to_ascii_lowercase()
    };
    assert_eq!(header("access-control-allow-origin"), "https://app.example");
    assert_eq!(header("access-control-allow-credentials"), "true");
    let exposed = header("access-control-expose-headers");
    let mut exposed: Vec<&str> = exposed.split(',').map(str::trim).collect();
    exposed.sort_unstable();
    assert_eq!(exposed, ["x-wsc-client-id", "x-wsc-node-id"]);
    drop(stream);
    stopped(server).await;
}

#[tokio::test]
async fn a_stream_logged_in_elsewhere_ends_with_force_offline_then_disconnected_1008() {
    let mut config = local_config();
    config.wsc.multi_login.max_connections_per_user = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut stream = open(addr, "user_id=bo&client_id=phone").await;
    stream.connected().await;
    let _newer = connect(addr, "user_id=bo&client_id=laptop").await;
    let events = stream.until_end().await;
    let names: Vec<_> = events.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names, ["force_offline", "disconnected"], "{events:?}");
    assert_eq!(events[0].json()["data"]["reason"], "login_elsewhere");
    let closing = events.last().expect("events").json();
    assert_eq!(
        closing["data"],
        json!({"code": 1008, "reason": "logged in elsewhere"})
    );
    assert_eq!(closing["content"], "logged in elsewhere", "{closing}");
    stopped(server).await;
}
