//! The checks after a fault, each a poll with a deadline (never a sleep that hopes):
//!
//! - clients are admitted where they should be;
//! - presence converges: every node that answers reports every user on exactly the node
//!   where its client is connected, and lists the client's connection there only;
//! - delivery: every message the API reported `acked` or `stored_offline` reaches its user.
//!   What does not arrive by itself within a few seconds gets one more chance, the one the
//!   docs promise: the user reconnects (`last_seq` and the same client id) and the offline
//!   store replays it. Whatever is still missing after that is lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Chaos;
use crate::client::{Client, State};
use crate::cluster::NODE_IDS;

/// How often a condition is polled.
const POLL: Duration = Duration::from_millis(100);

/// How long messages may take to arrive by themselves (live, resent, or from the backlog
/// a stopped node reads when it continues) before the run reconnects their users.
const ARRIVE: Duration = Duration::from_secs(3);

/// How long a reconnected client may take to be admitted and to get its replay.
const REPLAY: Duration = Duration::from_secs(15);

/// Waits until `ok` holds for every client; returns how long that took, or what did not
/// hold at the deadline.
pub(crate) async fn clients_where(
    chaos: &Chaos,
    within: Duration,
    what: &str,
    ok: impl Fn(&Client, &State) -> bool,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let not_yet: Vec<String> = chaos
            .clients
            .iter()
            .map(|c| (c, c.state()))
            .filter(|(c, s)| !ok(c, s))
            .map(|(c, s)| describe(c, &s))
            .collect();
        if not_yet.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(format!(
                "not every client {what} within {within:?}: {}",
                not_yet.join("; ")
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until every client is admitted on its home node.
pub(crate) async fn clients_home(chaos: &Chaos, within: Duration) -> Result<Duration, String> {
    clients_where(chaos, within, "is admitted on its home node", |c, s| {
        s.node == Some(c.home)
    })
    .await
}

fn describe(client: &Client, state: &State) -> String {
    let node = state.node.map_or("nowhere", |n| NODE_IDS[n]);
    let last = state.endings.last().map_or("-", String::as_str);
    let gave_up = state.gave_up.as_deref().unwrap_or("");
    let error = state.connect_error.as_deref().unwrap_or("-");
    format!(
        "{} on {node} (home {}, {} connections, last ending {last}, last connect error \
         {error}) {gave_up}",
        client.user, NODE_IDS[client.home], state.connections
    )
}

/// Polls presence on every node that answers until it agrees with where each client is;
/// returns the moment it did.
pub(crate) async fn presence_converged(chaos: &Chaos, within: Duration) -> Result<Instant, String> {
    let start = Instant::now();
    loop {
        let mismatch = presence_mismatch(chaos).await;
        let Some(mismatch) = mismatch else {
            return Ok(Instant::now());
        };
        if start.elapsed() >= within {
            return Err(format!(
                "presence did not converge within {within:?}: {mismatch}"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The first disagreement between the nodes' presence answers and the clients, if any.
async fn presence_mismatch(chaos: &Chaos) -> Option<String> {
    let up = chaos.cluster.directory.up();
    for client in &chaos.clients {
        let state = client.state();
        let Some(at) = state.node else {
            return Some(format!("{} is not connected", client.user));
        };
        let expected: BTreeSet<&str> = BTreeSet::from([NODE_IDS[at]]);
        for &node in &up {
            let body = match chaos.cluster.presence(node, &client.user).await {
                Ok(body) => body,
                Err(e) => return Some(e),
            };
            let nodes: BTreeSet<&str> = body["nodes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let listed = body["connections"].as_array().is_some_and(|a| {
                a.iter()
                    .any(|c| c["client_id"].as_str() == Some(&client.client_id))
            });
            if body["online"] != true || nodes != expected || listed != (node == at) {
                return Some(format!(
                    "{} is connected to {}, {} answers online={} nodes={:?} and {} its \
                     connection",
                    client.user,
                    NODE_IDS[at],
                    NODE_IDS[node],
                    body["online"],
                    nodes,
                    if listed { "lists" } else { "does not list" }
                ));
            }
        }
    }
    None
}

/// Waits until `count` sends of `phase` made after `since` were acked: the traffic flows.
pub(crate) async fn traffic_flows(
    chaos: &Chaos,
    phase: usize,
    since: Instant,
    count: usize,
    within: Duration,
) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        let acked = chaos.ledger.lock().acked_since(phase, since);
        if acked >= count {
            return Ok(start.elapsed());
        }
        if start.elapsed() >= within {
            return Err(format!(
                "only {acked} acknowledged deliveries within {within:?} ({count} expected)"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// What the delivery check had to do.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Users whose client the run reconnected to get their offline replay.
    pub(crate) reconnected: Vec<String>,
    /// Messages that arrived only after that reconnect.
    pub(crate) needed_reconnect: usize,
}

/// Waits for every accepted message of `phase` to reach its user, reconnecting the users
/// still missing some after [`ARRIVE`]. Whatever is missing at the end is the phase's
/// loss (the caller reads it from the ledger).
pub(crate) async fn deliveries(chaos: &Chaos, phase: usize) -> Delivery {
    let mut delivery = Delivery::default();
    let before = wait_missing(chaos, phase, ARRIVE).await;
    if before.is_empty() {
        return delivery;
    }
    let reconnected: Vec<&Client> = chaos
        .clients
        .iter()
        .filter(|c| before.contains_key(&c.user))
        .collect();
    let connections: BTreeMap<&str, u32> = reconnected
        .iter()
        .map(|c| (c.user.as_str(), c.state().connections))
        .collect();
    for client in &reconnected {
        client.reconnect();
        delivery.reconnected.push(client.user.clone());
    }
    // Admitted again (a new connection answered its ping): the replay is in its backlog.
    let _ = clients_where(chaos, REPLAY, "reconnected", |c, s| {
        connections
            .get(c.user.as_str())
            .is_none_or(|&n| s.connections > n && s.node.is_some())
    })
    .await;
    let after = wait_missing(chaos, phase, REPLAY).await;
    let mut records = chaos.ledger.lock();
    for id in before.values().flatten() {
        if !after.values().flatten().any(|m| m == id) {
            records.needed_reconnect.insert(id.clone(), phase);
            delivery.needed_reconnect += 1;
        }
    }
    delivery
}

/// Polls until no accepted message of `phase` is missing, at most `within`; returns what
/// is still missing.
async fn wait_missing(
    chaos: &Chaos,
    phase: usize,
    within: Duration,
) -> BTreeMap<String, Vec<String>> {
    let start = Instant::now();
    loop {
        let missing = chaos.ledger.lock().missing(phase);
        if missing.is_empty() || start.elapsed() >= within {
            return missing;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The messages of `phase` that reached their user only after a forced reconnect although
/// they were sent while a connection of the user was being registered and that connection
/// then stayed open. docs/delivery.md (Sequence numbers and resume) promises them to that
/// connection: "A message sent to the user while the connection is being registered (after
/// its window was read, before it became reachable) is replayed too, before the
/// `recovered` frame". The server registers a connection before it answers `101`, so the
/// registration lies between the client's connect and the `101`.
pub(crate) fn registration_misses(chaos: &Chaos, phase: usize) -> Vec<String> {
    let records = chaos.ledger.lock();
    let ms = |at: Instant| at.saturating_duration_since(chaos.started).as_millis();
    let mut misses = Vec::new();
    for id in records.needed_reconnect_ids(phase) {
        let Some(sent) = records.sent.get(&id) else {
            continue;
        };
        let Some(answered) = sent.answered else {
            continue;
        };
        let Some(client) = chaos.clients.iter().find(|c| c.user == sent.user) else {
            continue;
        };
        let state = client.state();
        let registering = state.log.iter().find(|c| {
            sent.at <= c.opened && answered >= c.connecting && c.ended.is_none_or(|e| e > answered)
        });
        if let Some(c) = registering {
            misses.push(format!(
                "{id} to {} (sent +{}ms, answered {:?} after {} attempts +{}ms) during the \
                 registration of its connection #{} to {} (connect +{}ms, 101 +{}ms, \
                 recovered {}), which stayed open until +{}ms without it",
                sent.user,
                ms(sent.at),
                sent.outcome,
                sent.attempts,
                ms(answered),
                c.number,
                c.node,
                ms(c.connecting),
                ms(c.opened),
                c.recovered.as_deref().unwrap_or("-"),
                c.ended.map_or("?".to_owned(), |e| ms(e).to_string()),
            ));
        }
    }
    misses
}
