//! `GatewayConfig::redacted()` masks every secret (API keys, the token secret, the Redis
//! password) and nothing else; the real configuration and `flatten()` keep the values.

mod support;

use serde_json::{Value, json};
use support::load_yaml_ok;
use wsc_config::GatewayConfig;

const SECRETS: &str = r#"
name: redaction
api:
  keys: ["key-one-secret", "key-two-secret"]
wsc:
  node_port: 8123
  security:
    enable_auth: true
    token:
      secret: "token-secret-value"
      issuer: "https://issuer.example"
  redis:
    enabled: true
    url: "redis://user:redis-password@cache.internal:6380/2"
"#;

const SECRET_WORDS: [&str; 4] = [
    "key-one-secret",
    "key-two-secret",
    "token-secret-value",
    "redis-password",
];

fn config() -> GatewayConfig {
    load_yaml_ok(SECRETS).config
}

#[test]
fn secrets_are_masked() {
    let redacted = config().redacted();
    assert_eq!(redacted["api"]["keys"], json!(["***", "***"]));
    assert_eq!(redacted["wsc"]["security"]["token"]["secret"], "***");
    assert_eq!(
        redacted["wsc"]["redis"]["url"],
        "redis://user:***@cache.internal:6380/2"
    );
    let text = serde_json::to_string(&redacted).unwrap();
    for word in SECRET_WORDS {
        assert!(!text.contains(word), "{word} leaked: {text}");
    }
}

#[test]
fn other_values_are_intact() {
    let config = config();
    let redacted = config.redacted();
    assert_eq!(redacted["name"], "redaction");
    assert_eq!(redacted["wsc"]["node_port"], 8123);
    assert_eq!(
        redacted["wsc"]["security"]["token"]["issuer"],
        "https://issuer.example"
    );
    assert_eq!(redacted["wsc"]["security"]["enable_auth"], true);
    assert_eq!(redacted["wsc"]["client_timeout"], "90s");

    // Apart from the three secrets, the redacted view is the full serialized config.
    let mut expected = serde_json::to_value(&config).unwrap();
    expected["api"]["keys"] = json!(["***", "***"]);
    expected["wsc"]["security"]["token"]["secret"] = json!("***");
    expected["wsc"]["redis"]["url"] = json!("redis://user:***@cache.internal:6380/2");
    assert_eq!(redacted, expected);
}

#[test]
fn the_real_configuration_keeps_the_secrets() {
    let config = config();
    let _ = config.redacted();
    assert_eq!(config.api.keys, ["key-one-secret", "key-two-secret"]);
    assert_eq!(config.wsc.security.token.secret, "token-secret-value");
    assert_eq!(
        config.wsc.redis.url,
        "redis://user:redis-password@cache.internal:6380/2"
    );
    let flat = config.flatten();
    assert_eq!(
        flat["api.keys"],
        json!(["key-one-secret", "key-two-secret"])
    );
    assert_eq!(flat["wsc.security.token.secret"], "token-secret-value");
    assert_eq!(
        flat["wsc.redis.url"],
        "redis://user:redis-password@cache.internal:6380/2"
    );
    assert_eq!(flat["wsc.node_port"], 8123);
}

#[test]
fn password_only_url_is_masked() {
    let config = load_yaml_ok(
        "wsc:\n  redis:\n    enabled: true\n    url: \"redis://:pw-only-secret@h:6379/0\"\n",
    )
    .config;
    let redacted = config.redacted();
    assert_eq!(redacted["wsc"]["redis"]["url"], "redis://:***@h:6379/0");
}

#[test]
fn nothing_to_mask_leaves_the_view_unchanged() {
    let config = GatewayConfig::default();
    let redacted = config.redacted();
    assert_eq!(redacted, serde_json::to_value(&config).unwrap());
    assert_eq!(redacted["api"]["keys"], Value::Array(vec![]));
    assert_eq!(redacted["wsc"]["security"]["token"]["secret"], "");
    assert_eq!(redacted["wsc"]["redis"]["url"], "redis://127.0.0.1:6379/0");
}

#[test]
fn secrets_from_the_environment_are_masked_too() {
    let loaded = support::load_env(&[
        ("GATEWAY__API__KEYS", "env-key-secret"),
        ("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "env-token-secret"),
        (
            "GATEWAY__WSC__REDIS__URL",
            "redis://:env-redis-secret@cache:6379/0",
        ),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let text = serde_json::to_string(&loaded.config.redacted()).unwrap();
    for word in ["env-key-secret", "env-token-secret", "env-redis-secret"] {
        assert!(!text.contains(word), "{word} leaked: {text}");
    }
    assert_eq!(loaded.config.api.keys, ["env-key-secret"]);
}

/// Loads `yaml`, which must be invalid, and checks that the error names `key` but none of
/// the `secrets`.
fn assert_rejected_without_echo(yaml: &str, key: &str, secrets: &[&str]) {
    let err = support::load_yaml(yaml).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(key), "{text}");
    for word in secrets {
        assert!(!text.contains(word), "{word} leaked: {text}");
    }
}

// A secret of the wrong shape is rejected; the error text (printed by --check-config,
// logged on a rejected reload) must name the key but not carry the secret.

#[test]
fn a_rejected_token_secret_is_not_echoed_in_the_error() {
    assert_rejected_without_echo(
        "wsc:\n  security:\n    token:\n      secret: [\"list-secret-value\"]\n",
        "wsc.security.token.secret",
        &["list-secret-value"],
    );
}

#[test]
fn a_rejected_api_key_list_is_not_echoed_in_the_error() {
    assert_rejected_without_echo(
        "api:\n  keys: \"bare-key-secret\"\n",
        "api.keys",
        &["bare-key-secret"],
    );
}
