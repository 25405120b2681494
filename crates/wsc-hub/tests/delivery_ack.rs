//! Acknowledged delivery (`send_to_user_with_ack`): the first ack settles it, each timeout
//! resends the identical frame (same `message_id` and `seq_no`) up to `max_retries` times,
//! a final failure is stored offline (or reported as timed out) and fires `on_ack_failed`,
//! a missing `message_id` is generated, concurrent sends do not collide, and duplicate or
//! unknown acks are handled.
//!
//! Timers matter here, so every test runs with paused time, over bare registrations or the
//! in-memory duplex WebSocket transport (never real TCP).

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use support::{
    ack_frame, config, drain_messages as drain, duplex_client, next_message as recv_message,
    started,
};
use tokio::time::Instant;
use wsc_hub::{AckFailure, AckStatus, Hub, HubConfig, HubMessage, Identity};

/// Records every `on_ack_failed` call.
fn record_failures(hub: &Hub) -> Arc<Mutex<Vec<(HubMessage, AckFailure)>>> {
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = failures.clone();
    hub.on_ack_failed(move |msg, failure| sink.lock().push((msg.clone(), failure.clone())));
    failures
}

fn id_of(frame: &Value) -> String {
    frame["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("frame without message_id: {frame}"))
        .to_owned()
}

// 1.
#[tokio::test(start_paused = true)]
async fn ack_on_first_delivery_is_confirmed_after_one_attempt() {
    let hub = started(HubConfig::default());
    let failures = record_failures(&hub);
    let (mut client, _server) =
        duplex_client(&hub, Identity::new("alice").with_client_id("alice-phone")).await;
    let start = Instant::now();

    let send = hub.send_to_user_with_ack(
        "alice",
        HubMessage::text("hello").with_data("k", 1),
        Duration::from_secs(1),
        3,
    );
    let respond = async {
        let frame = client.recv_json().await;
        assert_eq!(frame["message_type"], "text", "{frame}");
        assert_eq!(frame["content"], "hello", "{frame}");
        assert_eq!(frame["require_ack"], true, "{frame}");
        client.send_text(&ack_frame(&id_of(&frame))).await;
        frame
    };
    let (report, frame) = tokio::join!(send, respond);
    let report = report.expect("send_to_user_with_ack");

    assert_eq!(report.message_id, id_of(&frame));
    assert_eq!(report.outcomes.len(), 1, "{report:?}");
    let outcome = &report.outcomes[0];
    assert_eq!(outcome.target, "alice");
    assert_eq!(
        outcome.status,
        AckStatus::Acked {
            client_id: "alice-phone".to_owned()
        }
    );
    assert_eq!(outcome.attempts, 1);
    assert!(report.all_acked());
    // No timeout fired: the ack came back before any virtual time passed.
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );

    let stats = hub.stats();
    assert_eq!(stats.acks_confirmed, 1, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert_eq!(stats.ack_resends, 0, "{stats:?}");
    assert_eq!(stats.ack_failures, 0, "{stats:?}");
    assert!(failures.lock().is_empty());
    // Nothing else was queued: no resend, no error frame.
    client.assert_nothing_received().await;
}

// 2.
#[tokio::test(start_paused = true)]
async fn ack_after_the_third_delivery_counts_two_resends() {
    let hub = started(HubConfig::default());
    let mut alice = hub
        .register(Identity::new("alice").with_client_id("a1"))
        .await
        .unwrap();
    let start = Instant::now();

    let send = hub.send_to_user_with_ack(
        "alice",
        HubMessage::text("retry me"),
        Duration::from_secs(1),
        3,
    );
    let respond = async {
        let first = recv_message(&mut alice).await;
        let at_first = start.elapsed();
        let second = recv_message(&mut alice).await;
        let at_second = start.elapsed();
        let third = recv_message(&mut alice).await;
        let at_third = start.elapsed();
        alice.handle_text(&ack_frame(&id_of(&third))).await;
        (vec![first, second, third], [at_first, at_second, at_third])
    };
    let (report, (frames, times)) = tokio::join!(send, respond);
    let report = report.unwrap();

    // Each resend is the identical frame: same message_id, same seq_no, same everything.
    assert_eq!(frames[0], frames[1], "the first resend differs");
    assert_eq!(frames[1], frames[2], "the second resend differs");
    assert_eq!(frames[0]["seq_no"], 1, "{}", frames[0]);
    assert_eq!(id_of(&frames[0]), report.message_id);
    // One resend per timeout.
    assert_eq!(times[0], Duration::ZERO, "{times:?}");
    assert_eq!(times[1], Duration::from_secs(1), "{times:?}");
    assert_eq!(times[2], Duration::from_secs(2), "{times:?}");

    let outcome = &report.outcomes[0];
    assert_eq!(
        outcome.status,
        AckStatus::Acked {
            client_id: "a1".to_owned()
        }
    );
    assert_eq!(outcome.attempts, 3);
    let stats = hub.stats();
    assert_eq!(stats.ack_resends, 2, "{stats:?}");
    assert_eq!(stats.acks_confirmed, 1, "{stats:?}");
    assert_eq!(stats.ack_failures, 0, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert!(drain(&mut alice).is_empty(), "a fourth copy was queued");
}

/// Sends with ack (timeout 1 s, 2 retries) to a connected user who never acks; returns the
/// report status and attempts, the copies received, the failures recorded and the elapsed
/// virtual time.
async fn unacked_send(
    offline_enabled: bool,
) -> (
    Hub,
    AckStatus,
    u32,
    Vec<Value>,
    Vec<(HubMessage, AckFailure)>,
    Duration,
) {
    let hub = started(config(|c| c.offline_enabled = offline_enabled));
    let failures = record_failures(&hub);
    let mut alice = hub.register(Identity::new("alice")).await.unwrap();
    let start = Instant::now();
    let report = hub
        .send_to_user_with_ack(
            "alice",
            HubMessage::text("never acked"),
            Duration::from_secs(1),
            2,
        )
        .await
        .unwrap();
    let elapsed = start.elapsed();
    let copies = drain(&mut alice);
    assert_eq!(report.outcomes.len(), 1);
    let outcome = report.outcomes[0].clone();
    assert_eq!(outcome.target, "alice");
    for copy in &copies {
        assert_eq!(id_of(copy), report.message_id, "{copy}");
    }
    let failures = failures.lock().clone();
    (
        hub,
        outcome.status,
        outcome.attempts,
        copies,
        failures,
        elapsed,
    )
}

// 3.
#[tokio::test(start_paused = true)]
async fn no_ack_times_out_after_exactly_max_retries_resends() {
    // With the default memory store: stored offline.
    let (hub, status, attempts, copies, failures, elapsed) = unacked_send(true).await;
    assert_eq!(copies.len(), 3, "expected 1 send + 2 resends: {copies:?}");
    assert_eq!(status, AckStatus::StoredOffline);
    assert_eq!(attempts, 3);
    assert_eq!(
        elapsed,
        Duration::from_secs(3),
        "3 × timeout of virtual time"
    );
    assert_eq!(
        failures.len(),
        1,
        "on_ack_failed must fire once: {failures:?}"
    );
    let (msg, failure) = &failures[0];
    assert_eq!(msg.content, "never acked");
    assert_eq!(failure.target, "alice");
    assert_eq!(failure.attempts, 3);
    assert!(failure.stored_offline);
    let stats = hub.stats();
    assert_eq!(stats.ack_failures, 1, "{stats:?}");
    assert_eq!(stats.ack_resends, 2, "{stats:?}");
    assert_eq!(stats.offline_stored, 1, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");

    // Without an offline store: timed out.
    let (hub, status, attempts, copies, failures, elapsed) = unacked_send(false).await;
    assert_eq!(copies.len(), 3, "{copies:?}");
    assert_eq!(status, AckStatus::TimedOut);
    assert_eq!(attempts, 3);
    assert_eq!(elapsed, Duration::from_secs(3));
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0].1.attempts, 3);
    assert!(!failures[0].1.stored_offline);
    let stats = hub.stats();
    assert_eq!(stats.ack_failures, 1, "{stats:?}");
    assert_eq!(stats.offline_stored, 0, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
}

// 4.
#[tokio::test(start_paused = true)]
async fn missing_message_id_is_generated_as_a_uuid() {
    let hub = started(HubConfig::default());
    let mut alice = hub.register(Identity::new("alice")).await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let msg = HubMessage::text("no id");
        assert!(msg.message_id.is_empty() && msg.id.is_empty());
        let send = hub.send_to_user_with_ack("alice", msg, Duration::from_secs(1), 0);
        let respond = async {
            let frame = recv_message(&mut alice).await;
            alice.handle_text(&ack_frame(&id_of(&frame))).await;
            frame
        };
        let (report, frame) = tokio::join!(send, respond);
        let report = report.unwrap();
        let id = id_of(&frame);
        let parsed = uuid::Uuid::parse_str(&id)
            .unwrap_or_else(|e| panic!("message_id {id:?} is not a UUID: {e}"));
        assert_eq!(
            parsed.hyphenated().to_string(),
            id,
            "not in hyphenated form"
        );
        assert_eq!(report.message_id, id);
        assert!(report.all_acked(), "{report:?}");
        ids.push(id);
    }
    assert_ne!(ids[0], ids[1], "two sends got the same generated id");
}

// 5.
#[tokio::test(start_paused = true)]
async fn fifty_concurrent_acked_sends_to_one_user_do_not_collide() {
    const SENDS: usize = 50;
    let hub = started(HubConfig::default());
    let (mut client, _server) =
        duplex_client(&hub, Identity::new("alice").with_client_id("a1")).await;

    let sends = (0..SENDS).map(|i| {
        hub.send_to_user_with_ack(
            "alice",
            HubMessage::text(format!("m{i}")),
            Duration::from_secs(1),
            3,
        )
    });
    let respond = async {
        let mut seen = HashSet::new();
        let mut seqs = Vec::new();
        let mut frames = 0;
        while seen.len() < SENDS {
            let frame = client.recv_json().await;
            frames += 1;
            let id = id_of(&frame);
            client.send_text(&ack_frame(&id)).await;
            if seen.insert(id) {
                seqs.push(frame["seq_no"].as_i64().expect("seq_no"));
            }
        }
        (seen, seqs, frames)
    };
    let (reports, (seen, mut seqs, frames)) =
        tokio::join!(futures_util::future::join_all(sends), respond);

    let mut report_ids = HashSet::new();
    for report in reports {
        let report = report.expect("send_to_user_with_ack");
        assert_eq!(
            report.outcomes[0].status,
            AckStatus::Acked {
                client_id: "a1".to_owned()
            },
            "{report:?}"
        );
        assert_eq!(report.outcomes[0].attempts, 1, "{report:?}");
        assert!(report_ids.insert(report.message_id.clone()), "duplicate id");
    }
    assert_eq!(report_ids.len(), SENDS);
    assert_eq!(
        report_ids, seen,
        "the client saw other ids than the reports"
    );
    assert_eq!(
        frames, SENDS,
        "resends happened although every frame was acked"
    );
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=SENDS as i64).collect::<Vec<_>>());
    let stats = hub.stats();
    assert_eq!(stats.acks_confirmed, SENDS as u64, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert_eq!(stats.invalid_frames, 0, "{stats:?}");
    client.assert_nothing_received().await;
}

// 6.
#[tokio::test(start_paused = true)]
async fn duplicate_ack_is_harmless_and_unknown_ack_is_an_error() {
    let hub = started(HubConfig::default());
    let (mut phone, _phone_task) =
        duplex_client(&hub, Identity::new("alice").with_client_id("phone")).await;
    let (mut tablet, _tablet_task) =
        duplex_client(&hub, Identity::new("alice").with_client_id("tablet")).await;
    let (mut bob, _bob_task) = duplex_client(&hub, Identity::new("bob")).await;

    let send = hub.send_to_user_with_ack(
        "alice",
        HubMessage::text("to both devices"),
        Duration::from_secs(1),
        3,
    );
    let respond = async {
        let frame = phone.recv_json().await;
        let id = id_of(&frame);
        // Bob cannot confirm Alice's delivery.
        bob.send_text(&ack_frame(&id)).await;
        let error = bob.expect_error("unknown_ack").await;
        assert!(error["content"].as_str().unwrap().contains(&id), "{error}");
        phone.send_text(&ack_frame(&id)).await;
        id
    };
    let (report, id) = tokio::join!(send, respond);
    let report = report.unwrap();
    assert_eq!(
        report.outcomes[0].status,
        AckStatus::Acked {
            client_id: "phone".to_owned()
        }
    );

    // The tablet got the same frame and acks it too, and the phone acks again: both are
    // duplicates, answered with nothing.
    let copy = tablet.recv_json().await;
    assert_eq!(id_of(&copy), id);
    tablet.send_text(&ack_frame(&id)).await;
    phone.send_text(&ack_frame(&id)).await;
    tablet.assert_nothing_received().await;
    phone.assert_nothing_received().await;

    // Nothing broke: the next acked send works for both devices.
    let send =
        hub.send_to_user_with_ack("alice", HubMessage::text("next"), Duration::from_secs(1), 0);
    let respond = async {
        let frame = tablet.recv_json().await;
        tablet.send_text(&ack_frame(&id_of(&frame))).await;
        assert_eq!(id_of(&phone.recv_json().await), id_of(&frame));
    };
    let (report, ()) = tokio::join!(send, respond);
    assert_eq!(
        report.unwrap().outcomes[0].status,
        AckStatus::Acked {
            client_id: "tablet".to_owned()
        }
    );

    // An ack for something that was never sent is an error frame, with the frame's id.
    phone
        .send_json(&json!({"message_type": "ack", "id": "f-1", "message_id": "never-sent"}))
        .await;
    let error = phone.expect_error("unknown_ack").await;
    assert_eq!(error["reply_to_msg_id"], "f-1", "{error}");
    phone.assert_nothing_received().await;

    let stats = hub.stats();
    assert_eq!(stats.acks_confirmed, 2, "{stats:?}");
    assert_eq!(
        stats.invalid_frames, 2,
        "bob's ack and the unknown ack: {stats:?}"
    );
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert_eq!(stats.ack_failures, 0, "{stats:?}");
    assert_eq!(hub.connection_count(), 3, "a connection was closed");
}
