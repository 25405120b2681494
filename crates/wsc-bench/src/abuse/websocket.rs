//! Attacks on the WebSocket framing and on the limits after the upgrade.

use std::time::{Duration, Instant};

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{Attack, Outcome, Target, expect, flood_until_slow_consumer};
use crate::raw::{Ending, FIN, RawSocket, frame, header, opcode};

/// How long an attacked connection may take to be closed.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);

pub(super) fn attacks() -> Vec<Attack> {
    vec![
        Attack {
            name: "fragment_flood",
            expected: "close 1009 `message too large`",
            limit: "`wsc.security.max_message_size` (64 KiB) over the fragments of one message",
            settings: &[],
            run: |t| Box::pin(fragment_flood(t)),
        },
        Attack {
            name: "empty_fragment_flood",
            expected: "close 1008 `rate limit exceeded`",
            limit: "raw inbound bytes per second (`max_bytes_per_second` + one largest message)",
            settings: &[],
            run: |t| Box::pin(empty_fragment_flood(t)),
        },
        Attack {
            name: "ping_flood",
            expected: "close 1008 `... control frames per second`",
            limit: "control frames in their own window of `max_messages_per_second` (100)",
            settings: &[],
            run: |t| Box::pin(ping_flood(t)),
        },
        Attack {
            name: "control_frame_over_125_bytes",
            expected: "close 1008 `protocol error: ...`",
            limit: "RFC 6455 framing (tungstenite)",
            settings: &[],
            run: |t| {
                Box::pin(protocol_error(
                    t,
                    frame(FIN | opcode::PING, &[0; 126], true),
                ))
            },
        },
        Attack {
            name: "unmasked_client_frame",
            expected: "close 1008 `protocol error: ...`",
            limit: "RFC 6455 framing (tungstenite)",
            settings: &[],
            run: |t| Box::pin(protocol_error(t, frame(FIN | opcode::TEXT, b"hi", false))),
        },
        Attack {
            name: "reserved_opcode",
            expected: "close 1008 `protocol error: ...`",
            limit: "RFC 6455 framing (tungstenite)",
            settings: &[],
            run: |t| Box::pin(protocol_error(t, frame(FIN | 0x3, b"", true))),
        },
        Attack {
            name: "reserved_control_opcode",
            expected: "close 1008 `protocol error: ...`",
            limit: "RFC 6455 framing (tungstenite)",
            settings: &[],
            run: |t| Box::pin(protocol_error(t, frame(FIN | 0xB, b"", true))),
        },
        Attack {
            name: "rsv_bits",
            expected: "close 1008 `protocol error: ...`",
            limit: "RFC 6455 framing: no extension is negotiated",
            settings: &[],
            run: |t| {
                Box::pin(protocol_error(
                    t,
                    frame(FIN | 0x70 | opcode::TEXT, b"{}", true),
                ))
            },
        },
        Attack {
            name: "length_2_pow_63",
            expected: "close 1009 `message too large`, before any payload is read",
            limit: "`max_message_size` checked on the frame header",
            settings: &[],
            run: |t| Box::pin(huge_length(t)),
        },
        Attack {
            name: "message_flood",
            expected: "close 1008 `... messages per second`",
            limit: "`wsc.security.max_messages_per_second` (100)",
            settings: &[],
            run: |t| Box::pin(message_flood(t)),
        },
        Attack {
            name: "never_reads",
            expected: "disconnected as a slow consumer (counted in `slow_consumer_disconnects`)",
            limit: "`wsc.message_buffer_size` and `wsc.performance.write_timeout`",
            settings: &[("GATEWAY__WSC__MESSAGE_BUFFER_SIZE", "8")],
            run: |t| Box::pin(never_reads(t)),
        },
        Attack {
            name: "never_answers_close",
            expected: "socket closed about 1 s after the server's close frame",
            limit: "the close grace (1 s)",
            settings: &[],
            run: |t| Box::pin(never_answers_close(t)),
        },
    ]
}

/// Opens a raw connection for user `user`.
async fn raw(target: Target, user: &str) -> Result<RawSocket, String> {
    RawSocket::upgrade(target.public, &format!("/ws?user_id={user}")).await
}

/// The server's next close frame (within [`CLOSE_WITHIN`]) must be `code` and `reason`.
async fn closed_with(socket: &mut RawSocket, code: u16, reason: &str) -> Outcome {
    let ending = socket.ending(CLOSE_WITHIN).await;
    expect("the ending", &ending, &Ending::Close(code, reason.into()))?;
    Ok(format!("close {code} `{reason}`"))
}

/// Writes until the server stops reading (it closed); write errors after that are expected.
async fn write_all_frames(socket: &mut RawSocket, frames: impl Iterator<Item = Vec<u8>>) {
    for bytes in frames {
        if socket.write(&bytes).await.is_err() {
            return;
        }
    }
}

async fn fragment_flood(target: Target) -> Outcome {
    let mut socket = raw(target, "fragments").await?;
    let kib = vec![b'x'; 1024];
    let first = std::iter::once(frame(opcode::TEXT, &kib, true));
    let rest = (0..200).map(|_| frame(opcode::CONTINUATION, &kib, true));
    write_all_frames(&mut socket, first.chain(rest)).await;
    closed_with(&mut socket, 1009, "message too large").await
}

async fn empty_fragment_flood(target: Target) -> Outcome {
    let mut socket = raw(target, "empty-fragments").await?;
    // 400,000 empty continuation frames are 2.4 MB on the wire but add nothing to the
    // message, so no message limit sees them.
    let chunk: Vec<u8> = (0..10_000)
        .flat_map(|_| frame(opcode::CONTINUATION, b"", true))
        .collect();
    let first = std::iter::once(frame(opcode::TEXT, b"", true));
    write_all_frames(&mut socket, first.chain((0..40).map(|_| chunk.clone()))).await;
    match socket.ending(CLOSE_WITHIN).await {
        Ending::Close(1008, reason) if reason.starts_with("rate limit exceeded") => {
            Ok(format!("close 1008 `{reason}`"))
        }
        other => Err(format!("expected close 1008 for the rate, got {other:?}")),
    }
}

async fn ping_flood(target: Target) -> Outcome {
    let mut socket = raw(target, "pings").await?;
    write_all_frames(
        &mut socket,
        (0..1000).map(|_| frame(FIN | opcode::PING, b"ping", true)),
    )
    .await;
    let reason = "rate limit exceeded: more than 100 control frames per second";
    closed_with(&mut socket, 1008, reason).await
}

async fn protocol_error(target: Target, bytes: Vec<u8>) -> Outcome {
    let mut socket = raw(target, "protocol").await?;
    write_all_frames(&mut socket, std::iter::once(bytes)).await;
    match socket.ending(CLOSE_WITHIN).await {
        Ending::Close(1008, reason) if reason.starts_with("protocol error: ") => {
            Ok(format!("close 1008 `{reason}`"))
        }
        other => Err(format!(
            "expected close 1008 `protocol error: ...`, got {other:?}"
        )),
    }
}

async fn huge_length(target: Target) -> Outcome {
    let mut socket = raw(target, "huge").await?;
    write_all_frames(
        &mut socket,
        std::iter::once(header(FIN | opcode::TEXT, 1 << 63, true)),
    )
    .await;
    closed_with(&mut socket, 1009, "message too large").await
}

async fn message_flood(target: Target) -> Outcome {
    let (mut ws, _) = tokio_tungstenite::connect_async(target.ws_url("user_id=flood"))
        .await
        .map_err(|e| e.to_string())?;
    let ping = json!({"message_type": "ping"}).to_string();
    for _ in 0..500 {
        if ws.send(Message::text(ping.clone())).await.is_err() {
            break;
        }
    }
    let (code, reason) = wsc_testkit::ws::close_after_frames(&mut ws).await;
    expect(
        "the close",
        (code, reason.as_str()),
        (
            1008,
            "rate limit exceeded: more than 100 messages per second",
        ),
    )?;
    Ok(format!("close {code} `{reason}`"))
}

async fn never_reads(target: Target) -> Outcome {
    // The client upgrades and then never reads a byte.
    let _socket = raw(target, "sleeper").await?;
    flood_until_slow_consumer(target, "sleeper").await
}

async fn never_answers_close(target: Target) -> Outcome {
    let mut socket = raw(target, "mute").await?;
    let started = Instant::now();
    let (status, reply) = wsc_testkit::http::json(
        target.api,
        "DELETE",
        "/api/v1/users/mute/connections?reason=test",
        &[],
        None,
    )
    .await;
    if status != 200 {
        return Err(format!("kick: {status} {reply}"));
    }
    // Read the server's frames up to its close frame, and never answer it.
    match socket.ending(CLOSE_WITHIN).await {
        Ending::Close(code, _) => {
            if !socket.closed_within(Duration::from_secs(5)).await {
                return Err("the socket stayed open 5 s after the close frame".into());
            }
            Ok(format!(
                "close {code}, then the socket was closed {} ms after the kick",
                started.elapsed().as_millis()
            ))
        }
        other => Err(format!("expected a close frame, got {other:?}")),
    }
}
