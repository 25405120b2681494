//! Observers through the binary's server: a WebSocket connection of user type `observer`
//! gets a marked copy of a message the REST API sends to another user, and nothing when
//! `wsc.observers.enabled` is off.

mod support;

use serde_json::json;
use support::*;

#[tokio::test]
async fn an_observer_connection_gets_a_marked_copy_of_an_api_send() {
    let server = start(local_config()).await;
    let (ws, api) = (server.public_addr(), server.api_addr());
    let mut observer = connect(ws, "user_id=sup&user_type=observer").await;
    let mut bob = connect(ws, "user_id=bob").await;
    let (status, _) = post(api, "/api/v1/users/bob/messages", r#"{"content":"hi bob"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(next_json(&mut bob).await["content"], "hi bob");
    let copy = next_json(&mut observer).await;
    assert_eq!(copy["content"], "hi bob");
    assert_eq!(
        copy["data"]["metadata"],
        json!({"observer_mode": true, "original_sender": "system", "original_receiver": "bob"})
    );
    let (_, stats) = get(api, "/api/v1/stats").await;
    assert_eq!(
        (&stats["observers"], &stats["observer_copies"]),
        (&json!(1), &json!(1))
    );
    server.stop(WAIT).await;
}

#[tokio::test]
async fn with_observers_off_an_observer_gets_nothing() {
    let mut config = local_config();
    config.wsc.observers.enabled = false;
    let server = start(config).await;
    let (ws, api) = (server.public_addr(), server.api_addr());
    let mut observer = connect(ws, "user_id=sup&user_type=observer").await;
    let _bob = connect(ws, "user_id=bob").await;
    post(api, "/api/v1/users/bob/messages", r#"{"content":"hi bob"}"#).await;
    assert_nothing_pending(&mut observer, "no copy with observers off").await;
    server.stop(WAIT).await;
}
