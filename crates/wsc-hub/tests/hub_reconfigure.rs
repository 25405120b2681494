//! Runtime reconfiguration (hot reload): new limits apply to later operations; the node id
//! never changes.

use std::time::Duration;

use wsc_hub::{Hub, HubConfig, Identity, RegisterError};

#[tokio::test]
async fn new_limits_apply_to_later_registrations() {
    let mut config = HubConfig::default();
    config.max_connections = 1;
    let hub = Hub::new(config);
    hub.start();
    let node = hub.node_id().to_owned();
    let _first = hub.register(Identity::new("a")).await.unwrap();
    assert_eq!(
        hub.register(Identity::new("b")).await.unwrap_err(),
        RegisterError::NodeFull { limit: 1 }
    );

    let mut bigger = (*hub.config()).clone();
    bigger.max_connections = 2;
    bigger.client_timeout = Duration::from_secs(5);
    bigger.node_id = "someone-else".to_owned();
    hub.reconfigure(bigger);

    let _second = hub.register(Identity::new("b")).await.unwrap();
    assert_eq!(hub.connection_count(), 2);
    assert_eq!(hub.config().client_timeout, Duration::from_secs(5));
    assert_eq!(hub.node_id(), node);
    assert_eq!(hub.config().node_id, node);
}

#[tokio::test]
async fn the_outbound_limit_keeps_its_start_value_because_write_buffers_depend_on_it() {
    let mut config = HubConfig::default();
    config.max_outbound_message_size = 4096;
    let hub = Hub::new(config.clone());
    hub.start();
    config.max_outbound_message_size = 8 * 1024 * 1024;
    config.client_timeout = std::time::Duration::from_secs(7);
    hub.reconfigure(config);
    assert_eq!(hub.config().max_outbound_message_size, 4096);
    assert_eq!(hub.config().client_timeout.as_secs(), 7, "other keys apply");
    let refused = hub
        .send_to_user("u", wsc_hub::HubMessage::text("x".repeat(5000)))
        .await;
    assert!(matches!(refused, Err(wsc_hub::SendError::TooLarge { .. })));
}
