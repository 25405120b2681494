//! The `gateway-server` command line: `checkconfig` (exit 0, or 2 with every problem on
//! stderr; `--check-config` is the old spelling the first tests use), `printconfig` (the
//! effective configuration as JSON, secrets masked), `genconfig`, `gentoken`/`checktoken`,
//! `--version`, and argument errors (exit 2).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// Writes `contents` to a file of its own under the target's temporary directory.
fn config_file(name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("config_cli-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// Runs the binary with `args` and no `GATEWAY*` variables from the test's environment
/// except `extra_env`.
fn run(args: &[&str], extra_env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gateway-server"));
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("GATEWAY") {
            command.env_remove(key);
        }
    }
    command.envs(extra_env.iter().copied());
    command.output().expect("run gateway-server")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn check_config_valid_file_exits_zero() {
    let path = config_file(
        "valid.yaml",
        "wsc:\n  node_port: 8082\n  heartbeat_interval: \"10s\"\n  client_timeout: 30\n",
    );
    let output = run(&["--check-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    assert!(stdout(&output).contains("valid"), "{}", stdout(&output));
}

#[test]
fn check_config_prints_warnings_but_exits_zero() {
    let path = config_file("warning.yaml", "wsc:\n  node_prot: 1\n");
    let output = run(&["--check-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let err = stderr(&output);
    assert!(err.contains("wsc.node_prot"), "{err}");
    assert!(err.contains("wsc.node_port"), "{err}");
}

#[test]
fn check_config_invalid_file_exits_two_listing_every_problem() {
    let path = config_file(
        "invalid.yaml",
        "wsc:\n  path: ws\n  node_ip: nope\n  message_buffer_size: 0\n",
    );
    let output = run(&["--check-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2), "stdout: {}", stdout(&output));
    let err = stderr(&output);
    for key in ["wsc.path", "wsc.node_ip", "wsc.message_buffer_size"] {
        assert!(err.contains(key), "{key} missing from stderr:\n{err}");
    }
    assert!(!stdout(&output).contains("valid"), "{}", stdout(&output));
}

#[test]
fn check_config_applies_the_environment() {
    let path = config_file("env.yaml", "wsc:\n  node_port: 8082\n");
    let output = run(
        &["--check-config", path.to_str().unwrap()],
        &[("GATEWAY__WSC__NODE_IP", "nope")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("wsc.node_ip"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_config_missing_file_exits_two() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("config_cli-{}-absent.yaml", std::process::id()));
    let output = run(&["--check-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(!stderr(&output).is_empty());
}

#[test]
fn check_config_without_a_file_argument_exits_two() {
    let output = run(&["--check-config"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("a value is required for '--check-config <FILE>'"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn print_config_masks_secrets() {
    let path = config_file(
        "secret.yaml",
        "api:\n  keys: [topsecret]\nwsc:\n  node_port: 8123\n  security:\n    token:\n      secret: tokensecret\n",
    );
    let output = run(&["--print-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let out = stdout(&output);
    let json: Value = serde_json::from_str(&out).expect("stdout is JSON");
    assert_eq!(json["api"]["keys"], serde_json::json!(["***"]));
    assert_eq!(json["wsc"]["security"]["token"]["secret"], "***");
    assert_eq!(json["wsc"]["node_port"], 8123);
    for secret in ["topsecret", "tokensecret"] {
        assert!(!out.contains(secret), "{secret} in stdout:\n{out}");
        assert!(!stderr(&output).contains(secret), "{secret} in stderr");
    }
}

#[test]
fn print_config_without_a_file_prints_defaults_and_environment() {
    let output = run(&["--print-config"], &[("GATEWAY__WSC__NODE_PORT", "9001")]);
    assert_eq!(output.status.code(), Some(0), "stderr: {}", stderr(&output));
    let json: Value = serde_json::from_str(&stdout(&output)).expect("stdout is JSON");
    assert_eq!(json["wsc"]["node_port"], 9001);
    assert_eq!(json["http"]["port"], 8080);
    assert_eq!(json["wsc"]["client_timeout"], "90s");
}

#[test]
fn print_config_invalid_file_exits_two() {
    let path = config_file("print-invalid.yaml", "wsc:\n  node_ip: nope\n");
    let output = run(&["--print-config", path.to_str().unwrap()], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("wsc.node_ip"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));
}

#[test]
fn unknown_flag_exits_two() {
    let output = run(&["--no-such-flag"], &[]);
    assert_eq!(output.status.code(), Some(2));
    let err = stderr(&output);
    assert!(err.contains("--no-such-flag"), "{err}");
    assert!(err.contains("Usage"), "{err}");
}

#[test]
fn help_exits_zero() {
    let output = run(&["--help"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    for command in [
        "run",
        "checkconfig",
        "printconfig",
        "genconfig",
        "gentoken",
        "checktoken",
        "--config",
        "--version",
    ] {
        assert!(
            out.contains(command),
            "{command} is not in the help:\n{out}"
        );
    }
}

#[test]
fn version_names_the_package_version_and_the_commit() {
    let output = run(&["--version"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let out = stdout(&output);
    assert!(
        out.starts_with(&format!(
            "gateway-server {} (commit ",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
}

#[test]
fn subcommands_and_the_config_flag_check_the_same_file() {
    let path = config_file(
        "bad-sub.yaml",
        "wsc:\n  node_port: 0\n  heartbeat_interval: 0s\n",
    );
    let file = path.to_str().unwrap();
    for args in [
        vec!["checkconfig", file],
        vec!["--config", file, "checkconfig"],
        vec![&*format!("--config={file}"), "checkconfig"],
    ] {
        let output = run(&args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).contains("wsc.heartbeat_interval"),
            "{args:?}"
        );
    }
    // The file may also come from GATEWAY_CONFIG.
    let output = run(&["checkconfig"], &[("GATEWAY_CONFIG", file)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("wsc.heartbeat_interval"));
}

#[test]
fn genconfig_prints_a_file_that_checks_and_loads_to_the_defaults() {
    let output = run(&["genconfig"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    assert!(text.starts_with("# gateway-server configuration"), "{text}");
    assert!(text.contains("max_handshakes_per_ip_per_second: 20"));
    let path = config_file("generated.yaml", &text);
    let checked = run(&["checkconfig", path.to_str().unwrap()], &[]);
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    assert!(
        stderr(&checked).is_empty(),
        "no warnings: {}",
        stderr(&checked)
    );
    let printed: Value =
        serde_json::from_str(&stdout(&run(&["printconfig", path.to_str().unwrap()], &[]))).unwrap();
    let defaults: Value = serde_json::from_str(&stdout(&run(&["printconfig"], &[]))).unwrap();
    assert_eq!(printed["wsc"], defaults["wsc"]);
    assert_eq!(printed["http"], defaults["http"]);
}

#[test]
fn gentoken_makes_a_token_that_checktoken_accepts_and_another_secret_refuses() {
    let secret = [("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "s3cret")];
    let output = run(
        &[
            "gentoken",
            "--user",
            "alice",
            "--ttl",
            "10m",
            "--user-type",
            "agent",
            "--claim",
            "gid=[\"g1\",\"g2\"]",
            "--claim",
            "aid=shop",
        ],
        &secret,
    );
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let token = stdout(&output).trim().to_owned();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");

    let checked = run(&["checktoken", &token], &secret);
    assert_eq!(checked.status.code(), Some(0), "{}", stderr(&checked));
    let identity: Value = serde_json::from_str(&stdout(&checked)).unwrap();
    assert_eq!(identity["user_id"], "alice");
    assert_eq!(identity["user_type"], "agent");
    assert_eq!(identity["app_id"], "shop");
    assert_eq!(identity["group_ids"], serde_json::json!(["g1", "g2"]));

    let refused = run(
        &["checktoken", &token],
        &[("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "other")],
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("signature"),
        "{}",
        stderr(&refused)
    );
    let garbage = run(&["checktoken", "not-a-token"], &secret);
    assert_eq!(garbage.status.code(), Some(1));
    assert!(
        stderr(&garbage).contains("invalid_token"),
        "{}",
        stderr(&garbage)
    );
}

#[test]
fn gentoken_without_a_usable_key_or_user_exits_two() {
    let output = run(&["gentoken", "--user", "alice"], &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("wsc.security.token.secret"),
        "{}",
        stderr(&output)
    );
    let output = run(
        &["gentoken", "--user", "alice"],
        &[("GATEWAY__WSC__SECURITY__TOKEN__ALGORITHM", "RS256")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--key"), "{}", stderr(&output));
    let output = run(
        &["gentoken"],
        &[("GATEWAY__WSC__SECURITY__TOKEN__SECRET", "s")],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--user"), "{}", stderr(&output));
}
