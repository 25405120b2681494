//! Exact counters and the [`HubStats`] snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Lock-free counters updated on the hot path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) messages_in: AtomicU64,
    pub(crate) messages_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) slow_consumer_disconnects: AtomicU64,
    pub(crate) invalid_frames: AtomicU64,
    pub(crate) connections_accepted: AtomicU64,
    pub(crate) connections_rejected: AtomicU64,
    pub(crate) connections_closed: AtomicU64,
    pub(crate) acks_confirmed: AtomicU64,
    pub(crate) ack_failures: AtomicU64,
    pub(crate) ack_resends: AtomicU64,
    pub(crate) offline_stored: AtomicU64,
    pub(crate) offline_replayed: AtomicU64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A point-in-time snapshot of the hub. Every field is exact; units are in the names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HubStats {
    /// This node's id.
    pub node_id: String,
    /// Live connections now.
    pub connections: u64,
    /// Distinct users with at least one live connection now.
    pub users: u64,
    /// Data frames received from clients: text (valid or not) and binary.
    pub messages_in: u64,
    /// Message frames written to client sockets (pings excluded).
    pub messages_out: u64,
    /// Bytes of text frames received.
    pub bytes_in: u64,
    /// Bytes of message frames written.
    pub bytes_out: u64,
    /// Messages not delivered to a connection because its queue was full or it was closing.
    pub messages_dropped: u64,
    /// Connections closed by the slow-consumer policy.
    pub slow_consumer_disconnects: u64,
    /// Inbound frames answered with an error frame.
    pub invalid_frames: u64,
    /// Connections admitted since start.
    pub connections_accepted: u64,
    /// Registrations refused (node full, user limit, connect callback).
    pub connections_rejected: u64,
    /// Connections that ended since start.
    pub connections_closed: u64,
    /// Acknowledged deliveries confirmed by a client.
    pub acks_confirmed: u64,
    /// Acknowledged deliveries that finally failed (timed out, or target offline without a
    /// store).
    pub ack_failures: u64,
    /// Resends after an ack timeout.
    pub ack_resends: u64,
    /// Deliveries waiting for an ack now.
    pub acks_pending: u64,
    /// Messages put into the offline store.
    pub offline_stored: u64,
    /// Offline messages replayed to reconnecting clients.
    pub offline_replayed: u64,
    /// Offline messages dropped by the store (per-user cap or TTL).
    pub offline_dropped: u64,
    /// Seconds since the hub started.
    pub uptime_seconds: u64,
}

impl Counters {
    pub(crate) fn snapshot(
        &self,
        node_id: &str,
        (connections, users, acks_pending, offline_dropped): (usize, usize, usize, u64),
        uptime_seconds: u64,
    ) -> HubStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HubStats {
            node_id: node_id.to_owned(),
            connections: connections as u64,
            users: users as u64,
            messages_in: get(&self.messages_in),
            messages_out: get(&self.messages_out),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            messages_dropped: get(&self.messages_dropped),
            slow_consumer_disconnects: get(&self.slow_consumer_disconnects),
            invalid_frames: get(&self.invalid_frames),
            connections_accepted: get(&self.connections_accepted),
            connections_rejected: get(&self.connections_rejected),
            connections_closed: get(&self.connections_closed),
            acks_confirmed: get(&self.acks_confirmed),
            ack_failures: get(&self.ack_failures),
            ack_resends: get(&self.ack_resends),
            acks_pending: acks_pending as u64,
            offline_stored: get(&self.offline_stored),
            offline_replayed: get(&self.offline_replayed),
            offline_dropped,
            uptime_seconds,
        }
    }
}
