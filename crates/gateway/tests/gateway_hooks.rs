//! Integration tests of the gateway's hooks with real WebSocket clients: callback chains
//! (order and first-error semantics), upgrade middlewares and message interceptors.

mod common;

use std::sync::{Arc, Mutex};

use common::{
    assert_error_frame, assert_nothing_queued, built, close_frame, connect, drain, local_config,
    next_json, recv, refused, send, try_connect,
};
use gateway::{GatewayError, Interceptor, events};
use gateway_server::UpgradeRejection;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::http::StatusCode;
use wsc_hub::{CallbackError, HubMessage, SendError};

// ------------------------------------------------------------------ callback chains

#[tokio::test]
async fn connect_callbacks_run_in_order_and_the_first_error_stops_the_chain() {
    let gateway = built(local_config());
    let (tx, mut calls) = mpsc::unbounded_channel::<(String, u8)>();
    for index in 1..=3u8 {
        let tx = tx.clone();
        gateway.on_websocket_client_connect(move |conn| {
            let user = conn.user_id().to_owned();
            let tx = tx.clone();
            async move {
                tx.send((user.clone(), index)).unwrap();
                if index == 2 && user == "x" {
                    Err(CallbackError::from("user x is refused by callback 2"))
                } else {
                    Ok(())
                }
            }
        });
    }
    gateway.start().await.unwrap();

    // The connect chain runs before the 101: it has finished once the client is connected.
    let _ok = connect(&gateway, "user_id=ok").await;
    let ok = |i: u8| ("ok".to_owned(), i);
    assert_eq!(drain(&mut calls), [ok(1), ok(2), ok(3)]);

    let mut refused_client = connect(&gateway, "user_id=x").await;
    let x = |i: u8| ("x".to_owned(), i);
    assert_eq!(drain(&mut calls), [x(1), x(2)], "callback 3 must not run");
    let (code, reason) = close_frame(&mut refused_client).await;
    // The close reason carries the callback's error, as protocol.md section 7 words it.
    assert_eq!(
        (code, reason.as_str()),
        (1008, "connection rejected: user x is refused by callback 2")
    );
    assert_eq!(gateway.get_websocket_online_users().await.unwrap(), ["ok"]);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn message_callbacks_run_in_order_and_the_first_error_stops_the_chain() {
    let gateway = built(local_config());
    let (tx, mut calls) = mpsc::unbounded_channel::<(String, u8)>();
    for index in 1..=3u8 {
        let tx = tx.clone();
        gateway.on_websocket_message_received(move |_conn, msg| {
            let content = msg.content.clone();
            let tx = tx.clone();
            async move {
                tx.send((content.clone(), index)).unwrap();
                if index == 2 && content == "bad" {
                    Err(CallbackError::from("callback 2 refuses bad"))
                } else {
                    Ok(())
                }
            }
        });
    }
    gateway.start().await.unwrap();
    let mut client = connect(&gateway, "user_id=u").await;
    let call = |content: &str, i: u8| (content.to_owned(), i);

    send(&mut client, r#"{"id":"m1","content":"good"}"#).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(recv(&mut calls).await);
    }
    assert_eq!(seen, [call("good", 1), call("good", 2), call("good", 3)]);

    send(&mut client, r#"{"id":"m2","content":"bad"}"#).await;
    let error = next_json(&mut client).await;
    assert_error_frame(&error, "rejected");
    assert_eq!(error["reply_to_msg_id"], "m2", "{error}");
    assert_eq!(
        error["content"], "rejected: callback 2 refuses bad",
        "{error}"
    );

    // Frames of one connection are handled in order: if callback 3 had run for "bad", its
    // call would come before the calls for "after".
    send(&mut client, r#"{"id":"m3","content":"after"}"#).await;
    let mut seen = Vec::new();
    for _ in 0..5 {
        seen.push(recv(&mut calls).await);
    }
    assert_eq!(
        seen,
        [
            call("bad", 1),
            call("bad", 2),
            call("after", 1),
            call("after", 2),
            call("after", 3)
        ]
    );
    // "after" was accepted: no error frame for it.
    assert_nothing_queued(&mut client, "p1").await;
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn callbacks_registered_after_start_apply() {
    let gateway = common::started(local_config()).await;
    let (tx, mut users) = mpsc::unbounded_channel::<String>();
    gateway.on_websocket_client_connect(move |conn| {
        let _ = tx.send(conn.user_id().to_owned());
        async { Ok(()) }
    });
    let _client = connect(&gateway, "user_id=late").await;
    assert_eq!(drain(&mut users), ["late"]);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn disconnect_callback_gets_the_reason_once() {
    let gateway = built(local_config());
    let (tx, mut reasons) = mpsc::unbounded_channel::<(String, u16)>();
    gateway.on_websocket_client_disconnect(move |conn, reason| {
        let _ = tx.send((conn.user_id().to_owned(), reason.close_code()));
    });
    gateway.start().await.unwrap();
    let mut client = connect(&gateway, "user_id=leaver").await;
    client.close(None).await.unwrap();
    assert_eq!(recv(&mut reasons).await, ("leaver".to_owned(), 1005));
    gateway.stop().await.unwrap();
    assert!(drain(&mut reasons).is_empty(), "exactly one disconnect");
}

// ------------------------------------------------------------------ middlewares

#[tokio::test]
async fn a_middleware_can_supply_the_user_from_a_header() {
    let gateway = built(local_config());
    gateway.use_websocket_middleware(|request, identity| {
        if let Some(session) = request.headers.get("x-session") {
            identity.user_id = session.to_str().unwrap_or_default().to_owned();
        }
        Ok(())
    });
    gateway.start().await.unwrap();

    // No user_id in the query: the middleware supplies it.
    let mut client = try_connect(&gateway, "", &[("x-session", "sam")])
        .await
        .expect("the middleware supplied the user");
    assert_eq!(gateway.get_websocket_online_users().await.unwrap(), ["sam"]);
    assert_eq!(gateway.hub().user_connections("sam").unwrap().len(), 1);
    let report = gateway
        .send_to_websocket_user("sam", HubMessage::text("hi sam"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut client).await["content"], "hi sam");

    // Without the header, there still is no user.
    let (status, body) = refused(&gateway, "", &[]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("missing_user_id"))
    );
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_middleware_refusal_is_an_http_error_with_its_code() {
    let gateway = built(local_config());
    gateway.use_websocket_middleware(|request, _identity| {
        if request.headers.contains_key("x-blocked") {
            Err(UpgradeRejection::new(
                StatusCode::UNAUTHORIZED,
                "test_blocked",
                "blocked by the test middleware",
            ))
        } else {
            Ok(())
        }
    });
    gateway.start().await.unwrap();
    let (status, body) = refused(&gateway, "user_id=u", &[("x-blocked", "1")]).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"], "test_blocked", "{body}");
    assert_eq!(body["message"], "blocked by the test middleware", "{body}");
    assert_eq!(gateway.get_websocket_online_user_count().await.unwrap(), 0);
    // The same request without the header gets through.
    let _client = connect(&gateway, "user_id=u").await;
    assert_eq!(gateway.get_websocket_online_users().await.unwrap(), ["u"]);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn middlewares_run_in_registration_order() {
    let gateway = built(local_config());
    let log = Arc::new(Mutex::new(Vec::<(u8, String)>::new()));
    let first = log.clone();
    gateway.use_websocket_middleware(move |request, identity| {
        first.lock().unwrap().push((1, identity.user_id.clone()));
        if let Some(session) = request.headers.get("x-session") {
            identity.user_id = session.to_str().unwrap_or_default().to_owned();
        }
        Ok(())
    });
    let second = log.clone();
    gateway.use_websocket_middleware(move |_request, identity| {
        second.lock().unwrap().push((2, identity.user_id.clone()));
        identity.user_id = format!("{}-checked", identity.user_id);
        Ok(())
    });
    gateway.start().await.unwrap();
    let _client = try_connect(&gateway, "", &[("x-session", "amy")])
        .await
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        [(1, String::new()), (2, "amy".to_owned())],
        "the second middleware sees the first one's change"
    );
    assert_eq!(
        gateway.get_websocket_online_users().await.unwrap(),
        ["amy-checked"]
    );
    gateway.stop().await.unwrap();
}

// ------------------------------------------------------------------ interceptors

#[tokio::test]
async fn an_outbound_interceptor_modifies_and_rejects_sends() {
    let gateway = common::started(local_config()).await;
    gateway.add_websocket_interceptor(Interceptor::outbound(|msg| {
        if msg.content.contains("forbidden") {
            return Err(CallbackError::from("outbound interceptor refused it"));
        }
        *msg = std::mem::take(msg).with_data("stamp", "outbound");
        Ok(())
    }));
    let mut client = connect(&gateway, "user_id=u").await;

    let report = gateway
        .send_to_websocket_user("u", HubMessage::text("hello"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    let frame = next_json(&mut client).await;
    assert_eq!(frame["content"], "hello");
    assert_eq!(frame["data"]["stamp"], "outbound", "{frame}");

    let err = gateway
        .send_to_websocket_user("u", HubMessage::text("a forbidden word"))
        .await
        .expect_err("the interceptor refuses it");
    match &err {
        GatewayError::Send(SendError::Rejected(text)) => {
            assert!(text.contains("outbound interceptor refused it"), "{text}")
        }
        other => panic!("expected Send(Rejected), got {other:?}"),
    }
    // Every route goes through the interceptor.
    let err = gateway
        .broadcast_websocket_message(HubMessage::text("forbidden for all"))
        .await
        .expect_err("refused broadcast");
    assert!(
        matches!(err, GatewayError::Send(SendError::Rejected(_))),
        "{err:?}"
    );

    // The client got neither refused message: the next frame is the one sent after.
    gateway
        .send_to_websocket_user("u", HubMessage::text("after"))
        .await
        .unwrap();
    let frame = next_json(&mut client).await;
    assert_eq!(frame["content"], "after", "{frame}");
    assert_eq!(frame["data"]["stamp"], "outbound");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn an_inbound_interceptor_modifies_and_rejects_client_messages() {
    let gateway = built(local_config());
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<(String, String)>();
    gateway.add_websocket_interceptor(Interceptor::inbound(move |conn, msg| {
        // The sender is already stamped from the connection.
        let _ = seen_tx.send((conn.user_id().to_owned(), msg.sender.clone()));
        if msg.content.contains("drop") {
            return Err(CallbackError::from("inbound interceptor refused it"));
        }
        msg.content = msg.content.to_uppercase();
        Ok(())
    }));
    let (tx, mut received) = mpsc::unbounded_channel::<String>();
    gateway.on_websocket_message_received(move |_conn, msg| {
        let _ = tx.send(msg.content.clone());
        async { Ok(()) }
    });
    let (event_tx, mut received_events) = mpsc::unbounded_channel::<String>();
    gateway.on_websocket_event(events::MESSAGE_RECEIVED, move |event| {
        let content = event.message.as_ref().map(|m| m.content.clone());
        let _ = event_tx.send(content.unwrap_or_default());
    });
    gateway.start().await.unwrap();
    let mut client = connect(&gateway, "user_id=u").await;

    send(&mut client, r#"{"content":"hello"}"#).await;
    assert_eq!(recv(&mut received).await, "HELLO");
    assert_eq!(recv(&mut received_events).await, "HELLO");

    send(&mut client, r#"{"id":"m2","content":"drop me"}"#).await;
    let error = next_json(&mut client).await;
    assert_error_frame(&error, "rejected");
    assert_eq!(error["reply_to_msg_id"], "m2");
    assert!(
        error["content"]
            .as_str()
            .unwrap()
            .contains("inbound interceptor refused it"),
        "{error}"
    );

    // Frames are handled in order: had "drop me" reached the callbacks, it would come first.
    send(&mut client, r#"{"content":"after"}"#).await;
    assert_eq!(recv(&mut received).await, "AFTER");
    assert_eq!(recv(&mut received_events).await, "AFTER");
    assert_eq!(
        drain(&mut seen),
        vec![("u".to_owned(), "u".to_owned()); 3],
        "the interceptor saw every message, with the sender stamped"
    );
    gateway.stop().await.unwrap();
}
