//! Sizes in the config: an integer means KiB (as in the seed's files, where
//! `max_message_size: 1024` is 1 MiB), or a string with a unit: `"512B"`, `"64KiB"`, `"1MiB"`
//! (`KB`/`MB` are read as KiB/MiB too).

use serde::{Deserialize, Deserializer, Serializer};

/// Parses `"512B"`, `"64KiB"`, `"64KB"`, `"1MiB"`, `"1MB"`, `"1GiB"` or a bare number of KiB.
pub fn parse(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (use 64, \"512B\", \"64KiB\", \"1MiB\")"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "k" | "kb" | "kib" => 1024,
        "b" => 1,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use B, KiB, MiB or GiB)"
            ));
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Formats a byte count the way [`parse`] reads it.
pub fn format(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes != 0 && bytes.is_multiple_of(MIB) {
        format!("{}MiB", bytes / MIB)
    } else if bytes != 0 && bytes.is_multiple_of(1024) {
        format!("{}KiB", bytes / 1024)
    } else {
        format!("{bytes}B")
    }
}

pub(crate) fn serialize<S: Serializer>(bytes: &usize, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*bytes))
}

pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Int(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Int(kib) => usize::try_from(kib)
            .ok()
            .and_then(|k| k.checked_mul(1024))
            .ok_or_else(|| serde::de::Error::custom(format!("{kib} KiB is too large"))),
        Raw::Text(text) => parse(&text).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse("1024").unwrap(), 1024 * 1024);
        assert_eq!(parse("512B").unwrap(), 512);
        assert_eq!(parse("64KiB").unwrap(), 64 * 1024);
        assert_eq!(parse("64kb").unwrap(), 64 * 1024);
        assert_eq!(parse("1MiB").unwrap(), 1024 * 1024);
        assert!(parse("big").is_err());
        assert!(parse("5 parsecs").is_err());
        assert_eq!(format(65536), "64KiB");
        assert_eq!(format(1024 * 1024), "1MiB");
        assert_eq!(format(100), "100B");
    }
}
