//! The seed's callbacks, middleware, events and interceptors on one gateway.
//!
//! Run: `cargo run -p examples --example gateway_callbacks [config.yaml]`, then connect with
//! `x-session: alice` (or `?user_id=alice`) and send `{"content":"  hi  "}`.

use std::path::PathBuf;

#[tokio::main]
async fn main() -> Result<(), gateway::GatewayError> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(examples::CONFIG));
    let (lines, mut printed) = tokio::sync::mpsc::unbounded_channel();
    let gateway = examples::gateway_callbacks::start(&path, lines).await?;
    if let Some((ws, api, _)) = gateway.addresses().await {
        println!("listening: ws://{ws}/ws api=http://{api}");
    }
    tokio::spawn(async move {
        while let Some(line) = printed.recv().await {
            println!("{line}");
        }
    });
    gateway.wait_for_shutdown().await;
    println!("stopped");
    Ok(())
}
