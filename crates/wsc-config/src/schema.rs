//! The configuration schema. Keys are snake_case, as in the seed's files.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use wsc_hub::{DecodeLimits, HubConfig, IdentityParams, MultiLoginPolicy, SlowConsumerPolicy};

use crate::duration;

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
    /// The WebSocket hub and its public listener.
    pub wsc: WscConfig,
    /// Logging.
    pub logging: LoggingConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            name: "wsc-gateway".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            environment: "development".to_owned(),
            http: HttpConfig::default(),
            wsc: WscConfig::default(),
            logging: LoggingConfig::default(),
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
    /// Port (0 picks a free one).
    pub port: u16,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            host: "0.0.0.0".to_owned(),
            port: 8080,
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
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: "info".to_owned(),
        }
    }
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
    /// Multi-login policy.
    pub multi_login: MultiLoginConfig,
    /// Inbound limits and handshake checks.
    pub security: SecurityConfig,
    /// Capacity and slow-consumer settings.
    pub performance: PerformanceConfig,
}

impl Default for WscConfig {
    fn default() -> Self {
        WscConfig {
            enabled: true,
            node_ip: "0.0.0.0".to_owned(),
            node_port: 8081,
            path: "/ws".to_owned(),
            heartbeat_interval: Duration::from_secs(30),
            client_timeout: Duration::from_secs(90),
            message_buffer_size: 256,
            websocket_origins: vec!["*".to_owned()],
            multi_login: MultiLoginConfig::default(),
            security: SecurityConfig::default(),
            performance: PerformanceConfig::default(),
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
}

impl Default for MultiLoginConfig {
    fn default() -> Self {
        MultiLoginConfig {
            policy: LoginPolicy::KickOld,
            max_connections_per_user: 3,
        }
    }
}

/// `multi_login.policy`.
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

/// `performance.slow_consumer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlowConsumer {
    /// Close with 1013.
    Disconnect,
    /// Drop the message for that connection.
    DropMessage,
}

/// Inbound limits and handshake checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SecurityConfig {
    /// Largest inbound frame, in bytes (larger frames close the connection with 1009).
    pub max_message_size: usize,
    /// Whether the inbound rate limit applies.
    pub enable_rate_limit: bool,
    /// Inbound frames per connection per second when the rate limit is on.
    pub max_messages_per_second: u32,
    /// User types allowed to connect (empty = any).
    pub allowed_user_types: Vec<String>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            max_message_size: 64 * 1024,
            enable_rate_limit: true,
            max_messages_per_second: 100,
            allowed_user_types: Vec::new(),
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
    /// Outbound queue size per connection, in bytes.
    pub queue_max_bytes: usize,
    /// What happens when a connection's queue is full.
    pub slow_consumer: SlowConsumer,
    /// How long one batched write may take.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
}

impl Default for PerformanceConfig {
    fn default() -> Self {
        PerformanceConfig {
            max_connections_per_node: 10_000,
            queue_max_bytes: 1024 * 1024,
            slow_consumer: SlowConsumer::Disconnect,
            write_timeout: Duration::from_secs(10),
        }
    }
}

impl WscConfig {
    /// The hub settings this configuration describes.
    pub fn hub_config(&self) -> HubConfig {
        let mut hub = HubConfig::default();
        hub.heartbeat_interval = self.heartbeat_interval;
        hub.client_timeout = self.client_timeout;
        hub.queue_capacity = self.message_buffer_size;
        hub.queue_max_bytes = self.performance.queue_max_bytes;
        hub.slow_consumer = match self.performance.slow_consumer {
            SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
            SlowConsumer::DropMessage => SlowConsumerPolicy::DropMessage,
        };
        hub.write_timeout = self.performance.write_timeout;
        hub.multi_login = match self.multi_login.policy {
            LoginPolicy::AllowAll => MultiLoginPolicy::AllowAll,
            LoginPolicy::KickOld => MultiLoginPolicy::KickOld,
            LoginPolicy::KickNew => MultiLoginPolicy::KickNew,
        };
        hub.max_connections_per_user = self.multi_login.max_connections_per_user;
        hub.max_connections = self.performance.max_connections_per_node;
        hub.limits = DecodeLimits {
            max_message_size: self.security.max_message_size,
            ..DecodeLimits::default()
        };
        hub.max_inbound_per_second = if self.security.enable_rate_limit {
            self.security.max_messages_per_second
        } else {
            0
        };
        hub
    }

    /// The identity parameter names (go-wsc's defaults).
    pub fn identity_params(&self) -> IdentityParams {
        IdentityParams::default()
    }
}
