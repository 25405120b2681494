//! `gateway`: the facade over the hub and the server, in the shape of go-rpc-gateway's API.
//!
//! One builder reads the configuration, the gateway starts the WebSocket, HTTP and gRPC
//! listeners, and shortcut methods send to users, tickets, groups and everyone. Callback
//! chains, named events and message interceptors can be registered before or after it
//! starts; upgrade middlewares apply from the next `start`.
//!
//! ```no_run
//! use gateway::Gateway;
//! use wsc_hub::HubMessage;
//!
//! # async fn run() -> Result<(), gateway::GatewayError> {
//! let gw = Gateway::builder().config_path("config.yaml").build_and_start().await?;
//! gw.on_websocket_client_connect(|conn| async move {
//!     println!("{} connected", conn.user_id());
//!     Ok(())
//! });
//! gw.send_to_websocket_user("alice", HubMessage::text("hello")).await?;
//! gw.wait_for_shutdown().await;
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_server::{RunningServer, Server, UpgradeMiddleware};
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use wsc_config::Loader;

// The types this crate's signatures use, re-exported so that depending on `gateway` alone
// is enough to call every method.
#[doc(no_inline)]
pub use gateway_server::{StartError, UpgradeRejection, UpgradeRequest};
#[doc(no_inline)]
pub use wsc_config::{ConfigError, GatewayConfig, WscConfig};
#[doc(no_inline)]
pub use wsc_hub::{
    AckFailure, AckOutcome, AckReport, AckStatus, BroadcastOptions, CallbackError, Connection,
    DeliveryReport, DisconnectReason, ErrorEvent, GroupError, Hub, HubEvent, HubMessage, HubStats,
    Identity, InvalidId, KickReport, MessageType, SendError,
};

/// How long `stop` waits for connections to drain.
const DRAIN: Duration = Duration::from_secs(10);

/// The event names (defined once, in the hub).
pub use wsc_hub::events;

/// One event delivered to [`Gateway::on_websocket_event`] handlers: the hub's own
/// [`HubEvent`](wsc_hub::HubEvent).
pub type GatewayEvent = wsc_hub::HubEvent;

type EventHandler = Arc<dyn Fn(&GatewayEvent) + Send + Sync>;

/// Handlers by event name; an event with no handler costs a map lookup.
#[derive(Default)]
struct EventBus {
    handlers: RwLock<HashMap<&'static str, Vec<EventHandler>>>,
}

impl EventBus {
    fn has(&self, name: &str) -> bool {
        self.handlers.read().contains_key(name)
    }

    fn emit(&self, event: GatewayEvent) {
        let handlers = self.handlers.read().get(event.name).cloned();
        for handler in handlers.into_iter().flatten() {
            handler(&event);
        }
    }
}

/// What went wrong, for every gateway operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The configuration file could not be found.
    #[error("configuration file {path} not found (looked in: {searched})")]
    ConfigNotFound {
        /// The file asked for.
        path: PathBuf,
        /// Where it was looked for.
        searched: String,
    },
    /// The configuration could not be loaded or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The server could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// `start` was called on a running gateway.
    #[error("the gateway is already running")]
    AlreadyRunning,
    /// The gateway is not running (not started yet, or stopped).
    #[error("the gateway is not running; call start() first")]
    NotRunning,
    /// A send failed.
    #[error(transparent)]
    Send(SendError),
    /// A group operation failed (a limit, an id, the group store).
    #[error(transparent)]
    Group(#[from] GroupError),
}

impl From<InvalidId> for GatewayError {
    fn from(e: InvalidId) -> Self {
        GatewayError::Send(e.into())
    }
}

impl From<SendError> for GatewayError {
    fn from(e: SendError) -> Self {
        match e {
            SendError::NotRunning => GatewayError::NotRunning,
            other => GatewayError::Send(other),
        }
    }
}

/// An inbound interceptor function.
pub type InboundFn =
    Box<dyn Fn(&Connection, &mut HubMessage) -> Result<(), CallbackError> + Send + Sync>;
/// An outbound interceptor function.
pub type OutboundFn = Box<dyn Fn(&mut HubMessage) -> Result<(), CallbackError> + Send + Sync>;

/// A message interceptor for [`Gateway::add_websocket_interceptor`].
pub enum Interceptor {
    /// Sees client messages (after the sender is stamped) before relay and callbacks; may
    /// modify one or refuse it (the client gets an error frame `rejected`).
    Inbound(InboundFn),
    /// Sees every message sent through the gateway before it is serialized; may modify one
    /// or refuse it (the send fails with `rejected`).
    Outbound(OutboundFn),
}

impl Interceptor {
    /// An inbound interceptor.
    pub fn inbound<F>(f: F) -> Self
    where
        F: Fn(&Connection, &mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        Interceptor::Inbound(Box::new(f))
    }

    /// An outbound interceptor.
    pub fn outbound<F>(f: F) -> Self
    where
        F: Fn(&mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        Interceptor::Outbound(Box::new(f))
    }
}

/// Builds a [`Gateway`]: the configuration from a file (searched in the given folders), a
/// ready [`GatewayConfig`], or the embedded defaults, with environment overrides.
#[derive(Debug, Default)]
pub struct GatewayBuilder {
    config_path: Option<PathBuf>,
    config: Option<GatewayConfig>,
    search_paths: Vec<PathBuf>,
    environment: Option<HashMap<String, String>>,
    hot_reload: Option<bool>,
}

impl GatewayBuilder {
    /// Reads this file (YAML, TOML or JSON). A relative path is looked for in the current
    /// folder, then in each [`search_path`](Self::search_path).
    pub fn config_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.config_path = Some(path.into());
        self
    }

    /// Uses this configuration (no file, no environment).
    pub fn config(mut self, config: GatewayConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Adds a folder to look for a relative `config_path` in.
    pub fn search_path(mut self, folder: impl Into<PathBuf>) -> Self {
        self.search_paths.push(folder.into());
        self
    }

    /// Uses this map instead of the process environment for `GATEWAY__...` overrides.
    pub fn environment(mut self, environment: HashMap<String, String>) -> Self {
        self.environment = Some(environment);
        self
    }

    /// Whether the runtime-safe keys reload when the file changes (default: on with a file).
    pub fn hot_reload(mut self, enabled: bool) -> Self {
        self.hot_reload = Some(enabled);
        self
    }

    /// Loads the configuration and builds the gateway (not started).
    pub fn build(self) -> Result<Gateway, GatewayError> {
        let (config, loader) = match (self.config, self.config_path) {
            (Some(config), _) => (config, None),
            (None, path) => {
                let mut loader = Loader::new();
                if let Some(path) = path {
                    loader = loader.file(find(&path, &self.search_paths)?);
                }
                if let Some(environment) = self.environment {
                    loader = loader.environment(environment);
                }
                let loaded = loader.load()?;
                for warning in &loaded.warnings {
                    tracing::warn!(%warning, "configuration");
                }
                (
                    loaded.config,
                    loader.file_path().is_some().then_some(loader),
                )
            }
        };
        let hot_reload = self.hot_reload.unwrap_or(true) && loader.is_some();
        Ok(Gateway::new(config, loader, hot_reload))
    }

    /// Builds and starts.
    pub async fn build_and_start(self) -> Result<Gateway, GatewayError> {
        let gateway = self.build()?;
        gateway.start().await?;
        Ok(gateway)
    }
}

fn find(path: &PathBuf, search: &[PathBuf]) -> Result<PathBuf, GatewayError> {
    if path.exists() {
        return Ok(path.clone());
    }
    for folder in search.iter().filter(|_| path.is_relative()) {
        let candidate = folder.join(path);
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    let mut searched = vec![".".to_owned()];
    searched.extend(search.iter().map(|f| f.display().to_string()));
    Err(GatewayError::ConfigNotFound {
        path: path.clone(),
        searched: searched.join(", "),
    })
}

/// The WebSocket service of a gateway: its hub and settings.
#[derive(Clone, Debug)]
pub struct WebSocketService {
    hub: Hub,
    config: WscConfig,
}

impl WebSocketService {
    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The `wsc` settings the gateway was built with.
    pub fn config(&self) -> &WscConfig {
        &self.config
    }

    /// Whether the hub accepts connections and sends.
    pub fn is_running(&self) -> bool {
        self.hub.is_running()
    }
}

struct Inner {
    config: GatewayConfig,
    loader: Option<Loader>,
    hot_reload: bool,
    hub: Hub,
    events: Arc<EventBus>,
    middlewares: Mutex<Vec<UpgradeMiddleware>>,
    running: tokio::sync::Mutex<Option<RunningServer>>,
    /// The hot-reload task of the current run, ended by `stop`.
    reload: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The gateway. Cheap to clone; every clone is the same gateway.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway")
            .field("name", &self.inner.config.name)
            .field("running", &self.inner.hub.is_running())
            .finish()
    }
}

impl Gateway {
    /// A builder.
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder::default()
    }

    fn new(config: GatewayConfig, loader: Option<Loader>, hot_reload: bool) -> Self {
        let hub = Hub::new(config.wsc.hub_config());
        let events = Arc::new(EventBus::default());
        feed_events(&hub, &events);
        Gateway {
            inner: Arc::new(Inner {
                config,
                loader,
                hot_reload,
                hub,
                events,
                middlewares: Mutex::new(Vec::new()),
                running: tokio::sync::Mutex::new(None),
                reload: Mutex::new(None),
            }),
        }
    }

    /// Binds the listeners and starts serving. Errors when already running or when a
    /// listener cannot be bound.
    pub async fn start(&self) -> Result<(), GatewayError> {
        let mut running = self.inner.running.lock().await;
        if running.is_some() {
            return Err(GatewayError::AlreadyRunning);
        }
        let mut server = Server::with_hub(self.inner.config.clone(), self.inner.hub.clone());
        for middleware in self.inner.middlewares.lock().iter() {
            server = server.with_middleware(middleware.clone());
        }
        let started = server.start().await?;
        if self.inner.hot_reload
            && let Some(loader) = self.inner.loader.clone()
        {
            let applier = started.config_applier();
            match wsc_config::watch_file(
                loader,
                self.inner.config.clone(),
                Duration::from_millis(250),
            ) {
                Ok(watch) => {
                    let mut updates = watch.subscribe();
                    let task = tokio::spawn(async move {
                        // The watch lives as long as this task.
                        let _watch = watch;
                        while updates.changed().await.is_ok() {
                            let config = updates.borrow_and_update().clone();
                            applier.apply(&config);
                        }
                    });
                    *self.inner.reload.lock() = Some(task);
                }
                Err(e) => tracing::warn!(error = %e, "hot reload is off"),
            }
        }
        *running = Some(started);
        drop(running);
        self.emit_lifecycle(events::WEBSOCKET_STARTED);
        Ok(())
    }

    /// Stops: closes every connection with 1001, settles in-flight acknowledged sends and
    /// drains (at most 10 s). Returns whether everything drained; `NotRunning` when it was
    /// not running.
    pub async fn stop(&self) -> Result<bool, GatewayError> {
        let server = self.inner.running.lock().await.take();
        let Some(server) = server else {
            return Err(GatewayError::NotRunning);
        };
        if let Some(reload) = self.inner.reload.lock().take() {
            reload.abort();
        }
        let drained = server.stop(DRAIN).await;
        self.emit_lifecycle(events::WEBSOCKET_STOPPED);
        Ok(drained)
    }

    /// Waits for SIGINT or SIGTERM, then stops. Returns once shutdown finished; never exits
    /// the process (the caller decides what happens next).
    pub async fn wait_for_shutdown(&self) {
        gateway_server::shutdown_signal().await;
        let _ = self.stop().await;
    }

    /// Whether the gateway is serving.
    pub fn is_running(&self) -> bool {
        self.inner.hub.is_running()
    }

    /// The WebSocket service.
    pub fn websocket(&self) -> WebSocketService {
        WebSocketService {
            hub: self.inner.hub.clone(),
            config: self.inner.config.wsc.clone(),
        }
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The configuration the gateway was built with.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// Where the listeners are bound: (WebSocket, API, gRPC), once running.
    pub async fn addresses(
        &self,
    ) -> Option<(
        std::net::SocketAddr,
        std::net::SocketAddr,
        Option<std::net::SocketAddr>,
    )> {
        let running = self.inner.running.lock().await;
        running
            .as_ref()
            .map(|r| (r.public_addr(), r.api_addr(), r.grpc_addr()))
    }

    fn emit_lifecycle(&self, name: &'static str) {
        if self.inner.events.has(name) {
            let mut event = GatewayEvent::new(name);
            event.detail = json!({"node_id": self.inner.hub.node_id()});
            self.inner.events.emit(event);
        }
    }

    // ------------------------------------------------------------------ shortcuts

    /// Sends to every connection of a user (`SendToUser`).
    pub async fn send_to_websocket_user(
        &self,
        user_id: &str,
        msg: HubMessage,
    ) -> Result<DeliveryReport, GatewayError> {
        Ok(self.inner.hub.send_to_user(user_id, msg).await?)
    }

    /// Sends to a user and waits for its ack (`SendToUserWithAck`).
    pub async fn send_to_websocket_user_with_ack(
        &self,
        user_id: &str,
        msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, GatewayError> {
        Ok(self
            .inner
            .hub
            .send_to_user_with_ack(user_id, msg, timeout, max_retries)
            .await?)
    }

    /// Sends to every connection on a ticket except the sender (`SendToTicket`).
    pub async fn send_to_websocket_ticket(
        &self,
        ticket_id: &str,
        msg: HubMessage,
    ) -> Result<DeliveryReport, GatewayError> {
        Ok(self.inner.hub.send_to_ticket(ticket_id, msg).await?)
    }

    /// Sends to a ticket and waits for every connection's ack.
    pub async fn send_to_websocket_ticket_with_ack(
        &self,
        ticket_id: &str,
        msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, GatewayError> {
        Ok(self
            .inner
            .hub
            .send_to_ticket_with_ack(ticket_id, msg, timeout, max_retries)
            .await?)
    }

    /// Sends to every connection of a group.
    pub async fn send_to_websocket_group(
        &self,
        group_id: &str,
        msg: HubMessage,
    ) -> Result<DeliveryReport, GatewayError> {
        Ok(self.inner.hub.send_to_group(group_id, msg).await?)
    }

    /// Sends to every connection (`Broadcast`).
    pub async fn broadcast_websocket_message(
        &self,
        msg: HubMessage,
    ) -> Result<DeliveryReport, GatewayError> {
        Ok(self
            .inner
            .hub
            .broadcast(msg, BroadcastOptions::default())
            .await?)
    }

    /// Broadcasts with options (scope, excluded user).
    pub async fn broadcast_websocket_message_with(
        &self,
        msg: HubMessage,
        options: BroadcastOptions,
    ) -> Result<DeliveryReport, GatewayError> {
        Ok(self.inner.hub.broadcast(msg, options).await?)
    }

    /// Closes every connection of a user with 1008 (after a `kick_out` frame with `notify`).
    pub async fn kick_websocket_user(
        &self,
        user_id: &str,
        reason: &str,
        notify: bool,
    ) -> Result<KickReport, GatewayError> {
        Ok(self.inner.hub.kick_user(user_id, reason, notify).await?)
    }

    /// Adds a user to a group (every device, across reconnects, on every node); whether
    /// the user was not a member yet. Fails with [`GroupError::GroupFull`] or
    /// [`GroupError::TooManyGroups`] past `wsc.groups` limits.
    pub async fn join_websocket_group(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, GatewayError> {
        self.running()?;
        Ok(self.inner.hub.join_group(group_id, user_id).await?)
    }

    /// Removes a user from a group; whether the user was a member.
    pub async fn leave_websocket_group(
        &self,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, GatewayError> {
        self.running()?;
        Ok(self.inner.hub.leave_group(group_id, user_id).await?)
    }

    /// Online users on every node of the cluster, sorted (`GetOnlineUsers`); this node's
    /// users on a single node.
    pub async fn get_websocket_online_users(&self) -> Result<Vec<String>, GatewayError> {
        self.running()?;
        Ok(self
            .inner
            .hub
            .cluster_online_users(0, usize::MAX)
            .await
            .users)
    }

    /// Number of online users on every node of the cluster (`GetOnlineUserCount`).
    pub async fn get_websocket_online_user_count(&self) -> Result<usize, GatewayError> {
        self.running()?;
        Ok(self.inner.hub.cluster_online_user_count().await)
    }

    /// The stats snapshot (`GetStats`).
    pub fn get_websocket_stats(&self) -> Result<HubStats, GatewayError> {
        self.running()?;
        Ok(self.inner.hub.stats())
    }

    fn running(&self) -> Result<(), GatewayError> {
        if self.inner.hub.is_running() {
            Ok(())
        } else {
            Err(GatewayError::NotRunning)
        }
    }

    // ------------------------------------------------------------------ registration

    /// Adds a connect callback (`OnClientConnect`): an error rejects the connection with a
    /// close frame (1008) carrying its text.
    pub fn on_websocket_client_connect<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Arc<Connection>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner.hub.on_client_connect(f);
        self
    }

    /// Adds a disconnect callback (`OnClientDisconnect`): once per connection, with the
    /// reason.
    pub fn on_websocket_client_disconnect<F>(&self, f: F) -> &Self
    where
        F: Fn(&Connection, &DisconnectReason) + Send + Sync + 'static,
    {
        self.inner.hub.on_client_disconnect(f);
        self
    }

    /// Adds a message callback (`OnMessageReceived`): an error answers the client with an
    /// error frame `rejected`.
    pub fn on_websocket_message_received<F, Fut>(&self, f: F) -> &Self
    where
        F: Fn(Arc<Connection>, Arc<HubMessage>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner.hub.on_message_received(f);
        self
    }

    /// Adds a callback run after each send (`OnMessageSent`).
    pub fn on_websocket_message_sent<F>(&self, f: F) -> &Self
    where
        F: Fn(&HubMessage, &DeliveryReport) + Send + Sync + 'static,
    {
        self.inner.hub.on_message_sent(f);
        self
    }

    /// Adds an error callback (`OnError`).
    pub fn on_websocket_error<F>(&self, f: F) -> &Self
    where
        F: Fn(Option<&Connection>, &ErrorEvent) + Send + Sync + 'static,
    {
        self.inner.hub.on_error(f);
        self
    }

    /// Adds an upgrade middleware: it sees the request and the identity read so far, may
    /// change or complete the identity, or refuse the upgrade with a status. Middlewares run
    /// in registration order; they apply from the next `start`.
    pub fn use_websocket_middleware<F>(&self, f: F) -> &Self
    where
        F: Fn(&UpgradeRequest<'_>, &mut Identity) -> Result<(), UpgradeRejection>
            + Send
            + Sync
            + 'static,
    {
        self.inner.middlewares.lock().push(Arc::new(f));
        self
    }

    /// Adds a handler for a named event (see [`events`]). Handlers run synchronously, in
    /// registration order, where the event happens.
    pub fn on_websocket_event<F>(&self, name: &str, handler: F) -> &Self
    where
        F: Fn(&GatewayEvent) + Send + Sync + 'static,
    {
        match events::ALL.iter().find(|n| **n == name) {
            Some(name) => self
                .inner
                .events
                .handlers
                .write()
                .entry(name)
                .or_default()
                .push(Arc::new(handler)),
            None => {
                tracing::warn!(name, known = ?events::ALL, "unknown event name; the handler will never run")
            }
        }
        self
    }

    /// Adds a message interceptor.
    pub fn add_websocket_interceptor(&self, interceptor: Interceptor) -> &Self {
        match interceptor {
            Interceptor::Inbound(f) => self.inner.hub.add_inbound_interceptor(f),
            Interceptor::Outbound(f) => self.inner.hub.add_outbound_interceptor(f),
        }
        self
    }
}

/// Hands every hub event to the bus; registered once per gateway, when it is built.
fn feed_events(hub: &Hub, bus: &Arc<EventBus>) {
    let bus = bus.clone();
    hub.on_event(move |event| {
        if bus.has(event.name) {
            bus.emit(event.clone());
        }
    });
}
