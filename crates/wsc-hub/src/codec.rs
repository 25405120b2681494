//! The wire codec: one JSON object per text frame.
//!
//! [`decode`] turns any inbound frame into either a [`HubMessage`] or a typed [`FrameError`]
//! (never a panic). [`encode`] serializes a message once into a [`Payload`] that every
//! recipient shares (cloning it is a reference-count bump).

use bytes::Bytes;
use serde_json::{Map, Value};

use crate::message::{HubMessage, MessageType, SYSTEM};

/// Limits applied to inbound frames before they are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted frame in bytes.
    pub max_message_size: usize,
    /// Deepest accepted nesting of JSON objects and arrays.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_size: 64 * 1024,
            max_depth: 32,
        }
    }
}

/// Why an inbound frame was not accepted. Each variant has a stable [`code`](Self::code)
/// that clients can match on; the `Display` text is the human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The text is not JSON at all.
    #[error("frame is not valid JSON: {0}")]
    NotJson(String),
    /// Valid JSON, but not an object (`null`, an array, a number, a string, a bool).
    #[error("frame must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Objects or arrays nested deeper than the limit.
    #[error("frame nests deeper than {0} levels")]
    TooDeep(usize),
    /// The frame is larger than the limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the offending frame.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// A text frame whose payload is not valid UTF-8.
    #[error("text frame is not valid UTF-8")]
    InvalidUtf8,
    /// A binary frame; the protocol only uses text frames.
    #[error("binary frames are not supported; send JSON text frames")]
    BinaryNotSupported,
    /// A JSON object whose known fields have the wrong type.
    #[error("invalid message field: {0}")]
    InvalidField(String),
    /// An `ack` frame without a `message_id`, or naming no pending delivery.
    #[error("unknown ack: {0}")]
    UnknownAck(String),
    /// A relayed status frame without `receiver`.
    #[error("{0} frames need a receiver")]
    MissingReceiver(String),
    /// The relay policy does not allow this sender to address that receiver.
    #[error("relay to {0} is not allowed")]
    RelayDenied(String),
    /// A message-received callback refused the frame.
    #[error("rejected: {0}")]
    Rejected(String),
    /// A ticket request frame (`ticket_created`, `ticket_closed`, `ticket_transfer`) was
    /// refused; the code is the ticket error's (`ticket_not_found`, `agent_full`, ...).
    #[error("{0}")]
    Ticket(crate::tickets::TicketError),
}

impl FrameError {
    /// The stable machine code sent as `data.code` in the error frame.
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::NotJson(_) => "invalid_json",
            FrameError::NotAnObject(_) => "not_an_object",
            FrameError::TooDeep(_) => "too_deep",
            FrameError::TooLarge { .. } => "too_large",
            FrameError::InvalidUtf8 => "invalid_utf8",
            FrameError::BinaryNotSupported => "binary_not_supported",
            FrameError::InvalidField(_) => "invalid_message",
            FrameError::UnknownAck(_) => "unknown_ack",
            FrameError::MissingReceiver(_) => "missing_receiver",
            FrameError::RelayDenied(_) => "relay_denied",
            FrameError::Rejected(_) => "rejected",
            FrameError::Ticket(e) => e.code(),
        }
    }

    /// The error frame the client receives for this error.
    ///
    /// `reply_to` is the offending frame's `id` when it had one.
    pub fn to_message(&self, reply_to: &str) -> HubMessage {
        let mut data = Map::new();
        data.insert("code".to_owned(), Value::from(self.code()));
        HubMessage {
            message_type: MessageType::Error,
            sender: SYSTEM.to_owned(),
            sender_type: SYSTEM.to_owned(),
            content: self.to_string(),
            reply_to_msg_id: reply_to.to_owned(),
            data: Some(data),
            ..HubMessage::default()
        }
    }
}

/// A serialized message, shared by every recipient.
///
/// The bytes are always valid UTF-8 JSON because only [`encode`] builds a `Payload`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload(Bytes);

impl Payload {
    /// A payload from JSON text kept elsewhere (a shared store, another node), checked to
    /// be one JSON object so that every `Payload` stays a valid frame.
    pub fn from_json(text: String) -> Result<Payload, serde_json::Error> {
        serde_json::from_str::<Map<String, Value>>(&text)?;
        Ok(Payload(Bytes::from(text)))
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        // serde_json only writes UTF-8, so this cannot fail; a failure would be a bug in the
        // codec, which the fallback makes visible instead of hiding it behind a panic.
        std::str::from_utf8(&self.0).unwrap_or("")
    }

    /// The raw bytes (cheap clone).
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the payload is empty (never true for an encoded message).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A payload travels between nodes as the JSON text it holds.
impl serde::Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// A payload from another node: text (so valid UTF-8) that node serialized with
/// [`encode`].
impl<'de> serde::Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Ok(Payload(Bytes::from(text)))
    }
}

/// Serializes a message once for any number of recipients.
///
/// ```
/// use wsc_hub::{codec, HubMessage};
/// let payload = codec::encode(&HubMessage::text("hi")).unwrap();
/// assert!(payload.as_str().contains(r#""content":"hi""#));
/// ```
pub fn encode(msg: &HubMessage) -> Result<Payload, serde_json::Error> {
    serde_json::to_vec(msg).map(|v| Payload(Bytes::from(v)))
}

/// The `seq_no` of a message that is numbered after it is encoded: [`encode`] leaves the
/// field out, and [`with_seq`] writes it in once the number is known.
pub const UNNUMBERED: i64 = i64::MIN;

/// The most bytes [`with_seq`] adds (`"seq_no":` with the longest `i64` and a comma). A
/// numbered message is refused when its base plus this room exceeds the outbound limit, so
/// a delivered frame never exceeds it.
pub const SEQ_ROOM: usize = r#""seq_no":,"#.len() + 20;

/// The bytes a `seq_no` field with this value takes in a frame (`"seq_no":N,`), wherever
/// it stands: a frame encoded with its number and a base with [`with_seq`] applied are the
/// same size.
pub fn seq_field_len(seq: i64) -> usize {
    let digits = if seq == 0 {
        1
    } else {
        (seq.unsigned_abs().ilog10() + 1) as usize + usize::from(seq < 0)
    };
    r#""seq_no":,"#.len() + digits
}

/// Writes `seq_no` into a message encoded with [`UNNUMBERED`] (as its first key: JSON
/// objects are unordered). One copy of the bytes, no second serialization.
///
/// ```
/// use wsc_hub::{HubMessage, codec};
/// let mut msg = HubMessage::text("hi");
/// msg.seq_no = codec::UNNUMBERED;
/// let base = codec::encode(&msg).unwrap();
/// assert!(!base.as_str().contains("seq_no"));
/// let framed: HubMessage = serde_json::from_str(codec::with_seq(&base, 42).as_str()).unwrap();
/// assert_eq!((framed.seq_no, framed.content.as_str()), (42, "hi"));
/// ```
pub fn with_seq(base: &Payload, seq: i64) -> Payload {
    use std::io::Write as _;
    let rest = base.0.get(1..).unwrap_or_default();
    let mut out = Vec::with_capacity(SEQ_ROOM + rest.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, r#"{{"seq_no":{seq}"#);
    // An empty object (`{}`) has no first key to separate from.
    if rest.first() != Some(&b'}') {
        out.push(b',');
    }
    out.extend_from_slice(rest);
    Payload(Bytes::from(out))
}

/// Decodes one text frame.
///
/// ```
/// use wsc_hub::codec::{decode, DecodeLimits, FrameError};
/// let limits = DecodeLimits::default();
/// assert!(decode(r#"{"message_type":"ping"}"#, limits).is_ok());
/// assert_eq!(decode("null", limits).unwrap_err().code(), "not_an_object");
/// ```
pub fn decode(text: &str, limits: DecodeLimits) -> Result<HubMessage, FrameError> {
    if text.len() > limits.max_message_size {
        return Err(FrameError::TooLarge {
            size: text.len(),
            limit: limits.max_message_size,
        });
    }
    check_depth(text.as_bytes(), limits.max_depth)?;
    let first = text.trim_start().as_bytes().first().copied();
    if first != Some(b'{') {
        return Err(classify_non_object(text));
    }
    serde_json::from_str::<HubMessage>(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => FrameError::InvalidField(e.to_string()),
        _ => FrameError::NotJson(e.to_string()),
    })
}

/// Decodes a text frame that arrived as raw bytes (checks UTF-8 first).
pub fn decode_bytes(bytes: &[u8], limits: DecodeLimits) -> Result<HubMessage, FrameError> {
    let text = std::str::from_utf8(bytes).map_err(|_| FrameError::InvalidUtf8)?;
    decode(text, limits)
}

/// The `id` of a frame that failed to decode, when it is an object that has one.
pub fn offending_id(text: &str) -> String {
    match serde_json::from_str::<Map<String, Value>>(text) {
        Ok(map) => map
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        Err(_) => String::new(),
    }
}

fn classify_non_object(text: &str) -> FrameError {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Null) => FrameError::NotAnObject("null"),
        Ok(Value::Array(_)) => FrameError::NotAnObject("an array"),
        Ok(Value::Number(_)) => FrameError::NotAnObject("a number"),
        Ok(Value::String(_)) => FrameError::NotAnObject("a string"),
        Ok(Value::Bool(_)) => FrameError::NotAnObject("a boolean"),
        Ok(Value::Object(_)) => FrameError::NotAnObject("an object"),
        Err(e) => FrameError::NotJson(e.to_string()),
    }
}

/// Rejects nesting deeper than `max` without parsing: a linear scan that skips strings.
fn check_depth(bytes: &[u8], max: usize) -> Result<(), FrameError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return Err(FrameError::TooDeep(max));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_no_takes_the_same_room_wherever_it_is_written() {
        let mut msg = HubMessage::text("hi");
        msg.seq_no = UNNUMBERED;
        let base = encode(&msg).unwrap();
        for seq in [0, 1, 9, 10, 99_999, -5, i64::MAX, i64::MIN + 1] {
            let numbered = with_seq(&base, seq);
            assert_eq!(numbered.len() - base.len(), seq_field_len(seq), "seq {seq}");
            assert!(seq_field_len(seq) <= SEQ_ROOM);
            msg.seq_no = seq;
            assert_eq!(encode(&msg).unwrap().len(), numbered.len(), "seq {seq}");
        }
    }

    fn code(text: &str) -> &'static str {
        decode(text, DecodeLimits::default()).unwrap_err().code()
    }

    #[test]
    fn non_objects_are_typed_errors() {
        assert_eq!(code("null"), "not_an_object");
        assert_eq!(code("[1,2]"), "not_an_object");
        assert_eq!(code("42"), "not_an_object");
        assert_eq!(code(r#""ping""#), "not_an_object");
        assert_eq!(code("true"), "not_an_object");
        assert_eq!(code("ping"), "invalid_json");
        assert_eq!(code("{\"id\":"), "invalid_json");
        assert_eq!(code(""), "invalid_json");
    }

    #[test]
    fn depth_is_bounded_and_strings_do_not_count() {
        let deep = format!("{{\"data\":{}{}}}", "[".repeat(40), "]".repeat(40));
        assert_eq!(code(&deep), "too_deep");
        let deep_array = "[".repeat(5000);
        assert_eq!(code(&deep_array), "too_deep");
        let braces_in_string = format!("{{\"content\":\"{}\"}}", "{[".repeat(100));
        assert!(decode(&braces_in_string, DecodeLimits::default()).is_ok());
    }

    #[test]
    fn wrong_field_types_are_invalid_message() {
        assert_eq!(code(r#"{"seq_no":"x"}"#), "invalid_message");
        assert_eq!(code(r#"{"data":[1]}"#), "invalid_message");
    }

    #[test]
    fn size_and_utf8_limits() {
        let limits = DecodeLimits {
            max_message_size: 10,
            max_depth: 4,
        };
        assert_eq!(
            decode(r#"{"content":"too long"}"#, limits)
                .unwrap_err()
                .code(),
            "too_large"
        );
        assert_eq!(
            decode_bytes(&[b'{', 0xff, b'}'], DecodeLimits::default())
                .unwrap_err()
                .code(),
            "invalid_utf8"
        );
    }

    #[test]
    fn error_frame_carries_code_and_reply_id() {
        let frame = FrameError::NotAnObject("null").to_message("abc");
        let json = encode(&frame).unwrap();
        let v: Value = serde_json::from_str(json.as_str()).unwrap();
        assert_eq!(v["message_type"], "error");
        assert_eq!(v["data"]["code"], "not_an_object");
        assert_eq!(v["reply_to_msg_id"], "abc");
        assert!(v["content"].as_str().unwrap().contains("null"));
    }

    #[test]
    fn unknown_types_round_trip() {
        let msg = decode(r#"{"message_type":"my_custom"}"#, DecodeLimits::default()).unwrap();
        assert_eq!(msg.message_type.as_str(), "my_custom");
        assert!(encode(&msg).unwrap().as_str().contains("\"my_custom\""));
    }
}
