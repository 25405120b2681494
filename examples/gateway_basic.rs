//! The seed's basic gateway: built from a configuration file, it welcomes every user who
//! connects, tells the others, and prints the online users and the stats; Ctrl-C stops it.
//!
//! Run: `cargo run -p examples --example gateway_basic [config.yaml]`
//! (default: `examples/config/gateway.yaml`, free local ports printed at start).

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), gateway::GatewayError> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(examples::CONFIG));
    let (lines, mut printed) = tokio::sync::mpsc::unbounded_channel();
    let gateway = examples::gateway_basic::start(&path, lines).await?;
    tokio::spawn(async move {
        while let Some(line) = printed.recv().await {
            println!("{line}");
        }
    });
    gateway.wait_for_shutdown().await;
    println!("stopped");
    Ok(())
}
