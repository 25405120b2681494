//! [`Hub`]: the hub of one node. Its operations live in one file per concern:
//! `admission` (register), `router` (sends), `numbering` (`seq_no` and the resume window),
//! `acked` (acknowledged sends), `acked_remote` (their recipients on other nodes), `replay`
//! (offline and resume), `outbox` (one connection's queue), `inbound` (client frames),
//! `presence` (queries), `groups` (group membership), `tickets` (ticket lifecycle and
//! agents), `observers` (copies of traffic for observer connections), `membership` (the index of groups and tickets of the users connected here),
//! `hooks` (callbacks), `lifecycle` (start, stop, liveness) and `registration` (the
//! transport's handle).

mod acked;
mod acked_remote;
mod admission;
mod cluster;
mod groups;
mod hooks;
mod inbound;
mod lifecycle;
mod membership;
mod numbering;
mod observers;
mod outbox;
mod presence;
mod registration;
mod replay;
mod router;
mod tickets;

pub use cluster::UserPresence;
pub use registration::Registration;
pub use router::BroadcastOptions;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::ack::{AckMatch, AckTarget, AckTracker};
use crate::backplane::{Backplane, BackplaneError, Envelope, LocalOnly, Recipient, UserPage};
use crate::callbacks::{CallbackError, Callbacks, ErrorEvent};
use crate::clock::now_rfc3339;
use crate::codec::{self, FrameError, Payload};
use crate::config::{HubConfig, RelayPolicy, SlowConsumerPolicy};
use crate::connection::{Connection, ConnectionId, ConnectionInfo, DisconnectReason, Outbound};
use crate::event::{HubEvent, events};
use crate::groups::{GroupStore, MemoryGroups};
use crate::history::Recovery;
use crate::identity::Identity;
use crate::membership::MembershipKind;
use crate::message::{HubMessage, MessageType, SYSTEM, Source};
use crate::offline::{MemoryOfflineStore, OfflineStore};
use crate::registry::{AdmitError, Registry};
use crate::report::{
    AckFailure, AckOutcome, AckReport, AckStatus, DeliveryFailure, DeliveryReport, FailureReason,
    InvalidId, KickReport, RegisterError, SendError,
};
use crate::route::{Route, Target};
use crate::stats::{Counters, HubStats};
use crate::tickets::{MemoryTickets, TicketStore};

use replay::Backlog;

/// Events kept for a slow event subscriber before it misses the oldest.
const EVENT_BUFFER: usize = 1024;

type RelayFn = dyn Fn(&Connection, &HubMessage) -> bool + Send + Sync;

/// The hub: owns every connection on this node and routes messages to them.
///
/// Cheap to clone (an `Arc`). Transport-agnostic: a transport calls [`Hub::register`] and
/// drives the returned [`Registration`] (see [`crate::tungstenite::serve`]).
///
/// ```
/// use wsc_hub::{Hub, HubConfig, HubMessage, Identity};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let hub = Hub::new(HubConfig::default());
/// hub.start();
/// let registration = hub.register(Identity::new("alice")).await.unwrap();
/// let report = hub.send_to_user("alice", HubMessage::text("hi")).await.unwrap();
/// assert_eq!(report.delivered, 1);
/// drop(registration); // unregisters
/// assert_eq!(hub.online_user_count(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Swapped as a whole by `reconfigure`; readers take one `Arc` per operation.
    config: RwLock<Arc<HubConfig>>,
    node_id: String,
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    counters: Counters,
    callbacks: Callbacks,
    relay_policy: RwLock<Option<Arc<RelayFn>>>,
    running: AtomicBool,
    started_at: Mutex<Option<std::time::Instant>>,
    origin: tokio::time::Instant,
    /// Wall-clock milliseconds at `origin` (ticket times advance with tokio's clock).
    origin_unix_ms: u64,
    timer: Mutex<Option<CancellationToken>>,
    emptied: Notify,
    acks: AckTracker,
    histories: numbering::Histories,
    turns: numbering::Turns,
    store: RwLock<Option<Arc<dyn OfflineStore>>>,
    /// Where group memberships are kept ([`MemoryGroups`] unless a shared store is set).
    groups: RwLock<Arc<dyn GroupStore>>,
    /// Where tickets and agents' workloads are kept ([`MemoryTickets`] unless a shared store
    /// is set).
    tickets: RwLock<Arc<dyn TicketStore>>,
    /// Links this node to the others; [`LocalOnly`] unless a backplane is set.
    backplane: RwLock<Arc<dyn Backplane>>,
    /// `backplane.has_peers()`, kept at hand: one relaxed load per send on a single node.
    peers: AtomicBool,
    /// Events for consumers in other tasks ([`Hub::subscribe_events`]).
    events: tokio::sync::broadcast::Sender<HubEvent>,
    /// Set once an event handler or subscriber exists.
    event_listeners: AtomicBool,
    /// Messages other nodes sent here that await an ack, and where to forward it.
    remote_acks: Mutex<cluster::RemoteAcks>,
    /// Other nodes that said they have observers, with when they last said it (hub ms).
    observer_nodes: Mutex<HashMap<String, u64>>,
    /// Whether this node has observers (set when one connects or the last leaves).
    had_observers: AtomicBool,
    /// Whether `observer_nodes` may hold a node: one load per send when nobody observes.
    observers_elsewhere: AtomicBool,
    /// This node's acknowledged ticket and group sends waiting for other nodes.
    remote_sends: Mutex<acked_remote::RemoteSends>,
}

impl Hub {
    /// A stopped hub with the given settings. Call [`Hub::start`] inside a tokio runtime.
    pub fn new(config: HubConfig) -> Self {
        let store: Option<Arc<dyn OfflineStore>> = if config.offline_enabled {
            Some(Arc::new(
                MemoryOfflineStore::new(config.offline_max_per_user, config.offline_ttl)
                    .with_max_total(config.offline_max_total),
            ))
        } else {
            None
        };
        Hub {
            inner: Arc::new(Inner {
                node_id: config.node_id.clone(),
                config: RwLock::new(Arc::new(config)),
                registry: RwLock::new(Registry::default()),
                next_id: AtomicU64::new(1),
                counters: Counters::default(),
                callbacks: Callbacks::default(),
                relay_policy: RwLock::new(None),
                running: AtomicBool::new(false),
                started_at: Mutex::new(None),
                origin: tokio::time::Instant::now(),
                origin_unix_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                timer: Mutex::new(None),
                emptied: Notify::new(),
                acks: AckTracker::default(),
                histories: numbering::Histories::default(),
                turns: numbering::Turns::default(),
                store: RwLock::new(store),
                groups: RwLock::new(Arc::new(MemoryGroups::new())),
                tickets: RwLock::new(Arc::new(MemoryTickets::new())),
                backplane: RwLock::new(Arc::new(LocalOnly)),
                peers: AtomicBool::new(false),
                events: tokio::sync::broadcast::channel(EVENT_BUFFER).0,
                event_listeners: AtomicBool::new(false),
                remote_acks: Mutex::new(cluster::RemoteAcks::default()),
                remote_sends: Mutex::new(HashMap::new()),
                observer_nodes: Mutex::new(HashMap::new()),
                had_observers: AtomicBool::new(false),
                observers_elsewhere: AtomicBool::new(false),
            }),
        }
    }

    /// The settings the hub runs with now.
    pub fn config(&self) -> Arc<HubConfig> {
        self.inner.config.read().clone()
    }

    /// Applies new settings at runtime (hot reload). Limits, timeouts, policies and rate
    /// limits apply to every later operation; `queue_capacity` and the buffer sizes apply to
    /// connections registered afterwards. The node id and the outbound message limit never
    /// change: every open connection's write buffer was sized for the limit it started with.
    pub fn reconfigure(&self, mut config: HubConfig) {
        let mut running = self.inner.config.write();
        config.node_id = self.inner.node_id.clone();
        config.max_outbound_message_size = running.max_outbound_message_size;
        *running = Arc::new(config);
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.inner.node_id
    }

    /// Replaces the offline store (`None` turns offline storage off). The default is a
    /// [`MemoryOfflineStore`] sized by the config, or none when `offline_enabled` is false.
    pub fn set_offline_store(&self, store: Option<Arc<dyn OfflineStore>>) {
        *self.inner.store.write() = store;
    }

    /// The offline store in use.
    pub fn offline_store(&self) -> Option<Arc<dyn OfflineStore>> {
        self.inner.store.read().clone()
    }

    pub(super) fn now_ms(&self) -> u64 {
        self.inner.origin.elapsed().as_millis() as u64
    }

    pub(super) fn now_us(&self) -> u64 {
        self.inner.origin.elapsed().as_micros() as u64
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("node_id", &self.node_id())
            .field("running", &self.is_running())
            .field("connections", &self.connection_count())
            .finish()
    }
}

/// The stats label of a message type: unknown names are counted together as `other`, so
/// clients cannot grow the counters without bound.
fn type_label(message_type: &MessageType) -> &str {
    match message_type {
        MessageType::Other(_) => "other",
        known => known.as_str(),
    }
}

fn non_empty(value: &str, what: &'static str) -> Result<(), SendError> {
    Ok(InvalidId::check(value, what)?)
}

/// A message with an app id (namespace) only reaches connections of that app (namespace).
fn in_scope(conn: &Connection, msg: &HubMessage) -> bool {
    let identity = conn.identity();
    crate::route::in_scope(
        &msg.app_id,
        &msg.namespace,
        &identity.app_id,
        &identity.namespace,
    )
}

/// Reads `data.code` of an error frame (test and client helper).
pub fn error_code(msg: &HubMessage) -> Option<&str> {
    msg.data_value("code").and_then(Value::as_str)
}
