//! The client's errors: why a connection attempt failed ([`ConnectError`], which also says
//! whether trying again can help) and why a frame could not be handed over ([`SendError`]).

/// A connection attempt that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` or `wss://` URL.
    #[error("invalid URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The TLS settings could not be used (a CA file that is not PEM, for example).
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The server answered the handshake with an HTTP error (the body's `error` code and
    /// `message`, see docs/protocol.md section 2).
    #[error("the server refused the connection: {status} {code}: {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The machine code (`missing_user_id`, `invalid_token`, `node_full`, ...).
        code: String,
        /// The human-readable message.
        message: String,
    },
    /// The server could not be reached, or the connection broke during the handshake.
    #[error("could not connect: {0}")]
    Io(String),
    /// No answer within the connect timeout.
    #[error("no answer within {0:?}")]
    Timeout(std::time::Duration),
}

impl ConnectError {
    /// Whether another attempt may succeed without a change on the client's side: network
    /// errors, timeouts, `408`, `429` and `5xx` (a full or stopping node). Refusals of the
    /// identity, token or origin are final.
    pub fn is_retryable(&self) -> bool {
        match self {
            ConnectError::Io(_) | ConnectError::Timeout(_) => true,
            ConnectError::Refused { status, .. } => {
                matches!(status, 408 | 429) || (500..600).contains(status)
            }
            ConnectError::InvalidUrl { .. } | ConnectError::Tls(_) => false,
        }
    }
}

/// A frame that could not be handed to the connection.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The client was closed, or gave up reconnecting.
    #[error("the client is closed")]
    Closed,
    /// The message could not be serialized.
    #[error("the message cannot be serialized: {0}")]
    Encode(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(status: u16) -> ConnectError {
        ConnectError::Refused {
            status,
            code: "x".to_owned(),
            message: "y".to_owned(),
        }
    }

    #[test]
    fn only_transient_failures_are_retried() {
        assert!(ConnectError::Io("reset".to_owned()).is_retryable());
        for status in [408, 429, 503] {
            assert!(refused(status).is_retryable(), "{status}");
        }
        for status in [400, 401, 403, 409] {
            assert!(!refused(status).is_retryable(), "{status}");
        }
        assert!(!ConnectError::Tls("bad".to_owned()).is_retryable());
    }
}
