//! Loading (file + environment) and validation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::schema::GatewayConfig;

/// The environment prefix: `GATEWAY__WSC__NODE_PORT` sets `wsc.node_port`.
pub const ENV_PREFIX: &str = "GATEWAY";

/// One problem found by validation: where, what is wrong, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `wsc.node_port`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file or environment could not be read or parsed.
    #[error("cannot load configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// The values parsed but are not acceptable; every problem is listed.
    #[error("invalid configuration:\n{}", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

/// Builds a [`GatewayConfig`] from an optional file and the environment.
#[derive(Debug, Default)]
pub struct Loader {
    file: Option<PathBuf>,
    env: Option<HashMap<String, String>>,
}

impl Loader {
    /// A loader with no file that reads the process environment.
    pub fn new() -> Self {
        Loader::default()
    }

    /// Reads this file (YAML, TOML or JSON by extension).
    pub fn file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_owned());
        self
    }

    /// Uses this map instead of the process environment (for tests).
    pub fn environment(mut self, env: HashMap<String, String>) -> Self {
        self.env = Some(env);
        self
    }

    /// Loads and validates.
    pub fn load(self) -> Result<GatewayConfig, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = &self.file {
            builder = builder.add_source(config::File::from(path.as_path()).required(true));
        }
        let env = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("wsc.websocket_origins")
            .with_list_parse_key("wsc.security.allowed_user_types")
            .source(self.env);
        let config: GatewayConfig = builder.add_source(env).build()?.try_deserialize()?;
        let problems = validate(&config);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Every problem of a configuration, at once.
pub fn validate(config: &GatewayConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, key: &str, message: String| {
        if !ok {
            problems.push(Problem {
                key: key.to_owned(),
                message,
            });
        }
    };
    let wsc = &config.wsc;
    check(
        wsc.path.starts_with('/'),
        "wsc.path",
        format!("`{}` must start with `/`", wsc.path),
    );
    check(
        !wsc.heartbeat_interval.is_zero(),
        "wsc.heartbeat_interval",
        "must be greater than 0".to_owned(),
    );
    check(
        wsc.client_timeout > wsc.heartbeat_interval,
        "wsc.client_timeout",
        format!(
            "{:?} must be longer than wsc.heartbeat_interval ({:?})",
            wsc.client_timeout, wsc.heartbeat_interval
        ),
    );
    check(
        wsc.message_buffer_size > 0,
        "wsc.message_buffer_size",
        "must be at least 1".to_owned(),
    );
    check(
        (128..=64 * 1024 * 1024).contains(&wsc.security.max_message_size),
        "wsc.security.max_message_size",
        format!(
            "{} must be between 128 bytes and 64 MiB",
            wsc.security.max_message_size
        ),
    );
    check(
        wsc.node_ip.parse::<std::net::IpAddr>().is_ok(),
        "wsc.node_ip",
        format!("`{}` is not an IP address", wsc.node_ip),
    );
    check(
        config.http.host.parse::<std::net::IpAddr>().is_ok(),
        "http.host",
        format!("`{}` is not an IP address", config.http.host),
    );
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn empty_environment_gives_defaults() {
        let config = Loader::new().environment(HashMap::new()).load().unwrap();
        assert_eq!(config, GatewayConfig::default());
        assert_eq!(config.wsc.node_port, 8081);
        assert_eq!(config.http.port, 8080);
    }

    #[test]
    fn environment_overrides_nested_snake_case_keys() {
        let config = Loader::new()
            .environment(env(&[
                ("GATEWAY__WSC__NODE_PORT", "9000"),
                ("GATEWAY__WSC__NODE_IP", "127.0.0.1"),
                ("GATEWAY__HTTP__PORT", "9001"),
                ("GATEWAY__HTTP__HOST", "127.0.0.1"),
                ("GATEWAY__WSC__HEARTBEAT_INTERVAL", "5s"),
                ("GATEWAY__WSC__SECURITY__ENABLE_RATE_LIMIT", "false"),
                (
                    "GATEWAY__WSC__WEBSOCKET_ORIGINS",
                    "https://a.example,https://b.example",
                ),
            ]))
            .load()
            .unwrap();
        assert_eq!(config.wsc.node_port, 9000);
        assert_eq!(config.wsc.node_ip, "127.0.0.1");
        assert_eq!(config.http.port, 9001);
        assert_eq!(config.wsc.heartbeat_interval, Duration::from_secs(5));
        assert!(!config.wsc.security.enable_rate_limit);
        assert_eq!(config.wsc.websocket_origins.len(), 2);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Loader::new()
            .environment(env(&[
                ("GATEWAY__WSC__PATH", "ws"),
                ("GATEWAY__WSC__CLIENT_TIMEOUT", "1"),
                ("GATEWAY__WSC__NODE_IP", "not-an-ip"),
            ]))
            .load()
            .unwrap_err();
        let ConfigError::Invalid(problems) = err else {
            panic!("expected validation errors, got {err}")
        };
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["wsc.path", "wsc.client_timeout", "wsc.node_ip"]);
    }
}
