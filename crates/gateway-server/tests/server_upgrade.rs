//! End-to-end tests of the gateway server's WebSocket upgrade and lifecycle, with real
//! WebSocket clients over 127.0.0.1.

mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use gateway_server::Server;
use serde_json::Value;
use support::{Client, WAIT, local_config, next_json, start};
use tokio::net::TcpStream;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wsc_config::LoginPolicy;

async fn connect(addr: SocketAddr, query: &str) -> Result<Client, WsError> {
    connect_async(format!("ws://{addr}/ws?{query}"))
        .await
        .map(|(ws, _)| ws)
}

/// The status and JSON body of a refused handshake.
async fn refused(addr: SocketAddr, query: &str, origin: Option<&str>) -> (u16, Value) {
    let headers: Vec<(&'static str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
    wsc_testkit::ws::refused(&format!("ws://{addr}/ws?{query}"), &headers).await
}

async fn close_frame(ws: &mut Client) -> (u16, String) {
    loop {
        let frame = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a frame in time");
        match frame {
            Some(Ok(Message::Close(Some(frame)))) => {
                return (u16::from(frame.code), frame.reason.to_string());
            }
            Some(Ok(Message::Close(None))) => return (1005, String::new()),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> Value {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body in {response}"))
}

#[tokio::test]
async fn upgrade_answers_identity_headers_and_pong() {
    let server = start(local_config()).await;
    let (mut ws, response) = connect_async(format!(
        "ws://{}/ws?user_id=alice&client_id=c1",
        server.public_addr()
    ))
    .await
    .unwrap();
    assert_eq!(response.headers()["x-wsc-client-id"], "c1");
    assert_eq!(response.headers()["x-wsc-node-id"], server.hub().node_id());
    ws.send(Message::text(r#"{"message_type":"ping","id":"p1"}"#))
        .await
        .unwrap();
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["message_type"], "pong");
    assert_eq!(pong["id"], "p1");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn identity_from_header_and_cookie() {
    let server = start(local_config()).await;
    let mut request = format!("ws://{}/ws", server.public_addr())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-user-id", "bob".parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", "user_type=agent".parse().unwrap());
    let (_ws, _) = connect_async(request).await.unwrap();
    let conns = server.hub().user_connections("bob").unwrap();
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].user_type, "agent");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_message_sent_right_after_connect_arrives() {
    let server = start(local_config()).await;
    let mut ws = connect(server.public_addr(), "user_id=carol")
        .await
        .unwrap();
    let report = post(
        server.api_addr(),
        "/api/v1/users/carol/messages",
        r#"{"content":"first"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 1, "{report}");
    let msg = next_json(&mut ws).await;
    assert_eq!(msg["content"], "first");
    assert_eq!(msg["receiver"], "carol");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn refusals_are_http_errors_with_json_bodies() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    config.wsc.security.allowed_user_types = vec!["visitor".to_owned(), "agent".to_owned()];
    let server = start(config).await;
    let addr = server.public_addr();

    let (status, body) = refused(addr, "", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("missing_user_id"))
    );
    assert!(body["message"].as_str().unwrap().contains("user_id"));

    let (status, body) = refused(addr, "user_id=a", Some("https://evil.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );

    let (status, body) = refused(addr, "user_id=a&user_type=admin", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("user_type_not_allowed"))
    );

    let long = "x".repeat(300);
    let (status, body) = refused(addr, &format!("user_id={long}"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_identity"))
    );

    // The allowed origin and a client without Origin both get through.
    let mut request = format!("ws://{addr}/ws?user_id=a")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    assert!(connect_async(request).await.is_ok());
    assert!(connect(addr, "user_id=b").await.is_ok());
    server.stop(WAIT).await;
}

#[tokio::test]
async fn plain_get_on_the_websocket_path_is_426() {
    let server = start(local_config()).await;
    let mut stream = TcpStream::connect(server.public_addr()).await.unwrap();
    let request = "GET /ws?user_id=a HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stream, &mut response)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 426"), "{response}");
    assert!(response.contains("websocket_upgrade_required"));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn node_full_is_503_and_user_limit_is_409() {
    let mut config = local_config();
    config.wsc.performance.max_connections_per_node = 2;
    config.wsc.multi_login.policy = LoginPolicy::KickNew;
    config.wsc.multi_login.max_connections_per_user = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let _a = connect(addr, "user_id=a").await.unwrap();
    let (status, body) = refused(addr, "user_id=a", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("user_connection_limit"))
    );
    let _b = connect(addr, "user_id=b").await.unwrap();
    let (status, body) = refused(addr, "user_id=c", None).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("node_full")));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_connect_callback_refusal_is_a_close_frame_with_the_reason() {
    let server = Server::new(local_config());
    server.hub().on_client_connect(|conn| async move {
        if conn.user_id() == "mallory" {
            Err("banned user".into())
        } else {
            Ok(())
        }
    });
    let server = server.start().await.unwrap();
    let mut ws = connect(server.public_addr(), "user_id=mallory")
        .await
        .unwrap();
    assert_eq!(
        close_frame(&mut ws).await,
        (1008, "connection rejected: banned user".to_owned())
    );
    assert_eq!(server.hub().connection_count(), 0);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn stop_sends_1001_to_every_connection_and_drains() {
    let server = start(local_config()).await;
    let mut a = connect(server.public_addr(), "user_id=a").await.unwrap();
    let mut b = connect(server.public_addr(), "user_id=b").await.unwrap();
    let hub = server.hub().clone();
    let stopping = tokio::spawn(server.stop(WAIT));
    assert_eq!(close_frame(&mut a).await.0, 1001);
    assert_eq!(close_frame(&mut b).await.0, 1001);
    drop((a, b));
    assert!(stopping.await.unwrap(), "drained within the deadline");
    assert_eq!(hub.connection_count(), 0);
    assert!(!hub.is_running());
}

#[tokio::test]
async fn a_port_in_use_fails_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = local_config();
    config.wsc.node_port = taken.local_addr().unwrap().port();
    let err = Server::new(config).start().await.err().expect("bind error");
    assert!(err.to_string().contains("public"), "{err}");
}

#[tokio::test]
async fn one_listener_when_ports_are_equal() {
    let port = wsc_testkit::free_port();
    let mut config = local_config();
    config.wsc.node_port = port;
    config.http.port = port;
    let server = start(config).await;
    assert_eq!(server.public_addr(), server.api_addr());
    let mut ws = connect(server.public_addr(), "user_id=d").await.unwrap();
    let report = post(
        server.api_addr(),
        "/api/v1/broadcast",
        r#"{"content":"all"}"#,
    )
    .await;
    assert_eq!(report["delivered"], 1);
    assert_eq!(next_json(&mut ws).await["content"], "all");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn reloaded_origins_and_user_types_apply_to_new_upgrades() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    assert!(connect(addr, "user_id=a&user_type=admin").await.is_ok());

    let mut reloaded = local_config();
    reloaded.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    reloaded.wsc.security.allowed_user_types = vec!["visitor".to_owned()];
    server.apply_config(&reloaded);

    let (status, body) = refused(addr, "user_id=a", Some("https://evil.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let (status, body) = refused(addr, "user_id=a&user_type=admin", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("user_type_not_allowed"))
    );
    server.stop(WAIT).await;
}

/// The upgrade request head for `path` with `extra` headers (a valid key and version).
fn upgrade_head(method: &str, addr: SocketAddr, path: &str, extra: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n\
         sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

/// Sends a raw request head and returns the response head, lower-cased.
async fn response_head(addr: SocketAddr, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the head ended");
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response head in time");
    String::from_utf8_lossy(&got).to_ascii_lowercase()
}

#[tokio::test]
async fn an_upgrade_is_a_get_and_anything_else_is_405() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    for method in ["POST", "PUT", "DELETE"] {
        let head = response_head(addr, &upgrade_head(method, addr, "/ws?user_id=m", "")).await;
        assert!(head.starts_with("http/1.1 405"), "{method}: {head}");
        assert!(head.contains("allow: get"), "{method}: {head}");
        assert!(head.contains("application/json"), "{method}: {head}");
    }
    let head = response_head(addr, &upgrade_head("GET", addr, "/ws?user_id=m", "")).await;
    assert!(head.starts_with("http/1.1 101"), "{head}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn an_offered_subprotocol_is_always_answered() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    for (offer, answer) in [
        ("chat, wsc.v1", Some("wsc.v1")),
        ("graphql-ws", Some("graphql-ws")),
        ("a, b", Some("a")),
        ("", None),
    ] {
        let extra = if offer.is_empty() {
            String::new()
        } else {
            format!("sec-websocket-protocol: {offer}\r\n")
        };
        let path = format!("/ws?user_id=p{}", offer.len());
        let head = response_head(addr, &upgrade_head("GET", addr, &path, &extra)).await;
        assert!(head.starts_with("http/1.1 101"), "{offer}: {head}");
        let chosen = head
            .lines()
            .find_map(|l| l.strip_prefix("sec-websocket-protocol: "))
            .map(str::trim);
        assert_eq!(chosen, answer, "{offer}: {head}");
    }
    let bad = upgrade_head(
        "GET",
        addr,
        "/ws?user_id=q",
        "sec-websocket-protocol: a b\r\n",
    );
    let head = response_head(addr, &bad).await;
    assert!(head.starts_with("http/1.1 400"), "{head}");
    let (status, body) = wsc_testkit::ws::refused(
        &format!("ws://{addr}/ws?user_id=q"),
        &[("sec-websocket-protocol", "a b")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_subprotocol"))
    );
    assert_eq!(
        body["message"],
        "Sec-WebSocket-Protocol must be a comma-separated list of tokens"
    );

    // A real client that asks for the protocol gets it and talks JSON over it.
    let mut request = format!("ws://{addr}/ws?user_id=sub")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "wsc.v1".parse().unwrap());
    let (mut ws, response) = connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "wsc.v1");
    ws.send(Message::text(r#"{"message_type":"ping"}"#))
        .await
        .unwrap();
    let pong = next_json(&mut ws).await;
    assert_eq!(pong["message_type"], "pong");
    server.stop(WAIT).await;
}

/// A raw upgrade request with these extra header lines: status and JSON body.
async fn raw_upgrade(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let (status, _, body) =
        wsc_testkit::http::raw(addr, "GET", &format!("/ws?{query}"), headers, None).await;
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    (status, json)
}

#[tokio::test]
async fn a_bad_websocket_version_or_a_missing_key_is_a_400() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let upgrade = [("connection", "Upgrade"), ("upgrade", "websocket")];
    let key = ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    let (status, body) = raw_upgrade(
        addr,
        "user_id=v",
        &[upgrade[0], upgrade[1], key, ("sec-websocket-version", "8")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "unsupported_websocket_version");
    assert_eq!(body["message"], "Sec-WebSocket-Version must be 13");
    let (status, body) = raw_upgrade(
        addr,
        "user_id=v",
        &[upgrade[0], upgrade[1], ("sec-websocket-version", "13")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "missing_websocket_key");
    assert_eq!(body["message"], "Sec-WebSocket-Key is required");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn origins_match_without_regard_to_case() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    let server = start(config).await;
    let addr = server.public_addr();
    let url = format!("ws://{addr}/ws?user_id=o");
    let upper = wsc_testkit::ws::try_connect(&url, &[("origin", "HTTPS://APP.EXAMPLE")]).await;
    assert!(upper.is_ok(), "the same origin in capitals is allowed");
    let (status, body) = refused(addr, "user_id=o2", Some("https://evil.example")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn control_characters_and_a_non_integer_last_seq_are_invalid_identities() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    for query in [
        "user_id=a%01b",
        "user_id=ok&device_id=x%0Ay",
        "user_id=ok&last_seq=abc",
        "user_id=ok&last_seq=1.5",
    ] {
        let (status, body) = refused(addr, query, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_identity", "{query}: {body}");
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_repeated_query_parameter_counts_once_the_first_non_empty() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let _ws = connect(addr, "user_id=rep&group_id=&group_id=a&group_id=b")
        .await
        .unwrap();
    let presence: Value = wsc_testkit::http::get(server.api_addr(), "/api/v1/users/rep/presence")
        .await
        .1;
    assert_eq!(
        presence["connections"][0]["group_ids"],
        serde_json::json!(["a"]),
        "{presence}"
    );
    server.stop(WAIT).await;
}
