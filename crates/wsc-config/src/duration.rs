//! Durations in the config: an integer (seconds) or a string with a unit (`"500ms"`,
//! `"30s"`, `"5m"`, `"1h"`).
//!
//! Every duration is at most [`MAX`] (365 days). Larger values, negative ones, NaN and
//! infinity are errors at the key that holds them: a timer that far away is a typo, and
//! values past `Duration`'s range would otherwise panic in `Duration::from_secs_f64` or when
//! added to an `Instant`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration any key accepts: 365 days (`8760h`).
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// The error text for a duration over [`MAX`].
fn too_long(value: impl std::fmt::Display) -> String {
    format!("{value} is longer than the maximum of 365 days (8760h)")
}

/// Seconds as a `Duration`, refusing what is negative, not a number, infinite or over
/// [`MAX`] instead of panicking like `Duration::from_secs_f64` would.
fn from_seconds(seconds: f64, shown: impl std::fmt::Display) -> Result<Duration, String> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!(
            "{shown} is not a valid duration (it must be a finite number of seconds, 0 or more)"
        ));
    }
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d <= MAX => Ok(d),
        _ => Err(too_long(shown)),
    }
}

/// Parses `"30"`, `"30s"`, `"500ms"`, `"5m"`, `"1h"`, `"1.5s"` (at most [`MAX`]).
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    // The number may be written with an exponent or a sign (`1e+20` is how YAML numbers
    // arrive); no unit starts with `e`, so the split stays unambiguous.
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (use 30, \"30s\", \"500ms\", \"5m\")"))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m or h)"
            ));
        }
    };
    from_seconds(seconds, format_args!("`{text}`"))
}

/// Formats a duration the way [`parse`] reads it.
pub fn format(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.is_zero() {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Float(f64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(secs) if secs <= MAX.as_secs() => Ok(Duration::from_secs(secs)),
        Raw::Int(secs) => Err(serde::de::Error::custom(too_long(secs))),
        Raw::Float(secs) => from_seconds(secs, secs).map_err(serde::de::Error::custom),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(parse("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse("soon").is_err());
        assert!(parse("5 days").is_err());
        assert_eq!(parse("8760h").unwrap(), MAX);
        assert!(parse("8761h").is_err());
        assert!(parse("99999999999999999999999999h").is_err());
        assert!(parse(&"9".repeat(400)).is_err());
        assert!(parse("1e+20").unwrap_err().contains("365 days"));
        assert!(parse("-5s").unwrap_err().contains("0 or more"));
        assert_eq!(parse("1.5e3ms").unwrap(), Duration::from_millis(1500));
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(30)), "30s");
    }
}
