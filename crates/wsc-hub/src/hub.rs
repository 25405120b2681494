//! [`Hub`]: registration, routing, inbound handling, presence, stats and lifecycle.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::callbacks::{CallbackError, Callbacks, ErrorEvent};
use crate::clock::now_rfc3339;
use crate::codec::{self, FrameError, Payload};
use crate::config::{HubConfig, RelayPolicy, SlowConsumerPolicy};
use crate::connection::{Connection, ConnectionId, ConnectionInfo, DisconnectReason, Outbound};
use crate::delivery::{AckMatch, AckTarget, AckTracker, Histories, Recovery, Scope};
use crate::identity::Identity;
use crate::message::{HubMessage, MessageType, SYSTEM, Source};
use crate::offline::{MemoryOfflineStore, OfflineStore};
use crate::registry::{AdmitError, Registry};
use crate::report::{
    AckFailure, AckOutcome, AckReport, AckStatus, DeliveryFailure, DeliveryReport, FailureReason,
    InvalidId, KickReport, RegisterError, SendError,
};
use crate::stats::{Counters, HubStats};

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
    timer: Mutex<Option<CancellationToken>>,
    emptied: Notify,
    acks: AckTracker,
    histories: Histories,
    store: RwLock<Option<Arc<dyn OfflineStore>>>,
}

/// Options of [`Hub::broadcast`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastOptions {
    /// Only connections of this app (also stamped on the message).
    pub app_id: Option<String>,
    /// Only connections of this namespace (also stamped on the message).
    pub namespace: Option<String>,
    /// Skip every connection of this user.
    pub exclude_user: Option<String>,
}

impl BroadcastOptions {
    /// Everyone except `user_id`.
    pub fn excluding(user_id: impl Into<String>) -> Self {
        BroadcastOptions {
            exclude_user: Some(user_id.into()),
            ..Self::default()
        }
    }

    /// Only connections of this app and namespace.
    pub fn scoped(app_id: impl Into<String>, namespace: impl Into<String>) -> Self {
        BroadcastOptions {
            app_id: Some(app_id.into()),
            namespace: Some(namespace.into()),
            ..Self::default()
        }
    }
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
                timer: Mutex::new(None),
                emptied: Notify::new(),
                acks: AckTracker::default(),
                histories: Histories::default(),
                store: RwLock::new(store),
            }),
        }
    }

    /// Starts the hub: accepts registrations and runs the shared liveness timer (one task
    /// for all connections). Idempotent. Must be called inside a tokio runtime.
    pub fn start(&self) {
        if self.inner.running.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.inner.started_at.lock() = Some(std::time::Instant::now());
        let token = CancellationToken::new();
        *self.inner.timer.lock() = Some(token.clone());
        let weak = Arc::downgrade(&self.inner);
        let heartbeat = |hub: &Hub| {
            hub.config()
                .heartbeat_interval
                .max(Duration::from_millis(10))
        };
        let mut period = heartbeat(self);
        tokio::spawn(async move {
            let every = |period| {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            };
            let mut ticks = every(period);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                let hub = Hub { inner };
                hub.sweep();
                // A reconfigured heartbeat interval takes effect from the next tick.
                if heartbeat(&hub) != period {
                    period = heartbeat(&hub);
                    ticks = every(period);
                }
            }
        });
        tracing::info!(node_id = %self.node_id(), "hub started");
    }

    /// Stops the hub: refuses new registrations and sends, closes every connection with
    /// 1001, settles in-flight acknowledged sends (stored offline when not acked), and waits
    /// until every connection has ended or `deadline` passed. Returns the number of
    /// connections still open at the deadline (0 on a clean drain).
    pub async fn stop(&self, deadline: Duration) -> usize {
        // The flag flips under the registry's write lock, where admissions happen too: an
        // admission either completed before (and is in the snapshot below, so it gets 1001)
        // or sees the hub stopped and is refused. None slips in between.
        let registered: Vec<Arc<Connection>> = {
            let registry = self.inner.registry.write();
            self.inner.running.store(false, Ordering::SeqCst);
            registry.all_registered().cloned().collect()
        };
        if let Some(token) = self.inner.timer.lock().take() {
            token.cancel();
        }
        for conn in registered {
            conn.close(DisconnectReason::ServerShutdown);
        }
        // In-flight acknowledged sends settle now: unacknowledged messages go to the
        // offline store (when there is one) instead of waiting out their timeouts.
        self.inner.acks.release_waiters();
        let drained = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.inner.emptied.notified();
                if self.connection_count() == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = self.connection_count(),
                "hub stop deadline passed with connections still open"
            );
        }
        self.connection_count()
    }

    /// Whether the hub accepts registrations and sends.
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::SeqCst)
    }

    /// The settings the hub runs with now.
    pub fn config(&self) -> Arc<HubConfig> {
        self.inner.config.read().clone()
    }

    /// Applies new settings at runtime (hot reload). Limits, timeouts, policies and rate
    /// limits apply to every later operation; `queue_capacity` and the buffer sizes apply to
    /// connections registered afterwards. The node id never changes.
    pub fn reconfigure(&self, mut config: HubConfig) {
        config.node_id = self.inner.node_id.clone();
        *self.inner.config.write() = Arc::new(config);
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

    // ---------------------------------------------------------------- callbacks

    /// Adds an inbound interceptor: it sees every client message the hub does not handle
    /// itself (not pings, acks or resumes), after the sender fields are stamped, and may
    /// modify it or refuse it (the client gets an error frame `rejected`).
    pub fn add_inbound_interceptor<F>(&self, f: F)
    where
        F: Fn(&Connection, &mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        self.inner.callbacks.inbound.push(Arc::new(f));
    }

    /// Adds an outbound interceptor: it sees every message sent through the hub's routes
    /// (and relays) before it is serialized, and may modify it or refuse it (the send fails
    /// with [`SendError::Rejected`]).
    pub fn add_outbound_interceptor<F>(&self, f: F)
    where
        F: Fn(&mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        self.inner.callbacks.outbound.push(Arc::new(f));
    }

    fn intercept(&self, msg: &mut HubMessage) -> Result<(), SendError> {
        if self.inner.callbacks.outbound.is_empty() {
            return Ok(());
        }
        for interceptor in self.inner.callbacks.outbound.snapshot() {
            interceptor(msg).map_err(|e| SendError::Rejected(e.0))?;
        }
        Ok(())
    }

    /// Adds a callback for acknowledged deliveries that finally failed (after every
    /// resend, or to an offline target without a store), with the message and why.
    pub fn on_ack_failed<F>(&self, f: F)
    where
        F: Fn(&HubMessage, &AckFailure) + Send + Sync + 'static,
    {
        self.inner.callbacks.ack_failed.push(Arc::new(f));
    }

    /// Adds a connect callback. An error rejects the connection: [`Hub::register`] returns
    /// [`RegisterError::Rejected`] with its text. The callback runs before the connection is
    /// reachable by the routes; to greet it, queue a frame with
    /// [`Hub::send_to_new_connection`].
    pub fn on_client_connect<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Connection>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner
            .callbacks
            .connect
            .push(Arc::new(move |c| Box::pin(f(c))));
    }

    /// Adds a callback that runs once a connection is admitted and reachable by every route
    /// (after the connect callbacks accepted it and the multi-login policy let it in). Every
    /// registered connection later gets exactly one disconnect callback.
    pub fn on_client_registered<F>(&self, f: F)
    where
        F: Fn(&Connection) + Send + Sync + 'static,
    {
        self.inner.callbacks.registered.push(Arc::new(f));
    }

    /// Adds a disconnect callback; it runs exactly once per registered connection, with the
    /// first reason that applied.
    pub fn on_client_disconnect<F>(&self, f: F)
    where
        F: Fn(&Connection, &DisconnectReason) + Send + Sync + 'static,
    {
        self.inner.callbacks.disconnect.push(Arc::new(f));
    }

    /// Adds a message-received callback for client frames the hub does not handle itself.
    /// An error stops the chain and answers the client with an error frame (`rejected`).
    pub fn on_message_received<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Connection>, Arc<HubMessage>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner
            .callbacks
            .received
            .push(Arc::new(move |c, m| Box::pin(f(c, m))));
    }

    /// Adds a callback that runs once per send operation, after routing, with the report
    /// (for acknowledged sends, once settled: the targets that acked count as delivered).
    /// Frames the hub produces itself (pong, errors, notices, replays) are not sends.
    pub fn on_message_sent<F>(&self, f: F)
    where
        F: Fn(&HubMessage, &DeliveryReport) + Send + Sync + 'static,
    {
        self.inner.callbacks.sent.push(Arc::new(f));
    }

    /// Adds an error callback (invalid frames, slow consumers, refused callbacks).
    pub fn on_error<F>(&self, f: F)
    where
        F: Fn(Option<&Connection>, &ErrorEvent) + Send + Sync + 'static,
    {
        self.inner.callbacks.error.push(Arc::new(f));
    }

    /// Replaces the relay policy for status frames (`typing`, `read`, ...): it decides
    /// whether `connection` may relay `message` to `message.receiver`. Without one, every
    /// relay inside the sender's app and namespace is allowed (when
    /// [`HubConfig::relay_status_messages`] is on).
    pub fn set_relay_policy<F>(&self, f: F)
    where
        F: Fn(&Connection, &HubMessage) -> bool + Send + Sync + 'static,
    {
        *self.inner.relay_policy.write() = Some(Arc::new(f));
    }

    // ---------------------------------------------------------------- registration

    /// Registers a connection. When this returns `Ok`, the connection is reachable by every
    /// route: a message sent right after is queued for it.
    ///
    /// Order: identity check, node limit, connect callbacks, then one atomic admission
    /// (client-id replacement, multi-login policy, indexes).
    pub async fn register(&self, mut identity: Identity) -> Result<Registration, RegisterError> {
        let result = self.try_register(&mut identity).await;
        if result.is_err() {
            Counters::add(&self.inner.counters.connections_rejected, 1);
        }
        result
    }

    async fn try_register(&self, identity: &mut Identity) -> Result<Registration, RegisterError> {
        if !self.is_running() {
            return Err(RegisterError::NotRunning);
        }
        identity.validate()?;
        let config = self.config();
        identity.check_list_limits(config.max_ticket_ids, config.max_group_ids)?;
        let reconnect = !identity.client_id.is_empty()
            && self
                .inner
                .registry
                .read()
                .by_client_any(&identity.client_id)
                .is_some();
        if config.max_connections > 0
            && !reconnect
            && self.connection_count() >= config.max_connections
        {
            return Err(RegisterError::NodeFull {
                limit: config.max_connections,
            });
        }
        if identity.client_id.is_empty() {
            identity.client_id = uuid::Uuid::now_v7().simple().to_string();
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let conn = Arc::new(Connection::new(
            id,
            std::mem::take(identity),
            tx,
            self.now_ms(),
        ));
        for callback in self.inner.callbacks.connect.snapshot() {
            if let Err(e) = callback(conn.clone()).await {
                self.emit_error(Some(&conn), &ErrorEvent::CallbackRejected(e.0.clone()));
                return Err(RegisterError::Rejected(e.0));
            }
        }
        // Offline messages and a requested resume go into the connection's backlog before it
        // becomes reachable, so they precede every live message. Loading has no side effect:
        // acks and counters for the replay start only once the admission succeeded.
        let mut backlog = Backlog::default();
        self.replay_offline(&conn, &mut backlog).await;
        if let Some(last_seq) = conn.identity().last_seq {
            // Messages already replayed from the offline store are not repeated.
            let already = std::mem::take(&mut backlog.replayed);
            self.resume(&conn, last_seq, &already, |frame| {
                backlog.frames.push_back((frame, None))
            });
            backlog.replayed = already;
        }
        let evicted = {
            let mut registry = self.inner.registry.write();
            // Checked under the lock `stop` takes to flip the flag: a connection admitted
            // here is in stop's snapshot and gets 1001.
            if !self.is_running() {
                return Err(RegisterError::NotRunning);
            }
            registry.admit(
                conn.clone(),
                config.multi_login,
                config.max_connections_per_user,
                config.max_connections,
            )
        }
        .map_err(|e| match e {
            AdmitError::NodeFull => RegisterError::NodeFull {
                limit: config.max_connections,
            },
            AdmitError::UserLimit => RegisterError::UserConnectionLimit {
                limit: config.max_connections_per_user,
            },
            AdmitError::ClientIdInUse => RegisterError::ClientIdInUse,
        })?;
        for (old, reason) in evicted {
            if reason == DisconnectReason::LoginElsewhere {
                let notice = HubMessage {
                    receiver: old.user_id().to_owned(),
                    ..HubMessage::new(MessageType::ForceOffline, &config.kick_notification)
                }
                .with_data("reason", "login_elsewhere");
                self.send_direct(&old, notice);
            }
            old.close(reason);
        }
        // A message stored between the first load and the admission is replayed now, still
        // ahead of anything routed after the admission.
        self.replay_offline(&conn, &mut backlog).await;
        self.commit_replay(&conn, &mut backlog);
        Counters::add(&self.inner.counters.connections_accepted, 1);
        for callback in self.inner.callbacks.registered.snapshot() {
            callback(&conn);
        }
        tracing::debug!(
            user_id = conn.user_id(),
            client_id = conn.client_id(),
            "registered"
        );
        Ok(Registration {
            hub: self.clone(),
            conn,
            rx,
            backlog,
            written_offline: Vec::new(),
            window_start_ms: 0,
            window_count: 0,
            window_bytes: 0,
            finished: false,
        })
    }

    /// The admission succeeded: replayed messages that need an ack start waiting for it,
    /// and the replay is counted.
    fn commit_replay(&self, conn: &Arc<Connection>, backlog: &mut Backlog) {
        for message_id in std::mem::take(&mut backlog.awaiting_ack) {
            self.await_replay_ack(conn, &message_id, conn.user_id());
        }
        let replayed = std::mem::take(&mut backlog.offline_count);
        if replayed > 0 {
            Counters::add(&self.inner.counters.offline_replayed, replayed);
        }
    }

    fn unregister(&self, conn: &Arc<Connection>, observed: DisconnectReason) {
        conn.close(observed);
        let reason =
            conn.disconnect_reason()
                .cloned()
                .unwrap_or(DisconnectReason::ConnectionLost {
                    error: "unknown".to_owned(),
                });
        self.inner.acks.drop_connection(conn);
        let empty = {
            let mut registry = self.inner.registry.write();
            registry.remove(conn.id());
            registry.len() == 0
        };
        Counters::add(&self.inner.counters.connections_closed, 1);
        if empty {
            self.inner.emptied.notify_waiters();
        }
        tracing::debug!(user_id = conn.user_id(), ?reason, "unregistered");
        for callback in self.inner.callbacks.disconnect.snapshot() {
            callback(conn, &reason);
        }
    }

    // ---------------------------------------------------------------- routing

    /// Sends to every live connection of a user. When `msg.receiver_client` is set, only
    /// that connection of the user receives it. The message gets the user's next `seq_no`
    /// and enters the user's resume window. When the user has no live connection here, it
    /// goes to the offline store (if any) and the report says `stored_offline`.
    pub async fn send_to_user(
        &self,
        user_id: &str,
        mut msg: HubMessage,
    ) -> Result<DeliveryReport, SendError> {
        self.ensure_running()?;
        non_empty(user_id, "user_id")?;
        if msg.receiver.is_empty() {
            msg.receiver = user_id.to_owned();
        }
        let only = std::mem::take(&mut msg.receiver_client);
        self.intercept(&mut msg)?;
        let config = self.config();
        self.prepare(&mut msg);
        let (_, (mut report, reached_nobody)) =
            self.numbered(user_id, &mut msg, &config, |msg, payload| {
                let targets = self.user_targets(user_id, &only, msg);
                let report = self.enqueue_all(&targets, payload, msg, &config);
                // No open connection took it (none, or each closed under our hands): the
                // user gets it from the store on the next connect. A queue that is merely
                // full under the drop policy keeps the connection, so it is not stored.
                let reached_nobody = report.delivered == 0
                    && report
                        .failures
                        .iter()
                        .all(|f| f.reason != FailureReason::QueueFull);
                (report, reached_nobody)
            })?;
        if reached_nobody
            && only.is_empty()
            && let Some(store) = self.offline_store()
        {
            report.stored_offline = self.store_offline(&store, user_id, &msg, true).await;
        }
        self.message_sent(&msg, &report);
        Ok(report)
    }

    /// Sends to a user and waits for a client's `ack` naming the message's `message_id`
    /// (generated when empty). Each `timeout` without an ack resends the same message (same
    /// `message_id` and `seq_no`) to the user's live connections, up to `max_retries`
    /// resends. When it is never acknowledged (or the user is offline) it goes to the
    /// offline store when there is one, and the `on_ack_failed` callbacks run on failure.
    pub async fn send_to_user_with_ack(
        &self,
        user_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        non_empty(user_id, "user_id")?;
        if msg.receiver.is_empty() {
            msg.receiver = user_id.to_owned();
        }
        let only = std::mem::take(&mut msg.receiver_client);
        msg.require_ack = true;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        let target = AckTarget::User(user_id.to_owned());
        let (tx, mut rx) = oneshot::channel();
        if !self
            .inner
            .acks
            .register(&msg.message_id, target.clone(), Some(tx), None)
        {
            return Err(SendError::DuplicateMessageId(msg.message_id));
        }
        // Targets are filtered by the message's scope only.
        let scope = HubMessage {
            app_id: msg.app_id.clone(),
            namespace: msg.namespace.clone(),
            ..HubMessage::default()
        };
        let resolve = |hub: &Hub| hub.user_targets(user_id, &only, &scope);
        let config = self.config();
        // The first delivery is queued under the history lock, like `send_to_user`, so
        // messages to one user are queued in `seq_no` order whichever way they are sent.
        let numbered = self.numbered(user_id, &mut msg, &config, |msg, payload| {
            let targets = resolve(self);
            self.send_attempt(msg, payload, &target, &targets, &config);
            !targets.is_empty()
        });
        let (payload, first_sent) = match numbered {
            Ok(payload) => payload,
            Err(e) => {
                self.inner.acks.cancel(&msg.message_id, &target);
                return Err(e);
            }
        };
        let limits = (timeout, max_retries, first_sent);
        let (acked, attempts) = self
            .ack_loop(&msg, &payload, &target, &mut rx, limits, &resolve)
            .await;
        let outcome = self
            .ack_outcome(&msg, &target, user_id, user_id, acked, attempts)
            .await;
        let report = AckReport {
            message_id: msg.message_id.clone(),
            outcomes: vec![outcome],
        };
        self.message_sent(&msg, &ack_summary(&report));
        Ok(report)
    }

    /// [`send_to_connection`](Self::send_to_connection) with an ack (see
    /// [`send_to_user_with_ack`](Self::send_to_user_with_ack)); a failure is stored offline
    /// for the connection's user.
    pub async fn send_to_connection_with_ack(
        &self,
        client_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        non_empty(client_id, "client_id")?;
        msg.receiver_client = client_id.to_owned();
        let conns: Vec<Arc<Connection>> = self
            .connection(client_id)
            .filter(|c| in_scope(c, &msg))
            .into_iter()
            .collect();
        if conns.is_empty() {
            // No such live connection (and no user to keep the message for).
            self.prepare(&mut msg);
            return Ok(AckReport {
                message_id: msg.message_id,
                outcomes: vec![AckOutcome {
                    target: client_id.to_owned(),
                    status: AckStatus::Offline,
                    attempts: 0,
                }],
            });
        }
        self.ack_each(conns, msg, timeout, max_retries).await
    }

    /// [`send_to_ticket`](Self::send_to_ticket) with an ack from every connection on the
    /// ticket (one outcome per connection).
    pub async fn send_to_ticket_with_ack(
        &self,
        ticket_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        non_empty(ticket_id, "ticket_id")?;
        msg.ticket_id = ticket_id.to_owned();
        if msg.sender.is_empty() {
            msg.sender = SYSTEM.to_owned();
        }
        let conns = self.snapshot(|reg, out| {
            out.extend(
                reg.ticket(ticket_id)
                    .filter(|c| c.user_id() != msg.sender && in_scope(c, &msg))
                    .cloned(),
            )
        });
        self.ack_each(conns, msg, timeout, max_retries).await
    }

    /// [`send_to_group`](Self::send_to_group) with an ack from every connection of the group
    /// (one outcome per connection).
    pub async fn send_to_group_with_ack(
        &self,
        group_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        non_empty(group_id, "group_id")?;
        if !msg.group_ids.iter().any(|g| g == group_id) {
            msg.group_ids.push(group_id.to_owned());
        }
        let conns = self.snapshot(|reg, out| {
            out.extend(
                reg.group(group_id)
                    .into_iter()
                    .filter(|c| in_scope(c, &msg))
                    .cloned(),
            )
        });
        self.ack_each(conns, msg, timeout, max_retries).await
    }

    /// One acknowledged delivery per connection, concurrently.
    async fn ack_each(
        &self,
        conns: Vec<Arc<Connection>>,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        msg.require_ack = true;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        let payload = self.encode_outbound(&msg, &self.config())?;
        let flows = conns.iter().map(|conn| {
            let (msg, payload) = (&msg, &payload);
            async move {
                let target = AckTarget::Connection(conn.id());
                let (tx, mut rx) = oneshot::channel();
                let registered =
                    self.inner
                        .acks
                        .register(&msg.message_id, target.clone(), Some(tx), None);
                let (acked, attempts) = if registered {
                    let id = conn.id();
                    let resolve =
                        move |hub: &Hub| hub.connection_by_id(id).into_iter().collect::<Vec<_>>();
                    let limits = (timeout, max_retries, false);
                    self.ack_loop(msg, payload, &target, &mut rx, limits, &resolve)
                        .await
                } else {
                    (None, 0)
                };
                let (label, user) = (conn.client_id(), conn.user_id());
                self.ack_outcome(msg, &target, label, user, acked, attempts)
                    .await
            }
        });
        let outcomes = futures_util::future::join_all(flows).await;
        let report = AckReport {
            message_id: msg.message_id.clone(),
            outcomes,
        };
        self.message_sent(&msg, &ack_summary(&report));
        Ok(report)
    }

    /// Gives a prepared message the user's next `seq_no`, serializes it, keeps it in the
    /// user's resume window and runs `deliver` while the user's history lock is still held,
    /// so messages to one user are queued in `seq_no` order.
    fn numbered<R>(
        &self,
        user_id: &str,
        msg: &mut HubMessage,
        config: &HubConfig,
        deliver: impl FnOnce(&HubMessage, &Payload) -> R,
    ) -> Result<(Payload, R), SendError> {
        let history = self.inner.histories.user(user_id);
        let mut history = history.lock();
        // The size is known only once encoded; a refused message must not take a number.
        msg.seq_no = history.peek_next_seq();
        let payload = self.encode_outbound(msg, config)?;
        history.next_seq();
        history.push(
            msg.seq_no,
            msg.message_id.clone(),
            payload.clone(),
            Scope {
                app_id: msg.app_id.clone(),
                namespace: msg.namespace.clone(),
            },
            self.now_ms(),
            (config.history_size, config.history_ttl.as_millis() as u64),
        );
        let delivered = deliver(msg, &payload);
        Ok((payload, delivered))
    }

    /// Queues one attempt for every target connection that has a free pending slot.
    fn send_attempt(
        &self,
        msg: &HubMessage,
        payload: &Payload,
        target: &AckTarget,
        targets: &[Arc<Connection>],
        config: &HubConfig,
    ) {
        for conn in targets {
            if self.inner.acks.add_connection(
                &msg.message_id,
                target,
                conn,
                config.max_pending_acks,
            ) {
                let _ = self.enqueue(conn, payload, config);
            }
        }
    }

    /// Sends, waits, resends: returns who acked (if anyone) and how many attempts were made.
    /// `limits` is (timeout, max resends, whether the caller already queued the first
    /// attempt).
    async fn ack_loop(
        &self,
        msg: &HubMessage,
        payload: &Payload,
        target: &AckTarget,
        rx: &mut oneshot::Receiver<String>,
        limits: (Duration, u32, bool),
        resolve: &(dyn Fn(&Hub) -> Vec<Arc<Connection>> + Sync),
    ) -> (Option<String>, u32) {
        let (timeout, max_retries, mut first_sent) = limits;
        let mut attempts = 0u32;
        loop {
            if !std::mem::take(&mut first_sent) {
                let targets = resolve(self);
                if targets.is_empty() {
                    return (None, attempts);
                }
                self.send_attempt(msg, payload, target, &targets, &self.config());
            }
            attempts += 1;
            if attempts > 1 {
                Counters::add(&self.inner.counters.ack_resends, 1);
            }
            match tokio::time::timeout(timeout, &mut *rx).await {
                Ok(Ok(client_id)) => return (Some(client_id), attempts),
                // The tracker dropped the waiter: the target connection ended.
                Ok(Err(_)) => return (None, attempts),
                Err(_) if attempts > max_retries => return (None, attempts),
                Err(_) => {}
            }
        }
    }

    /// Settles an acknowledged delivery: acked, or stored offline / failed.
    async fn ack_outcome(
        &self,
        msg: &HubMessage,
        target: &AckTarget,
        label: &str,
        user_id: &str,
        acked: Option<String>,
        attempts: u32,
    ) -> AckOutcome {
        let status = match acked {
            Some(client_id) => AckStatus::Acked { client_id },
            None => {
                self.inner.acks.cancel(&msg.message_id, target);
                // Timed out against live connections: keep it for the next connect. Never
                // reached anyone: the user may connect while it is being stored.
                let stored = match self.offline_store() {
                    Some(store) => {
                        self.store_offline(&store, user_id, msg, attempts == 0)
                            .await
                    }
                    None => false,
                };
                if attempts > 0 || !stored {
                    Counters::add(&self.inner.counters.ack_failures, 1);
                    let failure = AckFailure {
                        target: label.to_owned(),
                        attempts,
                        stored_offline: stored,
                    };
                    for callback in self.inner.callbacks.ack_failed.snapshot() {
                        callback(msg, &failure);
                    }
                }
                match (stored, attempts) {
                    (true, _) => AckStatus::StoredOffline,
                    (false, 0) => AckStatus::Offline,
                    (false, _) => AckStatus::TimedOut,
                }
            }
        };
        AckOutcome {
            target: label.to_owned(),
            status,
            attempts,
        }
    }

    /// Stores a message for its user. `was_offline`: the user had no live connection, so a
    /// connection that appears during the write missed it in its replay and gets it now.
    async fn store_offline(
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

    /// The user may have connected while the store write was in flight: its replay then
    /// missed this message. Deliver it now (as a replayed message) instead of leaving it
    /// stranded until some later reconnect.
    fn deliver_if_reconnected(&self, user_id: &str, msg: &HubMessage) {
        let conns = self.user_targets(user_id, "", msg);
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

    /// Tracks the ack of a replayed message; the ack deletes it from the user's store.
    fn await_replay_ack(&self, conn: &Arc<Connection>, message_id: &str, user_id: &str) {
        let target = AckTarget::Connection(conn.id());
        self.inner
            .acks
            .register(message_id, target.clone(), None, Some(user_id.to_owned()));
        self.inner.acks.add_connection(message_id, &target, conn, 0);
    }

    fn user_targets(&self, user_id: &str, only: &str, msg: &HubMessage) -> Vec<Arc<Connection>> {
        self.snapshot(|reg, out| {
            out.extend(
                reg.user(user_id)
                    .filter(|c| only.is_empty() || c.client_id() == only)
                    .filter(|c| in_scope(c, msg))
                    .cloned(),
            )
        })
    }

    /// Loads the user's offline messages of the connection's scope into the backlog
    /// (skipping ones already there). Messages of another app or namespace stay stored for
    /// a connection of theirs. Acks and counters wait for [`Hub::commit_replay`].
    async fn replay_offline(&self, conn: &Arc<Connection>, backlog: &mut Backlog) {
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

    /// Replays what the user missed after `last_seq` (or nothing), then a `recovered` frame.
    fn resume(
        &self,
        conn: &Connection,
        last_seq: i64,
        already: &HashSet<String>,
        mut push: impl FnMut(Outbound),
    ) -> Recovery {
        let history = self.inner.histories.user(conn.user_id());
        let scope = (
            conn.identity().app_id.as_str(),
            conn.identity().namespace.as_str(),
        );
        let (mut recovery, frames) = history.lock().resume(last_seq, self.now_ms(), scope);
        recovery.replayed = 0;
        for (message_id, payload) in frames {
            if !already.contains(&message_id) {
                recovery.replayed += 1;
                push(Outbound::Message(payload));
            }
        }
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
        if let Ok(payload) = codec::encode(&notice) {
            push(Outbound::Message(payload));
        }
        recovery
    }

    /// Sends to every connection bound to a ticket, except the connections of
    /// `msg.sender` (the sender does not get its own message back).
    pub async fn send_to_ticket(
        &self,
        ticket_id: &str,
        mut msg: HubMessage,
    ) -> Result<DeliveryReport, SendError> {
        self.ensure_running()?;
        non_empty(ticket_id, "ticket_id")?;
        msg.ticket_id = ticket_id.to_owned();
        self.route(msg, |reg, m, out| {
            out.extend(
                reg.ticket(ticket_id)
                    .filter(|c| c.user_id() != m.sender && in_scope(c, m))
                    .cloned(),
            )
        })
    }

    /// Sends to every connection of a group: connections that joined at connect and every
    /// connection of users who joined through [`Hub::join_group`].
    pub async fn send_to_group(
        &self,
        group_id: &str,
        mut msg: HubMessage,
    ) -> Result<DeliveryReport, SendError> {
        self.ensure_running()?;
        non_empty(group_id, "group_id")?;
        if !msg.group_ids.iter().any(|g| g == group_id) {
            msg.group_ids.push(group_id.to_owned());
        }
        self.route(msg, |reg, m, out| {
            out.extend(
                reg.group(group_id)
                    .into_iter()
                    .filter(|c| in_scope(c, m))
                    .cloned(),
            )
        })
    }

    /// Sends to one connection, by client id.
    pub async fn send_to_connection(
        &self,
        client_id: &str,
        mut msg: HubMessage,
    ) -> Result<DeliveryReport, SendError> {
        self.ensure_running()?;
        non_empty(client_id, "client_id")?;
        msg.receiver_client = client_id.to_owned();
        self.route(msg, |reg, m, out| {
            out.extend(reg.by_client(client_id).filter(|c| in_scope(c, m)).cloned())
        })
    }

    /// Sends to every connection, optionally scoped to an app/namespace and excluding a user.
    pub async fn broadcast(
        &self,
        mut msg: HubMessage,
        options: BroadcastOptions,
    ) -> Result<DeliveryReport, SendError> {
        if let Some(app) = options.app_id {
            msg.app_id = app;
        }
        if let Some(ns) = options.namespace {
            msg.namespace = ns;
        }
        let exclude = options.exclude_user.unwrap_or_default();
        self.route(msg, |reg, m, out| {
            out.extend(
                reg.all()
                    .filter(|c| (exclude.is_empty() || c.user_id() != exclude) && in_scope(c, m))
                    .cloned(),
            )
        })
    }

    /// Closes every connection of a user with 1008. With `notify`, each first receives a
    /// `kick_out` frame, written before the close frame.
    pub async fn kick_user(
        &self,
        user_id: &str,
        reason: &str,
        notify: bool,
    ) -> Result<KickReport, SendError> {
        self.ensure_running()?;
        non_empty(user_id, "user_id")?;
        let conns = self.snapshot(|reg, out| out.extend(reg.user(user_id).cloned()));
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for conn in &conns {
            if notify {
                let notice = HubMessage {
                    receiver: user_id.to_owned(),
                    ..HubMessage::new(MessageType::KickOut, reason)
                }
                .with_data("reason", reason)
                .with_data("kicked_at", secs);
                self.send_direct(conn, notice);
            }
            conn.close(DisconnectReason::Kicked {
                reason: reason.to_owned(),
            });
            // A kicked connection leaves every route and query now, not when its close
            // handshake completes; its disconnect callback still runs once, at the end.
            self.inner.registry.write().remove(conn.id());
        }
        Ok(KickReport {
            kicked: conns.len(),
        })
    }

    /// Queues a message for a connection that may not be registered yet (for example a
    /// welcome frame from a connect callback). Returns whether it was queued.
    pub fn send_to_new_connection(&self, conn: &Connection, msg: HubMessage) -> bool {
        self.send_direct(conn, msg)
    }

    fn send_direct(&self, conn: &Connection, mut msg: HubMessage) -> bool {
        self.prepare(&mut msg);
        let config = self.config();
        match self.encode_outbound(&msg, &config) {
            Ok(payload) => self.enqueue(conn, &payload, &config).is_ok(),
            Err(_) => false,
        }
    }

    fn route(
        &self,
        mut msg: HubMessage,
        select: impl FnOnce(&Registry, &HubMessage, &mut Vec<Arc<Connection>>),
    ) -> Result<DeliveryReport, SendError> {
        self.ensure_running()?;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        let config = self.config();
        let payload = self.encode_outbound(&msg, &config)?;
        let targets = {
            let mut out = Vec::new();
            select(&self.inner.registry.read(), &msg, &mut out);
            out
        };
        let report = self.enqueue_all(&targets, &payload, &msg, &config);
        self.message_sent(&msg, &report);
        Ok(report)
    }

    fn enqueue_all(
        &self,
        targets: &[Arc<Connection>],
        payload: &Payload,
        msg: &HubMessage,
        config: &HubConfig,
    ) -> DeliveryReport {
        let mut report = DeliveryReport {
            message_id: msg.message_id.clone(),
            ..DeliveryReport::default()
        };
        for conn in targets {
            match self.enqueue(conn, payload, config) {
                Ok(()) => report.delivered += 1,
                Err(reason) => report.failures.push(DeliveryFailure {
                    client_id: conn.client_id().to_owned(),
                    user_id: conn.user_id().to_owned(),
                    reason,
                }),
            }
        }
        report.nodes = usize::from(report.delivered > 0);
        report
    }

    fn message_sent(&self, msg: &HubMessage, report: &DeliveryReport) {
        Counters::by_type(
            &self.inner.counters.out_by_type,
            type_label(&msg.message_type),
            report.delivered as u64,
        );
        if !self.inner.callbacks.sent.is_empty() {
            for callback in self.inner.callbacks.sent.snapshot() {
                callback(msg, report);
            }
        }
    }

    /// Serializes a routed message once, refusing it when it exceeds the outbound limit
    /// (before anything is queued, numbered or stored).
    fn encode_outbound(&self, msg: &HubMessage, config: &HubConfig) -> Result<Payload, SendError> {
        let payload = codec::encode(msg)?;
        let limit = config.max_outbound_message_size;
        if limit > 0 && payload.len() > limit {
            return Err(SendError::TooLarge {
                size: payload.len(),
                limit,
            });
        }
        Ok(payload)
    }

    /// Fills the ids, the sender and the timestamp the caller left empty.
    fn prepare(&self, msg: &mut HubMessage) {
        if msg.sender.is_empty() {
            msg.sender = SYSTEM.to_owned();
            if msg.sender_type.is_empty() {
                msg.sender_type = SYSTEM.to_owned();
            }
        }
        if msg.id.is_empty() {
            msg.id = uuid::Uuid::now_v7().to_string();
        }
        if msg.message_id.is_empty() {
            msg.message_id = msg.id.clone();
        }
        if msg.create_at.is_empty() {
            msg.create_at = now_rfc3339();
        }
    }

    /// Non-blocking enqueue with the slow-consumer policy. Never awaits.
    fn enqueue(
        &self,
        conn: &Connection,
        payload: &Payload,
        config: &HubConfig,
    ) -> Result<(), FailureReason> {
        let counters = &self.inner.counters;
        if conn.is_closing() {
            Counters::add(&counters.messages_dropped, 1);
            return Err(FailureReason::ConnectionClosed);
        }
        let len = payload.len();
        let before = conn.queued_bytes.fetch_add(len, Ordering::Relaxed);
        // A single message larger than the byte bound still goes through an empty queue.
        let fits = before == 0 || before + len <= config.queue_max_bytes;
        if fits {
            match conn.tx.try_send(Outbound::Message(payload.clone())) {
                Ok(()) => {
                    if conn.oldest_queued_us.load(Ordering::Relaxed) == 0 {
                        let _ = conn.oldest_queued_us.compare_exchange(
                            0,
                            self.now_us() + 1,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                    return Ok(());
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    conn.queued_bytes.fetch_sub(len, Ordering::Relaxed);
                    Counters::add(&counters.messages_dropped, 1);
                    return Err(FailureReason::ConnectionClosed);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {}
            }
        }
        conn.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        Counters::add(&counters.messages_dropped, 1);
        match config.slow_consumer {
            SlowConsumerPolicy::DropMessage => Err(FailureReason::QueueFull),
            _ => {
                if conn.close(DisconnectReason::SlowConsumer) {
                    Counters::add(&counters.slow_consumer_disconnects, 1);
                    tracing::warn!(client_id = conn.client_id(), "slow consumer disconnected");
                    self.emit_error(Some(conn), &ErrorEvent::SlowConsumer);
                }
                Err(FailureReason::SlowConsumerDisconnected)
            }
        }
    }

    fn snapshot(
        &self,
        select: impl FnOnce(&Registry, &mut Vec<Arc<Connection>>),
    ) -> Vec<Arc<Connection>> {
        let mut out = Vec::new();
        select(&self.inner.registry.read(), &mut out);
        out
    }

    fn ensure_running(&self) -> Result<(), SendError> {
        if self.is_running() {
            Ok(())
        } else {
            Err(SendError::NotRunning)
        }
    }

    // ---------------------------------------------------------------- inbound

    /// Handles one decoded client frame. Returns whether it was an ack that matched a
    /// delivery (pending or just confirmed): only those are exempt from the frame rate limit.
    async fn handle_message(&self, conn: &Arc<Connection>, mut msg: HubMessage) -> bool {
        Counters::by_type(
            &self.inner.counters.in_by_type,
            type_label(&msg.message_type),
            1,
        );
        // The server speaks for the connection: a client cannot claim another identity or
        // leave its app and namespace.
        let identity = conn.identity();
        msg.sender = identity.user_id.clone();
        msg.sender_type = identity.user_type.clone();
        msg.sender_client = identity.client_id.clone();
        msg.app_id = identity.app_id.clone();
        msg.namespace = identity.namespace.clone();
        // Error frames name the id the client chose, never one the server generated.
        let frame_id = msg.id.clone();

        if msg.message_type.is_heartbeat() {
            let pong = HubMessage {
                id: frame_id,
                message_type: MessageType::Pong,
                sender: SYSTEM.to_owned(),
                sender_type: SYSTEM.to_owned(),
                receiver: identity.user_id.clone(),
                receiver_type: identity.user_type.clone(),
                ..HubMessage::default()
            };
            self.send_direct(conn, pong);
            return false;
        }
        if msg.message_type == MessageType::Ack {
            return self.handle_ack(conn, &msg.message_id, &frame_id);
        }
        if msg.message_type == MessageType::Resume {
            self.resume(conn, msg.seq_no, &HashSet::new(), |frame| {
                let _ = self.enqueue_frame(conn, frame);
            });
            return false;
        }
        // Numbering, the replay marker and ack tracking belong to the server: a client
        // frame cannot make its receiver record a sequence number, believe a message came
        // from the offline store, or ack something nobody waits for.
        msg.seq_no = 0;
        msg.source = None;
        msg.require_ack = false;
        self.prepare(&mut msg);
        for interceptor in self.inner.callbacks.inbound.snapshot() {
            if let Err(e) = interceptor(conn, &mut msg) {
                self.reject_frame(conn, FrameError::Rejected(e.0), &frame_id);
                return false;
            }
        }
        let config = self.config();
        if msg.message_type.is_forwardable() && config.relay_status_messages {
            self.relay(conn, msg, &frame_id).await;
            return false;
        }
        if config.relay.enabled
            && let Err(refusal) = self.relay_targeted(conn, &msg, &config.relay).await
        {
            self.reject_frame(conn, FrameError::Rejected(refusal), &frame_id);
            return false;
        }
        let msg = Arc::new(msg);
        for callback in self.inner.callbacks.received.snapshot() {
            if let Err(e) = callback(conn.clone(), msg.clone()).await {
                self.emit_error(Some(conn), &ErrorEvent::CallbackRejected(e.0.clone()));
                self.reject_frame(conn, FrameError::Rejected(e.0), &frame_id);
                return false;
            }
        }
        false
    }

    /// The relay policy of [`HubConfig::relay`]: a client message naming a ticket, a group
    /// or a user is sent there when the sender may address it. `Err` is the refusal text
    /// (starting with `relay_denied`) or why the send failed.
    async fn relay_targeted(
        &self,
        conn: &Arc<Connection>,
        msg: &HubMessage,
        policy: &RelayPolicy,
    ) -> Result<(), String> {
        let identity = conn.identity();
        let sent = if !msg.ticket_id.is_empty() {
            if !identity.ticket_ids.contains(&msg.ticket_id) {
                return Err(format!(
                    "relay_denied: not bound to ticket {}",
                    msg.ticket_id
                ));
            }
            self.send_to_ticket(&msg.ticket_id, msg.clone()).await
        } else if let Some(group) = msg.group_ids.first() {
            let member = identity.group_ids.contains(group)
                || self
                    .inner
                    .registry
                    .read()
                    .is_group_member(group, conn.user_id());
            if !member {
                return Err(format!("relay_denied: not a member of group {group}"));
            }
            self.send_to_group(group, msg.clone()).await
        } else if !msg.receiver.is_empty() {
            if !policy.user_targets.contains(&identity.user_type) {
                return Err(format!(
                    "relay_denied: {} users may not message users directly",
                    identity.user_type
                ));
            }
            self.send_to_user(&msg.receiver, msg.clone()).await
        } else {
            return Ok(());
        };
        sent.map(drop).map_err(|e| e.to_string())
    }

    fn handle_ack(&self, conn: &Arc<Connection>, message_id: &str, frame_id: &str) -> bool {
        if message_id.is_empty() {
            let error = FrameError::UnknownAck("message_id is required".to_owned());
            self.reject_frame(conn, error, frame_id);
            return false;
        }
        match self.inner.acks.ack(message_id, conn) {
            AckMatch::Confirmed { offline_user } => {
                Counters::add(&self.inner.counters.acks_confirmed, 1);
                if let (Some(user), Some(store)) = (offline_user, self.offline_store()) {
                    let removal = store.remove(&user, vec![message_id.to_owned()]);
                    tokio::spawn(removal);
                }
                true
            }
            // A resend that crossed the first ack: nothing to do.
            AckMatch::Duplicate => true,
            AckMatch::Unknown => {
                let detail = format!("no delivery {message_id} is waiting for an ack");
                self.reject_frame(conn, FrameError::UnknownAck(detail), frame_id);
                false
            }
        }
    }

    fn enqueue_frame(&self, conn: &Connection, frame: Outbound) -> Result<(), FailureReason> {
        match frame {
            Outbound::Message(payload) => self.enqueue(conn, &payload, &self.config()),
            Outbound::Ping => conn
                .tx
                .try_send(Outbound::Ping)
                .map_err(|_| FailureReason::QueueFull),
        }
    }

    async fn relay(&self, conn: &Arc<Connection>, msg: HubMessage, frame_id: &str) {
        if msg.receiver.is_empty() {
            let err = FrameError::MissingReceiver(msg.message_type.to_string());
            self.reject_frame(conn, err, frame_id);
            return;
        }
        let policy = self.inner.relay_policy.read().clone();
        if let Some(policy) = policy
            && !policy(conn, &msg)
        {
            self.reject_frame(
                conn,
                FrameError::RelayDenied(msg.receiver.clone()),
                frame_id,
            );
            return;
        }
        let receiver = msg.receiver.clone();
        let only = msg.receiver_client.clone();
        let origin = conn.id();
        let (app, namespace) = (&conn.identity().app_id, &conn.identity().namespace);
        // A relay stays inside the sender's exact app and namespace, even when those are
        // empty (an empty scope on a message would otherwise mean "anywhere").
        let _ = self.route(msg, |reg, _, out| {
            out.extend(
                reg.user(&receiver)
                    .filter(|c| c.id() != origin)
                    .filter(|c| only.is_empty() || c.client_id() == only)
                    .filter(|c| &c.identity().app_id == app && &c.identity().namespace == namespace)
                    .cloned(),
            )
        });
    }

    fn reject_frame(&self, conn: &Connection, error: FrameError, reply_to: &str) {
        Counters::add(&self.inner.counters.invalid_frames, 1);
        tracing::debug!(
            client_id = conn.client_id(),
            code = error.code(),
            "frame refused"
        );
        self.send_direct(conn, error.to_message(reply_to));
        self.emit_error(Some(conn), &ErrorEvent::InvalidFrame(error));
    }

    fn emit_error(&self, conn: Option<&Connection>, event: &ErrorEvent) {
        for callback in self.inner.callbacks.error.snapshot() {
            callback(conn, event);
        }
    }

    fn now_ms(&self) -> u64 {
        self.inner.origin.elapsed().as_millis() as u64
    }

    fn now_us(&self) -> u64 {
        self.inner.origin.elapsed().as_micros() as u64
    }

    /// One pass of the shared liveness timer: close the silent, ping the rest.
    fn sweep(&self) {
        let now = self.now_ms();
        let timeout = self.config().client_timeout.as_millis() as u64;
        for conn in self.snapshot(|reg, out| out.extend(reg.all_registered().cloned())) {
            if now.saturating_sub(conn.last_seen_ms()) >= timeout {
                conn.close(DisconnectReason::Timeout);
            } else {
                // A full queue already means traffic is pending; skipping the ping is fine.
                let _ = conn.tx.try_send(Outbound::Ping);
            }
        }
        if let Some(store) = self.offline_store() {
            store.purge_expired();
        }
        let online: HashSet<String> = self.inner.registry.read().users().cloned().collect();
        self.inner
            .histories
            .prune(now, |user| online.contains(user));
    }

    // ---------------------------------------------------------------- queries

    /// Ids of every user with a live connection on this node, sorted.
    pub fn online_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.inner.registry.read().users().cloned().collect();
        users.sort();
        users
    }

    /// Number of users with a live connection.
    pub fn online_user_count(&self) -> usize {
        self.inner.registry.read().user_count()
    }

    /// Whether the user has a live connection (never for a blank id).
    pub fn is_user_online(&self, user_id: &str) -> bool {
        self.inner.registry.read().is_user_online(user_id)
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.inner.registry.read().len()
    }

    /// Snapshots of a user's live connections.
    pub fn user_connections(&self, user_id: &str) -> Result<Vec<ConnectionInfo>, InvalidId> {
        InvalidId::check(user_id, "user_id")?;
        let node = self.node_id();
        Ok(self
            .snapshot(|reg, out| out.extend(reg.user(user_id).cloned()))
            .iter()
            .map(|c| c.info(node))
            .collect())
    }

    /// A live connection by client id.
    pub fn connection(&self, client_id: &str) -> Option<Arc<Connection>> {
        self.inner.registry.read().by_client(client_id).cloned()
    }

    /// A live connection by process-local id.
    pub fn connection_by_id(&self, id: ConnectionId) -> Option<Arc<Connection>> {
        self.inner.registry.read().get(id).cloned()
    }

    /// Adds a user to a group (kept until [`Hub::leave_group`], across reconnects).
    /// Returns whether the user was not a member yet.
    pub fn join_group(&self, group_id: &str, user_id: &str) -> Result<bool, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        Ok(self.inner.registry.write().join_group(group_id, user_id))
    }

    /// Removes a user from a group. Returns whether it was a member through the API.
    pub fn leave_group(&self, group_id: &str, user_id: &str) -> Result<bool, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        Ok(self.inner.registry.write().leave_group(group_id, user_id))
    }

    /// Users in a group, sorted.
    pub fn group_members(&self, group_id: &str) -> Result<Vec<String>, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        Ok(self.inner.registry.read().group_members(group_id))
    }

    /// An exact snapshot of the counters.
    pub fn stats(&self) -> HubStats {
        let (connections, users) = {
            let reg = self.inner.registry.read();
            (reg.len(), reg.user_count())
        };
        let uptime = self
            .inner
            .started_at
            .lock()
            .map(|t| t.elapsed().as_secs())
            .unwrap_or(0);
        let dropped = self.offline_store().map(|s| s.dropped()).unwrap_or(0);
        let pending = self.inner.acks.len();
        self.inner.counters.snapshot(
            self.node_id(),
            (connections, users, pending, dropped),
            uptime,
        )
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

/// The delivery report the message-sent callbacks get for an acknowledged send: the
/// targets that acked count as delivered.
fn ack_summary(report: &AckReport) -> DeliveryReport {
    let delivered = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, AckStatus::Acked { .. }))
        .count();
    DeliveryReport {
        message_id: report.message_id.clone(),
        delivered,
        nodes: usize::from(delivered > 0),
        stored_offline: report
            .outcomes
            .iter()
            .any(|o| o.status == AckStatus::StoredOffline),
        failures: Vec::new(),
    }
}

/// A stored message as it is replayed: marked `source: "offline"` and `data.offline: true`.
fn replay_payload(mut msg: HubMessage) -> Option<Payload> {
    msg.source = Some(Source::Offline);
    codec::encode(&msg.with_data("offline", true)).ok()
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
    (msg.app_id.is_empty() || msg.app_id == identity.app_id)
        && (msg.namespace.is_empty() || msg.namespace == identity.namespace)
}

/// A registered connection, as its transport drives it.
///
/// The transport reads outbound frames with [`recv`](Self::recv) /
/// [`try_recv`](Self::try_recv), feeds inbound frames to [`handle_text`](Self::handle_text),
/// and ends with [`finish`](Self::finish). Dropping it unregisters the connection too, so a
/// transport that fails cannot leak a registration. The disconnect callbacks run exactly once.
pub struct Registration {
    hub: Hub,
    conn: Arc<Connection>,
    rx: mpsc::Receiver<Outbound>,
    /// Replayed frames, served before the queue.
    backlog: Backlog,
    /// Offline messages handed to the transport, deleted from the store once written.
    written_offline: Vec<String>,
    window_start_ms: u64,
    window_count: u32,
    window_bytes: usize,
    finished: bool,
}

impl Registration {
    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The hub it belongs to.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The next outbound frame: replayed frames first, then the queue. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Outbound> {
        if let Some(frame) = self.next_replayed() {
            return Some(frame);
        }
        let frame = self.rx.recv().await;
        self.dequeued(frame.as_ref());
        frame
    }

    /// The next outbound frame if one is ready.
    pub fn try_recv(&mut self) -> Option<Outbound> {
        if let Some(frame) = self.next_replayed() {
            return Some(frame);
        }
        let frame = self.rx.try_recv().ok();
        self.dequeued(frame.as_ref());
        frame
    }

    fn next_replayed(&mut self) -> Option<Outbound> {
        let (frame, delete_when_written) = self.backlog.frames.pop_front()?;
        self.written_offline.extend(delete_when_written);
        Some(frame)
    }

    fn dequeued(&self, frame: Option<&Outbound>) {
        if let Some(Outbound::Message(p)) = frame {
            self.conn.queued_bytes.fetch_sub(p.len(), Ordering::Relaxed);
        }
    }

    /// Records frames the transport wrote and flushed (for stats, and to delete replayed
    /// fire-and-forget offline messages, which count as delivered once written).
    pub fn record_written(&mut self, messages: u64, bytes: u64) {
        let counters = &self.hub.inner.counters;
        Counters::add(&counters.messages_out, messages);
        Counters::add(&counters.bytes_out, bytes);
        let queued = self.conn.oldest_queued_us.swap(0, Ordering::Relaxed);
        if queued > 0 {
            let waited = self.hub.now_us().saturating_sub(queued - 1);
            counters.latency.record(waited);
        }
        if !self.written_offline.is_empty()
            && let Some(store) = self.hub.offline_store()
        {
            let ids = std::mem::take(&mut self.written_offline);
            tokio::spawn(store.remove(self.conn.user_id(), ids));
        }
    }

    /// Marks the connection alive (any inbound frame or pong).
    pub fn touch(&self) {
        self.conn.touch(self.hub.now_ms());
    }

    /// Handles one inbound text frame: liveness, rate limit, decoding, then pong, relay or
    /// the message-received callbacks. Invalid frames get an error frame; the connection
    /// stays open unless a limit closes it.
    pub async fn handle_text(&mut self, text: &str) {
        Counters::add(&self.hub.inner.counters.bytes_in, text.len() as u64);
        let config = self.hub.config();
        if !self.accept_inbound(text.len(), &config) {
            return;
        }
        match codec::decode(text, config.limits) {
            Ok(msg) => {
                // Acks that match a delivery answer the server's own traffic: they count
                // against the byte limit but not the frame limit, so a busy client can ack
                // everything it receives. Unknown acks count like any other frame.
                if self.hub.handle_message(&self.conn, msg).await {
                    self.window_count = self.window_count.saturating_sub(1);
                }
            }
            Err(error) => {
                let reply_to = match error {
                    FrameError::InvalidField(_) | FrameError::TooDeep(_) => {
                        codec::offending_id(text)
                    }
                    _ => String::new(),
                };
                self.hub.reject_frame(&self.conn, error, &reply_to);
            }
        }
    }

    /// Answers a frame the transport could not accept (binary, invalid UTF-8) with an error
    /// frame. Such frames count against the inbound rate limit like any other.
    pub fn reject_frame(&mut self, error: FrameError, len: usize) {
        if self.accept_inbound(len, &self.hub.config()) {
            self.hub.reject_frame(&self.conn, error, "");
        }
    }

    /// Liveness, the `messages_in` counter and the inbound rate limits (frames and bytes per
    /// second, in fixed one-second windows), for every data frame. Returns false (and closes
    /// with 1008) when the frame breaks a limit.
    fn accept_inbound(&mut self, len: usize, config: &HubConfig) -> bool {
        let now = self.hub.now_ms();
        self.conn.touch(now);
        Counters::add(&self.hub.inner.counters.messages_in, 1);
        let (max_frames, max_bytes) = (
            config.max_inbound_per_second,
            config.max_inbound_bytes_per_second,
        );
        if max_frames == 0 && max_bytes == 0 {
            return true;
        }
        if now.saturating_sub(self.window_start_ms) >= 1000 {
            self.window_start_ms = now;
            self.window_count = 0;
            self.window_bytes = 0;
        }
        self.window_count += 1;
        self.window_bytes += len;
        let detail = if max_frames > 0 && self.window_count > max_frames {
            format!("rate limit exceeded: more than {max_frames} messages per second")
        } else if max_bytes > 0 && self.window_bytes > max_bytes {
            format!("rate limit exceeded: more than {max_bytes} bytes per second")
        } else {
            return true;
        };
        self.conn
            .close(DisconnectReason::PolicyViolation { detail });
        false
    }

    /// A write did not finish within `write_timeout`: the client does not read fast enough.
    /// Counted and reported like a queue overflow.
    pub fn write_timed_out(&self) {
        if self.conn.close(DisconnectReason::SlowConsumer) {
            Counters::add(&self.hub.inner.counters.slow_consumer_disconnects, 1);
            tracing::warn!(
                client_id = self.conn.client_id(),
                "write timed out: slow consumer"
            );
            self.hub
                .emit_error(Some(&self.conn), &ErrorEvent::SlowConsumer);
        }
    }

    /// Unregisters the connection; `observed` is the reason when none was recorded before.
    pub fn finish(mut self, observed: DisconnectReason) {
        self.finished = true;
        self.hub.unregister(&self.conn, observed);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.finished {
            self.hub.unregister(
                &self.conn,
                DisconnectReason::ConnectionLost {
                    error: "transport dropped".to_owned(),
                },
            );
        }
    }
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("connection", &self.conn.id())
            .field("client_id", &self.conn.client_id())
            .finish()
    }
}

/// Reads `data.code` of an error frame (test and client helper).
pub fn error_code(msg: &HubMessage) -> Option<&str> {
    msg.data_value("code").and_then(Value::as_str)
}

/// Frames replayed to a new connection before its queue: offline messages (with the id to
/// delete once written, for fire-and-forget ones) and resumed history.
#[derive(Default)]
struct Backlog {
    frames: VecDeque<(Outbound, Option<String>)>,
    replayed: HashSet<String>,
    /// Replayed messages whose ack is tracked once the connection is admitted.
    awaiting_ack: Vec<String>,
    /// Offline messages loaded and not counted yet (counted once admitted).
    offline_count: u64,
}
