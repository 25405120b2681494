//! One live connection: its identity, its bounded outbound queue and its close signal.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

use crate::codec::Payload;
use crate::identity::Identity;
use crate::outbound_queue::OutboundQueue;

/// Process-local connection id. Cheaper to hash than the client id; never reused.
pub type ConnectionId = u64;

/// What the per-connection writer sends next.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Outbound {
    /// A serialized message (a text frame).
    Message(Payload),
    /// A liveness probe: a WebSocket ping, an SSE comment line.
    Keepalive,
}

/// Why a connection ended. Each connection ends exactly once, with the first reason that
/// applied; the disconnect callbacks receive it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The client sent a close frame.
    ClientClosed {
        /// The close code the client sent (1005 when it sent none).
        code: u16,
    },
    /// The transport failed or the peer vanished without a close frame.
    ConnectionLost {
        /// The transport's error.
        error: String,
    },
    /// Nothing arrived for `client_timeout`.
    Timeout,
    /// Kicked by the server API.
    Kicked {
        /// The reason given by the caller.
        reason: String,
    },
    /// The multi-login policy removed this connection in favour of a newer one.
    LoginElsewhere,
    /// A newer connection with the same client id took its place.
    Replaced,
    /// Its outbound queue overflowed under the `disconnect` slow-consumer policy, or a write
    /// did not complete in time.
    SlowConsumer,
    /// The client sent a frame larger than the limit.
    MessageTooLarge,
    /// The client sent a text frame that is not valid UTF-8.
    InvalidPayload,
    /// The client broke a policy (for example the inbound rate limit).
    PolicyViolation {
        /// Which policy.
        detail: String,
    },
    /// The hub is stopping.
    ServerShutdown,
}

impl DisconnectReason {
    /// Whether frames already queued should still be written before the close frame (a
    /// kick notice, for example); not for slow consumers or lost connections.
    pub fn drains_queue(&self) -> bool {
        !matches!(
            self,
            DisconnectReason::SlowConsumer | DisconnectReason::ConnectionLost { .. }
        )
    }
}

/// A live connection as the hub sees it. Shared as `Arc<Connection>`.
#[derive(Debug)]
pub struct Connection {
    id: ConnectionId,
    identity: Identity,
    connected_at: SystemTime,
    pub(crate) queue: OutboundQueue,
    /// Deliveries to this connection waiting for an ack (bounded by `max_pending_acks`).
    pub(crate) pending_acks: AtomicUsize,
    /// When the oldest frame still waiting in the queue was queued (hub microseconds + 1;
    /// 0 = none), for the delivery latency histogram.
    pub(crate) oldest_queued_us: AtomicU64,
    last_seen_ms: AtomicU64,
    /// Set with the close request; read on every enqueue, so a plain atomic.
    closing_flag: AtomicBool,
    /// Wakes whoever waits in [`closed`](Connection::closed). A `Notify` lives inside the
    /// connection; a cancellation token would be one more allocation per connection.
    closing: Notify,
    reason: OnceLock<DisconnectReason>,
    /// Metadata set after connecting, on top of the identity's: `None` until the first
    /// [`set_metadata`](Connection::set_metadata), so an unchanged connection does not hold
    /// a second copy of its identity's map.
    metadata: Mutex<Option<HashMap<String, String>>>,
    /// An observer gets copies of the traffic in its scope (`hub/observers.rs`).
    observer: bool,
}

impl Connection {
    pub(crate) fn new(
        id: ConnectionId,
        identity: Identity,
        queue_capacity: usize,
        now_ms: u64,
    ) -> Self {
        Connection {
            id,
            identity,
            connected_at: SystemTime::now(),
            queue: OutboundQueue::new(queue_capacity),
            pending_acks: AtomicUsize::new(0),
            oldest_queued_us: AtomicU64::new(0),
            last_seen_ms: AtomicU64::new(now_ms),
            closing_flag: AtomicBool::new(false),
            closing: Notify::new(),
            reason: OnceLock::new(),
            metadata: Mutex::new(None),
            observer: false,
        }
    }

    /// Marks the connection as an observer (before it is shared).
    pub(crate) fn observing(mut self, observer: bool) -> Self {
        self.observer = observer;
        self
    }

    /// The groups the connection joined at connect; none for an observer, whose groups are
    /// the scope of what it observes.
    pub(crate) fn bound_groups(&self) -> &[String] {
        if self.observer {
            &[]
        } else {
            &self.identity.group_ids
        }
    }

    /// Whether the connection is an observer: its user type is one of
    /// `HubConfig::observer_types` (with observers enabled) when it connected.
    pub fn is_observer(&self) -> bool {
        self.observer
    }

    /// The process-local id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// The identity the connection registered with (client id filled in).
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Shortcut for `identity().user_id`.
    pub fn user_id(&self) -> &str {
        &self.identity.user_id
    }

    /// Shortcut for `identity().client_id`.
    pub fn client_id(&self) -> &str {
        &self.identity.client_id
    }

    /// When the connection registered.
    pub fn connected_at(&self) -> SystemTime {
        self.connected_at
    }

    /// Reads one metadata entry.
    pub fn metadata(&self, key: &str) -> Option<String> {
        match &*self.metadata.lock() {
            Some(changed) => changed.get(key).cloned(),
            None => self.identity.metadata.get(key).cloned(),
        }
    }

    /// Sets one metadata entry (visible to every later query and callback).
    pub fn set_metadata(&self, key: impl Into<String>, value: impl Into<String>) {
        self.metadata
            .lock()
            .get_or_insert_with(|| self.identity.metadata.clone())
            .insert(key.into(), value.into());
    }

    /// A copy of all metadata.
    pub fn all_metadata(&self) -> HashMap<String, String> {
        match &*self.metadata.lock() {
            Some(changed) => changed.clone(),
            None => self.identity.metadata.clone(),
        }
    }

    /// Whether a close was requested (by the server or observed from the client).
    pub fn is_closing(&self) -> bool {
        self.closing_flag.load(Ordering::Acquire)
    }

    /// The reason the connection is closing, once one was recorded.
    pub fn disconnect_reason(&self) -> Option<&DisconnectReason> {
        self.reason.get()
    }

    /// Asks the connection to close. The first reason wins; later calls change nothing.
    /// Returns whether this call set the reason.
    pub fn close(&self, reason: DisconnectReason) -> bool {
        let first = self.reason.set(reason).is_ok();
        self.closing_flag.store(true, Ordering::Release);
        self.closing.notify_waiters();
        first
    }

    /// Resolves when a close was requested.
    pub async fn closed(&self) {
        let notified = self.closing.notified();
        tokio::pin!(notified);
        // Registered before the flag is read, so a close between the two still wakes us.
        notified.as_mut().enable();
        if self.is_closing() {
            return;
        }
        notified.await;
    }

    pub(crate) fn touch(&self, now_ms: u64) {
        self.last_seen_ms.store(now_ms, Ordering::Relaxed);
    }

    pub(crate) fn last_seen_ms(&self) -> u64 {
        self.last_seen_ms.load(Ordering::Relaxed)
    }

    /// A serializable snapshot for queries and the server API.
    pub fn info(&self, node_id: &str) -> ConnectionInfo {
        ConnectionInfo {
            connection_id: self.id,
            client_id: self.identity.client_id.clone(),
            user_id: self.identity.user_id.clone(),
            user_type: self.identity.user_type.clone(),
            device_id: self.identity.device_id.clone(),
            app_id: self.identity.app_id.clone(),
            namespace: self.identity.namespace.clone(),
            ticket_ids: self.identity.ticket_ids.clone(),
            group_ids: self.identity.group_ids.clone(),
            node_id: node_id.to_owned(),
            connected_at: crate::clock::rfc3339(self.connected_at),
            metadata: self.all_metadata(),
        }
    }
}

/// A snapshot of one connection, for presence queries and the server API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectionInfo {
    /// Process-local id.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub connection_id: ConnectionId,
    /// Client id (unique per connection).
    pub client_id: String,
    /// User id.
    pub user_id: String,
    /// User type.
    pub user_type: String,
    /// Device id.
    pub device_id: String,
    /// App scope.
    pub app_id: String,
    /// Namespace scope.
    pub namespace: String,
    /// Tickets bound at connect.
    pub ticket_ids: Vec<String>,
    /// Groups joined at connect.
    pub group_ids: Vec<String>,
    /// The node serving the connection.
    pub node_id: String,
    /// Connect time, RFC 3339.
    pub connected_at: String,
    /// Metadata.
    pub metadata: HashMap<String, String>,
}
