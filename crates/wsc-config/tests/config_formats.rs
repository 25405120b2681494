//! YAML, TOML and JSON files are read by extension and give the same configuration; a file
//! that cannot be read or parsed is a load error, not a validation problem.

mod support;

use std::time::Duration;

use support::{load_with_env, temp_config};
use wsc_config::{ConfigError, GatewayConfig, Loader, LoginPolicy};

const YAML: &str = r#"
name: formats
http:
  port: 8181
wsc:
  node_port: 9001
  heartbeat_interval: "10s"
  client_timeout: 45
  websocket_origins: ["https://a.example", "https://b.example"]
  multi_login:
    policy: allow_all
  security:
    max_message_size: "1MiB"
    enable_rate_limit: false
"#;

const TOML: &str = r#"
name = "formats"

[http]
port = 8181

[wsc]
node_port = 9001
heartbeat_interval = "10s"
client_timeout = 45
websocket_origins = ["https://a.example", "https://b.example"]

[wsc.multi_login]
policy = "allow_all"

[wsc.security]
max_message_size = "1MiB"
enable_rate_limit = false
"#;

const JSON: &str = r#"{
  "name": "formats",
  "http": { "port": 8181 },
  "wsc": {
    "node_port": 9001,
    "heartbeat_interval": "10s",
    "client_timeout": 45,
    "websocket_origins": ["https://a.example", "https://b.example"],
    "multi_login": { "policy": "allow_all" },
    "security": { "max_message_size": "1MiB", "enable_rate_limit": false }
  }
}"#;

fn load(name: &str, contents: &str) -> GatewayConfig {
    let loaded = load_with_env(name, contents, &[]).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    loaded.config
}

fn assert_values(name: &str, c: &GatewayConfig) {
    assert_eq!(c.name, "formats", "{name}");
    assert_eq!(c.http.port, 8181, "{name}");
    assert_eq!(c.wsc.node_port, 9001, "{name}");
    assert_eq!(c.wsc.heartbeat_interval, Duration::from_secs(10), "{name}");
    assert_eq!(c.wsc.client_timeout, Duration::from_secs(45), "{name}");
    assert_eq!(
        c.wsc.websocket_origins,
        ["https://a.example", "https://b.example"],
        "{name}"
    );
    assert_eq!(c.wsc.multi_login.policy, LoginPolicy::AllowAll, "{name}");
    assert_eq!(c.wsc.security.max_message_size, 1024 * 1024, "{name}");
    assert!(!c.wsc.security.enable_rate_limit, "{name}");
    // Untouched keys keep their defaults.
    assert_eq!(c.grpc.port, 9090, "{name}");
    assert_eq!(c.wsc.message_buffer_size, 256, "{name}");
}

#[test]
fn yaml_file_loads() {
    assert_values("yaml", &load("gateway.yaml", YAML));
}

#[test]
fn yml_extension_loads_as_yaml() {
    assert_values("yml", &load("gateway.yml", YAML));
}

#[test]
fn toml_file_loads() {
    assert_values("toml", &load("gateway.toml", TOML));
}

#[test]
fn json_file_loads() {
    assert_values("json", &load("gateway.json", JSON));
}

#[test]
fn the_three_formats_give_the_same_configuration() {
    let yaml = load("gateway.yaml", YAML);
    assert_eq!(load("gateway.toml", TOML), yaml);
    assert_eq!(load("gateway.json", JSON), yaml);
}

#[test]
fn the_extension_decides_the_format() {
    // TOML text in a .json file is not read as TOML.
    match load_with_env("gateway.json", TOML, &[]) {
        Err(ConfigError::Load(_)) => {}
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn missing_file_is_a_load_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.yaml");
    match Loader::new()
        .file(&path)
        .environment(Default::default())
        .load()
    {
        Err(e @ ConfigError::Load(_)) => {
            assert!(e.to_string().contains("absent"), "{e}");
        }
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn unsupported_extension_is_a_load_error() {
    let file = temp_config("gateway.conf", "wsc:\n  node_port: 1\n");
    match Loader::new()
        .file(&file.path)
        .environment(Default::default())
        .load()
    {
        Err(ConfigError::Load(_)) => {}
        other => panic!("expected a load error, got {other:?}"),
    }
}

#[test]
fn syntax_errors_are_load_errors() {
    for (name, text) in [
        ("gateway.yaml", "wsc: [unclosed\n"),
        ("gateway.toml", "[wsc\nnode_port = 1\n"),
        ("gateway.json", "{\"wsc\": {\"node_port\": 1,}"),
    ] {
        match load_with_env(name, text, &[]) {
            Err(ConfigError::Load(_)) => {}
            other => panic!("{name}: expected a load error, got {other:?}"),
        }
    }
}

#[test]
fn file_path_is_reported_by_the_loader() {
    let file = temp_config("gateway.yaml", "");
    let loader = Loader::new().file(&file.path);
    assert_eq!(loader.file_path(), Some(file.path.as_path()));
    assert_eq!(Loader::new().file_path(), None);
}
