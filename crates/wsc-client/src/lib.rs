//! `wsc-client`: a Rust client for the wsc gateway (docs/clients.md).
//!
//! It connects with an identity or a token, sends typed messages ([`HubMessage`]), keeps
//! the connection alive with JSON pings, acknowledges `require_ack` frames, drops frames it
//! has seen (by `message_id`), and when a connection is lost reconnects with exponential
//! backoff and jitter, resuming after the last `seq_no` it received, so nothing is lost
//! and nothing arrives twice. What arrives is a [`Stream`](futures_util::Stream) of
//! [`ClientEvent`]s.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use wsc_client::{ClientBuilder, ClientEvent, HubMessage, MessageType};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let (client, mut events) = ClientBuilder::new("ws://127.0.0.1:8081/ws")
//!     .user("alice")
//!     .connect()
//!     .await?;
//! let mut typing = HubMessage::new(MessageType::Typing, "");
//! typing.receiver = "bob".to_owned();
//! client.send(&typing).await?;
//! while let Some(event) = events.next().await {
//!     match event {
//!         ClientEvent::Message(msg) => println!("{}: {}", msg.sender, msg.content),
//!         ClientEvent::Disconnected { retry_in: None, reason, .. } => {
//!             println!("stopped: {reason}");
//!         }
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod builder;
mod connect;
mod dedupe;
mod error;
mod session;

pub use builder::ClientBuilder;
pub use error::{ConnectError, SendError};
pub use session::{Client, ClientEvent, Events};
pub use wsc_hub::{HubMessage, MessageType};
