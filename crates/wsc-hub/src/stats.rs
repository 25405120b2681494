//! Exact counters and the [`HubStats`] snapshot.

use std::collections::BTreeMap;

use crate::fast_hash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

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
    pub(crate) cluster_errors: AtomicU64,
    pub(crate) observer_copies: AtomicU64,
    pub(crate) latency: Latency,
    pub(crate) in_by_type: Mutex<HashMap<String, u64>>,
    pub(crate) out_by_type: Mutex<HashMap<String, u64>>,
}

/// Upper bounds of the delivery latency histogram, in microseconds.
pub const LATENCY_BUCKETS_US: [u64; 10] = [
    100, 500, 1_000, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000, 5_000_000,
];

/// Time from a message being queued for a connection to its batch being written.
#[derive(Debug, Default)]
pub(crate) struct Latency {
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len()],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Latency {
    pub(crate) fn record(&self, us: u64) {
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS_US) {
            if us <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
}

/// Delivery latency: cumulative bucket counts (`le` in microseconds), count and sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatencyHistogram {
    /// `(upper bound in microseconds, batches at or under it)`, cumulative.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<u64>>))]
    pub buckets: Vec<(u64, u64)>,
    /// Batches measured.
    pub count: u64,
    /// Sum of the measured latencies, in microseconds.
    pub sum_us: u64,
}

impl Counters {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn by_type(map: &Mutex<HashMap<String, u64>>, message_type: &str, n: u64) {
        if n == 0 {
            return;
        }
        let mut map = map.lock();
        match map.get_mut(message_type) {
            Some(count) => *count += n,
            None => {
                map.insert(message_type.to_owned(), n);
            }
        }
    }
}

/// A point-in-time snapshot of the hub. Every field is exact; units are in the names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Operations on the cluster (publishing to other nodes, presence updates and queries,
    /// the shared history) that failed because the backplane or a shared store could not be
    /// reached. Local delivery goes on meanwhile.
    pub cluster_errors: u64,
    /// Observer connections on this node now.
    pub observers: u64,
    /// Copies of messages queued for this node's observers.
    pub observer_copies: u64,
    /// Client frames received, by `message_type` (valid frames only).
    pub messages_in_by_type: BTreeMap<String, u64>,
    /// Deliveries of sends (user, ticket, group, connection, broadcast), by `message_type`.
    pub messages_out_by_type: BTreeMap<String, u64>,
    /// Time from queueing to the write of the batch that carried the oldest queued frame.
    pub delivery_latency: LatencyHistogram,
    /// Seconds since the hub started.
    pub uptime_seconds: u64,
}

impl Counters {
    pub(crate) fn snapshot(
        &self,
        node_id: &str,
        (connections, users, acks_pending, offline_dropped, observers): (
            usize,
            usize,
            usize,
            u64,
            usize,
        ),
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
            cluster_errors: get(&self.cluster_errors),
            observers: observers as u64,
            observer_copies: get(&self.observer_copies),
            messages_in_by_type: self
                .in_by_type
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            messages_out_by_type: self
                .out_by_type
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
            delivery_latency: LatencyHistogram {
                buckets: LATENCY_BUCKETS_US
                    .iter()
                    .zip(&self.latency.buckets)
                    .map(|(bound, n)| (*bound, get(n)))
                    .collect(),
                count: get(&self.latency.count),
                sum_us: get(&self.latency.sum_us),
            },
            uptime_seconds,
        }
    }
}
