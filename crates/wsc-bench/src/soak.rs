//! The soak run: a bounded mixed workload against a running server, sampled as it goes, and
//! the checks that say whether the server held up.
//!
//! The workload, all at once for the whole run:
//!
//! - `stable` WebSocket clients (`s-<i>`) that read everything and ack every frame that asks
//!   for it, except every tenth user, which never acks (its acked sends end `stored_offline`);
//! - churn: `churn_per_second` short connections (`c-<k>`), each open for half a second;
//! - `sends_per_second` fire-and-forget user sends and a tenth as many acknowledged ones,
//!   to random stable users, through the API; a broadcast every second;
//! - a kick of a random acking stable user every five seconds (it reconnects at once, its
//!   missed messages are replayed from the offline store);
//! - a group join and a leave every second;
//! - five sends a second to users who never connect (`gone-<k>`), which the offline store
//!   must hold within its bounds.
//!
//! Every `sample_every` it records the server's resident memory, descriptors, threads and
//! counters, and its live tasks (`tokio_alive_tasks`). After the run every client closes,
//! and [`Report::check`] fails when resident memory grew more than the allowed share after
//! warm-up, when connections, descriptors, tasks or pending acks did not return to their
//! baseline, or when a send the API reported `acked`
//! never reached its user.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{Sample, sample};

/// What the soak runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// How long the workload runs.
    pub duration: Duration,
    /// How often the server is sampled.
    pub sample_every: Duration,
    /// Stable connections.
    pub stable: usize,
    /// Short connections opened (and closed) per second.
    pub churn_per_second: u32,
    /// Fire-and-forget user sends per second (a tenth as many acknowledged sends on top).
    pub sends_per_second: u32,
    /// The share of the run that is warm-up (memory may grow freely in it).
    pub warm_up: f64,
    /// How much resident memory may grow after warm-up, in percent of its value then.
    pub max_growth_percent: f64,
    /// The server's resume window TTL (`wsc.recovery.history_ttl`): memory grows until the
    /// first messages leave it, so warm-up must be longer.
    pub history_ttl: Duration,
    /// The server's offline store bound (`wsc.offline.max_total`): memory grows until the
    /// store is full, so the bound is kept small enough to be reached in warm-up.
    pub offline_max_total: u32,
}

impl Options {
    /// The workload of `cargo xtask soak --minutes N`.
    pub fn minutes(minutes: u64) -> Self {
        Options {
            duration: Duration::from_secs(minutes * 60),
            sample_every: Duration::from_secs(10),
            stable: 1_000,
            churn_per_second: 20,
            sends_per_second: 100,
            warm_up: 0.4,
            max_growth_percent: 5.0,
            history_ttl: Duration::from_secs(120),
            offline_max_total: 1_000,
        }
    }

    /// The short run of the test command: half a minute, small, with the resume window and
    /// the offline store sized so that they fill within its warm-up.
    pub fn short() -> Self {
        Options {
            duration: Duration::from_secs(30),
            sample_every: Duration::from_secs(2),
            stable: 100,
            churn_per_second: 10,
            sends_per_second: 50,
            warm_up: 0.5,
            max_growth_percent: 10.0,
            history_ttl: Duration::from_secs(5),
            offline_max_total: 100,
        }
    }
}

/// One sample of the server.
#[derive(Debug, Clone)]
pub struct Point {
    /// Seconds since the start.
    pub at: f64,
    /// What `/proc` said.
    pub process: Sample,
    /// Open connections, pending acks and stored offline messages (the counters).
    pub connections: u64,
    /// Acks being waited for.
    pub acks_pending: u64,
    /// Messages stored offline so far.
    pub offline_stored: u64,
    /// Messages the offline store dropped (its bounds).
    pub offline_dropped: u64,
    /// Tasks alive in the server's runtime (`tokio_alive_tasks` on `/metrics`).
    pub tasks: u64,
}

/// Starts the server a soak runs against: every client comes from 127.0.0.1, so the
/// per-client handshake limit is off; the resume window and the offline store are sized by
/// `options` so that they fill in warm-up and show that their bounds hold.
pub fn start_server(
    binary: &std::path::Path,
    options: &Options,
) -> Result<crate::server::ServerProcess, String> {
    let env = [
        (
            "GATEWAY__WSC__SECURITY__MAX_HANDSHAKES_PER_IP_PER_SECOND",
            "0".to_owned(),
        ),
        (
            "GATEWAY__WSC__RECOVERY__HISTORY_TTL",
            format!("{}s", options.history_ttl.as_secs().max(1)),
        ),
        (
            "GATEWAY__WSC__OFFLINE__MAX_TOTAL",
            options.offline_max_total.to_string(),
        ),
    ];
    crate::server::ServerProcess::start(binary, &env)
}

/// What a soak run saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The samples, in order.
    pub points: Vec<Point>,
    /// The server before any client connected.
    pub baseline: Option<Sample>,
    /// Its tasks then.
    pub baseline_tasks: Option<u64>,
    /// After every client closed and the server settled.
    pub end: Option<Point>,
    /// Frames received by the clients.
    pub received: u64,
    /// Connections opened in all.
    pub connections_opened: u64,
    /// API sends made (user, acked, broadcast, offline).
    pub sends: u64,
    /// Acked sends whose outcome was `acked`.
    pub acked: u64,
    /// Acked sends whose outcome was `stored_offline`.
    pub acked_stored_offline: u64,
    /// Acked-outcome messages that never reached their user.
    pub lost: Vec<String>,
    /// API calls that failed (not 200).
    pub api_errors: u64,
    /// The share of the run that was warm-up.
    pub warm_up: f64,
    /// The allowed growth after warm-up, in percent.
    pub max_growth_percent: f64,
}

impl Report {
    /// Resident memory growth after warm-up, in percent of the first sample after it (the
    /// last sample of the run against it).
    pub fn growth_percent(&self) -> Option<f64> {
        let last = self.points.last()?;
        let start = self.points.iter().find(|p| p.at >= self.warm_up_end())?;
        Some((last.process.rss as f64 / start.process.rss as f64 - 1.0) * 100.0)
    }

    fn warm_up_end(&self) -> f64 {
        self.points.last().map_or(0.0, |p| p.at) * self.warm_up
    }

    /// Every check; the failures, or nothing.
    pub fn check(&self) -> Result<(), Vec<String>> {
        let mut failures = Vec::new();
        match self.growth_percent() {
            Some(g) if g > self.max_growth_percent => failures.push(format!(
                "resident memory grew {g:.1}% after warm-up (at most {}%)",
                self.max_growth_percent
            )),
            None => failures.push("too few samples to judge memory".into()),
            _ => {}
        }
        match (&self.baseline, &self.end) {
            (Some(base), Some(end)) => {
                if end.process.fds > base.fds {
                    failures.push(format!(
                        "{} descriptors at the end, {} before the run",
                        end.process.fds, base.fds
                    ));
                }
                if end.connections != 0 {
                    failures.push(format!("{} connections left", end.connections));
                }
                if end.acks_pending != 0 {
                    failures.push(format!("{} acks still pending", end.acks_pending));
                }
                if let Some(tasks) = self.baseline_tasks
                    && end.tasks > tasks
                {
                    failures.push(format!(
                        "{} tasks at the end, {tasks} before the run",
                        end.tasks
                    ));
                }
            }
            _ => failures.push("no baseline or end sample".into()),
        }
        if !self.lost.is_empty() {
            failures.push(format!(
                "{} acknowledged messages lost: {:?}",
                self.lost.len(),
                &self.lost[..self.lost.len().min(10)]
            ));
        }
        if self.api_errors > 0 {
            failures.push(format!("{} API calls failed", self.api_errors));
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// The samples as a markdown table.
    pub fn table(&self) -> String {
        let mut out = String::from(
            "| s | RSS | fds | tasks | connections | acks pending | offline stored | offline dropped |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for p in self.points.iter().chain(&self.end) {
            out.push_str(&format!(
                "| {:.0} | {:.1} MiB | {} | {} | {} | {} | {} | {} |\n",
                p.at,
                p.process.rss as f64 / (1024.0 * 1024.0),
                p.process.fds,
                p.tasks,
                p.connections,
                p.acks_pending,
                p.offline_stored,
                p.offline_dropped
            ));
        }
        out
    }
}

/// What the clients received, by user: message ids.
type Inbox = Arc<Mutex<HashMap<String, HashSet<String>>>>;

struct Run {
    public: SocketAddr,
    api: SocketAddr,
    stop: AtomicBool,
    inbox: Inbox,
    received: AtomicU64,
    opened: AtomicU64,
    sends: AtomicU64,
    api_errors: AtomicU64,
    /// (user, message id) of acked sends answered `acked`.
    acked: Mutex<Vec<(String, String)>>,
    acked_stored_offline: AtomicU64,
}

/// Runs the soak against the server at `public` / `api` (process `pid`).
pub async fn run(public: SocketAddr, api: SocketAddr, pid: u32, options: &Options) -> Report {
    let baseline = sample(pid).ok();
    let baseline_tasks = tasks(api).await;
    let run = Arc::new(Run {
        public,
        api,
        stop: AtomicBool::new(false),
        inbox: Inbox::default(),
        received: AtomicU64::new(0),
        opened: AtomicU64::new(0),
        sends: AtomicU64::new(0),
        api_errors: AtomicU64::new(0),
        acked: Mutex::new(Vec::new()),
        acked_stored_offline: AtomicU64::new(0),
    });
    let mut tasks = JoinSet::new();
    let mut stable = JoinSet::new();
    for i in 0..options.stable {
        stable.spawn(stable_client(run.clone(), format!("s-{i}"), i % 10 != 0));
    }
    tasks.spawn(churn(run.clone(), options.churn_per_second));
    tasks.spawn(senders(
        run.clone(),
        options.stable,
        options.sends_per_second,
    ));
    tasks.spawn(kicks_and_groups(run.clone(), options.stable));
    let started = Instant::now();
    let mut points = Vec::new();
    let mut every = tokio::time::interval(options.sample_every);
    while started.elapsed() < options.duration {
        every.tick().await;
        if let Some(point) = point(api, pid, started).await {
            eprintln!(
                "soak {:>5.0}s rss={:.1}MiB fds={} connections={} acks_pending={}",
                point.at,
                point.process.rss as f64 / 1048576.0,
                point.process.fds,
                point.connections,
                point.acks_pending
            );
            points.push(point);
        }
    }
    run.stop.store(true, Ordering::Relaxed);
    // The workload tasks end at their next step; acked sends in flight end within their
    // ack wait (500 ms, one retry).
    while tasks.join_next().await.is_some() {}
    while stable.join_next().await.is_some() {}
    let end = settle(api, pid, started, baseline, baseline_tasks).await;
    let lost = lost(&run);
    Report {
        points,
        baseline,
        baseline_tasks,
        end,
        received: run.received.load(Ordering::Relaxed),
        connections_opened: run.opened.load(Ordering::Relaxed),
        sends: run.sends.load(Ordering::Relaxed),
        acked: run.acked.lock().expect("acked").len() as u64,
        acked_stored_offline: run.acked_stored_offline.load(Ordering::Relaxed),
        lost,
        api_errors: run.api_errors.load(Ordering::Relaxed),
        warm_up: options.warm_up,
        max_growth_percent: options.max_growth_percent,
    }
}

/// Acked-outcome messages missing from their user's inbox.
fn lost(run: &Run) -> Vec<String> {
    let inbox = run.inbox.lock().expect("inbox");
    run.acked
        .lock()
        .expect("acked")
        .iter()
        .filter(|(user, id)| !inbox.get(user).is_some_and(|ids| ids.contains(id)))
        .map(|(user, id)| format!("{user}/{id}"))
        .collect()
}

async fn point(api: SocketAddr, pid: u32, started: Instant) -> Option<Point> {
    let process = sample(pid).ok()?;
    let stats = get(api, "/api/v1/stats").await?;
    let n = |key: &str| stats[key].as_u64().unwrap_or(0);
    let tasks = tasks(api).await.unwrap_or(0);
    Some(Point {
        at: started.elapsed().as_secs_f64(),
        process,
        tasks,
        connections: n("connections"),
        acks_pending: n("acks_pending"),
        offline_stored: n("offline_stored"),
        offline_dropped: n("offline_dropped"),
    })
}

/// The server's `tokio_alive_tasks` from `/metrics`.
async fn tasks(api: SocketAddr) -> Option<u64> {
    let exchange = async move { wsc_testkit::http::raw(api, "GET", "/metrics", &[], None).await };
    let (status, _, text) = tokio::spawn(exchange).await.ok()?;
    if status != 200 {
        return None;
    }
    text.lines()
        .find_map(|line| line.strip_prefix("tokio_alive_tasks "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

/// Waits (at most 30 s) for connections, pending acks, tasks and descriptors to come back.
async fn settle(
    api: SocketAddr,
    pid: u32,
    started: Instant,
    baseline: Option<Sample>,
    baseline_tasks: Option<u64>,
) -> Option<Point> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let point = point(api, pid, started).await?;
        let fds_back = baseline.is_none_or(|b| point.process.fds <= b.fds);
        let tasks_back = baseline_tasks.is_none_or(|t| point.tasks <= t);
        if (point.connections == 0 && point.acks_pending == 0 && fds_back && tasks_back)
            || Instant::now() >= deadline
        {
            return Some(point);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One API call on its own connection; the JSON answer of a 200, else counted as an error.
async fn call(run: &Run, method: &str, path: &str, body: Option<&str>) -> Option<Value> {
    run.sends.fetch_add(1, Ordering::Relaxed);
    let (api, method_owned, path_owned) = (run.api, method.to_owned(), path.to_owned());
    let body = body.map(str::to_owned);
    let exchange = async move {
        let (status, _, text) =
            wsc_testkit::http::raw(api, &method_owned, &path_owned, &[], body.as_deref()).await;
        (status, text)
    };
    // The helper panics on a broken exchange; a task of its own turns that into an error.
    match tokio::spawn(exchange).await {
        Ok((200, text)) => serde_json::from_str(&text).ok(),
        Ok((status, text)) => {
            eprintln!("soak: {method} {path}: {status} {text}");
            run.api_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
        Err(e) => {
            eprintln!("soak: {method} {path}: {e}");
            run.api_errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

async fn get(api: SocketAddr, path: &str) -> Option<Value> {
    let path = path.to_owned();
    let exchange = async move { wsc_testkit::http::get(api, &path).await };
    match tokio::spawn(exchange).await {
        Ok((200, value)) => Some(value),
        _ => None,
    }
}

/// A stable client: reads everything, records message ids, acks when asked (if `acks`);
/// reconnects when the server closes it (a kick), until the run stops.
async fn stable_client(run: Arc<Run>, user: String, acks: bool) {
    while !run.stop.load(Ordering::Relaxed) {
        let url = format!("ws://{}/ws?user_id={user}", run.public);
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        run.opened.fetch_add(1, Ordering::Relaxed);
        loop {
            let next = tokio::time::timeout(Duration::from_millis(250), ws.next()).await;
            if run.stop.load(Ordering::Relaxed) {
                let _ = ws.close(None).await;
                // Read to the end of the close handshake, briefly.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                return;
            }
            let frame = match next {
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(text)))) => text,
                Ok(Some(Ok(_))) => continue,
                Ok(None | Some(Err(_))) => break,
            };
            run.received.fetch_add(1, Ordering::Relaxed);
            let Ok(value) = serde_json::from_str::<Value>(&frame) else {
                continue;
            };
            let Some(id) = value["message_id"].as_str() else {
                continue;
            };
            run.inbox
                .lock()
                .expect("inbox")
                .entry(user.clone())
                .or_default()
                .insert(id.to_owned());
            if acks && value["require_ack"] == true {
                let ack = json!({"message_type": "ack", "message_id": id}).to_string();
                if ws.send(Message::text(ack)).await.is_err() {
                    break;
                }
            }
        }
    }
}

/// Opens `per_second` short connections a second, each for half a second.
async fn churn(run: Arc<Run>, per_second: u32) {
    if per_second == 0 {
        return;
    }
    let mut every = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut k = 0u64;
    let mut open = JoinSet::new();
    while !run.stop.load(Ordering::Relaxed) {
        every.tick().await;
        k += 1;
        let url = format!("ws://{}/ws?user_id=c-{k}", run.public);
        let run = run.clone();
        open.spawn(async move {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(&url).await {
                run.opened.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
                let _ = ws.close(None).await;
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
            }
        });
        while open.try_join_next().is_some() {}
    }
    while open.join_next().await.is_some() {}
}

/// User sends, acked sends, broadcasts and sends to users who never come, at their rates.
async fn senders(run: Arc<Run>, stable: usize, per_second: u32) {
    let per_second = per_second.max(10);
    let mut every = tokio::time::interval(Duration::from_secs(1) / per_second);
    let mut n = 0u64;
    let mut acked = JoinSet::new();
    while !run.stop.load(Ordering::Relaxed) {
        every.tick().await;
        n += 1;
        let user = format!("s-{}", pseudo_random(n) % stable as u64);
        let body = json!({"content": format!("m{n}")}).to_string();
        let run2 = run.clone();
        acked.spawn(async move {
            call(
                &run2,
                "POST",
                &format!("/api/v1/users/{user}/messages"),
                Some(&body),
            )
            .await;
        });
        if n.is_multiple_of(10) {
            let user = format!("s-{}", pseudo_random(n + 7) % stable as u64);
            let run2 = run.clone();
            acked.spawn(async move { acked_send(&run2, &user, n).await });
        }
        if n.is_multiple_of(u64::from(per_second)) {
            let body = json!({"content": format!("b{n}")}).to_string();
            let run2 = run.clone();
            acked.spawn(async move {
                call(&run2, "POST", "/api/v1/broadcast", Some(&body)).await;
            });
        }
        if n.is_multiple_of(u64::from(per_second / 5)) {
            let body = json!({"content": format!("o{n}")}).to_string();
            let run2 = run.clone();
            acked.spawn(async move {
                let path = format!("/api/v1/users/gone-{n}/messages");
                call(&run2, "POST", &path, Some(&body)).await;
            });
        }
        while acked.try_join_next().is_some() {}
    }
    while acked.join_next().await.is_some() {}
}

async fn acked_send(run: &Run, user: &str, n: u64) {
    let body = json!({"content": format!("a{n}"), "ack": {"timeout_ms": 500, "retries": 1}});
    let path = format!("/api/v1/users/{user}/messages");
    let Some(answer) = call(run, "POST", &path, Some(&body.to_string())).await else {
        return;
    };
    let id = answer["message_id"].as_str().unwrap_or_default().to_owned();
    for outcome in answer["outcomes"].as_array().into_iter().flatten() {
        match outcome["status"].as_str() {
            Some("acked") => run
                .acked
                .lock()
                .expect("acked")
                .push((user.to_owned(), id.clone())),
            Some("stored_offline") => {
                run.acked_stored_offline.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// A kick every five seconds, a group join and leave every second.
async fn kicks_and_groups(run: Arc<Run>, stable: usize) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    let mut n = 0u64;
    while !run.stop.load(Ordering::Relaxed) {
        every.tick().await;
        n += 1;
        let member = pseudo_random(n) % stable as u64;
        let group = format!("g-{}", n % 10);
        let path = format!("/api/v1/groups/{group}/members/s-{member}");
        call(&run, "PUT", &path, None).await;
        let leaver = pseudo_random(n + 3) % stable as u64;
        let path = format!("/api/v1/groups/{group}/members/s-{leaver}");
        call(&run, "DELETE", &path, None).await;
        let body = json!({"content": format!("g{n}")}).to_string();
        call(
            &run,
            "POST",
            &format!("/api/v1/groups/{group}/messages"),
            Some(&body),
        )
        .await;
        if n.is_multiple_of(5) {
            // An acking user (never a multiple of ten), so its acked sends stay checkable.
            let kicked = (member / 10) * 10 + 1;
            let path = format!("/api/v1/users/s-{kicked}/connections?reason=soak");
            call(&run, "DELETE", &path, None).await;
        }
    }
}

/// A cheap, reproducible spread of numbers (SplitMix64).
fn pseudo_random(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
