//! A fixed routing workload for instruction counts (`valgrind --tool=callgrind`), which,
//! unlike timings, repeat exactly on a shared machine: 10,000 registered connections, then
//! 20 broadcasts (`bcast`), 20,000 sends to one user (`user`) or nothing (`none`, the cost of
//! registering and unregistering, to subtract).
//!
//! ```sh
//! cargo build --release -p examples --example route_probe
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/route_probe bcast 2>&1 | grep refs
//! ```

use wsc_hub::{BroadcastOptions, Hub, HubConfig, HubMessage, Identity, SlowConsumerPolicy};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut config = HubConfig::default();
    config.queue_capacity = 1024;
    config.queue_max_bytes = 64 << 20;
    config.max_connections = 0;
    config.max_connections_per_user = 0;
    config.slow_consumer = SlowConsumerPolicy::DropMessage;
    let hub = Hub::new(config);
    hub.start();
    let mut connections = Vec::new();
    for i in 0..10_000 {
        let identity = Identity::new(format!("user-{i}"));
        connections.push(hub.register(identity).await.expect("register"));
    }
    let mode = std::env::args().nth(1).unwrap_or_default();
    for _ in 0..20 {
        match mode.as_str() {
            "none" => {}
            "user" => {
                for _ in 0..1000 {
                    let _ = hub.send_to_user("user-77", HubMessage::text("hello")).await;
                }
            }
            _ => {
                let _ = hub
                    .broadcast(HubMessage::text("hello"), BroadcastOptions::default())
                    .await;
            }
        }
        for connection in connections.iter_mut() {
            while connection.try_recv().is_some() {}
        }
    }
}
