//! Upgrade security end to end: signed tokens (every algorithm), IP lists, the per-IP handshake
//! rate limit. Every refusal is an HTTP error with a JSON body before the upgrade.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use gateway_server::Server;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use support::{WAIT, local_config, start};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use wsc_config::{GatewayConfig, TokenAlgorithm};

const SECRET: &str = "test-secret-with-enough-bytes-for-hs256";

fn auth_config() -> GatewayConfig {
    let mut config = local_config();
    config.wsc.security.enable_auth = true;
    config.wsc.security.token.secret = SECRET.to_owned();
    config.wsc.security.token.issuer = "auth.example".to_owned();
    config.wsc.security.token.audience = "chat".to_owned();
    config
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn valid_claims() -> Value {
    json!({
        "sub": "alice", "utp": "agent", "aid": "shop", "tid": "eu", "gid": "vip,support",
        "iss": "auth.example", "aud": "chat", "exp": now() + 600,
    })
}

/// Status and JSON body of a refused handshake.
async fn refused(url: String, bearer: Option<&str>) -> (u16, Value) {
    let authorization = bearer.map(|token| format!("Bearer {token}"));
    let headers: Vec<(&'static str, &str)> = authorization
        .iter()
        .map(|value| ("authorization", value.as_str()))
        .collect();
    wsc_testkit::ws::refused(&url, &headers).await
}

/// A refusal as (status, error code, message), for exact comparisons.
fn invalid(status: u16, body: &Value) -> (u16, &str, &str) {
    let text = |key: &str| body[key].as_str().unwrap_or_default();
    (status, text("error"), text("message"))
}

fn ws(addr: SocketAddr, query: &str) -> String {
    format!("ws://{addr}/ws?{query}")
}

#[tokio::test]
async fn a_valid_token_is_the_identity_and_the_query_cannot_override_it() {
    let server = start(auth_config()).await;
    let token = hs256(valid_claims());
    // The query cannot override the claims: only what describes the connection (client
    // id, device id when the token has none, last_seq) comes from it.
    let query = "user_id=mallory&user_type=admin&app_id=evil&namespace=x&group_id=admins&\
                 ticket_id=t9&device_id=pc&client_id=c1&last_seq=3";
    let url = ws(server.public_addr(), &format!("token={token}&{query}"));
    let (mut client, _) = connect_async(url).await.expect("upgrade");
    let conns = server.hub().user_connections("alice").unwrap();
    assert_eq!(conns.len(), 1);
    let conn = &conns[0];
    assert_eq!(conn.user_type, "agent");
    assert_eq!(
        (conn.app_id.as_str(), conn.namespace.as_str()),
        ("shop", "eu")
    );
    assert_eq!(conn.group_ids, ["vip", "support"]);
    assert!(conn.ticket_ids.is_empty(), "{:?}", conn.ticket_ids);
    assert_eq!(
        (conn.client_id.as_str(), conn.device_id.as_str()),
        ("c1", "pc")
    );
    assert!(!server.hub().is_user_online("mallory"));
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    server.stop(WAIT).await;
}

#[tokio::test]
async fn the_bearer_header_works_too() {
    let server = start(auth_config()).await;
    let mut request = ws(server.public_addr(), "").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", hs256(valid_claims())).parse().unwrap(),
    );
    assert!(connect_async(request).await.is_ok());
    assert!(server.hub().is_user_online("alice"));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn bad_tokens_are_401_with_the_reason() {
    let server = start(auth_config()).await;
    let addr = server.public_addr();
    let (status, body) = refused(ws(addr, "user_id=alice"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("missing_token"))
    );

    let mut expired = valid_claims();
    expired["exp"] = json!(now() - 3600);
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(expired))), None).await;
    assert_eq!(
        invalid(status, &body),
        (401, "invalid_token", "the token has expired")
    );

    let forged = encode(
        &Header::new(Algorithm::HS256),
        &valid_claims(),
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
    )
    .unwrap();
    let (status, body) = refused(ws(addr, ""), Some(&forged)).await;
    let expected = (401, "invalid_token", "the token signature is not valid");
    assert_eq!(invalid(status, &body), expected);

    let mut audience = valid_claims();
    audience["aud"] = json!("billing");
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(audience))), None).await;
    let expected = (401, "invalid_token", "the token is for another audience");
    assert_eq!(invalid(status, &body), expected);

    let mut issuer = valid_claims();
    issuer["iss"] = json!("someone.else");
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(issuer))), None).await;
    let expected = (401, "invalid_token", "the token has another issuer");
    assert_eq!(invalid(status, &body), expected);

    let mut no_exp = valid_claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(no_exp))), None).await;
    let expected = (401, "invalid_token", "the token has no `exp` claim");
    assert_eq!(invalid(status, &body), expected);

    let (status, body) = refused(ws(addr, "token=not.a.jwt"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(server.hub().connection_count(), 0);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn rs256_tokens_verify_with_the_public_key() {
    let mut config = local_config();
    config.wsc.security.enable_auth = true;
    config.wsc.security.token.algorithm = TokenAlgorithm::Rs256;
    config.wsc.security.token.public_key = include_str!("fixtures/rs256-public.pem").to_owned();
    let server = start(config).await;
    let key = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-private.pem")).unwrap();
    let claims = json!({"uid": "bob", "exp": now() + 600});
    let token = encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap();
    assert!(
        connect_async(ws(server.public_addr(), &format!("token={token}")))
            .await
            .is_ok()
    );
    assert!(server.hub().is_user_online("bob"));
    // An HS256 token signed with anything is refused by an RS256 server.
    let (status, _) = refused(
        ws(server.public_addr(), &format!("token={}", hs256(claims))),
        None,
    )
    .await;
    assert_eq!(status, 401);
    server.stop(WAIT).await;
}

#[tokio::test]
async fn an_unusable_key_fails_start() {
    let mut config = local_config();
    config.wsc.security.enable_auth = true;
    config.wsc.security.token.algorithm = TokenAlgorithm::Rs256;
    config.wsc.security.token.public_key = "not a key".to_owned();
    let err = Server::new(config)
        .start()
        .await
        .err()
        .expect("start fails");
    assert!(err.to_string().contains("public_key"), "{err}");
}

#[tokio::test]
async fn blocked_and_unlisted_ips_are_403() {
    let mut config = local_config();
    config.wsc.security.blocked_ips = vec!["127.0.0.1".to_owned()];
    let server = start(config).await;
    let (status, body) = refused(ws(server.public_addr(), "user_id=a"), None).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("ip_blocked")));
    server.stop(WAIT).await;

    let mut config = local_config();
    config.wsc.security.allowed_ips = vec!["10.0.0.0/8".to_owned()];
    let server = start(config).await;
    let (status, body) = refused(ws(server.public_addr(), "user_id=a"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("ip_not_allowed"))
    );
    server.stop(WAIT).await;

    let mut config = local_config();
    config.wsc.security.allowed_ips = vec!["127.0.0.0/8".to_owned()];
    let server = start(config).await;
    assert!(
        connect_async(ws(server.public_addr(), "user_id=a"))
            .await
            .is_ok()
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn handshake_floods_from_one_ip_get_429() {
    let mut config = local_config();
    config.wsc.security.max_handshakes_per_ip_per_second = 3;
    let server = start(config).await;
    // Far more attempts than the limit, back to back: well inside one second on any machine
    // that runs the suite, and the limit is per window, so at most 3 per window get through.
    let addr = server.public_addr();
    let (accepted, limited) = flood(20, |i| ws(addr, &format!("user_id=u{i}"))).await;
    assert!(limited > 0, "no handshake was rate limited");
    assert!(accepted >= 3, "the first handshakes must pass");
    server.stop(WAIT).await;
}

/// Makes `attempts` handshakes back to back: how many were accepted and how many got 429
/// with the `rate_limited` JSON body (anything else fails the test).
async fn flood(attempts: usize, url: impl Fn(usize) -> String) -> (usize, usize) {
    let mut accepted = Vec::new();
    let mut limited = 0;
    for i in 0..attempts {
        match connect_async(url(i)).await {
            Ok((client, _)) => accepted.push(client),
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), 429);
                let body: Value =
                    serde_json::from_slice(&response.body().clone().unwrap_or_default()).unwrap();
                assert_eq!(body["error"], "rate_limited");
                limited += 1;
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
    let count = accepted.len();
    for mut client in accepted {
        let _ = client.send(Message::Close(None)).await;
    }
    (count, limited)
}

#[tokio::test]
async fn a_client_id_of_another_user_is_409_and_a_stopping_hub_is_503() {
    let server = start(local_config()).await;
    let addr = server.public_addr();
    let _alice = connect_async(ws(addr, "user_id=alice&client_id=shared"))
        .await
        .unwrap();
    let (status, body) = refused(ws(addr, "user_id=mallory&client_id=shared"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("client_id_in_use"))
    );
    assert!(server.hub().is_user_online("alice"));

    server.hub().stop(Duration::ZERO).await;
    let (status, body) = refused(ws(addr, "user_id=late"), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("shutting_down"))
    );
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------------ IPv6 rate

#[tokio::test]
async fn ipv6_handshake_floods_get_429_with_the_json_body() {
    let mut config = local_config();
    config.wsc.node_ip = "::1".to_owned();
    config.wsc.security.max_handshakes_per_ip_per_second = 2;
    let server = start(config).await;
    let addr = server.public_addr();
    assert!(addr.is_ipv6(), "{addr}");
    let (accepted, limited) = flood(10, |i| format!("ws://{addr}/ws?user_id=v6-{i}")).await;
    assert!(limited > 0, "no IPv6 handshake was rate limited");
    assert!(accepted >= 2, "the burst must pass");
    server.stop(WAIT).await;
}

// ------------------------------------------------------------------ token algorithms

fn server_config(algorithm: TokenAlgorithm, secret: &str, public_key: &str) -> GatewayConfig {
    let mut config = local_config();
    config.wsc.security.enable_auth = true;
    config.wsc.security.token.algorithm = algorithm;
    config.wsc.security.token.secret = secret.to_owned();
    config.wsc.security.token.public_key = public_key.to_owned();
    config
}

/// Whether a token upgrades (`Ok`) or is refused (`Err(status, body)`).
async fn try_token(addr: SocketAddr, token: &str) -> Result<(), (u16, Value)> {
    match connect_async(ws(addr, &format!("token={token}"))).await {
        Ok((mut client, _)) => {
            let _ = client.close(None).await;
            Ok(())
        }
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            Err((
                response.status().as_u16(),
                serde_json::from_slice(&body).expect("JSON error body"),
            ))
        }
        Err(other) => panic!("expected an upgrade or an HTTP refusal, got {other}"),
    }
}

fn signed(algorithm: Algorithm, key: &EncodingKey, user: &str) -> String {
    let claims = json!({"sub": user, "exp": now() + 600});
    encode(&Header::new(algorithm), &claims, key).unwrap()
}

#[tokio::test]
async fn hs384_and_hs512_tokens_verify_and_other_algorithms_are_refused() {
    let secret = EncodingKey::from_secret(SECRET.as_bytes());
    let hs = [
        (TokenAlgorithm::Hs256, Algorithm::HS256),
        (TokenAlgorithm::Hs384, Algorithm::HS384),
        (TokenAlgorithm::Hs512, Algorithm::HS512),
    ];
    for (configured, algorithm) in hs {
        let server = start(server_config(configured, SECRET, "")).await;
        let addr = server.public_addr();
        let user = format!("user-{configured}");
        assert_eq!(
            try_token(addr, &signed(algorithm, &secret, &user)).await,
            Ok(()),
            "{configured}"
        );
        // Pinned: the same secret with another HMAC algorithm is refused.
        for (_, other) in hs.iter().filter(|(c, _)| *c != configured) {
            let (status, body) = try_token(addr, &signed(*other, &secret, "mallory"))
                .await
                .expect_err("another algorithm must be refused");
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("invalid_token"))
            );
            assert!(
                body["message"].as_str().unwrap().contains("algorithm"),
                "{configured} vs {other:?}: {body}"
            );
        }
        server.stop(WAIT).await;
    }
}

#[tokio::test]
async fn rs384_and_rs512_tokens_verify_with_the_rsa_public_key() {
    let public = include_str!("fixtures/rs256-public.pem");
    let private = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-private.pem")).unwrap();
    for (configured, algorithm, refused) in [
        (TokenAlgorithm::Rs384, Algorithm::RS384, Algorithm::RS256),
        (TokenAlgorithm::Rs512, Algorithm::RS512, Algorithm::PS512),
    ] {
        let server = start(server_config(configured, "", public)).await;
        let addr = server.public_addr();
        assert_eq!(
            try_token(addr, &signed(algorithm, &private, "rsa-user")).await,
            Ok(()),
            "{configured}"
        );
        let (status, _) = try_token(addr, &signed(refused, &private, "rsa-user"))
            .await
            .expect_err("pinned to the configured algorithm");
        assert_eq!(status, 401, "{configured} must refuse {refused:?}");
        server.stop(WAIT).await;
    }
}

#[tokio::test]
async fn es256_and_eddsa_tokens_verify_with_their_pem_public_keys() {
    let es_private =
        EncodingKey::from_ec_pem(include_bytes!("fixtures/es256-private.pem")).unwrap();
    let server = start(server_config(
        TokenAlgorithm::Es256,
        "",
        include_str!("fixtures/es256-public.pem"),
    ))
    .await;
    let addr = server.public_addr();
    assert_eq!(
        try_token(addr, &signed(Algorithm::ES256, &es_private, "ec-user")).await,
        Ok(())
    );
    // An HS256 token is refused even if it was "signed" with the public key as a secret.
    let confused = EncodingKey::from_secret(include_bytes!("fixtures/es256-public.pem"));
    let (status, _) = try_token(addr, &signed(Algorithm::HS256, &confused, "mallory"))
        .await
        .expect_err("algorithm confusion must fail");
    assert_eq!(status, 401);
    server.stop(WAIT).await;

    let ed_private =
        EncodingKey::from_ed_pem(include_bytes!("fixtures/ed25519-private.pem")).unwrap();
    let server = start(server_config(
        TokenAlgorithm::EdDsa,
        "",
        include_str!("fixtures/ed25519-public.pem"),
    ))
    .await;
    assert_eq!(
        try_token(
            server.public_addr(),
            &signed(Algorithm::EdDSA, &ed_private, "ed-user")
        )
        .await,
        Ok(())
    );
    server.stop(WAIT).await;
}

/// Starts a server for `configured` with `public_key`; a token signed with `accepted`
/// upgrades, one signed with `refused` (same key where it fits) is 401 with the exact text.
async fn pinned_to(
    configured: TokenAlgorithm,
    public_key: &str,
    accepted: (Algorithm, &EncodingKey),
    refused: (Algorithm, &EncodingKey),
) {
    let server = start(server_config(configured, "", public_key)).await;
    let addr = server.public_addr();
    assert_eq!(
        try_token(addr, &signed(accepted.0, accepted.1, "signed-user")).await,
        Ok(()),
        "{configured}"
    );
    let (status, body) = try_token(addr, &signed(refused.0, refused.1, "mallory"))
        .await
        .expect_err("pinned to the configured algorithm");
    assert_eq!(
        invalid(status, &body),
        (401, "invalid_token", "the token uses another algorithm"),
        "{configured} must refuse {:?}",
        refused.0
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn ps256_ps384_ps512_and_es384_tokens_verify_and_another_algorithm_is_refused() {
    let rsa_public = include_str!("fixtures/rs256-public.pem");
    let rsa = EncodingKey::from_rsa_pem(include_bytes!("fixtures/rs256-private.pem")).unwrap();
    for (configured, algorithm, other) in [
        (TokenAlgorithm::Ps256, Algorithm::PS256, Algorithm::RS256),
        (TokenAlgorithm::Ps384, Algorithm::PS384, Algorithm::PS256),
        (TokenAlgorithm::Ps512, Algorithm::PS512, Algorithm::RS512),
    ] {
        pinned_to(configured, rsa_public, (algorithm, &rsa), (other, &rsa)).await;
    }
    let es384 = EncodingKey::from_ec_pem(include_bytes!("fixtures/es384-private.pem")).unwrap();
    let es256 = EncodingKey::from_ec_pem(include_bytes!("fixtures/es256-private.pem")).unwrap();
    pinned_to(
        TokenAlgorithm::Es384,
        include_str!("fixtures/es384-public.pem"),
        (Algorithm::ES384, &es384),
        (Algorithm::ES256, &es256),
    )
    .await;
}

#[tokio::test]
async fn a_public_key_of_the_wrong_kind_fails_start() {
    // An RSA key configured for ES256 is an error at start, naming the key and algorithm.
    let err = Server::new(server_config(
        TokenAlgorithm::Es256,
        "",
        include_str!("fixtures/rs256-public.pem"),
    ))
    .start()
    .await
    .err()
    .expect("start fails");
    let text = err.to_string();
    assert!(
        text.contains("public_key") && text.contains("ES256"),
        "{text}"
    );
}

// ------------------------------------------------------------------------------ nbf

#[tokio::test]
async fn jwt_not_yet_valid_token_is_refused() {
    let server = start(auth_config()).await;
    let addr = server.public_addr();
    let mut early = valid_claims();
    early["nbf"] = json!(now() + 600);
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(early))), None).await;
    let expected = (401, "invalid_token", "the token is not valid yet");
    assert_eq!(invalid(status, &body), expected);
    assert_eq!(server.hub().connection_count(), 0);

    // Within the documented leeway (60 s) of clock skew, and in the past, `nbf` passes.
    for nbf in [now() + 20, now() - 3600] {
        let mut claims = valid_claims();
        claims["nbf"] = json!(nbf);
        let (mut client, _) = connect_async(ws(addr, &format!("token={}", hs256(claims))))
            .await
            .expect("upgrade");
        client.close(None).await.unwrap();
        while client.next().await.is_some() {}
    }
    server.stop(WAIT).await;
}

// --------------------------------------------------------------------------- origins

async fn refused_with_origin(addr: SocketAddr, origin: &[u8]) -> (u16, Value) {
    let mut request = ws(addr, "user_id=o").into_client_request().unwrap();
    request.headers_mut().insert(
        "origin",
        tokio_tungstenite::tungstenite::http::HeaderValue::from_bytes(origin).unwrap(),
    );
    match connect_async(request).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).expect("JSON error body"),
            )
        }
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("expected an HTTP refusal, the upgrade succeeded"),
    }
}

#[tokio::test]
async fn an_unreadable_origin_is_refused_when_origins_are_listed() {
    let mut config = local_config();
    config.wsc.websocket_origins = vec!["https://app.example".to_owned()];
    let server = start(config).await;
    let addr = server.public_addr();
    // Bytes that are not visible ASCII used to count as "no Origin" and pass.
    let (status, body) = refused_with_origin(addr, b"https://\xe9vil.example").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("origin_not_allowed")),
        "{body}"
    );
    let (status, _) = refused_with_origin(addr, b"https://evil.example").await;
    assert_eq!(status, 403);
    // The listed origin and a request without Origin still pass.
    let mut request = ws(addr, "user_id=ok").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("origin", "https://app.example".parse().unwrap());
    let _browser = connect_async(request)
        .await
        .expect("the listed origin passes");
    let _tool = connect_async(ws(addr, "user_id=tool"))
        .await
        .expect("no Origin passes");
    assert!(server.hub().is_user_online("ok") && server.hub().is_user_online("tool"));
    server.stop(WAIT).await;
}

#[tokio::test]
async fn an_expired_token_passes_within_the_60_s_leeway_only() {
    let server = start(auth_config()).await;
    let addr = server.public_addr();
    let mut recent = valid_claims();
    recent["exp"] = json!(now() - 30);
    let (mut client, _) = connect_async(ws(addr, &format!("token={}", hs256(recent))))
        .await
        .expect("expired 30 s ago: within the leeway");
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}

    let mut old = valid_claims();
    old["exp"] = json!(now() - 120);
    let (status, body) = refused(ws(addr, &format!("token={}", hs256(old))), None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_token"))
    );
    assert_eq!(body["message"], "the token has expired", "{body}");
    server.stop(WAIT).await;
}

#[tokio::test]
async fn long_claim_names_and_array_claims_are_the_identity_too() {
    let server = start(auth_config()).await;
    let claims = json!({
        "user_id": "bea", "app_id": "shop", "namespace": "eu", "group_id": ["g1", "g2"],
        "ticket_id": "t1,t2", "device_id": "tablet",
        "iss": "auth.example", "aud": "chat", "exp": now() + 600,
    });
    let url = ws(
        server.public_addr(),
        &format!("token={}&device_id=ignored", hs256(claims)),
    );
    let (mut client, _) = connect_async(url).await.expect("upgrade");
    let conns = server.hub().user_connections("bea").unwrap();
    let conn = &conns[0];
    // No user type claim: the default, `visitor`.
    assert_eq!(conn.user_type, "visitor");
    assert_eq!(
        (conn.app_id.as_str(), conn.namespace.as_str()),
        ("shop", "eu")
    );
    assert_eq!(conn.group_ids, ["g1", "g2"]);
    assert_eq!(conn.ticket_ids, ["t1", "t2"]);
    assert_eq!(
        conn.device_id, "tablet",
        "the token's device wins over the query's"
    );
    client.close(None).await.unwrap();
    while client.next().await.is_some() {}
    server.stop(WAIT).await;
}
