//! Start-up for the gateway-server integration tests (a `Server` on `127.0.0.1:0`, a gRPC
//! client); the clients and waits come from `wsc-testkit`, shared with the other crates.

#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use gateway_server::grpc::proto::gateway_client::GatewayClient;
use gateway_server::{RunningServer, Server};
use tonic::transport::Channel;
use wsc_config::GatewayConfig;

pub(crate) use wsc_testkit::http::{
    error_code, get, joined, json as http, post, post_ok, raw as http_raw, spawn_post,
};
pub(crate) use wsc_testkit::ws::{ack, next_close, next_frame, next_json, send_json, wait_closed};
pub(crate) use wsc_testkit::{Client, WAIT, local_config};

/// Starts a server; panics when it cannot.
pub(crate) async fn start(config: GatewayConfig) -> RunningServer {
    Server::new(config).start().await.expect("server starts")
}

/// A gRPC client for a running server.
pub(crate) async fn grpc(server: &RunningServer) -> GatewayClient<Channel> {
    let addr = server.grpc_addr().expect("gRPC enabled");
    GatewayClient::connect(format!("http://{addr}"))
        .await
        .expect("gRPC connects")
}

/// Connects a WebSocket client with this query; panics when the handshake fails.
pub(crate) async fn connect(addr: SocketAddr, query: &str) -> Client {
    wsc_testkit::ws::connect(&format!("ws://{addr}/ws?{query}")).await
}

/// Proves nothing was queued for this client before now (see
/// [`wsc_testkit::ws::assert_nothing_queued`]).
pub(crate) async fn assert_nothing_pending(ws: &mut Client, label: &str) {
    wsc_testkit::ws::assert_nothing_queued(ws, &format!("barrier-{label}")).await;
}

/// A `tracing` log kept in memory (plain text, one line per event), for tests that read
/// what the server logged.
#[derive(Clone, Default)]
pub(crate) struct CapturedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// A subscriber writing every event at `level` or above into this log.
    pub(crate) fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + use<> {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(level)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }

    /// Everything logged so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}
