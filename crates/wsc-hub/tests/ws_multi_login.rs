//! Multi-login policies (`kick_old`, `kick_new`, `allow_all`) and client-id replacement.

mod support;

use support::{ConnEnd, TestServer, config};
use wsc_hub::{HubConfig, HubMessage, Identity, MultiLoginPolicy, RegisterError};

fn policy(multi_login: MultiLoginPolicy, max: usize) -> HubConfig {
    config(|c| {
        c.multi_login = multi_login;
        c.max_connections_per_user = max;
    })
}

#[tokio::test]
async fn kick_old_sends_force_offline_then_closes_with_1008() {
    let mut server = TestServer::start(policy(MultiLoginPolicy::KickOld, 1)).await;
    let mut old = server.connect_ready("user_id=alice&client_id=old").await;
    let mut new = server.connect_ready("user_id=alice&client_id=new").await;

    let notice = old.recv_json().await;
    assert_eq!(notice["message_type"], "force_offline", "{notice}");
    assert_eq!(notice["data"]["reason"], "login_elsewhere", "{notice}");
    assert_eq!(notice["receiver"], "alice", "{notice}");
    let (code, reason) = old.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    server.wait_served(1).await;

    let hub = &server.hub;
    assert_eq!(hub.connection_count(), 1);
    let connections = hub.user_connections("alice").unwrap();
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].client_id, "new");
    let report = hub
        .send_to_user("alice", HubMessage::text("to the new one"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(new.recv_json().await["content"], "to the new one");
    new.assert_nothing_received().await;
}

#[tokio::test]
async fn kick_old_evicts_the_oldest_connection_first() {
    let mut server = TestServer::start(policy(MultiLoginPolicy::KickOld, 2)).await;
    let mut first = server.connect_ready("user_id=alice&client_id=c1").await;
    let mut second = server.connect_ready("user_id=alice&client_id=c2").await;
    let mut third = server.connect_ready("user_id=alice&client_id=c3").await;

    assert_eq!(first.recv_json().await["message_type"], "force_offline");
    assert_eq!(first.expect_close().await.0, 1008);
    server.wait_served(1).await;
    second.assert_nothing_received().await;
    third.assert_nothing_received().await;
    let mut ids: Vec<String> = server
        .hub
        .user_connections("alice")
        .unwrap()
        .into_iter()
        .map(|c| c.client_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["c2", "c3"]);
}

#[tokio::test]
async fn kick_new_refuses_the_new_connection_with_1008() {
    let mut server = TestServer::start(policy(MultiLoginPolicy::KickNew, 1)).await;
    let mut first = server.connect_ready("user_id=alice&client_id=c1").await;

    let mut second = server.connect("user_id=alice&client_id=c2").await;
    let (code, reason) = second.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("1 connection"), "close reason: {reason}");
    match server.next_end().await {
        ConnEnd::Accepted(Err(RegisterError::UserConnectionLimit { limit: 1 })) => {}
        other => panic!("expected UserConnectionLimit from accept, got {other:?}"),
    }

    // The first connection is untouched.
    first.assert_nothing_received().await;
    let hub = &server.hub;
    assert_eq!(hub.connection_count(), 1);
    let report = hub
        .send_to_user("alice", HubMessage::text("still here"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(first.recv_json().await["content"], "still here");
    assert_eq!(hub.stats().connections_rejected, 1);
    assert_eq!(hub.stats().connections_accepted, 1);
}

#[tokio::test]
async fn kick_new_register_returns_user_connection_limit() {
    let server = TestServer::start(policy(MultiLoginPolicy::KickNew, 1)).await;
    let hub = &server.hub;
    let _first = hub.register(Identity::new("alice")).await.unwrap();
    let error = hub
        .register(Identity::new("alice").with_client_id("other"))
        .await
        .unwrap_err();
    assert_eq!(error, RegisterError::UserConnectionLimit { limit: 1 });
    assert_eq!(error.code(), "user_connection_limit");
    assert_eq!(error.close_code(), 1008);
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.stats().connections_rejected, 1);
    // Another user is not affected.
    let _bob = hub.register(Identity::new("bob")).await.unwrap();
    assert_eq!(hub.connection_count(), 2);
}

#[tokio::test]
async fn kick_new_still_lets_the_same_client_id_reconnect() {
    let mut server = TestServer::start(policy(MultiLoginPolicy::KickNew, 1)).await;
    let mut old = server.connect_ready("user_id=alice&client_id=c1").await;
    let mut new = server.connect_ready("user_id=alice&client_id=c1").await;
    assert_eq!(old.expect_close().await.0, 1000);
    server.wait_served(1).await;
    assert_eq!(server.hub.connection_count(), 1);
    assert_eq!(server.hub.stats().connections_rejected, 0);
    new.assert_nothing_received().await;
}

#[tokio::test]
async fn allow_all_ignores_the_per_user_maximum() {
    let server = TestServer::start(policy(MultiLoginPolicy::AllowAll, 1)).await;
    let mut a = server.connect_ready("user_id=alice&client_id=c1").await;
    let mut b = server.connect_ready("user_id=alice&client_id=c2").await;
    assert_eq!(server.hub.connection_count(), 2);
    let report = server
        .hub
        .send_to_user("alice", HubMessage::text("both"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    for client in [&mut a, &mut b] {
        assert_eq!(client.recv_json().await["content"], "both");
        client.assert_nothing_received().await;
    }
}

#[tokio::test]
async fn same_client_id_replaces_the_old_connection() {
    let mut server = TestServer::start(HubConfig::default()).await;
    let mut first = server.connect_ready("user_id=alice&client_id=dup").await;
    let first_id = server.hub.connection("dup").unwrap().id();
    let mut second = server.connect_ready("user_id=alice&client_id=dup").await;

    let (code, reason) = first.expect_close().await;
    assert_eq!(code, 1000, "{reason}");
    server.wait_served(1).await;

    let hub = &server.hub;
    assert_eq!(hub.connection_count(), 1);
    assert_eq!(hub.online_user_count(), 1);
    assert_ne!(hub.connection("dup").unwrap().id(), first_id);
    let report = hub
        .send_to_user("alice", HubMessage::text("after replacement"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_eq!(second.recv_json().await["content"], "after replacement");
    second.assert_nothing_received().await;
    assert_eq!(hub.stats().connections_accepted, 2);
    assert_eq!(hub.stats().connections_closed, 1);
}

#[tokio::test]
async fn another_user_cannot_take_over_a_client_id() {
    let hub = wsc_hub::Hub::new(wsc_hub::HubConfig::default());
    hub.start();
    let _alice = hub
        .register(wsc_hub::Identity::new("alice").with_client_id("shared"))
        .await
        .unwrap();
    let err = hub
        .register(wsc_hub::Identity::new("mallory").with_client_id("shared"))
        .await
        .unwrap_err();
    assert_eq!(err, wsc_hub::RegisterError::ClientIdInUse);
    assert_eq!(hub.connection("shared").unwrap().user_id(), "alice");
    assert_eq!(hub.connection_count(), 1);
}
