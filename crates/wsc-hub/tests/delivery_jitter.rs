//! Acknowledged delivery under connection churn, over real WebSocket clients on a
//! multi-thread runtime: clients drop (gracefully or abruptly, with or without acking the
//! last frame) and reconnect at random moments while a sender pushes acked messages. After
//! the sender is done, each client reconnects once more and drains its offline replay.
//! Every message must reach its user at least once (duplicates are allowed and counted).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::{TestServer, config, wait_until};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use wsc_hub::{AckStatus, Hub, HubMessage, MemoryOfflineStore, MultiLoginPolicy};

const USERS: usize = 5;
const N: usize = 200;
/// The whole test fails instead of hanging past this.
const RUN_LIMIT: Duration = Duration::from_secs(60);
const ACK_TIMEOUT: Duration = Duration::from_millis(200);
const ACK_RETRIES: u32 = 5;
/// At most this many message frames per connection before the client leaves.
const MAX_FRAMES_PER_CONNECTION: u64 = 25;

/// xorshift64*: a seeded, reproducible random source (no extra crate).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn user(u: usize) -> String {
    format!("u{u}")
}

fn message_id(u: usize, k: usize) -> String {
    format!("u{u}-m{k}")
}

/// What one user's client saw.
#[derive(Default)]
struct Tally {
    distinct: HashSet<String>,
    copies: usize,
    connects: usize,
    kicked_or_closed_by_server: usize,
}

impl Tally {
    /// Records a message frame; panics on a frame meant for another user.
    fn record(&mut self, u: usize, frame: &Value) -> Option<String> {
        if frame["message_type"] != "text" {
            return None;
        }
        let id = frame["message_id"].as_str().expect("message_id").to_owned();
        assert!(
            id.starts_with(&format!("{}-", user(u))) && frame["receiver"] == user(u).as_str(),
            "{} received another user's message: {frame}",
            user(u)
        );
        self.copies += 1;
        self.distinct.insert(id.clone());
        Some(id)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    for attempt in 0.. {
        match tokio_tungstenite::connect_async(url).await {
            Ok((ws, _)) => return ws,
            Err(e) if attempt < 20 => eprintln!("connect {url} failed ({e}); retrying"),
            Err(e) => panic!("connect {url}: {e}"),
        }
    }
    unreachable!()
}

async fn send_text(ws: &mut Ws, text: String) -> bool {
    ws.send(Message::Text(Utf8Bytes::from(text))).await.is_ok()
}

fn ack(id: &str) -> String {
    json!({"message_type": "ack", "message_id": id}).to_string()
}

/// One user's client: churns until the sender is done, then reconnects and drains.
async fn run_client(u: usize, url: String, mut rng: Rng, mut done: watch::Receiver<bool>) -> Tally {
    let mut tally = Tally::default();

    // Churn phase.
    while !*done.borrow() {
        let mut ws = connect(&url).await;
        tally.connects += 1;
        let budget = rng.below(MAX_FRAMES_PER_CONNECTION + 1);
        let ack_last = rng.below(2) == 0;
        let graceful = rng.below(2) == 0;
        let mut got = 0;
        while got < budget {
            let next = tokio::select! {
                _ = done.wait_for(|d| *d) => break,
                next = ws.next() => next,
            };
            match next {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    let Some(id) = tally.record(u, &frame) else {
                        continue;
                    };
                    got += 1;
                    let leaving_unacked = got == budget && !ack_last;
                    if frame["require_ack"] == true
                        && !leaving_unacked
                        && !send_text(&mut ws, ack(&id)).await
                    {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                // Closed by the server (kicked by the multi-login policy, ...) or broken.
                Some(Err(_)) | None => {
                    tally.kicked_or_closed_by_server += 1;
                    break;
                }
            }
        }
        if graceful {
            // Bounded: a close that cannot be sent is an abrupt drop.
            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        }
        drop(ws);
    }

    // Final phase: reconnect, read and ack until every message is there, then a ping whose
    // pong proves that the whole replay was read and every ack before it was handled.
    loop {
        let mut ws = connect(&url).await;
        tally.connects += 1;
        let mut pinged = false;
        let drained = loop {
            if !pinged && tally.distinct.len() >= N {
                if !send_text(
                    &mut ws,
                    json!({"message_type": "ping", "id": "final"}).to_string(),
                )
                .await
                {
                    break false;
                }
                pinged = true;
            }
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).expect("JSON");
                    if frame["message_type"] == "pong" && frame["id"] == "final" {
                        break true;
                    }
                    if let Some(id) = tally.record(u, &frame)
                        && frame["require_ack"] == true
                        && !send_text(&mut ws, ack(&id)).await
                    {
                        break false;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    tally.kicked_or_closed_by_server += 1;
                    break false;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
        if drained {
            return tally;
        }
    }
}

/// Sends the user's `N` acked messages one after the other; returns (acked, stored offline).
///
/// A send to an offline user is stored at once, so a sender would empty its whole list into
/// the store during one short disconnect. To mix live, resent and stored deliveries, before
/// most sends to an offline user it waits for the user's next connect (`connects` is bumped
/// by a connect callback); the other sends go straight to the store.
async fn run_sender(
    hub: Hub,
    u: usize,
    mut rng: Rng,
    mut connects: watch::Receiver<u64>,
) -> (usize, usize) {
    let (mut acked, mut stored) = (0, 0);
    for k in 0..N {
        if !hub.is_user_online(&user(u)) && rng.below(2) == 0 {
            connects.borrow_and_update();
            if !hub.is_user_online(&user(u)) {
                // The connect callback runs just before the admission, so a connect can slip
                // between the two checks: the wait is bounded (pacing only, not a condition
                // of the test).
                let _ = tokio::time::timeout(ACK_TIMEOUT, connects.changed()).await;
                for _ in 0..10 {
                    if hub.is_user_online(&user(u)) {
                        break;
                    }
                    tokio::task::yield_now().await;
                }
            }
        }
        let msg = HubMessage {
            message_id: message_id(u, k),
            ..HubMessage::text(format!("{}:{k}", user(u)))
        };
        let report = hub
            .send_to_user_with_ack(&user(u), msg, ACK_TIMEOUT, ACK_RETRIES)
            .await
            .expect("send_to_user_with_ack");
        match &report.outcomes[0].status {
            AckStatus::Acked { .. } => acked += 1,
            AckStatus::StoredOffline => stored += 1,
            other => panic!(
                "message {k} of {} neither acked nor stored: {other:?}",
                user(u)
            ),
        }
    }
    (acked, stored)
}

// 14.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churning_clients_receive_every_acked_message() {
    let run = async {
        let hub = Hub::new(config(|c| {
            // Every ack is an inbound frame: no inbound rate limit in this test.
            c.max_inbound_per_second = 0;
            c.max_inbound_bytes_per_second = 0;
            // Lingering connections of a churning user are allowed to coexist.
            c.multi_login = MultiLoginPolicy::AllowAll;
            c.max_connections_per_user = 0;
        }));
        let connects: Vec<watch::Sender<u64>> = (0..USERS).map(|_| watch::channel(0).0).collect();
        let connects = Arc::new(connects);
        let bump = connects.clone();
        hub.on_client_connect(move |conn| {
            let u: usize = conn.user_id()[1..].parse().expect("user index");
            bump[u].send_modify(|n| *n += 1);
            async { Ok(()) }
        });
        // Room for a user's whole backlog: a full store would drop messages by design.
        let store = Arc::new(MemoryOfflineStore::new(10 * N, Duration::from_secs(3600)));
        hub.set_offline_store(Some(store.clone()));
        let server = TestServer::serve(hub.clone()).await;
        let (done_tx, done_rx) = watch::channel(false);

        let clients: Vec<_> = (0..USERS)
            .map(|u| {
                let url = server.url(&format!("user_id={}", user(u)));
                let rng = Rng::new(0x5EED_0000 + u as u64);
                tokio::spawn(run_client(u, url, rng, done_rx.clone()))
            })
            .collect();
        let senders: Vec<_> = (0..USERS)
            .map(|u| {
                let rng = Rng::new(0xD1CE_0000 + u as u64);
                tokio::spawn(run_sender(hub.clone(), u, rng, connects[u].subscribe()))
            })
            .collect();
        let mut outcomes = Vec::new();
        for sender in senders {
            outcomes.push(sender.await.expect("sender task"));
        }
        done_tx.send(true).expect("clients gone");
        let mut tallies = Vec::new();
        for client in clients {
            tallies.push(client.await.expect("client task"));
        }

        // One line per user first, then the checks.
        let mut lost_total = 0;
        for (u, (tally, (acked, stored))) in tallies.iter().zip(&outcomes).enumerate() {
            let delivered = tally.distinct.len();
            let duplicates = tally.copies - delivered;
            let lost = N.saturating_sub(delivered);
            lost_total += lost;
            println!(
                "{}: delivered={delivered} duplicates={duplicates} lost={lost} \
                 (connections={}, closed_by_server={}, acked_live={acked}, stored_offline={stored})",
                user(u),
                tally.connects,
                tally.kicked_or_closed_by_server,
            );
        }
        assert_eq!(lost_total, 0, "messages were lost");
        for (u, tally) in tallies.iter().enumerate() {
            let expected: HashSet<String> = (0..N).map(|k| message_id(u, k)).collect();
            assert_eq!(
                tally.distinct,
                expected,
                "{}: wrong set of messages",
                user(u)
            );
            // The final drain acked every replayed message: nothing is left behind.
            assert!(
                store.is_empty(&user(u)),
                "{}: {} messages left in the offline store",
                user(u),
                store.len(&user(u))
            );
        }
        let churned: usize = tallies.iter().map(|t| t.connects).sum();
        assert!(
            churned > 2 * USERS,
            "no churn happened: {churned} connections"
        );

        wait_until("every connection is gone", || hub.connection_count() == 0).await;
        let stats = hub.stats();
        assert_eq!(stats.acks_pending, 0, "{stats:?}");
        println!(
            "hub: acks_confirmed={} ack_resends={} ack_failures={} offline_stored={} offline_replayed={}",
            stats.acks_confirmed,
            stats.ack_resends,
            stats.ack_failures,
            stats.offline_stored,
            stats.offline_replayed
        );
        let acked_live: usize = outcomes.iter().map(|o| o.0).sum();
        let stored: usize = outcomes.iter().map(|o| o.1).sum();
        // Live acks plus acks of replayed messages.
        assert!(stats.acks_confirmed as usize >= acked_live, "{stats:?}");
        // A failure is a stored message that had at least one attempt.
        assert!(stats.ack_failures as usize <= stored, "{stats:?}");
        assert_eq!(stats.offline_stored as usize, stored, "{stats:?}");
        // The churn exercised every path, not only live delivery: frames left unacked by a
        // client that dropped were resent, messages that found nobody were stored, and the
        // final reconnects replayed them.
        assert!(stats.ack_resends > 0, "no resend happened: {stats:?}");
        assert!(stored > 0, "nothing was stored offline: {stats:?}");
        assert!(
            stats.offline_replayed > 0,
            "nothing was replayed: {stats:?}"
        );
    };
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("the churn test did not finish in time");
}
