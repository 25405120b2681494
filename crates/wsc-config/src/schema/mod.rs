//! The configuration schema. Keys are snake_case, as in the seed's files. Every struct has a
//! `Default` that is the documented default (docs/configuration.md lists every key).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wsc_hub::{HubConfig, MultiLoginPolicy, RelayPolicy, SlowConsumerPolicy};

use crate::{duration, size};

mod security;

pub use security::*;

/// The whole gateway configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// Service name (logs, health).
    pub name: String,
    /// Service version.
    pub version: String,
    /// `development`, `staging`, `production`, ...
    pub environment: String,
    /// The API listener (REST, health, metrics).
    pub http: HttpConfig,
    /// The gRPC listener.
    pub grpc: GrpcConfig,
    /// Health endpoints on the API listener.
    pub health: HealthConfig,
    /// The Prometheus endpoint on the API listener.
    pub metrics: MetricsConfig,
    /// Logging.
    pub logging: LoggingConfig,
    /// Server API authentication.
    pub api: ApiConfig,
    /// The WebSocket hub and its public listener.
    pub wsc: WscConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            name: "wsc-gateway".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            environment: "development".to_owned(),
            http: HttpConfig::default(),
            grpc: GrpcConfig::default(),
            health: HealthConfig::default(),
            metrics: MetricsConfig::default(),
            logging: LoggingConfig::default(),
            api: ApiConfig::default(),
            wsc: WscConfig::default(),
        }
    }
}

/// TLS on one listener (`http.tls`, `wsc.tls`, `grpc.tls`). Certificates and keys are PEM
/// files; the server reads them again when they change, without dropping connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TlsConfig {
    /// Whether the listener speaks TLS (`https://`, `wss://`).
    pub enabled: bool,
    /// The certificate chain (PEM), leaf first.
    pub cert_file: String,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// The lowest protocol version accepted: `"1.2"` or `"1.3"`.
    pub min_version: String,
    /// CA certificates (PEM) that client certificates must chain to (mutual TLS); empty
    /// means no client certificate is asked for. API and gRPC listeners only.
    pub client_ca_file: String,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            cert_file: String::new(),
            key_file: String::new(),
            min_version: "1.2".to_owned(),
            client_ca_file: String::new(),
        }
    }
}

/// The API listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Bind address.
    pub host: String,
    /// Port (0 picks a free one). Equal to `wsc.node_port`: one listener serves everything.
    pub port: u16,
    /// TLS (`https://`).
    pub tls: TlsConfig,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".to_owned(),
            port: 8080,
            tls: TlsConfig::default(),
        }
    }
}

/// The gRPC listener.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GrpcConfig {
    /// Whether the gRPC server runs.
    pub enabled: bool,
    /// Bind address.
    pub host: String,
    /// Port (0 picks a free one).
    pub port: u16,
    /// TLS (gRPC over TLS).
    pub tls: TlsConfig,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            enabled: true,
            host: "0.0.0.0".to_owned(),
            port: 9090,
            tls: TlsConfig::default(),
        }
    }
}

/// Health endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct HealthConfig {
    /// Whether `/health` and `/ready` are served.
    pub enabled: bool,
    /// Liveness path.
    pub path: String,
    /// Readiness path.
    pub ready_path: String,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            path: "/health".to_owned(),
            ready_path: "/ready".to_owned(),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MetricsConfig {
    /// Whether `/metrics` is served.
    pub enabled: bool,
    /// Path.
    pub path: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            path: "/metrics".to_owned(),
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct LoggingConfig {
    /// `trace`, `debug`, `info`, `warn`, `error` or a tracing filter directive.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// `logging.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Server API authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ApiConfig {
    /// API keys accepted as `Authorization: Bearer <key>`; empty = the API is open.
    /// Secret: masked when printed.
    pub keys: Vec<String>,
}

/// The hub and its public listener (the seed's `wsc` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct WscConfig {
    /// Whether the WebSocket listener runs.
    pub enabled: bool,
    /// Bind address of the public listener.
    pub node_ip: String,
    /// Port of the public listener (0 picks a free one).
    pub node_port: u16,
    /// WebSocket path.
    pub path: String,
    /// TLS on the public listener (`wss://`).
    pub tls: TlsConfig,
    /// How often the server pings each connection.
    #[serde(with = "duration")]
    pub heartbeat_interval: Duration,
    /// A connection silent for this long is closed.
    #[serde(with = "duration")]
    pub client_timeout: Duration,
    /// Outbound queue length per connection, in messages.
    pub message_buffer_size: usize,
    /// Allowed `Origin` values; `*` allows any.
    pub websocket_origins: Vec<String>,
    /// Whether the hub relays status frames (`typing`, `read`, ...) to their `receiver`.
    pub relay_status_messages: bool,
    /// Relay of client messages that name a receiver, ticket or group (the `gateway` crate).
    pub relay: RelayConfig,
    /// Multi-login policy.
    pub multi_login: MultiLoginConfig,
    /// Group membership limits.
    pub groups: GroupsConfig,
    /// Tickets and agents.
    pub tickets: TicketsConfig,
    /// Observers: connections that get copies of the traffic in their scope.
    pub observers: ObserversConfig,
    /// Acknowledged delivery.
    pub ack: AckConfig,
    /// Offline messages.
    pub offline: OfflineConfig,
    /// Per-user sequence numbers and the resume window.
    pub recovery: RecoveryConfig,
    /// Server-sent events fallback.
    pub sse: SseConfig,
    /// Multi-node operation.
    pub distributed: DistributedConfig,
    /// Redis (multi-node backplane, offline store).
    pub redis: RedisConfig,
    /// Inbound limits and handshake checks.
    pub security: SecurityConfig,
    /// Capacity and slow-consumer settings.
    pub performance: PerformanceConfig,
}

// The hub's own defaults are the single source for every hub setting, so the two can never
// drift apart.
impl Default for WscConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        WscConfig {
            enabled: true,
            node_ip: "0.0.0.0".to_owned(),
            node_port: 8081,
            path: "/ws".to_owned(),
            tls: TlsConfig::default(),
            heartbeat_interval: hub.heartbeat_interval,
            client_timeout: hub.client_timeout,
            message_buffer_size: hub.queue_capacity,
            websocket_origins: vec!["*".to_owned()],
            relay_status_messages: hub.relay_status_messages,
            relay: RelayConfig::default(),
            multi_login: MultiLoginConfig::default(),
            groups: GroupsConfig::default(),
            tickets: TicketsConfig::default(),
            observers: ObserversConfig::default(),
            ack: AckConfig::default(),
            offline: OfflineConfig::default(),
            recovery: RecoveryConfig::default(),
            sse: SseConfig::default(),
            distributed: DistributedConfig::default(),
            redis: RedisConfig::default(),
            security: SecurityConfig::default(),
            performance: PerformanceConfig::default(),
        }
    }
}

/// Relay of client messages that name a target (applied by the hub, so the binary, the
/// facade and an embedded hub all honour it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RelayConfig {
    /// Whether client messages with `ticket_id`, `group_ids` or `receiver` are relayed.
    pub enabled: bool,
    /// User types that may address users directly with `receiver` (tickets and groups
    /// need the sender to be bound to the ticket or a member of the group).
    pub user_targets: Vec<String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        let hub = RelayPolicy::default();
        RelayConfig {
            enabled: hub.enabled,
            user_targets: hub.user_targets,
        }
    }
}

/// Multi-login policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct MultiLoginConfig {
    /// `allow_all`, `kick_old` or `kick_new`.
    pub policy: LoginPolicy,
    /// Connections per user (0 = unlimited).
    pub max_connections_per_user: usize,
    /// Text of the `force_offline` frame a kicked connection receives.
    pub kick_notification: String,
}

impl Default for MultiLoginConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        MultiLoginConfig {
            policy: match hub.multi_login {
                MultiLoginPolicy::AllowAll => LoginPolicy::AllowAll,
                MultiLoginPolicy::KickNew => LoginPolicy::KickNew,
                _ => LoginPolicy::KickOld,
            },
            max_connections_per_user: hub.max_connections_per_user,
            kick_notification: hub.kick_notification,
        }
    }
}

/// Group membership limits (memberships made through the API or the hub, not the groups a
/// connection joins at connect, which `wsc.security.max_group_ids` bounds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct GroupsConfig {
    /// Members one group may have (0 = unlimited).
    pub max_group_size: usize,
    /// Groups one user may belong to (0 = unlimited).
    pub max_groups_per_user: usize,
}

impl Default for GroupsConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        GroupsConfig {
            max_group_size: hub.max_group_size,
            max_groups_per_user: hub.max_groups_per_user,
        }
    }
}

/// Tickets: agents' capacity, auto-assignment and the inactivity timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct TicketsConfig {
    /// Tickets one agent takes at most.
    pub max_tickets_per_agent: usize,
    /// Whether new and queued tickets go to the least-loaded agent with room.
    pub auto_assign: bool,
    /// An open ticket without activity for this long closes (0 = never).
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// User types whose connections are agents.
    pub agent_types: Vec<String>,
    /// Messages of a ticket kept for an agent who takes it later (0 = none).
    pub history_size: usize,
    /// Whether clients open, close and transfer tickets with frames.
    pub client_requests: bool,
}

impl Default for TicketsConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        TicketsConfig {
            max_tickets_per_agent: hub.max_tickets_per_agent,
            auto_assign: hub.ticket_auto_assign,
            timeout: hub.ticket_timeout,
            agent_types: hub.agent_types,
            history_size: hub.ticket_history_size,
            client_requests: hub.ticket_client_requests,
        }
    }
}

/// Observers (supervisors, monitoring): connections of these user types get a copy of every
/// message sent in their scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ObserversConfig {
    /// Whether observers get copies.
    pub enabled: bool,
    /// User types whose connections are observers.
    pub user_types: Vec<String>,
}

impl Default for ObserversConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        ObserversConfig {
            enabled: hub.observers_enabled,
            user_types: hub.observer_types,
        }
    }
}

/// `wsc.multi_login.policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginPolicy {
    /// Every connection coexists.
    AllowAll,
    /// The oldest connection is kicked (`force_offline`, close 1008).
    KickOld,
    /// The new connection is refused.
    KickNew,
}

/// Acknowledged delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct AckConfig {
    /// How long to wait for an ack before resending.
    #[serde(with = "duration")]
    pub timeout: Duration,
    /// Resends after the first attempt.
    pub max_retries: u32,
    /// Deliveries waiting for an ack, per connection.
    pub max_pending_per_connection: usize,
}

impl Default for AckConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        AckConfig {
            timeout: hub.ack_timeout,
            max_retries: hub.ack_retries,
            max_pending_per_connection: hub.max_pending_acks,
        }
    }
}

/// Per-user sequence numbers and the resume window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RecoveryConfig {
    /// Messages per user kept for resume (0 = no resume window).
    pub history_size: usize,
    /// How long a message stays in the resume window.
    #[serde(with = "duration")]
    pub history_ttl: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        RecoveryConfig {
            history_size: hub.history_size,
            history_ttl: hub.history_ttl,
        }
    }
}

/// Offline messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct OfflineConfig {
    /// Whether undeliverable messages are stored for replay.
    pub enabled: bool,
    /// `memory` or `redis`.
    pub store: OfflineStore,
    /// Messages kept per user (the oldest are dropped first).
    pub max_per_user: usize,
    /// How long a stored message is kept.
    #[serde(with = "duration")]
    pub ttl: Duration,
    /// Messages the memory store keeps for all users together; when full, the oldest
    /// message of the whole store is dropped first.
    pub max_total: usize,
}

impl Default for OfflineConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        OfflineConfig {
            enabled: hub.offline_enabled,
            store: OfflineStore::Memory,
            max_per_user: hub.offline_max_per_user,
            ttl: hub.offline_ttl,
            max_total: hub.offline_max_total,
        }
    }
}

/// `wsc.offline.store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineStore {
    /// In this process (lost on restart).
    Memory,
    /// In Redis (needs `wsc.redis.enabled`).
    Redis,
}

/// Server-sent events fallback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SseConfig {
    /// Whether `/sse` is served.
    pub enabled: bool,
    /// The stream's path; the client's frames go to [`ack_path`](Self::ack_path) and
    /// [`send_path`](Self::send_path).
    pub path: String,
    /// Interval of SSE keep-alive comments.
    #[serde(with = "duration")]
    pub heartbeat: Duration,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            enabled: true,
            path: "/sse".to_owned(),
            heartbeat: Duration::from_secs(30),
        }
    }
}

impl SseConfig {
    /// Where a stream's client POSTs its acks: `{path}/ack`.
    pub fn ack_path(&self) -> String {
        format!("{}/ack", self.path.trim_end_matches('/'))
    }

    /// Where a stream's client POSTs its other frames: `{path}/send`.
    pub fn send_path(&self) -> String {
        format!("{}/send", self.path.trim_end_matches('/'))
    }
}

/// Multi-node operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct DistributedConfig {
    /// Whether nodes share presence and route through Redis.
    pub enabled: bool,
    /// This node's id; empty = generated, unique per process.
    pub node_id: String,
    /// How long a user's presence entry lives without renewal.
    #[serde(with = "duration")]
    pub presence_ttl: Duration,
    /// How long a node's registry entry lives without renewal.
    #[serde(with = "duration")]
    pub node_ttl: Duration,
    /// Prefix of every Redis key and channel.
    pub key_prefix: String,
}

impl Default for DistributedConfig {
    fn default() -> Self {
        DistributedConfig {
            enabled: false,
            node_id: String::new(),
            presence_ttl: Duration::from_secs(30),
            node_ttl: Duration::from_secs(30),
            key_prefix: "wsc:".to_owned(),
        }
    }
}

/// Redis.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Whether Redis is used.
    pub enabled: bool,
    /// Connection URL (`redis://[:password@]host:port/db`). Its password is masked when printed.
    pub url: String,
    /// Redis Cluster: the URLs of some of its nodes (any reachable one is enough to find the
    /// rest). Empty = a single Redis at `url`. Passwords are masked when printed.
    pub cluster_urls: Vec<String>,
    /// Pooled connections.
    pub pool_size: usize,
    /// Connect timeout.
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            enabled: false,
            url: "redis://127.0.0.1:6379/0".to_owned(),
            cluster_urls: Vec::new(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Capacity and slow-consumer settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct PerformanceConfig {
    /// Connections this node accepts (0 = unlimited); above it the upgrade gets 503.
    pub max_connections_per_node: usize,
    /// WebSocket read buffer per connection.
    #[serde(with = "size")]
    pub read_buffer_size: usize,
    /// WebSocket write buffer per connection (pong and close replies; messages are written
    /// straight from their payloads).
    #[serde(with = "size")]
    pub write_buffer_size: usize,
    /// Outbound queue size per connection.
    #[serde(with = "size")]
    pub queue_max_bytes: usize,
    /// What happens when a connection's queue is full: `disconnect` or `drop_message`.
    pub slow_consumer: SlowConsumer,
    /// How long one batched write may take before the client counts as a slow consumer.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Whether `/metrics` collects hub metrics.
    pub enable_metrics: bool,
    /// Whether slow operations are logged.
    pub enable_slow_log: bool,
    /// What counts as slow.
    #[serde(with = "duration")]
    pub slow_log_threshold: Duration,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        PerformanceConfig {
            max_connections_per_node: hub.max_connections,
            read_buffer_size: hub.read_buffer_size,
            write_buffer_size: hub.write_buffer_size,
            queue_max_bytes: hub.queue_max_bytes,
            slow_consumer: match hub.slow_consumer {
                SlowConsumerPolicy::DropMessage => SlowConsumer::DropMessage,
                _ => SlowConsumer::Disconnect,
            },
            write_timeout: hub.write_timeout,
            enable_metrics: true,
            enable_slow_log: false,
            slow_log_threshold: Duration::from_millis(100),
        }
    }
}

/// `wsc.performance.slow_consumer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumer {
    /// Close with 1013.
    Disconnect,
    /// Drop the message for that connection.
    DropMessage,
}
