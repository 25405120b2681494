//! What Redis pushes on a subscribed connection, and what the subscribers counted.
//!
//! The handler runs on the connection's reader, so it never waits: each message is decoded
//! and handed to the hub's inbox with `try_send` (a full inbox drops the envelope and
//! counts it, like a lost pub/sub message), and the end of the subscription is signalled
//! to the supervisor through a [`Notify`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, mpsc};
use wsc_hub::Envelope;

/// What the subscribers of one backplane counted.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) received: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) undecodable: AtomicU64,
    pub(crate) reconnects: AtomicU64,
}

/// Handles the pushes of one connection.
pub(crate) struct PushHandler {
    pub(crate) node_id: Arc<str>,
    pub(crate) inbox: mpsc::Sender<Envelope>,
    pub(crate) counters: Arc<Counters>,
    /// Notified when the subscription ended: the connection was lost, or Redis
    /// unsubscribed it.
    pub(crate) lost: Arc<Notify>,
}

impl PushHandler {
    pub(crate) fn handle(&self, info: PushInfo) -> Result<(), std::convert::Infallible> {
        match info.kind {
            PushKind::SMessage | PushKind::Message => {
                if let Some(Value::BulkString(bytes)) = info.data.get(1) {
                    self.deliver(bytes);
                }
            }
            // `notify_one` keeps a permit when the supervisor is not waiting yet, so a loss
            // right after subscribing is not missed.
            PushKind::Disconnection => self.lost.notify_one(),
            // The connection never unsubscribes by itself: this is Redis Cluster dropping
            // the subscription because the channel's slot moved to another shard
            // (resharding, or this node turned into a replica of another shard). The
            // connection is alive but no longer receives the channel: subscribe again
            // where the slot lives now.
            PushKind::SUnsubscribe => self.lost.notify_one(),
            _ => {}
        }
        Ok(())
    }

    fn deliver(&self, bytes: &[u8]) {
        let envelope = match serde_json::from_slice::<Envelope>(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                self.counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "undecodable envelope on the backplane; skipped");
                return;
            }
        };
        // The broadcast channel reaches the publisher too; a node never applies its own.
        if envelope.origin() == &*self.node_id {
            return;
        }
        self.counters.received.fetch_add(1, Ordering::Relaxed);
        if self.inbox.try_send(envelope).is_err() {
            let dropped = self.counters.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            // Logged at 1, 2, 4, 8, ... drops: visible without flooding the log.
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "the hub's inbox is full or closed; envelopes dropped"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsc_hub::{HubMessage, Route, Target, codec};

    fn envelope(origin: &str) -> Envelope {
        Envelope::Message {
            origin: origin.to_owned(),
            route: Route::new(Target::Broadcast),
            payload: codec::encode(&HubMessage::text("x")).unwrap(),
            awaits_ack: None,
            report: false,
        }
    }

    fn push(kind: PushKind, payload: Vec<u8>) -> PushInfo {
        PushInfo {
            kind,
            data: vec![
                Value::BulkString(b"p:broadcast".to_vec()),
                Value::BulkString(payload),
            ],
        }
    }

    fn handler(capacity: usize) -> (PushHandler, mpsc::Receiver<Envelope>, Arc<Counters>) {
        let (inbox, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let handler = PushHandler {
            node_id: Arc::from("me"),
            inbox,
            counters: counters.clone(),
            lost: Arc::new(Notify::new()),
        };
        (handler, rx, counters)
    }

    #[test]
    fn own_envelopes_are_skipped_others_delivered_and_a_full_inbox_counts() {
        let (handler, mut rx, counters) = handler(1);
        let mine = serde_json::to_vec(&envelope("me")).unwrap();
        let theirs = serde_json::to_vec(&envelope("other")).unwrap();
        handler.handle(push(PushKind::SMessage, mine)).unwrap();
        handler
            .handle(push(PushKind::SMessage, theirs.clone()))
            .unwrap();
        handler.handle(push(PushKind::SMessage, theirs)).unwrap();
        handler
            .handle(push(PushKind::SMessage, b"{not json".to_vec()))
            .unwrap();
        assert_eq!(rx.try_recv().unwrap().origin(), "other");
        assert!(rx.try_recv().is_err());
        assert_eq!(counters.received.load(Ordering::Relaxed), 2);
        assert_eq!(counters.dropped.load(Ordering::Relaxed), 1);
        assert_eq!(counters.undecodable.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_subscription_ends_it_like_a_lost_connection() {
        for kind in [PushKind::Disconnection, PushKind::SUnsubscribe] {
            let (handler, _rx, _) = handler(1);
            handler
                .handle(PushInfo {
                    kind: kind.clone(),
                    data: vec![Value::BulkString(b"p:broadcast".to_vec()), Value::Int(0)],
                })
                .unwrap();
            let noticed =
                tokio::time::timeout(std::time::Duration::from_secs(1), handler.lost.notified())
                    .await;
            assert!(noticed.is_ok(), "{kind:?} did not end the subscription");
        }
        let (handler, _rx, _) = handler(1);
        handler
            .handle(push(PushKind::SSubscribe, b"1".to_vec()))
            .unwrap();
        let noticed =
            tokio::time::timeout(std::time::Duration::from_secs(1), handler.lost.notified()).await;
        assert!(
            noticed.is_err(),
            "a subscription confirmation is not an end"
        );
    }
}
