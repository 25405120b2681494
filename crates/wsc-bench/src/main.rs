//! `wsc-bench`: the abuse suite (and, later, the soak and chaos runs) against a
//! `gateway-server` binary. See the library's documentation.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "wsc-bench", about = "Drive a gateway-server from outside.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every attack of the abuse suite (or the named ones), each against a fresh server
    /// started from `--server`, and print the results as a markdown table.
    Abuse {
        /// The gateway-server binary.
        #[arg(long)]
        server: PathBuf,
        /// Only these attacks.
        names: Vec<String>,
    },
    /// One fan-out run against a fresh server of one kind (`wsc`, `bare`, `socketio`).
    Fanout {
        /// Which server.
        #[arg(long, default_value = "wsc")]
        protocol: String,
        #[command(flatten)]
        binaries: BinaryArgs,
        /// Client connections.
        #[arg(long, default_value_t = 10_000)]
        connections: usize,
        /// Publishes.
        #[arg(long, default_value_t = 200)]
        messages: u32,
        /// Publishes per second (as fast as possible without it).
        #[arg(long)]
        rate: Option<f64>,
        /// Publishing connections.
        #[arg(long, default_value_t = 8)]
        publishers: usize,
        /// Payload bytes per publish (the peers' whole frame; the gateway wraps it in its
        /// envelope, about 330 bytes more).
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
    /// A scenario (`fanout`, `p2p`, `ack`, `grpc`, `in-process`, `churn`, `cross-node`,
    /// `idle`, `scale`):
    /// every server in turn, medians of `--rounds`, printed as a markdown table (`scale`: the
    /// gateway only, one run).
    Bench {
        /// The scenario.
        scenario: String,
        #[command(flatten)]
        binaries: BinaryArgs,
        /// Client connections (10,000; 100,000 for `scale`).
        #[arg(long)]
        connections: Option<usize>,
        /// Runs of each server per setting.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// One generator of the scale scenario (started by `bench scale`): holds its share of
    /// the clients and reports what they received.
    Hold {
        /// The nodes' public addresses, comma-separated.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<std::net::SocketAddr>,
        /// Clients.
        #[arg(long)]
        connections: usize,
        /// The first client's user number.
        #[arg(long, default_value_t = 0)]
        first: usize,
        /// The first source address's last byte (127.0.0.N; four are used).
        #[arg(long, default_value_t = 1)]
        source_base: u8,
        /// Broadcasts to wait for.
        #[arg(long)]
        messages: u32,
        /// A node's process id (read for memory before connecting).
        #[arg(long)]
        server_pid: u32,
    },
    /// Run the soak workload against a fresh server started from `--server` and check it;
    /// prints the samples as a markdown table.
    Soak {
        /// The gateway-server binary.
        #[arg(long)]
        server: PathBuf,
        /// How long the workload runs, in minutes.
        #[arg(long, default_value_t = 10)]
        minutes: u64,
        /// Or in seconds (wins over --minutes).
        #[arg(long)]
        seconds: Option<u64>,
        /// Stable connections.
        #[arg(long, default_value_t = 1000)]
        stable: usize,
        /// Seconds between samples.
        #[arg(long, default_value_t = 10)]
        sample_every: u64,
    },
}

/// The binaries of the side-by-side benchmarks.
#[derive(Debug, clap::Args)]
struct BinaryArgs {
    /// The gateway-server binary.
    #[arg(long)]
    server: PathBuf,
    /// The bare baseline (wsc-bare).
    #[arg(long)]
    bare: PathBuf,
    /// The socketioxide peer (wsc-socketio).
    #[arg(long)]
    socketio: PathBuf,
}

impl BinaryArgs {
    fn binaries(&self) -> wsc_bench::bench::Binaries {
        wsc_bench::bench::Binaries {
            gateway: self.server.clone(),
            bare: self.bare.clone(),
            socketio: self.socketio.clone(),
            // Built with the others, next to them.
            inproc: self.bare.with_file_name("wsc-inproc"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Abuse { server, names } => abuse(server, names).await,
        Command::Fanout {
            protocol,
            binaries,
            connections,
            messages,
            rate,
            publishers,
            size,
        } => {
            let run = wsc_bench::load::Fanout {
                connections,
                messages,
                rate,
                publishers,
                size,
                ..Default::default()
            };
            let result = match wsc_bench::load::Protocol::parse(&protocol) {
                Ok(p) => wsc_bench::bench::fanout_once(p, &binaries.binaries(), &run).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(result) => {
                    println!("{}", result.line());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("fanout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Hold {
            nodes,
            connections,
            first,
            source_base,
            messages,
            server_pid,
        } => {
            if nodes.is_empty() {
                eprintln!("hold: --nodes names no node");
                return ExitCode::FAILURE;
            }
            let held = wsc_bench::scale::hold(
                nodes,
                connections,
                (first, source_base),
                messages,
                server_pid,
            )
            .await;
            match held {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hold: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Bench {
            scenario,
            binaries,
            connections,
            rounds,
        } => {
            let scale = scenario == "scale";
            let connections = connections.unwrap_or(if scale { 100_000 } else { 10_000 });
            let table = match scenario.as_str() {
                "fanout" => {
                    let rates = [Some(10.0), Some(50.0), Some(100.0), None];
                    wsc_bench::bench::fanout(&binaries.binaries(), connections, &rates, rounds)
                        .await
                }
                "p2p" => wsc_bench::bench::p2p(&binaries.binaries(), connections, rounds).await,
                "ack" => wsc_bench::bench::ack(&binaries.binaries(), connections, rounds).await,
                "churn" => wsc_bench::bench::churn(&binaries.binaries(), rounds).await,
                "grpc" => wsc_bench::bench::grpc(&binaries.binaries(), connections, rounds).await,
                "in-process" => {
                    wsc_bench::bench::in_process(&binaries.binaries(), connections, rounds).await
                }
                "cross-node" => {
                    wsc_bench::bench::cross_node(&binaries.binaries(), connections, rounds).await
                }
                "idle" => {
                    let window = std::time::Duration::from_secs(30);
                    let counts = [5_000, 10_000, 19_000];
                    wsc_bench::bench::idle(&binaries.binaries(), &counts, window, rounds).await
                }
                "scale" => {
                    let run = wsc_bench::scale::Scale {
                        connections,
                        ..Default::default()
                    };
                    match std::env::current_exe() {
                        Ok(me) => wsc_bench::scale::run(&binaries.server, &me, &run)
                            .await
                            .map(|result| result.table(&run)),
                        Err(e) => Err(format!("cannot find this binary: {e}")),
                    }
                }
                other => Err(format!(
                    "unknown scenario {other:?} (fanout, p2p, ack, grpc, in-process, churn, cross-node, idle, scale)"
                )),
            };
            match table {
                Ok(table) => {
                    println!("{table}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Soak {
            server,
            minutes,
            seconds,
            stable,
            sample_every,
        } => {
            let mut options = wsc_bench::soak::Options::minutes(minutes);
            if let Some(seconds) = seconds {
                options.duration = std::time::Duration::from_secs(seconds);
            }
            options.stable = stable;
            options.sample_every = std::time::Duration::from_secs(sample_every);
            soak(server, options).await
        }
    }
}

async fn abuse(server: PathBuf, names: Vec<String>) -> ExitCode {
    let attacks: Vec<_> = wsc_bench::abuse::all()
        .into_iter()
        .filter(|a| names.is_empty() || names.iter().any(|n| n == a.name))
        .collect();
    let mut findings = Vec::new();
    let mut failed = 0;
    for attack in attacks {
        eprintln!("attack {} ...", attack.name);
        let server = server.clone();
        // A panic in an attack (a helper's bounded wait) fails that attack, not the run.
        let result =
            tokio::spawn(async move { wsc_bench::abuse::run(&server, &attack).await }).await;
        match result {
            Ok(Ok(finding)) => {
                eprintln!("  {}", finding.outcome);
                findings.push(finding);
            }
            Ok(Err(e)) => {
                eprintln!("  FAILED: {e}");
                failed += 1;
            }
            Err(e) => {
                eprintln!("  FAILED (panic): {e}");
                failed += 1;
            }
        }
    }
    println!("{}", wsc_bench::abuse::table(&findings));
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        eprintln!("{failed} attacks failed");
        ExitCode::FAILURE
    }
}

async fn soak(server: PathBuf, options: wsc_bench::soak::Options) -> ExitCode {
    let server = match wsc_bench::soak::start_server(&server, &options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = wsc_bench::soak::run(server.public, server.api, server.pid(), &options).await;
    println!("{}", report.table());
    println!(
        "connections opened {}, frames received {}, API calls {}, acked {}, acked sends stored \
         offline {}, RSS growth after warm-up {:.1}%",
        report.connections_opened,
        report.received,
        report.sends,
        report.acked,
        report.acked_stored_offline,
        report.growth_percent().unwrap_or(f64::NAN)
    );
    match report.check() {
        Ok(()) => {
            println!("soak: every check passed");
            ExitCode::SUCCESS
        }
        Err(failures) => {
            for failure in failures {
                println!("soak FAILED: {failure}");
            }
            ExitCode::FAILURE
        }
    }
}
