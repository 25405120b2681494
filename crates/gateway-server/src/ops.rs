//! Argument rules shared by the REST and gRPC APIs, so both accept and refuse the same
//! values: the ack settings of a send and the paging of the online users. Each surface maps
//! [`ArgError`] to its own error shape (`400 invalid_*` / `INVALID_ARGUMENT`).

use std::time::Duration;

use wsc_hub::HubConfig;

/// Longest ack timeout a caller may ask for.
pub(crate) const MAX_ACK_TIMEOUT_MS: u64 = 300_000;

/// Longest a caller may wait for acks in all: `timeout_ms` × (`retries` + 1).
pub(crate) const MAX_ACK_WAIT_MS: u64 = 300_000;

/// Most users returned by one page.
pub(crate) const MAX_PAGE: usize = 1000;

/// Users in a page when the caller names no limit.
pub(crate) const DEFAULT_PAGE: usize = 100;

/// An argument outside its allowed range; the text names the field and the range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct ArgError(pub(crate) String);

/// The timeout and resends of an acknowledged send: each defaults to the configuration when
/// absent; a timeout must be between 1 ms and [`MAX_ACK_TIMEOUT_MS`], and the whole wait
/// (timeout × attempts) at most [`MAX_ACK_WAIT_MS`].
pub(crate) fn ack_settings(
    config: &HubConfig,
    timeout_ms: Option<u64>,
    retries: Option<u32>,
) -> Result<(Duration, u32), ArgError> {
    let timeout = match timeout_ms {
        None => config.ack_timeout,
        Some(ms) if ms == 0 || ms > MAX_ACK_TIMEOUT_MS => {
            return Err(ArgError(format!(
                "`ack.timeout_ms` must be between 1 and {MAX_ACK_TIMEOUT_MS}"
            )));
        }
        Some(ms) => Duration::from_millis(ms),
    };
    let retries = retries.unwrap_or(config.ack_retries);
    let wait = timeout.saturating_mul(retries.saturating_add(1));
    if wait > Duration::from_millis(MAX_ACK_WAIT_MS) {
        return Err(ArgError(format!(
            "the ack wait (timeout {} ms x {} attempts) must be at most {MAX_ACK_WAIT_MS} ms",
            timeout.as_millis(),
            u64::from(retries) + 1
        )));
    }
    Ok((timeout, retries))
}

/// The size of a page of online users: [`DEFAULT_PAGE`] when the caller names none,
/// otherwise between 1 and [`MAX_PAGE`].
pub(crate) fn page_limit(limit: Option<usize>) -> Result<usize, ArgError> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(ArgError(format!("limit must be between 1 and {MAX_PAGE}"))),
        limit if limit > MAX_PAGE => {
            Err(ArgError(format!("limit must be between 1 and {MAX_PAGE}")))
        }
        limit => Ok(limit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_settings_default_to_the_configuration_and_bound_the_timeout() {
        let config = HubConfig::default();
        assert_eq!(
            ack_settings(&config, None, None),
            Ok((config.ack_timeout, config.ack_retries))
        );
        assert_eq!(
            ack_settings(&config, Some(250), Some(0)),
            Ok((Duration::from_millis(250), 0))
        );
        assert!(ack_settings(&config, Some(0), None).is_err());
        assert!(ack_settings(&config, Some(MAX_ACK_TIMEOUT_MS + 1), None).is_err());
        // The whole wait is bounded too, so a send always ends within the route's timeout.
        assert!(ack_settings(&config, Some(100_000), Some(2)).is_ok());
        assert!(ack_settings(&config, Some(100_000), Some(3)).is_err());
        assert!(ack_settings(&config, Some(1), Some(u32::MAX)).is_err());
    }

    #[test]
    fn page_sizes_default_and_are_bounded() {
        assert_eq!(page_limit(None), Ok(DEFAULT_PAGE));
        assert_eq!(page_limit(Some(1)), Ok(1));
        assert_eq!(page_limit(Some(MAX_PAGE)), Ok(MAX_PAGE));
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(MAX_PAGE + 1)).is_err());
    }
}
