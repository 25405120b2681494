//! End-to-end tests of the REST queries: online users (paging), presence, stats and group
//! membership.

mod support;

use serde_json::json;
use support::*;

// ------------------------------------------------------------------------- 5. users paging

#[tokio::test]
async fn online_users_are_paged_with_a_total() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let mut clients = Vec::new();
    for user in ["u0", "u1", "u2", "u3", "u4"] {
        clients.push(connect(ws_addr, &format!("user_id={user}")).await);
    }
    // A second connection of a user does not count twice.
    clients.push(connect(ws_addr, "user_id=u2").await);

    let (status, page) = get(api, "/api/v1/users?offset=0&limit=2").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["total"], 5, "{page}");
    assert_eq!(page["offset"], 0, "{page}");
    assert_eq!(page["limit"], 2, "{page}");
    assert_eq!(page["users"], json!(["u0", "u1"]), "{page}");

    let (_, page) = get(api, "/api/v1/users?offset=2&limit=2").await;
    assert_eq!(page["users"], json!(["u2", "u3"]), "{page}");

    let (status, page) = get(api, "/api/v1/users?offset=4&limit=2").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].as_u64(), &page["users"]),
        (Some(5), &json!(["u4"]))
    );

    let (status, page) = get(api, "/api/v1/users?offset=10").await;
    assert_eq!(status, 200);
    assert_eq!(
        (page["total"].as_u64(), &page["users"]),
        (Some(5), &json!([]))
    );

    let (status, page) = get(api, "/api/v1/users").await;
    assert_eq!(status, 200);
    assert_eq!(page["users"].as_array().map(Vec::len), Some(5), "{page}");

    for query in ["limit=0", "limit=5000", "limit=abc", "offset=-1"] {
        let (status, error) = get(api, &format!("/api/v1/users?{query}")).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_query")),
            "{query}: {error}"
        );
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------- 6. presence

#[tokio::test]
async fn presence_lists_connections_and_the_node() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let _a = connect(ws_addr, "user_id=pat&client_id=pat-1").await;
    let _b = connect(ws_addr, "user_id=pat&client_id=pat-2").await;

    let (status, presence) = get(api, "/api/v1/users/pat/presence").await;
    assert_eq!(status, 200, "{presence}");
    assert_eq!(presence["user_id"], "pat");
    assert_eq!(presence["online"], true);
    let mut clients: Vec<&str> = presence["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| c["client_id"].as_str().expect("client_id"))
        .collect();
    clients.sort();
    assert_eq!(clients, ["pat-1", "pat-2"], "{presence}");
    assert!(
        presence["connections"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["user_id"] == "pat"),
        "{presence}"
    );
    assert_eq!(presence["nodes"], json!([server.hub().node_id()]));

    let (status, presence) = get(api, "/api/v1/users/nobody/presence").await;
    assert_eq!(status, 200);
    assert_eq!(
        presence,
        json!({"user_id": "nobody", "online": false, "connections": [], "nodes": []})
    );
    server.stop(WAIT).await;
}

// ---------------------------------------------------------------------------------- 7. stats

#[tokio::test]
async fn stats_move_after_a_send() {
    let server = start(local_config()).await;
    let (ws_addr, api) = (server.public_addr(), server.api_addr());
    let (status, before) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200, "{before}");
    assert_eq!(before["connections"], 0, "{before}");
    assert_eq!(before["messages_out"], 0, "{before}");
    assert_eq!(before["node_id"], server.hub().node_id());

    let mut a = connect(ws_addr, "user_id=sam").await;
    let mut b = connect(ws_addr, "user_id=sam").await;
    post_ok(
        api,
        "/api/v1/users/sam/messages",
        r#"{"content":"count me"}"#,
    )
    .await;
    for ws in [&mut a, &mut b] {
        assert_eq!(next_json(ws).await["content"], "count me");
        // The server writes the pong after it recorded the message as written.
        assert_nothing_pending(ws, "stats").await;
    }

    let (status, after) = get(api, "/api/v1/stats").await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["connections"], 2, "{after}");
    assert_eq!(after["users"], 1, "{after}");
    assert_eq!(after["connections_accepted"], 2, "{after}");
    // Two copies of the message plus the two pongs.
    assert_eq!(after["messages_out"], 4, "{after}");
    assert_eq!(after["messages_in"], 2, "the two pings: {after}");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 8. groups

#[tokio::test]
async fn group_membership_add_list_remove() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let _connected = connect(server.public_addr(), "user_id=bea&group_id=team").await;

    for (user, added) in [("zed", true), ("adam", true), ("zed", false)] {
        let (status, body) = http(
            api,
            "PUT",
            &format!("/api/v1/groups/team/members/{user}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"group_id": "team", "user_id": user, "member": true, "added": added})
        );
    }
    let (status, members) = get(api, "/api/v1/groups/team/members").await;
    assert_eq!(status, 200);
    assert_eq!(
        members,
        json!({"group_id": "team", "total": 3, "members": ["adam", "bea", "zed"]})
    );

    for (user, removed) in [("zed", true), ("zed", false), ("nobody", false)] {
        let (status, body) = http(
            api,
            "DELETE",
            &format!("/api/v1/groups/team/members/{user}"),
            &[],
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({"group_id": "team", "user_id": user, "member": false, "removed": removed})
        );
    }
    let (_, members) = get(api, "/api/v1/groups/team/members").await;
    assert_eq!(
        members,
        json!({"group_id": "team", "total": 2, "members": ["adam", "bea"]})
    );
    let (_, members) = get(api, "/api/v1/groups/empty/members").await;
    assert_eq!(
        members,
        json!({"group_id": "empty", "total": 0, "members": []})
    );
    server.stop(WAIT).await;
}
