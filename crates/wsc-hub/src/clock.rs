//! Time helpers: RFC 3339 stamps and the hub's monotonic millisecond clock.

use std::time::SystemTime;

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats a wall-clock time as RFC 3339 (UTC).
pub(crate) fn rfc3339(at: SystemTime) -> String {
    OffsetDateTime::from(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The current wall-clock time as RFC 3339.
pub(crate) fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}
