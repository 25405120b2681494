//! Offline messages: the [`OfflineStore`] trait and its in-memory implementation.
//!
//! A message is stored when its user has no live connection, or when an acknowledged
//! delivery finally fails. On the user's next connect the hub replays the stored messages
//! (marked `source: "offline"`) before any live message, and deletes each one only once it
//! was written (fire-and-forget) or acknowledged (`require_ack`).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::callbacks::BoxFuture;
use crate::message::HubMessage;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or refused the operation.
    #[error("offline store unavailable: {0}")]
    Unavailable(String),
}

/// Where undeliverable messages wait for their user.
///
/// Implementations keep at most a bounded number of messages per user (dropping the oldest
/// first), expire them after a TTL, and return them oldest first. Messages keep their
/// `app_id` and `namespace`: the hub replays each one only to a connection in that scope and
/// leaves the others stored.
pub trait OfflineStore: Send + Sync + 'static {
    /// Stores one message for a user: `Ok(true)` when it was stored, `Ok(false)` when a
    /// message with the same `message_id` is already stored for the user (nothing changes).
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<bool, StoreError>>;
    /// The user's stored messages, oldest first (without removing them).
    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>>;
    /// Removes messages by `message_id`.
    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>>;
    /// Messages dropped so far because a backlog was full or a message expired.
    fn dropped(&self) -> u64 {
        0
    }
    /// Drops the expired messages of every user. The hub calls it from its periodic sweep
    /// (every heartbeat interval); a backend that expires entries itself keeps this default,
    /// which does nothing.
    fn purge_expired(&self) {}
}

/// One stored message with its place in the store-wide insertion order.
#[derive(Debug)]
struct Stored {
    order: u64,
    stored_at: tokio::time::Instant,
    message: HubMessage,
}

#[derive(Debug, Default)]
struct Users {
    by_user: HashMap<String, VecDeque<Stored>>,
    /// Insertion order across users (order number -> user), to evict the oldest message of
    /// the whole store when it is full.
    order: BTreeMap<u64, String>,
    next_order: u64,
}

/// The in-memory store: bounded per user and in total, with a TTL. Lost on restart.
///
/// When a user's backlog is full, that user's oldest message is dropped; when the whole
/// store is full, the oldest message of the whole store (whoever it belongs to) is dropped.
/// Both count in [`dropped`](OfflineStore::dropped), as do expired messages.
#[derive(Debug)]
pub struct MemoryOfflineStore {
    max_per_user: usize,
    max_total: usize,
    ttl: Duration,
    users: Mutex<Users>,
    dropped: AtomicU64,
}

impl MemoryOfflineStore {
    /// A store keeping at most `max_per_user` messages per user for `ttl`, and at most
    /// 100,000 messages in total (see [`with_max_total`](Self::with_max_total)).
    pub fn new(max_per_user: usize, ttl: Duration) -> Self {
        MemoryOfflineStore {
            max_per_user: max_per_user.max(1),
            max_total: 100_000,
            ttl,
            users: Mutex::new(Users::default()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Sets the most messages the store holds for all users together (at least 1).
    pub fn with_max_total(mut self, max_total: usize) -> Self {
        self.max_total = max_total.max(1);
        self
    }

    /// Messages currently stored for a user (expired ones excluded).
    pub fn len(&self, user_id: &str) -> usize {
        let now = tokio::time::Instant::now();
        self.users
            .lock()
            .by_user
            .get(user_id)
            .map(|q| q.iter().filter(|m| now < m.stored_at + self.ttl).count())
            .unwrap_or(0)
    }

    /// Whether nothing is stored for the user.
    pub fn is_empty(&self, user_id: &str) -> bool {
        self.len(user_id) == 0
    }

    /// Messages stored for all users together, expired ones included until the next sweep.
    pub fn total(&self) -> usize {
        self.users.lock().order.len()
    }

    /// Users with stored messages, expired ones included until the next sweep.
    pub fn user_count(&self) -> usize {
        self.users.lock().by_user.len()
    }

    /// Drops a user's expired messages (and the user when nothing is left).
    fn expire(&self, users: &mut Users, user_id: &str) {
        let now = tokio::time::Instant::now();
        let Some(queue) = users.by_user.get_mut(user_id) else {
            return;
        };
        while let Some(front) = queue.front() {
            if now < front.stored_at + self.ttl {
                break;
            }
            let order = front.order;
            queue.pop_front();
            users.order.remove(&order);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        if queue.is_empty() {
            users.by_user.remove(user_id);
        }
    }

    /// Drops the front message of `user_id` (its oldest), counting it.
    fn drop_oldest_of(&self, users: &mut Users, user_id: &str) {
        if let Some(queue) = users.by_user.get_mut(user_id) {
            if let Some(oldest) = queue.pop_front() {
                users.order.remove(&oldest.order);
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            if queue.is_empty() {
                users.by_user.remove(user_id);
            }
        }
    }
}

impl Default for MemoryOfflineStore {
    /// 100 messages per user for 7 days, 100,000 in total (the configuration defaults).
    fn default() -> Self {
        MemoryOfflineStore::new(100, Duration::from_secs(7 * 24 * 3600))
    }
}

impl OfflineStore for MemoryOfflineStore {
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<bool, StoreError>> {
        let stored = {
            let mut users = self.users.lock();
            self.expire(&mut users, user_id);
            let queue = users.by_user.get(user_id);
            if queue.is_some_and(|q| q.iter().any(|m| m.message.message_id == message.message_id)) {
                false
            } else {
                if queue.is_some_and(|q| q.len() >= self.max_per_user) {
                    self.drop_oldest_of(&mut users, user_id);
                }
                if users.order.len() >= self.max_total
                    && let Some((_, owner)) = users.order.first_key_value()
                {
                    // Each user's queue is in insertion order, so the store's oldest
                    // message is the front of its owner's queue.
                    let owner = owner.clone();
                    self.drop_oldest_of(&mut users, &owner);
                }
                let order = users.next_order;
                users.next_order += 1;
                users.order.insert(order, user_id.to_owned());
                users
                    .by_user
                    .entry(user_id.to_owned())
                    .or_default()
                    .push_back(Stored {
                        order,
                        stored_at: tokio::time::Instant::now(),
                        message,
                    });
                true
            }
        };
        Box::pin(async move { Ok(stored) })
    }

    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>> {
        let messages = {
            let mut users = self.users.lock();
            self.expire(&mut users, user_id);
            users
                .by_user
                .get(user_id)
                .map(|q| q.iter().map(|m| m.message.clone()).collect())
                .unwrap_or_default()
        };
        Box::pin(async move { Ok(messages) })
    }

    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>> {
        {
            let mut users = self.users.lock();
            let Users { by_user, order, .. } = &mut *users;
            if let Some(queue) = by_user.get_mut(user_id) {
                queue.retain(|m| {
                    let keep = !message_ids.contains(&m.message.message_id);
                    if !keep {
                        order.remove(&m.order);
                    }
                    keep
                });
                if queue.is_empty() {
                    by_user.remove(user_id);
                }
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn purge_expired(&self) {
        // Every message lives for the same TTL, so the expired ones are a prefix of the
        // store-wide insertion order: the work is proportional to what expired.
        let now = tokio::time::Instant::now();
        let mut users = self.users.lock();
        while let Some((_, owner)) = users.order.first_key_value() {
            let owner = owner.clone();
            let expired = users
                .by_user
                .get(&owner)
                .and_then(|q| q.front())
                .is_some_and(|m| now >= m.stored_at + self.ttl);
            if !expired {
                break;
            }
            self.drop_oldest_of(&mut users, &owner);
        }
    }
}
