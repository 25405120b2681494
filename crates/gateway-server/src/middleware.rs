//! Upgrade middlewares: application code that runs in the `/ws` upgrade after the identity
//! was read and before it is checked ([`UpgradeMiddleware`]), what it sees
//! ([`UpgradeRequest`]) and how it refuses ([`UpgradeRejection`]).

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode};

/// What an upgrade middleware sees of the request.
#[derive(Debug)]
#[non_exhaustive]
pub struct UpgradeRequest<'a> {
    /// The request URI (path and query).
    pub uri: &'a axum::http::Uri,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The peer address.
    pub peer: SocketAddr,
}

/// An upgrade middleware's refusal: answered as an HTTP error with a JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRejection {
    /// HTTP status (for example 401 or 403).
    pub status: StatusCode,
    /// Stable machine code (`error` in the body).
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl UpgradeRejection {
    /// A refusal with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        UpgradeRejection {
            status,
            code,
            message: message.into(),
        }
    }
}

/// An upgrade middleware: runs in registration order after the identity was read (from
/// the token, or the query, headers and cookies) and before it is checked; it may read the
/// request, change or complete the identity, or refuse the upgrade.
pub type UpgradeMiddleware = std::sync::Arc<
    dyn Fn(&UpgradeRequest<'_>, &mut wsc_hub::Identity) -> Result<(), UpgradeRejection>
        + Send
        + Sync,
>;
