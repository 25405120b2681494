//! `false` overrides a `true` default (and a `true` from the file), in a file and from the
//! environment, and reaches the hub settings.

mod support;

use support::{load_env, load_with_env, load_yaml_ok};
use wsc_config::GatewayConfig;

#[test]
fn the_defaults_are_true() {
    let c = GatewayConfig::default();
    assert!(c.wsc.enabled);
    assert!(c.wsc.security.enable_rate_limit);
    assert!(c.wsc.relay_status_messages);
    assert!(c.wsc.offline.enabled);
    assert!(c.wsc.sse.enabled);
    assert!(c.grpc.enabled);
    assert!(c.metrics.enabled);
}

#[test]
fn false_in_a_file_overrides_true_defaults() {
    let loaded = load_yaml_ok(
        r#"
grpc:
  enabled: false
metrics:
  enabled: false
wsc:
  enabled: false
  relay_status_messages: false
  security:
    enable_rate_limit: false
  offline:
    enabled: false
  sse:
    enabled: false
"#,
    );
    let c = &loaded.config;
    assert!(!c.wsc.enabled);
    assert!(!c.wsc.relay_status_messages);
    assert!(!c.wsc.security.enable_rate_limit);
    assert!(!c.wsc.offline.enabled);
    assert!(!c.wsc.sse.enabled);
    assert!(!c.grpc.enabled);
    assert!(!c.metrics.enabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);

    // The hub follows: no status relay, no inbound rate limits.
    let hub = c.wsc.hub_config();
    assert!(!hub.relay_status_messages);
    assert_eq!(hub.max_inbound_per_second, 0);
    assert_eq!(hub.max_inbound_bytes_per_second, 0);
}

#[test]
fn rate_limit_values_still_load_when_disabled() {
    let loaded = load_yaml_ok(
        "wsc:\n  security:\n    enable_rate_limit: false\n    max_messages_per_second: 5\n",
    );
    assert_eq!(loaded.config.wsc.security.max_messages_per_second, 5);
    assert_eq!(loaded.config.wsc.hub_config().max_inbound_per_second, 0);
    let loaded = load_yaml_ok("wsc:\n  security:\n    max_messages_per_second: 5\n");
    assert_eq!(loaded.config.wsc.hub_config().max_inbound_per_second, 5);
}

#[test]
fn false_from_the_environment_overrides_true_defaults() {
    let loaded = load_env(&[
        ("GATEWAY__WSC__ENABLED", "false"),
        ("GATEWAY__WSC__SECURITY__ENABLE_RATE_LIMIT", "false"),
        ("GATEWAY__WSC__RELAY_STATUS_MESSAGES", "false"),
        ("GATEWAY__GRPC__ENABLED", "false"),
    ])
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert!(!c.wsc.enabled);
    assert!(!c.wsc.security.enable_rate_limit);
    assert!(!c.wsc.relay_status_messages);
    assert!(!c.grpc.enabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn false_from_the_environment_overrides_true_in_the_file() {
    let loaded = load_with_env(
        "gateway.yaml",
        "wsc:\n  enabled: true\n  relay_status_messages: true\n",
        &[("GATEWAY__WSC__ENABLED", "false")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!loaded.config.wsc.enabled);
    assert!(loaded.config.wsc.relay_status_messages);
}

#[test]
fn true_from_the_environment_overrides_false_in_the_file() {
    let loaded = load_with_env(
        "gateway.yaml",
        "wsc:\n  enabled: false\n",
        &[("GATEWAY__WSC__ENABLED", "true")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.config.wsc.enabled);
}

#[test]
fn false_in_toml_and_json() {
    for (name, text) in [
        (
            "gateway.toml",
            "[wsc]\nenabled = false\n[wsc.security]\nenable_rate_limit = false\n",
        ),
        (
            "gateway.json",
            r#"{"wsc": {"enabled": false, "security": {"enable_rate_limit": false}}}"#,
        ),
    ] {
        let loaded = load_with_env(name, text, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!loaded.config.wsc.enabled, "{name}");
        assert!(!loaded.config.wsc.security.enable_rate_limit, "{name}");
    }
}
