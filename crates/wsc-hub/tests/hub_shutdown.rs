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
