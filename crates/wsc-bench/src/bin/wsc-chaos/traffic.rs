//! Acknowledged traffic through the HTTP API: sender tasks that each post
//! `POST /api/v1/users/{u}/messages` with `"ack": {"timeout_ms", "retries"}` to one user, one
//! request after the other, and record each send and its outcome in the ledger.
//!
//! Every message carries a `message_id` of the run's own (`chaos-<phase>-<kind>-<user>-...`),
//! so a copy a client receives is matched to its send exactly, whichever way it came (live,
//! resent, replayed from the offline store or from the resume window).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::task::JoinHandle;

use crate::http;
use crate::ledger::{Ledger, Outcome};

/// The prefix of every message id the run sends (clients ignore any other message).
pub(crate) const ID_PREFIX: &str = "chaos-";

/// The ack wait of each send: a resend after 1 s without ack, one resend, so a send that
/// nobody acks is settled (stored offline) within about 2 s.
pub(crate) const ACK_TIMEOUT_MS: u64 = 1000;
/// Resends after the first attempt.
pub(crate) const ACK_RETRIES: u64 = 1;

/// The bound on one send's answer: the whole ack wait, plus the Redis calls around it
/// (each bounded by the nodes' 1 s Redis timeout), plus a margin.
const ANSWER: Duration = Duration::from_secs(15);

/// The most messages one sender task sends in a phase, whatever happens: a bound on the
/// loop besides the stop flag.
const MAX_PER_TASK: u64 = 5_000;

/// What a group of senders sends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Kind {
    /// A word in the message id (`steady`, `flood`).
    pub(crate) label: &'static str,
    /// Sender tasks per user.
    pub(crate) tasks_per_user: usize,
    /// Bytes of `content`.
    pub(crate) size: usize,
    /// Pause after each answer.
    pub(crate) pause: Duration,
}

/// The steady background traffic of every phase: two senders per user, small messages,
/// about 10 per second per sender while clients ack promptly.
pub(crate) const STEADY: Kind = Kind {
    label: "steady",
    tasks_per_user: 2,
    size: 64,
    pause: Duration::from_millis(80),
};

/// The traffic that fills a stalled client's socket: many concurrent senders of 32 KiB
/// messages, without pause.
pub(crate) const FLOOD: Kind = Kind {
    label: "flood",
    tasks_per_user: 16,
    size: 32 * 1024,
    pause: Duration::ZERO,
};

/// Running sender tasks.
#[derive(Debug)]
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Traffic {
    /// Starts `kind`'s senders for each of `users`, through the API at `api`, recording
    /// under `phase`.
    pub(crate) fn start(
        api: SocketAddr,
        users: &[String],
        phase: usize,
        kind: Kind,
        ledger: &Ledger,
    ) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for user in users {
            for task in 0..kind.tasks_per_user {
                let sender = Sender {
                    api,
                    user: user.clone(),
                    prefix: format!("{ID_PREFIX}{phase}-{}-{user}-{task}-", kind.label),
                    phase,
                    kind,
                    ledger: ledger.clone(),
                    stop: stop.clone(),
                };
                tasks.push(tokio::spawn(sender.run()));
            }
        }
        Traffic { stop, tasks }
    }

    /// Stops sending and waits for the requests in flight to be answered (each is bounded
    /// by its own timeout, so this is too).
    pub(crate) async fn stop(self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        let deadline = Instant::now() + ANSWER + Duration::from_secs(5);
        for task in self.tasks {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!("a sender task failed: {e}")),
                Err(_) => return Err("a sender did not finish in time".to_owned()),
            }
        }
        Ok(())
    }
}

/// One sender task.
struct Sender {
    api: SocketAddr,
    user: String,
    prefix: String,
    phase: usize,
    kind: Kind,
    ledger: Ledger,
    stop: Arc<AtomicBool>,
}

impl Sender {
    async fn run(self) {
        let path = format!("/api/v1/users/{}/messages", self.user);
        let content = "x".repeat(self.kind.size);
        for n in 0..MAX_PER_TASK {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let id = format!("{}{n}", self.prefix);
            let body = json!({
                "content": content,
                "message_id": id,
                "ack": {"timeout_ms": ACK_TIMEOUT_MS, "retries": ACK_RETRIES},
            })
            .to_string();
            self.ledger.sending(&id, &self.user, self.phase);
            let answer = http::exchange(self.api, "POST", &path, Some(&body), ANSWER).await;
            let (outcome, attempts) = match answer {
                Ok((200, report)) => {
                    let first = &report["outcomes"][0];
                    let attempts = first["attempts"].as_u64().unwrap_or(0);
                    match first["status"].as_str().unwrap_or("") {
                        "acked" => (Outcome::Acked, attempts),
                        "stored_offline" => (Outcome::StoredOffline, attempts),
                        other => {
                            let answer = format!("200 {report}");
                            self.ledger.sample(self.phase, other.to_owned(), answer);
                            (Outcome::NotKept(other.to_owned()), attempts)
                        }
                    }
                }
                Ok((status, body)) => {
                    let code = body["error"].as_str().unwrap_or("?").to_owned();
                    let kind = format!("{status}:{code}");
                    self.ledger
                        .sample(self.phase, kind, format!("{status} {body}"));
                    (Outcome::Refused(status, code), 0)
                }
                Err(e) => {
                    self.ledger
                        .sample(self.phase, "no_answer".to_owned(), e.clone());
                    (Outcome::Failed(e), 0)
                }
            };
            self.ledger.answered(&id, outcome, attempts);
            if !self.kind.pause.is_zero() {
                tokio::time::sleep(self.kind.pause).await;
            }
        }
    }
}
