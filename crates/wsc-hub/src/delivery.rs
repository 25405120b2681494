//! Reliable delivery: the [`AckTracker`] (pending acknowledgements) and the per-user
//! [`Histories`] (sequence numbers and the bounded window used to resume).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::codec::Payload;
use crate::connection::{Connection, ConnectionId};

/// Who must acknowledge a delivery: any connection of a user, or one connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AckTarget {
    User(String),
    Connection(ConnectionId),
}

struct Pending {
    /// Completed with the acking connection's client id.
    waiter: Option<oneshot::Sender<String>>,
    /// Set for replayed offline messages: delete them from the store once acked.
    offline_user: Option<String>,
    /// Connections the message was queued to (each holds one pending slot).
    connections: Vec<Arc<Connection>>,
}

/// What an inbound ack matched.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum AckMatch {
    /// A pending delivery; `offline_user` names the store entry to delete.
    Confirmed { offline_user: Option<String> },
    /// Acked before (a resend arrived twice): harmless.
    Duplicate,
    /// Nothing was waiting for it.
    Unknown,
}

/// How many recently confirmed ids are remembered to recognise duplicate acks.
const RECENT: usize = 4096;

type Key = (String, AckTarget);

/// Everything the tracker knows, under one lock so the indexes never disagree.
#[derive(Default)]
struct State {
    pending: HashMap<Key, Pending>,
    /// For each connection, the deliveries it is the target of or holds a slot in, so a
    /// disconnect touches only its own entries.
    by_conn: HashMap<ConnectionId, HashSet<Key>>,
    /// Recently confirmed message ids (a set for the lookup, a queue for the eviction order).
    recent: HashSet<String>,
    recent_order: VecDeque<String>,
}

impl State {
    fn index(&mut self, conn: ConnectionId, key: &Key) {
        self.by_conn.entry(conn).or_default().insert(key.clone());
    }

    fn unindex(&mut self, conn: ConnectionId, key: &Key) {
        if let Some(keys) = self.by_conn.get_mut(&conn) {
            keys.remove(key);
            if keys.is_empty() {
                self.by_conn.remove(&conn);
            }
        }
    }

    /// Removes an entry and every index pointing at it.
    fn take(&mut self, key: &Key) -> Option<Pending> {
        let entry = self.pending.remove(key)?;
        if let AckTarget::Connection(id) = key.1 {
            self.unindex(id, key);
        }
        for conn in &entry.connections {
            self.unindex(conn.id(), key);
        }
        Some(entry)
    }

    fn remember(&mut self, message_id: &str) {
        if self.recent.insert(message_id.to_owned()) {
            self.recent_order.push_back(message_id.to_owned());
            if self.recent_order.len() > RECENT
                && let Some(oldest) = self.recent_order.pop_front()
            {
                self.recent.remove(&oldest);
            }
        }
    }
}

/// Pending acknowledgements, keyed by message id and target. One structure for the whole
/// hub: the waiting happens in the sender's own future, with tokio's shared timer wheel.
#[derive(Default)]
pub(crate) struct AckTracker {
    state: Mutex<State>,
}

impl AckTracker {
    /// Starts tracking; false when the same id is already pending for that target.
    pub(crate) fn register(
        &self,
        message_id: &str,
        target: AckTarget,
        waiter: Option<oneshot::Sender<String>>,
        offline_user: Option<String>,
    ) -> bool {
        let mut state = self.state.lock();
        let key = (message_id.to_owned(), target);
        if state.pending.contains_key(&key) {
            return false;
        }
        if let AckTarget::Connection(id) = key.1 {
            state.index(id, &key);
        }
        state.pending.insert(
            key,
            Pending {
                waiter,
                offline_user,
                connections: Vec::new(),
            },
        );
        true
    }

    /// Takes a pending slot of `conn` for this delivery (once per connection). False when
    /// the connection already has `max_pending` deliveries waiting.
    pub(crate) fn add_connection(
        &self,
        message_id: &str,
        target: &AckTarget,
        conn: &Arc<Connection>,
        max_pending: usize,
    ) -> bool {
        let mut state = self.state.lock();
        let key = (message_id.to_owned(), target.clone());
        let Some(entry) = state.pending.get_mut(&key) else {
            return false;
        };
        if entry.connections.iter().any(|c| c.id() == conn.id()) {
            return true;
        }
        if max_pending > 0 && conn.pending_acks.load(Ordering::Relaxed) >= max_pending {
            return false;
        }
        conn.pending_acks.fetch_add(1, Ordering::Relaxed);
        entry.connections.push(conn.clone());
        state.index(conn.id(), &key);
        true
    }

    /// Matches an ack from `conn`: first a delivery to that connection, then one to its user.
    pub(crate) fn ack(&self, message_id: &str, conn: &Connection) -> AckMatch {
        let by_conn = (message_id.to_owned(), AckTarget::Connection(conn.id()));
        self.settle(message_id, Some(by_conn), conn.user_id(), conn.client_id())
    }

    /// Matches an ack that a connection on another node sent for a delivery to its user
    /// (user deliveries are keyed by user id, which means the same on every node).
    pub(crate) fn ack_remote(&self, message_id: &str, user_id: &str, client_id: &str) -> AckMatch {
        self.settle(message_id, None, user_id, client_id)
    }

    fn settle(
        &self,
        message_id: &str,
        by_conn: Option<Key>,
        user_id: &str,
        client_id: &str,
    ) -> AckMatch {
        let entry = {
            let mut state = self.state.lock();
            let by_user = (message_id.to_owned(), AckTarget::User(user_id.to_owned()));
            let found = match by_conn {
                Some(key) => state.take(&key),
                None => None,
            };
            match found.or_else(|| state.take(&by_user)) {
                Some(entry) => {
                    state.remember(message_id);
                    entry
                }
                None if state.recent.contains(message_id) => return AckMatch::Duplicate,
                None => return AckMatch::Unknown,
            }
        };
        let offline_user = entry.offline_user.clone();
        Self::release(entry, Some(client_id.to_owned()));
        AckMatch::Confirmed { offline_user }
    }

    /// Remembers an ack this node forwarded to another node, so that a repeated ack of the
    /// same message (a resend crossed it) is a harmless duplicate here too.
    pub(crate) fn forwarded(&self, message_id: &str) {
        self.state.lock().remember(message_id);
    }

    /// Stops tracking (timeout or final failure).
    pub(crate) fn cancel(&self, message_id: &str, target: &AckTarget) {
        let removed = self
            .state
            .lock()
            .take(&(message_id.to_owned(), target.clone()));
        if let Some(entry) = removed {
            Self::release(entry, None);
        }
    }

    /// A connection ended: its own deliveries end (their waiters see the drop), and it no
    /// longer holds slots in user deliveries. Touches only that connection's entries.
    pub(crate) fn drop_connection(&self, conn: &Connection) {
        let mut ended = Vec::new();
        {
            let mut state = self.state.lock();
            let keys = state.by_conn.remove(&conn.id()).unwrap_or_default();
            for key in keys {
                if key.1 == AckTarget::Connection(conn.id()) {
                    ended.extend(state.take(&key));
                } else if let Some(entry) = state.pending.get_mut(&key)
                    && let Some(i) = entry.connections.iter().position(|c| c.id() == conn.id())
                {
                    entry.connections.swap_remove(i);
                    conn.pending_acks.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
        for entry in ended {
            // Dropping the waiter tells the sender the connection is gone.
            Self::release(entry, None);
        }
    }

    fn release(entry: Pending, acked_by: Option<String>) {
        for conn in &entry.connections {
            conn.pending_acks.fetch_sub(1, Ordering::Relaxed);
        }
        if let (Some(waiter), Some(client_id)) = (entry.waiter, acked_by) {
            let _ = waiter.send(client_id);
        }
    }

    /// The hub is stopping: every sender waiting for an ack stops waiting (and stores the
    /// message offline), instead of running out its timeouts against closed connections.
    pub(crate) fn release_waiters(&self) {
        let waiters: Vec<oneshot::Sender<String>> = self
            .state
            .lock()
            .pending
            .values_mut()
            .filter_map(|entry| entry.waiter.take())
            .collect();
        drop(waiters);
    }

    /// Deliveries waiting for an ack.
    pub(crate) fn len(&self) -> usize {
        self.state.lock().pending.len()
    }
}

/// The outcome of a resume request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Recovery {
    /// Whether every message after the presented sequence number is replayed. When false,
    /// nothing is replayed: the client must resynchronise by other means.
    pub recovered: bool,
    /// The sequence number the client presented.
    pub from_seq: i64,
    /// The user's latest sequence number.
    pub latest_seq: i64,
    /// How many messages are replayed.
    pub replayed: usize,
}

/// The app and namespace a message was sent to (empty = any), kept with windowed and
/// stored messages so that a replay reaches only connections in that scope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Scope {
    pub(crate) app_id: String,
    pub(crate) namespace: String,
}

impl Scope {
    /// Whether a connection of `app_id` / `namespace` may receive a message of this scope.
    pub(crate) fn admits(&self, app_id: &str, namespace: &str) -> bool {
        crate::route::in_scope(&self.app_id, &self.namespace, app_id, namespace)
    }
}

/// One message in a user's resume window.
struct Entry {
    seq: i64,
    /// Expiry in hub milliseconds.
    expires_ms: u64,
    message_id: String,
    payload: Payload,
    scope: Scope,
}

/// One user's sequence counter and recent messages.
pub(crate) struct History {
    last_seq: i64,
    /// In seq order.
    entries: VecDeque<Entry>,
}

impl History {
    /// The number the next message will get (without taking it).
    pub(crate) fn peek_next_seq(&self) -> i64 {
        self.last_seq + 1
    }

    /// The next sequence number.
    pub(crate) fn next_seq(&mut self) -> i64 {
        self.last_seq += 1;
        self.last_seq
    }

    pub(crate) fn push(
        &mut self,
        seq: i64,
        message_id: String,
        payload: Payload,
        scope: Scope,
        now_ms: u64,
        limits: (usize, u64),
    ) {
        let (size, ttl_ms) = limits;
        self.expire(now_ms);
        if size == 0 {
            return;
        }
        while self.entries.len() >= size {
            self.entries.pop_front();
        }
        self.entries.push_back(Entry {
            seq,
            expires_ms: now_ms + ttl_ms,
            message_id,
            payload,
            scope,
        });
    }

    fn expire(&mut self, now_ms: u64) {
        while self.entries.front().is_some_and(|e| e.expires_ms <= now_ms) {
            self.entries.pop_front();
        }
    }

    /// Every message after `last_seen` that a connection of `app_id` / `namespace` may
    /// receive, or nothing when the window does not cover the gap. Messages of another
    /// scope are not this connection's to miss: they are skipped, not a gap.
    pub(crate) fn resume(
        &mut self,
        last_seen: i64,
        now_ms: u64,
        (app_id, namespace): (&str, &str),
    ) -> (Recovery, Vec<(String, Payload)>) {
        self.expire(now_ms);
        let latest = self.last_seq;
        let first_kept = self.entries.front().map(|e| e.seq).unwrap_or(latest + 1);
        let covered = last_seen <= latest && last_seen + 1 >= first_kept;
        let frames: Vec<(String, Payload)> = if covered {
            self.entries
                .iter()
                .filter(|e| e.seq > last_seen && e.scope.admits(app_id, namespace))
                .map(|e| (e.message_id.clone(), e.payload.clone()))
                .collect()
        } else {
            Vec::new()
        };
        let recovery = Recovery {
            recovered: covered,
            from_seq: last_seen,
            latest_seq: latest,
            replayed: frames.len(),
        };
        (recovery, frames)
    }

    fn is_idle(&self, now_ms: u64) -> bool {
        self.entries.iter().all(|e| e.expires_ms <= now_ms)
    }
}

/// Per-user histories. The counter of a user survives while its window has live entries;
/// an idle user's history is pruned by the liveness sweep.
#[derive(Default)]
pub(crate) struct Histories {
    users: RwLock<HashMap<String, Arc<Mutex<History>>>>,
}

impl Histories {
    pub(crate) fn user(&self, user_id: &str) -> Arc<Mutex<History>> {
        if let Some(history) = self.users.read().get(user_id) {
            return history.clone();
        }
        self.users
            .write()
            .entry(user_id.to_owned())
            .or_insert_with(|| {
                Arc::new(Mutex::new(History {
                    last_seq: 0,
                    entries: VecDeque::new(),
                }))
            })
            .clone()
    }

    /// Drops histories with no live entry whose user is not online.
    pub(crate) fn prune(&self, now_ms: u64, online: impl Fn(&str) -> bool) {
        self.users
            .write()
            .retain(|user, h| online(user) || !h.lock().is_idle(now_ms));
    }
}
