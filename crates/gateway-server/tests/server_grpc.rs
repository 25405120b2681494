//! The gRPC server API end to end: every call against a running server with real WebSocket
//! clients, the event stream, the health service and API keys.

mod support;

use ::gateway_server::RunningServer;
use ::gateway_server::grpc::proto::gateway_client::GatewayClient;
use ::gateway_server::grpc::proto::{
    Ack, BroadcastRequest, EventsRequest, GroupMemberRequest, GroupMembersRequest, KickRequest,
    OnlineUsersRequest, PresenceRequest, SendRequest, StatsRequest,
};
use futures_util::SinkExt;
use serde_json::Value;
use support::{WAIT, connect, local_config, next_json};
use tokio_tungstenite::tungstenite::Message;
use tonic::transport::Channel;
use wsc_config::GatewayConfig;

async fn start(config: GatewayConfig) -> (RunningServer, GatewayClient<Channel>) {
    let server = support::start(config).await;
    let client = support::grpc(&server).await;
    (server, client)
}

fn send(target: &str, json: &str) -> SendRequest {
    SendRequest {
        target: target.to_owned(),
        message_json: json.to_owned(),
        ack: None,
    }
}

#[tokio::test]
async fn sends_reach_their_targets() {
    let (server, mut grpc) = start(local_config()).await;
    let addr = server.public_addr();
    let mut alice = connect(addr, "user_id=alice&client_id=a1&ticket_id=t1&group_id=g1").await;
    let mut bob = connect(addr, "user_id=bob&client_id=b1&ticket_id=t1").await;

    let reply = grpc
        .send_to_user(send("alice", r#"{"content":"to alice"}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.delivered, 1);
    let report: Value = serde_json::from_str(&reply.report_json).unwrap();
    assert_eq!(report["message_id"], reply.message_id);
    assert_eq!(next_json(&mut alice).await["content"], "to alice");

    let reply = grpc
        .send_to_ticket(send("t1", r#"{"content":"ticket","sender":"alice"}"#))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.delivered, 1, "the sender is excluded");
    assert_eq!(next_json(&mut bob).await["content"], "ticket");

    let reply = grpc
        .send_to_group(send("g1", r#"{"content":"group"}"#))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().delivered, 1);
    assert_eq!(next_json(&mut alice).await["content"], "group");

    let reply = grpc
        .send_to_connection(send("b1", r#"{"content":"conn"}"#))
        .await
        .unwrap();
    assert_eq!(reply.into_inner().delivered, 1);
    assert_eq!(next_json(&mut bob).await["content"], "conn");

    let reply = grpc
        .broadcast(BroadcastRequest {
            message_json: r#"{"content":"all"}"#.to_owned(),
            exclude_user: "bob".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().delivered, 1);
    assert_eq!(next_json(&mut alice).await["content"], "all");

    let bad = grpc.send_to_user(send("alice", "[1]")).await.unwrap_err();
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    let empty = grpc.send_to_user(send("", "{}")).await.unwrap_err();
    assert_eq!(empty.code(), tonic::Code::InvalidArgument);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn acknowledged_send_returns_the_outcome() {
    let (server, mut grpc) = start(local_config()).await;
    let mut alice = connect(server.public_addr(), "user_id=alice&client_id=a1").await;
    let request = SendRequest {
        ack: Some(Ack {
            timeout_ms: 5000,
            retries: Some(1),
        }),
        ..send("alice", r#"{"content":"please ack"}"#)
    };
    let call = tokio::spawn(async move { grpc.send_to_user(request).await });
    let frame = next_json(&mut alice).await;
    assert_eq!(frame["require_ack"], true);
    let ack = serde_json::json!({"message_type": "ack", "message_id": frame["message_id"]});
    alice.send(Message::text(ack.to_string())).await.unwrap();
    let reply = call.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.delivered, 1);
    let report: Value = serde_json::from_str(&reply.report_json).unwrap();
    assert_eq!(report["outcomes"][0]["status"], "acked");
    assert_eq!(report["outcomes"][0]["client_id"], "a1");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn queries_kick_and_groups() {
    let (server, mut grpc) = start(local_config()).await;
    let addr = server.public_addr();
    let mut alice = connect(addr, "user_id=alice&client_id=a1").await;
    let _bob = connect(addr, "user_id=bob").await;

    let users = grpc
        .online_users(OnlineUsersRequest {
            offset: 0,
            limit: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((users.total, users.users), (2, vec!["alice".to_owned()]));
    let too_many = grpc
        .online_users(OnlineUsersRequest {
            offset: 0,
            limit: 5000,
        })
        .await
        .unwrap_err();
    assert_eq!(too_many.code(), tonic::Code::InvalidArgument);

    let presence = grpc
        .presence(PresenceRequest {
            user_id: "alice".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(presence.online);
    assert_eq!(presence.client_ids, ["a1"]);
    assert_eq!(presence.nodes, [server.hub().node_id()]);
    let nobody = grpc
        .presence(PresenceRequest {
            user_id: "nobody".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!nobody.online && nobody.nodes.is_empty());

    let stats = grpc.stats(StatsRequest {}).await.unwrap().into_inner();
    assert_eq!((stats.connections, stats.users), (2, 2));
    let json: Value = serde_json::from_str(&stats.stats_json).unwrap();
    assert_eq!(json["connections"], 2);

    let member = GroupMemberRequest {
        group_id: "g".to_owned(),
        user_id: "alice".to_owned(),
    };
    assert!(
        grpc.join_group(member.clone())
            .await
            .unwrap()
            .into_inner()
            .changed
    );
    assert!(
        !grpc
            .join_group(member.clone())
            .await
            .unwrap()
            .into_inner()
            .changed
    );
    let members = grpc
        .group_members(GroupMembersRequest {
            group_id: "g".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(members.members, ["alice"]);
    assert!(grpc.leave_group(member).await.unwrap().into_inner().changed);

    let kicked = grpc
        .kick_user(KickRequest {
            user_id: "alice".to_owned(),
            reason: "spam".to_owned(),
            notify: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kicked.kicked, 1);
    let notice = next_json(&mut alice).await;
    assert_eq!(notice["message_type"], "kick_out");
    assert_eq!(notice["data"]["reason"], "spam");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_event_stream_reports_connects_messages_disconnects_and_ack_failures() {
    let (server, mut grpc) = start(local_config()).await;
    let mut events = grpc.events(EventsRequest {}).await.unwrap().into_inner();
    let mut next = async || {
        tokio::time::timeout(WAIT, events.message())
            .await
            .expect("an event in time")
            .unwrap()
            .expect("stream open")
    };
    let mut carol = connect(server.public_addr(), "user_id=carol&client_id=c1").await;
    let event = next().await;
    assert_eq!(
        (event.name.as_str(), event.user_id.as_str()),
        ("client.connected", "carol")
    );
    assert_eq!(event.client_id, "c1");

    carol
        .send(Message::text(
            r#"{"message_type":"text","content":"hello"}"#,
        ))
        .await
        .unwrap();
    let event = next().await;
    assert_eq!(event.name, "message.received");
    let detail: Value = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(detail["content"], "hello");
    assert_eq!(detail["sender"], "carol");

    let request = SendRequest {
        ack: Some(Ack {
            timeout_ms: 50,
            retries: Some(0),
        }),
        ..send("carol", r#"{"content":"never acked"}"#)
    };
    grpc.send_to_user(request).await.unwrap();
    let event = next().await;
    assert_eq!(event.name, "ack.failed");
    let detail: Value = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(detail["failure"]["attempts"], 1);

    carol.close(None).await.unwrap();
    let event = next().await;
    assert_eq!(event.name, "client.disconnected");
    let detail: Value = serde_json::from_str(&event.detail_json).unwrap();
    assert_eq!(detail["kind"], "client_closed");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn health_service_and_api_keys() {
    let mut config = local_config();
    config.api.keys = vec!["k1".to_owned()];
    let (server, mut grpc) = start(config).await;
    let denied = grpc.stats(StatsRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(StatsRequest {});
    request
        .metadata_mut()
        .insert("authorization", "Bearer k1".parse().unwrap());
    assert!(grpc.stats(request).await.is_ok());
    let mut wrong = tonic::Request::new(StatsRequest {});
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().unwrap());
    assert_eq!(
        grpc.stats(wrong).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );

    let addr = server.grpc_addr().unwrap();
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "wsc.v1.Gateway".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        status.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.stop(WAIT).await;
}

/// What a reflection client (as grpcurl is) learns from the server, without any .proto.
#[tokio::test]
async fn reflection_lists_the_services_and_describes_the_api() {
    use prost::Message as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let mut config = local_config();
    // Reflection describes the API, not data: it needs no key.
    config.api.keys = vec!["k1".to_owned()];
    let (server, _grpc) = start(config).await;
    let channel = Channel::from_shared(format!("http://{}", server.grpc_addr().unwrap()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut reflection = ServerReflectionClient::new(channel);
    let ask = |request: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let requests = tokio_stream::iter([
        ask(MessageRequest::ListServices(String::new())),
        ask(MessageRequest::FileContainingSymbol(
            "wsc.v1.Gateway".to_owned(),
        )),
    ]);
    let mut answers = reflection
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();

    let listed = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = listed.message_response else {
        panic!("not a service list: {listed:?}");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    for expected in [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "wsc.v1.Gateway",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }

    let described = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response else {
        panic!("not a file descriptor: {described:?}");
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    assert_eq!(file.package(), "wsc.v1");
    let gateway = file
        .service
        .iter()
        .find(|s| s.name() == "Gateway")
        .expect("the Gateway service");
    let methods: Vec<&str> = gateway.method.iter().map(|m| m.name()).collect();
    for method in ["SendToUser", "Broadcast", "OnlineUsers", "Events"] {
        assert!(methods.contains(&method), "{method} in {methods:?}");
    }
    server.stop(WAIT).await;
}
