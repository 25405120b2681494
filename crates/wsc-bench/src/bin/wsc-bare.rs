//! `wsc-bare`: the bare baseline of the benchmarks. A WebSocket broadcast server with nothing
//! on top of tokio-tungstenite: no registry, no identities, no JSON, no acks. Each connection
//! is one task that writes every published payload as a text frame, feeding all that are
//! ready and flushing once (as the gateway's writer does), with 4 KiB buffers.
//!
//! `POST /publish` on the publish port takes a body and broadcasts it as it is. A client that
//! connects to `/?client=N` also gets a queue of its own, and `POST /publish/N` writes the
//! body to that client only (the point-to-point scenario); other clients hold no such
//! queue, so the broadcast and idle figures stay those of a bare broadcast server.
//! `POST /publish/N?ack` answers only once the client sent a text frame `ack` back (frames
//! are acked in order, so a queue of waiting calls per client is all the bookkeeping), or
//! 504 after ten seconds: the ack scenario.
//!
//! ```text
//! wsc-bare --ws-port 9001 --publish-port 9002
//! ```
//!
//! It exists so that every benchmark result is also a ratio to what this machine does with
//! nothing on top; it is not a product.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server as handshake;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Published payloads a slow connection may fall behind before it skips some.
const CAPACITY: usize = 4096;

/// Frames written before one flush, at most.
const BATCH: usize = 64;

/// Frames a client's own queue holds before it refuses more.
const OWN_CAPACITY: usize = 1024;

/// How long an acknowledged publish waits for the client.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's own queue, and the acknowledged publishes waiting for it in frame order.
#[derive(Clone)]
struct Own {
    tx: mpsc::Sender<Utf8Bytes>,
    waiting: Arc<Mutex<VecDeque<oneshot::Sender<()>>>>,
}

/// The clients that asked for a queue of their own, by number.
type Clients = Arc<Mutex<HashMap<u64, Own>>>;

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
    let clients = Clients::default();
    let registry = clients.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = publish.accept().await {
            let (tx, clients) = (publisher.clone(), registry.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let (tx, clients) = (tx.clone(), clients.clone());
                    async move {
                        let target = request
                            .uri()
                            .path()
                            .strip_prefix("/publish/")
                            .and_then(|n| n.parse::<u64>().ok());
                        let ack = request.uri().query() == Some("ack");
                        let body = request.into_body().collect().await.map(|b| b.to_bytes());
                        let status = match (body.map(|b| String::from_utf8(b.to_vec())), target) {
                            (Ok(Ok(text)), None) => {
                                // Nobody connected is not an error for a broadcast.
                                let _ = tx.send(Utf8Bytes::from(text));
                                200
                            }
                            (Ok(Ok(text)), Some(n)) => {
                                let own = clients.lock().ok().and_then(|c| c.get(&n).cloned());
                                match own {
                                    Some(own) => publish_to(&own, Utf8Bytes::from(text), ack).await,
                                    None => 404,
                                }
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
        tokio::spawn(serve(tcp, rx, clients.clone()));
    }
}

async fn serve(tcp: TcpStream, mut rx: broadcast::Receiver<Utf8Bytes>, clients: Clients) {
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024);
    let mut client = None;
    // The callback's error type is tungstenite's (large) response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &handshake::Request, response: handshake::Response| {
        client = wsc_bench::bench::client_param(request.uri().query());
        Ok(response)
    };
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(tcp, callback, Some(config)).await
    else {
        return;
    };
    let waiting = Arc::new(Mutex::new(VecDeque::new()));
    let mut own = client.map(|n| {
        let (tx, own_rx) = mpsc::channel(OWN_CAPACITY);
        if let Ok(mut clients) = clients.lock() {
            let waiting = waiting.clone();
            clients.insert(n, Own { tx, waiting });
        }
        own_rx
    });
    loop {
        tokio::select! {
            incoming = ws.next() => match incoming {
                // An ack settles the oldest waiting publish.
                Some(Ok(Message::Text(text))) if text.as_str() == "ack" => {
                    let first = waiting.lock().ok().and_then(|mut w| w.pop_front());
                    if let Some(first) = first {
                        let _ = first.send(());
                    }
                }
                // Pings are answered by tungstenite; anything else is ignored.
                Some(Ok(_)) => {}
                _ => break,
            },
            Some(text) = next_own(&mut own) => {
                let mut more = || own.as_mut()?.try_recv().ok();
                if !write_batch(&mut ws, text, &mut more).await {
                    break;
                }
            },
            published = rx.recv() => {
                let first = match published {
                    Ok(text) => text,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                if !write_batch(&mut ws, first, &mut || rx.try_recv().ok()).await {
                    break;
                }
            }
        }
    }
    if let (Some(n), Ok(mut clients)) = (client, clients.lock()) {
        clients.remove(&n);
    }
}

/// Writes `text` to one client's queue: 200, or 503 when the queue is full; with `ack`,
/// 200 only once the client acked it, 504 when it did not in time.
async fn publish_to(own: &Own, text: Utf8Bytes, ack: bool) -> u16 {
    if !ack {
        return if own.tx.try_send(text).is_ok() {
            200
        } else {
            503
        };
    }
    let (done, acked) = oneshot::channel();
    {
        // Queued and registered under one lock, so waiting calls stay in frame order.
        let Ok(mut waiting) = own.waiting.lock() else {
            return 500;
        };
        if own.tx.try_send(text).is_err() {
            return 503;
        }
        waiting.push_back(done);
    }
    match tokio::time::timeout(ACK_TIMEOUT, acked).await {
        Ok(Ok(())) => 200,
        _ => 504,
    }
}

/// Feeds `first` and up to `BATCH - 1` more frames that `more` has ready, then flushes once
/// (one syscall for many frames). False when the connection failed.
async fn write_batch(
    ws: &mut WebSocketStream<TcpStream>,
    first: Utf8Bytes,
    more: &mut impl FnMut() -> Option<Utf8Bytes>,
) -> bool {
    let mut next = Some(first);
    let mut fed = 0;
    while let Some(text) = next.take() {
        if ws.feed(Message::Text(text)).await.is_err() {
            return false;
        }
        fed += 1;
        if fed < BATCH {
            next = more();
        }
    }
    ws.flush().await.is_ok()
}

/// The next frame of a client's own queue; never, for a client without one.
async fn next_own(own: &mut Option<mpsc::Receiver<Utf8Bytes>>) -> Option<Utf8Bytes> {
    match own {
        Some(own) => own.recv().await,
        None => std::future::pending().await,
    }
}
