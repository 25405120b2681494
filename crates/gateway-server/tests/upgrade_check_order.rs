//! docs/security.md's table of the upgrade checks is also their order: a request that breaks
//! several checks is refused by the first one. Each test breaks two neighbouring checks at
//! once and expects the earlier refusal.

mod support;

use std::net::SocketAddr;

use serde_json::Value;
use support::{WAIT, connect, local_config, start};
use wsc_config::GatewayConfig;

/// Status and error code of a refused request (a WebSocket handshake unless `method` says
/// otherwise).
async fn refusal(
    addr: SocketAddr,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut all = vec![
        ("upgrade", "websocket"),
        ("connection", "upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    all.extend_from_slice(headers);
    let (status, _, body) =
        wsc_testkit::http::raw(addr, method, &format!("/ws?{query}"), &all, None).await;
    let body: Value = serde_json::from_str(&body).unwrap_or_default();
    (
        status,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

fn strict() -> GatewayConfig {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    config.wsc.security.allowed_user_types = vec!["customer".to_owned()];
    config
}

#[tokio::test]
async fn a_blocked_ip_is_refused_before_anything_else() {
    let mut config = strict();
    config.wsc.security.blocked_ips = vec!["127.0.0.1".to_owned()];
    let server = start(config).await;
    let evil = [("origin", "https://evil.example")];
    let got = refusal(server.public_addr(), "POST", "user_type=admin", &evil).await;
    assert_eq!(got, (403, "ip_blocked".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_handshake_rate_comes_before_the_request_itself() {
    let mut config = strict();
    config.wsc.security.max_handshakes_per_ip_per_second = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    // The first attempt uses the allowance (and is refused for its method); the second,
    // wrong in every other way too, is refused for its rate.
    assert_eq!(refusal(addr, "POST", "", &[]).await.0, 405);
    let got = refusal(addr, "POST", "", &[("origin", "https://evil.example")]).await;
    assert_eq!(got, (429, "rate_limited".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_upgrade_request_comes_before_the_origin() {
    let server = start(strict()).await;
    let evil = [("origin", "https://evil.example")];
    let got = refusal(server.public_addr(), "POST", "user_id=a", &evil).await;
    assert_eq!(got, (405, "method_not_allowed".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_origin_comes_before_the_identity() {
    let server = start(strict()).await;
    let evil = [("origin", "https://evil.example")];
    let got = refusal(server.public_addr(), "GET", "user_type=customer", &evil).await;
    assert_eq!(got, (403, "origin_not_allowed".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_identity_comes_before_the_user_type() {
    let server = start(strict()).await;
    let got = refusal(server.public_addr(), "GET", "user_type=admin", &[]).await;
    assert_eq!(got, (400, "missing_user_id".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_user_type_comes_before_the_id_lists_and_the_node_capacity() {
    let mut config = strict();
    config.wsc.security.max_group_ids = 1;
    config.wsc.performance.max_connections_per_node = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let got = refusal(addr, "GET", "user_id=a&user_type=admin&group_id=g1,g2", &[]).await;
    assert_eq!(got, (403, "user_type_not_allowed".to_owned()));
    let got = refusal(
        addr,
        "GET",
        "user_id=a&user_type=customer&group_id=g1,g2",
        &[],
    )
    .await;
    assert_eq!(got, (400, "too_many_ids".to_owned()));
    let _first = connect(addr, "user_id=b&user_type=customer").await;
    let got = refusal(addr, "GET", "user_id=a&user_type=customer", &[]).await;
    assert_eq!(got, (503, "node_full".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_node_capacity_comes_before_the_per_user_limit() {
    let mut config = local_config();
    config.wsc.performance.max_connections_per_node = 1;
    config.wsc.multi_login.policy = wsc_config::LoginPolicy::KickNew;
    config.wsc.multi_login.max_connections_per_user = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let _first = connect(addr, "user_id=u").await;
    let got = refusal(addr, "GET", "user_id=u", &[]).await;
    assert_eq!(got, (503, "node_full".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn another_users_client_id_comes_before_the_node_capacity() {
    let mut config = local_config();
    config.wsc.performance.max_connections_per_node = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let _first = connect(addr, "user_id=b&client_id=c1").await;
    let got = refusal(addr, "GET", "user_id=a&client_id=c1", &[]).await;
    assert_eq!(got, (409, "client_id_in_use".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn a_stopping_hub_comes_after_the_user_type_and_before_the_id_lists() {
    let mut config = strict();
    config.wsc.security.max_group_ids = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    server.hub().stop(std::time::Duration::ZERO).await;
    let got = refusal(addr, "GET", "user_id=a&user_type=admin&group_id=g1,g2", &[]).await;
    assert_eq!(got, (403, "user_type_not_allowed".to_owned()));
    let got = refusal(
        addr,
        "GET",
        "user_id=a&user_type=customer&group_id=g1,g2",
        &[],
    )
    .await;
    assert_eq!(got, (503, "shutting_down".to_owned()));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn another_users_client_id_comes_before_the_per_user_limit() {
    let mut config = local_config();
    config.wsc.multi_login.policy = wsc_config::LoginPolicy::KickNew;
    config.wsc.multi_login.max_connections_per_user = 1;
    let server = start(config).await;
    let addr = server.public_addr();
    let _alice = connect(addr, "user_id=alice&client_id=c1").await;
    let _bob = connect(addr, "user_id=bob&client_id=b1").await;
    // Bob is at his limit, and c1 is Alice's: the client id is named.
    let got = refusal(addr, "GET", "user_id=bob&client_id=c1", &[]).await;
    assert_eq!(got, (409, "client_id_in_use".to_owned()));
    // Without the client id, the limit is what refuses him.
    let got = refusal(addr, "GET", "user_id=bob&client_id=b2", &[]).await;
    assert_eq!(got, (409, "user_connection_limit".to_owned()));
    server.stop(WAIT).await;
}
