//! [`Error`]: why connecting to Redis or running a command failed, with the URL's password
//! masked so that errors can be logged as they are.

use std::time::Duration;

use redis::{ErrorKind, ServerErrorKind};
use wsc_hub::{BackplaneError, StoreError};

/// Why a Redis operation of this crate failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The options cannot work (an empty key prefix, a zero TTL, a zero pool size).
    #[error("invalid Redis options: {0}")]
    InvalidOptions(String),
    /// The URL could not be parsed.
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl {
        /// The URL, password masked.
        url: String,
        /// What the client library said.
        #[source]
        source: redis::RedisError,
    },
    /// The pool could not be built.
    #[error("cannot build the Redis pool: {0}")]
    Pool(String),
    /// Redis did not answer within the connect timeout.
    #[error("Redis at {url} did not answer within {timeout:?}")]
    Timeout {
        /// The URL, password masked.
        url: String,
        /// The bound that was exceeded.
        timeout: Duration,
    },
    /// No connection could be had (refused, reset, pool exhausted).
    #[error("Redis at {url} is unreachable: {reason}")]
    Unreachable {
        /// The URL, password masked.
        url: String,
        /// What failed.
        reason: String,
    },
    /// An envelope or a message could not be serialized, or a stored one read back.
    #[error("cannot encode or decode: {0}")]
    Codec(String),
    /// Redis answered with an error, or with a reply of an unexpected shape.
    #[error("Redis command failed: {0}")]
    Command(#[from] redis::RedisError),
}

impl From<Error> for BackplaneError {
    fn from(e: Error) -> Self {
        BackplaneError::Unavailable(e.to_string())
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Whether a client error means that Redis cannot be reached right now, rather than an
/// answer Redis gave: a timeout, a lost or refused connection, or a cluster that cannot serve
/// a slot at the moment (redirections that ran out of retries, a shard down or failing
/// over, no connection to the node that owns the slot). A transaction aborted because its
/// slot had moved counts too: the cluster client follows a redirection for a command but
/// not inside `MULTI`.
pub(crate) fn is_unreachable(e: &redis::RedisError) -> bool {
    if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        return true;
    }
    match e.kind() {
        ErrorKind::ClusterConnectionNotFound => true,
        ErrorKind::Server(ServerErrorKind::ExecAbort) => {
            e.clone().into_server_errors().is_some_and(|errors| {
                errors
                    .iter()
                    .any(|(_, error)| topology_changing(error.kind()))
            })
        }
        ErrorKind::Server(kind) => topology_changing(Some(kind)),
        _ => false,
    }
}

/// Whether a server error says that a slot is not served where the client sent the command,
/// or not served at all, for the moment.
fn topology_changing(kind: Option<ServerErrorKind>) -> bool {
    matches!(
        kind,
        Some(
            ServerErrorKind::Moved
                | ServerErrorKind::Ask
                | ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::MasterDown
        )
    )
}

/// The URL with its password (if any) replaced by `***`, for messages and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    // The user info ends at the last '@' before the path: a password may itself hold '@'.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    let user_info = &rest[..at];
    let masked = match user_info.find(':') {
        Some(colon) => format!("{}:***", &user_info[..colon]),
        // `redis://secret@host` puts the password alone before the '@'.
        None => "***".to_owned(),
    };
    format!("{}{}{}", &url[..scheme_end], masked, &rest[at..])
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            redact("redis://:s3cr3t@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            redact("redis://user:p@ss@host/1"),
            "redis://user:***@host/1"
        );
        assert_eq!(redact("redis://token@host"), "redis://***@host");
        assert_eq!(redact("redis://127.0.0.1:6379/"), "redis://127.0.0.1:6379/");
        assert_eq!(redact("not a url"), "not a url");
    }
}
