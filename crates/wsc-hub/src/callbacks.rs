//! Callback chains. Each chain runs its callbacks in registration order.
//!
//! - connect: async; the first error stops the chain and rejects the connection (the client
//!   gets a close frame, 1008, carrying the error text).
//! - message received: async; awaited in the connection's read loop, so one connection's
//!   frames are handled in order. The first error stops the chain; the client gets an error
//!   frame with code `rejected`.
//! - registered (after the admission: the connection is reachable), disconnect, message
//!   sent, error, ack failed: sync and infallible; all run.
//!
//! - interceptors, inbound (client frames, after the sender is stamped and before relay and
//!   the message-received callbacks) and outbound (every send, before it is serialized):
//!   sync; each may modify the message; the first error rejects it (inbound: error frame
//!   `rejected`; outbound: `SendError::Rejected`).
//!
//! Callbacks never run while the hub holds a lock, so they may call back into the hub.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::codec::FrameError;
use crate::connection::{Connection, DisconnectReason};
use crate::message::HubMessage;
use crate::report::{AckFailure, DeliveryReport};

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// The error a connect or message-received callback returns to refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CallbackError(pub String);

impl From<&str> for CallbackError {
    fn from(s: &str) -> Self {
        CallbackError(s.to_owned())
    }
}

impl From<String> for CallbackError {
    fn from(s: String) -> Self {
        CallbackError(s)
    }
}

/// Something that went wrong, reported to the error chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorEvent {
    /// A client frame was refused (the client got an error frame).
    InvalidFrame(FrameError),
    /// A connection's queue overflowed.
    SlowConsumer,
    /// A callback refused a connection or a message.
    CallbackRejected(String),
}

pub(crate) type ConnectFn =
    dyn Fn(Arc<Connection>) -> BoxFuture<Result<(), CallbackError>> + Send + Sync;
pub(crate) type ReceivedFn =
    dyn Fn(Arc<Connection>, Arc<HubMessage>) -> BoxFuture<Result<(), CallbackError>> + Send + Sync;
pub(crate) type DisconnectFn = dyn Fn(&Connection, &DisconnectReason) + Send + Sync;
pub(crate) type RegisteredFn = dyn Fn(&Connection) + Send + Sync;
pub(crate) type SentFn = dyn Fn(&HubMessage, &DeliveryReport) + Send + Sync;
pub(crate) type ErrorFn = dyn Fn(Option<&Connection>, &ErrorEvent) + Send + Sync;
pub(crate) type AckFailedFn = dyn Fn(&HubMessage, &AckFailure) + Send + Sync;
pub(crate) type InboundFn =
    dyn Fn(&Connection, &mut HubMessage) -> Result<(), CallbackError> + Send + Sync;
pub(crate) type EventFn = dyn Fn(&crate::event::HubEvent) + Send + Sync;
pub(crate) type OutboundFn = dyn Fn(&mut HubMessage) -> Result<(), CallbackError> + Send + Sync;

/// One chain: a list that is copied out before running, so no lock is held during a call.
pub(crate) struct Chain<F: ?Sized>(RwLock<Vec<Arc<F>>>);

impl<F: ?Sized> Default for Chain<F> {
    fn default() -> Self {
        Chain(RwLock::new(Vec::new()))
    }
}

impl<F: ?Sized> Chain<F> {
    pub(crate) fn push(&self, f: Arc<F>) {
        self.0.write().push(f);
    }

    pub(crate) fn snapshot(&self) -> Vec<Arc<F>> {
        self.0.read().clone()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.read().is_empty()
    }
}

#[derive(Default)]
pub(crate) struct Callbacks {
    pub(crate) connect: Chain<ConnectFn>,
    pub(crate) received: Chain<ReceivedFn>,
    pub(crate) registered: Chain<RegisteredFn>,
    pub(crate) disconnect: Chain<DisconnectFn>,
    pub(crate) sent: Chain<SentFn>,
    pub(crate) error: Chain<ErrorFn>,
    pub(crate) ack_failed: Chain<AckFailedFn>,
    pub(crate) inbound: Chain<InboundFn>,
    pub(crate) outbound: Chain<OutboundFn>,
    pub(crate) event: Chain<EventFn>,
}
