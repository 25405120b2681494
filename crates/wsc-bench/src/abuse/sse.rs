//! The same attacks over SSE, where they apply: the stream's POSTed frames have the size and
//! rate limits of WebSocket frames, and a stream that is not read is a slow consumer.

use serde_json::json;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::{Attack, Outcome, Target, expect, flood_until_slow_consumer};

pub(super) fn attacks() -> Vec<Attack> {
    vec![
        Attack {
            name: "sse_oversized_frame",
            expected: "413 `message_too_large`; the stream stays open",
            limit: "`wsc.security.max_message_size` (64 KiB)",
            settings: &[],
            run: |t| Box::pin(oversized(t)),
        },
        Attack {
            name: "sse_frame_flood",
            expected: "the stream ends with `disconnected` 1008 `... messages per second`",
            limit: "`wsc.security.max_messages_per_second` (100)",
            settings: &[],
            run: |t| Box::pin(flood(t)),
        },
        Attack {
            name: "sse_spoofed_sender",
            expected: "the receiver sees the stream's identity",
            limit: "the hub stamps the sender from the stream's identity",
            settings: &[],
            run: |t| Box::pin(spoofed(t)),
        },
        Attack {
            name: "sse_never_reads",
            expected: "disconnected as a slow consumer",
            limit: "`wsc.performance.write_timeout` on each write",
            settings: &[
                ("GATEWAY__WSC__MESSAGE_BUFFER_SIZE", "8"),
                ("GATEWAY__WSC__PERFORMANCE__WRITE_TIMEOUT", "1s"),
            ],
            run: |t| Box::pin(never_reads(t)),
        },
    ]
}

/// Opens a stream for `user` and reads its `connected` event: the stream and its session.
async fn open(target: Target, user: &str) -> Result<(wsc_testkit::sse::SseStream, String), String> {
    let mut stream = wsc_testkit::sse::open(target.public, &format!("/sse?user_id={user}"), &[])
        .await
        .map_err(|(status, body)| format!("the stream was refused: {status} {body}"))?;
    let (_, session) = stream.connected().await;
    Ok((stream, session))
}

/// POSTs `body` to `/sse/send` for `session`.
async fn send(target: Target, session: &str, body: &str) -> (u16, serde_json::Value) {
    wsc_testkit::http::json(
        target.public,
        "POST",
        "/sse/send",
        &[
            ("x-wsc-session", session),
            ("content-type", "application/json"),
        ],
        Some(body),
    )
    .await
}

async fn oversized(target: Target) -> Outcome {
    let (mut stream, session) = open(target, "big").await?;
    let body = json!({"message_type": "text", "content": "x".repeat(100_000)}).to_string();
    let (status, reply) = send(target, &session, &body).await;
    expect("the status", status, 413)?;
    expect(
        "the code",
        reply["error"].as_str(),
        Some("message_too_large"),
    )?;
    let (status, _) = send(target, &session, r#"{"message_type":"ping","id":"p"}"#).await;
    expect("a ping after it", status, 202)?;
    let pong = stream.next_event().await.json();
    expect("the pong", pong["id"].as_str(), Some("p"))?;
    Ok("413 `message_too_large`, the stream kept serving".into())
}

async fn flood(target: Target) -> Outcome {
    let (mut stream, session) = open(target, "flood").await?;
    let mut refused = 0;
    for _ in 0..300 {
        let (status, _) = send(target, &session, r#"{"message_type":"ping"}"#).await;
        if status != 202 {
            refused += 1;
        }
    }
    let events = stream.until_end().await;
    let last = events
        .last()
        .ok_or("the stream ended without any event")?
        .json();
    expect(
        "the last event",
        last["message_type"].as_str(),
        Some("disconnected"),
    )?;
    expect("its code", last["data"]["code"].as_u64(), Some(1008))?;
    expect(
        "its reason",
        last["data"]["reason"].as_str(),
        Some("rate limit exceeded: more than 100 messages per second"),
    )?;
    Ok(format!(
        "`disconnected` 1008 `rate limit exceeded: more than 100 messages per second`; \
         {refused} of 300 POSTs refused (404/429) after it"
    ))
}

async fn spoofed(target: Target) -> Outcome {
    let (_stream, session) = open(target, "alice&user_type=customer").await?;
    let mut bob = wsc_testkit::ws::try_connect(&target.ws_url("user_id=bob"), &[])
        .await
        .map_err(|e| e.to_string())?;
    let forged = json!({
        "message_type": "typing", "receiver": "bob",
        "sender": "mallory", "sender_type": "admin", "app_id": "other",
    })
    .to_string();
    let (status, _) = send(target, &session, &forged).await;
    expect("the POST", status, 202)?;
    let got = wsc_testkit::ws::next_json(&mut bob).await;
    expect("sender", got["sender"].as_str(), Some("alice"))?;
    expect("sender_type", got["sender_type"].as_str(), Some("customer"))?;
    if got["app_id"] == "other" {
        return Err(format!("a forged scope passed: {got}"));
    }
    Ok("delivered as `alice`/`customer`; forged fields replaced".into())
}

async fn never_reads(target: Target) -> Outcome {
    // A stream opened on a raw socket whose response is never read.
    let mut socket = TcpStream::connect(target.public)
        .await
        .map_err(|e| e.to_string())?;
    socket
        .write_all(b"GET /sse?user_id=sleeper HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .map_err(|e| e.to_string())?;
    flood_until_slow_consumer(target, "sleeper").await
}
