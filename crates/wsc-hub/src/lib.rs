//! `wsc-hub`: a transport-agnostic WebSocket hub.
//!
//! The hub owns the connections of one node: who they are ([`Identity`]), how to reach them
//! (by user, ticket, group, connection or everyone), the wire codec (go-wsc compatible JSON,
//! see [`HubMessage`]), presence, exact stats and callback chains. It knows nothing of web
//! frameworks or config files: a transport registers a connection with [`Hub::register`]
//! and drives the returned [`Registration`]. The `tungstenite` feature (on by default) adds
//! [`tungstenite::serve`] for any `tokio_tungstenite::WebSocketStream`; [`sse::serve`] serves
//! a connection as server-sent events through two channels, for any HTTP layer.
//!
//! ```
//! use wsc_hub::{Hub, HubConfig, HubMessage, Identity, Outbound};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let hub = Hub::new(HubConfig::default());
//! hub.start();
//! let mut phone = hub.register(Identity::new("alice").with_device_id("phone")).await.unwrap();
//! let report = hub.send_to_user("alice", HubMessage::text("hello")).await.unwrap();
//! assert_eq!(report.delivered, 1);
//! let Some(Outbound::Message(frame)) = phone.recv().await else { panic!() };
//! assert!(frame.as_str().contains("hello"));
//! # }
//! ```

mod ack;
mod backplane;
mod callbacks;
mod clock;
mod close;
pub mod codec;
mod config;
mod connection;
mod event;
mod fast_hash;
mod groups;
mod history;
mod hub;
mod identity;
#[cfg(feature = "tungstenite")]
mod inbound_meter;
mod membership;
mod memory_backplane;
pub mod message;
mod offline;
mod outbound_queue;
mod registry;
mod report;
mod route;
pub mod sse;
mod stats;
mod tickets;
pub mod transport;
#[cfg(feature = "tungstenite")]
pub mod tungstenite;
#[cfg(feature = "tungstenite")]
mod ws_frames;

pub use backplane::{Backplane, BackplaneError, Envelope, LocalOnly, Recipient, UserPage};
pub use callbacks::{BoxFuture, CallbackError, ErrorEvent};
pub use codec::{DecodeLimits, FrameError, Payload};
pub use config::{HubConfig, MultiLoginPolicy, RelayPolicy, SlowConsumerPolicy, default_node_id};
pub use connection::{Connection, ConnectionId, ConnectionInfo, DisconnectReason, Outbound};
pub use event::{HubEvent, events};
pub use groups::{GroupError, GroupLimits, GroupStore, JoinOutcome, MemoryGroups};
pub use history::{
    HistoryStore, MemoryHistory, NewEntry, Recovery, Window, WindowEntry, WindowLimits,
};
pub use hub::{BroadcastOptions, Hub, Registration, UserPresence, error_code};
pub use identity::{
    DEFAULT_USER_TYPE, Identity, IdentityError, IdentityParams, MAX_IDENTITY_LEN, ParamName,
};
pub use membership::MembershipKind;
pub use memory_backplane::MemoryBackplane;
pub use message::{HubMessage, MessageType, Priority, Source};
pub use offline::{MemoryOfflineStore, OfflineStore, StoreError};
pub use report::{
    AckFailure, AckOutcome, AckReport, AckStatus, DeliveryFailure, DeliveryReport, FailureReason,
    InvalidId, KickReport, RegisterError, SendError,
};
pub use route::{Route, Target};
pub use stats::{HubStats, LATENCY_BUCKETS_US, LatencyHistogram};
pub use tickets::{
    AgentLoad, AgentProfile, CLOSED_RETENTION_MS, MemoryTickets, NewTicket, Ticket, TicketChange,
    TicketError, TicketState, TicketStore,
};
