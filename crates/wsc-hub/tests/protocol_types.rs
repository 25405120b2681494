//! The known message types are exactly the table of docs/protocol.md (section 3): every name
//! the table lists parses to a known type and back to the same name, and the hub knows no name
//! the table leaves out.

use std::collections::BTreeSet;

use wsc_hub::MessageType;

const PROTOCOL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/protocol.md"
));

/// The names of the `| category | names |` table (★ marks stripped).
fn documented_names() -> BTreeSet<String> {
    let mut rows = PROTOCOL
        .lines()
        .skip_while(|line| line.trim() != "| category | names |")
        .skip(2);
    let mut names = BTreeSet::new();
    for row in rows.by_ref().take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = row.split('|').collect();
        for name in cells[2].split(',') {
            let name = name.trim().trim_end_matches('★').trim_matches('`');
            assert!(!name.is_empty(), "an empty name in `{row}`");
            assert!(names.insert(name.to_owned()), "`{name}` is listed twice");
        }
    }
    names
}

#[test]
fn the_known_types_are_the_documented_table() {
    let documented = documented_names();
    assert!(
        documented.len() > 100,
        "the table was not found: {documented:?}"
    );
    let known: BTreeSet<String> = MessageType::KNOWN_NAMES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    let undocumented: Vec<_> = known.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&known).collect();
    assert!(
        undocumented.is_empty(),
        "known but not in protocol.md: {undocumented:?}"
    );
    assert!(
        unknown.is_empty(),
        "in protocol.md but not known: {unknown:?}"
    );
    for name in &documented {
        let parsed = MessageType::parse(name);
        assert!(!matches!(parsed, MessageType::Other(_)), "{name}");
        assert_eq!(parsed.as_str(), name);
        let json = serde_json::to_string(&parsed).unwrap();
        assert_eq!(json, format!("\"{name}\""));
    }
    // Any other name passes through unchanged.
    let custom = MessageType::parse("my_app_event");
    assert!(matches!(custom, MessageType::Other(_)));
    assert_eq!(custom.as_str(), "my_app_event");
}
