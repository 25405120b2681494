//! What a send returns: [`DeliveryReport`], and the errors of each operation.

use serde::Serialize;

use crate::identity::IdentityError;

/// The outcome of one send.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryReport {
    /// The message's `message_id` (generated when the caller left it empty).
    pub message_id: String,
    /// Connections on this node whose queue accepted the message.
    pub delivered: usize,
    /// Nodes the message was routed to (this node counts when it had a recipient).
    pub nodes: usize,
    /// Whether the message went to the offline store.
    pub stored_offline: bool,
    /// Connections that did not get the message, with why.
    pub failures: Vec<DeliveryFailure>,
}

/// One connection that did not receive a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryFailure {
    /// Its client id.
    pub client_id: String,
    /// Its user.
    pub user_id: String,
    /// Why.
    pub reason: FailureReason,
}

/// Why one connection did not receive a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum FailureReason {
    /// Its queue was full and the message was dropped (policy `drop_message`).
    QueueFull,
    /// Its queue was full and it was disconnected (policy `disconnect`, close 1013).
    SlowConsumerDisconnected,
    /// It was already closing.
    ConnectionClosed,
}

/// Why a send failed as a whole.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The hub is not running (not started yet, or stopped).
    #[error("the hub is not running")]
    NotRunning,
    /// The target id is empty or otherwise unusable.
    #[error("invalid target: {0}")]
    InvalidTarget(&'static str),
    /// The message could not be serialized.
    #[error("message could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    /// An outbound interceptor refused the message.
    #[error("rejected: {0}")]
    Rejected(String),
    /// An acknowledged delivery with this `message_id` to this target is already waiting.
    #[error("message_id {0} is already waiting for an ack")]
    DuplicateMessageId(String),
    /// The serialized message exceeds [`HubConfig::max_outbound_message_size`](crate::HubConfig::max_outbound_message_size).
    #[error("message too large: {size} bytes serialized, at most {limit} allowed")]
    TooLarge {
        /// The serialized size.
        size: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// The other nodes could not be reached (the backplane failed) and no connection of this
    /// node nor the offline store took the message: it reached nobody.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

impl From<InvalidId> for SendError {
    fn from(e: InvalidId) -> Self {
        SendError::InvalidTarget(e.0)
    }
}

/// An id argument (user, group, ticket, client id) that is empty, blank or contains control
/// characters. Every hub operation that takes an id refuses such a value with this error
/// (sends with [`SendError::InvalidTarget`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid target: {0} must be a non-blank id without control characters")]
pub struct InvalidId(pub &'static str);

impl InvalidId {
    /// Stable machine code (the same as [`SendError::InvalidTarget`]'s).
    pub fn code(&self) -> &'static str {
        "invalid_target"
    }

    /// Checks one id argument; `what` names it in the error (`"user_id"`, `"group_id"`, ...).
    pub fn check(value: &str, what: &'static str) -> Result<(), InvalidId> {
        if value.trim().is_empty() || value.chars().any(char::is_control) {
            Err(InvalidId(what))
        } else {
            Ok(())
        }
    }
}

impl SendError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            SendError::NotRunning => "not_running",
            SendError::InvalidTarget(_) => "invalid_target",
            SendError::Encode(_) => "encode_failed",
            SendError::DuplicateMessageId(_) => "duplicate_message_id",
            SendError::Rejected(_) => "rejected",
            SendError::TooLarge { .. } => "message_too_large",
            SendError::Unavailable(_) => "unavailable",
        }
    }
}

/// Why a connection could not register.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The hub is not running.
    #[error("the hub is not running")]
    NotRunning,
    /// The identity is missing or invalid.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// This node already holds its maximum of connections.
    #[error("node is full ({limit} connections); try another node or later")]
    NodeFull {
        /// The configured limit.
        limit: usize,
    },
    /// The user already holds its maximum of connections and the policy is `kick_new`.
    #[error("user already has {limit} connections")]
    UserConnectionLimit {
        /// The configured limit.
        limit: usize,
    },
    /// The client id is in use by a live connection of another user.
    #[error("client_id is in use by another user's connection")]
    ClientIdInUse,
    /// A connect callback refused the connection.
    #[error("connection rejected: {0}")]
    Rejected(String),
}

impl RegisterError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            RegisterError::NotRunning => "shutting_down",
            RegisterError::Identity(e) => e.code(),
            RegisterError::NodeFull { .. } => "node_full",
            RegisterError::UserConnectionLimit { .. } => "user_connection_limit",
            RegisterError::ClientIdInUse => "client_id_in_use",
            RegisterError::Rejected(_) => "rejected",
        }
    }
}

/// The outcome of a kick.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KickReport {
    /// Connections closed on this node (other nodes close theirs when the backplane
    /// delivers the kick).
    pub kicked: usize,
}

/// The outcome of an acknowledged send: one entry per user (user sends) or per connection
/// (ticket, group and connection sends).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckReport {
    /// The message id every attempt carried.
    pub message_id: String,
    /// One outcome per target.
    pub outcomes: Vec<AckOutcome>,
}

impl AckReport {
    /// Whether every target acknowledged.
    pub fn all_acked(&self) -> bool {
        !self.outcomes.is_empty()
            && self
                .outcomes
                .iter()
                .all(|o| matches!(o.status, AckStatus::Acked { .. }))
    }
}

/// The outcome for one target of an acknowledged send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AckOutcome {
    /// The user id (user sends) or client id (per-connection sends).
    pub target: String,
    /// What happened.
    #[serde(flatten)]
    pub status: AckStatus,
    /// Deliveries attempted (the first send plus resends).
    pub attempts: u32,
}

/// What happened to one target of an acknowledged send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum AckStatus {
    /// A connection acknowledged it.
    Acked {
        /// The connection that acknowledged.
        client_id: String,
    },
    /// No ack after every attempt, and no offline store to keep it.
    TimedOut,
    /// Not acknowledged live (offline, or timed out); kept in the offline store for replay.
    StoredOffline,
    /// The target was offline and there is no offline store (or storing failed).
    Offline,
}

/// Why an acknowledged delivery finally failed (the `on_ack_failed` callbacks get it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct AckFailure {
    /// The user id or client id.
    pub target: String,
    /// Attempts made.
    pub attempts: u32,
    /// Whether the message went to the offline store.
    pub stored_offline: bool,
}
