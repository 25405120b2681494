//! Offline messages: the [`OfflineStore`] trait and its in-memory implementation.
//!
//! A message is stored when its user has no live connection, or when an acknowledged
//! delivery finally fails. On the user's next connect the hub replays the stored messages
//! (marked `source: "offline"`) before any live message, and deletes each one only once it
//! was written (fire-and-forget) or acknowledged (`require_ack`).

use std::collections::{HashMap, VecDeque};
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
/// first), expire them after a TTL, and return them oldest first. `store` of a message id
/// that is already stored for the user replaces nothing and adds nothing.
pub trait OfflineStore: Send + Sync + 'static {
    /// Stores one message for a user.
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<(), StoreError>>;
    /// The user's stored messages, oldest first (without removing them).
    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>>;
    /// Removes messages by `message_id`.
    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>>;
    /// Messages dropped so far because a user's backlog was full or expired.
    fn dropped(&self) -> u64 {
        0
    }
}

/// The in-memory store: bounded per user, with a TTL. Lost on restart.
#[derive(Debug)]
pub struct MemoryOfflineStore {
    max_per_user: usize,
    ttl: Duration,
    users: Mutex<HashMap<String, VecDeque<(tokio::time::Instant, HubMessage)>>>,
    dropped: AtomicU64,
}

impl MemoryOfflineStore {
    /// A store keeping at most `max_per_user` messages per user for `ttl`.
    pub fn new(max_per_user: usize, ttl: Duration) -> Self {
        MemoryOfflineStore {
            max_per_user: max_per_user.max(1),
            ttl,
            users: Mutex::new(HashMap::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Messages currently stored for a user (expired ones excluded).
    pub fn len(&self, user_id: &str) -> usize {
        let now = tokio::time::Instant::now();
        self.users
            .lock()
            .get(user_id)
            .map(|q| q.iter().filter(|(at, _)| now < *at + self.ttl).count())
            .unwrap_or(0)
    }

    /// Whether nothing is stored for the user.
    pub fn is_empty(&self, user_id: &str) -> bool {
        self.len(user_id) == 0
    }

    fn expire(&self, queue: &mut VecDeque<(tokio::time::Instant, HubMessage)>) {
        let now = tokio::time::Instant::now();
        while let Some((at, _)) = queue.front() {
            if now < *at + self.ttl {
                break;
            }
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Default for MemoryOfflineStore {
    /// 100 messages per user for 7 days (the configuration defaults).
    fn default() -> Self {
        MemoryOfflineStore::new(100, Duration::from_secs(7 * 24 * 3600))
    }
}

impl OfflineStore for MemoryOfflineStore {
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<(), StoreError>> {
        {
            let mut users = self.users.lock();
            let queue = users.entry(user_id.to_owned()).or_default();
            self.expire(queue);
            if !queue
                .iter()
                .any(|(_, m)| m.message_id == message.message_id)
            {
                if queue.len() >= self.max_per_user {
                    queue.pop_front();
                    self.dropped.fetch_add(1, Ordering::Relaxed);
                }
                queue.push_back((tokio::time::Instant::now(), message));
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>> {
        let messages = {
            let mut users = self.users.lock();
            match users.get_mut(user_id) {
                Some(queue) => {
                    self.expire(queue);
                    let messages: Vec<HubMessage> = queue.iter().map(|(_, m)| m.clone()).collect();
                    if queue.is_empty() {
                        users.remove(user_id);
                    }
                    messages
                }
                None => Vec::new(),
            }
        };
        Box::pin(async move { Ok(messages) })
    }

    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>> {
        let mut users = self.users.lock();
        if let Some(queue) = users.get_mut(user_id) {
            queue.retain(|(_, m)| !message_ids.contains(&m.message_id));
            if queue.is_empty() {
                users.remove(user_id);
            }
        }
        Box::pin(async { Ok(()) })
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
