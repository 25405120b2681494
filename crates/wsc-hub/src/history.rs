//! Per-user sequence numbers and the resume window: the [`HistoryStore`] trait (the seam a
//! cluster backs with shared storage), [`MemoryHistory`] (one node's, the default) and the
//! recovery rule that turns a window into a [`Recovery`].
//!
//! A message to a user is encoded once *without* its `seq_no` (the `base`); the store gives
//! it the user's next number and keeps it in one step, and [`codec::with_seq`] writes the
//! number into the frame. Numbering and keeping are one operation so that a shared store
//! (Redis) can do both in one round trip, atomically, the way Centrifugo's history publish
//! does; a refused message never takes a number, because the size check happens on the base.

use std::collections::VecDeque;

use crate::fast_hash::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::time::Instant;

use crate::callbacks::BoxFuture;
use crate::codec::{self, Payload};
use crate::offline::StoreError;

/// How many messages a user's window keeps, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowLimits {
    /// Messages kept per user (0 = none: numbers are still given).
    pub size: usize,
    /// How long each message stays.
    pub ttl: Duration,
}

impl WindowLimits {
    /// Limits of `size` messages kept for `ttl`.
    pub fn new(size: usize, ttl: Duration) -> Self {
        WindowLimits { size, ttl }
    }
}

/// A message to number and keep.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewEntry {
    /// The message's `message_id`.
    pub message_id: String,
    /// The message encoded without `seq_no` (see [`codec::with_seq`]).
    pub base: Payload,
    /// The app the message was sent to (empty = any).
    pub app_id: String,
    /// The namespace the message was sent to (empty = any).
    pub namespace: String,
}

impl NewEntry {
    /// A message of any app and namespace; `base` is encoded with [`codec::UNNUMBERED`].
    pub fn new(message_id: impl Into<String>, base: Payload) -> Self {
        NewEntry {
            message_id: message_id.into(),
            base,
            app_id: String::new(),
            namespace: String::new(),
        }
    }
}

/// One kept message, as the window returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WindowEntry {
    /// Its sequence number.
    pub seq: i64,
    /// Its `message_id`.
    pub message_id: String,
    /// The frame, with its `seq_no`.
    pub payload: Payload,
    /// The app it was sent to (empty = any).
    pub app_id: String,
    /// The namespace it was sent to (empty = any).
    pub namespace: String,
}

impl WindowEntry {
    /// The kept form of `entry` numbered `seq` (its frame gets the number written in).
    pub fn numbered(entry: NewEntry, seq: i64) -> Self {
        WindowEntry {
            seq,
            payload: codec::with_seq(&entry.base, seq),
            message_id: entry.message_id,
            app_id: entry.app_id,
            namespace: entry.namespace,
        }
    }

    /// The kept form of a message encoded with its number.
    pub(crate) fn of_message(seq: i64, msg: &crate::HubMessage, payload: Payload) -> Self {
        WindowEntry {
            seq,
            message_id: msg.message_id.clone(),
            payload,
            app_id: msg.app_id.clone(),
            namespace: msg.namespace.clone(),
        }
    }
}

/// What a user's window holds after some sequence number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Window {
    /// The user's latest sequence number (0 when nothing was ever numbered, or the counter
    /// expired with its window).
    pub latest_seq: i64,
    /// The oldest sequence number still kept, if any.
    pub first_seq: Option<i64>,
    /// The kept messages after the requested number, oldest first.
    pub entries: Vec<WindowEntry>,
}

impl Window {
    /// A window as read after `after`: builds it from every live entry.
    pub fn after(latest_seq: i64, live: impl IntoIterator<Item = WindowEntry>, after: i64) -> Self {
        let mut first_seq = None;
        let entries = live
            .into_iter()
            .inspect(|e| {
                first_seq.get_or_insert(e.seq);
            })
            .filter(|e| e.seq > after)
            .collect();
        Window {
            latest_seq,
            first_seq,
            entries,
        }
    }

    /// The recovery rule, in one place: every message after `last_seen` that a connection
    /// of `app_id` / `namespace` may receive, or nothing when the window does not cover the
    /// gap (never a partial replay). Messages of another scope are not this connection's
    /// to miss: they are skipped, not a gap.
    pub(crate) fn recover(
        self,
        last_seen: i64,
        (app_id, namespace): (&str, &str),
    ) -> (Recovery, Vec<WindowEntry>) {
        let latest = self.latest_seq;
        let first_kept = self.first_seq.unwrap_or(latest + 1);
        let covered = last_seen <= latest && last_seen + 1 >= first_kept;
        let frames: Vec<WindowEntry> = if covered {
            self.entries
                .into_iter()
                .filter(|e| e.seq > last_seen)
                .filter(|e| crate::route::in_scope(&e.app_id, &e.namespace, app_id, namespace))
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

/// Where users' sequence numbers and resume windows live.
///
/// The default is this node's [`MemoryHistory`]. A cluster gives every node the same shared
/// store ([`Hub::set_history`](crate::Hub::set_history)), so numbers are unique per user
/// across nodes and a client resumes wherever it reconnects.
pub trait HistoryStore: Send + Sync + 'static {
    /// Gives the message the user's next sequence number and keeps it (with
    /// [`codec::with_seq`] applied) in the user's window, trimmed to `limits`. Returns the
    /// number. Numbering and keeping are one atomic step.
    fn append(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> BoxFuture<Result<i64, StoreError>>;

    /// The user's live window after sequence number `after`.
    fn read(&self, user_id: &str, after: i64) -> BoxFuture<Result<Window, StoreError>>;
}

/// One kept message in memory.
struct Kept {
    expires: Instant,
    entry: WindowEntry,
}

/// One user's counter and recent messages.
#[derive(Default)]
struct UserHistory {
    last_seq: i64,
    /// In seq order.
    kept: VecDeque<Kept>,
}

impl UserHistory {
    fn expire(&mut self, now: Instant) {
        while self.kept.front().is_some_and(|k| k.expires <= now) {
            self.kept.pop_front();
        }
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.kept.iter().all(|k| k.expires <= now)
    }
}

/// This node's histories: a counter and a window per user, in memory. A user's counter
/// lives while its window has live entries or the user is online; the hub's periodic sweep
/// prunes the rest.
#[derive(Default)]
pub struct MemoryHistory {
    users: RwLock<HashMap<String, Arc<Mutex<UserHistory>>>>,
}

impl std::fmt::Debug for MemoryHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryHistory")
            .field("users", &self.users.read().len())
            .finish()
    }
}

impl MemoryHistory {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    fn user(&self, user_id: &str) -> Arc<Mutex<UserHistory>> {
        if let Some(history) = self.users.read().get(user_id) {
            return history.clone();
        }
        self.users
            .write()
            .entry(user_id.to_owned())
            .or_default()
            .clone()
    }

    /// Numbers a message under the user's lock: `f` gets the next number and returns the
    /// entry to keep (or an error, and the number is not taken) with whatever else it did
    /// while the lock was held. The hub encodes and queues the message there, so messages
    /// to one user are queued in `seq_no` order without an async lock, and the frame is
    /// encoded once with its number in it.
    pub(crate) fn number_with<R, E>(
        &self,
        user_id: &str,
        limits: WindowLimits,
        f: impl FnOnce(i64) -> Result<(WindowEntry, R), E>,
    ) -> Result<R, E> {
        let history = self.user(user_id);
        let mut history = history.lock();
        let now = Instant::now();
        history.expire(now);
        let (entry, result) = f(history.last_seq + 1)?;
        history.last_seq = entry.seq;
        if limits.size > 0 {
            while history.kept.len() >= limits.size {
                history.kept.pop_front();
            }
            history.kept.push_back(Kept {
                expires: now + limits.ttl,
                entry,
            });
        }
        Ok(result)
    }

    /// [`HistoryStore::read`], synchronously.
    pub(crate) fn read_now(&self, user_id: &str, after: i64) -> Window {
        let history = self.user(user_id);
        let mut history = history.lock();
        history.expire(Instant::now());
        Window::after(
            history.last_seq,
            history.kept.iter().map(|k| k.entry.clone()),
            after,
        )
    }

    /// Drops histories with no live entry whose user is not online.
    pub(crate) fn prune(&self, online: impl Fn(&str) -> bool) {
        let now = Instant::now();
        self.users
            .write()
            .retain(|user, h| online(user) || !h.lock().is_idle(now));
    }
}

impl HistoryStore for MemoryHistory {
    fn append(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> BoxFuture<Result<i64, StoreError>> {
        let numbered = self.number_with(user_id, limits, |seq| {
            Ok::<_, StoreError>((WindowEntry::numbered(entry, seq), seq))
        });
        Box::pin(std::future::ready(numbered))
    }

    fn read(&self, user_id: &str, after: i64) -> BoxFuture<Result<Window, StoreError>> {
        Box::pin(std::future::ready(Ok(self.read_now(user_id, after))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HubMessage;

    fn entry(text: &str, app: &str) -> NewEntry {
        let mut msg = HubMessage::text(text);
        msg.message_id = text.to_owned();
        msg.app_id = app.to_owned();
        msg.seq_no = codec::UNNUMBERED;
        NewEntry {
            message_id: text.to_owned(),
            base: codec::encode(&msg).unwrap(),
            app_id: app.to_owned(),
            namespace: String::new(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn numbers_are_consecutive_and_written_into_the_frame() {
        let history = MemoryHistory::new();
        let limits = WindowLimits::new(10, Duration::from_secs(60));
        for (i, text) in ["a", "b", "c"].into_iter().enumerate() {
            let seq = history.append("u", entry(text, ""), limits).await.unwrap();
            assert_eq!(seq, i as i64 + 1);
        }
        let window = history.read("u", 1).await.unwrap();
        assert_eq!((window.latest_seq, window.first_seq), (3, Some(1)));
        let seqs: Vec<i64> = window.entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3]);
        let frame: HubMessage = serde_json::from_str(window.entries[0].payload.as_str()).unwrap();
        assert_eq!((frame.seq_no, frame.content.as_str()), (2, "b"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_window_is_bounded_and_expires() {
        let history = MemoryHistory::new();
        let limits = WindowLimits::new(2, Duration::from_secs(10));
        for text in ["a", "b", "c"] {
            history.append("u", entry(text, ""), limits).await.unwrap();
        }
        let (recovery, frames) = history.read_now("u", 0).recover(0, ("", ""));
        assert!(!recovery.recovered, "seq 1 fell out of a 2-message window");
        assert!(frames.is_empty());
        let (recovery, frames) = history.read_now("u", 1).recover(1, ("", ""));
        assert!(recovery.recovered);
        assert_eq!(frames.len(), 2);
        tokio::time::advance(Duration::from_secs(11)).await;
        let (recovery, _) = history.read_now("u", 3).recover(3, ("", ""));
        assert!(
            recovery.recovered,
            "nothing was missed after the latest number"
        );
        let (recovery, _) = history.read_now("u", 2).recover(2, ("", ""));
        assert!(!recovery.recovered, "seq 3 expired");
    }

    #[tokio::test(start_paused = true)]
    async fn another_scope_is_skipped_not_a_gap() {
        let history = MemoryHistory::new();
        let limits = WindowLimits::new(10, Duration::from_secs(60));
        history
            .append("u", entry("mine", "app-a"), limits)
            .await
            .unwrap();
        history
            .append("u", entry("theirs", "app-b"), limits)
            .await
            .unwrap();
        let (recovery, frames) = history.read_now("u", 0).recover(0, ("app-a", ""));
        assert!(recovery.recovered);
        let ids: Vec<&str> = frames.iter().map(|e| e.message_id.as_str()).collect();
        assert_eq!(ids, ["mine"]);
    }
}
