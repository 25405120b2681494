//! The seed's callback example: callback chains, an upgrade middleware, named events and
//! message interceptors.
//!
//! - Middleware: a request with header `x-session: <user>` connects as that user (the
//!   session stands in for your own authentication); `x-session: revoked` is refused (401).
//! - Connect chain: the first callback logs, the second refuses the user `banned` (close
//!   1008 with the reason).
//! - Inbound interceptor: refuses messages containing "spam" and trims the rest.
//! - Outbound interceptor: marks every message sent with `data.via = "gateway"`.
//! - Message callback: echoes each message back to its sender.
//! - Events: every event name is printed as it happens.

use std::path::Path;

use axum::http::StatusCode;
use gateway::{Gateway, GatewayError, Interceptor, events};
use gateway_server::UpgradeRejection;
use tokio::sync::mpsc;
use wsc_hub::{CallbackError, HubMessage};

/// Builds and starts the gateway with every kind of hook. Printed lines also go to `lines`.
pub async fn start(
    config_path: &Path,
    lines: mpsc::UnboundedSender<String>,
) -> Result<Gateway, GatewayError> {
    let gateway = Gateway::builder().config_path(config_path).build()?;

    gateway.use_websocket_middleware(|request, identity| {
        let session = request
            .headers
            .get("x-session")
            .and_then(|v| v.to_str().ok());
        match session {
            Some("revoked") => Err(UpgradeRejection::new(
                StatusCode::UNAUTHORIZED,
                "session_revoked",
                "this session was revoked; log in again",
            )),
            Some(user) => {
                identity.user_id = user.to_owned();
                Ok(())
            }
            None => Ok(()),
        }
    });

    let log = lines.clone();
    gateway
        .on_websocket_client_connect(move |conn| {
            let _ = log.send(format!("connect chain 1: {}", conn.user_id()));
            async { Ok(()) }
        })
        .on_websocket_client_connect(|conn| async move {
            if conn.user_id() == "banned" {
                Err(CallbackError::from("this account is banned"))
            } else {
                Ok(())
            }
        });

    let log = lines.clone();
    gateway.on_websocket_client_disconnect(move |conn, reason| {
        let _ = log.send(format!(
            "disconnect: {} ({})",
            conn.user_id(),
            reason.close_text()
        ));
    });

    gateway
        .add_websocket_interceptor(Interceptor::inbound(|_, msg| {
            if msg.content.contains("spam") {
                return Err(CallbackError::from("no spam, please"));
            }
            msg.content = msg.content.trim().to_owned();
            Ok(())
        }))
        .add_websocket_interceptor(Interceptor::outbound(|msg| {
            *msg = std::mem::take(msg).with_data("via", "gateway");
            Ok(())
        }));

    let echo = gateway.clone();
    gateway.on_websocket_message_received(move |conn, msg| {
        let gateway = echo.clone();
        async move {
            let reply = HubMessage::text(format!("echo: {}", msg.content));
            gateway
                .send_to_websocket_user(conn.user_id(), reply)
                .await
                .map_err(|e| CallbackError(e.to_string()))?;
            Ok(())
        }
    });

    for name in events::ALL {
        let log = lines.clone();
        gateway.on_websocket_event(name, move |event| {
            let _ = log.send(format!("event {} {}", event.name, event.user_id));
        });
    }

    gateway.start().await?;
    Ok(gateway)
}
