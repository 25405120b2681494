//! Defaults: no file, an empty file and a file with only comments all give
//! `GatewayConfig::default()` without warnings, and the documented defaults hold.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::{load_with_env, load_yaml_ok};
use wsc_config::{
    GatewayConfig, Loader, LogFormat, LoginPolicy, OfflineStore, SlowConsumer, TokenAlgorithm,
};

#[test]
fn no_file_and_empty_environment_gives_the_defaults() {
    let loaded = Loader::new().environment(HashMap::new()).load().unwrap();
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn environment_without_the_prefix_is_ignored() {
    let vars = HashMap::from([
        ("WSC__NODE_PORT".to_owned(), "1".to_owned()),
        ("GATEWAYX__WSC__NODE_PORT".to_owned(), "2".to_owned()),
        ("PATH".to_owned(), "/usr/bin".to_owned()),
    ]);
    let loaded = Loader::new().environment(vars).load().unwrap();
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn empty_yaml_file_gives_the_defaults() {
    let loaded = load_yaml_ok("");
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn comment_only_yaml_file_gives_the_defaults() {
    let loaded = load_yaml_ok("# nothing configured yet\n");
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn empty_toml_and_json_files_give_the_defaults() {
    for (name, contents) in [("gateway.toml", ""), ("gateway.json", "{}")] {
        let loaded = load_with_env(name, contents, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.config, GatewayConfig::default(), "{name}");
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    }
}

#[test]
fn empty_section_keeps_its_defaults() {
    let loaded = load_yaml_ok("wsc: {}\nhttp: {}\n");
    assert_eq!(loaded.config, GatewayConfig::default());
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn documented_defaults() {
    let c = GatewayConfig::default();
    assert_eq!(c.name, "wsc-gateway");
    assert_eq!(c.environment, "development");
    assert_eq!(c.http.host, "0.0.0.0");
    assert_eq!(c.http.port, 8080);
    assert!(c.grpc.enabled);
    assert_eq!(c.grpc.port, 9090);
    assert_eq!(c.health.path, "/health");
    assert_eq!(c.health.ready_path, "/ready");
    assert_eq!(c.metrics.path, "/metrics");
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.logging.format, LogFormat::Text);
    assert!(c.api.keys.is_empty());

    let w = &c.wsc;
    assert!(w.enabled);
    assert_eq!(w.node_ip, "0.0.0.0");
    assert_eq!(w.node_port, 8081);
    assert_eq!(w.path, "/ws");
    assert_eq!(w.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(w.client_timeout, Duration::from_secs(90));
    assert_eq!(w.message_buffer_size, 256);
    assert_eq!(w.websocket_origins, ["*"]);
    assert!(w.relay_status_messages);
    assert_eq!(w.multi_login.policy, LoginPolicy::KickOld);
    assert_eq!(w.multi_login.max_connections_per_user, 3);
    assert_eq!(w.ack.timeout, Duration::from_secs(5));
    assert_eq!(w.ack.max_retries, 3);
    assert!(w.offline.enabled);
    assert_eq!(w.offline.store, OfflineStore::Memory);
    assert_eq!(w.offline.max_per_user, 100);
    assert_eq!(w.offline.ttl, Duration::from_secs(7 * 24 * 3600));
    assert!(w.sse.enabled);
    assert_eq!(w.sse.path, "/sse");
    assert_eq!(w.sse.heartbeat, Duration::from_secs(30));
    assert!(!w.distributed.enabled);
    assert_eq!(w.distributed.key_prefix, "wsc:");
    assert!(!w.redis.enabled);
    assert_eq!(w.redis.url, "redis://127.0.0.1:6379/0");
    assert_eq!(w.redis.pool_size, 16);
    assert!(!w.security.enable_auth);
    assert_eq!(w.security.token.algorithm, TokenAlgorithm::Hs256);
    assert_eq!(w.security.token.query_param, "token");
    assert!(w.security.enable_rate_limit);
    assert_eq!(w.security.max_messages_per_second, 100);
    assert_eq!(w.security.max_bytes_per_second, 1024 * 1024);
    assert_eq!(w.security.max_message_size, 64 * 1024);
    assert!(w.security.allowed_user_types.is_empty());
    assert_eq!(w.security.max_handshakes_per_ip_per_second, 20);
    assert_eq!(w.security.handshake_timeout, Duration::from_secs(10));
    assert_eq!(w.performance.max_connections_per_node, 10_000);
    assert_eq!(w.performance.read_buffer_size, 1024);
    assert_eq!(w.performance.write_buffer_size, 4 * 1024);
    assert_eq!(w.performance.queue_max_bytes, 1024 * 1024);
    assert_eq!(w.performance.slow_consumer, SlowConsumer::Disconnect);
    assert_eq!(w.performance.write_timeout, Duration::from_secs(10));
}

#[test]
fn defaults_pass_validation() {
    assert!(wsc_config::validate(&GatewayConfig::default()).is_empty());
}

#[test]
fn default_hub_config_matches_the_schema_defaults() {
    let c = GatewayConfig::default();
    let hub = c.wsc.hub_config();
    assert_eq!(hub.heartbeat_interval, Duration::from_secs(30));
    assert_eq!(hub.client_timeout, Duration::from_secs(90));
    assert_eq!(hub.queue_capacity, 256);
    assert_eq!(hub.max_connections_per_user, 3);
    assert_eq!(hub.multi_login, wsc_hub::MultiLoginPolicy::KickOld);
    assert_eq!(hub.limits.max_message_size, 64 * 1024);
    assert_eq!(hub.max_inbound_per_second, 100);
    assert!(hub.relay_status_messages);
}
