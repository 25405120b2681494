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
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Abuse { server, names } => abuse(server, names).await,
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
