//! Integration tests of `GatewayBuilder` and the gateway lifecycle: finding and loading the
//! configuration, environment overrides, start, stop, and the errors of each.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{connect, local_config, next_json, started};
use gateway::{Gateway, GatewayError};
use wsc_config::ConfigError;
use wsc_hub::HubMessage;

/// A configuration file with every listener on a free local port.
const LOCAL_YAML: &str = "\
name: from-file
http:
  host: 127.0.0.1
  port: 0
grpc:
  host: 127.0.0.1
  port: 0
wsc:
  node_ip: 127.0.0.1
  node_port: 0
";

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_relative_config_path_is_found_in_a_search_path() {
    let empty = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "gateway-builder-search.yaml", LOCAL_YAML);
    let gateway = Gateway::builder()
        .config_path("gateway-builder-search.yaml")
        .search_path(empty.path())
        .search_path(dir.path())
        .environment(HashMap::new())
        .hot_reload(false)
        .build()
        .expect("the file is found in the second search path");
    assert_eq!(gateway.config().name, "from-file");
    assert_eq!(gateway.config().wsc.node_ip, "127.0.0.1");
    assert!(!gateway.is_running(), "build does not start");
}

#[test]
fn an_absolute_config_path_is_read_directly() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "absolute.yaml", LOCAL_YAML);
    let gateway = Gateway::builder()
        .config_path(dir.path().join("absolute.yaml"))
        .environment(HashMap::new())
        .hot_reload(false)
        .build()
        .unwrap();
    assert_eq!(gateway.config().name, "from-file");
}

#[test]
fn a_missing_file_is_config_not_found_listing_the_searched_folders() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let err = Gateway::builder()
        .config_path("gateway-builder-no-such-file.yaml")
        .search_path(first.path())
        .search_path(second.path())
        .build()
        .expect_err("the file does not exist");
    match &err {
        GatewayError::ConfigNotFound { path, searched } => {
            assert_eq!(path, Path::new("gateway-builder-no-such-file.yaml"));
            let folders: Vec<&str> = searched.split(", ").collect();
            assert_eq!(
                folders,
                [
                    ".",
                    first.path().to_str().unwrap(),
                    second.path().to_str().unwrap()
                ],
                "{searched}"
            );
        }
        other => panic!("expected ConfigNotFound, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("gateway-builder-no-such-file.yaml"), "{text}");
    assert!(
        text.contains(second.path().to_str().unwrap()),
        "the message lists the folders: {text}"
    );
}

#[test]
fn an_invalid_value_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "invalid.yaml",
        "wsc:\n  node_ip: not-an-ip\n  node_port: 0\n",
    );
    let err = Gateway::builder()
        .config_path("invalid.yaml")
        .search_path(dir.path())
        .environment(HashMap::new())
        .build()
        .expect_err("the node_ip is not an IP address");
    match err {
        GatewayError::Config(ConfigError::Invalid(problems)) => {
            assert!(
                problems.iter().any(|p| p.key == "wsc.node_ip"),
                "{problems:?}"
            );
        }
        other => panic!("expected Config(Invalid), got {other:?}"),
    }
}

#[test]
fn an_unparsable_file_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "broken.yaml",
        "wsc: [unclosed\n  node_port: :\n",
    );
    let err = Gateway::builder()
        .config_path("broken.yaml")
        .search_path(dir.path())
        .environment(HashMap::new())
        .build()
        .expect_err("the file is not YAML");
    assert!(
        matches!(err, GatewayError::Config(ConfigError::Load(_))),
        "expected Config(Load), got {err:?}"
    );
}

#[test]
fn the_environment_map_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "env.yaml", LOCAL_YAML);
    let environment = HashMap::from([
        ("GATEWAY__NAME".to_owned(), "from-env".to_owned()),
        ("GATEWAY__WSC__RELAY__ENABLED".to_owned(), "true".to_owned()),
    ]);
    let gateway = Gateway::builder()
        .config_path("env.yaml")
        .search_path(dir.path())
        .environment(environment)
        .hot_reload(false)
        .build()
        .unwrap();
    assert_eq!(gateway.config().name, "from-env");
    assert!(gateway.config().wsc.relay.enabled);
    // Keys the environment does not name keep the file's values.
    assert_eq!(gateway.config().wsc.node_ip, "127.0.0.1");
    assert_eq!(gateway.config().wsc.node_port, 0);
}

#[test]
fn the_environment_map_applies_without_a_file() {
    let environment = HashMap::from([
        ("GATEWAY__NAME".to_owned(), "env-only".to_owned()),
        ("GATEWAY__WSC__NODE_PORT".to_owned(), "0".to_owned()),
    ]);
    let gateway = Gateway::builder().environment(environment).build().unwrap();
    assert_eq!(gateway.config().name, "env-only");
    assert_eq!(gateway.config().wsc.node_port, 0);
}

#[test]
fn a_given_config_is_used_as_is() {
    let mut config = local_config();
    config.name = "given".to_owned();
    config.wsc.relay.enabled = true;
    let gateway = Gateway::builder()
        .config(config.clone())
        .environment(HashMap::from([(
            "GATEWAY__NAME".to_owned(),
            "ignored".to_owned(),
        )]))
        .build()
        .unwrap();
    assert_eq!(gateway.config(), &config);
    assert_eq!(gateway.websocket().config(), &config.wsc);
}

#[tokio::test]
async fn build_and_start_binds_every_listener() {
    let gateway = started(local_config()).await;
    assert!(gateway.is_running());
    assert!(gateway.websocket().is_running());
    let (ws, api, grpc) = gateway.addresses().await.expect("addresses once running");
    assert!(ws.ip().is_loopback() && ws.port() != 0, "{ws}");
    assert!(api.ip().is_loopback() && api.port() != 0, "{api}");
    let grpc = grpc.expect("gRPC is on by default");
    assert!(grpc.port() != 0, "{grpc}");
    // The WebSocket address really serves.
    let mut client = connect(&gateway, "user_id=u").await;
    let report = gateway
        .send_to_websocket_user("u", HubMessage::text("hello"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut client).await["content"], "hello");
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn build_and_start_from_a_file() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "start.yaml", LOCAL_YAML);
    let gateway = Gateway::builder()
        .config_path("start.yaml")
        .search_path(dir.path())
        .environment(HashMap::new())
        .build_and_start()
        .await
        .unwrap();
    assert!(gateway.addresses().await.is_some());
    assert!(gateway.stop().await.unwrap());
}

#[tokio::test]
async fn addresses_are_none_before_start() {
    let gateway = Gateway::builder().config(local_config()).build().unwrap();
    assert!(gateway.addresses().await.is_none());
    assert!(!gateway.is_running());
}

#[tokio::test]
async fn start_twice_is_already_running() {
    let gateway = started(local_config()).await;
    let before = gateway.addresses().await;
    let err = gateway.start().await.expect_err("second start");
    assert!(
        matches!(err, GatewayError::AlreadyRunning),
        "expected AlreadyRunning, got {err:?}"
    );
    // The running listeners are untouched.
    assert!(gateway.is_running());
    assert_eq!(gateway.addresses().await, before);
    gateway.stop().await.unwrap();
}

#[tokio::test]
async fn a_clone_is_the_same_gateway() {
    let gateway = Gateway::builder().config(local_config()).build().unwrap();
    let clone = gateway.clone();
    gateway.start().await.unwrap();
    assert!(clone.is_running());
    assert!(matches!(
        clone.start().await,
        Err(GatewayError::AlreadyRunning)
    ));
    assert!(clone.stop().await.unwrap());
    assert!(!gateway.is_running());
}

#[tokio::test]
async fn stop_drains_then_everything_is_not_running() {
    let gateway = started(local_config()).await;
    assert!(gateway.stop().await.unwrap(), "nothing to drain");
    assert!(!gateway.is_running());
    assert!(gateway.addresses().await.is_none());
    let err = gateway
        .send_to_websocket_user("u", HubMessage::text("late"))
        .await
        .expect_err("stopped");
    assert!(matches!(err, GatewayError::NotRunning), "{err:?}");
    assert!(matches!(
        gateway.get_websocket_online_users().await,
        Err(GatewayError::NotRunning)
    ));
    assert!(matches!(
        gateway
            .broadcast_websocket_message(HubMessage::text("late"))
            .await,
        Err(GatewayError::NotRunning)
    ));
}

#[tokio::test]
async fn stop_closes_connected_clients_with_1001() {
    let gateway = started(local_config()).await;
    let mut client = connect(&gateway, "user_id=u").await;
    let stopping = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.stop().await }
    });
    assert_eq!(common::close_frame(&mut client).await.0, 1001);
    drop(client);
    let drained = tokio::time::timeout(common::WAIT, stopping)
        .await
        .expect("stop in time")
        .unwrap();
    assert!(drained.unwrap());
}

#[tokio::test]
async fn stop_when_not_running_is_not_running() {
    let gateway = Gateway::builder().config(local_config()).build().unwrap();
    assert!(matches!(
        gateway.stop().await,
        Err(GatewayError::NotRunning)
    ));
    gateway.start().await.unwrap();
    gateway.stop().await.unwrap();
    let err = gateway.stop().await.expect_err("already stopped");
    assert!(matches!(err, GatewayError::NotRunning), "{err:?}");
}

#[tokio::test]
async fn a_stopped_gateway_starts_again() {
    let gateway = started(local_config()).await;
    gateway.stop().await.unwrap();
    gateway.start().await.expect("start after stop");
    assert!(gateway.is_running());
    let mut client = connect(&gateway, "user_id=again").await;
    let report = gateway
        .send_to_websocket_user("again", HubMessage::text("back"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(next_json(&mut client).await["content"], "back");
    drop(client);
    gateway.stop().await.unwrap();
}
