//! The `gateway-server` binary.
//!
//! ```text
//! gateway-server [--config <file>]        run (embedded defaults without a file)
//! gateway-server --check-config <file>    validate a file: exit 0, or 2 with every problem
//! gateway-server --print-config [<file>]  print the effective configuration, secrets masked
//! ```
//!
//! Environment variables override any key (`GATEWAY__WSC__NODE_PORT=9000`). With a file, the
//! runtime-safe keys hot-reload when it changes. SIGINT/SIGTERM stop the server gracefully:
//! clients get close 1001 and the process exits 0.

use std::process::ExitCode;
use std::time::Duration;

use gateway_server::Server;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};
use wsc_config::{Loader, LogFormat};

const USAGE: &str =
    "usage: gateway-server [--config <file>] | --check-config <file> | --print-config [<file>]";

enum Mode {
    Run,
    Check,
    Print,
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut loader = Loader::new();
    let mut mode = Mode::Run;
    let mut has_file = false;
    while let Some(arg) = args.next() {
        let needs_file = match arg.as_str() {
            "--config" | "-c" => true,
            "--check-config" => {
                mode = Mode::Check;
                true
            }
            "--print-config" => {
                mode = Mode::Print;
                false
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other if !other.starts_with('-') && matches!(mode, Mode::Print) && !has_file => {
                loader = loader.file(other);
                has_file = true;
                continue;
            }
            other => {
                eprintln!("unknown argument `{other}`\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        if needs_file {
            match args.next() {
                Some(path) => {
                    loader = loader.file(path);
                    has_file = true;
                }
                None => {
                    eprintln!("{arg} needs a file\n{USAGE}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let loaded = match loader.load() {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    match mode {
        Mode::Check => {
            println!("configuration is valid");
            return ExitCode::SUCCESS;
        }
        Mode::Print => {
            let text = serde_json::to_string_pretty(&loaded.config.redacted()).unwrap_or_default();
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Mode::Run => {}
    }
    let config = loaded.config;

    let (filter, log_level) = reload::Layer::new(level_filter(&config.logging.level));
    let registry = tracing_subscriber::registry().with(filter);
    match config.logging.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .init(),
        _ => registry.with(tracing_subscriber::fmt::layer()).init(),
    }

    let running = match Server::new(config.clone()).start().await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if has_file {
        match wsc_config::watch_file(loader, config, Duration::from_millis(250)) {
            Ok(mut watch) => {
                let mut updates = watch.subscribe();
                let applier = running.config_applier();
                tokio::spawn(async move {
                    while updates.changed().await.is_ok() {
                        let config = updates.borrow_and_update().clone();
                        applier.apply(&config);
                        let _ = log_level.modify(|f| *f = level_filter(&config.logging.level));
                    }
                });
                // The watcher logs applied keys, restart-only keys and rejections; the new
                // file's warnings (unknown keys, seed keys) are logged here.
                tokio::spawn(async move {
                    while let Some(event) = watch.next_event().await {
                        if let wsc_config::ReloadEvent::Applied { warnings, .. } = event {
                            for warning in warnings {
                                tracing::warn!(%warning, "reloaded configuration");
                            }
                        }
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "hot reload is off"),
        }
    }
    println!(
        "gateway-server listening: WebSocket ws://{}/ws?user_id=<id>, API http://{}",
        running.public_addr(),
        running.api_addr()
    );
    gateway_server::shutdown_signal().await;
    println!("shutting down");
    if !running.stop(Duration::from_secs(10)).await {
        eprintln!("shutdown deadline passed with connections still open");
    }
    ExitCode::SUCCESS
}

fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}
