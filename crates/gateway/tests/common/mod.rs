//! Start-up for the gateway integration tests (a `Gateway` built or started from a local
//! config); the clients and waits come from `wsc-testkit`, shared with the other crates.

#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use gateway::Gateway;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Error as WsError;
use wsc_config::GatewayConfig;

pub(crate) use wsc_testkit::ws::{
    assert_error_frame, assert_nothing_queued, next_close as close_frame, next_json, send,
};
pub(crate) use wsc_testkit::{Client, WAIT, drain, local_config, recv};

/// A gateway built from `config`, not started.
pub(crate) fn built(config: GatewayConfig) -> Gateway {
    Gateway::builder()
        .config(config)
        .build()
        .expect("gateway builds")
}

/// A gateway built from `config` and started.
pub(crate) async fn started(config: GatewayConfig) -> Gateway {
    Gateway::builder()
        .config(config)
        .build_and_start()
        .await
        .expect("gateway starts")
}

/// The WebSocket listener of a running gateway.
pub(crate) async fn ws_addr(gateway: &Gateway) -> SocketAddr {
    gateway.addresses().await.expect("gateway is running").0
}

/// The `/ws` URL of a running gateway with this query string.
pub(crate) async fn ws_url(gateway: &Gateway, query: &str) -> String {
    format!("ws://{}/ws?{query}", ws_addr(gateway).await)
}

/// Connects with this query string and these headers.
pub(crate) async fn try_connect(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, WsError> {
    wsc_testkit::ws::try_connect(&ws_url(gateway, query).await, headers).await
}

/// Connects with this query string; the upgrade must succeed.
pub(crate) async fn connect(gateway: &Gateway, query: &str) -> Client {
    wsc_testkit::ws::connect(&ws_url(gateway, query).await).await
}

/// The status and JSON body of a refused handshake.
pub(crate) async fn refused(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    wsc_testkit::ws::refused(&ws_url(gateway, query).await, headers).await
}
