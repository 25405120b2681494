//! [`HubConfig`]: the hub's own settings, as plain data. The `wsc-config` crate maps the
//! configuration file onto it; embedders build it in code.

use std::time::Duration;

use crate::codec::DecodeLimits;

/// What happens when a user already has `max_connections_per_user` connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum MultiLoginPolicy {
    /// Every connection coexists; the per-user maximum is not enforced.
    AllowAll,
    /// The oldest connection receives `force_offline` and is closed (1008).
    #[default]
    KickOld,
    /// The new connection is refused.
    KickNew,
}

/// What happens when a connection's outbound queue is full.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SlowConsumerPolicy {
    /// Close the connection with 1013 so that the client reconnects and catches up.
    #[default]
    Disconnect,
    /// Drop the message for that connection and count it.
    DropMessage,
}

/// The hub's settings. Every field has a sane default.
///
/// ```
/// use std::time::Duration;
/// use wsc_hub::HubConfig;
/// let mut config = HubConfig::default();
/// config.client_timeout = Duration::from_secs(60);
/// assert_eq!(config.heartbeat_interval, Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HubConfig {
    /// This node's id; unique per process (a random suffix is added by default).
    pub node_id: String,
    /// How often the server pings every connection.
    pub heartbeat_interval: Duration,
    /// A connection that sends nothing (no frame, no pong) for this long is closed.
    pub client_timeout: Duration,
    /// Outbound queue length per connection, in messages.
    pub queue_capacity: usize,
    /// Outbound queue size per connection, in bytes.
    pub queue_max_bytes: usize,
    /// What to do when a queue is full.
    pub slow_consumer: SlowConsumerPolicy,
    /// How long one batched write may take before the connection counts as a slow consumer.
    pub write_timeout: Duration,
    /// Multi-login policy.
    pub multi_login: MultiLoginPolicy,
    /// Connections allowed per user (0 = unlimited).
    pub max_connections_per_user: usize,
    /// Connections allowed on this node (0 = unlimited).
    pub max_connections: usize,
    /// Inbound frame limits.
    pub limits: DecodeLimits,
    /// Inbound frames allowed per connection per second (0 = unlimited); above it the
    /// connection is closed with 1008.
    pub max_inbound_per_second: u32,
    /// Inbound bytes allowed per connection per second (0 = unlimited); above it the
    /// connection is closed with 1008.
    pub max_inbound_bytes_per_second: usize,
    /// WebSocket read buffer per connection, in bytes (the main cost of an idle connection).
    pub read_buffer_size: usize,
    /// WebSocket write buffer per connection, in bytes: for the pong and close replies the
    /// WebSocket library writes itself (messages are written straight from their payloads).
    pub write_buffer_size: usize,
    /// Whether the hub relays the status types (`typing`, `read`, ...) to `receiver`.
    pub relay_status_messages: bool,
    /// Message text of the `force_offline` frame sent by the multi-login policy.
    pub kick_notification: String,
    /// How many frames the writer batches into one flush.
    pub write_batch: usize,
    /// Deliveries waiting for an ack, per connection (0 = unlimited).
    pub max_pending_acks: usize,
    /// Default ack timeout for callers that give none (the server API).
    pub ack_timeout: Duration,
    /// Default resends after the first attempt for callers that give none.
    pub ack_retries: u32,
    /// Whether undeliverable messages go to the offline store.
    pub offline_enabled: bool,
    /// Offline messages kept per user by the in-memory store (oldest dropped first).
    pub offline_max_per_user: usize,
    /// How long the in-memory store keeps an offline message.
    pub offline_ttl: Duration,
    /// Offline messages the in-memory store keeps for all users together; when full, the
    /// oldest message of the whole store is dropped first.
    pub offline_max_total: usize,
    /// Messages per user kept for resume (0 = no resume window).
    pub history_size: usize,
    /// How long a message stays in the resume window.
    pub history_ttl: Duration,
    /// Largest serialized outbound message, in bytes. A send of a larger message fails with
    /// [`SendError::TooLarge`](crate::SendError::TooLarge) before anything is queued or
    /// stored, and every transport's write buffer fits one message of this size.
    pub max_outbound_message_size: usize,
    /// Ticket ids one connection may bind at connect (0 = unlimited).
    pub max_ticket_ids: usize,
    /// Group ids one connection may join at connect (0 = unlimited).
    pub max_group_ids: usize,
    /// Members one group may have through [`Hub::join_group`](crate::Hub::join_group)
    /// (0 = unlimited).
    pub max_group_size: usize,
    /// Groups one user may belong to through [`Hub::join_group`](crate::Hub::join_group)
    /// (0 = unlimited).
    pub max_groups_per_user: usize,
    /// Tickets one agent takes at most (its capacity when it becomes available).
    pub max_tickets_per_agent: usize,
    /// Whether a new ticket goes to the least-loaded agent with room (and queued tickets to
    /// agents as they get room); without it tickets wait for a transfer.
    pub ticket_auto_assign: bool,
    /// An open ticket without activity for this long is closed (`Duration::ZERO`: never).
    pub ticket_timeout: Duration,
    /// User types whose connections are agents that take tickets.
    pub agent_types: Vec<String>,
    /// Messages of a ticket kept for an agent who takes it (assigned from the queue or
    /// transferred); 0 keeps none.
    pub ticket_history_size: usize,
    /// Whether connections of `observer_types` get copies of the traffic in their scope.
    pub observers_enabled: bool,
    /// User types whose connections are observers (they must be allowed to connect too).
    pub observer_types: Vec<String>,
    /// Whether clients may open (`ticket_created`), close (`ticket_closed`) and transfer
    /// (`ticket_transfer`) tickets with frames; off, those frames go to the callbacks.
    pub ticket_client_requests: bool,
    /// Relay of client messages that name a ticket, group or user.
    pub relay: RelayPolicy,
}

/// Relay of client messages that name a target: a message with a `ticket_id` reaches that
/// ticket when the sender is bound to it, one with `group_ids` reaches the first group when
/// the sender's user is a member, and one with only a `receiver` reaches that user when the
/// sender's user type is in `user_targets`. A message the policy refuses gets an error frame
/// `rejected`; the message-received callbacks run after a relay either way.
///
/// Status frames (`typing`, `read`, ...) are relayed by [`HubConfig::relay_status_messages`]
/// instead.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayPolicy {
    /// Whether client messages that name a target are relayed (off by default).
    pub enabled: bool,
    /// User types that may address users directly with `receiver`.
    pub user_targets: Vec<String>,
}

impl Default for RelayPolicy {
    fn default() -> Self {
        RelayPolicy {
            enabled: false,
            user_targets: vec!["agent".to_owned(), "admin".to_owned()],
        }
    }
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            node_id: default_node_id(),
            heartbeat_interval: Duration::from_secs(30),
            client_timeout: Duration::from_secs(90),
            queue_capacity: 256,
            queue_max_bytes: 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Disconnect,
            write_timeout: Duration::from_secs(10),
            multi_login: MultiLoginPolicy::KickOld,
            max_connections_per_user: 3,
            max_connections: 10_000,
            limits: DecodeLimits::default(),
            max_inbound_per_second: 100,
            max_inbound_bytes_per_second: 1024 * 1024,
            read_buffer_size: 1024,
            write_buffer_size: 4 * 1024,
            relay_status_messages: true,
            kick_notification: "your account signed in on another device".to_owned(),
            write_batch: 64,
            max_pending_acks: 1000,
            ack_timeout: Duration::from_secs(5),
            ack_retries: 3,
            offline_enabled: true,
            offline_max_per_user: 100,
            offline_ttl: Duration::from_secs(7 * 24 * 3600),
            offline_max_total: 100_000,
            history_size: 32,
            history_ttl: Duration::from_secs(120),
            max_outbound_message_size: 1024 * 1024,
            max_ticket_ids: 32,
            max_group_ids: 32,
            max_group_size: 10_000,
            max_groups_per_user: 100,
            max_tickets_per_agent: 5,
            ticket_auto_assign: true,
            ticket_timeout: Duration::from_secs(30 * 60),
            agent_types: vec!["agent".to_owned()],
            ticket_history_size: 50,
            ticket_client_requests: true,
            observers_enabled: true,
            observer_types: vec!["observer".to_owned()],
            relay: RelayPolicy::default(),
        }
    }
}

/// A node id unique per process, even for several processes on one host:
/// `<host>-<pid>-<random>`.
pub fn default_node_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_owned());
    let random = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &random[random.len() - 6..]
    )
}
