//! The load generator: WebSocket clients that speak the protocol of the server under test
//! (the gateway's, the bare baseline's raw frames, or Socket.IO), publishes through the
//! server's HTTP API, and what came of them: deliveries per second, latency percentiles from
//! an HDR histogram, exact lost and duplicated counts, the server's and the generator's own
//! CPU, and idle memory per connection.
//!
//! Every published payload starts with `~<seq>~<sent µs>~`, so a client finds its number and
//! age in any framing (a JSON `content`, a Socket.IO event, a raw frame) without parsing it.
//! Clients spread over `127.0.0.<1..=sources>` source addresses, so one generator can hold
//! more connections than one source address has ports.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use gateway_server::grpc::proto::{
    self, BroadcastRequest, SendRequest, gateway_client::GatewayClient,
};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tonic::transport::Channel;

/// How long a server waits for a client's acknowledgement in the ack scenario before the
/// send fails (it never should: the clients ack at once).
pub const ACK_TIMEOUT_MS: u64 = 10_000;

/// What the server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The gateway: `/ws?user_id=...`, JSON frames, `POST /api/v1/broadcast`.
    Wsc,
    /// The bare baseline (`wsc-bare`): raw text frames, `POST /publish`.
    Bare,
    /// Socket.IO (`wsc-socketio`): Engine.IO v4 over WebSocket, `POST /publish`.
    SocketIo,
}

impl Protocol {
    /// Parses `wsc`, `bare` or `socketio`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "wsc" => Ok(Protocol::Wsc),
            "bare" => Ok(Protocol::Bare),
            "socketio" => Ok(Protocol::SocketIo),
            other => Err(format!("unknown protocol {other:?} (wsc, bare, socketio)")),
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Wsc => "gateway-server",
            Protocol::Bare => "bare tokio-tungstenite",
            Protocol::SocketIo => "socketioxide 0.18",
        }
    }

    /// Where client `i` connects; `own` asks the peers for a queue or room of its own (the
    /// gateway addresses every user anyway).
    fn path(self, i: usize, own: bool) -> String {
        match (self, own) {
            (Protocol::Wsc, _) => format!("/ws?user_id=load-{i}"),
            (Protocol::Bare, false) => "/".to_owned(),
            (Protocol::Bare, true) => format!("/?client={i}"),
            (Protocol::SocketIo, false) => "/socket.io/?EIO=4&transport=websocket".to_owned(),
            (Protocol::SocketIo, true) => {
                format!("/socket.io/?EIO=4&transport=websocket&client={i}")
            }
        }
    }

    /// The request that publishes `payload` to everyone, or to client `target` only; with
    /// `ack`, a request that answers once the client acknowledged the frame.
    fn publish(self, payload: &str, target: Option<usize>, ack: bool) -> (String, String) {
        match (self, target) {
            (Protocol::Wsc, None) => (
                "/api/v1/broadcast".to_owned(),
                serde_json::json!({ "content": payload }).to_string(),
            ),
            (Protocol::Wsc, Some(i)) if ack => (
                format!("/api/v1/users/load-{i}/messages"),
                serde_json::json!({
                    "content": payload,
                    "ack": { "timeout_ms": ACK_TIMEOUT_MS, "retries": 0 },
                })
                .to_string(),
            ),
            (Protocol::Wsc, Some(i)) => (
                format!("/api/v1/users/load-{i}/messages"),
                serde_json::json!({ "content": payload }).to_string(),
            ),
            (Protocol::Bare | Protocol::SocketIo, None) => {
                ("/publish".to_owned(), payload.to_owned())
            }
            (Protocol::Bare | Protocol::SocketIo, Some(i)) if ack => {
                (format!("/publish/{i}?ack"), payload.to_owned())
            }
            (Protocol::Bare | Protocol::SocketIo, Some(i)) => {
                (format!("/publish/{i}"), payload.to_owned())
            }
        }
    }

    /// The answer a client sends to a frame that asks for an acknowledgement, if `text`
    /// asks for one: the gateway's ack frame, the bare baseline's `ack`, or a Socket.IO ack
    /// packet (`43<id>[...]` for an event `42<id>[...]`).
    fn ack_reply(self, text: &str) -> Option<String> {
        match self {
            Protocol::Wsc => {
                if !text.contains("\"require_ack\":true") {
                    return None;
                }
                let start = text.find("\"message_id\":\"")? + "\"message_id\":\"".len();
                let end = start + text[start..].find('"')?;
                Some(format!(
                    "{{\"message_type\":\"ack\",\"message_id\":\"{}\"}}",
                    &text[start..end]
                ))
            }
            Protocol::Bare => Some("ack".to_owned()),
            Protocol::SocketIo => {
                let id = text.strip_prefix("42")?.split('[').next()?;
                (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| format!("43{id}[\"ok\"]"))
            }
        }
    }
}

/// The server under test.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Its protocol.
    pub protocol: Protocol,
    /// Where clients connect.
    pub ws: SocketAddr,
    /// Where publishes go.
    pub publish: SocketAddr,
    /// Its process, for memory and CPU.
    pub pid: u32,
}

/// How publishes reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Its HTTP API, keep-alive HTTP/1.1 connections.
    #[default]
    Http,
    /// The gateway's gRPC API (`wsc.v1.Gateway`), one HTTP/2 channel per publisher; the
    /// peers have none.
    Grpc,
    /// The gateway embedded in `wsc-inproc`, whose bare `POST /publish[/N]` (the peers'
    /// paths) calls the hub in-process: no API stack in between.
    InProcess,
}

impl Endpoint {
    /// A gateway process: clients on its public listener, publishes to its HTTP API.
    pub fn gateway(server: &crate::server::ServerProcess) -> Endpoint {
        Endpoint {
            protocol: Protocol::Wsc,
            ws: server.public,
            publish: server.api,
            pid: server.pid(),
        }
    }
}

/// Who receives a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Every client (a broadcast).
    #[default]
    Broadcast,
    /// Publish `seq` goes to client `seq % connections` only (point to point, through the
    /// per-user API).
    PerClient,
}

/// A fan-out run: every client receives every publish, or each publish goes to one client.
#[derive(Debug, Clone)]
pub struct Fanout {
    /// Client connections.
    pub connections: usize,
    /// Who receives each publish.
    pub pattern: Pattern,
    /// Publishes.
    pub messages: u32,
    /// Publishes per second; `None` sends them as fast as `publishers` connections can.
    pub rate: Option<f64>,
    /// Each publish waits for the client's acknowledgement (per-client publishes only).
    pub ack: bool,
    /// The API the publishes go through.
    pub via: Via,
    /// Where clients connect when the server is several nodes: client `i` to
    /// `nodes[i % len]`; empty means the endpoint's own `ws` address.
    pub nodes: Vec<SocketAddr>,
    /// Publishing HTTP connections.
    pub publishers: usize,
    /// Payload bytes.
    pub size: usize,
    /// Source addresses `127.0.0.1` ... `127.0.0.<sources>`.
    pub sources: u8,
    /// Handshakes in flight.
    pub concurrency: usize,
    /// Wait after connecting before idle memory is read.
    pub settle: Duration,
    /// How long the run may wait for deliveries after the last publish.
    pub drain: Duration,
}

impl Default for Fanout {
    fn default() -> Self {
        Fanout {
            connections: 10_000,
            pattern: Pattern::Broadcast,
            messages: 200,
            rate: None,
            ack: false,
            via: Via::Http,
            nodes: Vec::new(),
            publishers: 8,
            size: 100,
            sources: 4,
            concurrency: 256,
            settle: Duration::from_secs(2),
            drain: Duration::from_secs(30),
        }
    }
}

/// What a fan-out run measured.
#[derive(Debug, Clone, Default)]
pub struct FanoutResult {
    /// Connections that completed their handshake.
    pub connected: usize,
    /// Server resident memory per connection once idle, in bytes.
    pub idle_bytes_per_connection: f64,
    /// Server resident memory per connection after the deliveries (what the burst left
    /// behind in buffers), in bytes.
    pub after_bytes_per_connection: f64,
    /// Deliveries expected: connected × messages (a broadcast) or messages (per client).
    pub expected: u64,
    /// Distinct deliveries received.
    pub delivered: u64,
    /// Expected but never received.
    pub lost: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// First publish to last delivery, in seconds.
    pub elapsed_s: f64,
    /// Distinct deliveries per second over `elapsed_s`.
    pub deliveries_per_s: f64,
    /// Latency percentiles (send to receive), in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Publish calls answered per second (a call with an ack answers once the client
    /// acked).
    pub calls_per_s: f64,
    /// Publish call round trip percentiles (request sent to answer read), in microseconds.
    pub call_p50_us: u64,
    /// 99th percentile of the call round trip.
    pub call_p99_us: u64,
    /// Calls with an ack that were answered without one (the server gave up waiting).
    pub unacked: u64,
    /// Server CPU over the run, in seconds.
    pub server_cpu_s: f64,
    /// The generator's own CPU over the run, in seconds (a saturated generator shows here).
    pub loadgen_cpu_s: f64,
}

impl FanoutResult {
    /// The markdown cells `p50 | p99 | p99.9 | lost | duplicated` of a table row.
    pub fn latency_and_loss_cells(&self) -> String {
        let ms = |us: u64| format!("{:.1} ms", us as f64 / 1000.0);
        format!(
            "{} | {} | {} | {} | {}",
            ms(self.p50_us),
            ms(self.p99_us),
            ms(self.p999_us),
            self.lost,
            self.duplicated
        )
    }

    /// Server CPU per delivery, in microseconds.
    pub fn server_us_per_delivery(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.delivered.max(1) as f64
    }

    /// Server CPU per publish call, in microseconds.
    pub fn server_us_per_call(&self, calls: u32) -> f64 {
        self.server_cpu_s * 1e6 / f64::from(calls.max(1))
    }

    /// One line of `key=value` pairs.
    pub fn line(&self) -> String {
        format!(
            "connected={} idle_bytes_per_conn={:.0} after_bytes_per_conn={:.0} expected={} delivered={} lost={} \
             duplicated={} elapsed_s={:.3} deliveries_per_s={:.0} \
             p50_us={} p99_us={} p999_us={} calls_per_s={:.0} call_p50_us={} call_p99_us={} \
             unacked={} server_cpu_s={:.2} server_us_per_delivery={:.3} loadgen_cpu_s={:.2}",
            self.connected,
            self.idle_bytes_per_connection,
            self.after_bytes_per_connection,
            self.expected,
            self.delivered,
            self.lost,
            self.duplicated,
            self.elapsed_s,
            self.deliveries_per_s,
            self.p50_us,
            self.p99_us,
            self.p999_us,
            self.calls_per_s,
            self.call_p50_us,
            self.call_p99_us,
            self.unacked,
            self.server_cpu_s,
            self.server_us_per_delivery(),
            self.loadgen_cpu_s
        )
    }
}

struct Shared {
    protocol: Protocol,
    ack: bool,
    messages: u32,
    pattern: Pattern,
    connections: usize,
    connected: AtomicUsize,
    failed: AtomicUsize,
    settled: AtomicUsize,
    delivered: AtomicU64,
    duplicated: AtomicU64,
    complete: AtomicUsize,
    latency: Mutex<Histogram<u64>>,
    last_delivery_us: AtomicU64,
    first_error: Mutex<Option<String>>,
}

/// Microseconds since the Unix epoch (the clock publishes and receipts share).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Where clients connect from and to.
#[derive(Debug, Clone, Copy)]
struct Spread<'a> {
    /// Client `i` connects to `nodes[i % len]`; empty: to the endpoint's own address.
    nodes: &'a [SocketAddr],
    /// Client `i` connects from `127.0.0.<source_base + i % sources>`.
    source_base: u8,
    /// How many source addresses.
    sources: u8,
    /// Client `i` is user `load-<first + i>`.
    first: usize,
}

impl Spread<'_> {
    /// One node, sources from `127.0.0.1`, users from `load-0`.
    fn over(nodes: &[SocketAddr], sources: u8) -> Spread<'_> {
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
struct Connected {
    shared: Arc<Shared>,
    clients: tokio::task::JoinSet<()>,
    connected: usize,
    rss_before: u64,
}

/// Connects `connections` clients (each then reads until aborted, answering pings) and
/// waits until every one connected; fails when any did not.
async fn connect_all(
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

/// What an idle run measured.
#[derive(Debug, Clone, Default)]
pub struct IdleResult {
    /// Connections held.
    pub connected: usize,
    /// Server resident memory per connection, in bytes (growth over the empty server).
    pub bytes_per_connection: f64,
    /// Server resident memory with every connection held, in bytes.
    pub rss: u64,
    /// Server CPU per connection-second while idle, in nanoseconds.
    pub cpu_ns_per_connection_second: f64,
    /// Connections that ended during the idle window (should be none).
    pub dropped: usize,
}

/// Holds `connections` idle clients (heartbeats answered) for `window` after `settle`; the
/// server's memory per connection and CPU per connection-second.
pub async fn idle(
    endpoint: Endpoint,
    connections: usize,
    settle: Duration,
    window: Duration,
) -> Result<IdleResult, String> {
    // The fan-out's connect settings (source addresses, handshakes in flight).
    let defaults = Fanout::default();
    let mut held = connect_all(
        endpoint,
        connections,
        (0, Pattern::Broadcast, false),
        Spread::over(&[], defaults.sources),
        defaults.concurrency,
    )
    .await?;
    tokio::time::sleep(settle).await;
    let rss = crate::server::sample(endpoint.pid)?.rss;
    let cpu0 = cpu_seconds(endpoint.pid)?;
    tokio::time::sleep(window).await;
    let cpu = cpu_seconds(endpoint.pid)? - cpu0;
    // A client task ends only when its connection ended.
    let mut dropped = 0;
    while held.clients.try_join_next().is_some() {
        dropped += 1;
    }
    held.clients.abort_all();
    while held.clients.join_next().await.is_some() {}
    let connected = held.connected;
    Ok(IdleResult {
        connected,
        bytes_per_connection: rss.saturating_sub(held.rss_before) as f64 / connected as f64,
        rss,
        cpu_ns_per_connection_second: cpu * 1e9
            / (connected as f64 * window.as_secs_f64()).max(1e-9),
        dropped,
    })
}

/// A churn run: `workers` clients each connect, close and connect again for `duration`.
#[derive(Debug, Clone)]
pub struct Churn {
    /// Clients connecting and closing at once.
    pub workers: usize,
    /// How long they keep at it.
    pub duration: Duration,
    /// Source addresses `127.0.0.1` ... `127.0.0.<sources>` (every cycle takes a port).
    pub sources: u8,
}

impl Default for Churn {
    fn default() -> Self {
        Churn {
            workers: 64,
            duration: Duration::from_secs(10),
            sources: 32,
        }
    }
}

/// What a churn run measured.
#[derive(Debug, Clone, Default)]
pub struct ChurnResult {
    /// Connects that completed (handshake and, for Socket.IO, the namespace join) and were
    /// then closed.
    pub cycles: u64,
    /// Cycles per second.
    pub cycles_per_s: f64,
    /// Connects that failed.
    pub failed: u64,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Connect latency (TCP connect to a usable connection), in microseconds.
    pub connect_p50_us: u64,
    /// 99th percentile of the connect latency.
    pub connect_p99_us: u64,
    /// Server CPU per cycle, in microseconds.
    pub server_us_per_cycle: f64,
    /// Server descriptors open two seconds after the run, minus those before it (a leak
    /// shows here).
    pub descriptors_left: i64,
    /// Server resident memory after the run, minus before it, in bytes.
    pub rss_growth: i64,
}

/// Runs a churn against `endpoint`: every cycle a new connection that completes its
/// handshake, closes with a close frame and waits for the server's answer (or the end of
/// the stream).
pub async fn churn(endpoint: Endpoint, run: &Churn) -> Result<ChurnResult, String> {
    let before = crate::server::sample(endpoint.pid)?;
    let server_cpu0 = cpu_seconds(endpoint.pid)?;
    let started = Instant::now();
    let deadline = started + run.duration;
    let mut workers = tokio::task::JoinSet::new();
    let stride = run.workers.max(1);
    for w in 0..stride {
        let source = Ipv4Addr::new(127, 0, 0, 1 + (w % run.sources.max(1) as usize) as u8);
        workers.spawn(async move {
            let mut latencies = round_trip_histogram()?;
            let (mut cycles, mut failed, mut first_error) = (0u64, 0u64, None);
            let mut i = w;
            while Instant::now() < deadline {
                let begun = Instant::now();
                match connect(i, source, endpoint, false).await {
                    Ok(mut ws) => {
                        latencies.saturating_record((begun.elapsed().as_micros() as u64).max(1));
                        let _ = ws.close(None).await;
                        // Read until the server's close answer ends the stream.
                        let _ = tokio::time::timeout(Duration::from_secs(5), async {
                            while let Some(Ok(_)) = ws.next().await {}
                        })
                        .await;
                        cycles += 1;
                    }
                    Err(e) => {
                        failed += 1;
                        first_error.get_or_insert(e);
                    }
                }
                // Each cycle is a new user: user ids never repeat across workers.
                i += stride;
            }
            Ok::<_, String>((latencies, cycles, failed, first_error))
        });
    }
    let mut result = ChurnResult::default();
    let mut latencies = round_trip_histogram()?;
    while let Some(done) = workers.join_next().await {
        let (worker, cycles, failed, first_error) = done.map_err(|e| e.to_string())??;
        latencies.add(&worker).map_err(|e| e.to_string())?;
        result.cycles += cycles;
        result.failed += failed;
        if result.first_error.is_none() {
            result.first_error = first_error;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(endpoint.pid)? - server_cpu0;
    // The server closes its side of the last connections a moment after their close
    // frames; give it that moment before counting what is left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = crate::server::sample(endpoint.pid)?;
    result.cycles_per_s = result.cycles as f64 / elapsed.max(1e-9);
    result.connect_p50_us = latencies.value_at_quantile(0.5);
    result.connect_p99_us = latencies.value_at_quantile(0.99);
    result.server_us_per_cycle = server_cpu * 1e6 / result.cycles.max(1) as f64;
    result.descriptors_left = after.fds as i64 - before.fds as i64;
    result.rss_growth = after.rss as i64 - before.rss as i64;
    Ok(result)
}

/// Clients held for broadcasts that another process publishes (a generator of the scale
/// scenario).
pub struct Held {
    connected: Connected,
}

/// What the held clients received.
#[derive(Debug, Clone, Copy, Default)]
pub struct HeldOutcome {
    /// Distinct deliveries.
    pub delivered: u64,
    /// Received more than once.
    pub duplicated: u64,
    /// Median latency (publish to receipt), in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
}

impl Held {
    /// Connections that completed their handshake.
    pub fn connected(&self) -> usize {
        self.connected.connected
    }

    /// Waits until every client received every broadcast, or nothing arrived for `drain`
    /// after the first delivery, or (nothing arrived at all) ten minutes passed; then closes
    /// the clients and reports.
    pub async fn wait(mut self, drain: Duration) -> HeldOutcome {
        let shared = self.connected.shared.clone();
        let started = Instant::now();
        while shared.complete.load(Ordering::Acquire) < self.connected.connected {
            let last = shared.last_delivery_us.load(Ordering::Acquire);
            let quiet = last > 0 && now_us().saturating_sub(last) > drain.as_micros() as u64;
            if quiet || started.elapsed() > Duration::from_secs(600) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.connected.clients.abort_all();
        while self.connected.clients.join_next().await.is_some() {}
        let (p50_us, p99_us) = shared
            .latency
            .lock()
            .map(|h| (h.value_at_quantile(0.5), h.value_at_quantile(0.99)))
            .unwrap_or_default();
        HeldOutcome {
            delivered: shared.delivered.load(Ordering::Acquire),
            duplicated: shared.duplicated.load(Ordering::Acquire),
            p50_us,
            p99_us,
        }
    }
}

/// Connects `connections` gateway clients for `messages` broadcasts: client `i` is user
/// `load-<first + i>`, connects to `nodes[i % len]`, from `127.0.0.<source_base + i % 4>`.
pub async fn hold(
    endpoint: Endpoint,
    nodes: &[SocketAddr],
    connections: usize,
    (first, source_base): (usize, u8),
    messages: u32,
) -> Result<Held, String> {
    let defaults = Fanout::default();
    let spread = Spread {
        nodes,
        source_base,
        sources: 4,
        first,
    };
    let connected = connect_all(
        endpoint,
        connections,
        (messages, Pattern::Broadcast, false),
        spread,
        defaults.concurrency,
    )
    .await?;
    Ok(Held { connected })
}

/// Runs a fan-out against `endpoint`.
pub async fn fanout(endpoint: Endpoint, run: &Fanout) -> Result<FanoutResult, String> {
    let Connected {
        shared,
        mut clients,
        connected,
        rss_before,
    } = connect_all(
        endpoint,
        run.connections,
        (run.messages, run.pattern, run.ack),
        Spread::over(&run.nodes, run.sources),
        run.concurrency,
    )
    .await?;
    tokio::time::sleep(run.settle).await;
    let rss_idle = crate::server::sample(endpoint.pid)?.rss;
    let server_cpu0 = cpu_seconds(endpoint.pid)?;
    let own_cpu0 = cpu_seconds(std::process::id())?;
    let started = Instant::now();
    let started_us = now_us();
    let calls = publish_all(endpoint, run).await?;
    let publish_elapsed = started.elapsed().as_secs_f64();
    // Wait for the deliveries: until every client has everything, or nothing arrived for
    // the drain time.
    let published_us = now_us();
    while shared.complete.load(Ordering::Acquire) < connected {
        let last = shared
            .last_delivery_us
            .load(Ordering::Acquire)
            .max(published_us);
        if now_us().saturating_sub(last) > run.drain.as_micros() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let server_cpu = cpu_seconds(endpoint.pid)? - server_cpu0;
    let own_cpu = cpu_seconds(std::process::id())? - own_cpu0;
    let rss_after = crate::server::sample(endpoint.pid)?.rss;
    clients.abort_all();
    while clients.join_next().await.is_some() {}
    let last = shared.last_delivery_us.load(Ordering::Acquire);
    let elapsed_s = last.saturating_sub(started_us) as f64 / 1e6;
    let delivered = shared.delivered.load(Ordering::Acquire);
    let expected = match run.pattern {
        Pattern::Broadcast => connected as u64 * u64::from(run.messages),
        Pattern::PerClient => u64::from(run.messages),
    };
    let histogram = shared.latency.lock().map_err(|e| e.to_string())?;
    Ok(FanoutResult {
        connected,
        idle_bytes_per_connection: rss_idle.saturating_sub(rss_before) as f64 / connected as f64,
        after_bytes_per_connection: rss_after.saturating_sub(rss_before) as f64 / connected as f64,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicated: shared.duplicated.load(Ordering::Acquire),
        elapsed_s,
        deliveries_per_s: delivered as f64 / elapsed_s.max(1e-9),
        p50_us: histogram.value_at_quantile(0.5),
        p99_us: histogram.value_at_quantile(0.99),
        p999_us: histogram.value_at_quantile(0.999),
        calls_per_s: f64::from(run.messages) / publish_elapsed.max(1e-9),
        call_p50_us: calls.round_trips.value_at_quantile(0.5),
        call_p99_us: calls.round_trips.value_at_quantile(0.99),
        unacked: calls.unacked,
        server_cpu_s: server_cpu,
        loadgen_cpu_s: own_cpu,
    })
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .map_err(|e| e.to_string())?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

/// What the publish calls of a run measured.
pub(crate) struct Calls {
    /// Request sent to answer read, in microseconds.
    round_trips: Histogram<u64>,
    /// Calls with an ack answered without one.
    unacked: u64,
}

/// Sends `run.messages` publishes: at `run.rate` per second, or back to back from
/// `run.publishers` connections.
pub(crate) async fn publish_all(endpoint: Endpoint, run: &Fanout) -> Result<Calls, String> {
    let next = Arc::new(AtomicU32::new(0));
    let interval = run
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001)));
    let started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..run.publishers.max(1) {
        let (next, messages, size) = (next.clone(), run.messages, run.size);
        let (ack, via) = (run.ack, run.via);
        let (pattern, connections) = (run.pattern, run.connections.max(1));
        publishers.spawn(async move {
            let mut calls = Calls {
                round_trips: round_trip_histogram()?,
                unacked: 0,
            };
            let mut caller = Caller::connect(endpoint, via).await?;
            loop {
                let seq = next.fetch_add(1, Ordering::AcqRel);
                if seq >= messages {
                    return Ok::<_, String>(calls);
                }
                if let Some(interval) = interval {
                    // Publish `seq` at its slot, whichever connection is free.
                    let due = started + interval * seq;
                    tokio::time::sleep_until(due.into()).await;
                }
                let payload = payload(seq, size);
                let target = (pattern == Pattern::PerClient).then_some(seq as usize % connections);
                let sent = Instant::now();
                let answer = caller
                    .publish(&payload, target, ack)
                    .await
                    .map_err(|e| format!("publish {seq}: {e}"))?;
                calls
                    .round_trips
                    .saturating_record((sent.elapsed().as_micros() as u64).max(1));
                // The gateway answers an acknowledged send with its outcome; the peers
                // answer only once acked (or fail the call).
                let acked =
                    endpoint.protocol != Protocol::Wsc || answer.contains("\"status\":\"acked\"");
                if ack && !acked {
                    calls.unacked += 1;
                }
            }
        });
    }
    let mut all = Calls {
        round_trips: round_trip_histogram()?,
        unacked: 0,
    };
    while let Some(done) = publishers.join_next().await {
        let calls = done.map_err(|e| e.to_string())??;
        all.round_trips
            .add(&calls.round_trips)
            .map_err(|e| e.to_string())?;
        all.unacked += calls.unacked;
    }
    Ok(all)
}

fn round_trip_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A publishing connection: keep-alive HTTP/1.1, or a gRPC channel to the gateway.
enum Caller {
    /// The connection, the `host` header its requests carry, and whose paths it posts to
    /// (the gateway's API, or the peers' `/publish` that `wsc-inproc` serves too).
    Http(Sender, String, Protocol),
    Grpc(GatewayClient<Channel>),
}

impl Caller {
    async fn connect(endpoint: Endpoint, via: Via) -> Result<Self, String> {
        match via {
            Via::Http | Via::InProcess => Ok(Caller::Http(
                http_connection(endpoint.publish).await?,
                endpoint.publish.to_string(),
                match via {
                    Via::InProcess => Protocol::Bare,
                    _ => endpoint.protocol,
                },
            )),
            Via::Grpc if endpoint.protocol == Protocol::Wsc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", endpoint.publish))
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true)
                        .connect()
                        .await
                        .map_err(|e| format!("gRPC connection: {e}"))?;
                Ok(Caller::Grpc(GatewayClient::new(channel)))
            }
            Via::Grpc => Err(format!("{} has no gRPC API", endpoint.protocol.name())),
        }
    }

    /// Publishes `payload` to everyone, or to client `target`; the answer's body (the
    /// gateway's delivery report). A refused publish is an error.
    async fn publish(
        &mut self,
        payload: &str,
        target: Option<usize>,
        ack: bool,
    ) -> Result<String, String> {
        match self {
            Caller::Http(sender, host, paths) => {
                let (path, body) = paths.publish(payload, target, ack);
                let request = hyper::Request::post(path)
                    .header("host", host.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let answer = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if !status.is_success() {
                    return Err(status.to_string());
                }
                Ok(String::from_utf8_lossy(&answer).into_owned())
            }
            Caller::Grpc(client) => {
                let message_json = serde_json::json!({ "content": payload }).to_string();
                let reply = match target {
                    None => {
                        let request = BroadcastRequest {
                            message_json,
                            ..BroadcastRequest::default()
                        };
                        client.broadcast(request).await
                    }
                    Some(i) => {
                        let request = SendRequest {
                            target: format!("load-{i}"),
                            message_json,
                            ack: ack.then_some(proto::Ack {
                                timeout_ms: ACK_TIMEOUT_MS,
                                retries: Some(0),
                            }),
                        };
                        client.send_to_user(request).await
                    }
                };
                reply
                    .map(|r| r.into_inner().report_json)
                    .map_err(|status| status.to_string())
            }
        }
    }
}

async fn http_connection(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("publish connection: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `~<seq>~<sent µs>~` padded with `x` to `size` bytes.
fn payload(seq: u32, size: usize) -> String {
    let mut text = format!("~{seq}~{}~", now_us());
    while text.len() < size {
        text.push('x');
    }
    text
}

/// The sequence number and send time in a frame's text, wherever the framing put them.
fn marker(text: &str) -> Option<(u32, u64)> {
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

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn connect(i: usize, source: Ipv4Addr, endpoint: Endpoint, own: bool) -> Result<Ws, String> {
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
        if latencies.len() == latencies.capacity() {
            flush(shared, &mut latencies);
        }
        if count == expected {
            flush(shared, &mut latencies);
            shared.complete.fetch_add(1, Ordering::AcqRel);
        }
    }
    flush(shared, &mut latencies);
}

fn flush(shared: &Shared, latencies: &mut Vec<u64>) {
    if latencies.is_empty() {
        return;
    }
    if let Ok(mut histogram) = shared.latency.lock() {
        for l in latencies.drain(..) {
            histogram.saturating_record(l);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_marker_is_found_in_every_framing() {
        let p = payload(42, 100);
        assert_eq!(p.len(), 100);
        let sent = marker(&p).expect("raw").1;
        assert_eq!(marker(&p), Some((42, sent)));
        let json = serde_json::json!({"content": p}).to_string();
        assert_eq!(marker(&json), Some((42, sent)));
        let socket_io = format!("42[\"message\",\"{p}\"]");
        assert_eq!(marker(&socket_io), Some((42, sent)));
        assert_eq!(marker("no marker"), None);
    }

    #[test]
    fn every_protocol_answers_a_frame_that_asks_for_an_ack() {
        let frame = r#"{"content":"~1~2~","message_id":"m-7","require_ack":true}"#;
        assert_eq!(
            Protocol::Wsc.ack_reply(frame).as_deref(),
            Some(r#"{"message_type":"ack","message_id":"m-7"}"#)
        );
        let plain = r#"{"content":"~1~2~","message_id":"m-7"}"#;
        assert_eq!(Protocol::Wsc.ack_reply(plain), None);
        assert_eq!(
            Protocol::SocketIo
                .ack_reply(r#"4212["message","~1~2~"]"#)
                .as_deref(),
            Some(r#"4312["ok"]"#)
        );
        assert_eq!(
            Protocol::SocketIo.ack_reply(r#"42["message","~1~2~"]"#),
            None
        );
        assert_eq!(Protocol::Bare.ack_reply("~1~2~").as_deref(), Some("ack"));
    }
}
