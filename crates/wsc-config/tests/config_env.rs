//! Environment overrides (`GATEWAY__SECTION__KEY`), injected with `Loader::environment`:
//! nested snake_case keys, enums, comma lists, values from a file overridden, strings that
//! look like numbers.

mod support;

use std::time::Duration;

use support::{at, keys, load_env, load_with_env, problems};
use wsc_config::{GatewayConfig, LogFormat, LoginPolicy, OfflineStore};

fn ok(vars: &[(&str, &str)]) -> GatewayConfig {
    let loaded = load_env(vars).unwrap_or_else(|e| panic!("{vars:?}: {e}"));
    assert!(
        loaded.warnings.is_empty(),
        "{vars:?}: {:?}",
        loaded.warnings
    );
    loaded.config
}

#[test]
fn node_port() {
    let c = ok(&[("GATEWAY__WSC__NODE_PORT", "9000")]);
    assert_eq!(c.wsc.node_port, 9000);
    let mut expected = GatewayConfig::default();
    expected.wsc.node_port = 9000;
    assert_eq!(c, expected, "only wsc.node_port changes");
}

#[test]
fn nested_snake_case_key_two_levels_down() {
    let c = ok(&[("GATEWAY__WSC__SECURITY__MAX_MESSAGES_PER_SECOND", "250")]);
    assert_eq!(c.wsc.security.max_messages_per_second, 250);
    assert_eq!(c.wsc.hub_config().max_inbound_per_second, 250);
}

#[test]
fn three_levels_down() {
    let c = ok(&[(
        "GATEWAY__WSC__SECURITY__TOKEN__ISSUER",
        "https://issuer.example",
    )]);
    assert_eq!(c.wsc.security.token.issuer, "https://issuer.example");
}

#[test]
fn enums() {
    let c = ok(&[
        ("GATEWAY__WSC__MULTI_LOGIN__POLICY", "kick_new"),
        ("GATEWAY__WSC__OFFLINE__STORE", "memory"),
        ("GATEWAY__LOGGING__FORMAT", "json"),
    ]);
    assert_eq!(c.wsc.multi_login.policy, LoginPolicy::KickNew);
    assert_eq!(c.wsc.offline.store, OfflineStore::Memory);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(
        c.wsc.hub_config().multi_login,
        wsc_hub::MultiLoginPolicy::KickNew
    );
}

#[test]
fn websocket_origins_comma_list() {
    let c = ok(&[(
        "GATEWAY__WSC__WEBSOCKET_ORIGINS",
        "http://localhost:3000,https://app.example.com",
    )]);
    assert_eq!(
        c.wsc.websocket_origins,
        ["http://localhost:3000", "https://app.example.com"]
    );
}

#[test]
fn single_element_list() {
    let c = ok(&[("GATEWAY__WSC__WEBSOCKET_ORIGINS", "https://only.example")]);
    assert_eq!(c.wsc.websocket_origins, ["https://only.example"]);
}

#[test]
fn other_comma_lists() {
    let c = ok(&[
        (
            "GATEWAY__WSC__SECURITY__ALLOWED_USER_TYPES",
            "customer,agent",
        ),
        (
            "GATEWAY__WSC__SECURITY__BLOCKED_IPS",
            "10.0.0.0/8,192.168.1.1",
        ),
        ("GATEWAY__API__KEYS", "alpha,beta"),
    ]);
    assert_eq!(c.wsc.security.allowed_user_types, ["customer", "agent"]);
    assert_eq!(c.wsc.security.blocked_ips, ["10.0.0.0/8", "192.168.1.1"]);
    assert_eq!(c.api.keys, ["alpha", "beta"]);
}

#[test]
fn durations_and_sizes() {
    let c = ok(&[
        ("GATEWAY__WSC__HEARTBEAT_INTERVAL", "500ms"),
        ("GATEWAY__WSC__CLIENT_TIMEOUT", "2m"),
        ("GATEWAY__WSC__ACK__TIMEOUT", "3"),
        ("GATEWAY__WSC__SECURITY__MAX_MESSAGE_SIZE", "128"),
        ("GATEWAY__WSC__PERFORMANCE__READ_BUFFER_SIZE", "8KiB"),
    ]);
    assert_eq!(c.wsc.heartbeat_interval, Duration::from_millis(500));
    assert_eq!(c.wsc.client_timeout, Duration::from_secs(120));
    assert_eq!(c.wsc.ack.timeout, Duration::from_secs(3));
    assert_eq!(c.wsc.security.max_message_size, 128 * 1024);
    assert_eq!(c.wsc.performance.read_buffer_size, 8 * 1024);
}

#[test]
fn environment_overrides_the_file() {
    let file = "wsc:\n  node_port: 7000\n  client_timeout: 100\n  websocket_origins: [\"https://file.example\"]\n  multi_login:\n    policy: allow_all\n";
    let loaded = load_with_env(
        "gateway.yaml",
        file,
        &[
            ("GATEWAY__WSC__NODE_PORT", "9000"),
            ("GATEWAY__WSC__MULTI_LOGIN__POLICY", "kick_new"),
            ("GATEWAY__WSC__WEBSOCKET_ORIGINS", "https://env.example"),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let w = &loaded.config.wsc;
    assert_eq!(w.node_port, 9000);
    assert_eq!(w.multi_login.policy, LoginPolicy::KickNew);
    assert_eq!(w.websocket_origins, ["https://env.example"]);
    // Keys the environment does not set keep the file's value.
    assert_eq!(w.client_timeout, Duration::from_secs(100));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn environment_value_is_validated() {
    let problems = problems(load_env(&[
        ("GATEWAY__WSC__NODE_PORT", "70000"),
        ("GATEWAY__WSC__MULTI_LOGIN__POLICY", "sometimes"),
        ("GATEWAY__WSC__NODE_IP", "nope"),
    ]));
    let mut found = keys(&problems);
    found.sort_unstable();
    assert_eq!(
        found,
        ["wsc.multi_login.policy", "wsc.node_ip", "wsc.node_port"]
    );
    assert!(at(&problems, "wsc.node_port").message.contains("70000"));
    assert!(
        at(&problems, "wsc.multi_login.policy")
            .message
            .contains("kick_old")
    );
}

#[test]
fn misspelled_environment_key_is_a_warning() {
    let loaded = load_env(&[("GATEWAY__WSC__NODE_PROT", "9000")]).unwrap();
    assert_eq!(loaded.config.wsc.node_port, 8081);
    assert!(
        at(&loaded.warnings, "wsc.node_prot")
            .message
            .contains("wsc.node_port")
    );
}

/// String keys keep values that look like numbers (a numeric secret, a version such as 2.0,
/// a node id).
#[test]
fn string_keys_accept_numeric_looking_values() {
    let c = ok(&[
        ("GATEWAY__VERSION", "2.0"),
        ("GATEWAY__NAME", "42"),
        ("GATEWAY__WSC__DISTRIBUTED__NODE_ID", "7"),
        ("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "123456"),
    ]);
    assert_eq!(c.version, "2.0");
    assert_eq!(c.name, "42");
    assert_eq!(c.wsc.distributed.node_id, "7");
    assert_eq!(c.wsc.security.token.secret, "123456");
}

#[test]
fn list_keys_accept_numeric_looking_elements() {
    let c = ok(&[
        ("GATEWAY__API__KEYS", "123456,abc"),
        ("GATEWAY__WSC__SECURITY__ALLOWED_USER_TYPES", "1,2"),
    ]);
    assert_eq!(c.api.keys, ["123456", "abc"]);
    assert_eq!(c.wsc.security.allowed_user_types, ["1", "2"]);
}
