//! Replay to a new connection: offline messages and resumed history go into its backlog
//! before it is reachable; storing undeliverable messages offline.

use super::*;

/// Frames replayed to a new connection before its queue: offline messages (with the id to
/// delete once written, for fire-and-forget ones) and resumed history.
#[derive(Default)]
pub(super) struct Backlog {
    pub(super) frames: VecDeque<(Outbound, Option<String>)>,
    pub(super) replayed: HashSet<String>,
    /// Replayed messages whose ack is tracked once the connection is admitted.
    pub(super) awaiting_ack: Vec<String>,
    /// Offline messages loaded and not counted yet (counted once admitted).
    pub(super) offline_count: u64,
}

/// A stored message as it is replayed: marked `source: "offline"` and `data.offline: true`.
pub(super) fn replay_payload(mut msg: HubMessage) -> Option<Payload> {
    msg.source = Some(Source::Offline);
    codec::encode(&msg.with_data("offline", true)).ok()
}

impl Hub {
    /// The admission succeeded: replayed messages that need an ack start waiting for it,
    /// and the replay is counted.
    pub(super) fn commit_replay(&self, conn: &Arc<Connection>, backlog: &mut Backlog) {
        for message_id in std::mem::take(&mut backlog.awaiting_ack) {
            self.await_replay_ack(conn, &message_id, conn.user_id());
        }
        let replayed = std::mem::take(&mut backlog.offline_count);
        if replayed > 0 {
            Counters::add(&self.inner.counters.offline_replayed, replayed);
        }
    }

    /// Loads the user's offline messages of the connection's scope into the backlog
    /// (skipping ones already there). Messages of another app or namespace stay stored for
    /// a connection of theirs. Acks and counters wait for [`Hub::commit_replay`].
    pub(super) async fn replay_offline(&self, conn: &Arc<Connection>, backlog: &mut Backlog) {
        let Some(store) = self.offline_store() else {
            return;
        };
        let user_id = conn.user_id().to_owned();
        let messages = match store.load(&user_id).await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(user_id, error = %e, "offline replay skipped: store failed");
                return;
            }
        };
        for msg in messages {
            if !in_scope(conn, &msg) || !backlog.replayed.insert(msg.message_id.clone()) {
                continue;
            }
            let (require_ack, message_id) = (msg.require_ack, msg.message_id.clone());
            let Some(payload) = replay_payload(msg) else {
                continue;
            };
            // Acked messages leave the store when acked; the others once written.
            let delete_when_written = if require_ack {
                backlog.awaiting_ack.push(message_id);
                None
            } else {
                Some(message_id)
            };
            backlog.offline_count += 1;
            backlog
                .frames
                .push_back((Outbound::Message(payload), delete_when_written));
        }
    }

    /// Pushes what the user missed after `last_seen` in the connection's scope (or nothing,
    /// when the window does not cover the gap), skipping messages in `already` and adding
    /// the pushed ones to it.
    pub(super) async fn resume(
        &self,
        conn: &Connection,
        last_seen: i64,
        already: &mut HashSet<String>,
        mut push: impl FnMut(Outbound),
    ) -> Recovery {
        let identity = conn.identity();
        let scope = (identity.app_id.as_str(), identity.namespace.as_str());
        let window = match self.read_window(conn.user_id(), last_seen).await {
            Ok(window) => window,
            Err(e) => {
                tracing::warn!(user_id = conn.user_id(), error = %e, "resume failed: history unavailable");
                return Recovery {
                    recovered: false,
                    from_seq: last_seen,
                    latest_seq: last_seen,
                    replayed: 0,
                };
            }
        };
        let (mut recovery, frames) = window.recover(last_seen, scope);
        recovery.replayed = 0;
        for entry in frames {
            if already.insert(entry.message_id) {
                recovery.replayed += 1;
                push(Outbound::Message(entry.payload));
            }
        }
        recovery
    }

    /// After the admission: what was numbered since the first read of the window (it reached
    /// neither that read nor the connection's queue), then the `recovered` frame.
    pub(super) async fn resume_rest(
        &self,
        conn: &Connection,
        recovery: &mut Recovery,
        backlog: &mut Backlog,
    ) {
        if recovery.recovered {
            let Backlog {
                frames, replayed, ..
            } = backlog;
            let more = self
                .resume(conn, recovery.latest_seq, replayed, |frame| {
                    frames.push_back((frame, None))
                })
                .await;
            recovery.replayed += more.replayed;
            recovery.latest_seq = recovery.latest_seq.max(more.latest_seq);
            // The window moved past the first read (trimmed or expired in between): the
            // client is told to resynchronise; the frames already queued do no harm.
            recovery.recovered = more.recovered;
        }
        if let Some(notice) = self.recovered_notice(conn, recovery) {
            backlog.frames.push_back((notice, None));
        }
    }

    /// The frame that tells a resuming client whether it got everything it missed.
    pub(super) fn recovered_notice(
        &self,
        conn: &Connection,
        recovery: &Recovery,
    ) -> Option<Outbound> {
        let content = if recovery.recovered {
            format!("replayed {} missed messages", recovery.replayed)
        } else {
            "the missed messages are no longer available; resynchronise".to_owned()
        };
        let mut notice = HubMessage {
            receiver: conn.user_id().to_owned(),
            ..HubMessage::new(MessageType::Recovered, content)
        }
        .with_data("recovered", recovery.recovered)
        .with_data("from_seq", recovery.from_seq)
        .with_data("latest_seq", recovery.latest_seq)
        .with_data("replayed", recovery.replayed as u64);
        self.prepare(&mut notice);
        codec::encode(&notice).ok().map(Outbound::Message)
    }

    /// Tracks the ack of a replayed message; the ack deletes it from the user's store.
    pub(super) fn await_replay_ack(&self, conn: &Arc<Connection>, message_id: &str, user_id: &str) {
        let target = AckTarget::Connection(conn.client_id().to_owned());
        self.inner.acks.register(
            message_id,
            target.clone(),
            Some(conn.id()),
            None,
            Some(user_id.to_owned()),
        );
        self.inner.acks.add_connection(message_id, &target, conn, 0);
    }

    /// Stores a message for its user. `was_offline`: the user had no live connection, so a
    /// connection that appears during the write missed it in its replay and gets it now.
    pub(super) async fn store_offline(
        &self,
        store: &Arc<dyn OfflineStore>,
        user_id: &str,
        msg: &HubMessage,
        was_offline: bool,
    ) -> bool {
        match store.store(user_id, msg.clone()).await {
            Ok(true) => {
                Counters::add(&self.inner.counters.offline_stored, 1);
                if was_offline {
                    self.deliver_if_reconnected(user_id, msg);
                    // The user may be connecting on another node, whose replay read the
                    // store before this message was in it. That node made the user present
                    // before its last read of the store, so either that read has the
                    // message, or the nodes named here (read after the store) include it.
                    self.publish(|hub| Envelope::Stored {
                        origin: hub.node_id().to_owned(),
                        user_id: user_id.to_owned(),
                        message: Box::new(msg.clone()),
                    })
                    .await;
                }
                true
            }
            // The same message is stored already (a repeated message id): it is kept, but
            // stored and counted once.
            Ok(false) => true,
            Err(e) => {
                tracing::warn!(user_id, error = %e, "offline store failed");
                false
            }
        }
    }

    /// The user may have connected (here, or on the node that sent an
    /// [`Envelope::Stored`]) while the store write was in flight: its replay then missed this
    /// message. Deliver it now (as a replayed message) instead of leaving it stranded until
    /// some later reconnect.
    pub(super) fn deliver_if_reconnected(&self, user_id: &str, msg: &HubMessage) {
        let route = Route::new(Target::User {
            user_id: user_id.to_owned(),
        });
        let conns = self.recipients(route, msg);
        if conns.is_empty() {
            return;
        }
        let Some(payload) = replay_payload(msg.clone()) else {
            return;
        };
        let config = self.config();
        let mut queued = false;
        for conn in &conns {
            if msg.require_ack {
                self.await_replay_ack(conn, &msg.message_id, user_id);
            }
            queued |= self.enqueue(conn, &payload, &config).is_ok();
        }
        if queued {
            Counters::add(&self.inner.counters.offline_replayed, 1);
        }
        // The message stays stored: this frame went through the queue, where its write is
        // not tracked, so deleting it now could lose it if the connection ends first. The
        // next connect replays it again at worst; clients dedupe by `message_id`.
    }

    /// Replays what the offline store holds for every user connected here, as replayed
    /// messages to their connections (they stay stored until written or acked). Used when
    /// the node's users were missing from presence for a while: senders stored their
    /// messages although the users were connected here.
    pub(super) fn replay_to_connected_users(&self) {
        let Some(store) = self.offline_store() else {
            return;
        };
        let users: Vec<String> = self.inner.registry.read().users().cloned().collect();
        let hub = self.clone();
        tokio::spawn(async move {
            for user_id in users {
                match store.load(&user_id).await {
                    Ok(messages) => {
                        for msg in &messages {
                            hub.deliver_if_reconnected(&user_id, msg);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(user_id, error = %e, "replay after rejoining skipped");
                    }
                }
            }
        });
    }
}
