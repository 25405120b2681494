//! The [`AckTracker`]: pending acknowledgements, keyed so that an ack arriving on any node
//! can be matched (by message id and user id, or message id and client id).

use std::collections::VecDeque;

use crate::fast_hash::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::connection::{Connection, ConnectionId};

/// Who must acknowledge a delivery: any connection of a user, or one connection (by client
/// id). Both mean the same on every node, so an ack forwarded from another node matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum AckTarget {
    User(String),
    Connection(String),
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
    /// The local connection each connection-target delivery waits on.
    owners: HashMap<Key, ConnectionId>,
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
        if let Some(id) = self.owners.remove(key) {
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
    /// Starts tracking; false when the same id is already pending for that target. `owner`
    /// is the local connection a connection target names: its disconnect ends the delivery.
    pub(crate) fn register(
        &self,
        message_id: &str,
        target: AckTarget,
        owner: Option<ConnectionId>,
        waiter: Option<oneshot::Sender<String>>,
        offline_user: Option<String>,
    ) -> bool {
        let mut state = self.state.lock();
        let key = (message_id.to_owned(), target);
        if state.pending.contains_key(&key) {
            return false;
        }
        if let Some(id) = owner {
            state.index(id, &key);
            state.owners.insert(key.clone(), id);
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
        self.settle(message_id, conn.user_id(), conn.client_id())
    }

    /// Matches an ack that a connection on another node sent (forwarded here): the same
    /// keys as a local ack, since user and client ids mean the same on every node.
    pub(crate) fn ack_remote(&self, message_id: &str, user_id: &str, client_id: &str) -> AckMatch {
        self.settle(message_id, user_id, client_id)
    }

    /// First a delivery to that connection, then one to its user.
    fn settle(&self, message_id: &str, user_id: &str, client_id: &str) -> AckMatch {
        let entry = {
            let mut state = self.state.lock();
            let by_conn = (
                message_id.to_owned(),
                AckTarget::Connection(client_id.to_owned()),
            );
            let by_user = (message_id.to_owned(), AckTarget::User(user_id.to_owned()));
            match state.take(&by_conn).or_else(|| state.take(&by_user)) {
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
                if state.owners.get(&key) == Some(&conn.id()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ack_forwarded_from_another_node_matches_a_connection_delivery_by_client_id() {
        let tracker = AckTracker::default();
        let (tx, mut rx) = oneshot::channel();
        let target = AckTarget::Connection("desk-1".to_owned());
        assert!(tracker.register("m-1", target, None, Some(tx), None));
        assert_eq!(
            tracker.ack_remote("m-1", "agent", "desk-2"),
            AckMatch::Unknown
        );
        assert_eq!(
            tracker.ack_remote("m-1", "agent", "desk-1"),
            AckMatch::Confirmed { offline_user: None }
        );
        assert_eq!(rx.try_recv().unwrap(), "desk-1");
        assert_eq!(
            tracker.ack_remote("m-1", "agent", "desk-1"),
            AckMatch::Duplicate
        );
        assert_eq!(tracker.len(), 0);
    }
}
