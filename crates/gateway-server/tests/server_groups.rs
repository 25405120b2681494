//! Groups through the server's APIs: the limits from `wsc.groups` refuse with 409
//! `group_full` / `too_many_groups` on REST and `FAILED_PRECONDITION` on gRPC, a user's
//! groups are listed, a group is disbanded, and the routes are in the OpenAPI document.

mod support;

use ::gateway_server::grpc::proto::{GroupMemberRequest, GroupMembersRequest, UserGroupsRequest};
use serde_json::json;
use support::*;
use tonic::Code;

fn limited() -> wsc_config::GatewayConfig {
    let mut config = local_config();
    config.wsc.groups.max_group_size = 2;
    config.wsc.groups.max_groups_per_user = 2;
    config
}

async fn put(api: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    http(api, "PUT", path, &[], None).await
}

#[tokio::test]
async fn rest_joins_past_the_limits_are_409_with_the_limit_named() {
    let server = start(limited()).await;
    let api = server.api_addr();
    for user in ["ann", "bob"] {
        let (status, _) = put(api, &format!("/api/v1/groups/g/members/{user}")).await;
        assert_eq!(status, 200);
    }
    let (status, body) = put(api, "/api/v1/groups/g/members/cat").await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"error": "group_full", "message": "group g is full: at most 2 members"})
        )
    );
    let (status, _) = put(api, "/api/v1/groups/h/members/ann").await;
    assert_eq!(status, 200);
    let (status, body) = put(api, "/api/v1/groups/i/members/ann").await;
    assert_eq!(
        (status, body),
        (
            409,
            json!({"error": "too_many_groups", "message": "user ann is in too many groups: at most 2"})
        )
    );
    let (status, body) = put(api, "/api/v1/groups/g/members/ann").await;
    assert_eq!((status, body["added"].clone()), (200, json!(false)));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn rest_lists_a_users_groups_and_disbands_a_group() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let mut member = connect(server.public_addr(), "user_id=ann").await;
    for (group, user) in [("g", "ann"), ("h", "ann"), ("g", "bob")] {
        let (status, _) = put(api, &format!("/api/v1/groups/{group}/members/{user}")).await;
        assert_eq!(status, 200);
    }
    let (status, body) = get(api, "/api/v1/users/ann/groups").await;
    assert_eq!(
        (status, body),
        (
            200,
            json!({"user_id": "ann", "total": 2, "groups": ["g", "h"]})
        )
    );
    let (status, body) = get(api, "/api/v1/users/nobody/groups").await;
    assert_eq!(
        (status, body),
        (200, json!({"user_id": "nobody", "total": 0, "groups": []}))
    );

    let (status, body) = http(api, "DELETE", "/api/v1/groups/g", &[], None).await;
    assert_eq!(
        (status, body),
        (200, json!({"group_id": "g", "members": ["ann", "bob"]}))
    );
    let (_, body) = get(api, "/api/v1/groups/g/members").await;
    assert_eq!(body, json!({"group_id": "g", "total": 0, "members": []}));
    let (_, body) = get(api, "/api/v1/users/ann/groups").await;
    assert_eq!(body["groups"], json!(["h"]));
    let (status, report) = post(api, "/api/v1/groups/g/messages", r#"{"content":"x"}"#).await;
    assert_eq!((status, report["delivered"].clone()), (200, json!(0)));
    assert_nothing_pending(&mut member, "a disbanded group reaches nobody").await;

    let (status, body) = http(api, "DELETE", "/api/v1/groups/%20", &[], None).await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("invalid_target"))
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn grpc_refuses_past_the_limits_and_lists_and_disbands() {
    let server = start(limited()).await;
    let mut grpc = grpc(&server).await;
    let member = |group: &str, user: &str| GroupMemberRequest {
        group_id: group.to_owned(),
        user_id: user.to_owned(),
    };
    for (group, user) in [("g", "ann"), ("g", "bob"), ("h", "ann")] {
        assert!(
            grpc.join_group(member(group, user))
                .await
                .unwrap()
                .into_inner()
                .changed
        );
    }
    let full = grpc.join_group(member("g", "cat")).await.unwrap_err();
    assert_eq!(
        (full.code(), full.message()),
        (
            Code::FailedPrecondition,
            "group g is full: at most 2 members"
        )
    );
    let many = grpc.join_group(member("i", "ann")).await.unwrap_err();
    assert_eq!(
        (many.code(), many.message()),
        (
            Code::FailedPrecondition,
            "user ann is in too many groups: at most 2"
        )
    );
    let groups = grpc
        .user_groups(UserGroupsRequest {
            user_id: "ann".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .groups;
    assert_eq!(groups, ["g", "h"]);
    let disbanded = grpc
        .disband_group(GroupMembersRequest {
            group_id: "g".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(disbanded, ["ann", "bob"]);
    assert!(
        grpc.join_group(member("g", "cat"))
            .await
            .unwrap()
            .into_inner()
            .changed
    );
    let blank = grpc
        .user_groups(UserGroupsRequest {
            user_id: " ".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(blank.code(), Code::InvalidArgument);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_group_routes_are_in_the_openapi_document() {
    let server = start(local_config()).await;
    let (status, doc) = get(server.api_addr(), "/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let paths = &doc["paths"];
    assert!(paths["/api/v1/groups/{group_id}"]["delete"].is_object());
    assert!(paths["/api/v1/users/{user_id}/groups"]["get"].is_object());
    let join = &paths["/api/v1/groups/{group_id}/members/{user_id}"]["put"];
    assert!(join["responses"]["409"].is_object(), "{join}");
    server.stop(WAIT).await;
}
