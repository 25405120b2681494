//! Routing over real WebSocket connections: ping/pong, users, tickets, groups, broadcast
//! (plain, excluding a user, scoped by app/namespace) and single connections.

mod support;

use serde_json::{Value, json};
use support::{Client, TestServer};
use wsc_hub::{BroadcastOptions, HubConfig, HubMessage};

async fn server() -> TestServer {
    TestServer::start(HubConfig::default()).await
}

fn assert_text(frame: &Value, content: &str) {
    assert_eq!(frame["message_type"], "text", "{frame}");
    assert_eq!(frame["content"], content, "{frame}");
}

#[tokio::test]
async fn ping_gets_pong_with_the_same_id() {
    let server = server().await;
    let mut client = server.connect("user_id=alice&client_id=a1").await;
    client
        .send_text(r#"{"message_type":"ping","id":"x"}"#)
        .await;
    let pong = client.recv_json().await;
    assert_eq!(pong["message_type"], "pong", "{pong}");
    assert_eq!(pong["id"], "x", "{pong}");
    assert_eq!(pong["receiver"], "alice", "{pong}");
    assert_eq!(pong["sender"], "system", "{pong}");
}

#[tokio::test]
async fn heartbeat_gets_pong_with_the_same_id() {
    let server = server().await;
    let mut client = server.connect("user_id=alice&client_id=a1").await;
    client
        .send_text(r#"{"message_type":"heartbeat","id":"hb-1"}"#)
        .await;
    let pong = client.recv_json().await;
    assert_eq!(pong["message_type"], "pong", "{pong}");
    assert_eq!(pong["id"], "hb-1", "{pong}");
    // The older key name `type` is accepted as an alias on input.
    client.send_text(r#"{"type":"ping","id":"old"}"#).await;
    let pong = client.recv_json().await;
    assert_eq!(pong["message_type"], "pong", "{pong}");
    assert_eq!(pong["id"], "old", "{pong}");
}

#[tokio::test]
async fn send_to_user_reaches_every_device_and_nobody_else() {
    let server = server().await;
    let mut phone = server.connect_ready("user_id=alice&client_id=phone").await;
    let mut laptop = server.connect_ready("user_id=alice&client_id=laptop").await;
    let mut bob = server.connect_ready("user_id=bob&client_id=bob1").await;

    let report = server
        .hub
        .send_to_user("alice", HubMessage::text("for alice"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    assert_eq!(report.nodes, 1);
    assert!(report.failures.is_empty(), "{report:?}");
    assert!(!report.message_id.is_empty());

    for device in [&mut phone, &mut laptop] {
        let frame = device.recv_json().await;
        assert_text(&frame, "for alice");
        assert_eq!(frame["receiver"], "alice", "{frame}");
        assert_eq!(frame["message_id"], report.message_id.as_str(), "{frame}");
        device.assert_nothing_received().await;
    }
    // Bob's very next frame is the pong of his own ping, not alice's message.
    bob.assert_nothing_received().await;

    let nobody = server
        .hub
        .send_to_user("carol", HubMessage::text("nobody home"))
        .await
        .unwrap();
    assert_eq!(nobody.delivered, 0);
    assert_eq!(nobody.nodes, 0);
}

#[tokio::test]
async fn send_to_ticket_reaches_the_ticket_except_the_sender() {
    let server = server().await;
    let mut cust1 = server
        .connect_ready("user_id=cust&client_id=cust1&ticket_id=t1")
        .await;
    let mut cust2 = server
        .connect_ready("user_id=cust&client_id=cust2&ticket_id=t1")
        .await;
    let mut agent1 = server
        .connect_ready("user_id=agent1&client_id=ag1&ticket_id=t1,t2")
        .await;
    let mut agent2 = server
        .connect_ready("user_id=agent2&client_id=ag2&ticket_id=t1")
        .await;
    let mut agent3 = server
        .connect_ready("user_id=agent3&client_id=ag3&ticket_id=t2")
        .await;
    let mut no_ticket = server.connect_ready("user_id=agent4&client_id=ag4").await;

    let from_customer = HubMessage {
        sender: "cust".to_owned(),
        ..HubMessage::text("hello agents")
    };
    let report = server
        .hub
        .send_to_ticket("t1", from_customer)
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    for agent in [&mut agent1, &mut agent2] {
        let frame = agent.recv_json().await;
        assert_text(&frame, "hello agents");
        assert_eq!(frame["ticket_id"], "t1", "{frame}");
        assert_eq!(frame["sender"], "cust", "{frame}");
    }
    for other in [&mut cust1, &mut cust2, &mut agent3, &mut no_ticket] {
        other.assert_nothing_received().await;
    }

    let from_agent = HubMessage {
        sender: "agent1".to_owned(),
        ..HubMessage::text("hello customer")
    };
    let report = server.hub.send_to_ticket("t1", from_agent).await.unwrap();
    assert_eq!(report.delivered, 3, "{report:?}");
    for receiver in [&mut cust1, &mut cust2, &mut agent2] {
        assert_text(&receiver.recv_json().await, "hello customer");
    }
    for other in [&mut agent1, &mut agent3, &mut no_ticket] {
        other.assert_nothing_received().await;
    }
}

#[tokio::test]
async fn send_to_group_via_connect_time_groups_and_join_group() {
    let server = server().await;
    let hub = &server.hub;
    let mut u1 = server
        .connect_ready("user_id=u1&client_id=u1c&group_id=a,b")
        .await;
    let mut u2 = server
        .connect_ready("user_id=u2&client_id=u2c&group_id=b")
        .await;
    let mut u3 = server.connect_ready("user_id=u3&client_id=u3c").await;

    assert_eq!(hub.group_members("a").await.unwrap(), vec!["u1".to_owned()]);
    assert_eq!(
        hub.group_members("b").await.unwrap(),
        vec!["u1".to_owned(), "u2".to_owned()]
    );
    assert!(hub.join_group("a", "u3").await.unwrap());
    assert!(
        !hub.join_group("a", "u3").await.unwrap(),
        "second join is not new"
    );
    assert_eq!(
        hub.group_members("a").await.unwrap(),
        vec!["u1".to_owned(), "u3".to_owned()]
    );

    let report = hub
        .send_to_group("a", HubMessage::text("to a"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    for member in [&mut u1, &mut u3] {
        let frame = member.recv_json().await;
        assert_text(&frame, "to a");
        assert_eq!(frame["group_ids"], json!(["a"]), "{frame}");
    }
    u2.assert_nothing_received().await;

    let report = hub
        .send_to_group("b", HubMessage::text("to b"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    for member in [&mut u1, &mut u2] {
        assert_text(&member.recv_json().await, "to b");
    }
    u3.assert_nothing_received().await;

    assert!(hub.leave_group("a", "u3").await.unwrap());
    assert!(!hub.leave_group("a", "u3").await.unwrap());
    assert_eq!(hub.group_members("a").await.unwrap(), vec!["u1".to_owned()]);
    let report = hub
        .send_to_group("a", HubMessage::text("after leave"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    assert_text(&u1.recv_json().await, "after leave");
    u3.assert_nothing_received().await;
    u2.assert_nothing_received().await;
}

#[tokio::test]
async fn broadcast_reaches_everyone_or_everyone_but_the_excluded_user() {
    let server = server().await;
    let mut clients: Vec<Client> = Vec::new();
    for (user, client) in [("u1", "c1"), ("u2", "c2a"), ("u2", "c2b"), ("u3", "c3")] {
        clients.push(
            server
                .connect_ready(&format!("user_id={user}&client_id={client}"))
                .await,
        );
    }

    let report = server
        .hub
        .broadcast(HubMessage::text("all"), BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!(report.delivered, 4, "{report:?}");
    for client in &mut clients {
        assert_text(&client.recv_json().await, "all");
    }

    let report = server
        .hub
        .broadcast(
            HubMessage::text("not u2"),
            BroadcastOptions::excluding("u2"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    assert_text(&clients[0].recv_json().await, "not u2");
    assert_text(&clients[3].recv_json().await, "not u2");
    clients[1].assert_nothing_received().await;
    clients[2].assert_nothing_received().await;
}

#[tokio::test]
async fn broadcast_scoped_by_app_and_namespace() {
    let server = server().await;
    let mut app1_ns1 = server
        .connect_ready("user_id=u1&client_id=c1&app_id=app1&namespace=ns1")
        .await;
    let mut app1_ns2 = server
        .connect_ready("user_id=u2&client_id=c2&app_id=app1&namespace=ns2")
        .await;
    let mut app2_ns1 = server
        .connect_ready("user_id=u3&client_id=c3&app_id=app2&namespace=ns1")
        .await;
    let mut unscoped = server.connect_ready("user_id=u4&client_id=c4").await;

    let report = server
        .hub
        .broadcast(
            HubMessage::text("app1/ns1"),
            BroadcastOptions::scoped("app1", "ns1"),
        )
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let frame = app1_ns1.recv_json().await;
    assert_text(&frame, "app1/ns1");
    assert_eq!(frame["app_id"], "app1", "{frame}");
    assert_eq!(frame["namespace"], "ns1", "{frame}");
    for other in [&mut app1_ns2, &mut app2_ns1, &mut unscoped] {
        other.assert_nothing_received().await;
    }

    let mut app_only = BroadcastOptions::default();
    app_only.app_id = Some("app1".to_owned());
    let report = server
        .hub
        .broadcast(HubMessage::text("app1"), app_only)
        .await
        .unwrap();
    assert_eq!(report.delivered, 2, "{report:?}");
    assert_text(&app1_ns1.recv_json().await, "app1");
    assert_text(&app1_ns2.recv_json().await, "app1");
    app2_ns1.assert_nothing_received().await;
    unscoped.assert_nothing_received().await;

    let report = server
        .hub
        .broadcast(HubMessage::text("everyone"), BroadcastOptions::default())
        .await
        .unwrap();
    assert_eq!(report.delivered, 4, "{report:?}");
}

#[tokio::test]
async fn send_to_connection_reaches_only_that_client_id() {
    let server = server().await;
    let mut c1 = server.connect_ready("user_id=alice&client_id=c1").await;
    let mut c2 = server.connect_ready("user_id=alice&client_id=c2").await;

    let report = server
        .hub
        .send_to_connection("c2", HubMessage::text("only c2"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1, "{report:?}");
    let frame = c2.recv_json().await;
    assert_text(&frame, "only c2");
    assert_eq!(frame["receiver_client"], "c2", "{frame}");
    c1.assert_nothing_received().await;

    let report = server
        .hub
        .send_to_connection("nope", HubMessage::text("nobody"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 0);
    c1.assert_nothing_received().await;
    c2.assert_nothing_received().await;
}
