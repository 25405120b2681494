//! End-to-end WebSocket fan-out benchmark against a running `gateway-server`.
//!
//! Run (the server's pid is needed for its memory and CPU; raise the fd limit first):
//!
//! ```text
//! ulimit -n 20000
//! cargo run --release -p examples --example loadgen -- --url ws://127.0.0.1:8081/ws \
//!     --api http://127.0.0.1:8080 --connections 5000 --messages 200 --size 100 \
//!     --server-pid <pid>
//! ```
//!
//! 1. Opens `--connections` WebSocket connections (user ids `<prefix>-<i>`, at most
//!    `--concurrency` handshakes in flight); each is one task that counts text frames.
//! 2. Reads the server's `VmRSS` before connecting and once every connection is open and idle
//!    (after `--settle` seconds): idle memory per connection = delta / connections.
//! 3. Sends `--messages` broadcasts with a `--size`-byte `content` through
//!    `POST /api/v1/broadcast` (plain HTTP/1.1 keep-alive, from `--api-conns` connections),
//!    and waits until every client received all of them (or `--timeout`). Deliveries/s =
//!    connections × messages / (first API call → last frame received); the server's CPU time
//!    over that window comes from `/proc/<pid>/stat`. `other_cpu_s` is the machine's busy time
//!    (`/proc/stat`) in that window not charged to the server or the loadgen: a build that
//!    started mid-run shows up there.
//!    With `--rate R` the broadcasts are paced at R per second instead of back to back.
//!    Each broadcast carries its send time (`data.sent_us`, wall clock, µs); every client
//!    records the time to its frame, and the summary gives `latency_p50_us`, `_p99_us` and
//!    `_max_us`. Point `--api` at one node and `--url` at another to measure across nodes.
//! 4. Prints one summary line of `key=value` pairs on stdout (progress goes to stderr).
//!
//! Against TLS listeners use `--url wss://...` and `--api https://...` with `--ca <pem>`, the
//! CA that signed the server's certificates (a private or test CA; nothing else is trusted).
//!
//! One connection is one file descriptor here and one in the server: keep `--connections` at
//! 8,000 or fewer per loadgen process. See docs/benchmarks.md for measured numbers.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const USAGE: &str = "usage: loadgen [--url ws://127.0.0.1:8081/ws] [--api http://127.0.0.1:8080] \
[--connections N] [--messages M] [--size BYTES] [--server-pid PID] [--concurrency 200] \
[--api-conns 1] [--threads 2] [--settle SECS] [--timeout SECS] [--prefix load] [--rate PER_SEC] \
[--ca CA.pem]";

/// Most connections one loadgen process opens (one fd each; the machine allows 20,000 per
/// process, and a few are needed for everything else).
const MAX_CONNECTIONS: usize = 8_000;

struct Args {
    url: String,
    api: String,
    connections: usize,
    messages: usize,
    size: usize,
    server_pid: Option<u32>,
    concurrency: usize,
    api_conns: usize,
    threads: usize,
    settle: Duration,
    timeout: Duration,
    prefix: String,
    /// Broadcasts per second (0 = back to back).
    rate: f64,
    /// A CA certificate (PEM) to trust for `wss://` and `https://` (a test or private CA).
    ca: Option<String>,
}

impl Args {
    fn parse() -> Result<Args, String> {
        let mut args = Args {
            url: "ws://127.0.0.1:8081/ws".to_owned(),
            api: "http://127.0.0.1:8080".to_owned(),
            connections: 1_000,
            messages: 100,
            size: 100,
            server_pid: None,
            concurrency: 200,
            api_conns: 1,
            threads: 2,
            settle: Duration::from_secs(3),
            timeout: Duration::from_secs(120),
            prefix: "load".to_owned(),
            rate: 0.0,
            ca: None,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            if flag == "--help" || flag == "-h" {
                return Err(USAGE.to_owned());
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
            let number = |v: &str| {
                v.parse::<usize>()
                    .map_err(|_| format!("{flag}: `{v}` is not a number"))
            };
            let seconds = |v: &str| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{flag}: `{v}` is not a number of seconds"))
            };
            match flag.as_str() {
                "--url" => args.url = value,
                "--api" => args.api = value,
                "--connections" | "-n" => args.connections = number(&value)?,
                "--messages" | "-m" => args.messages = number(&value)?,
                "--size" => args.size = number(&value)?,
                "--server-pid" => {
                    args.server_pid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("--server-pid: `{value}` is not a pid"))?,
                    )
                }
                "--concurrency" => args.concurrency = number(&value)?.max(1),
                "--api-conns" => args.api_conns = number(&value)?.max(1),
                "--threads" => args.threads = number(&value)?.max(1),
                "--settle" => args.settle = seconds(&value)?,
                "--timeout" => args.timeout = seconds(&value)?,
                "--prefix" => args.prefix = value,
                "--ca" => args.ca = Some(value),
                "--rate" => {
                    args.rate = value
                        .parse::<f64>()
                        .ok()
                        .filter(|r| r.is_finite() && *r >= 0.0)
                        .ok_or_else(|| format!("--rate: `{value}` is not a rate"))?
                }
                other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
            }
        }
        if args.connections == 0 || args.connections > MAX_CONNECTIONS {
            return Err(format!(
                "--connections must be 1..={MAX_CONNECTIONS} per loadgen process (one fd each)"
            ));
        }
        if args.messages > u32::MAX as usize {
            return Err("--messages is too large".to_owned());
        }
        Ok(args)
    }
}

fn main() -> ExitCode {
    let args = match Args::parse() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Some(soft) = soft_fd_limit()
        && soft < args.connections as u64 + 64
    {
        eprintln!(
            "the open-file limit is {soft}: {} connections need more (run `ulimit -n 20000` first)",
            args.connections
        );
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(1)
        }
    }
}

/// State shared by every client task and the driver.
struct Shared {
    connections: usize,
    /// Text frames each client must receive.
    target: u32,
    /// Text frames received so far, per client.
    received: Vec<AtomicU32>,
    connected: AtomicUsize,
    failed: AtomicUsize,
    /// Clients whose connection ended before they received `target` frames.
    lost: AtomicUsize,
    /// Clients that received `target` frames.
    complete: AtomicUsize,
    frame_len: AtomicUsize,
    first_error: Mutex<Option<String>>,
    last_frame: Mutex<Option<Instant>>,
    /// Signalled when every client connected or failed.
    connect_done: Notify,
    /// Signalled when a client completes or is lost.
    progress: Notify,
    /// Send-to-receive times of every frame, in µs (each client adds its own at the end).
    latencies: Mutex<Vec<u64>>,
}

impl Shared {
    fn connect_finished(&self) {
        let done = self.connected.load(Ordering::SeqCst) + self.failed.load(Ordering::SeqCst);
        if done == self.connections {
            self.connect_done.notify_one();
        }
    }

    fn received_total(&self) -> u64 {
        self.received
            .iter()
            .map(|c| u64::from(c.load(Ordering::Relaxed)))
            .sum()
    }
}

async fn run(args: Args) -> Result<bool, String> {
    let tls = tls_connector(args.ca.as_deref())?;
    let endpoint = WsEndpoint::parse(&args.url, &tls)?;
    let api = Arc::new(api_endpoint(&args.api, &tls)?);
    let clk_tck = clock_ticks_per_second();
    let pid = args.server_pid;
    if pid.is_none() {
        eprintln!("no --server-pid: server memory and CPU are not reported");
    }

    let shared = Arc::new(Shared {
        connections: args.connections,
        target: args.messages as u32,
        received: (0..args.connections).map(|_| AtomicU32::new(0)).collect(),
        connected: AtomicUsize::new(0),
        failed: AtomicUsize::new(0),
        lost: AtomicUsize::new(0),
        complete: AtomicUsize::new(0),
        frame_len: AtomicUsize::new(0),
        first_error: Mutex::new(None),
        last_frame: Mutex::new(None),
        connect_done: Notify::new(),
        progress: Notify::new(),
        latencies: Mutex::new(Vec::new()),
    });

    // 1. Connect.
    let rss_before = pid.and_then(rss_kib);
    let connect_cpu0 = pid.and_then(cpu_ticks);
    let connect_start = Instant::now();
    let permits = Arc::new(Semaphore::new(args.concurrency));
    // Small buffers: thousands of clients with tungstenite's 128 KiB default would need GBs.
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    for i in 0..args.connections {
        let url = endpoint.url_for(&format!("{}-{i}", args.prefix));
        let addr = endpoint.transport.clone();
        tokio::spawn(client(
            i,
            url,
            addr,
            config,
            permits.clone(),
            shared.clone(),
        ));
    }
    if tokio::time::timeout(args.timeout, shared.connect_done.notified())
        .await
        .is_err()
    {
        return Err(format!(
            "connecting timed out: {} connected, {} failed of {}",
            shared.connected.load(Ordering::SeqCst),
            shared.failed.load(Ordering::SeqCst),
            args.connections
        ));
    }
    let connect_secs = connect_start.elapsed().as_secs_f64();
    let connect_cpu = cpu_delta(connect_cpu0, pid.and_then(cpu_ticks), clk_tck);
    let connected = shared.connected.load(Ordering::SeqCst);
    let failed = shared.failed.load(Ordering::SeqCst);
    eprintln!(
        "connected {connected} of {} in {connect_secs:.2} s",
        args.connections
    );
    if failed > 0 {
        let first = shared.first_error.lock().map(|e| e.clone()).ok().flatten();
        eprintln!(
            "{failed} connections failed; first error: {}",
            first.unwrap_or_default()
        );
    }

    // 2. Idle memory.
    tokio::time::sleep(args.settle).await;
    let rss_idle = pid.and_then(rss_kib);
    let stats = http(&api, "GET", "/api/v1/stats", b"").await;
    let server_connections = stats
        .as_ref()
        .ok()
        .and_then(|(_, body)| json_u64(body, "connections"));

    let mut summary: Vec<(&str, String)> = vec![
        ("connections", args.connections.to_string()),
        ("connected", connected.to_string()),
        ("failed", failed.to_string()),
        ("server_connections", opt(server_connections)),
        ("connect_s", format!("{connect_secs:.2}")),
        (
            "connect_server_cpu_s",
            opt(connect_cpu.map(|c| format!("{c:.2}"))),
        ),
        ("rss_before_kib", opt(rss_before)),
        ("rss_idle_kib", opt(rss_idle)),
    ];
    let per_conn = match (rss_before, rss_idle) {
        (Some(before), Some(idle)) if connected > 0 => {
            Some((idle as f64 - before as f64) * 1024.0 / connected as f64 / 1000.0)
        }
        _ => None,
    };
    summary.push((
        "idle_kb_per_conn",
        opt(per_conn.map(|kb| format!("{kb:.2}"))),
    ));

    // 3. Broadcast and wait for every frame.
    let mut ok = failed == 0;
    if args.messages > 0 && connected > 0 {
        let content: Arc<str> = "x".repeat(args.size).into();
        let next = Arc::new(AtomicUsize::new(0));
        let self_cpu0 = cpu_ticks_of("self");
        let machine0 = machine_ticks();
        let cpu0 = pid.and_then(cpu_ticks);
        let start = Instant::now();
        let mut senders = Vec::new();
        for _ in 0..args.api_conns {
            senders.push(tokio::spawn(send_broadcasts(
                api.clone(),
                content.clone(),
                next.clone(),
                args.messages,
                (start, args.rate),
            )));
        }
        let deadline = start + args.timeout;
        let expected = connected;
        let timed_out = loop {
            // The client that completes last records `last_frame`, then signals.
            if shared
                .last_frame
                .lock()
                .map(|l| l.is_some())
                .unwrap_or(false)
            {
                break false;
            }
            let complete = shared.complete.load(Ordering::SeqCst);
            let lost = shared.lost.load(Ordering::SeqCst);
            if lost > 0 && complete + lost >= expected {
                break false;
            }
            let now = Instant::now();
            if now >= deadline {
                break true;
            }
            let _ = tokio::time::timeout(deadline - now, shared.progress.notified()).await;
        };
        let cpu1 = pid.and_then(cpu_ticks);
        let self_cpu1 = cpu_ticks_of("self");
        let machine1 = machine_ticks();
        let last = shared.last_frame.lock().ok().and_then(|l| *l);
        let (mut api_delivered, mut api_failures, mut api_errors) = (0u64, 0u64, 0usize);
        let mut api_done: Option<Instant> = None;
        let mut first_api_error = None;
        for sender in senders {
            let report = match tokio::time::timeout(Duration::from_secs(5), sender).await {
                Ok(Ok(report)) => report,
                _ => {
                    api_errors += 1;
                    continue;
                }
            };
            api_delivered += report.delivered;
            api_failures += report.failures;
            api_errors += report.errors;
            if first_api_error.is_none() {
                first_api_error = report.first_error;
            }
            api_done = api_done.max(report.last_response);
        }
        if let Some(e) = first_api_error {
            eprintln!("{api_errors} API calls failed; first error: {e}");
        }
        let complete = shared.complete.load(Ordering::SeqCst);
        let lost = shared.lost.load(Ordering::SeqCst);
        let received = shared.received_total();
        let expected_frames = (connected * args.messages) as u64;
        let all = !timed_out && complete == expected;
        let elapsed = match (all, last) {
            (true, Some(last)) => last.duration_since(start).as_secs_f64(),
            _ => start.elapsed().as_secs_f64(),
        };
        let server_cpu = cpu_delta(cpu0, cpu1, clk_tck);
        let self_cpu = cpu_delta(self_cpu0, self_cpu1, clk_tck);
        let machine = machine0.zip(machine1).map(|(a, b)| {
            (
                b.0.saturating_sub(a.0) as f64 / clk_tck,
                b.1.saturating_sub(a.1) as f64 / clk_tck,
            )
        });
        // Busy time of the whole machine not charged to the server or to this process:
        // other processes (a build starting mid-run), and interrupt time if the kernel
        // accounts it separately.
        let other = machine
            .zip(server_cpu)
            .zip(self_cpu)
            .map(|(((busy, _), server), own)| busy - server - own);
        let stats = http(&api, "GET", "/api/v1/stats", b"").await;
        let mut latencies = shared
            .latencies
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default();
        latencies.sort_unstable();
        let stat = |key: &str| {
            stats
                .as_ref()
                .ok()
                .and_then(|(_, body)| json_u64(body, key))
        };
        summary.extend([
            ("messages", args.messages.to_string()),
            ("size", args.size.to_string()),
            (
                "frame_bytes",
                shared.frame_len.load(Ordering::Relaxed).to_string(),
            ),
            ("api_conns", args.api_conns.to_string()),
            ("threads", args.threads.to_string()),
            ("complete_clients", complete.to_string()),
            ("lost_clients", lost.to_string()),
            ("received", received.to_string()),
            ("expected", expected_frames.to_string()),
            ("elapsed_s", format!("{elapsed:.3}")),
            (
                "api_s",
                opt(api_done.map(|d| format!("{:.3}", d.duration_since(start).as_secs_f64()))),
            ),
            (
                "deliveries_per_s",
                format!("{:.0}", received as f64 / elapsed.max(1e-9)),
            ),
            ("server_cpu_s", opt(server_cpu.map(|c| format!("{c:.2}")))),
            (
                "server_cpu_us_per_frame",
                opt(server_cpu
                    .filter(|_| received > 0)
                    .map(|c| format!("{:.3}", c * 1e6 / received as f64))),
            ),
            (
                "server_cores",
                opt(server_cpu.map(|c| format!("{:.2}", c / elapsed.max(1e-9)))),
            ),
            ("loadgen_cpu_s", opt(self_cpu.map(|c| format!("{c:.2}")))),
            (
                "machine_busy_s",
                opt(machine.map(|(busy, _)| format!("{busy:.2}"))),
            ),
            (
                "machine_softirq_s",
                opt(machine.map(|(_, softirq)| format!("{softirq:.2}"))),
            ),
            ("other_cpu_s", opt(other.map(|c| format!("{c:.2}")))),
            ("api_delivered", api_delivered.to_string()),
            ("api_failures", api_failures.to_string()),
            ("api_errors", api_errors.to_string()),
            ("rate_per_s", format!("{}", args.rate)),
            ("latency_samples", latencies.len().to_string()),
            ("latency_p50_us", opt(quantile(&latencies, 0.50))),
            ("latency_p99_us", opt(quantile(&latencies, 0.99))),
            ("latency_max_us", opt(latencies.last().copied())),
            ("server_dropped", opt(stat("messages_dropped"))),
            (
                "server_slow_consumers",
                opt(stat("slow_consumer_disconnects")),
            ),
        ]);
        if timed_out {
            eprintln!(
                "timed out after {:.1} s: {complete} of {expected} clients complete, {received} of {expected_frames} frames",
                args.timeout.as_secs_f64()
            );
        }
        ok = ok && all && api_errors == 0;
    }
    summary.push(("ok", ok.to_string()));
    let line: Vec<String> = summary.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("loadgen {}", line.join(" "));
    Ok(ok)
}

/// One client: connect (bounded by `permits`), then count text frames until the connection
/// ends. The stream is polled continuously, so the server's pings get their pongs.
async fn client(
    i: usize,
    url: String,
    addr: Arc<Endpoint>,
    config: WebSocketConfig,
    permits: Arc<Semaphore>,
    shared: Arc<Shared>,
) {
    let ws = {
        let _permit = permits.acquire().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match connect(&url, &addr, config).await {
                Ok(ws) => break Ok(ws),
                Err(e) if attempt >= 3 => break Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200 * attempt)).await,
            }
        }
    };
    let mut ws = match ws {
        Ok(ws) => {
            shared.connected.fetch_add(1, Ordering::SeqCst);
            shared.connect_finished();
            ws
        }
        Err(e) => {
            if let Ok(mut first) = shared.first_error.lock() {
                first.get_or_insert(e);
            }
            shared.failed.fetch_add(1, Ordering::SeqCst);
            shared.connect_finished();
            return;
        }
    };
    let mut count = 0u32;
    let mut latencies = Vec::with_capacity(shared.target as usize);
    while let Some(frame) = ws.next().await {
        match frame {
            Ok(Message::Text(text)) => {
                count += 1;
                if let Some(sent) = sent_us(text.as_str()) {
                    latencies.push(now_us().saturating_sub(sent));
                }
                if count == shared.target
                    && let Ok(mut all) = shared.latencies.lock()
                {
                    all.append(&mut latencies);
                }
                shared.received[i].store(count, Ordering::Relaxed);
                if count == 1 && i == 0 {
                    shared.frame_len.store(text.len(), Ordering::Relaxed);
                }
                if count == shared.target {
                    let done = shared.complete.fetch_add(1, Ordering::SeqCst) + 1;
                    if done == shared.connected.load(Ordering::SeqCst) {
                        if let Ok(mut last) = shared.last_frame.lock() {
                            *last = Some(Instant::now());
                        }
                        shared.progress.notify_one();
                    }
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    if count < shared.target {
        shared.lost.fetch_add(1, Ordering::SeqCst);
        shared.progress.notify_one();
    }
}

async fn connect(
    url: &str,
    addr: &Endpoint,
    config: WebSocketConfig,
) -> Result<tokio_tungstenite::WebSocketStream<Io>, String> {
    let attempt = async {
        let stream = addr.open().await?;
        let (ws, _response) =
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
        Ok(ws)
    };
    tokio::time::timeout(Duration::from_secs(10), attempt)
        .await
        .map_err(|_| "handshake timed out after 10 s".to_owned())?
}

/// What one API connection's broadcasts reported.
struct SendReport {
    delivered: u64,
    failures: u64,
    errors: usize,
    first_error: Option<String>,
    last_response: Option<Instant>,
}

/// Claims broadcast numbers from `next` until `total` were sent, one request at a time over
/// one keep-alive connection; with a rate, broadcast `k` leaves at `start + k / rate`.
async fn send_broadcasts(
    api: Arc<Endpoint>,
    content: Arc<str>,
    next: Arc<AtomicUsize>,
    total: usize,
    (start, rate): (Instant, f64),
) -> SendReport {
    let mut report = SendReport {
        delivered: 0,
        failures: 0,
        errors: 0,
        first_error: None,
        last_response: None,
    };
    let mut conn: Option<HttpConn> = None;
    loop {
        let k = next.fetch_add(1, Ordering::SeqCst);
        if k >= total {
            break;
        }
        if rate > 0.0 {
            tokio::time::sleep_until((start + Duration::from_secs_f64(k as f64 / rate)).into())
                .await;
        }
        let body = serde_json::json!({
            "message_type": "notice",
            "content": &*content,
            "data": {"sent_us": now_us()},
        })
        .to_string()
        .into_bytes();
        let result = match conn.as_mut() {
            Some(c) => c.request("POST", "/api/v1/broadcast", &body).await,
            None => match HttpConn::open(&api).await {
                Ok(c) => {
                    conn.insert(c)
                        .request("POST", "/api/v1/broadcast", &body)
                        .await
                }
                Err(e) => Err(e),
            },
        };
        report.last_response = Some(Instant::now());
        match result {
            Ok((200, response)) => {
                report.delivered += json_u64(&response, "delivered").unwrap_or(0);
                report.failures += serde_json::from_slice::<serde_json::Value>(&response)
                    .ok()
                    .and_then(|v| v.get("failures").and_then(|f| f.as_array()).map(Vec::len))
                    .unwrap_or(0) as u64;
            }
            Ok((status, response)) => {
                report.errors += 1;
                report.first_error.get_or_insert_with(|| {
                    format!("HTTP {status}: {}", String::from_utf8_lossy(&response))
                });
            }
            Err(e) => {
                report.errors += 1;
                report.first_error.get_or_insert(e);
                conn = None;
            }
        }
    }
    report
}

/// A minimal HTTP/1.1 keep-alive client: one request at a time, `Content-Length` bodies only.
struct HttpConn {
    stream: Io,
    host: String,
    buf: Vec<u8>,
}

impl HttpConn {
    async fn open(endpoint: &Endpoint) -> Result<HttpConn, String> {
        Ok(HttpConn {
            stream: endpoint.open().await?,
            host: endpoint.authority.clone(),
            buf: Vec::with_capacity(4096),
        })
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), String> {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            self.host,
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.stream
            .write_all(&request)
            .await
            .map_err(|e| format!("write: {e}"))?;
        self.buf.clear();
        let header_end = loop {
            if let Some(pos) = find(&self.buf, b"\r\n\r\n") {
                break pos + 4;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..header_end]).into_owned();
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("bad status line: {head:?}"))?;
        let mut length = None;
        for line in head.lines().skip(1) {
            if let Some((name, value)) = line.split_once(':') {
                let name = name.trim().to_ascii_lowercase();
                if name == "content-length" {
                    length = value.trim().parse::<usize>().ok();
                } else if name == "transfer-encoding" {
                    return Err("chunked responses are not supported".to_owned());
                }
            }
        }
        let length = length.ok_or("response without content-length")?;
        while self.buf.len() < header_end + length {
            self.fill().await?;
        }
        Ok((status, self.buf[header_end..header_end + length].to_vec()))
    }

    async fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; 8192];
        let n = self
            .stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("the server closed the connection".to_owned());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

/// One request on a fresh connection.
async fn http(
    authority: &Endpoint,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Vec<u8>), String> {
    HttpConn::open(authority)
        .await?
        .request(method, path, body)
        .await
}

/// Wall-clock microseconds since the Unix epoch (the same clock for sender and clients).
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// The `data.sent_us` a broadcast frame carries.
fn sent_us(frame: &str) -> Option<u64> {
    let value: serde_json::Value = serde_json::from_str(frame).ok()?;
    value.get("data")?.get("sent_us")?.as_u64()
}

/// The `q`-quantile of sorted samples.
fn quantile(sorted: &[u64], q: f64) -> Option<u64> {
    let last = sorted.len().checked_sub(1)?;
    sorted.get(((last as f64) * q).round() as usize).copied()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn json_u64(body: &[u8], key: &str) -> Option<u64> {
    serde_json::from_slice::<HashMap<String, serde_json::Value>>(body)
        .ok()?
        .get(key)?
        .as_u64()
}

/// `ws://` or `wss://host:port/path?query`: the URL of the handshake and where to connect.
struct WsEndpoint {
    url: String,
    transport: Arc<Endpoint>,
}

impl WsEndpoint {
    fn parse(url: &str, tls: &Option<TlsConnector>) -> Result<WsEndpoint, String> {
        let (rest, secure) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => {
                return Err(format!(
                    "--url must start with ws:// or wss:// (got `{url}`)"
                ));
            }
        };
        Ok(WsEndpoint {
            url: url.to_owned(),
            transport: Arc::new(Endpoint::new("--url", url, rest, secure, tls)?),
        })
    }

    fn url_for(&self, user_id: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}user_id={user_id}", self.url)
    }
}

fn api_endpoint(api: &str, tls: &Option<TlsConnector>) -> Result<Endpoint, String> {
    let (rest, secure) = match (api.strip_prefix("http://"), api.strip_prefix("https://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => {
            return Err(format!(
                "--api must start with http:// or https:// (got `{api}`)"
            ));
        }
    };
    Endpoint::new("--api", api, rest, secure, tls)
}

/// Where to connect, and the TLS to speak there (`wss://`, `https://`).
struct Endpoint {
    authority: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Endpoint {
    fn new(
        flag: &str,
        url: &str,
        rest: &str,
        secure: bool,
        tls: &Option<TlsConnector>,
    ) -> Result<Endpoint, String> {
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        if authority.is_empty() {
            return Err(format!("{flag} has no host: `{url}`"));
        }
        let host = match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok() => host,
            _ => authority,
        };
        let authority = if authority.len() > host.len() {
            authority.to_owned()
        } else {
            format!("{authority}:{}", if secure { 443 } else { 80 })
        };
        let tls = if secure {
            let connector = tls
                .clone()
                .ok_or_else(|| format!("{flag} is TLS: give the CA with --ca"))?;
            let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                .map_err(|e| format!("{flag}: `{host}` is not a server name: {e}"))?;
            Some((connector, name))
        } else {
            None
        };
        Ok(Endpoint { authority, tls })
    }

    /// A TCP connection, with the TLS handshake done when the endpoint is TLS.
    async fn open(&self) -> Result<Io, String> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        match &self.tls {
            None => Ok(Io::Plain(stream)),
            Some((connector, name)) => connector
                .connect(name.clone(), stream)
                .await
                .map(|tls| Io::Tls(Box::new(tls)))
                .map_err(|e| format!("TLS with {}: {e}", self.authority)),
        }
    }
}

/// A TLS client that trusts the CA in `ca` (PEM), when one is given.
fn tls_connector(ca: Option<&str>) -> Result<Option<TlsConnector>, String> {
    let Some(ca) = ca else { return Ok(None) };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("--ca {ca}: {e}"))? {
        let cert = cert.map_err(|e| format!("--ca {ca}: {e}"))?;
        roots.add(cert).map_err(|e| format!("--ca {ca}: {e}"))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Some(TlsConnector::from(Arc::new(config))))
}

/// A connection of the generator: plain TCP, or TLS over it.
enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    cpu_ticks_of(&pid.to_string())
}

/// utime + stime of `/proc/<pid>/stat`, in clock ticks.
fn cpu_ticks_of(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; the fields after it start at `) `.
    let after = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 overall; `after` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn cpu_delta(before: Option<u64>, after: Option<u64>, clk_tck: f64) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 / clk_tck)
}

/// Busy and softirq clock ticks of the whole machine (the `cpu` line of `/proc/stat`).
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let busy = [0, 1, 2, 5, 6, 7]
        .iter()
        .map(|&i| fields.get(i).copied().unwrap_or(0))
        .sum();
    Some((busy, fields.get(6).copied().unwrap_or(0)))
}

/// `getconf CLK_TCK`, usually 100.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The soft `Max open files` limit of this process.
fn soft_fd_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    #[tokio::test]
    async fn wss_and_https_work_with_a_custom_ca() {
        // A throwaway CA and a server certificate for 127.0.0.1, as files.
        let dir = std::env::temp_dir().join(format!("loadgen-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "loadgen CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let (ca_file, cert_file, key_file) = (
            dir.join("ca.pem"),
            dir.join("cert.pem"),
            dir.join("key.pem"),
        );
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();

        let mut config = wsc_testkit::local_config();
        for tls in [&mut config.wsc.tls, &mut config.http.tls] {
            tls.enabled = true;
            tls.cert_file = cert_file.to_str().unwrap().to_owned();
            tls.key_file = key_file.to_str().unwrap().to_owned();
        }
        let server = gateway_server::Server::new(config).start().await.unwrap();

        let tls = tls_connector(Some(ca_file.to_str().unwrap())).unwrap();
        let url = format!("wss://127.0.0.1:{}/ws", server.public_addr().port());
        let ws = WsEndpoint::parse(&url, &tls).unwrap();
        let mut stream = connect(
            &ws.url_for("lg-1"),
            &ws.transport,
            WebSocketConfig::default(),
        )
        .await
        .expect("wss:// with the CA");
        stream
            .send(Message::text(r#"{"message_type":"ping"}"#))
            .await
            .unwrap();
        let pong = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(text) = frame
                && text.contains("pong")
            {
                break text;
            }
        };
        assert!(pong.contains("\"message_type\":\"pong\""), "{pong}");

        let api = format!("https://127.0.0.1:{}", server.api_addr().port());
        let (status, body) = http(
            &api_endpoint(&api, &tls).unwrap(),
            "GET",
            "/api/v1/stats",
            b"",
        )
        .await
        .expect("https:// with the CA");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

        // Without --ca a TLS URL is refused up front; with another CA the handshake fails.
        let missing = WsEndpoint::parse(&url, &None).err().unwrap();
        assert!(missing.contains("--ca"), "{missing}");
        let other = CertifiedIssuer::self_signed(
            CertificateParams::new(Vec::<String>::new()).unwrap(),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let other_file = dir.join("other.pem");
        std::fs::write(&other_file, other.pem()).unwrap();
        let untrusted = tls_connector(Some(other_file.to_str().unwrap())).unwrap();
        let ws = WsEndpoint::parse(&url, &untrusted).unwrap();
        let refused = connect(
            &ws.url_for("lg-2"),
            &ws.transport,
            WebSocketConfig::default(),
        )
        .await
        .err()
        .expect("an unknown CA is refused");
        assert!(refused.contains("TLS"), "{refused}");
        server.stop(Duration::from_secs(5)).await;
    }
}
