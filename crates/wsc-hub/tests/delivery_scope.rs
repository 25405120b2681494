//! App and namespace isolation of stored and windowed messages: an offline message or a
//! resumed window entry reaches only a connection in the scope it was sent to, and stays
//! stored for the right one.

mod support;

use serde_json::json;
use support::{contents, drain_messages, started};
use wsc_hub::{HubConfig, HubMessage, Identity};

fn scoped(content: &str, app_id: &str, namespace: &str) -> HubMessage {
    HubMessage {
        app_id: app_id.to_owned(),
        namespace: namespace.to_owned(),
        ..HubMessage::text(content)
    }
}

#[tokio::test]
async fn offline_messages_replay_only_to_a_connection_of_their_app() {
    let hub = started(HubConfig::default());
    let report = hub
        .send_to_user("u", scoped("for app A", "appA", ""))
        .await
        .unwrap();
    assert!(report.stored_offline);

    let mut other_app = hub
        .register(Identity::new("u").with_scope("appB", ""))
        .await
        .unwrap();
    let frames = drain_messages(&mut other_app);
    assert!(
        frames.is_empty(),
        "an app-B connection got app-A offline messages: {frames:?}"
    );
    drop(other_app);

    let mut right_app = hub
        .register(Identity::new("u").with_scope("appA", ""))
        .await
        .unwrap();
    let frames = drain_messages(&mut right_app);
    assert_eq!(
        contents(&frames),
        ["for app A"],
        "kept for the app-A connection"
    );
    assert_eq!(frames[0]["source"], "offline");
}

#[tokio::test]
async fn offline_messages_replay_only_to_a_connection_of_their_namespace() {
    let hub = started(HubConfig::default());
    hub.send_to_user("u", scoped("ns one", "", "one"))
        .await
        .unwrap();
    hub.send_to_user("u", scoped("anywhere", "", ""))
        .await
        .unwrap();

    let mut two = hub
        .register(Identity::new("u").with_scope("", "two"))
        .await
        .unwrap();
    assert_eq!(
        contents(&drain_messages(&mut two)),
        ["anywhere"],
        "an unscoped message reaches any namespace, a scoped one only its own"
    );
    // The unscoped message was written (and deleted); the namespace-one message waits.
    two.record_written(1, 0);
    drop(two);
    tokio::task::yield_now().await;

    let mut one = hub
        .register(Identity::new("u").with_scope("", "one"))
        .await
        .unwrap();
    let replayed = contents(&drain_messages(&mut one)).join(",");
    assert!(replayed.contains("ns one"), "got {replayed}");
}

#[tokio::test]
async fn resume_with_last_seq_replays_only_messages_of_the_connection_scope() {
    let hub = started(HubConfig::default());
    let mut live = hub
        .register(Identity::new("u").with_scope("appA", ""))
        .await
        .unwrap();
    hub.send_to_user("u", scoped("a-1", "appA", ""))
        .await
        .unwrap();
    hub.send_to_user("u", scoped("all-2", "", ""))
        .await
        .unwrap();
    drain_messages(&mut live);

    let mut resumed = hub
        .register(Identity::new("u").with_scope("appB", "").with_last_seq(0))
        .await
        .unwrap();
    let frames = drain_messages(&mut resumed);
    assert_eq!(
        contents(&frames[..frames.len() - 1]),
        ["all-2"],
        "an app-B resume must not see app-A history"
    );
    let notice = frames.last().unwrap();
    assert_eq!(notice["message_type"], "recovered");
    assert_eq!(notice["data"]["recovered"], true);
    assert_eq!(notice["data"]["replayed"], 1);
}

#[tokio::test]
async fn a_resume_frame_replays_only_messages_of_the_connection_scope() {
    let hub = started(HubConfig::default());
    let mut app_b = hub
        .register(Identity::new("u").with_scope("appB", ""))
        .await
        .unwrap();
    hub.send_to_user("u", scoped("a-1", "appA", ""))
        .await
        .unwrap();
    assert!(
        drain_messages(&mut app_b).is_empty(),
        "live routing is scoped"
    );

    app_b
        .handle_text(&json!({"message_type": "resume", "seq_no": 0}).to_string())
        .await;
    let frames = drain_messages(&mut app_b);
    assert_eq!(frames.len(), 1, "only the recovered notice: {frames:?}");
    assert_eq!(frames[0]["message_type"], "recovered");
    assert_eq!(frames[0]["data"]["replayed"], 0);
}
