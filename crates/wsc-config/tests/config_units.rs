//! Durations (integer seconds, fractional seconds, `"500ms"`, `"30s"`, `"5m"`, `"1h"`,
//! `"1.5s"`) and sizes (`"512B"`, `"64KiB"`, `"1MiB"`, bare integers = KiB) in files, their
//! errors, and a serialized configuration loading back unchanged.

mod support;

use std::time::Duration;

use support::{at, keys, load_with_env, load_yaml, load_yaml_ok, problems};
use wsc_config::GatewayConfig;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// Loads `wsc: { heartbeat_interval: <hb>, client_timeout: <ct> }`.
fn heartbeat_and_timeout(hb: &str, ct: &str) -> (Duration, Duration) {
    let loaded = load_yaml_ok(&format!(
        "wsc:\n  heartbeat_interval: {hb}\n  client_timeout: {ct}\n"
    ));
    (
        loaded.config.wsc.heartbeat_interval,
        loaded.config.wsc.client_timeout,
    )
}

#[test]
fn integer_durations_are_seconds() {
    assert_eq!(
        heartbeat_and_timeout("20", "60"),
        (Duration::from_secs(20), Duration::from_secs(60))
    );
}

#[test]
fn duration_strings_with_units() {
    assert_eq!(
        heartbeat_and_timeout("\"30s\"", "\"5m\""),
        (Duration::from_secs(30), Duration::from_secs(300))
    );
    assert_eq!(
        heartbeat_and_timeout("\"500ms\"", "\"1.5s\""),
        (Duration::from_millis(500), Duration::from_millis(1500))
    );
    assert_eq!(
        heartbeat_and_timeout("\"5m\"", "\"1h\""),
        (Duration::from_secs(300), Duration::from_secs(3600))
    );
    // Unquoted in YAML, and a bare number in a string.
    assert_eq!(
        heartbeat_and_timeout("10s", "\"45\""),
        (Duration::from_secs(10), Duration::from_secs(45))
    );
}

#[test]
fn fractional_seconds_as_a_number() {
    assert_eq!(
        heartbeat_and_timeout("2.5", "\"10s\""),
        (Duration::from_millis(2500), Duration::from_secs(10))
    );
}

#[test]
fn durations_in_every_section() {
    let loaded = load_yaml_ok(
        r#"
wsc:
  ack:
    timeout: "1.5s"
  offline:
    ttl: "1h"
  sse:
    heartbeat: 45
  distributed:
    presence_ttl: "5m"
    node_ttl: "90s"
  redis:
    connect_timeout: "500ms"
  security:
    handshake_timeout: 15
  performance:
    write_timeout: "2s"
    slow_log_threshold: "250ms"
"#,
    );
    let w = &loaded.config.wsc;
    assert_eq!(w.ack.timeout, Duration::from_millis(1500));
    assert_eq!(w.offline.ttl, Duration::from_secs(3600));
    assert_eq!(w.sse.heartbeat, Duration::from_secs(45));
    assert_eq!(w.distributed.presence_ttl, Duration::from_secs(300));
    assert_eq!(w.distributed.node_ttl, Duration::from_secs(90));
    assert_eq!(w.redis.connect_timeout, Duration::from_millis(500));
    assert_eq!(w.security.handshake_timeout, Duration::from_secs(15));
    assert_eq!(w.performance.write_timeout, Duration::from_secs(2));
    assert_eq!(w.performance.slow_log_threshold, Duration::from_millis(250));
    // The hub receives them.
    assert_eq!(w.hub_config().write_timeout, Duration::from_secs(2));
}

#[test]
fn bad_durations_are_reported_with_their_value() {
    let problems = problems(load_yaml(
        "wsc:\n  heartbeat_interval: soon\n  client_timeout: \"5 days\"\n  ack:\n    timeout: -1\n  offline:\n    ttl: \"10x\"\n",
    ));
    let mut found = keys(&problems);
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "wsc.ack.timeout",
            "wsc.client_timeout",
            "wsc.heartbeat_interval",
            "wsc.offline.ttl"
        ],
        "{problems:#?}"
    );
    assert!(
        at(&problems, "wsc.heartbeat_interval")
            .message
            .contains("soon")
    );
    assert!(at(&problems, "wsc.client_timeout").message.contains("days"));
    assert!(at(&problems, "wsc.ack.timeout").message.contains("-1"));
    assert!(
        at(&problems, "wsc.offline.ttl")
            .message
            .contains("ms, s, m or h")
    );
}

#[test]
fn zero_heartbeat_is_rejected() {
    let problems = problems(load_yaml("wsc:\n  heartbeat_interval: 0\n"));
    assert_eq!(keys(&problems), ["wsc.heartbeat_interval"]);
}

#[test]
fn sizes_with_units() {
    let loaded = load_yaml_ok(
        r#"
wsc:
  security:
    max_message_size: "512B"
    max_bytes_per_second: "1GiB"
  performance:
    read_buffer_size: "64KiB"
    write_buffer_size: "1MiB"
    queue_max_bytes: "64KB"
"#,
    );
    let w = &loaded.config.wsc;
    assert_eq!(w.security.max_message_size, 512);
    assert_eq!(w.security.max_bytes_per_second, 1024 * MIB);
    assert_eq!(w.performance.read_buffer_size, 64 * KIB);
    assert_eq!(w.performance.write_buffer_size, MIB);
    assert_eq!(w.performance.queue_max_bytes, 64 * KIB);
    let hub = w.hub_config();
    assert_eq!(hub.limits.max_message_size, 512);
    assert_eq!(hub.read_buffer_size, 64 * KIB);
    assert_eq!(hub.queue_max_bytes, 64 * KIB);
}

#[test]
fn bare_integer_sizes_are_kib() {
    let loaded = load_yaml_ok(
        "wsc:\n  security:\n    max_message_size: 1024\n  performance:\n    read_buffer_size: 8\n    write_buffer_size: \"16\"\n",
    );
    let w = &loaded.config.wsc;
    assert_eq!(w.security.max_message_size, MIB);
    assert_eq!(w.performance.read_buffer_size, 8 * KIB);
    assert_eq!(w.performance.write_buffer_size, 16 * KIB);
}

#[test]
fn size_units_are_case_insensitive() {
    let loaded = load_yaml_ok(
        "wsc:\n  security:\n    max_message_size: \"2mb\"\n  performance:\n    read_buffer_size: \"4kib\"\n",
    );
    assert_eq!(loaded.config.wsc.security.max_message_size, 2 * MIB);
    assert_eq!(loaded.config.wsc.performance.read_buffer_size, 4 * KIB);
}

#[test]
fn bad_sizes_are_reported_with_their_value() {
    let problems = problems(load_yaml(
        "wsc:\n  security:\n    max_message_size: lots\n    max_bytes_per_second: -1\n  performance:\n    read_buffer_size: \"5 parsecs\"\n",
    ));
    let mut found = keys(&problems);
    found.sort_unstable();
    assert_eq!(
        found,
        [
            "wsc.performance.read_buffer_size",
            "wsc.security.max_bytes_per_second",
            "wsc.security.max_message_size"
        ],
        "{problems:#?}"
    );
    assert!(
        at(&problems, "wsc.security.max_message_size")
            .message
            .contains("lots")
    );
    assert!(
        at(&problems, "wsc.performance.read_buffer_size")
            .message
            .contains("B, KiB, MiB or GiB")
    );
}

#[test]
fn durations_and_sizes_print_with_units() {
    let loaded = load_yaml_ok(
        "wsc:\n  heartbeat_interval: \"1.5s\"\n  security:\n    max_message_size: \"1MiB\"\n  performance:\n    read_buffer_size: \"300B\"\n",
    );
    let flat = loaded.config.flatten();
    assert_eq!(flat["wsc.heartbeat_interval"], "1500ms");
    assert_eq!(flat["wsc.client_timeout"], "90s");
    assert_eq!(flat["wsc.security.max_message_size"], "1MiB");
    assert_eq!(flat["wsc.performance.read_buffer_size"], "300B");
    assert_eq!(flat["wsc.performance.write_buffer_size"], "4KiB");
}

#[test]
fn a_serialized_configuration_loads_back_unchanged() {
    let mut config = GatewayConfig::default();
    config.wsc.heartbeat_interval = Duration::from_millis(1500);
    config.wsc.client_timeout = Duration::from_secs(3600);
    config.wsc.ack.timeout = Duration::from_millis(250);
    config.wsc.security.max_message_size = 300;
    config.wsc.performance.read_buffer_size = 64 * KIB;
    config.wsc.performance.write_buffer_size = MIB;
    config.wsc.node_port = 9100;
    let json = serde_json::to_string_pretty(&config).unwrap();
    let loaded = load_with_env("gateway.json", &json, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.config, config);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}
