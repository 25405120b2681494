//! Numbering a message to a user: its `seq_no` and its place in the user's resume window
//! come from the history store, and messages to one user are queued (and handed to the
//! other nodes) in `seq_no` order. Reading the window back for a resume.

use std::hash::{BuildHasher, RandomState};

use tokio::sync::MutexGuard;

use super::*;
use crate::history::{HistoryStore, MemoryHistory, NewEntry, Window, WindowEntry, WindowLimits};
use crate::offline::StoreError;

/// Where the hub's histories live: this node's memory (the default, numbered synchronously
/// under the user's lock: no async step, no extra lock), or a store shared with other nodes
/// (numbering is awaited, and the user's turn, below, keeps the order).
#[derive(Default)]
pub(super) struct Histories {
    memory: MemoryHistory,
    shared: RwLock<Option<Arc<dyn HistoryStore>>>,
    /// Whether `shared` is set: one relaxed load on every numbered send instead of a lock.
    is_shared: AtomicBool,
}

impl Histories {
    fn shared(&self) -> Option<Arc<dyn HistoryStore>> {
        if self.is_shared.load(Ordering::Acquire) {
            self.shared.read().clone()
        } else {
            None
        }
    }
}

/// Stripes of turns for numbering with a shared store: a user's sends from this node take
/// the turn of the user's stripe from numbering until the message is queued here and
/// published, so they leave this node in `seq_no` order. Striping bounds the memory (no
/// per-user lock to create and prune); two users share a stripe only briefly.
pub(super) struct Turns {
    stripes: Box<[tokio::sync::Mutex<()>]>,
    hasher: RandomState,
}

const STRIPES: usize = 64;

impl Default for Turns {
    fn default() -> Self {
        Turns {
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            hasher: RandomState::new(),
        }
    }
}

impl Turns {
    async fn take(&self, user_id: &str) -> MutexGuard<'_, ()> {
        let stripe = self.hasher.hash_one(user_id) as usize % self.stripes.len();
        self.stripes[stripe].lock().await
    }
}

/// A numbered message: its frame, what `deliver` returned, and the user's turn, held until
/// the caller has published it too.
pub(super) struct Numbered<'a, R> {
    pub(super) payload: Payload,
    pub(super) delivered: R,
    pub(super) turn: Option<MutexGuard<'a, ()>>,
}

impl Hub {
    /// Keeps users' sequence numbers and resume windows in `store` instead of this node's
    /// memory. Give every node of a cluster the same shared store, so numbers are unique
    /// per user across nodes and a client resumes wherever it reconnects. Set it before
    /// [`start`](Self::start).
    pub fn set_history(&self, store: Arc<dyn HistoryStore>) {
        let histories = &self.inner.histories;
        *histories.shared.write() = Some(store);
        histories.is_shared.store(true, Ordering::Release);
    }

    /// Gives a prepared message the user's next `seq_no` and keeps it in the user's window,
    /// then runs `deliver` with the numbered frame while the user's turn is held, so
    /// messages to one user are queued in `seq_no` order. The size limit is checked on the
    /// message without its number (with room for it), so a refused message takes no number.
    pub(super) async fn numbered<R>(
        &self,
        user_id: &str,
        msg: &mut HubMessage,
        config: &HubConfig,
        deliver: impl FnOnce(&HubMessage, &Payload) -> R,
    ) -> Result<Numbered<'_, R>, SendError> {
        let limits = WindowLimits::new(config.history_size, config.history_ttl);
        let Some(store) = self.inner.histories.shared() else {
            let history = &self.inner.histories.memory;
            return self.number_here(history, user_id, msg, config, limits, deliver);
        };
        // Boxed: this path awaits a round trip anyway, and keeping its state out of the
        // caller's future keeps every send's future small (measured: the inline version
        // doubled the size of `send_to_user`'s future and cost 8 % on the user route).
        Box::pin(self.number_shared(store, user_id, msg, config, limits, deliver)).await
    }

    /// Numbering in this node's memory: the frame is encoded once, with its number, under
    /// the user's lock; the limit counts the same room for the number as a shared store's
    /// base does.
    fn number_here<R>(
        &self,
        history: &MemoryHistory,
        user_id: &str,
        msg: &mut HubMessage,
        config: &HubConfig,
        limits: WindowLimits,
        deliver: impl FnOnce(&HubMessage, &Payload) -> R,
    ) -> Result<Numbered<'_, R>, SendError> {
        let (payload, delivered) = history.number_with(user_id, limits, |seq| {
            msg.seq_no = seq;
            let reserve = codec::SEQ_ROOM - codec::seq_field_len(seq);
            let payload = self.encode_numbered(msg, config, reserve)?;
            let entry = WindowEntry::of_message(seq, msg, payload.clone());
            let delivered = deliver(msg, &payload);
            Ok::<_, SendError>((entry, (payload, delivered)))
        })?;
        Ok(Numbered {
            payload,
            delivered,
            turn: None,
        })
    }

    /// Encodes a message that is being numbered; a refused message keeps no number.
    fn encode_numbered(
        &self,
        msg: &mut HubMessage,
        config: &HubConfig,
        reserve: usize,
    ) -> Result<Payload, SendError> {
        let encoded = self.encode_outbound(msg, config, reserve);
        if encoded.is_err() {
            msg.seq_no = 0;
        }
        encoded
    }

    /// Numbering through a shared store, under the user's turn.
    async fn number_shared<R>(
        &self,
        store: Arc<dyn HistoryStore>,
        user_id: &str,
        msg: &mut HubMessage,
        config: &HubConfig,
        limits: WindowLimits,
        deliver: impl FnOnce(&HubMessage, &Payload) -> R,
    ) -> Result<Numbered<'_, R>, SendError> {
        msg.seq_no = codec::UNNUMBERED;
        let base = self.encode_numbered(msg, config, codec::SEQ_ROOM)?;
        let entry = NewEntry {
            message_id: msg.message_id.clone(),
            base: base.clone(),
            app_id: msg.app_id.clone(),
            namespace: msg.namespace.clone(),
        };
        let turn = self.inner.turns.take(user_id).await;
        let payload = match store.append(user_id, entry, limits).await {
            Ok(seq) => {
                msg.seq_no = seq;
                codec::with_seq(&base, seq)
            }
            Err(e) => {
                // Local delivery goes on without the shared store: the message leaves
                // unnumbered (`seq_no: 0`, like a broadcast) and outside the resume window.
                self.cluster_failed("numbering through the shared history", &e);
                msg.seq_no = 0;
                self.encode_outbound(msg, config, 0)?
            }
        };
        let delivered = deliver(msg, &payload);
        Ok(Numbered {
            payload,
            delivered,
            turn: Some(turn),
        })
    }

    /// The user's window after `after`.
    pub(super) async fn read_window(
        &self,
        user_id: &str,
        after: i64,
    ) -> Result<Window, StoreError> {
        match self.inner.histories.shared() {
            None => Ok(self.inner.histories.memory.read_now(user_id, after)),
            Some(store) => store.read(user_id, after).await,
        }
    }

    /// Drops this node's idle histories of users who are not online (the periodic sweep).
    pub(super) fn prune_histories(&self) {
        if self.inner.histories.shared().is_none() {
            let online: HashSet<String> = self.inner.registry.read().users().cloned().collect();
            self.inner
                .histories
                .memory
                .prune(|user| online.contains(user));
        }
    }
}
