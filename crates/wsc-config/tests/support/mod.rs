//! Shared helpers for the `wsc-config` integration tests: config files in temporary
//! directories, an injected environment (never the process environment) and accessors for
//! problems and warnings.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use tempfile::TempDir;
use wsc_config::{ConfigError, Loaded, Loader, Problem};

/// A config file in its own temporary directory (removed on drop).
pub(crate) struct TempConfig {
    /// Keeps the directory alive.
    pub(crate) dir: TempDir,
    /// The file.
    pub(crate) path: PathBuf,
}

/// Writes `contents` to `<tempdir>/<name>`.
pub(crate) fn temp_config(name: &str, contents: &str) -> TempConfig {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join(name);
    std::fs::write(&path, contents).expect("write config file");
    TempConfig { dir, path }
}

/// An environment map from pairs.
pub(crate) fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Loads `contents` written as `name` (the extension picks the format), with `vars` as the
/// whole environment.
pub(crate) fn load_with_env(
    name: &str,
    contents: &str,
    vars: &[(&str, &str)],
) -> Result<Loaded, ConfigError> {
    let file = temp_config(name, contents);
    Loader::new().file(&file.path).environment(env(vars)).load()
}

/// Loads a YAML document with an empty environment.
pub(crate) fn load_yaml(contents: &str) -> Result<Loaded, ConfigError> {
    load_with_env("gateway.yaml", contents, &[])
}

/// Loads a YAML document that must be valid.
pub(crate) fn load_yaml_ok(contents: &str) -> Loaded {
    match load_yaml(contents) {
        Ok(loaded) => loaded,
        Err(e) => panic!("expected a valid configuration, got: {e}\n---\n{contents}"),
    }
}

/// Loads with no file and only `vars` as the environment.
pub(crate) fn load_env(vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    Loader::new().environment(env(vars)).load()
}

/// The problems of a result that must be `ConfigError::Invalid`.
pub(crate) fn problems(result: Result<Loaded, ConfigError>) -> Vec<Problem> {
    match result {
        Ok(loaded) => panic!("expected ConfigError::Invalid, got {:#?}", loaded.config),
        Err(ConfigError::Invalid(problems)) => problems,
        Err(other) => panic!("expected ConfigError::Invalid, got {other:?}"),
    }
}

/// The key paths of some problems or warnings, in order.
pub(crate) fn keys(problems: &[Problem]) -> Vec<&str> {
    problems.iter().map(|p| p.key.as_str()).collect()
}

/// The one problem or warning at `key` (panics if there are none or several).
pub(crate) fn at<'a>(problems: &'a [Problem], key: &str) -> &'a Problem {
    let found: Vec<&Problem> = problems.iter().filter(|p| p.key == key).collect();
    assert_eq!(
        found.len(),
        1,
        "expected exactly one entry at `{key}`, got {problems:#?}"
    );
    found[0]
}
