//! What the server refuses and how, the same on REST, gRPC and the WebSocket upgrade: blank
//! ids, messages over the outbound limit, too many ticket or group ids; and the relay policy
//! of `wsc.relay`, which the binary honours like the facade.

mod support;

use gateway_server::grpc::proto::{
    GroupMemberRequest, GroupMembersRequest, PresenceRequest, SendRequest,
};
use serde_json::json;
use support::{connect, error_code, grpc, http, local_config, next_json, send_json, start};
use tonic::Code;

#[tokio::test]
async fn blank_ids_are_400_on_rest() {
    let server = start(local_config()).await;
    let addr = server.api_addr();
    for (method, path) in [
        ("PUT", "/api/v1/groups/%20/members/alice"),
        ("PUT", "/api/v1/groups/vip/members/%20"),
        ("DELETE", "/api/v1/groups/%20/members/alice"),
        ("GET", "/api/v1/groups/%20/members"),
        ("GET", "/api/v1/users/%20/presence"),
    ] {
        let (status, body) = http(addr, method, path, &[], None).await;
        assert_eq!(status, 400, "{method} {path}: {body}");
        assert_eq!(error_code(&body), Some("invalid_target"), "{method} {path}");
    }
    let (status, body) = http(addr, "GET", "/api/v1/groups/vip/members", &[], None).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["total"], 0,
        "nothing was stored under a blank id: {body}"
    );
}

#[tokio::test]
async fn blank_ids_are_invalid_argument_on_grpc() {
    let server = start(local_config()).await;
    let mut grpc = grpc(&server).await;
    let member = |group: &str, user: &str| GroupMemberRequest {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
    };
    let codes = [
        grpc.join_group(member("", "alice"))
            .await
            .unwrap_err()
            .code(),
        grpc.join_group(member("vip", "")).await.unwrap_err().code(),
        grpc.leave_group(member("", "alice"))
            .await
            .unwrap_err()
            .code(),
        grpc.group_members(GroupMembersRequest {
            group_id: String::new(),
        })
        .await
        .unwrap_err()
        .code(),
        grpc.presence(PresenceRequest {
            user_id: String::new(),
        })
        .await
        .unwrap_err()
        .code(),
    ];
    assert_eq!(codes, [Code::InvalidArgument; 5]);
    assert!(server.hub().group_members("vip").await.unwrap().is_empty());
}

fn small_outbound_limit() -> wsc_config::GatewayConfig {
    let mut config = local_config();
    config.wsc.security.max_outbound_message_size = 4096;
    config
}

#[tokio::test]
async fn a_message_over_the_outbound_limit_is_413_on_rest_and_invalid_argument_on_grpc() {
    let server = start(small_outbound_limit()).await;
    let big = "x".repeat(8000);
    let body = json!({"content": big}).to_string();
    let (status, answer) = http(
        server.api_addr(),
        "POST",
        "/api/v1/users/alice/messages",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(status, 413, "{answer}");
    assert_eq!(error_code(&answer), Some("message_too_large"));

    let mut grpc = grpc(&server).await;
    let refused = grpc
        .send_to_user(SendRequest {
            target: "alice".to_owned(),
            message_json: json!({"content": big}).to_string(),
            ack: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("too large"), "{refused:?}");
    let stats = server.hub().stats();
    assert_eq!(stats.offline_stored, 0, "a refused message is not stored");
}

#[tokio::test]
async fn too_many_group_ids_at_the_upgrade_are_400_with_the_limit() {
    let server = start(local_config()).await;
    let groups: Vec<String> = (0..100).map(|i| format!("g{i}")).collect();
    let path = format!("/ws?user_id=u&group_id={}", groups.join(","));
    let (status, body) = http(
        server.public_addr(),
        "GET",
        &path,
        &[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ],
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_code(&body), Some("too_many_ids"));
    assert!(
        body["message"].as_str().unwrap().contains("at most 32"),
        "{body}"
    );
    assert_eq!(server.hub().connection_count(), 0);
}

#[tokio::test]
async fn the_binary_honours_the_relay_policy() {
    let mut config = local_config();
    config.wsc.relay.enabled = true;
    let server = start(config).await;
    let addr = server.public_addr();
    let mut customer = connect(addr, "user_id=cust&user_type=customer&ticket_id=t1").await;
    let mut agent = connect(addr, "user_id=agent&user_type=agent&ticket_id=t1").await;

    send_json(
        &mut customer,
        &json!({"ticket_id": "t1", "content": "help"}),
    )
    .await;
    let relayed = next_json(&mut agent).await;
    assert_eq!(relayed["content"], "help");
    assert_eq!(relayed["sender"], "cust");

    send_json(
        &mut customer,
        &json!({"id": "x", "ticket_id": "t9", "content": "sneak"}),
    )
    .await;
    let refusal = next_json(&mut customer).await;
    assert_eq!(refusal["data"]["code"], "rejected");
    assert!(
        refusal["content"]
            .as_str()
            .unwrap()
            .contains("relay_denied")
    );
}
