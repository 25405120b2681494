//! docs/promises.md maps every documented promise to the tests that prove it. This keeps the
//! map true: every test it names exists, in the file it names, so a renamed or deleted test
//! shows up here instead of leaving a promise silently unproven.

use std::path::{Path, PathBuf};

/// The short folder names of docs/promises.md.
const FOLDERS: [(&str, &str); 9] = [
    ("gs/src/", "crates/gateway-server/src/"),
    ("gs/", "crates/gateway-server/tests/"),
    ("hub/src/", "crates/wsc-hub/src/"),
    ("hub/", "crates/wsc-hub/tests/"),
    ("cfg/", "crates/wsc-config/tests/"),
    ("gw/", "crates/gateway/tests/"),
    ("client/", "crates/wsc-client/tests/"),
    ("redis/", "crates/wsc-redis/tests/"),
    ("ex/", "examples/"),
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `` `folder/file.rs::test` `` of the page, resolved to (path, test name).
fn references(page: &str) -> Vec<(PathBuf, String, String)> {
    let mut found = Vec::new();
    for span in page.split('`').skip(1).step_by(2) {
        let Some((file, test)) = span.split_once(".rs::") else {
            continue;
        };
        let Some((short, long)) = FOLDERS.iter().find(|(short, _)| file.starts_with(short)) else {
            continue;
        };
        let path = root()
            .join(long)
            .join(format!("{}.rs", &file[short.len()..]));
        found.push((path, test.to_owned(), span.to_owned()));
    }
    found
}

#[test]
fn every_test_named_in_the_promises_page_exists() {
    let page = std::fs::read_to_string(root().join("docs/promises.md")).expect("docs/promises.md");
    // The shared cross-node scenarios: `cluster.rs` and its `cluster/` modules.
    let scenarios = ["cluster.rs", "cluster/desk.rs"]
        .map(|file| {
            std::fs::read_to_string(root().join("crates/wsc-testkit/src").join(file))
                .expect("the cross-node scenarios")
        })
        .concat();
    let references = references(&page);
    assert!(
        references.len() > 100,
        "only {} references",
        references.len()
    );
    let mut missing = Vec::new();
    for (path, test, span) in references {
        let Ok(text) = std::fs::read_to_string(&path) else {
            missing.push(format!("{span}: no file {}", path.display()));
            continue;
        };
        // A test is a `fn`, a name in the list a test-generating macro expands in that file,
        // or a shared scenario of `cross_node_scenarios!`.
        let listed = text
            .lines()
            .any(|line| line.trim().trim_end_matches(',') == test);
        let defined = text.contains(&format!("fn {test}("))
            || listed
            || (text.contains("cross_node_scenarios!")
                && scenarios.contains(&format!("pub async fn {test}(")));
        if !defined {
            missing.push(format!("{span}: no test `{test}` in {}", path.display()));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/promises.md names missing tests:\n{}",
        missing.join("\n")
    );
}
