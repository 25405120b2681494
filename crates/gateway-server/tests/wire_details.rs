//! Smaller promises of docs/protocol.md and delivery.md, over real sockets: the generated
//! client id, an open origin list, identity precedence, queued frames written before the
//! 1001 close, generated ids (UUIDv7) and the counters `GET /api/v1/stats` exposes.

mod support;

use serde_json::Value;
use support::{WAIT, connect, get, local_config, next_json, start};
use tokio_tungstenite::tungstenite::Message;
use wsc_hub::HubMessage;
use wsc_testkit::ws::next_frame;

#[tokio::test]
async fn a_connection_without_client_id_gets_a_generated_32_hex_one() {
    let server = start(local_config()).await;
    let url = format!("ws://{}/ws?user_id=gen", server.public_addr());
    let (_ws, response) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    let id = response.headers()["x-wsc-client-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn an_empty_or_star_origin_list_lets_every_origin_in() {
    for origins in [vec![], vec!["*".to_owned()]] {
        let mut config = local_config();
        config.wsc.websocket_origins = origins.clone();
        let server = start(config).await;
        let url = format!("ws://{}/ws?user_id=o", server.public_addr());
        let connected =
            wsc_testkit::ws::try_connect(&url, &[("origin", "https://anywhere.example")]).await;
        assert!(connected.is_ok(), "{origins:?}: {connected:?}");
        server.stop(WAIT).await;
    }
}

#[tokio::test]
async fn queued_frames_are_written_before_the_1001_close() {
    let server = start(local_config()).await;
    let mut ws = connect(server.public_addr(), "user_id=q").await;
    for n in 0..50 {
        server
            .hub()
            .send_to_user("q", HubMessage::text(format!("m{n}")))
            .await
            .expect("queued");
    }
    let stopping = tokio::spawn(server.stop(WAIT));
    for n in 0..50 {
        assert_eq!(next_json(&mut ws).await["content"], format!("m{n}"));
    }
    match next_frame(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected the close frame, got {other:?}"),
    }
    assert!(stopping.await.expect("stop task"));
}

#[tokio::test]
async fn generated_ids_are_uuid_v7() {
    let server = start(local_config()).await;
    let mut ws = connect(server.public_addr(), "user_id=k").await;
    server
        .hub()
        .send_to_user("k", HubMessage::text("hi"))
        .await
        .expect("sent");
    let Message::Text(text) = next_frame(&mut ws).await else {
        panic!("a text frame")
    };
    let frame: Value = serde_json::from_str(text.as_str()).unwrap();
    for key in ["id", "message_id"] {
        let id = frame[key].as_str().unwrap();
        // xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx
        assert_eq!(id.len(), 36, "{key}: {id}");
        assert_eq!(&id[14..15], "7", "{key} is not version 7: {id}");
        assert!(
            "89ab".contains(&id[19..20]),
            "{key} has another variant: {id}"
        );
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_stats_route_exposes_the_ack_and_offline_counters() {
    let server = start(local_config()).await;
    server
        .hub()
        .send_to_user("away", HubMessage::text("stored"))
        .await
        .expect("stored offline");
    let (status, stats) = get(server.api_addr(), "/api/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    for key in [
        "acks_confirmed",
        "ack_failures",
        "ack_resends",
        "acks_pending",
        "offline_replayed",
        "cluster_errors",
    ] {
        assert_eq!(stats[key], 0, "{key}: {stats}");
    }
    assert_eq!(stats["offline_stored"], 1, "{stats}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn identity_comes_from_the_query_then_headers_then_cookies() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let identity = |user: &'static str| {
        let hub = server.hub().clone();
        move || hub.user_connections(user).expect("valid id")
    };
    // (query, request headers, the user it must be)
    type Case = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        &'static str,
    );
    let cases: [Case; 3] = [
        (
            "?user_id=q1",
            vec![("x-user-id", "h1"), ("cookie", "user_id=c1")],
            "q1",
        ),
        (
            "?user_id=",
            vec![("x-user-id", "h2"), ("cookie", "user_id=c2")],
            "h2",
        ),
        ("", vec![("cookie", "user_id=c3%20x; other=1")], "c3%20x"),
    ];
    for (query, headers, expected) in cases {
        let url = format!("ws://{addr}/ws{query}");
        let _ws = wsc_testkit::ws::try_connect(&url, &headers)
            .await
            .expect("upgrade");
        assert_eq!(
            identity(expected)().len(),
            1,
            "{query} {headers:?}: not {expected}"
        );
    }
    // Comma lists: items trimmed, empty items dropped (cookie values are used as they are).
    let _ws = connect(addr, "user_id=lists&group_id=%20a%20,,b%20").await;
    assert_eq!(identity("lists")()[0].group_ids, ["a", "b"]);
    server.stop(WAIT).await;
}
