//! `gateway-server`: the wsc gateway as a server.
//!
//! [`Server`] builds a [`Hub`](wsc_hub::Hub) from a [`GatewayConfig`](wsc_config::GatewayConfig),
//! binds the public listener (`/ws`, `/sse`, `/health`) and the API listener (`/health`, `/ready`,
//! `/api/v1/...`), and returns a [`RunningServer`] once both are bound. Stopping it closes
//! every WebSocket with 1001 and drains within a deadline.
//!
//! ```no_run
//! use std::time::Duration;
//! use gateway_server::Server;
//! use wsc_config::GatewayConfig;
//!
//! # async fn run() -> Result<(), gateway_server::StartError> {
//! let running = Server::new(GatewayConfig::default()).start().await?;
//! println!("WebSocket on ws://{}/ws", running.public_addr());
//! running.stop(Duration::from_secs(10)).await;
//! # Ok(())
//! # }
//! ```

mod api;
mod api_key;
mod auth;
mod cluster;
mod demo;
mod error;
pub mod grpc;
mod guard;
mod handshake;
mod layers;
mod listen;
mod metrics;
mod middleware;
mod openapi;
mod ops;
#[cfg(target_os = "linux")]
mod process_metrics;
mod server;
mod sse;
mod state;
#[cfg(feature = "otlp")]
pub mod telemetry;
mod tls;
pub mod tokens;
mod upgrade;

pub use error::ApiError;
pub use middleware::{UpgradeMiddleware, UpgradeRejection, UpgradeRequest};
pub use server::{ConfigApplier, RunningServer, Server, StartError};
pub use tls::TlsError;

/// Resolves on SIGINT (Ctrl-C) or, on Unix, SIGTERM: the signals that stop a gateway.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
