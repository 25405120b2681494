//! The go-rpc-gateway seed's example configurations (verbatim copies in `tests/seed/`) load:
//! values land where this gateway reads them, bare integers are seconds (durations) or KiB
//! (sizes) as in the seed, renamed keys and keys without effect are warnings.

mod support;

use std::time::Duration;

use support::{at, keys, load_with_env, load_yaml, load_yaml_ok, problems};
use wsc_config::{GatewayConfig, Loaded};

const SEED_1B: &str = include_str!("seed/1b.yaml");
const SEED_1E: &str = include_str!("seed/1e.yaml");
const SEED_1F: &str = include_str!("seed/1f.yaml");
const SEED_2A: &str = include_str!("seed/2a.yaml");
const SEED_2B: &str = include_str!("seed/2b.yaml");
const SEED_2C: &str = include_str!("seed/2c.yaml");
const SEED_2D: &str = include_str!("seed/2d.yaml");
const SEED_2E: &str = include_str!("seed/2e.yaml");
const SEED_2F: &str = include_str!("seed/2f.yaml");

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

#[test]
fn seed_1b_flat_wsc_loads_without_warnings() {
    let loaded = load_yaml_ok(SEED_1B);
    let w = &loaded.config.wsc;
    assert!(w.enabled);
    assert_eq!(w.node_ip, "0.0.0.0");
    assert_eq!(w.node_port, 8081);
    assert_eq!(w.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(w.client_timeout, Duration::from_secs(90));
    assert_eq!(w.message_buffer_size, 256);
    // Every value of 1b is also the default, so the whole config is the default one.
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn seed_1f_flat_wsc_values_land() {
    let loaded = load_yaml_ok(SEED_1F);
    let w = &loaded.config.wsc;
    assert_eq!(w.node_port, 8080);
    assert_eq!(w.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(w.client_timeout, Duration::from_secs(60));
    assert_eq!(w.message_buffer_size, 256);
    assert_eq!(w.websocket_origins, ["*"]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn seed_1e_flat_wsc_with_performance_distributed_redis_loads() {
    let loaded = load_yaml_ok(SEED_1E);
    let w = &loaded.config.wsc;
    assert!(w.enabled);
    assert_eq!(w.node_port, 8081);
    assert_eq!(w.client_timeout, Duration::from_secs(90));
    assert_eq!(w.websocket_origins, ["*"]);
    assert!(w.performance.enable_metrics);
    // `read_buffer_size: 1024` is KiB in the seed.
    assert_eq!(w.performance.read_buffer_size, MIB);
    assert_eq!(w.performance.write_buffer_size, MIB);
    assert!(!w.distributed.enabled);
    assert!(!w.redis.enabled);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The hub gets those buffer sizes.
    let hub = w.hub_config();
    assert_eq!(hub.read_buffer_size, MIB);
    assert_eq!(hub.write_buffer_size, MIB);
}

#[test]
fn seed_2a_without_a_token_key_fails_only_on_enable_auth() {
    let problems = problems(load_yaml(SEED_2A));
    assert_eq!(keys(&problems), ["wsc.security.enable_auth"]);
    let message = &problems[0].message;
    assert!(
        message.contains("wsc.security.token.secret")
            && message.contains("wsc.security.token.public_key"),
        "{message}"
    );
}

/// Every value of seed 2a, as this gateway reads it.
fn assert_seed_2a_values(loaded: &Loaded) {
    let c = &loaded.config;
    assert_eq!(c.name, "Go RPC Gateway with WebSocket");
    assert_eq!(c.version, "1.0.0");
    assert_eq!(c.environment, "production");
    assert_eq!(c.http.host, "0.0.0.0");
    assert_eq!(c.http.port, 8080);
    assert_eq!(c.grpc.host, "0.0.0.0");
    assert_eq!(c.grpc.port, 9090);

    let w = &c.wsc;
    assert!(w.enabled);
    assert_eq!(w.node_ip, "0.0.0.0");
    assert_eq!(w.node_port, 8081);
    assert_eq!(w.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(w.client_timeout, Duration::from_secs(90));
    assert_eq!(w.message_buffer_size, 256);
    assert_eq!(
        w.websocket_origins,
        ["http://localhost:3000", "http://localhost:5173"]
    );
    // sse_heartbeat -> wsc.sse.heartbeat (bare integer = seconds).
    assert_eq!(w.sse.heartbeat, Duration::from_secs(30));
    assert!(!w.distributed.enabled);
    // host/port/db -> one URL; pool_size is read as is (the default is 16).
    assert_eq!(w.redis.url, "redis://localhost:6379/0");
    assert_eq!(w.redis.pool_size, 10);
    assert!(!w.redis.enabled);
    assert_eq!(w.performance.max_connections_per_node, 10_000);
    assert_eq!(w.performance.read_buffer_size, 4 * KIB);
    assert_eq!(w.performance.write_buffer_size, 4 * KIB);
    assert!(w.performance.enable_metrics);
    assert!(w.performance.enable_slow_log);
    assert!(w.security.enable_auth);
    assert!(w.security.enable_rate_limit);
    // `max_message_size: 1024` is KiB in the seed.
    assert_eq!(w.security.max_message_size, MIB);
    assert_eq!(
        w.security.allowed_user_types,
        ["customer", "agent", "admin"]
    );
    assert_eq!(w.security.token.secret, "s3cret");
}

/// The warnings seed 2a must produce: the `gateway:` root, renamed keys, keys without
/// effect. Nothing else (in particular no "unknown key" for keys that were read).
fn assert_seed_2a_warnings(loaded: &Loaded) {
    let w = &loaded.warnings;
    assert!(
        at(w, "gateway").message.contains("root"),
        "{:?}",
        at(w, "gateway")
    );
    assert!(
        at(w, "wsc.sse_heartbeat")
            .message
            .contains("wsc.sse.heartbeat")
    );
    assert!(at(w, "grpc.server.host").message.contains("grpc.host"));
    assert!(at(w, "grpc.server.port").message.contains("grpc.port"));
    assert!(
        at(w, "wsc.redis.host")
            .message
            .contains("redis://localhost:6379/0")
    );
    let no_effect = [
        "wsc.sse_timeout",
        "wsc.sse_message_buffer",
        "wsc.group",
        "wsc.ticket",
        "wsc.distributed.node_discovery",
        "wsc.distributed.message_routing",
        "wsc.distributed.enable_load_balance",
        "wsc.performance.enable_compression",
        "wsc.performance.metrics_interval",
        "wsc.security.enable_encryption",
        "wsc.security.enable_ip_whitelist",
        "wsc.security.token_expiration",
    ];
    for key in no_effect {
        assert!(
            at(w, key).message.contains("no effect"),
            "{key}: {:?}",
            at(w, key)
        );
    }
    let mut expected = vec![
        "gateway",
        "wsc.sse_heartbeat",
        "grpc.server.host",
        "grpc.server.port",
        "wsc.redis.host",
    ];
    expected.extend(no_effect);
    assert_eq!(sorted(keys(w)), sorted(expected), "{w:#?}");
}

#[test]
fn seed_2a_with_the_secret_in_the_file_loads_every_value() {
    let text = SEED_2A.replace(
        "      enable_auth: true\n",
        "      enable_auth: true\n      token:\n        secret: s3cret\n",
    );
    assert_ne!(text, SEED_2A);
    let loaded = load_yaml_ok(&text);
    assert_seed_2a_values(&loaded);
    assert_seed_2a_warnings(&loaded);
}

#[test]
fn seed_2a_with_the_secret_from_the_environment_loads_every_value() {
    let loaded = load_with_env(
        "gateway.yaml",
        SEED_2A,
        &[("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "s3cret")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_seed_2a_values(&loaded);
    assert_seed_2a_warnings(&loaded);
}

#[test]
fn seed_2b_nested_under_gateway_fails_only_on_enable_auth() {
    let problems = problems(load_yaml(SEED_2B));
    assert_eq!(keys(&problems), ["wsc.security.enable_auth"]);
}

#[test]
fn seed_2b_with_an_rs256_key_from_the_environment_loads() {
    let loaded = load_with_env(
        "gateway.yaml",
        SEED_2B,
        &[
            ("GATEWAY__WSC__SECURITY__TOKEN__ALGORITHM", "RS256"),
            (
                "GATEWAY__WSC__SECURITY__TOKEN__PUBLIC_KEY",
                "-----BEGIN PUBLIC KEY-----",
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.name, "Go RPC Gateway");
    assert_eq!(c.environment, "production");
    assert!(c.wsc.security.enable_auth);
    assert_eq!(c.wsc.security.max_message_size, MIB);
    assert_eq!(
        c.wsc.security.allowed_user_types,
        ["customer", "agent", "admin"]
    );
    assert!(c.wsc.performance.enable_slow_log);
    assert_eq!(keys(&loaded.warnings), ["gateway"]);
}

#[test]
fn seed_2c_performance_loads() {
    let loaded = load_yaml_ok(SEED_2C);
    let p = &loaded.config.wsc.performance;
    assert_eq!(p.max_connections_per_node, 10_000);
    assert_eq!(p.read_buffer_size, 4 * KIB);
    assert_eq!(p.write_buffer_size, 4 * KIB);
    assert!(p.enable_metrics);
    assert_eq!(
        keys(&loaded.warnings),
        ["wsc.performance.enable_compression"]
    );
}

#[test]
fn seed_2d_security_needs_a_token_key() {
    let problems = problems(load_yaml(SEED_2D));
    assert_eq!(keys(&problems), ["wsc.security.enable_auth"]);
}

#[test]
fn seed_2d_security_with_a_secret_loads() {
    let loaded = load_with_env(
        "gateway.yaml",
        SEED_2D,
        &[("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "s3cret")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = &loaded.config.wsc.security;
    assert!(s.enable_auth);
    assert!(s.enable_rate_limit);
    assert_eq!(s.max_message_size, MIB);
    assert_eq!(s.allowed_user_types, ["customer", "agent", "admin"]);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn seed_2e_group_and_2f_ticket_are_accepted_without_effect() {
    for (seed, key) in [(SEED_2E, "wsc.group"), (SEED_2F, "wsc.ticket")] {
        let loaded = load_yaml_ok(seed);
        assert_eq!(loaded.config, GatewayConfig::default(), "{key}");
        assert_eq!(keys(&loaded.warnings), [key]);
        assert!(loaded.warnings[0].message.contains("no effect"));
    }
}

#[test]
fn seed_renamed_server_keys_land() {
    // README / docs/QUICK_START.md (3e): `http_server` and `grpc.server`.
    let loaded = load_yaml_ok("http_server:\n  port: 3000\n\ngrpc:\n  server:\n    port: 50051\n");
    assert_eq!(loaded.config.http.port, 3000);
    assert_eq!(loaded.config.grpc.port, 50051);
    assert!(
        at(&loaded.warnings, "http_server.port")
            .message
            .contains("http.port")
    );
    assert!(
        at(&loaded.warnings, "grpc.server.port")
            .message
            .contains("grpc.port")
    );
    // Only the renames: the emptied `http_server` / `grpc.server` maps are not "unknown".
    assert_eq!(
        sorted(keys(&loaded.warnings)),
        ["grpc.server.port", "http_server.port"],
        "{:#?}",
        loaded.warnings
    );
}

#[test]
fn new_name_wins_over_the_seed_name() {
    let loaded = load_yaml_ok("grpc:\n  port: 7000\n  server:\n    port: 50051\n");
    assert_eq!(loaded.config.grpc.port, 7000);
    assert!(
        at(&loaded.warnings, "grpc.server.port")
            .message
            .contains("grpc.port")
    );
}

#[test]
fn partial_seed_redis_address_uses_defaults_for_the_rest() {
    let loaded = load_yaml_ok("wsc:\n  redis:\n    host: cache.internal\n");
    assert_eq!(loaded.config.wsc.redis.url, "redis://cache.internal:6379/0");
    let loaded = load_yaml_ok("wsc:\n  redis:\n    port: 6380\n    db: 2\n");
    assert_eq!(loaded.config.wsc.redis.url, "redis://127.0.0.1:6380/2");
}
