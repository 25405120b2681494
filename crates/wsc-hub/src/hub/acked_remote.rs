//! Acknowledged ticket and group sends across nodes: the origin publishes the message with
//! `report`, every other node answers with the connections it delivered to
//! ([`Envelope::Delivered`]) and forwards their acks, and the origin waits for each of
//! those connections as it waits for its own: resend on each timeout, then store offline
//! for the connection's user and report the failure.
//!
//! The reports and acks of one send reach it through a channel registered under its
//! `message_id` before anything is published, so an ack that overtakes its node's report is
//! kept, not lost.

use std::collections::{BTreeMap, HashSet};

use tokio::time::Instant;

use super::*;

/// What the other nodes tell an acknowledged send in progress.
#[derive(Debug)]
pub(super) enum RemoteReport {
    /// A node delivered the message to these connections.
    Delivered(Vec<Recipient>),
    /// A connection on another node acknowledged it.
    Acked(String),
}

/// The acknowledged sends of this node waiting for other nodes: message id -> its channel.
pub(super) type RemoteSends = HashMap<String, mpsc::UnboundedSender<RemoteReport>>;

/// Where one remote connection stands.
struct Pending {
    user_id: String,
    attempts: u32,
    /// When the current attempt times out; `None` once settled.
    due: Option<Instant>,
    acked: bool,
}

/// Removes a send's channel when the send ends, however it ends.
struct Registered<'a> {
    hub: &'a Hub,
    message_id: &'a str,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub.inner.remote_sends.lock().remove(self.message_id);
    }
}

impl Hub {
    /// The remote half of an acknowledged ticket or group send: one outcome per connection
    /// another node delivered it to. Empty on a single node, or when another send with the
    /// same `message_id` is already waiting.
    pub(super) async fn ack_on_other_nodes(
        &self,
        route: &Route,
        msg: &HubMessage,
        payload: &Payload,
        limits: (Duration, u32),
    ) -> Vec<AckOutcome> {
        if !self.has_peers() {
            return Vec::new();
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        {
            let mut sends = self.inner.remote_sends.lock();
            if sends.contains_key(&msg.message_id) {
                return Vec::new();
            }
            sends.insert(msg.message_id.clone(), tx);
        }
        let _registered = Registered {
            hub: self,
            message_id: &msg.message_id,
        };
        let nodes = self
            .publish(|hub| Envelope::Message {
                origin: hub.node_id().to_owned(),
                route: route.clone(),
                payload: payload.clone(),
                awaits_ack: Some(msg.message_id.clone()),
                report: true,
            })
            .await;
        let pending = self
            .collect_remote_acks(msg, payload, &mut rx, nodes, limits)
            .await;
        let mut outcomes = Vec::with_capacity(pending.len());
        for (client_id, p) in pending {
            let target = AckTarget::Connection(client_id.clone());
            let acked = p.acked.then(|| client_id.clone());
            outcomes.push(
                self.ack_outcome(msg, &target, &client_id, &p.user_id, acked, p.attempts)
                    .await,
            );
        }
        outcomes
    }

    /// Waits for the reports of `nodes` nodes (at most one timeout) and for the ack of every
    /// connection they report, resending to a connection each time its attempt times out.
    async fn collect_remote_acks(
        &self,
        msg: &HubMessage,
        payload: &Payload,
        rx: &mut mpsc::UnboundedReceiver<RemoteReport>,
        nodes: usize,
        (timeout, max_retries): (Duration, u32),
    ) -> BTreeMap<String, Pending> {
        let mut pending: BTreeMap<String, Pending> = BTreeMap::new();
        // Acks that overtook their node's report.
        let mut early: HashSet<String> = HashSet::new();
        let mut unreported = nodes;
        // A node that has not reported within one timeout is taken to be gone.
        let reports_due = Instant::now() + timeout;
        loop {
            let next_due = pending.values().filter_map(|p| p.due).min();
            let wake = match (unreported > 0, next_due) {
                (false, None) => break,
                (true, Some(due)) => due.min(reports_due),
                (true, None) => reports_due,
                (false, Some(due)) => due,
            };
            match tokio::time::timeout_at(wake, rx.recv()).await {
                Ok(Some(RemoteReport::Delivered(recipients))) => {
                    unreported = unreported.saturating_sub(1);
                    let due = Instant::now() + timeout;
                    for Recipient { user_id, client_id } in recipients {
                        // An ack that overtook this report settles its delivery now, and
                        // counts like any other.
                        let acked = early.remove(&client_id);
                        if acked {
                            Counters::add(&self.inner.counters.acks_confirmed, 1);
                        }
                        pending.entry(client_id).or_insert(Pending {
                            user_id,
                            attempts: 1,
                            due: (!acked).then_some(due),
                            acked,
                        });
                    }
                }
                Ok(Some(RemoteReport::Acked(client_id))) => match pending.get_mut(&client_id) {
                    Some(p) if p.due.is_some() => {
                        p.acked = true;
                        p.due = None;
                        Counters::add(&self.inner.counters.acks_confirmed, 1);
                    }
                    Some(_) => {}
                    None => {
                        early.insert(client_id);
                    }
                },
                // The channel lives as long as this send: not reached.
                Ok(None) => break,
                Err(_) => {
                    let now = Instant::now();
                    if now >= reports_due {
                        unreported = 0;
                    }
                    for (client_id, p) in pending.iter_mut() {
                        if p.due.is_none_or(|due| due > now) {
                            continue;
                        }
                        if p.attempts > max_retries {
                            p.due = None;
                            continue;
                        }
                        p.attempts += 1;
                        p.due = Some(now + timeout);
                        Counters::add(&self.inner.counters.ack_resends, 1);
                        self.resend_to_connection(client_id, msg, payload).await;
                    }
                }
            }
        }
        pending
    }

    /// Sends the same message again to one connection on another node.
    async fn resend_to_connection(&self, client_id: &str, msg: &HubMessage, payload: &Payload) {
        let mut route = Route::new(Target::Connection {
            client_id: client_id.to_owned(),
        });
        route.scope_from(msg);
        // A failure is logged and counted; the ack wait then times out.
        let _ = self
            .publish_awaiting_ack(&route, payload, &msg.message_id)
            .await;
    }

    /// An ack another node forwarded that no waiter here matched: it may belong to an
    /// acknowledged ticket or group send in progress. Returns whether one took it.
    pub(super) fn remote_ack_for_send(&self, message_id: &str, client_id: &str) -> bool {
        let sends = self.inner.remote_sends.lock();
        sends
            .get(message_id)
            .is_some_and(|tx| tx.send(RemoteReport::Acked(client_id.to_owned())).is_ok())
    }

    /// Another node's report of the connections it delivered a send of this node to.
    pub(super) fn remote_delivered(&self, message_id: &str, recipients: Vec<Recipient>) {
        if let Some(tx) = self.inner.remote_sends.lock().get(message_id) {
            let _ = tx.send(RemoteReport::Delivered(recipients));
        }
    }
}
