//! Validation: every problem of a file is reported at once (`ConfigError::Invalid`), each at
//! its key path, once, with a message naming the bad value or what is allowed.

mod support;

use std::time::Duration;
use support::{at, keys, load_with_env, load_yaml, load_yaml_ok, problems};

use wsc_config::{ConfigError, GatewayConfig, Problem, TokenAlgorithm};

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
        &["1B", "256B", "1MiB"],
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
      algorithm: HS999
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
        &["HS999", "HS256", "RS256", "ES256"],
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

// ------------------------------------------------------------- limits that used to panic

#[test]
fn socket_buffers_over_1mib_are_rejected_with_their_key() {
    // 2 MiB used to pass validation and make every connection task panic after the 101
    // (tungstenite asserts that its maximum write buffer exceeds the write buffer).
    let p = problems(load_yaml(
        "wsc:\n  performance:\n    write_buffer_size: 2MiB\n    read_buffer_size: 2048\n",
    ));
    assert_eq!(
        sorted(&p),
        [
            "wsc.performance.read_buffer_size",
            "wsc.performance.write_buffer_size"
        ],
        "{p:#?}"
    );
    assert_mentions(&p, "wsc.performance.write_buffer_size", &["2MiB", "1MiB"]);
    assert_mentions(&p, "wsc.performance.read_buffer_size", &["2MiB", "1MiB"]);
    // The maximum itself is accepted.
    let loaded = load_yaml_ok(
        "wsc:\n  performance:\n    write_buffer_size: 1MiB\n    read_buffer_size: 1MiB\n",
    );
    assert_eq!(loaded.config.wsc.performance.write_buffer_size, 1024 * 1024);
}

#[test]
fn absurd_durations_are_validation_errors_not_panics() {
    // Each of these used to panic in `Duration::from_secs_f64` or pass and overflow later.
    for value in [
        "1e20",
        "1.0e300",
        "-5",
        "-0.5",
        "18446744073709551615",
        "31536001",
        "\"99999999999999999999999h\"",
        "\"8761h\"",
        "\"1e20s\"",
    ] {
        let yaml = format!("wsc:\n  client_timeout: {value}\n");
        let p = problems(load_yaml(&yaml));
        assert_eq!(keys(&p), ["wsc.client_timeout"], "{value}: {p:#?}");
    }
    // The YAML reader itself refuses these floats: an error, not a panic.
    for value in [".nan", ".inf", "-.inf"] {
        let yaml = format!("wsc:\n  client_timeout: {value}\n");
        assert!(load_yaml(&yaml).is_err(), "{value}");
    }
    let p = problems(load_yaml("wsc:\n  client_timeout: 1e20\n"));
    assert_mentions(&p, "wsc.client_timeout", &["365 days"]);
    // JSON and TOML keep the number a float: the path that panicked in the loader.
    for (name, text) in [
        ("gateway.json", r#"{"wsc": {"client_timeout": 1e20}}"#),
        ("gateway.toml", "[wsc]\nclient_timeout = 1e20\n"),
        ("gateway.json", r#"{"wsc": {"client_timeout": -2.5}}"#),
    ] {
        let p = problems(load_with_env(name, text, &[]));
        assert_eq!(keys(&p), ["wsc.client_timeout"], "{text}: {p:#?}");
    }
    // The longest accepted duration.
    let loaded = load_yaml_ok("wsc:\n  offline:\n    ttl: 8760h\n");
    assert_eq!(
        loaded.config.wsc.offline.ttl,
        Duration::from_secs(365 * 24 * 3600)
    );
}

#[test]
fn absurd_durations_from_the_environment_are_validation_errors() {
    for value in ["1e20", "-1", "NaN", "inf", "1e400"] {
        let p = problems(load_with_env(
            "gateway.yaml",
            "",
            &[("GATEWAY__WSC__ACK__TIMEOUT", value)],
        ));
        assert_eq!(keys(&p), ["wsc.ack.timeout"], "{value}: {p:#?}");
    }
}

#[test]
fn every_duration_key_refuses_an_absurd_value() {
    for key in [
        "wsc.heartbeat_interval",
        "wsc.client_timeout",
        "wsc.ack.timeout",
        "wsc.offline.ttl",
        "wsc.recovery.history_ttl",
        "wsc.sse.heartbeat",
        "wsc.distributed.presence_ttl",
        "wsc.distributed.node_ttl",
        "wsc.redis.connect_timeout",
        "wsc.security.handshake_timeout",
        "wsc.performance.write_timeout",
        "wsc.performance.slow_log_threshold",
    ] {
        let var = format!("GATEWAY__{}", key.to_ascii_uppercase().replace('.', "__"));
        let p = problems(load_with_env("gateway.yaml", "", &[(&var, "1e20")]));
        assert!(p.iter().any(|p| p.key == key), "{key}: {p:#?}");
    }
}

#[test]
fn validate_refuses_durations_over_the_maximum_in_a_config_built_in_code() {
    let mut config = GatewayConfig::default();
    config.wsc.offline.ttl = Duration::MAX;
    config.wsc.performance.write_timeout = Duration::from_secs(400 * 24 * 3600);
    let problems = wsc_config::validate(&config);
    assert_eq!(
        sorted(&problems),
        ["wsc.offline.ttl", "wsc.performance.write_timeout"]
    );
    assert!(problems[0].message.contains("365 days"), "{problems:#?}");
}

#[test]
fn queue_limits_that_would_panic_a_connection_are_rejected() {
    let p = problems(load_yaml(
        "wsc:\n  message_buffer_size: 18446744073709551615\n  performance:\n    queue_max_bytes: 2GiB\n",
    ));
    assert_eq!(
        sorted(&p),
        ["wsc.message_buffer_size", "wsc.performance.queue_max_bytes"],
        "{p:#?}"
    );
    assert_mentions(&p, "wsc.performance.queue_max_bytes", &["1GiB"]);
}

// ------------------------------------------------------------------- token algorithms

#[test]
fn every_jsonwebtoken_algorithm_is_accepted_in_any_case() {
    for (name, algorithm) in [
        ("HS256", TokenAlgorithm::Hs256),
        ("hs384", TokenAlgorithm::Hs384),
        ("HS512", TokenAlgorithm::Hs512),
        ("RS256", TokenAlgorithm::Rs256),
        ("rs384", TokenAlgorithm::Rs384),
        ("RS512", TokenAlgorithm::Rs512),
        ("PS256", TokenAlgorithm::Ps256),
        ("PS384", TokenAlgorithm::Ps384),
        ("ps512", TokenAlgorithm::Ps512),
        ("ES256", TokenAlgorithm::Es256),
        ("es384", TokenAlgorithm::Es384),
        ("EdDSA", TokenAlgorithm::EdDsa),
    ] {
        let loaded = load_yaml_ok(&format!(
            "wsc:\n  security:\n    token:\n      algorithm: {name}\n"
        ));
        assert_eq!(loaded.config.wsc.security.token.algorithm, algorithm);
        // Printed in the JOSE spelling, and read back unchanged.
        let printed = loaded.config.redacted();
        assert_eq!(
            printed["wsc"]["security"]["token"]["algorithm"],
            algorithm.name()
        );
    }
}

#[test]
fn an_unknown_algorithm_is_refused_with_the_accepted_list() {
    let p = problems(load_yaml(
        "wsc:\n  security:\n    token:\n      algorithm: none\n",
    ));
    assert_eq!(keys(&p), ["wsc.security.token.algorithm"]);
    assert_mentions(
        &p,
        "wsc.security.token.algorithm",
        &[
            "none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "EdDSA",
        ],
    );
}

#[test]
fn auth_needs_the_key_its_algorithm_uses() {
    // An HS algorithm needs the secret; a public key does not do.
    let p = problems(load_yaml(
        "wsc:\n  security:\n    enable_auth: true\n    token:\n      algorithm: HS512\n      public_key: PEM\n",
    ));
    assert_mentions(
        &p,
        "wsc.security.enable_auth",
        &["wsc.security.token.secret"],
    );
    // The public-key algorithms need the public key; a secret does not do.
    let p = problems(load_yaml(
        "wsc:\n  security:\n    enable_auth: true\n    token:\n      algorithm: ES256\n      secret: s\n",
    ));
    assert_mentions(
        &p,
        "wsc.security.enable_auth",
        &["wsc.security.token.public_key", "ES256"],
    );
    load_yaml_ok(
        "wsc:\n  security:\n    enable_auth: true\n    token:\n      algorithm: RS384\n      public_key: PEM\n",
    );
}

#[test]
fn redis_cluster_urls_must_be_redis_urls_and_come_from_a_comma_list() {
    let p = problems(load_yaml(
        "wsc:\n  redis:\n    enabled: true\n    cluster_urls: [\"redis://a:7000\", \"http://:hunter2@b:7000\"]\n",
    ));
    assert_eq!(keys(&p), ["wsc.redis.cluster_urls"]);
    let message = &at(&p, "wsc.redis.cluster_urls").message;
    assert!(
        message.contains("b:7000") && !message.contains("hunter2"),
        "{message}"
    );

    let loaded = load_with_env(
        "gateway.yaml",
        "",
        &[
            ("GATEWAY__WSC__REDIS__ENABLED", "true"),
            (
                "GATEWAY__WSC__REDIS__CLUSTER_URLS",
                "redis://:hunter2@a:7000,redis://b:7000",
            ),
        ],
    )
    .expect("valid");
    assert_eq!(
        loaded.config.wsc.redis.cluster_urls,
        ["redis://:hunter2@a:7000", "redis://b:7000"]
    );
    let redacted = loaded.config.redacted();
    assert_eq!(
        redacted["wsc"]["redis"]["cluster_urls"],
        serde_json::json!(["redis://:***@a:7000", "redis://b:7000"])
    );
}

#[test]
fn tls_needs_its_files_a_known_version_and_no_client_ca_on_the_public_listener() {
    let found = problems(load_yaml(
        r#"
http:
  tls:
    enabled: true
    min_version: "1.1"
wsc:
  tls:
    client_ca_file: /etc/ca.pem
grpc:
  tls:
    enabled: true
    cert_file: a.pem
    key_file: b.pem
"#,
    ));
    assert_eq!(
        sorted(&found),
        [
            "http.tls.cert_file",
            "http.tls.key_file",
            "http.tls.min_version",
            "wsc.tls.client_ca_file",
        ]
    );
    assert!(
        found
            .iter()
            .any(|p| p.message.contains("\"1.2\" or \"1.3\""))
    );
    // A complete section is valid (the files themselves are read at start).
    load_yaml_ok(
        "wsc:\n  tls:\n    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n    min_version: \"1.3\"\n",
    );
}
