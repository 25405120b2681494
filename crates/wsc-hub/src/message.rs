//! The message model shared by every route and the wire: [`HubMessage`], [`MessageType`],
//! [`Priority`] and [`Source`].
//!
//! Field names are go-wsc's `HubMessage` JSON keys, so existing front-ends keep working. On
//! input the older keys `type`, `from`, `to` and `msg_id` are accepted as aliases.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// One message as it travels between the hub, the server API and a client.
///
/// Fields that go-wsc always emits are always serialized (as empty strings or zero) so that
/// front-ends written against go-wsc keep finding them; the optional envelope fields are
/// omitted when empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HubMessage {
    /// Hub-level id of this frame. Generated (UUIDv7) by the hub when empty.
    #[serde(deserialize_with = "nullable")]
    pub id: String,
    /// Trace id propagated from the request that produced the message.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub trace_id: String,
    /// What kind of message this is (an open enum: unknown names are preserved).
    #[serde(alias = "type")]
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "text"))]
    pub message_type: MessageType,
    /// User id of the sender; `system` for messages produced by the server. Always stamped
    /// from the authenticated connection for client frames.
    #[serde(alias = "from")]
    #[serde(deserialize_with = "nullable")]
    pub sender: String,
    /// Display name of the sender.
    #[serde(deserialize_with = "nullable")]
    pub sender_name: String,
    /// User type of the sender (`visitor`, `customer`, `agent`, ... or `system`).
    #[serde(deserialize_with = "nullable")]
    pub sender_type: String,
    /// Client (connection) id the message came from.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub sender_client: String,
    /// Target user id.
    #[serde(alias = "to")]
    #[serde(deserialize_with = "nullable")]
    pub receiver: String,
    /// Display name of the receiver.
    #[serde(deserialize_with = "nullable")]
    pub receiver_name: String,
    /// User type of the receiver.
    #[serde(deserialize_with = "nullable")]
    pub receiver_type: String,
    /// When set, the message is meant for this one connection of the receiver only.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub receiver_client: String,
    /// Business session id.
    #[serde(deserialize_with = "nullable")]
    pub session_id: String,
    /// The text body.
    #[serde(deserialize_with = "nullable")]
    pub content: String,
    /// Structured payload. Error frames put their machine code in `data.code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub data: Option<Map<String, Value>>,
    /// Creation time in RFC 3339. Filled by the hub when empty.
    #[serde(deserialize_with = "nullable")]
    pub create_at: String,
    /// Business message id: the acknowledgement and offline-store key.
    #[serde(alias = "msg_id")]
    #[serde(deserialize_with = "nullable")]
    pub message_id: String,
    /// The message this one answers (error frames name the offending frame's `id`).
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub reply_to_msg_id: String,
    /// Per-user sequence number (0 when not assigned).
    #[serde(deserialize_with = "nullable")]
    #[serde(skip_serializing_if = "is_unnumbered")]
    pub seq_no: i64,
    /// Priority; metadata only, ordered `low < normal < high < urgent < critical`.
    #[serde(deserialize_with = "nullable")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "normal"))]
    pub priority: Priority,
    /// Whether the message was delivered live or replayed from the offline store.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub source: Option<Source>,
    /// Application scope; a message with an app id only reaches connections of that app.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub app_id: String,
    /// Namespace (tenant) scope inside the app.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub namespace: String,
    /// Groups this message was routed to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub group_ids: Vec<String>,
    /// Ticket (customer-service conversation) this message belongs to.
    #[serde(skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "nullable")]
    pub ticket_id: String,
    /// Whether the receiver must answer with an `ack` frame naming `message_id`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[serde(deserialize_with = "nullable")]
    pub require_ack: bool,
}

impl HubMessage {
    /// A message of the given type with a text body, sent by `system`.
    ///
    /// ```
    /// use wsc_hub::{HubMessage, MessageType};
    /// let msg = HubMessage::new(MessageType::Notice, "maintenance at 22:00");
    /// assert_eq!(msg.sender, "system");
    /// ```
    pub fn new(message_type: MessageType, content: impl Into<String>) -> Self {
        HubMessage {
            message_type,
            content: content.into(),
            sender: SYSTEM.to_owned(),
            sender_type: SYSTEM.to_owned(),
            ..HubMessage::default()
        }
    }

    /// A `text` message from `system`.
    pub fn text(content: impl Into<String>) -> Self {
        Self::new(MessageType::Text, content)
    }

    /// Sets one key of `data`, creating the map when needed.
    pub fn with_data(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.data
            .get_or_insert_with(Map::new)
            .insert(key.into(), value.into());
        self
    }

    /// Reads one key of `data`.
    pub fn data_value(&self, key: &str) -> Option<&Value> {
        self.data.as_ref()?.get(key)
    }
}

/// A message numbered after encoding leaves `seq_no` out (see [`codec::with_seq`]).
///
/// [`codec::with_seq`]: crate::codec::with_seq
fn is_unnumbered(seq_no: &i64) -> bool {
    *seq_no == crate::codec::UNNUMBERED
}

/// Reads `null` as the field's default, as go-wsc (Go's `encoding/json`) did, so clients
/// that send `"content": null` keep working.
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// The sender name the hub uses for messages it produces itself.
pub const SYSTEM: &str = "system";

/// Message priority. Metadata only (no queueing by priority), but correctly ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// `low`
    Low,
    /// `normal` (the default)
    #[default]
    Normal,
    /// `high`
    High,
    /// `urgent`
    Urgent,
    /// `critical`
    Critical,
}

impl<'de> Deserialize<'de> for Priority {
    /// Unknown names read as `normal`: priority is metadata, and a go-wsc client that sends a
    /// value of its own must not have its message refused for it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(match name.to_ascii_lowercase().as_str() {
            "low" => Priority::Low,
            "high" => Priority::High,
            "urgent" => Priority::Urgent,
            "critical" => Priority::Critical,
            _ => Priority::Normal,
        })
    }
}

/// Whether a message reached the client live or from the offline store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Delivered as it was sent.
    Online,
    /// Replayed from the offline store on reconnect.
    Offline,
}

macro_rules! message_types {
    ($($variant:ident => $name:literal,)*) => {
        /// The `message_type` of a frame: an open string enum.
        ///
        /// go-wsc's names are known variants; any other string is kept as
        /// [`MessageType::Other`] and round-trips unchanged.
        ///
        /// ```
        /// use wsc_hub::MessageType;
        /// assert_eq!(MessageType::parse("typing"), MessageType::Typing);
        /// assert_eq!(MessageType::parse("my_event").as_str(), "my_event");
        /// ```
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum MessageType {
            /// `text` (the default for client frames without a type)
            #[default]
            Text,
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
            /// Any name that is not one of go-wsc's.
            Other(Box<str>),
        }

        impl MessageType {
            /// Every known name, in declaration order.
            pub const KNOWN_NAMES: &'static [&'static str] = &["text", $($name,)*];

            /// The wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    MessageType::Text => "text",
                    $(MessageType::$variant => $name,)*
                    MessageType::Other(name) => name,
                }
            }

            /// Parses a wire name; unknown names become [`MessageType::Other`].
            pub fn parse(name: &str) -> Self {
                match name {
                    "text" => MessageType::Text,
                    $($name => MessageType::$variant,)*
                    other => MessageType::Other(other.into()),
                }
            }
        }
    };
}

message_types! {
    Markdown => "markdown", RichText => "rich_text", Code => "code",
    Image => "image", File => "file", Audio => "audio", Video => "video", Voice => "voice",
    Gif => "gif", Document => "document", Spreadsheet => "spreadsheet",
    Presentation => "presentation",
    System => "system", Notice => "notice", Event => "event", Announcement => "announcement",
    Alert => "alert", Error => "error", Info => "info", Success => "success",
    Warning => "warning", Heartbeat => "heartbeat", Ping => "ping", Pong => "pong",
    BStatusReminder => "b_status_reminder",
    Ack => "ack", Typing => "typing", Read => "read", Delivered => "delivered",
    Recall => "recall", Edit => "edit", Reaction => "reaction",
    Card => "card", Link => "link", Quote => "quote", Command => "command", Task => "task",
    Poll => "poll", Form => "form", Invite => "invite",
    Payment => "payment", Order => "order", Product => "product",
    TicketCreated => "ticket_created", TicketAssigned => "ticket_assigned",
    TicketClosed => "ticket_closed", TicketTimeoutClosed => "ticket_timeout_closed",
    TicketTransfer => "ticket_transfer", TicketActive => "ticket_active",
    SessionCreated => "session_created", SessionClosed => "session_closed",
    SessionQueued => "session_queued", SessionTimeout => "session_timeout",
    SessionPaused => "session_paused", SessionResumed => "session_resumed",
    SessionTransferred => "session_transferred",
    SessionMemberJoined => "session_member_joined",
    SessionMemberLeft => "session_member_left",
    SessionStatusChanged => "session_status_changed",
    CheckUserStatus => "check_user_status", UserStatusResponse => "user_status_response",
    GetOnlineUsers => "get_online_users", OnlineUsersList => "online_users_list",
    GetUserInfo => "get_user_info", UserInfoResponse => "user_info_response",
    UserJoined => "user_joined", UserLeft => "user_left",
    UserStatusChanged => "user_status_changed",
    OpenWindow => "open_window", CloseWindow => "close_window",
    ClientConfig => "client_config", ConfigUpdate => "config_update",
    HealthCheck => "health_check", HealthResponse => "health_response",
    ServerStatus => "server_status", ServerStats => "server_stats",
    Thread => "thread", Reply => "reply",
    Custom => "custom", Unknown => "unknown",
    Location => "location", Emoji => "emoji", Sticker => "sticker", Forward => "forward",
    Json => "json", Xml => "xml", Binary => "binary", Contact => "contact",
    Calendar => "calendar", Mention => "mention", Test => "test", Welcome => "welcome",
    Terminate => "terminate", Transferred => "transferred", SystemQuery => "system_query",
    SystemResponse => "system_response",
    Connected => "connected", ClientRegistered => "client_registered",
    ConnectionRejected => "connection_rejected", Disconnected => "disconnected",
    Reconnected => "reconnected", ConnectionError => "connection_error",
    ConnectionTimeout => "connection_timeout", KickOut => "kick_out",
    ForceOffline => "force_offline", GroupChanged => "group_changed",
    Resume => "resume", Recovered => "recovered",
}

impl MessageType {
    /// `ping` or `heartbeat`: answered with `pong` by the hub itself.
    pub fn is_heartbeat(&self) -> bool {
        matches!(self, MessageType::Ping | MessageType::Heartbeat)
    }

    /// The status types the hub relays to `receiver` on its own (go-wsc's forwardable types
    /// minus `ack`, which the hub consumes).
    pub fn is_forwardable(&self) -> bool {
        matches!(
            self,
            MessageType::Typing
                | MessageType::Read
                | MessageType::Delivered
                | MessageType::Recall
                | MessageType::Edit
                | MessageType::Reaction
                | MessageType::OpenWindow
                | MessageType::CloseWindow
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MessageType {
    fn from(name: &str) -> Self {
        MessageType::parse(name)
    }
}

impl Serialize for MessageType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MessageType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = MessageType;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message type name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageType, E> {
                Ok(if v.is_empty() {
                    MessageType::Text
                } else {
                    MessageType::parse(v)
                })
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The known names against the documented table: tests/protocol_types.rs.

    #[test]
    fn priorities_are_ordered_by_meaning_not_by_spelling() {
        assert!(Priority::Low < Priority::Normal);
        assert!(Priority::High < Priority::Critical);
        assert!(Priority::Urgent > Priority::High);
    }

    #[test]
    fn aliases_are_accepted_on_input() {
        let msg: HubMessage =
            serde_json::from_str(r#"{"type":"typing","from":"a","to":"b","msg_id":"m1"}"#).unwrap();
        assert_eq!(msg.message_type, MessageType::Typing);
        assert_eq!(msg.sender, "a");
        assert_eq!(msg.receiver, "b");
        assert_eq!(msg.message_id, "m1");
    }

    #[test]
    fn nulls_and_unknown_priorities_read_as_defaults() {
        let msg: HubMessage = serde_json::from_str(
            r#"{"content":null,"seq_no":null,"group_ids":null,"priority":"whatever"}"#,
        )
        .unwrap();
        assert_eq!(msg.content, "");
        assert_eq!(msg.seq_no, 0);
        assert_eq!(msg.priority, Priority::Normal);
        let msg: HubMessage = serde_json::from_str(r#"{"priority":"URGENT"}"#).unwrap();
        assert_eq!(msg.priority, Priority::Urgent);
    }
}
