//! Fuzzing the hub's inputs for a bounded time (`wsc_testkit::fuzz`, `WSC_FUZZ_SECONDS`):
//! the frame codec on arbitrary text, arbitrary bytes and JSON objects built from the
//! protocol's own keys with values of any type, and the identity of an upgrade request built
//! from arbitrary query strings and headers. Nothing may panic; what decodes encodes and
//! decodes to the same message; an accepted identity is a valid one. Inputs that once failed
//! are kept in the regression lists and run first.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use proptest::prelude::*;
use serde_json::{Map, Value};
use wsc_hub::codec::{self, DecodeLimits};
use wsc_hub::{IdentityParams, MAX_IDENTITY_LEN};
use wsc_testkit::fuzz::run_for;

/// Frames that once broke something, run first every time.
const FRAME_REGRESSIONS: &[&str] = &[
    // A float the default serde_json parser read 1 ulp off, so it changed on its way
    // through the hub (fixed with serde_json's `float_roundtrip`).
    r#"{"data":{"":[{"":2.3120236816052206e-144}]}}"#,
    "",
    "null",
    "[]",
    "{\"type\":\"text\",\"message_type\":\"x\"}",
];

/// The keys of a frame (go-wsc's names and the input aliases).
const KEYS: &[&str] = &[
    "id",
    "message_type",
    "type",
    "sender",
    "from",
    "sender_type",
    "sender_client",
    "receiver",
    "to",
    "receiver_type",
    "receiver_client",
    "session_id",
    "content",
    "data",
    "create_at",
    "message_id",
    "msg_id",
    "reply_to_msg_id",
    "seq_no",
    "priority",
    "source",
    "app_id",
    "namespace",
    "group_ids",
    "require_ack",
    "trace_id",
    "ticket_id",
    "sender_name",
];

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,40}".prop_map(Value::String),
        prop_oneof![
            Just("text"),
            Just("ping"),
            Just("ack"),
            Just("typing"),
            Just("high"),
            Just("offline")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object with frame keys (and a few others) mapped to any values.
fn frame_object() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        4 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => ".{0,10}",
    ];
    prop::collection::vec((key, json_value()), 0..12).prop_map(|pairs| {
        let object: Map<String, Value> = pairs.into_iter().collect();
        Value::Object(object).to_string()
    })
}

/// The property every frame must have: no panic, and a decoded message round-trips.
fn check_frame(text: &str) -> Result<(), TestCaseError> {
    let limits = DecodeLimits::default();
    if let Ok(msg) = codec::decode(text, limits) {
        let encoded = codec::encode(&msg).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let again = codec::decode(encoded.as_str(), limits)
            .map_err(|e| TestCaseError::fail(format!("re-decoding {encoded:?}: {e}")))?;
        prop_assert_eq!(&again, &msg, "a decoded frame must survive encode + decode");
    }
    Ok(())
}

#[test]
fn the_codec_never_panics_and_round_trips_what_it_decodes() {
    for frame in FRAME_REGRESSIONS {
        check_frame(frame).unwrap();
    }
    let tried = run_for("codec: frame objects", frame_object(), |text| {
        check_frame(&text)
    });
    let tried_text = run_for("codec: any text", ".{0,200}", |text| check_frame(&text));
    assert!(tried > 0 && tried_text > 0);
}

#[test]
fn byte_frames_never_panic_and_agree_with_text_frames() {
    run_for(
        "codec: any bytes",
        prop::collection::vec(any::<u8>(), 0..300),
        |bytes| {
            let limits = DecodeLimits::default();
            let from_bytes = codec::decode_bytes(&bytes, limits);
            if let Ok(text) = std::str::from_utf8(&bytes) {
                let from_text = codec::decode(text, limits);
                prop_assert_eq!(from_bytes.is_ok(), from_text.is_ok());
            } else {
                prop_assert!(from_bytes.is_err(), "invalid UTF-8 is refused");
            }
            Ok(())
        },
    );
}

/// Query parameter names an upgrade may carry, and some noise.
const PARAMS: &[&str] = &[
    "user_id",
    "user_type",
    "client_id",
    "device_id",
    "ticket_id",
    "group_id",
    "app_id",
    "namespace",
    "last_seq",
    "token",
    "x",
];

fn query() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        ".{0,30}",
        "[a-z0-9%+&=]{0,30}",
        Just("a".repeat(MAX_IDENTITY_LEN + 1)),
        Just("%00%0A%FF".to_owned()),
    ];
    prop::collection::vec((prop::sample::select(PARAMS), value), 0..10).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={}", v.replace(['#', ' '], "")))
            .collect::<Vec<_>>()
            .join("&")
    })
}

fn headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    let name = prop::sample::select(
        &[
            "x-user-id",
            "x-user-type",
            "x-client-id",
            "cookie",
            "x-group-id",
        ][..],
    );
    prop::collection::vec(
        (
            name.prop_map(str::to_owned),
            prop::collection::vec(any::<u8>(), 0..40),
        ),
        0..4,
    )
}

/// Requests that once broke something, run first every time.
const IDENTITY_REGRESSIONS: &[&str] = &[
    // `+` is a space: a user id of only spaces was accepted (now `missing_user_id`).
    "user_id=+&",
];

#[test]
fn identities_from_any_request_are_valid_or_refused() {
    let params = IdentityParams::default();
    let check = |query: String, raw: Vec<(String, Vec<u8>)>| -> Result<(), TestCaseError> {
        let Ok(uri) = format!("/ws?{query}").parse::<Uri>() else {
            return Ok(());
        };
        let mut map = HeaderMap::new();
        for (name, value) in raw {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_bytes(&value),
            ) {
                map.append(name, value);
            }
        }
        if let Ok(mut identity) = params.extract(&uri, &map) {
            prop_assert!(!identity.user_id.trim().is_empty());
            prop_assert!(identity.user_id.len() <= MAX_IDENTITY_LEN);
            prop_assert!(!identity.user_id.chars().any(char::is_control));
            prop_assert!(
                identity.validate().is_ok(),
                "an extracted identity validates"
            );
        }
        Ok(())
    };
    for query in IDENTITY_REGRESSIONS {
        check((*query).to_owned(), Vec::new()).unwrap();
    }
    run_for(
        "identity: query and headers",
        (query(), headers()),
        |(query, raw)| check(query, raw),
    );
}
