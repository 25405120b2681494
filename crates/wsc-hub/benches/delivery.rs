//! Criterion benchmarks of acknowledged delivery: the ack round trip of one
//! `send_to_user_with_ack` (send, the client's ack, the settled report) and the acked
//! throughput to one user with 64 deliveries in flight. No sockets: the "client" is a
//! responder on the same current-thread runtime that reads the bare [`Registration`] and
//! feeds the ack back through [`Registration::handle_text`], the transport's inbound path.
//!
//! Run: `cargo bench -p wsc-hub --bench delivery -- --warm-up-time 1 --measurement-time 3`.
//! Besides criterion's estimates, it prints latency percentiles of the round trip (and the
//! no-ack baseline) over 20,000 individually timed samples.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;
use tokio::runtime::Runtime;
use wsc_hub::{Hub, HubMessage, Identity, MessageType, Outbound, Registration};

const USER: &str = "user-5000";
/// The ack timeout: far above any round trip, so no resend ever happens (asserted).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// Individually timed round trips for the percentiles.
const SAMPLES: usize = 20_000;
/// Acked messages per throughput iteration, and how many are in flight at once.
const BATCH: usize = 10_000;
const IN_FLIGHT: usize = 64;

/// A 100-byte `content`, ASCII (the same message as the routing benchmarks).
const CONTENT: &str = "Hello! Your order #A1B2C3 has shipped and should arrive on Thursday. Reply STOP to unsubscribe. OK!!";

/// A chat message; `id`, `message_id` and `create_at` are left for the hub to generate.
fn typical_message() -> HubMessage {
    HubMessage {
        message_type: MessageType::Text,
        sender: "user-1234".to_owned(),
        sender_type: "customer".to_owned(),
        receiver: USER.to_owned(),
        receiver_type: "agent".to_owned(),
        session_id: "sess-0197a3b2c4d5".to_owned(),
        content: CONTENT.to_owned(),
        ..HubMessage::default()
    }
}

struct Fixture {
    rt: Runtime,
    hub: Hub,
    reg: Registration,
}

impl Fixture {
    fn new() -> Self {
        let rt = support::runtime();
        let mut config = support::quiet_config();
        // Every ack is an inbound frame: no inbound rate limit.
        config.max_inbound_per_second = 0;
        config.max_inbound_bytes_per_second = 0;
        config.queue_capacity = 1024;
        config.max_pending_acks = 0;
        let (hub, reg) = rt.block_on(async {
            let hub = Hub::new(config);
            hub.start();
            let reg = hub
                .register(Identity::new(USER).with_client_id("client-5000"))
                .await
                .expect("register");
            (hub, reg)
        });
        Fixture { rt, hub, reg }
    }
}

/// The `message_id` of an encoded frame, found the way a minimal client would (no full
/// decode).
fn message_id(frame: &str) -> &str {
    const KEY: &str = "\"message_id\":\"";
    let start = frame.find(KEY).expect("frame without message_id") + KEY.len();
    let len = frame[start..].find('"').expect("unterminated message_id");
    &frame[start..start + len]
}

/// Waits for the next message frame and acks it through the inbound path.
async fn respond(reg: &mut Registration) {
    loop {
        match reg.recv().await.expect("queue closed") {
            Outbound::Message(payload) => {
                let ack = format!(
                    r#"{{"message_type":"ack","message_id":"{}"}}"#,
                    message_id(payload.as_str())
                );
                reg.handle_text(&ack).await;
                return;
            }
            _ => continue,
        }
    }
}

/// One acked send: the send future and the responder, joined on the same task.
async fn round_trip(hub: &Hub, reg: &mut Registration) {
    let send = hub.send_to_user_with_ack(USER, typical_message(), ACK_TIMEOUT, 0);
    let (report, ()) = tokio::join!(send, respond(reg));
    let report = report.expect("send_to_user_with_ack");
    debug_assert!(report.all_acked());
    black_box(report);
}

/// The no-ack baseline: `send_to_user`, then the responder reads the frame.
async fn send_and_read(hub: &Hub, reg: &mut Registration) {
    let report = hub
        .send_to_user(USER, typical_message())
        .await
        .expect("send_to_user");
    black_box(report);
    loop {
        if let Outbound::Message(payload) = reg.recv().await.expect("queue closed") {
            black_box(payload);
            return;
        }
    }
}

/// `count` acked sends with at most `IN_FLIGHT` waiting at once, answered by one responder.
async fn acked_batch(hub: &Hub, reg: &mut Registration, count: usize) {
    let sends = futures_util::stream::iter(0..count)
        .map(|_| hub.send_to_user_with_ack(USER, typical_message(), ACK_TIMEOUT, 0))
        .buffer_unordered(IN_FLIGHT)
        .for_each(|report| {
            let report = report.expect("send_to_user_with_ack");
            assert!(report.all_acked(), "{report:?}");
            std::future::ready(())
        });
    let responder = async {
        for _ in 0..count {
            respond(reg).await;
        }
    };
    tokio::join!(sends, responder);
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Times `SAMPLES` runs of `op` one by one and prints the distribution.
fn print_percentiles(
    name: &str,
    fx: &mut Fixture,
    mut op: impl AsyncFnMut(&Hub, &mut Registration),
) {
    let Fixture { rt, hub, reg } = fx;
    let mut samples = rt.block_on(async {
        for _ in 0..2_000 {
            op(hub, reg).await; // warm-up
        }
        let mut samples = Vec::with_capacity(SAMPLES);
        for _ in 0..SAMPLES {
            let start = Instant::now();
            op(hub, reg).await;
            samples.push(start.elapsed());
        }
        samples
    });
    samples.sort_unstable();
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name}: n={} mean={:.2?} p50={:.2?} p90={:.2?} p99={:.2?} p99.9={:.2?} max={:.2?}",
        samples.len(),
        mean,
        percentile(&samples, 0.50),
        percentile(&samples, 0.90),
        percentile(&samples, 0.99),
        percentile(&samples, 0.999),
        samples[samples.len() - 1],
    );
}

/// Every ack settled the delivery on the first attempt, and nothing is left waiting.
fn assert_clean(hub: &Hub) {
    let stats = hub.stats();
    assert_eq!(stats.ack_resends, 0, "a timeout fired: {stats:?}");
    assert_eq!(stats.ack_failures, 0, "{stats:?}");
    assert_eq!(stats.acks_pending, 0, "{stats:?}");
    assert_eq!(stats.invalid_frames, 0, "{stats:?}");
    assert_eq!(stats.messages_dropped, 0, "{stats:?}");
}

fn delivery(c: &mut Criterion) {
    let mut fx = Fixture::new();

    // Sanity: one acked round trip is confirmed by the registration's client id.
    fx.rt.block_on(async {
        let send = fx
            .hub
            .send_to_user_with_ack(USER, typical_message(), ACK_TIMEOUT, 0);
        let (report, ()) = tokio::join!(send, respond(&mut fx.reg));
        let report = report.unwrap();
        assert_eq!(report.outcomes[0].attempts, 1);
        assert!(report.all_acked(), "{report:?}");
    });
    assert_eq!(fx.hub.stats().acks_confirmed, 1);

    print_percentiles("ack_round_trip", &mut fx, async |hub, reg| {
        round_trip(hub, reg).await
    });
    print_percentiles("send_and_read_no_ack", &mut fx, async |hub, reg| {
        send_and_read(hub, reg).await
    });
    assert_clean(&fx.hub);

    let mut group = c.benchmark_group("delivery");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ack_round_trip", |b| {
        b.iter_custom(|iters| {
            let Fixture { rt, hub, reg } = &mut fx;
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    round_trip(hub, reg).await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("send_and_read_no_ack", |b| {
        b.iter_custom(|iters| {
            let Fixture { rt, hub, reg } = &mut fx;
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    send_and_read(hub, reg).await;
                }
                start.elapsed()
            })
        })
    });
    assert_clean(&fx.hub);

    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.bench_function("acked_throughput_10k_64_in_flight", |b| {
        b.iter_custom(|iters| {
            let Fixture { rt, hub, reg } = &mut fx;
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    acked_batch(hub, reg, BATCH).await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    assert_clean(&fx.hub);

    // One more timed batch, printed as messages per second.
    let Fixture { rt, hub, reg } = &mut fx;
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        acked_batch(hub, reg, BATCH).await;
        start.elapsed()
    });
    println!(
        "acked_throughput: {BATCH} acked messages, {IN_FLIGHT} in flight, in {elapsed:.2?} = {:.0} messages/s",
        BATCH as f64 / elapsed.as_secs_f64()
    );
    assert_clean(hub);

    let Fixture { rt, hub, reg } = fx;
    rt.block_on(async move {
        drop(reg);
        assert_eq!(hub.connection_count(), 0);
    });
}

criterion_group!(benches, delivery);
criterion_main!(benches);
