//! Embed just the hub in an axum app of your own.
//!
//! Run: `cargo run -p examples --example hub_only` (listens on 127.0.0.1:3000, or `PORT`).
//! Connect: `ws://127.0.0.1:3000/ws?user_id=alice`.
//! Push:    `curl -X POST 127.0.0.1:3000/notify/alice -d 'hello'`.
//!
//! The hub is transport-agnostic: this app keeps axum's own `WebSocketUpgrade` and drives
//! the hub's [`Registration`] itself: outbound frames from `recv`/`try_recv`, inbound text
//! to `handle_text`, and `finish` with the reason at the end.

use std::collections::HashMap;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use axum::{Json, Router};
use wsc_hub::{
    DisconnectReason, FrameError, Hub, HubConfig, HubMessage, Identity, Outbound, Registration,
};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let hub = Hub::new(HubConfig::default());
    hub.on_message_received(|conn, msg| async move {
        println!("{} says: {}", conn.user_id(), msg.content);
        Ok(())
    });
    hub.start();

    let app = Router::new()
        .route("/ws", any(upgrade))
        .route("/notify/{user_id}", post(notify))
        .with_state(hub);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".to_owned());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!(
        "hub_only on ws://{}/ws?user_id=alice",
        listener.local_addr()?
    );
    axum::serve(listener, app).await
}

async fn upgrade(
    State(hub): State<Hub>,
    Query(query): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    let Some(user_id) = query.get("user_id").filter(|u| !u.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "user_id is required").into_response();
    };
    // Register before answering 101: a message sent right after the handshake arrives.
    match hub.register(Identity::new(user_id.as_str())).await {
        Ok(registration) => ws.on_upgrade(move |socket| drive(registration, socket)),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

async fn notify(
    State(hub): State<Hub>,
    Path(user_id): Path<String>,
    body: String,
) -> Result<Json<wsc_hub::DeliveryReport>, (StatusCode, String)> {
    hub.send_to_user(&user_id, HubMessage::text(body))
        .await
        .map(Json)
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()))
}

/// Runs one connection: the same loop `wsc_hub::tungstenite::serve` runs, over axum's socket.
async fn drive(mut registration: Registration, mut socket: WebSocket) {
    let conn = registration.connection().clone();
    let reason = loop {
        tokio::select! {
            _ = conn.closed() => break None,
            frame = registration.recv() => {
                let Some(frame) = frame else { break None };
                if socket.send(to_axum(frame)).await.is_err() {
                    break Some(DisconnectReason::ConnectionLost { error: "write failed".into() });
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => registration.handle_text(text.as_str()).await,
                Some(Ok(Message::Binary(_))) => registration.reject_frame(FrameError::BinaryNotSupported, 0),
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| f.code).unwrap_or(1005);
                    break Some(DisconnectReason::ClientClosed { code });
                }
                Some(Ok(_)) => registration.touch(),
                Some(Err(e)) => {
                    break Some(DisconnectReason::ConnectionLost { error: e.to_string() });
                }
                None => break Some(DisconnectReason::ConnectionLost { error: "eof".into() }),
            },
        }
    };
    if reason.is_none() {
        // The hub asked for the close (kick, timeout, shutdown...): tell the client why.
        if let Some(reason) = conn.disconnect_reason() {
            let close = CloseFrame {
                code: reason.close_code(),
                reason: reason.close_text().into(),
            };
            let _ = socket.send(Message::Close(Some(close))).await;
        }
    }
    let observed = reason.unwrap_or(DisconnectReason::ServerShutdown);
    registration.finish(observed);
}

fn to_axum(frame: Outbound) -> Message {
    match frame {
        Outbound::Message(payload) => Message::Text(payload.as_str().into()),
        _ => Message::Ping(Default::default()),
    }
}
