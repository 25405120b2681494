//! Criterion benchmarks of the hub's in-memory routing (broadcast, one user, one group)
//! and of the wire codec. No sockets: connections are bare [`wsc_hub::Registration`]s
//! whose queues the benchmark drains itself, outside the timed region.
//!
//! Run: `cargo bench -p wsc-hub --bench routing -- --warm-up-time 1 --measurement-time 3`.

mod support;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use wsc_hub::codec::{self, DecodeLimits};
use wsc_hub::{
    BroadcastOptions, Hub, HubMessage, Identity, MessageType, Outbound, Registration,
    SlowConsumerPolicy,
};

/// Connections (one per distinct user) registered on the hub.
const CONNECTIONS: usize = 10_000;
/// The user `route_one_user_among_10k` addresses.
const TARGET_USER: usize = 5_000;
/// Every `GROUP_STRIDE`-th user is in the group: 1,000 members among 10,000 connections.
const GROUP_STRIDE: usize = 10;
const GROUP_ID: &str = "group-1k";
/// Per-connection queue length; the timed chunks never queue more than this.
const QUEUE_CAPACITY: usize = 1024;

/// A 100-byte `content`, ASCII.
const CONTENT: &str = "Hello! Your order #A1B2C3 has shipped and should arrive on Thursday. Reply STOP to unsubscribe. OK!!";

/// A typical chat message from one user to another; ids and timestamp left for the hub.
fn typical_message() -> HubMessage {
    HubMessage {
        message_type: MessageType::Text,
        sender: "user-1234".to_owned(),
        sender_type: "customer".to_owned(),
        receiver: "user-5000".to_owned(),
        receiver_type: "agent".to_owned(),
        session_id: "sess-0197a3b2c4d5".to_owned(),
        content: CONTENT.to_owned(),
        ..HubMessage::default()
    }
}

/// The same message as the hub encodes it: id, message id and timestamp filled in.
fn prepared_message() -> HubMessage {
    let id = "0197a3b2-c4d5-7e6f-8a9b-0c1d2e3f4a5b".to_owned();
    HubMessage {
        message_id: id.clone(),
        id,
        create_at: "2025-06-01T12:34:56.789Z".to_owned(),
        ..typical_message()
    }
}

fn user(i: usize) -> String {
    format!("user-{i}")
}

/// A started hub with `CONNECTIONS` registered connections (one per user) and a group of
/// every `GROUP_STRIDE`-th user, plus the registrations (kept alive by the caller).
struct Fixture {
    rt: Runtime,
    hub: Hub,
    regs: Vec<Registration>,
}

impl Fixture {
    fn new() -> Self {
        let rt = support::runtime();
        let mut config = support::quiet_config();
        config.queue_capacity = QUEUE_CAPACITY;
        config.queue_max_bytes = 64 * 1024 * 1024;
        config.max_connections = 0;
        config.max_connections_per_user = 0;
        config.slow_consumer = SlowConsumerPolicy::DropMessage;
        config.max_inbound_per_second = 0;
        let (hub, regs) = rt.block_on(async {
            let hub = Hub::new(config);
            hub.start();
            let mut regs = Vec::with_capacity(CONNECTIONS);
            for i in 0..CONNECTIONS {
                let identity = Identity::new(user(i)).with_client_id(format!("client-{i}"));
                regs.push(hub.register(identity).await.expect("register"));
            }
            (hub, regs)
        });
        for i in (0..CONNECTIONS).step_by(GROUP_STRIDE) {
            rt.block_on(hub.join_group(GROUP_ID, &user(i))).unwrap();
        }
        assert_eq!(hub.connection_count(), CONNECTIONS);
        assert_eq!(
            rt.block_on(hub.group_members(GROUP_ID)).unwrap().len(),
            CONNECTIONS / GROUP_STRIDE
        );
        Fixture { rt, hub, regs }
    }

    /// Empties the queues of the given registrations; returns how many messages it took.
    fn drain(&mut self, indices: impl IntoIterator<Item = usize>) -> usize {
        let mut messages = 0;
        for i in indices {
            while let Some(frame) = self.regs[i].try_recv() {
                if let Outbound::Message(payload) = frame {
                    black_box(payload);
                    messages += 1;
                }
            }
        }
        messages
    }

    /// Nothing was dropped so far: every send reached every target.
    fn assert_nothing_dropped(&self) {
        let stats = self.hub.stats();
        assert_eq!(stats.messages_dropped, 0, "a queue overflowed: {stats:?}");
        assert_eq!(stats.connections, CONNECTIONS as u64);
    }
}

fn group_indices() -> impl Iterator<Item = usize> + Clone {
    (0..CONNECTIONS).step_by(GROUP_STRIDE)
}

/// Times `iters` sends in chunks of at most `chunk`: the chunk's messages are cloned
/// before the clock starts, the sends are timed, then `drain` empties the queues untimed.
fn timed_sends(
    fx: &mut Fixture,
    iters: u64,
    chunk: u64,
    mut send: impl FnMut(&Fixture, HubMessage),
    mut drain: impl FnMut(&mut Fixture),
) -> Duration {
    let template = typical_message();
    let mut batch: Vec<HubMessage> = Vec::with_capacity(chunk as usize);
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(chunk);
        batch.extend((0..n).map(|_| template.clone()));
        let start = Instant::now();
        for msg in batch.drain(..) {
            send(fx, msg);
        }
        total += start.elapsed();
        drain(fx);
        left -= n;
    }
    total
}

fn routing(c: &mut Criterion) {
    let mut fx = Fixture::new();

    // Sanity: each route reaches exactly the expected connections.
    let report = fx
        .rt
        .block_on(
            fx.hub
                .broadcast(typical_message(), BroadcastOptions::default()),
        )
        .expect("broadcast");
    assert_eq!(report.delivered, CONNECTIONS);
    assert_eq!(fx.drain(0..CONNECTIONS), CONNECTIONS);
    let report = fx
        .rt
        .block_on(fx.hub.send_to_user(&user(TARGET_USER), typical_message()))
        .expect("send_to_user");
    assert_eq!(report.delivered, 1);
    assert_eq!(fx.drain(0..CONNECTIONS), 1);
    let report = fx
        .rt
        .block_on(fx.hub.send_to_group(GROUP_ID, typical_message()))
        .expect("send_to_group");
    assert_eq!(report.delivered, CONNECTIONS / GROUP_STRIDE);
    assert_eq!(fx.drain(0..CONNECTIONS), CONNECTIONS / GROUP_STRIDE);

    let mut group = c.benchmark_group("routing");

    // One broadcast per chunk: the queues hold at most one message when it runs, as with
    // writers that keep up.
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    group.bench_function("fanout_broadcast_10k", |b| {
        b.iter_custom(|iters| {
            timed_sends(
                &mut fx,
                iters,
                1,
                |fx, msg| {
                    let report = fx
                        .rt
                        .block_on(fx.hub.broadcast(msg, BroadcastOptions::default()));
                    black_box(report.expect("broadcast"));
                },
                |fx| {
                    fx.drain(0..CONNECTIONS);
                },
            )
        })
    });
    fx.assert_nothing_dropped();

    // Up to 64 sends per chunk (amortizes the clock reads); the queue stays under 64.
    let target = user(TARGET_USER);
    group.throughput(Throughput::Elements(1));
    group.bench_function("route_one_user_among_10k", |b| {
        b.iter_custom(|iters| {
            timed_sends(
                &mut fx,
                iters,
                64,
                |fx, msg| {
                    let report = fx.rt.block_on(fx.hub.send_to_user(&target, msg));
                    black_box(report.expect("send_to_user"));
                },
                |fx| {
                    fx.drain([TARGET_USER]);
                },
            )
        })
    });
    fx.assert_nothing_dropped();

    group.throughput(Throughput::Elements((CONNECTIONS / GROUP_STRIDE) as u64));
    group.bench_function("send_to_group_1k_of_10k", |b| {
        b.iter_custom(|iters| {
            timed_sends(
                &mut fx,
                iters,
                1,
                |fx, msg| {
                    let report = fx.rt.block_on(fx.hub.send_to_group(GROUP_ID, msg));
                    black_box(report.expect("send_to_group"));
                },
                |fx| {
                    fx.drain(group_indices());
                },
            )
        })
    });
    fx.assert_nothing_dropped();
    group.finish();

    // Unregister everything inside the runtime, as a transport would.
    let Fixture { rt, hub, regs } = fx;
    rt.block_on(async move {
        drop(regs);
        assert_eq!(hub.connection_count(), 0);
    });
}

fn codec_benches(c: &mut Criterion) {
    let msg = prepared_message();
    assert_eq!(msg.content.len(), 100);
    let encoded = codec::encode(&msg).expect("encode");
    let text = encoded.as_str().to_owned();
    let limits = DecodeLimits::default();
    assert_eq!(codec::decode(&text, limits).expect("decode"), msg);

    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("codec_encode", |b| {
        b.iter(|| codec::encode(black_box(&msg)).expect("encode"))
    });
    group.bench_function("codec_decode", |b| {
        b.iter(|| codec::decode(black_box(&text), limits).expect("decode"))
    });
    group.finish();
}

criterion_group!(benches, routing, codec_benches);
criterion_main!(benches);
