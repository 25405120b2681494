//! `wsc-socketio`: the peer of the benchmarks, socketioxide (the best-known Rust Socket.IO
//! server) on axum, as its documentation sets it up: every client joins the default
//! namespace, and `POST /publish` on the publish port emits the body to everyone as a
//! `message` event. A client that connects with `&client=N` also joins the room `cN`, and
//! `POST /publish/N` emits to that room only (the point-to-point scenario);
//! `POST /publish/N?ack` emits with an ack (`emit_with_ack`) and answers once the client
//! acked, or 504 after ten seconds (the ack scenario).
//!
//! ```text
//! wsc-socketio --ws-port 9001 --publish-port 9002
//! ```
//!
//! Clients connect to `ws://127.0.0.1:<ws-port>/socket.io/?EIO=4&transport=websocket`.

use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::post;
use futures_util::StreamExt;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

#[tokio::main]
async fn main() -> Result<(), String> {
    let (ws_addr, publish_addr) = wsc_bench::bench::peer_addresses("wsc-socketio")?;
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |socket: SocketRef| {
        if let Some(client) = wsc_bench::bench::client_param(socket.req_parts().uri.query()) {
            socket.join(format!("c{client}"));
        }
    });
    let sockets = Router::new().layer(layer);
    let publish = Router::new()
        .route("/publish", post(publish))
        .route("/publish/{client}", post(publish_to))
        .with_state(io);
    let ws = tokio::net::TcpListener::bind(ws_addr)
        .await
        .map_err(|e| e.to_string())?;
    let api = tokio::net::TcpListener::bind(publish_addr)
        .await
        .map_err(|e| e.to_string())?;
    println!("wsc-socketio listening ws={ws_addr} publish={publish_addr}");
    tokio::spawn(async move {
        let _ = axum::serve(api, publish).await;
    });
    axum::serve(ws, sockets).await.map_err(|e| e.to_string())
}

async fn publish(State(io): State<SocketIo>, body: String) -> &'static str {
    // Nobody connected is not an error for a broadcast.
    let _ = io.emit("message", &body).await;
    "{}"
}

async fn publish_to(
    State(io): State<SocketIo>,
    Path(client): Path<u64>,
    RawQuery(query): RawQuery,
    body: String,
) -> (StatusCode, &'static str) {
    let room = io.to(format!("c{client}"));
    if query.as_deref() != Some("ack") {
        let _ = room.emit("message", &body).await;
        return (StatusCode::OK, "{}");
    }
    let acks = room
        .timeout(Duration::from_secs(10))
        .emit_with_ack::<_, serde_json::Value>("message", &body)
        .await;
    match acks {
        Ok(acks) => match std::pin::pin!(acks).next().await {
            Some((_, Ok(_))) => (StatusCode::OK, "{}"),
            Some((_, Err(_))) => (StatusCode::GATEWAY_TIMEOUT, "{}"),
            None => (StatusCode::NOT_FOUND, "{}"),
        },
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "{}"),
    }
}
