//! A hot-reloaded `wsc.client_timeout` governs connections that are already open: under
//! paused time, a silent connection closes at the new value, not the one it started with.

mod support;

use std::time::Duration;

use support::{WAIT, local_config, start};
use wsc_hub::{DisconnectReason, Identity};

#[tokio::test(start_paused = true)]
async fn a_reloaded_client_timeout_closes_a_silent_connection_at_the_new_value() {
    let mut config = local_config();
    config.grpc.enabled = false;
    config.wsc.heartbeat_interval = Duration::from_secs(30);
    config.wsc.client_timeout = Duration::from_secs(90);
    let server = start(config.clone()).await;
    let registration = server
        .hub()
        .register(Identity::new("quiet"))
        .await
        .expect("registered");
    let conn = registration.connection().clone();

    config.wsc.client_timeout = Duration::from_secs(40);
    server.config_applier().apply(&config);

    // The sweeps run every 30 s: at 30 s the connection is 30 s silent (under 40), at 60 s
    // it is over the new timeout. With the old 90 s it would still be open at 61 s.
    tokio::time::sleep(Duration::from_secs(31)).await;
    assert!(!conn.is_closing(), "closed before the new timeout");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(conn.disconnect_reason(), Some(&DisconnectReason::Timeout));
    registration.finish(DisconnectReason::Timeout);
    server.stop(WAIT).await;
}
