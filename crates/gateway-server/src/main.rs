//! The `gateway-server` binary: its command line (`clap`), logging, hot reload and signals.
//!
//! ```text
//! gateway-server [-c <file>] [run]          run (embedded defaults without a file)
//! gateway-server demo [--host H] [--port P] run with the demo page (http://127.0.0.1:8080/)
//! gateway-server checkconfig [<file>]       validate: exit 0, or 2 with every problem
//! gateway-server printconfig [<file>]       the effective configuration, secrets masked
//! gateway-server genconfig                  a commented YAML file with every key
//! gateway-server gentoken --user <id> ...   sign a connection token
//! gateway-server checktoken <token>         verify a token: exit 0 with its identity, or 1
//! gateway-server --version                  the version and the commit
//! ```
//!
//! The file also comes from `GATEWAY_CONFIG`. Environment variables override any key
//! (`GATEWAY__WSC__NODE_PORT=9000`). With a file, the runtime-safe keys hot-reload when it
//! changes. SIGINT/SIGTERM stop the server gracefully: clients get close 1001 and the process
//! exits 0.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use gateway_server::Server;
use gateway_server::tokens::{self, TokenRequest, TokenToolError};
use serde_json::Value;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};
use wsc_config::{GatewayConfig, Loaded, Loader, LogFormat};

/// `--version`: the package version and the commit (see build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("GATEWAY_COMMIT"),
    ")"
);

/// Exit code of a bad command line or a bad configuration (clap uses it for usage errors).
const BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "gateway-server",
    version = VERSION,
    about = "The wsc real-time messaging gateway: WebSocket hub, HTTP and gRPC server API."
)]
struct Cli {
    /// Configuration file (YAML, TOML or JSON); the embedded defaults without one.
    #[arg(
        short,
        long,
        global = true,
        env = "GATEWAY_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    /// Old spelling of `checkconfig <FILE>`.
    #[arg(long, hide = true, value_name = "FILE")]
    check_config: Option<PathBuf>,
    /// Old spelling of `printconfig [FILE]`.
    #[arg(long, hide = true, value_name = "FILE", num_args = 0..=1)]
    print_config: Option<Option<PathBuf>>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (what happens without a command).
    Run,
    /// Run the server with the demo page (a customer-service desk) at `/`: the API shares
    /// the public port, the relay policy is on, and it listens on loopback unless told.
    Demo {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The one port of the page, WebSocket, SSE and API.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
    /// Validate the configuration (file and environment): exit 0, or 2 with every problem.
    Checkconfig {
        /// The file (else --config, else the defaults).
        file: Option<PathBuf>,
    },
    /// Print the effective configuration as JSON, secrets masked.
    Printconfig {
        /// The file (else --config, else the defaults).
        file: Option<PathBuf>,
    },
    /// Print a commented YAML file that sets every key to its default.
    Genconfig,
    /// Sign a connection token with the configured key (wsc.security.token).
    Gentoken(GenToken),
    /// Check a connection token as the upgrade would: exit 0 and print its identity, or 1
    /// and print why it is refused.
    Checktoken {
        /// The token (a JWT).
        token: String,
    },
}

#[derive(Debug, Args)]
struct GenToken {
    /// The user the token names (`sub`).
    #[arg(long)]
    user: String,
    /// How long it is valid (30s, 15m, 24h).
    #[arg(long, default_value = "1h", value_parser = wsc_config::duration::parse)]
    ttl: Duration,
    /// The user type (`utp`), e.g. customer, agent, admin, observer.
    #[arg(long)]
    user_type: Option<String>,
    /// More claims as key=value (repeatable); a value that is JSON (a number, an array) is
    /// kept as JSON, anything else is a string.
    #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = claim)]
    claims: Vec<(String, Value)>,
    /// The private key in PEM, for the RS*, PS*, ES* and EdDSA algorithms.
    #[arg(long, value_name = "PEM FILE")]
    key: Option<PathBuf>,
}

fn claim(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .filter(|(key, _)| !key.is_empty())
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
    Ok((key.to_owned(), value))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match (cli.check_config, cli.print_config, cli.command) {
        (Some(file), _, _) => Command::Checkconfig { file: Some(file) },
        (_, Some(file), _) => Command::Printconfig { file },
        (_, _, Some(command)) => command,
        (_, _, None) => Command::Run,
    };
    let file = |own: Option<PathBuf>| own.or_else(|| cli.config.clone());
    match command {
        Command::Genconfig => {
            print!("{}", wsc_config::EXAMPLE_YAML);
            ExitCode::SUCCESS
        }
        Command::Checkconfig { file: own } => match load(file(own)) {
            Ok(_) => {
                println!("configuration is valid");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Printconfig { file: own } => match load(file(own)) {
            Ok((loaded, _)) => {
                let text =
                    serde_json::to_string_pretty(&loaded.config.redacted()).unwrap_or_default();
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        Command::Gentoken(args) => match load(file(None)) {
            Ok((loaded, _)) => gentoken(&loaded.config, args),
            Err(code) => code,
        },
        Command::Checktoken { token } => match load(file(None)) {
            Ok((loaded, _)) => checktoken(&loaded.config, &token),
            Err(code) => code,
        },
        Command::Run => match load_quietly(file(None)) {
            Ok((loaded, loader)) => run(loaded, loader, false).await,
            Err(code) => code,
        },
        Command::Demo { host, port } => match load_quietly(file(None)) {
            Ok((mut loaded, loader)) => {
                demo_settings(&mut loaded.config, host, port);
                run(loaded, loader, true).await
            }
            Err(code) => code,
        },
    }
}

/// Loads the configuration (the file, if any, and the environment), printing its warnings
/// to stderr; the exit code to return when it is invalid.
fn load(file: Option<PathBuf>) -> Result<(Loaded, Option<Loader>), ExitCode> {
    let (loaded, loader) = load_quietly(file)?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    Ok((loaded, loader))
}

/// [`load`] without printing the warnings (the server logs them once logging is set up).
fn load_quietly(file: Option<PathBuf>) -> Result<(Loaded, Option<Loader>), ExitCode> {
    let loader = file.map(|path| Loader::new().file(path));
    match loader.clone().unwrap_or_default().load() {
        Ok(loaded) => Ok((loaded, loader)),
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(BAD_INPUT))
        }
    }
}

fn gentoken(config: &GatewayConfig, args: GenToken) -> ExitCode {
    let key = match args.key.as_deref().map(std::fs::read_to_string).transpose() {
        Ok(key) => key,
        Err(e) => {
            eprintln!("cannot read the key file: {e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    let mut request = TokenRequest::new(args.user, args.ttl);
    if let Some(user_type) = args.user_type {
        request
            .claims
            .insert("utp".to_owned(), Value::from(user_type));
    }
    request.claims.extend(args.claims);
    match tokens::sign(&config.wsc.security.token, key.as_deref(), &request) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(BAD_INPUT)
        }
    }
}

fn checktoken(config: &GatewayConfig, token: &str) -> ExitCode {
    match tokens::verify(&config.wsc.security.token, token) {
        Ok(identity) => {
            let shown = serde_json::json!({
                "valid": true,
                "user_id": identity.user_id,
                "user_type": identity.user_type,
                "app_id": identity.app_id,
                "namespace": identity.namespace,
                "group_ids": identity.group_ids,
                "ticket_ids": identity.ticket_ids,
                "device_id": identity.device_id,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&shown).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(e @ TokenToolError::Key(_)) => {
            eprintln!("{e}");
            ExitCode::from(BAD_INPUT)
        }
        Err(e) => {
            eprintln!("refused: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What the demo changes: one port on `host` for the page, the sockets and the API (the
/// page calls the API on its own origin), and the relay policy on, so the visitor's and
/// the agent's messages travel between them without a backend of their own.
fn demo_settings(config: &mut GatewayConfig, host: String, port: u16) {
    config.wsc.node_ip = host.clone();
    config.wsc.node_port = port;
    config.http.host = host;
    config.http.port = port;
    config.wsc.relay.enabled = true;
}

async fn run(loaded: Loaded, loader: Option<Loader>, demo: bool) -> ExitCode {
    let config = loaded.config;
    let (filter, log_level) = reload::Layer::new(level_filter(&config.logging.level));
    #[cfg(feature = "otlp")]
    let telemetry = match gateway_server::telemetry::Telemetry::from_env(
        &config.name,
        &config.version,
        &config.environment,
    ) {
        Ok(telemetry) => telemetry,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(BAD_INPUT);
        }
    };
    #[cfg(feature = "otlp")]
    let registry = tracing_subscriber::registry()
        .with(telemetry.as_ref().map(|t| t.layer()))
        .with(filter);
    #[cfg(not(feature = "otlp"))]
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only on a terminal: a file, a pipe or journald gets plain text.
    let ansi = std::io::stdout().is_terminal();
    match config.logging.format {
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json())
            .init(),
        _ => registry
            .with(tracing_subscriber::fmt::layer().with_ansi(ansi))
            .init(),
    }

    // Logged, not printed: with `logging.format: json` every line stays a JSON object.
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "configuration");
    }
    let mut server = Server::new(config.clone());
    if demo {
        server = server.with_demo_page();
    }
    let running = match server.start().await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!(error = %e, "gateway-server could not start");
            return ExitCode::FAILURE;
        }
    };
    if let Some(loader) = loader {
        match wsc_config::watch_file(loader, config.clone(), Duration::from_millis(250)) {
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
    let grpc = running
        .grpc_addr()
        .map(|addr| format!("http://{addr}"))
        .unwrap_or_else(|| "off".to_owned());
    tracing::info!(
        service = %config.name,
        service_version = %config.version,
        environment = %config.environment,
        version = VERSION,
        websocket = %format!("ws://{}{}", running.public_addr(), config.wsc.path),
        api = %format!("http://{}", running.api_addr()),
        grpc = %grpc,
        "gateway-server listening"
    );
    if demo {
        let page = format!("http://{}/", running.public_addr());
        tracing::info!(
            page = %page,
            "demo page: open it in two browser tabs, one visitor and one agent"
        );
    }
    gateway_server::shutdown_signal().await;
    tracing::info!("gateway-server shutting down");
    if !running.stop(Duration::from_secs(10)).await {
        tracing::warn!("shutdown deadline passed with connections still open");
    }
    #[cfg(feature = "otlp")]
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    ExitCode::SUCCESS
}

/// `RUST_LOG` when set, else the configured level (validated when loaded).
fn level_filter(level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}
