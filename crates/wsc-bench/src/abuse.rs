//! The abuse suite: hostile clients over real sockets against a real `gateway-server`
//! process, each attack with the outcome it must get (a close code, an error frame, an HTTP
//! status, a closed socket) and the limit that stops it.
//!
//! [`run`] gives every attack a fresh server with the attack's settings, and around the
//! attack checks what must stay true for everyone else:
//!
//! - a `canary` connection opened before the attack still receives a message sent through
//!   the API afterwards, and a new client can still connect;
//! - the server's connections and descriptors return to what they were before;
//! - the process is still running;
//!
//! and measures its resident memory before, at peak (`VmHWM`) and after.

mod handshake;
mod identity;
mod sse;
mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::server::{Sample, ServerProcess};

/// What an attack gets to aim at.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The public listener (WebSocket, SSE).
    pub public: SocketAddr,
    /// The API listener.
    pub api: SocketAddr,
    /// The server's process id.
    pub pid: u32,
}

impl Target {
    /// `ws://<public>/ws?<query>`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.public)
    }
}

/// What an attack returns: what the server did (checked against the expected outcome by
/// the attack itself), or why the check failed.
pub type Outcome = Result<String, String>;

type Run = fn(Target) -> Pin<Box<dyn Future<Output = Outcome> + Send>>;

/// One attack.
#[derive(Clone, Copy)]
pub struct Attack {
    /// A short name (`ping_flood`).
    pub name: &'static str,
    /// The outcome it must get.
    pub expected: &'static str,
    /// The limit or check that stops it.
    pub limit: &'static str,
    /// Server settings (`GATEWAY__...` variables) it runs with, on top of the defaults.
    pub settings: &'static [(&'static str, &'static str)],
    run: Run,
}

impl std::fmt::Debug for Attack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Attack").field("name", &self.name).finish()
    }
}

impl Attack {
    /// The query that identifies `user` to a server with this attack's settings: a token
    /// signed with the configured secret when they turn authentication on.
    pub fn query(&self, user: &str) -> String {
        let secret = self
            .settings
            .iter()
            .find(|(k, _)| *k == "GATEWAY__WSC__SECURITY__TOKEN__SECRET");
        match secret {
            Some((_, secret)) => {
                let claims = json!({"sub": user, "exp": 4_102_444_800u64});
                let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
                let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)
                    .expect("HS256 signing cannot fail");
                format!("token={token}")
            }
            None => format!("user_id={user}"),
        }
    }
}

/// Every attack of the suite, WebSocket first, then the handshake, identities and SSE.
pub fn all() -> Vec<Attack> {
    let mut attacks = websocket::attacks();
    attacks.extend(handshake::attacks());
    attacks.extend(identity::attacks());
    attacks.extend(sse::attacks());
    attacks
}

/// The attack named `name`.
pub fn named(name: &str) -> Option<Attack> {
    all().into_iter().find(|a| a.name == name)
}

/// What one attack did to the server.
#[derive(Debug, Clone)]
pub struct Finding {
    /// The attack.
    pub attack: Attack,
    /// What the server did.
    pub outcome: String,
    /// Before the attack (the canary connected).
    pub before: Sample,
    /// After it, once connections and descriptors were back.
    pub after: Sample,
    /// The highest resident memory of the process (`VmHWM`), in bytes.
    pub peak_rss: u64,
}

/// How long the server may take to release what an attack held.
const SETTLE: Duration = Duration::from_secs(20);

/// Runs `attack` against a fresh server started from `binary`.
pub async fn run(binary: &Path, attack: &Attack) -> Result<Finding, String> {
    let env: Vec<(&str, String)> = attack
        .settings
        .iter()
        .map(|(k, v)| (*k, (*v).to_owned()))
        .collect();
    let mut server = ServerProcess::start(binary, &env)?;
    let target = Target {
        public: server.public,
        api: server.api,
        pid: server.pid(),
    };
    let mut canary = wsc_testkit::ws::try_connect(&server.ws_url(&attack.query("canary")), &[])
        .await
        .map_err(|e| format!("the canary cannot connect: {e}"))?;
    let before = server.sample()?;
    let outcome = (attack.run)(target)
        .await
        .map_err(|e| format!("{}: {e}", attack.name))?;
    if !server.is_running() {
        return Err(format!("{}: the server exited", attack.name));
    }
    still_serving(attack, &server, &mut canary)
        .await
        .map_err(|e| format!("{}: {e}", attack.name))?;
    let after = settled(&server, before)
        .await
        .map_err(|e| format!("{}: {e}", attack.name))?;
    let peak_rss = procfs::process::Process::new(target.pid as i32)
        .and_then(|p| p.status())
        .ok()
        .and_then(|s| s.vmhwm)
        .map_or(0, |kib| kib * 1024);
    Ok(Finding {
        attack: *attack,
        outcome,
        before,
        after,
        peak_rss,
    })
}

/// The canary gets a message sent through the API, and a new client connects.
async fn still_serving(
    attack: &Attack,
    server: &ServerProcess,
    canary: &mut wsc_testkit::Client,
) -> Result<(), String> {
    let body = json!({"content": "still here"}).to_string();
    let (status, reply) =
        wsc_testkit::http::post(server.api, "/api/v1/users/canary/messages", &body).await;
    if status != 200 {
        return Err(format!(
            "the API answered {status} {reply} after the attack"
        ));
    }
    loop {
        let frame = wsc_testkit::ws::next_json(canary).await;
        if frame["content"] == "still here" {
            break;
        }
    }
    let newcomer = wsc_testkit::ws::try_connect(&server.ws_url(&attack.query("newcomer")), &[])
        .await
        .map_err(|e| format!("a new client cannot connect after the attack: {e}"))?;
    drop(newcomer);
    Ok(())
}

/// Waits until only the canary is connected and the descriptors are back to `before`.
async fn settled(server: &ServerProcess, before: Sample) -> Result<Sample, String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let stats = server.stats().await;
        let now = server.sample()?;
        if stats["connections"] == 1 && now.fds <= before.fds {
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not released within {SETTLE:?}: {} connections (1 expected), {} descriptors \
                 ({} before)",
                stats["connections"], now.fds, before.fds
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Formats findings as the markdown table of docs/security.md.
pub fn table(findings: &[Finding]) -> String {
    let mut out = String::from(
        "| attack | outcome | stopped by | RSS before | peak | after | fds before / after |\n\
         |---|---|---|---:|---:|---:|---:|\n",
    );
    for f in findings {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} / {} |\n",
            f.attack.name,
            f.outcome,
            f.attack.limit,
            mib(f.before.rss),
            mib(f.peak_rss),
            mib(f.after.rss),
            f.before.fds,
            f.after.fds,
        ));
    }
    out
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Sends 16 KiB messages to `user` through the API until the server disconnects it as a
/// slow consumer (its client never reads); at most 2,000.
pub(crate) async fn flood_until_slow_consumer(target: Target, user: &str) -> Outcome {
    let body = json!({"content": "x".repeat(16 * 1024)}).to_string();
    let path = format!("/api/v1/users/{user}/messages");
    // The kernel's socket buffers take a few megabytes before a small queue overflows.
    for sent in 1..=2_000 {
        let (status, reply) = wsc_testkit::http::post(target.api, &path, &body).await;
        if status != 200 {
            return Err(format!("send {sent}: {status} {reply}"));
        }
        if sent % 50 == 0 {
            let (_, stats) = wsc_testkit::http::get(target.api, "/api/v1/stats").await;
            if stats["slow_consumer_disconnects"] == 1 {
                return Ok(format!(
                    "disconnected as a slow consumer after {sent} messages of 16 KiB"
                ));
            }
            // A write deadline needs a stalled write to last: give it the time.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Err("2,000 messages of 16 KiB and still connected".into())
}

/// Fails unless `got` is `want`.
pub(crate) fn expect<T: PartialEq + std::fmt::Debug>(
    what: &str,
    got: T,
    want: T,
) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, got {got:?}"))
    }
}
