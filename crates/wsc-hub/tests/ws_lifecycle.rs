//! Connection lifecycle: handshake rejection, connect callbacks that refuse, kicks,
//! disconnect callbacks (exactly once, with the real reason) and delivery right after
//! connect.

mod support;

use std::sync::Arc;

use support::{ConnEnd, Disconnects, TestServer, wait_until};
use tokio::sync::mpsc;
use wsc_hub::{
    CallbackError, Connection, DisconnectReason, Hub, HubConfig, HubMessage, Identity, MessageType,
    MultiLoginPolicy, Outbound, RegisterError,
};

#[tokio::test]
async fn handshake_without_user_id_is_an_http_400_with_a_json_body() {
    let mut server = TestServer::start(HubConfig::default()).await;
    let error = tokio_tungstenite::connect_async(server.url("client_id=c1"))
        .await
        .expect_err("a handshake without user_id must fail");
    let tokio_tungstenite::tungstenite::Error::Http(response) = error else {
        panic!("expected an HTTP error response, got {error:?}");
    };
    assert_eq!(response.status(), 400);
    let body: serde_json::Value =
        serde_json::from_slice(response.body().as_deref().expect("a body")).unwrap();
    assert_eq!(body["error"], "missing_user_id", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(matches!(server.next_end().await, ConnEnd::Handshake(_)));
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn kick_user_with_notify_sends_kick_out_then_closes_with_1008() {
    let mut server = TestServer::start(HubConfig::default()).await;
    let mut phone = server.connect_ready("user_id=alice&client_id=phone").await;
    let mut laptop = server.connect_ready("user_id=alice&client_id=laptop").await;
    let mut bob = server.connect_ready("user_id=bob&client_id=b1").await;

    let report = server.hub.kick_user("alice", "bye", true).await.unwrap();
    assert_eq!(report.kicked, 2);
    for device in [&mut phone, &mut laptop] {
        let notice = device.recv_json().await;
        assert_eq!(notice["message_type"], "kick_out", "{notice}");
        assert_eq!(notice["data"]["reason"], "bye", "{notice}");
        let (code, reason) = device.expect_close().await;
        assert_eq!(code, 1008, "{reason}");
        assert!(reason.contains("bye"), "close reason: {reason}");
    }
    server.wait_served(2).await;
    assert!(!server.hub.is_user_online("alice"));
    assert_eq!(server.hub.connection_count(), 1);
    bob.assert_nothing_received().await;
}

#[tokio::test]
async fn kick_user_without_notify_only_closes() {
    let mut server = TestServer::start(HubConfig::default()).await;
    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    let report = server.hub.kick_user("alice", "quiet", false).await.unwrap();
    assert_eq!(report.kicked, 1);
    // `expect_close` fails on any text frame before the close frame.
    let (code, reason) = alice.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    server.wait_served(1).await;
    assert_eq!(server.hub.connection_count(), 0);
    let nobody = server.hub.kick_user("alice", "again", true).await.unwrap();
    assert_eq!(nobody.kicked, 0);
}

#[tokio::test]
async fn connect_callback_error_rejects_with_1008_and_the_reason() {
    let hub = Hub::new(HubConfig::default());
    hub.on_client_connect(|conn: Arc<Connection>| async move {
        if conn.user_id() == "mallory" {
            Err(CallbackError::from("banned"))
        } else {
            Ok(())
        }
    });
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;

    let mut mallory = server.connect("user_id=mallory&client_id=m1").await;
    let (code, reason) = mallory.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("banned"), "close reason: {reason}");
    match server.next_end().await {
        ConnEnd::Accepted(Err(RegisterError::Rejected(text))) => assert_eq!(text, "banned"),
        other => panic!("expected Rejected from accept, got {other:?}"),
    }
    let hub = &server.hub;
    assert_eq!(hub.connection_count(), 0);
    assert!(!hub.is_user_online("mallory"));
    let stats = hub.stats();
    assert_eq!(stats.connections_rejected, 1);
    assert_eq!(stats.connections_accepted, 0);
    // A refused connection was never registered: no disconnect callback for it.
    assert_eq!(disconnects.count(), 0);

    let mut alice = server.connect_ready("user_id=alice&client_id=a1").await;
    alice.assert_nothing_received().await;
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.stats().connections_rejected, 1);
    disconnects.assert_none_pending();
}

#[tokio::test]
async fn disconnect_callback_reports_client_close_with_its_code_once() {
    let hub = Hub::new(HubConfig::default());
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut client = server.connect_ready("user_id=alice&client_id=a1").await;

    client.close(4000).await;
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "a1");
    assert_eq!(reason, DisconnectReason::ClientClosed { code: 4000 });
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    disconnects.assert_none_pending();
    assert_eq!(server.hub.connection_count(), 0);
    assert_eq!(server.hub.stats().connections_closed, 1);
}

#[tokio::test]
async fn disconnect_callback_reports_kick_once() {
    let hub = Hub::new(HubConfig::default());
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut client = server.connect_ready("user_id=alice&client_id=a1").await;

    server.hub.kick_user("alice", "bye", false).await.unwrap();
    assert_eq!(client.expect_close().await.0, 1008);
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "a1");
    assert_eq!(
        reason,
        DisconnectReason::Kicked {
            reason: "bye".to_owned()
        }
    );
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    disconnects.assert_none_pending();
}

#[tokio::test]
async fn disconnect_callback_reports_replacement_once() {
    let hub = Hub::new(HubConfig::default());
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut first = server.connect_ready("user_id=alice&client_id=dup").await;
    let first_id = server.hub.connection("dup").unwrap().id();
    let mut second = server.connect_ready("user_id=alice&client_id=dup").await;

    assert_eq!(first.expect_close().await.0, 1000);
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "dup");
    assert_eq!(reason, DisconnectReason::Replaced);
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    disconnects.assert_none_pending();
    // The replacement is still live and is not affected by the old one's unregistration.
    assert_ne!(server.hub.connection("dup").unwrap().id(), first_id);
    second.assert_nothing_received().await;

    second.close(1000).await;
    let (_, reason) = disconnects.next().await;
    assert_eq!(reason, DisconnectReason::ClientClosed { code: 1000 });
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 2);
    assert_eq!(server.hub.connection_count(), 0);
}

#[tokio::test]
async fn disconnect_callback_reports_login_elsewhere_once() {
    let mut config = HubConfig::default();
    config.multi_login = MultiLoginPolicy::KickOld;
    config.max_connections_per_user = 1;
    let hub = Hub::new(config);
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let mut old = server.connect_ready("user_id=alice&client_id=old").await;
    let _new = server.connect_ready("user_id=alice&client_id=new").await;

    assert_eq!(old.recv_json().await["message_type"], "force_offline");
    assert_eq!(old.expect_close().await.0, 1008);
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "old");
    assert_eq!(reason, DisconnectReason::LoginElsewhere);
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    disconnects.assert_none_pending();
}

#[tokio::test]
async fn disconnect_callback_reports_a_vanished_client_as_connection_lost() {
    let hub = Hub::new(HubConfig::default());
    let mut disconnects = Disconnects::record(&hub);
    let mut server = TestServer::serve(hub).await;
    let client = server.connect_ready("user_id=alice&client_id=a1").await;

    // The TCP connection ends without a WebSocket close frame.
    drop(client);
    let (client_id, reason) = disconnects.next().await;
    assert_eq!(client_id, "a1");
    server.wait_served(1).await;
    assert_eq!(disconnects.count(), 1);
    assert!(
        matches!(reason, DisconnectReason::ConnectionLost { .. }),
        "a peer that vanished without a close frame should be ConnectionLost, got {reason:?}"
    );
}

#[tokio::test]
async fn message_sent_right_after_connect_is_the_first_frame() {
    let hub = Hub::new(HubConfig::default());
    let (tx, mut connected) = mpsc::unbounded_channel();
    hub.on_client_connect(move |conn: Arc<Connection>| {
        let _ = tx.send(conn.client_id().to_owned());
        async { Ok(()) }
    });
    let server = TestServer::serve(hub).await;
    let hub = &server.hub;

    let mut client = server.connect("user_id=alice&client_id=a1").await;
    let client_id = tokio::time::timeout(support::TIMEOUT, connected.recv())
        .await
        .expect("connect callback did not run")
        .unwrap();
    assert_eq!(client_id, "a1");
    // The callback runs just before admission; admission is one step later.
    wait_until("alice is online", || hub.is_user_online("alice")).await;
    let report = hub
        .send_to_user("alice", HubMessage::text("first"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let frame = client.recv_json().await;
    assert_eq!(frame["content"], "first", "{frame}");
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn message_sent_right_after_register_is_queued() {
    let hub = Hub::new(HubConfig::default());
    hub.start();
    let mut registration = hub.register(Identity::new("alice")).await.unwrap();
    let report = hub
        .send_to_user("alice", HubMessage::text("right away"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    let Some(Outbound::Message(frame)) = registration.try_recv() else {
        panic!("the message was not queued for the new registration");
    };
    let frame: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
    assert_eq!(frame["content"], "right away");
    assert!(registration.try_recv().is_none());
}

#[tokio::test]
async fn welcome_from_connect_callback_is_the_first_frame() {
    let hub = Hub::new(HubConfig::default());
    let greeter = hub.clone();
    hub.on_client_connect(move |conn: Arc<Connection>| {
        let queued = greeter.send_to_new_connection(
            &conn,
            HubMessage::new(MessageType::Welcome, format!("hi {}", conn.user_id())),
        );
        async move {
            if queued {
                Ok(())
            } else {
                Err(CallbackError::from("welcome not queued"))
            }
        }
    });
    let server = TestServer::serve(hub).await;
    let mut client = server.connect("user_id=alice&client_id=a1").await;
    let frame = client.recv_json().await;
    assert_eq!(frame["message_type"], "welcome", "{frame}");
    assert_eq!(frame["content"], "hi alice", "{frame}");
    client.assert_nothing_received().await;
}

#[tokio::test]
async fn the_clients_close_code_is_echoed() {
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let server = TestServer::start(HubConfig::default()).await;
    let mut client = server.connect_ready("user_id=echo").await;
    let frame = CloseFrame {
        code: CloseCode::from(4001),
        reason: "leaving".into(),
    };
    futures_util::SinkExt::send(&mut client.ws, Message::Close(Some(frame)))
        .await
        .unwrap();
    let reply = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            match futures_util::StreamExt::next(&mut client.ws).await {
                Some(Ok(Message::Close(reply))) => return reply,
                Some(Ok(_)) => continue,
                other => panic!("expected the server's close, got {other:?}"),
            }
        }
    })
    .await
    .expect("the server answers the close");
    assert_eq!(reply.map(|f| u16::from(f.code)), Some(4001));
}

#[tokio::test]
async fn a_close_reason_is_cut_to_120_bytes_on_a_character_boundary() {
    let server = TestServer::start(HubConfig::default()).await;
    let mut client = server.connect_ready("user_id=long").await;
    // 3-byte characters: 120 bytes fall inside one, so the cut must step back.
    let reason = "é€".repeat(100);
    assert_eq!(
        server
            .hub
            .kick_user("long", &reason, false)
            .await
            .unwrap()
            .kicked,
        1
    );
    let (code, text) = client.expect_close().await;
    assert_eq!(code, 1008);
    assert!(text.len() <= 120, "{} bytes: {text}", text.len());
    assert!(
        text.len() > 110,
        "cut no shorter than needed: {} bytes",
        text.len()
    );
    assert!(text.starts_with("kicked: é€"), "{text}");
    let full = format!("kicked: {reason}");
    assert!(
        full.starts_with(&text),
        "a prefix of the full reason: {text}"
    );
}
