//! [`HubEvent`]: what happened in the hub, with the event names defined once ([`events`]).
//! The `gateway` facade hands them to its named handlers and the gRPC API streams them; both
//! read the same value from the hub.

use serde::Serialize;
use serde_json::Value;

use crate::message::HubMessage;

/// The event names.
pub mod events {
    /// The listeners are bound and serving (emitted by the server or facade).
    pub const WEBSOCKET_STARTED: &str = "websocket.started";
    /// The server stopped and drained (emitted by the server or facade).
    pub const WEBSOCKET_STOPPED: &str = "websocket.stopped";
    /// A connection was admitted (it is reachable by every route).
    pub const CLIENT_CONNECTED: &str = "client.connected";
    /// A connection ended (once per connection, with the reason in `detail`).
    pub const CLIENT_DISCONNECTED: &str = "client.disconnected";
    /// A client message reached the application (after the inbound interceptors and the
    /// relay policy).
    pub const MESSAGE_RECEIVED: &str = "message.received";
    /// A send was routed (the report is in `detail`).
    pub const MESSAGE_SENT: &str = "message.sent";
    /// An acknowledged delivery finally failed (the failure is in `detail`).
    pub const ACK_FAILED: &str = "ack.failed";
    /// A user joined a group (the group is in `detail.group_id`).
    pub const GROUP_JOINED: &str = "group.joined";
    /// A user left a group (the group is in `detail.group_id`).
    pub const GROUP_LEFT: &str = "group.left";
    /// A group was disbanded (`detail.group_id`, and the former `detail.members`).
    pub const GROUP_DISBANDED: &str = "group.disbanded";
    /// A ticket was opened (the ticket is in `detail`).
    pub const TICKET_CREATED: &str = "ticket.created";
    /// A ticket went to an agent, when opened or from the queue (the ticket in `detail`).
    pub const TICKET_ASSIGNED: &str = "ticket.assigned";
    /// A ticket moved to another agent (the ticket in `detail`).
    pub const TICKET_TRANSFERRED: &str = "ticket.transferred";
    /// A ticket closed, by a call or its timeout (`detail.close_reason` says which).
    pub const TICKET_CLOSED: &str = "ticket.closed";
    /// Every event name.
    pub const ALL: [&str; 14] = [
        WEBSOCKET_STARTED,
        WEBSOCKET_STOPPED,
        CLIENT_CONNECTED,
        CLIENT_DISCONNECTED,
        MESSAGE_RECEIVED,
        MESSAGE_SENT,
        ACK_FAILED,
        GROUP_JOINED,
        GROUP_LEFT,
        GROUP_DISBANDED,
        TICKET_CREATED,
        TICKET_ASSIGNED,
        TICKET_TRANSFERRED,
        TICKET_CLOSED,
    ];
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HubEvent {
    /// The event name (see [`events`]).
    pub name: &'static str,
    /// The user concerned, when there is one.
    pub user_id: String,
    /// The connection concerned, when there is one.
    pub client_id: String,
    /// The message, for message and ack events.
    pub message: Option<HubMessage>,
    /// Event details as JSON (the disconnect reason, the delivery report, the ack failure).
    pub detail: Value,
}

impl HubEvent {
    /// An event with a name and nothing else (fill the fields you need).
    pub fn new(name: &'static str) -> Self {
        HubEvent {
            name,
            user_id: String::new(),
            client_id: String::new(),
            message: None,
            detail: Value::Null,
        }
    }
}
