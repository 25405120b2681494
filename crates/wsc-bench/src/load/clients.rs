//! The clients of a run: connecting them all (spread over nodes and source addresses, a
//! bounded number of handshakes in flight), each one reading its frames, answering pings
//! and acks, and counting what it received (exact duplicates, latency into the shared
//! histogram).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::{Endpoint, Pattern, Protocol, now_us, round_trip_histogram};

pub(super) struct Shared {
    pub(super) protocol: Protocol,
    pub(super) ack: bool,
    pub(super) messages: u32,
    pub(super) pattern: Pattern,
    pub(super) connections: usize,
    pub(super) connected: AtomicUsize,
    pub(super) failed: AtomicUsize,
    pub(super) settled: AtomicUsize,
    pub(super) delivered: AtomicU64,
    pub(super) duplicated: AtomicU64,
    pub(super) complete: AtomicUsize,
    pub(super) latency: Mutex<Histogram<u64>>,
    pub(super) last_delivery_us: AtomicU64,
    /// Bytes of the distinct deliveries' frames (their text).
    pub(super) frame_bytes: AtomicU64,
    pub(super) first_error: Mutex<Option<String>>,
}

/// Where clients connect from and to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spread<'a> {
    /// Client `i` connects to `nodes[i % len]`; empty: to the endpoint's own address.
    pub(super) nodes: &'a [SocketAddr],
    /// Client `i` connects from `127.0.0.<source_base + i % sources>`.
    pub(super) source_base: u8,
    /// How many source addresses.
    pub(super) sources: u8,
    /// Client `i` is user `load-<first + i>`.
    pub(super) first: usize,
}

impl Spread<'_> {
    /// One node, sources from `127.0.0.1`, users from `load-0`.
    pub(super) fn over(nodes: &[SocketAddr], sources: u8) -> Spread<'_> {
        Spread {
            nodes,
            source_base: 1,
            sources,
            first: 0,
        }
    }

    fn source(&self, i: usize) -> Ipv4Addr {
        let offset = (i % self.sources.max(1) as usize) as u8;
        Ipv4Addr::new(127, 0, 0, self.source_base.saturating_add(offset))
    }
}

/// Clients connected to the server under test; the memory its process had before them.
pub(super) struct Connected {
    pub(super) shared: Arc<Shared>,
    pub(super) clients: tokio::task::JoinSet<()>,
    pub(super) connected: usize,
    pub(super) rss_before: u64,
}

/// Connects `connections` clients (each then reads until aborted, answering pings) and
/// waits until every one connected; fails when any did not.
pub(super) async fn connect_all(
    endpoint: Endpoint,
    connections: usize,
    (messages, pattern, ack): (u32, Pattern, bool),
    spread: Spread<'_>,
    concurrency: usize,
) -> Result<Connected, String> {
    let shared = Arc::new(Shared {
        protocol: endpoint.protocol,
        ack,
        messages,
        pattern,
        connections,
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        settled: AtomicUsize::new(0),
        delivered: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
        complete: AtomicUsize::new(0),
        latency: Mutex::new(round_trip_histogram()?),
        last_delivery_us: AtomicU64::new(0),
        frame_bytes: AtomicU64::new(0),
        first_error: Mutex::new(None),
    });
    let rss_before = crate::server::sample(endpoint.pid)?.rss;
    let permits = Arc::new(Semaphore::new(concurrency.max(1)));
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..connections {
        let source = spread.source(i);
        let ws = match spread.nodes.len() {
            0 => endpoint.ws,
            n => spread.nodes[i % n],
        };
        let endpoint = Endpoint { ws, ..endpoint };
        let who = (i, spread.first);
        clients.spawn(client(
            who,
            source,
            endpoint,
            permits.clone(),
            shared.clone(),
        ));
    }
    // Wait until every client connected or failed.
    let connect_deadline = Instant::now() + Duration::from_secs(120);
    while shared.settled.load(Ordering::Acquire) < connections {
        if Instant::now() > connect_deadline {
            return Err(format!(
                "connecting timed out: {} of {} settled",
                shared.settled.load(Ordering::Acquire),
                connections
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let connected = shared.connected.load(Ordering::Acquire);
    if connected < connections {
        let first = shared.first_error.lock().map(|e| e.clone()).ok().flatten();
        return Err(format!(
            "{} of {} connections failed; first: {}",
            shared.failed.load(Ordering::Acquire),
            connections,
            first.unwrap_or_default()
        ));
    }
    Ok(Connected {
        shared,
        clients,
        connected,
        rss_before,
    })
}

/// The sequence number and send time in a frame's text, wherever the framing put them.
pub(super) fn marker(text: &str) -> Option<(u32, u64)> {
    let start = text.find('~')?;
    let mut parts = text[start + 1..].splitn(3, '~');
    let seq = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((seq, sent))
}

/// Client `i` of a run, user `load-<first + i>`.
async fn client(
    (i, first): (usize, usize),
    source: Ipv4Addr,
    endpoint: Endpoint,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let permit = permits.acquire_owned().await;
    let own = shared.pattern == Pattern::PerClient;
    let ws = match connect(first + i, source, endpoint, own).await {
        Ok(ws) => ws,
        Err(e) => {
            shared.failed.fetch_add(1, Ordering::AcqRel);
            if let Ok(mut first) = shared.first_error.lock() {
                first.get_or_insert(e);
            }
            shared.settled.fetch_add(1, Ordering::AcqRel);
            return;
        }
    };
    drop(permit);
    shared.connected.fetch_add(1, Ordering::AcqRel);
    shared.settled.fetch_add(1, Ordering::AcqRel);
    let expected = match shared.pattern {
        Pattern::Broadcast => shared.messages,
        // Publishes i, i + n, i + 2n, ... below `messages`.
        Pattern::PerClient => {
            let (m, n) = (shared.messages as usize, shared.connections.max(1));
            (m / n + usize::from(i < m % n)) as u32
        }
    };
    if expected == 0 {
        shared.complete.fetch_add(1, Ordering::AcqRel);
    }
    receive(ws, &shared, expected).await;
}

pub(super) type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

pub(super) async fn connect(
    i: usize,
    source: Ipv4Addr,
    endpoint: Endpoint,
    own: bool,
) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| e.to_string())?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = socket
        .connect(endpoint.ws)
        .await
        .map_err(|e| format!("connect from {source}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let url = format!("ws://{}{}", endpoint.ws, endpoint.protocol.path(i, own));
    // Small buffers: ten thousand clients with tungstenite's defaults would need gigabytes.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(30),
        tokio_tungstenite::client_async_with_config(url, tcp, Some(config)),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|e| format!("handshake: {e}"))?;
    if endpoint.protocol == Protocol::SocketIo {
        // Engine.IO open packet, then join the default namespace and wait for its answer.
        expect_prefix(&mut ws, "0").await?;
        ws.send(Message::text("40"))
            .await
            .map_err(|e| e.to_string())?;
        expect_prefix(&mut ws, "40").await?;
    }
    Ok(ws)
}

/// Reads Engine.IO packets until one starts with `prefix`, answering pings on the way.
async fn expect_prefix(ws: &mut Ws, prefix: &str) -> Result<(), String> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .map_err(|_| format!("no {prefix:?} packet in time"))?;
        match next {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3"))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Some(Ok(Message::Text(text))) if text.starts_with(prefix) => return Ok(()),
            other => return Err(format!("expected a {prefix:?} packet, got {other:?}")),
        }
    }
}

async fn receive(mut ws: Ws, shared: &Shared, expected: u32) {
    let mut seen = vec![0u64; (shared.messages as usize).div_ceil(64)];
    let mut count = 0u32;
    let mut latencies: Vec<u64> = Vec::with_capacity(64);
    let mut bytes = 0u64;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        if shared.protocol == Protocol::SocketIo && text.as_str() == "2" {
            // Engine.IO ping: answer, or the server drops the client.
            if ws.send(Message::text("3")).await.is_err() {
                break;
            }
            continue;
        }
        if shared.ack
            && let Some(reply) = shared.protocol.ack_reply(&text)
            && ws.send(Message::text(reply)).await.is_err()
        {
            break;
        }
        let Some((seq, sent)) = marker(&text) else {
            continue;
        };
        let now = now_us();
        let (word, bit) = (seq as usize / 64, 1u64 << (seq % 64));
        let Some(slot) = seen.get_mut(word) else {
            continue;
        };
        if *slot & bit != 0 {
            shared.duplicated.fetch_add(1, Ordering::AcqRel);
            continue;
        }
        *slot |= bit;
        count += 1;
        shared.delivered.fetch_add(1, Ordering::AcqRel);
        shared.last_delivery_us.fetch_max(now, Ordering::AcqRel);
        latencies.push(now.saturating_sub(sent).max(1));
        bytes += text.len() as u64;
        if latencies.len() == latencies.capacity() {
            flush(shared, &mut latencies, &mut bytes);
        }
        if count == expected {
            flush(shared, &mut latencies, &mut bytes);
            shared.complete.fetch_add(1, Ordering::AcqRel);
        }
    }
    flush(shared, &mut latencies, &mut bytes);
}

/// Hands a client's latencies and frame bytes to the run (in batches: one contended update
/// per frame would cost the generator more CPU than the frame).
fn flush(shared: &Shared, latencies: &mut Vec<u64>, bytes: &mut u64) {
    shared
        .frame_bytes
        .fetch_add(std::mem::take(bytes), Ordering::AcqRel);
    if latencies.is_empty() {
        return;
    }
    if let Ok(mut histogram) = shared.latency.lock() {
        for l in latencies.drain(..) {
            histogram.saturating_record(l);
        }
    }
}
