//! Liveness under paused time: the server pings every `heartbeat_interval`, closes a
//! connection that sent nothing for `client_timeout`, and keeps one that answers pings.
//!
//! The connections run over an in-memory duplex pipe (real WebSocket protocol on both
//! ends, no socket), so virtual time only advances when every task is idle.

mod support;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use support::{Disconnects, config, duplex_client};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wsc_hub::{DisconnectReason, Hub, HubConfig, HubMessage, Identity};

fn liveness_config() -> HubConfig {
    config(|c| {
        c.heartbeat_interval = Duration::from_secs(1);
        c.client_timeout = Duration::from_secs(3);
    })
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_closed_after_client_timeout() {
    let hub = Hub::new(liveness_config());
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    let start = Instant::now();
    // This client never polls its stream: it reads nothing and so answers no ping.
    let (mut client, server_task) = duplex_client(&hub, Identity::new("silent")).await;

    let (_, reason) = tokio::time::timeout(Duration::from_secs(60), disconnects.next())
        .await
        .expect("the silent client was never closed");
    let elapsed = start.elapsed();
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(
        elapsed >= Duration::from_secs(3),
        "closed too early: {elapsed:?}"
    );
    // At most one heartbeat late, plus the close handshake grace period.
    assert!(
        elapsed <= Duration::from_secs(5),
        "closed too late: {elapsed:?}"
    );
    server_task.await.unwrap();
    assert_eq!(disconnects.count(), 1);
    disconnects.assert_none_pending();
    assert_eq!(hub.connection_count(), 0);
    assert_eq!(hub.stats().connections_closed, 1);

    // What the client would have read: the server's pings, then a normal close. Read the
    // raw bytes: a tungstenite client would first try to answer the pings into the pipe
    // the server has already dropped.
    let mut raw = Vec::new();
    client.ws.get_mut().read_to_end(&mut raw).await.unwrap();
    let frames = parse_server_frames(&raw);
    let (close, pings) = frames.split_last().expect("no frames at all");
    assert!(pings.iter().all(|(op, _)| *op == 0x9), "{frames:?}");
    assert!(pings.len() >= 2, "expected the heartbeat pings: {frames:?}");
    assert_eq!(
        close.0, 0x8,
        "the last frame is not a close frame: {frames:?}"
    );
    assert_eq!(u16::from_be_bytes([close.1[0], close.1[1]]), 1000);
}

/// Splits unmasked server frames with short payloads into `(opcode, payload)`.
fn parse_server_frames(mut raw: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut frames = Vec::new();
    while raw.len() >= 2 {
        let opcode = raw[0] & 0x0f;
        let len = usize::from(raw[1] & 0x7f);
        assert!(
            len < 126 && raw[1] & 0x80 == 0,
            "unexpected frame header {raw:?}"
        );
        frames.push((opcode, raw[2..2 + len].to_vec()));
        raw = &raw[2 + len..];
    }
    assert!(raw.is_empty(), "trailing bytes {raw:?}");
    frames
}

#[tokio::test(start_paused = true)]
async fn server_sends_websocket_pings_every_heartbeat_interval() {
    let hub = Hub::new(liveness_config());
    hub.start();
    let (mut client, _server_task) = duplex_client(&hub, Identity::new("alice")).await;
    let start = Instant::now();
    for n in 1..=5u32 {
        let frame = client.next_frame().await;
        assert!(
            matches!(frame, Message::Ping(_)),
            "expected a ping, got {frame:?}"
        );
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_secs(n.into())
                && elapsed < Duration::from_secs((n + 1).into()),
            "ping {n} at {elapsed:?}"
        );
    }
    // Reading the pings made the client answer them: it is still online past the timeout.
    assert!(hub.is_user_online("alice"));
}

/// A client that keeps reading (so tungstenite answers every ping with a pong), forwards
/// text frames to `incoming` and sends what arrives on `outgoing`.
fn spawn_reading_client(
    mut client: support::Client<tokio::io::DuplexStream>,
) -> (
    mpsc::UnboundedSender<String>,
    mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<usize>,
) {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
    let (in_tx, in_rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            tokio::select! {
                frame = client.ws.next() => match frame {
                    Some(Ok(Message::Ping(_))) => pings += 1,
                    Some(Ok(Message::Text(text))) => {
                        let _ = in_tx.send(text.as_str().to_owned());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return pings,
                },
                text = out_rx.recv() => match text {
                    Some(text) => {
                        if client.ws.send(Message::text(text)).await.is_err() {
                            return pings;
                        }
                    }
                    None => return pings,
                },
            }
        }
    });
    (out_tx, in_rx, task)
}

#[tokio::test(start_paused = true)]
async fn client_that_answers_pings_survives_past_the_timeout() {
    let hub = Hub::new(liveness_config());
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    let (client, _server_task) = duplex_client(&hub, Identity::new("alice")).await;
    let (outgoing, mut incoming, reader) = spawn_reading_client(client);

    // Let 10 seconds of virtual time pass: ten heartbeats, more than three timeouts.
    let start = Instant::now();
    tokio::time::sleep_until(start + Duration::from_secs(10)).await;

    assert_eq!(disconnects.count(), 0, "{:?}", disconnects.next().await);
    assert!(hub.is_user_online("alice"));
    let report = hub
        .send_to_user("alice", HubMessage::text("still there"))
        .await
        .unwrap();
    assert_eq!(report.delivered, 1);
    let text = tokio::time::timeout(Duration::from_secs(1), incoming.recv())
        .await
        .expect("no message")
        .unwrap();
    assert!(text.contains("still there"), "{text}");

    outgoing
        .send(r#"{"message_type":"ping","id":"late"}"#.to_owned())
        .unwrap();
    let text = tokio::time::timeout(Duration::from_secs(1), incoming.recv())
        .await
        .expect("no pong")
        .unwrap();
    assert!(
        text.contains(r#""pong""#) && text.contains("late"),
        "{text}"
    );

    drop(outgoing);
    let pings = reader.await.unwrap();
    assert!(pings >= 9, "the client saw only {pings} pings in 10 s");
}

#[tokio::test(start_paused = true)]
async fn any_inbound_frame_counts_as_liveness() {
    let hub = Hub::new(liveness_config());
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    let (mut client, server_task) = duplex_client(&hub, Identity::new("alice")).await;

    // A frame every 2 s (under the 3 s timeout) keeps the connection alive for 12 s.
    for _ in 0..6 {
        tokio::time::advance(Duration::from_secs(2)).await;
        client.ping().await;
    }
    assert_eq!(disconnects.count(), 0);
    assert!(hub.is_user_online("alice"));

    // Then silence: the timeout applies from the last frame.
    let last = Instant::now();
    let (_, reason) = tokio::time::timeout(Duration::from_secs(60), disconnects.next())
        .await
        .expect("never closed");
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(
        last.elapsed() >= Duration::from_secs(3),
        "{:?}",
        last.elapsed()
    );
    server_task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn binary_frames_count_as_liveness() {
    let hub = Hub::new(liveness_config());
    hub.start();
    let mut disconnects = Disconnects::record(&hub);
    // The client only writes: it never reads, so it answers no ping and its binary frames
    // are the only sign of life.
    let (mut client, server_task) = duplex_client(&hub, Identity::new("alice")).await;
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        client.send(Message::binary(vec![1u8, 2, 3])).await;
    }
    // Twelve seconds, four timeouts: still online, every frame handled (and refused).
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(disconnects.count(), 0);
    assert!(hub.is_user_online("alice"));
    assert_eq!(hub.stats().invalid_frames, 6);

    // Then silence: the timeout applies from the last binary frame.
    let last = Instant::now();
    let (_, reason) = tokio::time::timeout(Duration::from_secs(60), disconnects.next())
        .await
        .expect("never closed");
    assert_eq!(reason, DisconnectReason::Timeout);
    assert!(
        last.elapsed() >= Duration::from_secs(2),
        "{:?}",
        last.elapsed()
    );
    server_task.await.unwrap();
}
