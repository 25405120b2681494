//! Keeps `docs/configuration.md` complete and truthful: every key of the schema has a row in
//! the key reference with its environment variable and its default, the hot-reload column
//! agrees with `wsc_config::is_hot`, and the complete example loads to exactly the defaults.
//!
//! A key row of the reference is one line with six cells:
//! `` | `key` | type | default | `ENV` | yes/no | meaning | ``.

use std::collections::{BTreeMap, HashMap};

use wsc_config::{ENV_PREFIX, EXAMPLE_YAML, GatewayConfig, Loader, is_hot};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/configuration.md"
));

/// One row of a key table.
struct Row {
    line: usize,
    text: String,
    cells: Vec<String>,
}

impl Row {
    /// The key, without its backticks.
    fn key(&self) -> &str {
        self.cells[0].trim_matches('`')
    }

    fn default(&self) -> &str {
        &self.cells[2]
    }

    fn env(&self) -> &str {
        &self.cells[3]
    }

    fn hot(&self) -> &str {
        &self.cells[4]
    }
}

/// Every table line whose first cell is a backticked key and that has the six columns of
/// the key reference (other tables, such as the renamed seed keys, have fewer).
fn key_rows() -> Vec<Row> {
    DOC.lines()
        .enumerate()
        .filter(|(_, line)| line.trim_start().starts_with("| `"))
        .map(|(i, line)| {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            Row {
                line: i + 1,
                text: line.to_owned(),
                cells: inner.split('|').map(|c| c.trim().to_owned()).collect(),
            }
        })
        .filter(|row| row.cells.len() == 6)
        .collect()
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}__{}", key.to_uppercase().replace('.', "__"))
}

fn fail_with(problems: &[String], what: &str) {
    assert!(
        problems.is_empty(),
        "docs/configuration.md: {} {what}:\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn every_key_is_documented_with_its_environment_variable() {
    let keys = GatewayConfig::default().flatten();
    let rows = key_rows();
    let mut problems = Vec::new();
    for key in keys.keys() {
        if !DOC.contains(&format!("`{key}`")) {
            problems.push(format!("`{key}` is not documented"));
            continue;
        }
        let env = env_name(key);
        match rows.iter().find(|row| row.key() == key) {
            None => problems.push(format!("`{key}` has no row in the key reference")),
            Some(row) if !row.text.contains(&env) => problems.push(format!(
                "line {}: the row of `{key}` does not name its environment variable {env}",
                row.line
            )),
            Some(_) => {}
        }
    }
    fail_with(&problems, "key(s) missing");
}

#[test]
fn key_rows_are_real_keys_with_their_defaults() {
    let keys = GatewayConfig::default().flatten();
    let mut seen = BTreeMap::new();
    let mut problems = Vec::new();
    for row in key_rows() {
        let key = row.key();
        if let Some(first) = seen.insert(key.to_owned(), row.line) {
            problems.push(format!(
                "line {}: `{key}` already has a row (line {first})",
                row.line
            ));
        }
        let Some(value) = keys.get(key) else {
            problems.push(format!(
                "line {}: `{key}` is not a key of GatewayConfig",
                row.line
            ));
            continue;
        };
        if row.env() != format!("`{}`", env_name(key)) {
            problems.push(format!(
                "line {}: the environment column of `{key}` should be `{}`, found {}",
                row.line,
                env_name(key),
                row.env()
            ));
        }
        // The version defaults to the package version, which changes with every release.
        if key == "version" {
            continue;
        }
        let expected = format!("`{value}`");
        if !row.default().contains(&expected) {
            problems.push(format!(
                "line {}: the default of `{key}` is {expected}, the row says {}",
                row.line,
                row.default()
            ));
        }
    }
    fail_with(&problems, "wrong row(s)");
}

#[test]
fn hot_column_agrees_with_is_hot() {
    let rows = key_rows();
    assert!(
        !rows.is_empty(),
        "no key rows found in docs/configuration.md"
    );
    let mut problems = Vec::new();
    for row in &rows {
        let key = row.key();
        let documented = match row.hot() {
            "yes" => true,
            "no" => false,
            other => {
                problems.push(format!(
                    "line {}: the hot column of `{key}` must be yes or no, found `{other}`",
                    row.line
                ));
                continue;
            }
        };
        if documented != is_hot(key) {
            problems.push(format!(
                "line {}: `{key}` is documented as hot = {}, but is_hot says {}",
                row.line,
                row.hot(),
                if is_hot(key) { "yes" } else { "no" }
            ));
        }
    }
    fail_with(&problems, "hot-reload mismatch(es)");
}

/// The first fenced YAML block of the doc: the complete example of section 2.
fn example_yaml() -> String {
    let mut lines = DOC.lines().skip_while(|line| line.trim() != "```yaml");
    assert!(
        lines.next().is_some(),
        "no ```yaml block in docs/configuration.md"
    );
    lines
        .take_while(|line| line.trim() != "```")
        .map(|line| format!("{line}\n"))
        .collect()
}

#[test]
fn complete_example_loads_to_the_defaults() {
    let path = std::env::temp_dir().join(format!(
        "wsc-config-docs-example-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, EXAMPLE_YAML).unwrap();
    let loaded = Loader::new().file(&path).environment(HashMap::new()).load();
    let _ = std::fs::remove_file(&path);
    let loaded = loaded.unwrap_or_else(|e| panic!("the example does not load: {e}"));
    assert!(
        loaded.warnings.is_empty(),
        "the example has warnings: {:?}",
        loaded.warnings
    );
    let (mut example, mut defaults) = (loaded.config.flatten(), GatewayConfig::default().flatten());
    // The version defaults to the package version, which changes with every release.
    example.remove("version");
    defaults.remove("version");
    let differences: Vec<String> = defaults
        .iter()
        .filter(|(key, value)| example.get(*key) != Some(value))
        .map(|(key, value)| {
            format!(
                "`{key}`: default {value}, example {}",
                example
                    .get(key)
                    .map(ToString::to_string)
                    .unwrap_or_default()
            )
        })
        .collect();
    fail_with(&differences, "example value(s) differ from the defaults");
}

#[test]
fn the_doc_shows_the_example_the_binary_prints() {
    assert_eq!(
        example_yaml(),
        EXAMPLE_YAML,
        "section 2 of docs/configuration.md must be crates/wsc-config/src/example.yaml"
    );
}

/// The dotted key of every `key: value` line of a block-style YAML file indented by two
/// spaces (comments and blank lines skipped).
fn yaml_keys(text: &str) -> Vec<String> {
    let mut path: Vec<String> = Vec::new();
    let mut keys = Vec::new();
    for line in text.lines() {
        let content = line.split(" #").next().unwrap_or_default().trim_end();
        if content.trim().is_empty() || content.trim_start().starts_with('#') {
            continue;
        }
        let depth = (content.len() - content.trim_start().len()) / 2;
        let Some((key, value)) = content.trim().split_once(':') else {
            continue;
        };
        path.truncate(depth);
        path.push(key.to_owned());
        if !value.trim().is_empty() {
            keys.push(path.join("."));
        }
    }
    keys
}

#[test]
fn the_example_names_every_key() {
    let named: std::collections::BTreeSet<String> = yaml_keys(EXAMPLE_YAML).into_iter().collect();
    let missing: Vec<String> = GatewayConfig::default()
        .flatten()
        .into_keys()
        .filter(|key| !named.contains(key))
        .map(|key| format!("`{key}` is not in the example"))
        .collect();
    fail_with(&missing, "key(s) missing from the example");
}
