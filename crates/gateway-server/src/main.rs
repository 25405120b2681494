//! The `gateway-server` binary: `gateway-server [--config <file>]`.
//!
//! Runs on embedded defaults without a file (no Redis, nothing external). Environment
//! variables override any key (`GATEWAY__WSC__NODE_PORT=9000`). SIGINT/SIGTERM stop it
//! gracefully: clients get close 1001 and the process exits 0.

use std::process::ExitCode;
use std::time::Duration;

use gateway_server::Server;
use wsc_config::Loader;

const USAGE: &str = "usage: gateway-server [--config <file>]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut loader = Loader::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => match args.next() {
                Some(path) => loader = loader.file(path),
                None => {
                    eprintln!("--config needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let config = match loader.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.logging.level));
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let running = match Server::new(config).start().await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "gateway-server listening: WebSocket ws://{}/ws?user_id=<id>, API http://{}",
        running.public_addr(),
        running.api_addr()
    );
    shutdown_signal().await;
    println!("shutting down");
    if running.stop(Duration::from_secs(10)).await {
        ExitCode::SUCCESS
    } else {
        eprintln!("shutdown deadline passed with connections still open");
        ExitCode::SUCCESS
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
