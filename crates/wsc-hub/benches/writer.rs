//! Criterion benchmark of the WebSocket writer: broadcasts to connections served by
//! `tungstenite::serve`, each over an in-memory pipe whose far end a reader task drains, timed
//! until every frame has been written. It covers what the routing benchmarks stop short of:
//! the queue's reader side, the batching and the write of the frames themselves. (A pipe is
//! not a socket: the kernel's share of a real write, about half of the server's time at
//! saturated fan-out, is measured by `wsc-bench`, not here.)
//!
//! Run: `cargo bench -p wsc-hub --bench writer -- --warm-up-time 1 --measurement-time 3`.

mod support;

use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::io::AsyncReadExt;
use tokio::runtime::Runtime;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use wsc_hub::{BroadcastOptions, Hub, HubMessage, Identity, MessageType};

/// Connections each broadcast reaches.
const CONNECTIONS: usize = 100;
/// Broadcasts per iteration.
const BROADCASTS: usize = 100;

/// A 100-byte `content` (the same as the other benchmarks).
const CONTENT: &str = "Hello! Your order #A1B2C3 has shipped and should arrive on Thursday. Reply STOP to unsubscribe. OK!!";

struct Fixture {
    rt: Runtime,
    hub: Hub,
}

impl Fixture {
    fn new() -> Self {
        let rt = support::runtime();
        let mut config = support::quiet_config();
        config.queue_capacity = 2 * BROADCASTS;
        let hub = rt.block_on(async {
            let hub = Hub::new(config);
            hub.start();
            for i in 0..CONNECTIONS {
                let (server_io, mut client_io) = tokio::io::duplex(64 * 1024);
                let settings = wsc_hub::tungstenite::websocket_config(&hub.config());
                let ws =
                    WebSocketStream::from_raw_socket(server_io, Role::Server, Some(settings)).await;
                let registration = hub
                    .register(Identity::new(format!("user-{i}")))
                    .await
                    .expect("register");
                tokio::spawn(wsc_hub::tungstenite::serve(registration, ws));
                // The client: reads and discards, as fast as the pipe gives.
                tokio::spawn(async move {
                    let mut sink = vec![0u8; 64 * 1024];
                    while matches!(client_io.read(&mut sink).await, Ok(n) if n > 0) {}
                });
            }
            hub
        });
        Fixture { rt, hub }
    }

    /// Broadcasts `BROADCASTS` messages and waits until every frame has been written.
    async fn burst(&self) {
        let target = self.hub.stats().messages_out + (CONNECTIONS * BROADCASTS) as u64;
        for _ in 0..BROADCASTS {
            let report = self
                .hub
                .broadcast(
                    HubMessage::new(MessageType::Text, CONTENT),
                    BroadcastOptions::default(),
                )
                .await
                .expect("broadcast");
            assert_eq!(report.delivered, CONNECTIONS);
        }
        while self.hub.stats().messages_out < target {
            tokio::task::yield_now().await;
        }
    }
}

fn writer(c: &mut Criterion) {
    let fx = Fixture::new();
    let mut group = c.benchmark_group("writer");
    group.throughput(Throughput::Elements((CONNECTIONS * BROADCASTS) as u64));
    group.bench_function("broadcast_100_to_100_connections_written", |b| {
        b.iter_custom(|iters| {
            fx.rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    fx.burst().await;
                }
                start.elapsed()
            })
        })
    });
    group.finish();
    let stats = fx.hub.stats();
    assert_eq!(stats.messages_dropped, 0, "{stats:?}");
}

criterion_group!(benches, writer);
criterion_main!(benches);
