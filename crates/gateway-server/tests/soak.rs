//! A short soak in the test command (`wsc_bench::soak::Options::short`): half a minute of
//! churn, user, acked, group and broadcast sends, kicks and sends to users who never come,
//! against the real `gateway-server` binary. It fails when resident memory grows more than
//! 10% after warm-up, when connections, descriptors or pending acks do not come back, or
//! when a send the API reported `acked` never reached its user. `cargo xtask soak --minutes
//! N` runs the full one against the release binary.

use std::path::Path;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_keeps_memory_flat_and_loses_no_acknowledged_message() {
    let options = wsc_bench::soak::Options::short();
    let binary = Path::new(env!("CARGO_BIN_EXE_gateway-server"));
    let server = wsc_bench::soak::start_server(binary, &options).expect("the server starts");
    let report = wsc_bench::soak::run(server.public, server.api, server.pid(), &options).await;
    println!("{}", report.table());
    // The workload really ran: connections came and went, sends were acked and delivered.
    assert!(report.connections_opened > 300, "{report:?}");
    assert!(report.acked > 20, "{report:?}");
    assert!(report.received > 1_000, "{report:?}");
    if let Err(failures) = report.check() {
        panic!("{}\n{}", failures.join("\n"), report.table());
    }
}
