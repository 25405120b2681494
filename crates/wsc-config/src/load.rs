//! Loading (file + environment), seed compatibility, unknown-key warnings and the redacted
//! view. The value rules themselves are in `validate.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::schema::GatewayConfig;
pub use crate::validate::validate;

/// The environment prefix: `GATEWAY__WSC__NODE_PORT` sets `wsc.node_port`.
pub const ENV_PREFIX: &str = "GATEWAY";

/// One finding: where, what is wrong, and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, e.g. `wsc.node_port`.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
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
    #[error("invalid configuration:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loaded configuration and what looked wrong but did not stop it (unknown keys, keys of
/// the Go gateway that have no effect here).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The effective configuration.
    pub config: GatewayConfig,
    /// Warnings, each with its key path.
    pub warnings: Vec<Problem>,
}

/// Builds a [`GatewayConfig`] from an optional file and the environment.
#[derive(Debug, Clone, Default)]
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

    /// The file this loader reads, if any.
    pub fn file_path(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Uses this map instead of the process environment (for tests).
    pub fn environment(mut self, env: HashMap<String, String>) -> Self {
        self.env = Some(env);
        self
    }

    /// Loads, checks and validates. Every problem is reported at once.
    pub fn load(&self) -> Result<Loaded, ConfigError> {
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
            .with_list_parse_key("wsc.security.allowed_ips")
            .with_list_parse_key("wsc.security.blocked_ips")
            .with_list_parse_key("api.keys")
            .with_list_parse_key("wsc.redis.cluster_urls")
            .with_list_parse_key("wsc.relay.user_targets")
            .with_list_parse_key("wsc.tickets.agent_types")
            .with_list_parse_key("wsc.observers.user_types")
            .source(self.env.clone());
        let mut raw: Value = builder.add_source(env).build()?.try_deserialize()?;
        let mut warnings = Vec::new();
        unwrap_gateway_root(&mut raw, &mut warnings);
        translate_seed_keys(&mut raw, &mut warnings);
        let known = serde_json::to_value(GatewayConfig::default()).unwrap_or_default();
        restore_strings(&mut raw, &known);
        unknown_keys(&raw, &known, "", &mut warnings);
        let (config, mut problems) = deserialize_all(raw, &known);
        problems.extend(validate(&config));
        if problems.is_empty() {
            Ok(Loaded { config, warnings })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

/// Two of the seed's examples wrap everything in `gateway:`; read those as the root.
fn unwrap_gateway_root(raw: &mut Value, warnings: &mut Vec<Problem>) {
    let Some(root) = raw.as_object_mut() else {
        return;
    };
    if let Some(Value::Object(inner)) = root.remove("gateway") {
        warnings.push(Problem::new(
            "gateway",
            "keys under `gateway:` are read from the root of the file; move them up a level",
        ));
        for (key, value) in inner {
            match root.get_mut(&key) {
                // The root already has this section (from the environment): merge, keeping
                // the environment's values.
                Some(existing) => merge_missing(existing, value),
                None => {
                    root.insert(key, value);
                }
            }
        }
    }
}

/// Copies into `target` every key of `source` it does not have, recursively.
fn merge_missing(target: &mut Value, source: Value) {
    if let (Some(target), Value::Object(source)) = (target.as_object_mut(), source) {
        for (key, value) in source {
            match target.get_mut(&key) {
                Some(existing) => merge_missing(existing, value),
                None => {
                    target.insert(key, value);
                }
            }
        }
    }
}

/// Environment values that look like numbers or booleans are parsed as such; where the
/// schema wants a string (a node id `42`, an API key `12345`), read them back as text.
fn restore_strings(raw: &mut Value, defaults: &Value) {
    match (raw, defaults) {
        (Value::Object(raw), Value::Object(defaults)) => {
            for (key, value) in raw.iter_mut() {
                if let Some(default) = defaults.get(key) {
                    restore_strings(value, default);
                }
            }
        }
        (Value::Array(items), Value::Array(_)) => {
            for item in items {
                if item.is_number() || item.is_boolean() {
                    *item = Value::String(item.to_string());
                }
            }
        }
        (value @ (Value::Number(_) | Value::Bool(_)), Value::String(_)) => {
            *value = Value::String(value.to_string());
        }
        _ => {}
    }
}

/// Keys of the go-rpc-gateway seed that this gateway reads under another name.
const RENAMED: &[(&str, &str)] = &[
    ("wsc.sse_heartbeat", "wsc.sse.heartbeat"),
    ("grpc.server.host", "grpc.host"),
    ("grpc.server.port", "grpc.port"),
    ("http_server.host", "http.host"),
    ("http_server.port", "http.port"),
];

/// Keys of the go-rpc-gateway seed that are accepted but have no effect here.
const NO_EFFECT: &[&str] = &[
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

fn translate_seed_keys(raw: &mut Value, warnings: &mut Vec<Problem>) {
    for (old, new) in RENAMED {
        if let Some(value) = take(raw, old) {
            warnings.push(Problem::new(
                *old,
                format!("read as `{new}` (the new name)"),
            ));
            if get(raw, new).is_none() {
                put(raw, new, value);
            }
        }
    }
    // The seed writes Redis as host/port/db; this gateway takes one URL.
    let parts: Vec<Option<Value>> = ["host", "port", "db", "password"]
        .iter()
        .map(|k| take(raw, &format!("wsc.redis.{k}")))
        .collect();
    if parts.iter().any(Option::is_some) {
        let text = |v: &Option<Value>, default: &str| match v {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => default.to_owned(),
        };
        let password = match text(&parts[3], "") {
            p if p.is_empty() => String::new(),
            p => format!(":{p}@"),
        };
        let url = format!(
            "redis://{password}{}:{}/{}",
            text(&parts[0], "127.0.0.1"),
            text(&parts[1], "6379"),
            text(&parts[2], "0")
        );
        warnings.push(Problem::new(
            "wsc.redis.host",
            format!(
                "host/port/db/password are read as `wsc.redis.url` = {}",
                mask_url(&url)
            ),
        ));
        if get(raw, "wsc.redis.url").is_none() {
            put(raw, "wsc.redis.url", Value::String(url));
        }
    }
    for key in NO_EFFECT {
        if take(raw, key).is_some() {
            warnings.push(Problem::new(
                *key,
                "a go-rpc-gateway key this gateway does not implement; it has no effect",
            ));
        }
    }
}

fn get<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, k| v.get(k))
}

/// Removes the value at `path`, and its parent when that leaves the parent empty (so a
/// moved seed key leaves no empty section behind to be reported as unknown).
fn take(value: &mut Value, path: &str) -> Option<Value> {
    let (parent, last) = match path.rsplit_once('.') {
        Some((parent, last)) => (parent, last),
        None => ("", path),
    };
    let mut node = &mut *value;
    for key in parent.split('.').filter(|k| !k.is_empty()) {
        node = node.get_mut(key)?;
    }
    let taken = node.as_object_mut()?.remove(last);
    if !parent.is_empty() && node.as_object().is_some_and(Map::is_empty) {
        take(value, parent);
    }
    taken
}

fn put(value: &mut Value, path: &str, new: Value) {
    let mut node = value;
    let keys: Vec<&str> = path.split('.').collect();
    for key in &keys[..keys.len() - 1] {
        if !node.is_object() {
            *node = Value::Object(Map::new());
        }
        node = node
            .as_object_mut()
            .map(|m| {
                m.entry(key.to_string())
                    .or_insert(Value::Object(Map::new()))
            })
            .expect("object");
    }
    if let Some(map) = node.as_object_mut() {
        map.insert(keys[keys.len() - 1].to_owned(), new);
    }
}

/// Warns about every key the schema does not have, suggesting the closest known one.
fn unknown_keys(raw: &Value, known: &Value, prefix: &str, warnings: &mut Vec<Problem>) {
    let (Some(raw), Some(known)) = (raw.as_object(), known.as_object()) else {
        return;
    };
    for (key, value) in raw {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match known.get(key) {
            Some(expected) => unknown_keys(value, expected, &path, warnings),
            None => {
                let suggestion = known
                    .keys()
                    .map(|k| (edit_distance(k, key), k))
                    .filter(|(d, k)| *d <= 3.max(k.len() / 3))
                    .min()
                    .map(|(_, k)| format!("; did you mean `{}`?", join(prefix, k)))
                    .unwrap_or_default();
                warnings.push(Problem::new(
                    path,
                    format!("unknown key, ignored{suggestion}"),
                ));
            }
        }
    }
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_owned()
    } else {
        format!("{prefix}.{key}")
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = (previous + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(current + 1);
            previous = current;
        }
    }
    row[b.len()]
}

/// Deserializes, collecting every type error: a bad value is reported with its path, then
/// replaced by its default so the rest can still be checked.
fn deserialize_all(mut raw: Value, defaults: &Value) -> (GatewayConfig, Vec<Problem>) {
    let mut problems = Vec::new();
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, GatewayConfig>(raw.clone()) {
            Ok(config) => return (config, problems),
            Err(e) => {
                // `wsc.websocket_origins[1]`: report the element, reset the whole field.
                let path = e.path().to_string();
                let field = path.split('[').next().unwrap_or_default().to_owned();
                let message = if is_secret(&field) {
                    "has the wrong type (the value is not shown because it is a secret)".to_owned()
                } else {
                    let bad = get(&raw, &field).map(Value::to_string).unwrap_or_default();
                    format!("{} (got {bad})", e.inner())
                };
                problems.push(Problem::new(path, message));
                match get(defaults, &field) {
                    Some(default) if get(&raw, &field).is_some() => {
                        put(&mut raw, &field, default.clone())
                    }
                    _ => break,
                }
            }
        }
    }
    (GatewayConfig::default(), problems)
}

/// Keys whose values never appear in messages or printed configurations.
fn is_secret(key: &str) -> bool {
    matches!(
        key,
        "api.keys" | "wsc.security.token.secret" | "wsc.redis.url" | "wsc.redis.cluster_urls"
    )
}

/// Masks the password of a URL (`redis://:secret@host` -> `redis://:***@host`).
pub(crate) fn mask_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

const MASK: &str = "***";

impl GatewayConfig {
    /// The configuration as JSON with every secret masked (API keys, token secret, the
    /// Redis password), for printing and logs.
    pub fn redacted(&self) -> Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(Value::Array(keys)) = value.pointer_mut("/api/keys") {
            for key in keys.iter_mut() {
                *key = Value::from(MASK);
            }
        }
        if let Some(secret) = value.pointer_mut("/wsc/security/token/secret")
            && secret.as_str().is_some_and(|s| !s.is_empty())
        {
            *secret = Value::from(MASK);
        }
        if let Some(url) = value.pointer_mut("/wsc/redis/url") {
            *url = Value::from(mask_url(url.as_str().unwrap_or_default()));
        }
        if let Some(Value::Array(urls)) = value.pointer_mut("/wsc/redis/cluster_urls") {
            for url in urls.iter_mut() {
                *url = Value::from(mask_url(url.as_str().unwrap_or_default()));
            }
        }
        value
    }

    /// Every leaf key as a dotted path with its value (used for documentation checks and to
    /// tell which keys changed on reload).
    pub fn flatten(&self) -> BTreeMap<String, Value> {
        let mut out = BTreeMap::new();
        flatten_into(
            &serde_json::to_value(self).unwrap_or_default(),
            "",
            &mut out,
        );
        out
    }
}

fn flatten_into(value: &Value, prefix: &str, out: &mut BTreeMap<String, Value>) {
    match value.as_object() {
        Some(map) => {
            for (key, value) in map {
                flatten_into(value, &join(prefix, key), out);
            }
        }
        None => {
            out.insert(prefix.to_owned(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_masking() {
        assert_eq!(edit_distance("node_port", "node_prot"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(mask_url("redis://:pw@h:6379/0"), "redis://:***@h:6379/0");
        assert_eq!(mask_url("redis://u:pw@h/0"), "redis://u:***@h/0");
        assert_eq!(mask_url("redis://h:6379/0"), "redis://h:6379/0");
    }
}
