//! Stopping the hub settles acknowledged sends that are still waiting.

use std::time::Duration;

use wsc_hub::{AckStatus, Hub, HubConfig, HubMessage, Identity, Outbound};

#[tokio::test]
async fn stop_stores_unacknowledged_in_flight_messages() {
    let hub = Hub::new(HubConfig::default());
    hub.start();
    let mut phone = hub.register(Identity::new("u")).await.unwrap();
    let sender = hub.clone();
    let send = tokio::spawn(async move {
        sender
            .send_to_user_with_ack("u", HubMessage::text("x"), Duration::from_secs(3600), 3)
            .await
    });
    // The first delivery is queued: the sender is now waiting for an ack.
    let Some(Outbound::Message(_)) = phone.recv().await else {
        panic!("no delivery")
    };
    let remaining = hub.stop(Duration::ZERO).await;
    assert_eq!(
        remaining, 1,
        "the registration was not driven, so it is still open"
    );
    let report = send.await.unwrap().unwrap();
    assert_eq!(report.outcomes[0].status, AckStatus::StoredOffline);
    assert_eq!(report.outcomes[0].attempts, 1);
    let stored = hub.offline_store().unwrap().load("u").await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message_id, report.message_id);
    assert!(phone.connection().is_closing());
}

#[tokio::test]
async fn message_sent_callbacks_see_acknowledged_sends_once_settled() {
    use std::sync::{Arc, Mutex};
    let hub = Hub::new(HubConfig::default());
    hub.start();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    hub.on_message_sent(move |msg, report| {
        log.lock()
            .unwrap()
            .push((msg.message_id.clone(), report.delivered));
    });
    let mut phone = hub.register(Identity::new("u")).await.unwrap();
    let sender = hub.clone();
    let send = tokio::spawn(async move {
        sender
            .send_to_user_with_ack("u", HubMessage::text("x"), Duration::from_secs(3600), 0)
            .await
    });
    let Some(Outbound::Message(frame)) = phone.recv().await else {
        panic!("no delivery")
    };
    assert!(seen.lock().unwrap().is_empty(), "not settled yet");
    let sent: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
    let ack = serde_json::json!({"message_type": "ack", "message_id": sent["message_id"]});
    phone.handle_text(&ack.to_string()).await;
    let report = send.await.unwrap().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [(report.message_id.clone(), 1)],
        "one callback, with the acked target as delivered"
    );
}
