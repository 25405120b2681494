//! `wsc-socketio`: the peer of the benchmarks, socketioxide (the best-known Rust Socket.IO
//! server) on axum, as its documentation sets it up: every client joins the default
//! namespace, and `POST /publish` on the publish port emits the body to everyone as a
//! `message` event.
//!
//! ```text
//! wsc-socketio --ws-port 9001 --publish-port 9002
//! ```
//!
//! Clients connect to `ws://127.0.0.1:<ws-port>/socket.io/?EIO=4&transport=websocket`.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;

#[tokio::main]
async fn main() -> Result<(), String> {
    let (ws_addr, publish_addr) = wsc_bench::bench::peer_addresses("wsc-socketio")?;
    let (layer, io) = SocketIo::new_layer();
    io.ns("/", async |_socket: SocketRef| {});
    let sockets = Router::new().layer(layer);
    let publish = Router::new()
        .route("/publish", post(publish))
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
