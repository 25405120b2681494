//! `wsc-socketio`: the peer of the benchmarks, socketioxide (the best-known Rust Socket.IO
//! server) on axum, as its documentation sets it up: every client joins the default
//! namespace, and `POST /publish` on the publish port emits the body to everyone as a
//! `message` event. A client that connects with `&client=N` also joins the room `cN`, and
//! `POST /publish/N` emits to that room only (the point-to-point scenario).
//!
//! ```text
//! wsc-socketio --ws-port 9001 --publish-port 9002
//! ```
//!
//! Clients connect to `ws://127.0.0.1:<ws-port>/socket.io/?EIO=4&transport=websocket`.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
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
    body: String,
) -> &'static str {
    let _ = io.to(format!("c{client}")).emit("message", &body).await;
    "{}"
}
