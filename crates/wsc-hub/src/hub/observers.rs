//! Observers: connections whose user type is in `HubConfig::observer_types` (supervisors,
//! monitoring) get a copy of every message sent in their scope, on every node.
//!
//! After a send reached someone (a message that only went to the offline store is not
//! copied; a broadcast reaches observers anyway), the node that made it encodes one copy
//! with `data.metadata` = `{observer_mode: true, original_sender, original_receiver}` and
//! routes it to `Target::Observers` with the message's app, namespace and groups: this
//! node's observers in scope get it at once, and when another node has observers the same
//! route and copy are published to the others, which resolve it against their own
//! observers. So each observer gets one copy, wherever it is connected. Nodes say whether
//! they have observers (`Envelope::Observers`, repeated every heartbeat while they do);
//! without observers anywhere a send costs nothing more than one counter read.

use serde_json::{Map, json};

use super::*;

/// A node that has not repeated its observers' presence for this many heartbeats is taken
/// to have none.
const FORGET_AFTER_BEATS: u64 = 3;

impl Hub {
    /// Copies a sent message to the observers in its scope (see the module docs). The copy
    /// for other nodes is published before this returns, so it travels ahead of whatever this
    /// task sends next on the channel to every node.
    pub(super) async fn observe(&self, msg: &HubMessage, report: &DeliveryReport) {
        if let Some(envelope) = self.copy_to_observers(msg, report) {
            Box::pin(self.publish(|_| envelope)).await;
        }
    }

    /// Queues the copy for this node's observers; the envelope for the others' when one of
    /// them has observers.
    fn copy_to_observers(&self, msg: &HubMessage, report: &DeliveryReport) -> Option<Envelope> {
        // The common case, nobody observing anywhere, costs one atomic load.
        let elsewhere = self.inner.observers_elsewhere.load(Ordering::Acquire);
        if !elsewhere && !self.inner.had_observers.load(Ordering::Acquire) {
            return None;
        }
        let config = self.config();
        if !config.observers_enabled || (report.delivered == 0 && report.nodes == 0) {
            return None;
        }
        let local = self.inner.registry.read().observer_count() > 0;
        let remote = elsewhere && self.peers_have_observers(&config);
        if !local && !remote {
            return None;
        }
        let copy = observer_copy(msg);
        let payload = self.encode_outbound(&copy, &config, 0).ok()?;
        let route = Route::new(Target::Observers {
            app_id: msg.app_id.clone(),
            namespace: msg.namespace.clone(),
            group_ids: msg.group_ids.clone(),
        });
        if local {
            let copies = self.deliver_remote(&route, &payload).len();
            Counters::add(&self.inner.counters.observer_copies, copies as u64);
        }
        remote.then(|| Envelope::Message {
            origin: self.node_id().to_owned(),
            route,
            payload,
            awaits_ack: None,
            report: false,
        })
    }

    /// Counts copies another node routed to this node's observers.
    pub(super) fn count_observer_copies(&self, route: &Route, delivered: usize) {
        if matches!(route.target, Target::Observers { .. }) {
            Counters::add(&self.inner.counters.observer_copies, delivered as u64);
        }
    }

    /// Another node said whether it has observers.
    pub(super) fn observers_announced(&self, node: &str, present: bool) {
        let mut nodes = self.inner.observer_nodes.lock();
        if present {
            nodes.insert(node.to_owned(), self.now_ms());
        } else {
            nodes.remove(node);
        }
        self.inner
            .observers_elsewhere
            .store(!nodes.is_empty(), Ordering::Release);
    }

    /// Tells the other nodes whether this node has observers: on a change, and every
    /// heartbeat while it has some.
    pub(super) fn announce_observers(&self) {
        let present = self.inner.registry.read().observer_count() > 0;
        let had = self.inner.had_observers.swap(present, Ordering::AcqRel);
        if self.has_peers() && (present || had) {
            self.publish_later(Envelope::Observers {
                origin: self.node_id().to_owned(),
                present,
            });
        }
    }

    /// Whether another node said lately that it has observers.
    fn peers_have_observers(&self, config: &HubConfig) -> bool {
        if !self.has_peers() {
            return false;
        }
        let window = config.heartbeat_interval.as_millis() as u64 * FORGET_AFTER_BEATS;
        let now = self.now_ms();
        let mut nodes = self.inner.observer_nodes.lock();
        nodes.retain(|_, seen| now.saturating_sub(*seen) <= window);
        self.inner
            .observers_elsewhere
            .store(!nodes.is_empty(), Ordering::Release);
        !nodes.is_empty()
    }
}

/// The observer's copy: the message with `data.metadata` saying it is one, and whose it is.
fn observer_copy(msg: &HubMessage) -> HubMessage {
    let mut copy = msg.clone();
    let data = copy.data.get_or_insert_with(Map::new);
    let mut metadata = match data.remove("metadata") {
        Some(serde_json::Value::Object(existing)) => existing,
        _ => Map::new(),
    };
    metadata.insert("observer_mode".to_owned(), json!(true));
    metadata.insert("original_sender".to_owned(), json!(msg.sender));
    metadata.insert("original_receiver".to_owned(), json!(msg.receiver));
    data.insert("metadata".to_owned(), serde_json::Value::Object(metadata));
    copy.receiver_client.clear();
    copy
}
