//! Validation: every problem of a file is reported at once (`ConfigError::Invalid`), each at
//! its key path, once, with a message naming the bad value or what is allowed.

mod support;

use support::{at, keys, load_with_env, load_yaml, load_yaml_ok, problems};
use wsc_config::{ConfigError, GatewayConfig, Problem};

/// One file with a bad value for (nearly) every check. Redis stays disabled so that the
/// `needs wsc.redis.enabled` checks fire; the URL check is in its own test.
const MANY_PROBLEMS: &str = r#"
wsc:
  path: ws
  node_ip: nope
  node_port: "abc"
  heartbeat_interval: 30
  client_timeout: 30
  message_buffer_size: 0
  multi_login:
    policy: sometimes
  distributed:
    enabled: true
  offline:
    store: redis
  redis:
    enabled: false
  security:
    enable_auth: true
    max_message_size: "16B"
    blocked_ips: ["10.0.0.0/99"]
  performance:
    read_buffer_size: "1B"
"#;

fn sorted(problems: &[Problem]) -> Vec<&str> {
    let mut k = keys(problems);
    k.sort_unstable();
    k
}

fn assert_mentions(problems: &[Problem], key: &str, words: &[&str]) {
    let message = &at(problems, key).message;
    for word in words {
        assert!(
            message.contains(word),
            "message of `{key}` should mention `{word}`: {message}"
        );
    }
}

#[test]
fn every_problem_is_reported_once_in_one_go() {
    let problems = problems(load_yaml(MANY_PROBLEMS));
    let mut expected = vec![
        "wsc.path",
        "wsc.node_ip",
        "wsc.node_port",
        "wsc.client_timeout",
        "wsc.message_buffer_size",
        "wsc.multi_login.policy",
        "wsc.distributed.enabled",
        "wsc.offline.store",
        "wsc.security.enable_auth",
        "wsc.security.max_message_size",
        "wsc.security.blocked_ips",
        "wsc.performance.read_buffer_size",
    ];
    expected.sort_unstable();
    assert_eq!(sorted(&problems), expected, "{problems:#?}");
}

#[test]
fn messages_name_the_bad_value_or_what_is_allowed() {
    let p = problems(load_yaml(MANY_PROBLEMS));
    assert_mentions(&p, "wsc.path", &["`ws`", "/"]);
    assert_mentions(&p, "wsc.node_ip", &["nope", "IP address"]);
    assert_mentions(&p, "wsc.node_port", &["abc"]);
    assert_mentions(&p, "wsc.client_timeout", &["30s", "wsc.heartbeat_interval"]);
    assert_mentions(&p, "wsc.message_buffer_size", &["at least 1"]);
    assert_mentions(
        &p,
        "wsc.multi_login.policy",
        &["sometimes", "allow_all", "kick_old", "kick_new"],
    );
    assert_mentions(&p, "wsc.distributed.enabled", &["wsc.redis.enabled"]);
    assert_mentions(&p, "wsc.offline.store", &["redis", "wsc.redis.enabled"]);
    assert_mentions(
        &p,
        "wsc.security.enable_auth",
        &["wsc.security.token.secret", "wsc.security.token.public_key"],
    );
    assert_mentions(
        &p,
        "wsc.security.max_message_size",
        &["16B", "128B", "64MiB"],
    );
    assert_mentions(&p, "wsc.security.blocked_ips", &["10.0.0.0/99", "CIDR"]);
    assert_mentions(
        &p,
        "wsc.performance.read_buffer_size",
        &["1B", "256B", "16MiB"],
    );
}

#[test]
fn the_error_text_lists_every_problem() {
    let err = load_yaml(MANY_PROBLEMS).unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)));
    let text = err.to_string();
    for key in [
        "wsc.path:",
        "wsc.node_ip:",
        "wsc.node_port:",
        "wsc.client_timeout:",
        "wsc.message_buffer_size:",
        "wsc.multi_login.policy:",
        "wsc.distributed.enabled:",
        "wsc.offline.store:",
        "wsc.security.enable_auth:",
        "wsc.security.max_message_size:",
        "wsc.security.blocked_ips:",
        "wsc.performance.read_buffer_size:",
    ] {
        assert!(text.contains(key), "missing {key} in:\n{text}");
    }
}

#[test]
fn fixing_every_value_makes_the_file_valid() {
    // The same keys with good values: proves each problem above came from its bad value.
    let loaded = load_yaml_ok(
        r#"
wsc:
  path: /ws
  node_ip: 127.0.0.1
  node_port: 8082
  heartbeat_interval: 30
  client_timeout: 31
  message_buffer_size: 1
  multi_login:
    policy: kick_new
  distributed:
    enabled: true
  offline:
    store: redis
  redis:
    enabled: true
  security:
    enable_auth: true
    token:
      secret: s
    max_message_size: "128B"
    blocked_ips: ["10.0.0.0/32", "::1/128"]
  performance:
    read_buffer_size: "256B"
"#,
    );
    assert_eq!(loaded.config.wsc.node_port, 8082);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn redis_url_must_be_a_redis_url_when_redis_is_enabled() {
    let p = problems(load_yaml(
        "wsc:\n  redis:\n    enabled: true\n    url: \"http://x\"\n",
    ));
    assert_eq!(keys(&p), ["wsc.redis.url"]);
    assert_mentions(&p, "wsc.redis.url", &["http://x", "redis://", "rediss://"]);
    // Disabled, the URL is not used and not checked.
    load_yaml_ok("wsc:\n  redis:\n    enabled: false\n    url: \"http://x\"\n");
    load_yaml_ok("wsc:\n  redis:\n    enabled: true\n    url: \"rediss://h:6380/1\"\n");
}

#[test]
fn redis_url_problem_masks_the_password() {
    let p = problems(load_yaml(
        "wsc:\n  redis:\n    enabled: true\n    url: \"http://:hunter2@cache:6379\"\n",
    ));
    let message = &at(&p, "wsc.redis.url").message;
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("cache:6379"), "{message}");
}

#[test]
fn other_path_ip_and_size_checks() {
    let p = problems(load_yaml(
        r#"
http:
  host: "localhost"
grpc:
  host: "::g"
health:
  path: health
  ready_path: ready
metrics:
  path: metrics
wsc:
  sse:
    path: sse
  redis:
    pool_size: 0
  distributed:
    key_prefix: ""
  security:
    max_message_size: "65MiB"
    allowed_ips: ["192.168.0.1", "example.com", "::1/129"]
  performance:
    write_buffer_size: "17MiB"
    queue_max_bytes: "1023B"
"#,
    ));
    let mut expected = vec![
        "http.host",
        "grpc.host",
        "health.path",
        "health.ready_path",
        "metrics.path",
        "wsc.sse.path",
        "wsc.redis.pool_size",
        "wsc.distributed.key_prefix",
        "wsc.security.max_message_size",
        "wsc.security.allowed_ips",
        "wsc.security.allowed_ips",
        "wsc.performance.write_buffer_size",
        "wsc.performance.queue_max_bytes",
    ];
    expected.sort_unstable();
    assert_eq!(sorted(&p), expected, "{p:#?}");
    let allowed: Vec<&str> = p
        .iter()
        .filter(|p| p.key == "wsc.security.allowed_ips")
        .map(|p| p.message.as_str())
        .collect();
    assert!(allowed[0].contains("example.com"), "{allowed:?}");
    assert!(allowed[1].contains("::1/129"), "{allowed:?}");
}

#[test]
fn type_errors_across_sections_are_all_reported() {
    let p = problems(load_yaml(
        r#"
http:
  port: 70000
logging:
  format: xml
wsc:
  enabled: maybe
  message_buffer_size: -5
  security:
    token:
      algorithm: ES256
  performance:
    slow_consumer: explode
"#,
    ));
    let mut expected = vec![
        "http.port",
        "logging.format",
        "wsc.enabled",
        "wsc.message_buffer_size",
        "wsc.security.token.algorithm",
        "wsc.performance.slow_consumer",
    ];
    expected.sort_unstable();
    assert_eq!(sorted(&p), expected, "{p:#?}");
    assert_mentions(&p, "logging.format", &["xml", "text", "json"]);
    assert_mentions(
        &p,
        "wsc.security.token.algorithm",
        &["ES256", "HS256", "RS256"],
    );
    assert_mentions(
        &p,
        "wsc.performance.slow_consumer",
        &["explode", "disconnect", "drop_message"],
    );
    assert_mentions(&p, "http.port", &["70000"]);
}

#[test]
fn a_wrong_section_type_does_not_hide_other_problems() {
    let p = problems(load_yaml("http: 8080\nwsc:\n  node_ip: nope\n"));
    assert_eq!(sorted(&p), ["http", "wsc.node_ip"], "{p:#?}");
}

#[test]
fn a_wrong_list_element_does_not_hide_other_problems() {
    let p = problems(load_yaml(
        "wsc:\n  node_ip: nope\n  websocket_origins: [\"https://a.example\", {host: b}]\n",
    ));
    assert!(
        p.iter().any(|p| p.key.starts_with("wsc.websocket_origins")),
        "{p:#?}"
    );
    assert!(p.iter().any(|p| p.key == "wsc.node_ip"), "{p:#?}");
    // The element's problem names the bad value like every other type error does.
    let element = p
        .iter()
        .find(|p| p.key.starts_with("wsc.websocket_origins"))
        .unwrap();
    assert!(element.message.contains("host"), "{element:?}");
}

#[test]
fn validate_reports_on_a_config_built_in_code() {
    let mut config = GatewayConfig::default();
    config.wsc.client_timeout = config.wsc.heartbeat_interval;
    config.wsc.message_buffer_size = 0;
    let problems = wsc_config::validate(&config);
    assert_eq!(
        sorted(&problems),
        ["wsc.client_timeout", "wsc.message_buffer_size"]
    );
}

#[test]
fn environment_and_file_problems_are_reported_together() {
    let p = problems(load_with_env(
        "gateway.yaml",
        "wsc:\n  node_ip: nope\n",
        &[("GATEWAY__WSC__MESSAGE_BUFFER_SIZE", "0")],
    ));
    assert_eq!(sorted(&p), ["wsc.message_buffer_size", "wsc.node_ip"]);
}
