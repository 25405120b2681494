//! `wsc-bare`: the bare baseline of the benchmarks. A WebSocket broadcast server with nothing
//! on top of tokio-tungstenite: no registry, no identities, no JSON, no acks. Each connection
//! is one task that writes every published payload as a text frame, feeding all that are
//! ready and flushing once (as the gateway's writer does), with 4 KiB buffers.
//!
//! `POST /publish` on the publish port takes a body and broadcasts it as it is.
//!
//! ```text
//! wsc-bare --ws-port 9001 --publish-port 9002
//! ```
//!
//! It exists so that every benchmark result is also a ratio to what this machine does with
//! nothing on top; it is not a product.

use std::convert::Infallible;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Published payloads a slow connection may fall behind before it skips some.
const CAPACITY: usize = 4096;

/// Frames written before one flush, at most.
const BATCH: usize = 64;

#[tokio::main]
async fn main() -> Result<(), String> {
    let (ws_addr, publish_addr) = wsc_bench::bench::peer_addresses("wsc-bare")?;
    let (tx, _) = broadcast::channel::<Utf8Bytes>(CAPACITY);
    let ws = TcpListener::bind(ws_addr)
        .await
        .map_err(|e| e.to_string())?;
    let publish = TcpListener::bind(publish_addr)
        .await
        .map_err(|e| e.to_string())?;
    println!("wsc-bare listening ws={ws_addr} publish={publish_addr}");
    let publisher = tx.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = publish.accept().await {
            let tx = publisher.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let tx = tx.clone();
                    async move {
                        let body = request.into_body().collect().await.map(|b| b.to_bytes());
                        let status = match body.map(|b| String::from_utf8(b.to_vec())) {
                            Ok(Ok(text)) => {
                                // Nobody connected is not an error for a broadcast.
                                let _ = tx.send(Utf8Bytes::from(text));
                                200
                            }
                            _ => 400,
                        };
                        let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
                        *response.status_mut() =
                            hyper::StatusCode::from_u16(status).unwrap_or_default();
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    loop {
        let Ok((tcp, _)) = ws.accept().await else {
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let rx = tx.subscribe();
        tokio::spawn(serve(tcp, rx));
    }
}

async fn serve(tcp: tokio::net::TcpStream, mut rx: broadcast::Receiver<Utf8Bytes>) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await else {
        return;
    };
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                // Pings are answered by tungstenite; anything else is ignored.
                Some(Ok(_)) => {}
                _ => return,
            },
            published = rx.recv() => {
                let first = match published {
                    Ok(text) => text,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if ws.feed(Message::Text(first)).await.is_err() {
                    return;
                }
                for _ in 1..BATCH {
                    match rx.try_recv() {
                        Ok(text) => {
                            if ws.feed(Message::Text(text)).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => break,
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}
