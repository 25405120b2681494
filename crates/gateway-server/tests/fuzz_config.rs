//! Fuzzing the configuration loader for a bounded time (`wsc_testkit::fuzz`,
//! `WSC_FUZZ_SECONDS`): documents built from the schema's own section and key names with
//! values of any type (YAML and JSON files), arbitrary text files (YAML, TOML, JSON), and
//! `GATEWAY__` environment values. Loading never panics; a refused configuration says why;
//! an accepted one maps onto the hub's settings and validates again unchanged.

use std::collections::HashMap;

use proptest::prelude::*;
use serde_json::{Map, Value};
use wsc_config::Loader;
use wsc_testkit::fuzz::run_for;

/// Section and key names of the schema (a sample across sections), plus what users get
/// wrong.
const NAMES: &[&str] = &[
    "gateway",
    "wsc",
    "http",
    "grpc",
    "security",
    "performance",
    "tickets",
    "groups",
    "observers",
    "redis",
    "distributed",
    "offline",
    "ack",
    "sse",
    "tls",
    "relay",
    "logging",
    "port",
    "host",
    "node_port",
    "path",
    "enabled",
    "heartbeat_interval",
    "client_timeout",
    "max_message_size",
    "allowed_user_types",
    "websocket_origins",
    "url",
    "timeout",
    "max_tickets_per_agent",
    "max_group_size",
    "user_types",
    "level",
    "keys",
    "cert_file",
    "max_connections_per_node",
    "policy",
    "multi_login",
    "min_version",
    "jwt_secret",
];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e6f64..1e6)
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        prop_oneof![
            Just("30s"),
            Just("64KiB"),
            Just("0"),
            Just("-1"),
            Just("1.5"),
            Just("*"),
            Just("kick_new"),
            Just("1.3"),
            Just("redis://127.0.0.1:1"),
            Just("/ws"),
            Just(""),
            Just("99999999999999999999"),
            Just("1h"),
            Just("10GiB"),
        ]
        .prop_map(|s| Value::String(s.to_owned())),
        ".{0,20}".prop_map(Value::String),
    ]
}

fn document() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 40, 6, |inner| {
        let key = prop_oneof![
            5 => prop::sample::select(NAMES).prop_map(str::to_owned),
            1 => "[a-z_]{0,10}",
        ];
        prop_oneof![
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            4 => prop::collection::vec((key, inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn environment() -> impl Strategy<Value = HashMap<String, String>> {
    let key = prop::collection::vec(prop::sample::select(NAMES), 1..4)
        .prop_map(|parts| format!("GATEWAY__{}", parts.join("__").to_uppercase()));
    let value = prop_oneof![Just("30s".to_owned()), Just("a,b".to_owned()), ".{0,16}"];
    prop::collection::hash_map(key, value, 0..4)
}

/// Loads `text` as a file with this extension under `env`: no panic, a refusal names at
/// least one problem, an acceptance maps and validates.
fn check(extension: &str, text: &str, env: HashMap<String, String>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = dir.path().join(format!("gateway.{extension}"));
    std::fs::write(&path, text).map_err(|e| TestCaseError::fail(e.to_string()))?;
    match Loader::new().file(&path).environment(env).load() {
        Ok(loaded) => {
            let _ = loaded.config.wsc.hub_config();
            prop_assert!(wsc_config::validate(&loaded.config).is_empty());
        }
        Err(e) => prop_assert!(!e.to_string().trim().is_empty()),
    }
    Ok(())
}

#[test]
fn documents_of_schema_names_with_any_values_load_or_are_refused_with_reasons() {
    run_for(
        "config: schema-shaped documents",
        (document(), prop::bool::ANY, environment()),
        |(doc, as_yaml, env)| {
            let extension = if as_yaml { "yaml" } else { "json" };
            check(extension, &doc.to_string(), env)
        },
    );
}

#[test]
fn any_text_in_any_format_loads_or_is_refused_with_reasons() {
    run_for(
        "config: any text",
        (
            prop::sample::select(&["yaml", "toml", "json"][..]),
            ".{0,200}",
        ),
        |(extension, text)| check(extension, &text, HashMap::new()),
    );
}
