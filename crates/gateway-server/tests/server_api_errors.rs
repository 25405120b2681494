//! End-to-end tests of the REST API's refusals: JSON errors for bad bodies, unknown routes
//! and methods, a stopped hub, API keys, and the error shapes of axum's own extractors.

mod support;

use support::*;

// ------------------------------------------------------------------------------ 9. errors

#[tokio::test]
async fn bad_bodies_and_unknown_routes_are_json_errors() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    for body in [
        "{not json",
        "[1]",
        r#""text""#,
        r#"{"content": 5}"#,
        r#"{"data": "not an object"}"#,
    ] {
        let (status, error) = post(api, "/api/v1/users/x/messages", body).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_body")),
            "{body}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }

    for (method, path) in [
        ("GET", "/api/v1/nope"),
        ("GET", "/nope"),
        ("POST", "/api/v1/users/x/messages/extra"),
    ] {
        let (status, error) = http(api, method, path, &[], None).await;
        assert_eq!(
            (status, error_code(&error)),
            (404, Some("not_found")),
            "{method} {path}: {error}"
        );
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn wrong_method_on_a_route_is_405() {
    let server = start(local_config()).await;
    let (status, head, _body) =
        http_raw(server.api_addr(), "GET", "/api/v1/broadcast", &[], None).await;
    assert_eq!(status, 405, "{head}");
    assert!(head.contains("\r\nallow: post"), "{head}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_stopped_hub_answers_503_not_running() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let (status, _) = get(api, "/ready").await;
    assert_eq!(status, 200);

    // Stopping the hub alone keeps both listeners answering.
    server.hub().stop(WAIT).await;
    assert!(!server.hub().is_running());
    for path in ["/api/v1/users/x/messages", "/api/v1/broadcast"] {
        let (status, error) = post(api, path, r#"{"content":"x"}"#).await;
        assert_eq!(
            (status, error_code(&error)),
            (503, Some("not_running")),
            "{path}: {error}"
        );
    }
    let (status, error) = http(api, "DELETE", "/api/v1/users/x/connections", &[], None).await;
    assert_eq!((status, error_code(&error)), (503, Some("not_running")));
    let (status, ready) = get(api, "/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["status"], "not_ready", "{ready}");
    assert_eq!(ready["checks"]["hub"], "stopped", "{ready}");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------------ 10. API keys

#[tokio::test]
async fn api_keys_guard_the_api_but_not_health_ready_or_openapi() {
    let mut config = local_config();
    config.api.keys = vec!["k1".to_owned(), "k2".to_owned()];
    let server = start(config).await;
    let api = server.api_addr();

    let (status, error) = get(api, "/api/v1/stats").await;
    assert_eq!(
        (status, error_code(&error)),
        (401, Some("missing_api_key")),
        "{error}"
    );
    for auth in ["Bearer nope", "Bearer k", "Bearer k1k2", "Basic k1"] {
        let (status, error) = http(
            api,
            "GET",
            "/api/v1/stats",
            &[("authorization", auth)],
            None,
        )
        .await;
        assert_eq!(status, 401, "{auth}: {error}");
    }
    let (status, error) = http(
        api,
        "GET",
        "/api/v1/stats",
        &[("authorization", "Bearer wrong")],
        None,
    )
    .await;
    assert_eq!((status, error_code(&error)), (401, Some("invalid_api_key")));

    for key in ["k1", "k2"] {
        let auth = format!("Bearer {key}");
        let (status, stats) = http(
            api,
            "GET",
            "/api/v1/stats",
            &[("authorization", auth.as_str())],
            None,
        )
        .await;
        assert_eq!(status, 200, "{key}: {stats}");
        assert_eq!(stats["node_id"], server.hub().node_id());
    }
    // A send with the key works; without it, nothing is sent.
    let (status, error) = post(api, "/api/v1/broadcast", r#"{"content":"x"}"#).await;
    assert_eq!((status, error_code(&error)), (401, Some("missing_api_key")));
    let (status, report) = http(
        api,
        "POST",
        "/api/v1/broadcast",
        &[("authorization", "Bearer k2")],
        Some(r#"{"content":"x"}"#),
    )
    .await;
    assert_eq!(
        (status, report["delivered"].as_u64()),
        (200, Some(0)),
        "{report}"
    );

    for path in ["/health", "/ready", "/api/v1/openapi.json"] {
        let (status, body) = get(api, path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------- 12. error shapes

/// The API's body limit (docs/server-api.md).
const MAX_BODY: usize = 1024 * 1024;

/// A send body of exactly `len` bytes: a message padded with trailing spaces.
fn body_of_len(len: usize) -> String {
    let mut body = r#"{"content":"big"}"#.to_owned();
    body.push_str(&" ".repeat(len - body.len()));
    body
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_json_413() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    // One byte over: axum's body limit used to answer in plain text.
    let body = body_of_len(MAX_BODY + 1);
    for path in ["/api/v1/users/big/messages", "/api/v1/broadcast"] {
        let (status, error) = post(api, path, &body).await;
        assert_eq!(
            (status, error_code(&error)),
            (413, Some("body_too_large")),
            "{path}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }
    // Exactly the limit is accepted.
    let (status, report) = post(api, "/api/v1/users/big/messages", &body_of_len(MAX_BODY)).await;
    assert_eq!(status, 200, "{report}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn undecodable_paths_are_json_400_invalid_path() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    for (method, path, body) in [
        ("GET", "/api/v1/users/%FF/presence", None),
        (
            "POST",
            "/api/v1/users/%C3%28/messages",
            Some(r#"{"content":"x"}"#),
        ),
        ("DELETE", "/api/v1/users/%FF%FE/connections", None),
        ("GET", "/api/v1/groups/%80/members", None),
        ("PUT", "/api/v1/groups/g/members/%FF", None),
        ("DELETE", "/api/v1/groups/%FF/members/u", None),
        (
            "POST",
            "/api/v1/connections/%E2%82/messages",
            Some(r#"{"content":"x"}"#),
        ),
    ] {
        let (status, error) = http(api, method, path, &[], body).await;
        assert_eq!(
            (status, error_code(&error)),
            (400, Some("invalid_path")),
            "{method} {path}: {error}"
        );
        assert!(error["message"].is_string(), "{error}");
    }
    server.stop(WAIT).await;
}

#[tokio::test]
async fn every_api_answer_carries_a_request_id_and_keeps_the_callers() {
    let server = start(local_config()).await;
    let api = server.api_addr();
    let (status, head, _) = wsc_testkit::http::raw(api, "GET", "/api/v1/stats", &[], None).await;
    assert_eq!(status, 200);
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap_or_else(|| panic!("no request id in {head}"));
    assert_eq!(id.trim().len(), 36, "a generated UUID: {id}");
    let given = [("x-request-id", "trace-42")];
    let (status, head, body) = wsc_testkit::http::raw(api, "GET", "/nope", &given, None).await;
    assert_eq!(status, 404, "{body}");
    assert!(head.contains("x-request-id: trace-42"), "{head}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn an_ack_wait_longer_than_the_send_bound_is_refused() {
    let server = start(local_config()).await;
    let body = r#"{"content":"x","ack":{"timeout_ms":100000,"retries":3}}"#;
    let (status, error) = post(server.api_addr(), "/api/v1/users/u/messages", body).await;
    assert_eq!(status, 400, "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("at most 300000 ms")),
        "{error}"
    );
    server.stop(WAIT).await;
}
