//! Hot reload with `watch_file` on a file in a temporary directory: runtime-safe keys apply,
//! restart-only keys are reported and keep their running value, a broken file is rejected
//! and changes nothing, an editor-style save (write a temp file, rename it over) reloads.
//!
//! Each test waits for the reload event itself, bounded by a generous timeout.

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use support::temp_config;
use tempfile::TempDir;
use tokio::sync::watch;
use wsc_config::{
    ConfigWatch, GatewayConfig, Loader, LoginPolicy, ReloadEvent, WatchError, watch_file,
};

/// How long a test waits for one reload event before failing.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);
const DEBOUNCE: Duration = Duration::from_millis(100);

const INITIAL: &str = "wsc:\n  node_port: 8081\n  client_timeout: 90\n";

struct Watched {
    _dir: TempDir,
    path: PathBuf,
    watch: ConfigWatch,
    config: watch::Receiver<Arc<GatewayConfig>>,
}

/// Writes `initial`, loads it and starts watching it.
fn start(initial: &str) -> Watched {
    let file = temp_config("gateway.yaml", initial);
    let loader = Loader::new().file(&file.path).environment(HashMap::new());
    let config = loader.load().expect("initial config is valid").config;
    let watch = watch_file(loader, config, DEBOUNCE).expect("start watching");
    let config = watch.subscribe();
    Watched {
        _dir: file.dir,
        path: file.path,
        watch,
        config,
    }
}

async fn next_event(watch: &mut ConfigWatch) -> ReloadEvent {
    tokio::time::timeout(EVENT_TIMEOUT, watch.next_event())
        .await
        .expect("no reload event within the timeout")
        .expect("the watch ended")
}

/// The `changed` and `restart_required` of an `Applied` event.
fn applied(event: ReloadEvent) -> (Vec<String>, Vec<String>) {
    match event {
        ReloadEvent::Applied {
            changed,
            restart_required,
            ..
        } => (changed, restart_required),
        other => panic!("expected Applied, got {other:?}"),
    }
}

fn rejected(event: ReloadEvent) -> String {
    match event {
        ReloadEvent::Rejected { error } => error,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("rewrite config file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_a_hot_key_applies_it() {
    let mut w = start(INITIAL);
    assert_eq!(
        w.config.borrow().wsc.client_timeout,
        Duration::from_secs(90)
    );

    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 120\n");
    let (changed, restart) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert!(restart.is_empty(), "{restart:?}");

    assert!(w.config.has_changed().unwrap());
    let current = w.config.borrow_and_update().clone();
    assert_eq!(current.wsc.client_timeout, Duration::from_secs(120));
    // Everything else is unchanged.
    let mut expected = GatewayConfig::default();
    expected.wsc.client_timeout = Duration::from_secs(120);
    assert_eq!(*current, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_hot_keys_apply_together() {
    let mut w = start(INITIAL);
    write(
        &w.path,
        "wsc:\n  node_port: 8081\n  client_timeout: 90\n  multi_login:\n    policy: kick_new\n  security:\n    max_messages_per_second: 7\n",
    );
    let (mut changed, restart) = applied(next_event(&mut w.watch).await);
    changed.sort_unstable();
    assert_eq!(
        changed,
        [
            "wsc.multi_login.policy",
            "wsc.security.max_messages_per_second"
        ]
    );
    assert!(restart.is_empty(), "{restart:?}");
    let current = w.config.borrow_and_update().clone();
    assert_eq!(current.wsc.multi_login.policy, LoginPolicy::KickNew);
    assert_eq!(current.wsc.security.max_messages_per_second, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_yaml_is_rejected_then_a_fix_applies() {
    let mut w = start(INITIAL);
    write(&w.path, "wsc: [unclosed\n  client_timeout: 120\n");
    let error = rejected(next_event(&mut w.watch).await);
    assert!(!error.is_empty());
    assert!(!w.config.has_changed().unwrap());
    assert_eq!(
        w.config.borrow().wsc.client_timeout,
        Duration::from_secs(90)
    );

    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 100\n");
    let (changed, _) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert_eq!(
        w.config.borrow_and_update().wsc.client_timeout,
        Duration::from_secs(100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_value_is_rejected_with_its_key_then_a_fix_applies() {
    let mut w = start(INITIAL);
    // client_timeout must be longer than heartbeat_interval (30s); message_buffer_size >= 1.
    write(
        &w.path,
        "wsc:\n  node_port: 8081\n  client_timeout: 10\n  message_buffer_size: 0\n",
    );
    let error = rejected(next_event(&mut w.watch).await);
    assert!(error.contains("wsc.client_timeout"), "{error}");
    assert!(error.contains("wsc.message_buffer_size"), "{error}");
    assert!(!w.config.has_changed().unwrap());
    let current = w.config.borrow().clone();
    assert_eq!(current.wsc.client_timeout, Duration::from_secs(90));
    assert_eq!(current.wsc.message_buffer_size, 256);

    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 45\n");
    let (changed, restart) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert!(restart.is_empty(), "{restart:?}");
    assert_eq!(
        w.config.borrow_and_update().wsc.client_timeout,
        Duration::from_secs(45)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_only_key_is_reported_and_keeps_its_running_value() {
    let mut w = start(INITIAL);
    write(&w.path, "wsc:\n  node_port: 9999\n  client_timeout: 90\n");
    let (changed, restart) = applied(next_event(&mut w.watch).await);
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(restart, ["wsc.node_port"]);
    // Nothing hot changed: nothing is published.
    assert!(!w.config.has_changed().unwrap());
    assert_eq!(w.config.borrow().wsc.node_port, 8081);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_only_and_hot_keys_in_one_save() {
    let mut w = start(INITIAL);
    write(
        &w.path,
        "http:\n  port: 8090\nwsc:\n  node_port: 9999\n  client_timeout: 120\n",
    );
    let (changed, mut restart) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    restart.sort_unstable();
    assert_eq!(restart, ["http.port", "wsc.node_port"]);
    let current = w.config.borrow_and_update().clone();
    assert_eq!(current.wsc.client_timeout, Duration::from_secs(120));
    assert_eq!(current.wsc.node_port, 8081);
    assert_eq!(current.http.port, 8080);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_style_save_by_rename_reloads() {
    let mut w = start(INITIAL);
    let temp = w.path.with_file_name(".gateway.yaml.swp");
    write(&temp, "wsc:\n  node_port: 8081\n  client_timeout: 150\n");
    std::fs::rename(&temp, &w.path).expect("rename over the config");
    let (changed, _) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert_eq!(
        w.config.borrow_and_update().wsc.client_timeout,
        Duration::from_secs(150)
    );

    // The watch survives the replaced inode: a second save is seen too.
    write(&temp, "wsc:\n  node_port: 8081\n  client_timeout: 160\n");
    std::fs::rename(&temp, &w.path).expect("rename over the config");
    let (changed, _) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert_eq!(
        w.config.borrow_and_update().wsc.client_timeout,
        Duration::from_secs(160)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewriting_the_same_content_changes_nothing() {
    let mut w = start(INITIAL);
    write(&w.path, INITIAL);
    assert_quiet(&mut w.watch, "the same content saved again").await;
    assert!(!w.config.has_changed().unwrap());
    // The next real change is the next event.
    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 95\n");
    let (changed, restart) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
    assert!(restart.is_empty(), "{restart:?}");
}

/// How long a test watches for events that must not come. The debounce is 100 ms, and the
/// old watcher re-judged the file every debounce period, forever; a correct one never
/// reports anything here, so the length only decides how surely a regression is caught.
const QUIET: Duration = Duration::from_millis(1500);

/// Asserts that no reload event arrives within [`QUIET`].
async fn assert_quiet(watch: &mut ConfigWatch, what: &str) {
    if let Ok(event) = tokio::time::timeout(QUIET, watch.next_event()).await {
        panic!("{what}: expected no reload event, got {event:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_only_change_is_reported_once_not_every_debounce() {
    let mut w = start(INITIAL);
    write(&w.path, "wsc:\n  node_port: 9999\n  client_timeout: 90\n");
    let (changed, restart) = applied(next_event(&mut w.watch).await);
    assert!(changed.is_empty(), "{changed:?}");
    assert_eq!(restart, ["wsc.node_port"]);
    // The watcher's own read of the file is not a change: no second judgment, no second
    // warning while the file stays as it is.
    assert_quiet(&mut w.watch, "file unchanged after a restart-only change").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unparsable_file_is_rejected_once_not_every_debounce() {
    let mut w = start(INITIAL);
    write(&w.path, "wsc: [unclosed\n");
    rejected(next_event(&mut w.watch).await);
    assert_quiet(&mut w.watch, "file unchanged after a rejection").await;
    // Each new content is judged once: another broken version is one more rejection.
    write(&w.path, "wsc: {unclosed\n");
    rejected(next_event(&mut w.watch).await);
    assert_quiet(&mut w.watch, "file unchanged after a second rejection").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_files_in_the_folder_are_ignored() {
    let mut w = start(INITIAL);
    let other = w.path.with_file_name("other.yaml");
    write(&other, "wsc:\n  node_port: 1\n");
    write(&other, "wsc:\n  node_port: 2\n");
    let temp = w.path.with_file_name(".other.swp");
    write(&temp, "x: 1\n");
    std::fs::rename(&temp, &other).expect("rename over the other file");
    std::fs::remove_file(&other).expect("remove the other file");
    assert_quiet(&mut w.watch, "only other files changed").await;
    // The watched file is still watched.
    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 99\n");
    let (changed, _) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_duration_is_rejected_and_the_watch_lives_on() {
    // `client_timeout: 1e20` used to panic the reload task, ending hot reload for good.
    let mut w = start(INITIAL);
    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 1e20\n");
    let error = rejected(next_event(&mut w.watch).await);
    assert!(error.contains("wsc.client_timeout"), "{error}");
    write(&w.path, "wsc:\n  node_port: 8081\n  client_timeout: 100\n");
    let (changed, _) = applied(next_event(&mut w.watch).await);
    assert_eq!(changed, ["wsc.client_timeout"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_reports_the_new_files_warnings() {
    let mut w = start(INITIAL);
    write(
        &w.path,
        "wsc:\n  node_port: 8081\n  client_timeout: 91\n  node_prot: 1\n",
    );
    match next_event(&mut w.watch).await {
        ReloadEvent::Applied {
            changed, warnings, ..
        } => {
            assert_eq!(changed, ["wsc.client_timeout"]);
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert_eq!(warnings[0].key, "wsc.node_prot");
        }
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[tokio::test]
async fn watching_needs_a_file() {
    let loader = Loader::new().environment(HashMap::new());
    match watch_file(loader, GatewayConfig::default(), DEBOUNCE) {
        Err(WatchError::NoFile) => {}
        other => panic!("expected WatchError::NoFile, got {other:?}"),
    }
}

#[tokio::test]
async fn watching_a_missing_directory_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent-dir").join("gateway.yaml");
    let loader = Loader::new().file(&path).environment(HashMap::new());
    match watch_file(loader, GatewayConfig::default(), DEBOUNCE) {
        Err(e @ WatchError::Notify { .. }) => {
            assert!(e.to_string().contains("absent-dir"), "{e}");
        }
        other => panic!("expected WatchError::Notify, got {other:?}"),
    }
}
