//! Fuzzing the server API's request bodies and paths, and connection tokens, for a bounded
//! time (`wsc_testkit::fuzz`, `WSC_FUZZ_SECONDS`).
//!
//! - REST: every body-taking route gets JSON documents built from the API's own field names
//!   with values of any type, or any text, under path ids of any characters. No request may
//!   get a 5xx, and every refusal is a JSON error with a code.
//! - Tokens: any text, and JWT-shaped tokens (any header, including `alg: none`, any
//!   claims, any signature, or a real signature by another key) are refused with a reason
//!   and never panic; none is ever accepted.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;
use serde_json::{Map, Value};
use wsc_config::TokenConfig;
use wsc_testkit::fuzz::run_for;

mod support;
use support::*;

/// Field names of the API's bodies (and a few it does not take).
const FIELDS: &[&str] = &[
    "content",
    "message_type",
    "sender",
    "receiver",
    "data",
    "ack",
    "timeout_ms",
    "retries",
    "priority",
    "app_id",
    "namespace",
    "exclude_user",
    "require_ack",
    "seq_no",
    "customer_id",
    "ticket_id",
    "vip",
    "department",
    "agent_id",
    "reason",
    "id",
    "metadata",
    "unknown",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e9f64..1e9)
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just(""),
            Just(" "),
            Just("text"),
            Just("high"),
            Just("alice"),
            Just("0"),
            Just("300001"),
            Just("\u{0}"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,40}".prop_map(Value::String),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 8, |inner| {
        let key = prop_oneof![
            6 => prop::sample::select(FIELDS).prop_map(str::to_owned),
            1 => ".{0,8}",
        ];
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            4 => prop::collection::vec((key, inner), 0..8)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// The routes that take a body, with `{}` where an id goes.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/api/v1/users/{}/messages"),
    ("POST", "/api/v1/tickets/{}/messages"),
    ("POST", "/api/v1/groups/{}/messages"),
    ("POST", "/api/v1/connections/{}/messages"),
    ("POST", "/api/v1/broadcast"),
    ("POST", "/api/v1/tickets"),
    ("POST", "/api/v1/tickets/{}/transfer"),
    ("POST", "/api/v1/tickets/{}/close"),
    ("PUT", "/api/v1/groups/{}/members/alice"),
    ("DELETE", "/api/v1/users/{}/connections"),
];

/// An id for a path: plain, or any characters percent-encoded.
fn path_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9_-]{1,12}",
        1 => ".{0,16}".prop_map(|s| {
            s.bytes().map(|b| format!("%{b:02X}")).collect::<String>()
        }),
    ]
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => document().prop_map(|d| d.to_string()),
        1 => ".{0,64}",
    ]
}

/// A runtime of its own (the properties are synchronous), a server on it, and a connected
/// user `alice`, so that some sends reach someone.
fn served() -> (
    tokio::runtime::Runtime,
    gateway_server::RunningServer,
    Client,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let server = runtime.block_on(start(local_config()));
    let alice = runtime.block_on(connect(server.public_addr(), "user_id=alice"));
    (runtime, server, alice)
}

#[test]
fn api_bodies_and_ids_of_any_shape_never_get_a_5xx_and_refusals_are_json() {
    let (runtime, server, _alice) = served();
    let api = server.api_addr();
    run_for(
        "api: bodies and ids",
        (prop::sample::select(ROUTES), path_id(), body()),
        |((method, route), id, body)| {
            let path = route.replace("{}", &id);
            let (status, head, text) =
                runtime.block_on(wsc_testkit::http::raw(api, method, &path, &[], Some(&body)));
            prop_assert!(status < 500, "{method} {path} {body}: {status} {text}");
            if status >= 400 {
                // Every refusal is the API's JSON error (a path that never reaches a route,
                // such as one with an encoded slash, gets the same shape from the fallback).
                let error: Value = serde_json::from_str(&text)
                    .map_err(|e| TestCaseError::fail(format!("{status} {head} {text}: {e}")))?;
                prop_assert!(
                    error["error"].as_str().is_some_and(|c| !c.is_empty()),
                    "{method} {path} {body}: {status} {text}"
                );
            }
            Ok(())
        },
    );
    runtime.block_on(server.stop(WAIT));
}

fn token_config() -> TokenConfig {
    let mut config = TokenConfig::default();
    config.secret = "the-real-secret-of-the-fuzzed-server".to_owned();
    config
}

/// A JWT-shaped token: a header (any `alg`, `none` too), claims, and a signature that is
/// random or real but by another key.
fn jwt_shaped() -> impl Strategy<Value = String> {
    let alg = prop_oneof![
        Just("HS256"),
        Just("none"),
        Just("RS256"),
        Just("HS512"),
        Just(""),
        Just("ES256"),
    ];
    (alg, document(), document(), ".{0,40}", any::<bool>()).prop_map(
        |(alg, mut header, claims, signature, signed_by_another_key)| {
            if signed_by_another_key {
                let claims = match claims {
                    Value::Object(map) => Value::Object(map),
                    other => serde_json::json!({"sub": "mallory", "x": other}),
                };
                return jsonwebtoken::encode(
                    &jsonwebtoken::Header::default(),
                    &claims,
                    &jsonwebtoken::EncodingKey::from_secret(b"another key"),
                )
                .expect("signing with HS256 works");
            }
            if let Value::Object(map) = &mut header {
                map.insert("alg".to_owned(), Value::from(alg));
            }
            let part = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
            format!(
                "{}.{}.{}",
                part(&header),
                part(&claims),
                URL_SAFE_NO_PAD.encode(signature)
            )
        },
    )
}

#[test]
fn no_token_without_the_key_is_ever_accepted_and_none_panics() {
    let config = token_config();
    run_for(
        "tokens: any text and JWT-shaped",
        prop_oneof![1 => ".{0,200}", 4 => jwt_shaped()],
        |token| {
            match gateway_server::tokens::verify(&config, &token) {
                Ok(identity) => {
                    return Err(TestCaseError::fail(format!(
                        "accepted {token:?} as {identity:?}"
                    )));
                }
                Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
            }
            Ok(())
        },
    );
}

/// One gRPC call with fuzzed fields.
#[derive(Debug, Clone)]
enum Call {
    Send(u8, String, String, Option<(u64, Option<u32>)>),
    Broadcast(String, String, String, String),
    Kick(String, String, bool),
    Group(bool, String, String),
    OpenTicket(String, String, bool, String),
    Transfer(String, String),
    Close(String, String),
    OnlineUsers(u32, u32),
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z0-9_-]{0,12}", 1 => ".{0,16}"]
}

fn call() -> impl Strategy<Value = Call> {
    let json = prop_oneof![4 => document().prop_map(|d| d.to_string()), 1 => ".{0,64}"];
    let ack = prop::option::of((any::<u64>(), prop::option::of(any::<u32>())));
    prop_oneof![
        (0u8..4, id(), json.clone(), ack).prop_map(|(k, t, j, a)| Call::Send(k, t, j, a)),
        (json, id(), id(), id()).prop_map(|(j, a, n, e)| Call::Broadcast(j, a, n, e)),
        (id(), id(), any::<bool>()).prop_map(|(u, r, n)| Call::Kick(u, r, n)),
        (any::<bool>(), id(), id()).prop_map(|(j, g, u)| Call::Group(j, g, u)),
        (id(), id(), any::<bool>(), id()).prop_map(|(c, t, v, d)| Call::OpenTicket(c, t, v, d)),
        (id(), id()).prop_map(|(t, a)| Call::Transfer(t, a)),
        (id(), id()).prop_map(|(t, r)| Call::Close(t, r)),
        (any::<u32>(), any::<u32>()).prop_map(|(o, l)| Call::OnlineUsers(o, l)),
    ]
}

#[test]
fn grpc_requests_with_any_fields_never_fail_internally() {
    use gateway_server::grpc::proto as pb;
    let (runtime, server, _alice) = served();
    let client = runtime.block_on(grpc(&server));
    run_for("grpc: any fields", call(), |call| {
        let mut client = client.clone();
        let shown = format!("{call:?}");
        let status = runtime.block_on(async move {
            let result = match call {
                Call::Send(kind, target, message_json, ack) => {
                    let request = pb::SendRequest {
                        target,
                        message_json,
                        ack: ack.map(|(timeout_ms, retries)| pb::Ack {
                            // A fuzzed wait must stay short: the bound is checked either way.
                            timeout_ms: timeout_ms % 400_000,
                            retries: retries.map(|r| r % 3),
                        }),
                    };
                    match kind {
                        0 => client.send_to_user(request).await.map(drop),
                        1 => client.send_to_ticket(request).await.map(drop),
                        2 => client.send_to_group(request).await.map(drop),
                        _ => client.send_to_connection(request).await.map(drop),
                    }
                }
                Call::Broadcast(message_json, app_id, namespace, exclude_user) => client
                    .broadcast(pb::BroadcastRequest {
                        message_json,
                        app_id,
                        namespace,
                        exclude_user,
                    })
                    .await
                    .map(drop),
                Call::Kick(user_id, reason, notify) => client
                    .kick_user(pb::KickRequest {
                        user_id,
                        reason,
                        notify,
                    })
                    .await
                    .map(drop),
                Call::Group(join, group_id, user_id) => {
                    let request = pb::GroupMemberRequest { group_id, user_id };
                    if join {
                        client.join_group(request).await.map(drop)
                    } else {
                        client.leave_group(request).await.map(drop)
                    }
                }
                Call::OpenTicket(customer_id, ticket_id, vip, department) => client
                    .open_ticket(pb::OpenTicketRequest {
                        customer_id,
                        ticket_id,
                        vip,
                        department,
                    })
                    .await
                    .map(drop),
                Call::Transfer(ticket_id, agent_id) => client
                    .transfer_ticket(pb::TransferTicketRequest {
                        ticket_id,
                        agent_id,
                    })
                    .await
                    .map(drop),
                Call::Close(ticket_id, reason) => client
                    .close_ticket(pb::CloseTicketRequest { ticket_id, reason })
                    .await
                    .map(drop),
                Call::OnlineUsers(offset, limit) => client
                    .online_users(pb::OnlineUsersRequest { offset, limit })
                    .await
                    .map(drop),
            };
            result.err()
        });
        if let Some(status) = status {
            prop_assert!(
                !matches!(
                    status.code(),
                    tonic::Code::Internal | tonic::Code::Unknown | tonic::Code::Unimplemented
                ),
                "{shown}: {status:?}"
            );
            prop_assert!(!status.message().trim().is_empty(), "{shown}: {status:?}");
        }
        Ok(())
    });
    runtime.block_on(server.stop(WAIT));
}
