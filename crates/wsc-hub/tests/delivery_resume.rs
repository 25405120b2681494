//! Per-user sequence numbers, resume from the bounded history window (`last_seq` at
//! connect, or a `resume` frame), and ordering of one sender's messages to one user.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::{Client, TestServer, config, contents, drain_messages as drain, started};
use wsc_hub::{BroadcastOptions, Hub, HubConfig, HubMessage, Identity, Outbound};

fn seq(frame: &Value) -> i64 {
    frame["seq_no"]
        .as_i64()
        .unwrap_or_else(|| panic!("no seq_no: {frame}"))
}

/// Splits replayed frames from the final `recovered` frame, which must be last and unique.
fn split_recovered(frames: &[Value]) -> (&[Value], &Value) {
    let (last, replayed) = frames.split_last().expect("no frames at all");
    assert_eq!(
        last["message_type"], "recovered",
        "the last frame is not `recovered`: {frames:?}"
    );
    assert!(
        replayed.iter().all(|f| f["message_type"] != "recovered"),
        "more than one recovered frame: {frames:?}"
    );
    (replayed, last)
}

async fn send(hub: &Hub, user: &str, content: &str) {
    hub.send_to_user(user, HubMessage::text(content))
        .await
        .expect("send_to_user");
}

// 10.
#[tokio::test]
async fn seq_no_counts_per_user_and_broadcasts_carry_zero() {
    let hub = started(HubConfig::default());
    let mut ann = hub.register(Identity::new("ann")).await.unwrap();
    let mut ben = hub.register(Identity::new("ben")).await.unwrap();

    send(&hub, "ann", "a1").await;
    send(&hub, "ben", "b1").await;
    send(&hub, "ann", "a2").await;
    hub.broadcast(HubMessage::text("all"), BroadcastOptions::default())
        .await
        .unwrap();
    send(&hub, "ann", "a3").await;
    send(&hub, "ben", "b2").await;
    // An acknowledged send takes the next number too.
    let acked = hub.send_to_user_with_ack("ann", HubMessage::text("a4"), Duration::from_secs(5), 0);
    let respond = async {
        // a1, a2, all and a3 were queued before; a4 is next.
        let mut frames = Vec::new();
        while frames.len() < 5 {
            if let Some(Outbound::Message(p)) = ann.recv().await {
                frames.push(serde_json::from_str::<Value>(p.as_str()).unwrap());
            }
        }
        let id = frames[4]["message_id"].as_str().unwrap().to_owned();
        ann.handle_text(&json!({"message_type": "ack", "message_id": id}).to_string())
            .await;
        frames
    };
    let (report, mut ann_frames) = tokio::join!(acked, respond);
    assert!(report.unwrap().all_acked());
    send(&hub, "ann", "a5").await;
    ann_frames.extend(drain(&mut ann));

    let seqs = |frames: &[Value]| -> Vec<(String, i64)> {
        frames
            .iter()
            .map(|f| (f["content"].as_str().unwrap().to_owned(), seq(f)))
            .collect()
    };
    let expect = |pairs: &[(&str, i64)]| -> Vec<(String, i64)> {
        pairs.iter().map(|(c, s)| (c.to_string(), *s)).collect()
    };
    assert_eq!(
        seqs(&ann_frames),
        expect(&[
            ("a1", 1),
            ("a2", 2),
            ("all", 0),
            ("a3", 3),
            ("a4", 4),
            ("a5", 5)
        ])
    );
    assert_eq!(
        seqs(&drain(&mut ben)),
        expect(&[("b1", 1), ("all", 0), ("b2", 2)])
    );
}

// 11. (last_seq at connect, over a WebSocket; missed while on another connection)
#[tokio::test]
async fn last_seq_at_connect_replays_what_another_connection_received() {
    let server = TestServer::start(HubConfig::default()).await;
    let mut phone = server.connect_ready("user_id=hana&client_id=phone").await;
    for i in 1..=5 {
        send(&server.hub, "hana", &format!("m{i}")).await;
    }
    for i in 1..=5 {
        let frame = phone.recv_json().await;
        assert_eq!(seq(&frame), i, "{frame}");
    }

    // The tablet last saw seq 2 and comes back.
    let mut tablet = server
        .connect("user_id=hana&client_id=tablet&last_seq=2")
        .await;
    let mut frames = Vec::new();
    for _ in 0..4 {
        frames.push(tablet.recv_json().await);
    }
    let (replayed, recovered) = split_recovered(&frames);
    assert_eq!(contents(replayed), ["m3", "m4", "m5"], "{frames:?}");
    assert_eq!(
        replayed.iter().map(seq).collect::<Vec<_>>(),
        [3, 4, 5],
        "{frames:?}"
    );
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    assert_eq!(recovered["data"]["replayed"], 3, "{recovered}");
    assert_eq!(recovered["data"]["from_seq"], 2, "{recovered}");
    assert_eq!(recovered["data"]["latest_seq"], 5, "{recovered}");
    assert_eq!(recovered["receiver"], "hana", "{recovered}");
    // Then live traffic, with the next number, on both devices.
    send(&server.hub, "hana", "m6").await;
    assert_eq!(seq(&tablet.recv_json().await), 6);
    assert_eq!(seq(&phone.recv_json().await), 6);
    tablet.assert_nothing_received().await;
}

// 11. (missed while offline, history only)
#[tokio::test]
async fn last_seq_at_connect_replays_what_was_missed_while_offline() {
    let hub = started(config(|c| c.offline_enabled = false));
    let mut ivy = hub.register(Identity::new("ivy")).await.unwrap();
    send(&hub, "ivy", "m1").await;
    send(&hub, "ivy", "m2").await;
    assert_eq!(drain(&mut ivy).len(), 2);
    drop(ivy);
    for i in 3..=6 {
        send(&hub, "ivy", &format!("m{i}")).await;
    }

    let mut ivy = hub
        .register(Identity::new("ivy").with_last_seq(2))
        .await
        .unwrap();
    send(&hub, "ivy", "live").await;
    let frames = drain(&mut ivy);
    let (replayed, recovered) = split_recovered(&frames[..frames.len() - 1]);
    assert_eq!(contents(replayed), ["m3", "m4", "m5", "m6"], "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    assert_eq!(recovered["data"]["replayed"], 4, "{recovered}");
    let live = frames.last().unwrap();
    assert_eq!((live["content"].as_str(), seq(live)), (Some("live"), 7));
}

// 11. (a `resume` frame on a live connection)
#[tokio::test]
async fn resume_frame_replays_after_the_given_seq() {
    let hub = started(HubConfig::default());
    let mut jo = hub.register(Identity::new("jo")).await.unwrap();
    for i in 1..=4 {
        send(&hub, "jo", &format!("m{i}")).await;
    }
    assert_eq!(drain(&mut jo).len(), 4);

    jo.handle_text(r#"{"message_type":"resume","seq_no":1}"#)
        .await;
    let frames = drain(&mut jo);
    let (replayed, recovered) = split_recovered(&frames);
    assert_eq!(contents(replayed), ["m2", "m3", "m4"], "{frames:?}");
    assert_eq!(replayed.iter().map(seq).collect::<Vec<_>>(), [2, 3, 4]);
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    assert_eq!(recovered["data"]["replayed"], 3, "{recovered}");

    // Resuming at the latest number is complete with nothing to replay.
    jo.handle_text(r#"{"message_type":"resume","seq_no":4}"#)
        .await;
    let frames = drain(&mut jo);
    let (replayed, recovered) = split_recovered(&frames);
    assert!(replayed.is_empty(), "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    assert_eq!(recovered["data"]["replayed"], 0, "{recovered}");
}

/// With the offline store on (the default) and `last_seq` presented, a message missed while
/// offline is both in the store and in the history window: it must still arrive once.
#[tokio::test]
async fn resume_after_an_offline_gap_delivers_each_missed_message_once() {
    let hub = started(HubConfig::default());
    let mut kim = hub.register(Identity::new("kim")).await.unwrap();
    send(&hub, "kim", "m1").await;
    assert_eq!(drain(&mut kim).len(), 1);
    drop(kim);
    for i in 2..=4 {
        send(&hub, "kim", &format!("m{i}")).await;
    }

    let mut kim = hub
        .register(Identity::new("kim").with_last_seq(1))
        .await
        .unwrap();
    let frames = drain(&mut kim);
    let (replayed, recovered) = split_recovered(&frames);
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for frame in replayed {
        *copies
            .entry(frame["message_id"].as_str().unwrap())
            .or_default() += 1;
    }
    assert_eq!(
        contents(replayed),
        ["m2", "m3", "m4"],
        "each missed message must arrive exactly once (copies per message_id: {copies:?})"
    );
}

// 12.
#[tokio::test]
async fn resume_outside_the_window_is_not_recovered() {
    let hub = started(config(|c| {
        c.history_size = 3;
        c.offline_enabled = false;
        c.max_connections_per_user = 0;
        c.multi_login = wsc_hub::MultiLoginPolicy::AllowAll;
    }));
    let _lea = hub.register(Identity::new("lea")).await.unwrap();
    for i in 1..=6 {
        send(&hub, "lea", &format!("m{i}")).await;
    }
    // The window holds seq 4, 5, 6.
    let resume_at = |last_seq: i64| {
        let hub = hub.clone();
        async move {
            let mut reg = hub
                .register(Identity::new("lea").with_last_seq(last_seq))
                .await
                .unwrap();
            drain(&mut reg)
        }
    };
    for last_seq in [0, 1, 2] {
        let frames = resume_at(last_seq).await;
        let (replayed, recovered) = split_recovered(&frames);
        assert!(replayed.is_empty(), "last_seq {last_seq}: {frames:?}");
        assert_eq!(recovered["data"]["recovered"], false, "{recovered}");
        assert_eq!(recovered["data"]["replayed"], 0, "{recovered}");
        assert_eq!(recovered["data"]["latest_seq"], 6, "{recovered}");
    }
    // Exactly covered: 4, 5, 6.
    let frames = resume_at(3).await;
    let (replayed, recovered) = split_recovered(&frames);
    assert_eq!(contents(replayed), ["m4", "m5", "m6"]);
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    // Ahead of the latest number: the client knows something the server does not.
    let frames = resume_at(7).await;
    let (replayed, recovered) = split_recovered(&frames);
    assert!(replayed.is_empty(), "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], false, "{recovered}");
    assert_eq!(recovered["data"]["from_seq"], 7, "{recovered}");

    // The same through a resume frame.
    let mut live = hub.register(Identity::new("lea")).await.unwrap();
    live.handle_text(r#"{"message_type":"resume","seq_no":1}"#)
        .await;
    let frames = drain(&mut live);
    let (replayed, recovered) = split_recovered(&frames);
    assert!(replayed.is_empty(), "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], false, "{recovered}");
}

// 12. (the window also ends with the history TTL)
#[tokio::test(start_paused = true)]
async fn resume_after_the_history_ttl_is_not_recovered() {
    let hub = started(config(|c| {
        c.history_ttl = Duration::from_secs(10);
        c.offline_enabled = false;
    }));
    let mut max = hub.register(Identity::new("max")).await.unwrap();
    send(&hub, "max", "m1").await;
    send(&hub, "max", "m2").await;
    tokio::time::advance(Duration::from_secs(6)).await;
    send(&hub, "max", "m3").await;
    drain(&mut max);
    tokio::time::advance(Duration::from_secs(5)).await;
    // m1 and m2 expired; m3 has 5 s left.
    max.handle_text(r#"{"message_type":"resume","seq_no":2}"#)
        .await;
    let frames = drain(&mut max);
    let (replayed, recovered) = split_recovered(&frames);
    assert_eq!(contents(replayed), ["m3"], "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], true, "{recovered}");
    max.handle_text(r#"{"message_type":"resume","seq_no":1}"#)
        .await;
    let frames = drain(&mut max);
    let (replayed, recovered) = split_recovered(&frames);
    assert!(replayed.is_empty(), "{frames:?}");
    assert_eq!(recovered["data"]["recovered"], false, "{recovered}");
}

/// Reads `n` message frames; returns (content, seq_no) pairs.
async fn read_n<S>(client: &mut Client<S>, n: usize) -> Vec<(String, i64)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let frame = client.recv_json().await;
        out.push((frame["content"].as_str().unwrap().to_owned(), seq(&frame)));
    }
    out
}

fn assert_strictly_increasing(device: &str, frames: &[(String, i64)]) {
    for pair in frames.windows(2) {
        assert!(
            pair[0].1 < pair[1].1,
            "{device}: seq_no not increasing: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
}

// 13.
#[tokio::test]
async fn one_senders_messages_arrive_in_order_on_every_device() {
    const N: usize = 200;
    let server = TestServer::start(HubConfig::default()).await;
    let mut phone = server.connect_ready("user_id=ola&client_id=phone").await;
    let mut tablet = server.connect_ready("user_id=ola&client_id=tablet").await;
    let readers = (
        tokio::spawn(async move { read_n(&mut phone, N).await }),
        tokio::spawn(async move { read_n(&mut tablet, N).await }),
    );
    for k in 0..N {
        let report = server
            .hub
            .send_to_user("ola", HubMessage::text(format!("k{k}")))
            .await
            .unwrap();
        assert_eq!(report.delivered, 2, "{report:?}");
    }
    let expected: Vec<String> = (0..N).map(|k| format!("k{k}")).collect();
    for (device, reader) in [("phone", readers.0), ("tablet", readers.1)] {
        let frames = reader.await.unwrap();
        let got: Vec<String> = frames.iter().map(|(c, _)| c.clone()).collect();
        assert_eq!(got, expected, "{device}: out of order");
        assert_strictly_increasing(device, &frames);
        assert_eq!(frames[0].1, 1);
        assert_eq!(frames[N - 1].1, N as i64);
    }
}

// 13. (several concurrent senders on a multi-thread runtime: each sender's order holds and
// seq_no still increases at every device)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_senders_keep_their_order_and_seq_no_increases() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 100;
    // The senders may outrun the readers: room for everything, no slow-consumer close.
    let server = TestServer::start(config(|c| {
        c.queue_capacity = 1024;
        c.queue_max_bytes = 16 * 1024 * 1024;
    }))
    .await;
    let mut phone = server.connect_ready("user_id=pia&client_id=phone").await;
    let mut tablet = server.connect_ready("user_id=pia&client_id=tablet").await;
    let total = SENDERS * PER_SENDER;
    let readers = (
        tokio::spawn(async move { read_n(&mut phone, total).await }),
        tokio::spawn(async move { read_n(&mut tablet, total).await }),
    );
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let hub = server.hub.clone();
        senders.push(tokio::spawn(async move {
            for k in 0..PER_SENDER {
                let msg = HubMessage {
                    sender: format!("s{s}"),
                    ..HubMessage::text(format!("s{s}:{k}"))
                };
                hub.send_to_user("pia", msg).await.unwrap();
            }
        }));
    }
    for sender in senders {
        sender.await.unwrap();
    }
    for (device, reader) in [("phone", readers.0), ("tablet", readers.1)] {
        let frames = reader.await.unwrap();
        assert_strictly_increasing(device, &frames);
        let mut next = [0usize; SENDERS];
        for (content, _) in &frames {
            let (s, k) = content[1..].split_once(':').unwrap();
            let (s, k): (usize, usize) = (s.parse().unwrap(), k.parse().unwrap());
            assert_eq!(k, next[s], "{device}: sender s{s} out of order");
            next[s] += 1;
        }
        assert_eq!(next, [PER_SENDER; SENDERS]);
    }
}
