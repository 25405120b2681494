//! Unknown keys are warnings, not errors: each at its full key path, with a did-you-mean
//! suggestion when a known key is close; the configuration still loads.

mod support;

use support::{at, keys, load_with_env, load_yaml_ok};
use wsc_config::GatewayConfig;

#[test]
fn misspelled_key_suggests_the_known_one() {
    let loaded = load_yaml_ok("wsc:\n  node_prot: 1\n");
    assert_eq!(keys(&loaded.warnings), ["wsc.node_prot"]);
    let message = &loaded.warnings[0].message;
    assert!(message.contains("unknown key"), "{message}");
    assert!(
        message.contains("did you mean `wsc.node_port`"),
        "{message}"
    );
    // The misspelled key did not set anything.
    assert_eq!(loaded.config, GatewayConfig::default());
}

#[test]
fn totally_unknown_top_level_key_has_no_suggestion() {
    let loaded = load_yaml_ok("completely_unrelated_setting: 1\nwsc:\n  node_port: 8099\n");
    assert_eq!(keys(&loaded.warnings), ["completely_unrelated_setting"]);
    let message = &loaded.warnings[0].message;
    assert!(message.contains("unknown key"), "{message}");
    assert!(!message.contains("did you mean"), "{message}");
    // The rest of the file still applies.
    assert_eq!(loaded.config.wsc.node_port, 8099);
}

#[test]
fn suggestions_at_every_depth() {
    let loaded = load_yaml_ok(
        r#"
wcs:
  enabled: true
wsc:
  heartbeat_intervall: 10
  security:
    max_mesage_size: 1
    token:
      secrte: x
  multi_login:
    polcy: kick_new
"#,
    );
    let w = &loaded.warnings;
    assert!(at(w, "wcs").message.contains("`wsc`"), "{w:#?}");
    assert!(
        at(w, "wsc.heartbeat_intervall")
            .message
            .contains("`wsc.heartbeat_interval`")
    );
    assert!(
        at(w, "wsc.security.max_mesage_size")
            .message
            .contains("`wsc.security.max_message_size`")
    );
    assert!(
        at(w, "wsc.security.token.secrte")
            .message
            .contains("`wsc.security.token.secret`")
    );
    assert!(
        at(w, "wsc.multi_login.polcy")
            .message
            .contains("`wsc.multi_login.policy`")
    );
    assert_eq!(w.len(), 5, "{w:#?}");
    assert_eq!(loaded.config, GatewayConfig::default());
}

#[test]
fn unknown_section_is_one_warning_not_one_per_child() {
    let loaded = load_yaml_ok("mysql:\n  host: db\n  port: 3306\n  dbname: x\n");
    assert_eq!(keys(&loaded.warnings), ["mysql"]);
}

#[test]
fn unknown_keys_in_toml_and_json_and_from_the_environment() {
    let loaded = load_with_env(
        "gateway.toml",
        "[wsc]\nnode_prot = 1\n",
        &[("GATEWAY__HTTP__PROT", "1")],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut found = keys(&loaded.warnings);
    found.sort_unstable();
    assert_eq!(found, ["http.prot", "wsc.node_prot"]);
    assert!(
        at(&loaded.warnings, "http.prot")
            .message
            .contains("`http.port`")
    );

    let loaded = load_with_env("gateway.json", r#"{"wsc": {"node_prot": 1}}"#, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(keys(&loaded.warnings), ["wsc.node_prot"]);
}

#[test]
fn a_known_key_is_never_a_warning() {
    // Every leaf key of the schema, written back as a file, gives no warning.
    let json = serde_json::to_string(&GatewayConfig::default()).unwrap();
    let loaded = load_with_env("gateway.json", &json, &[]).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}
