//! `wsc-chaos`: a chaos run of three `gateway-server` nodes on one Redis.
//!
//! ```text
//! wsc-chaos --server target/release/gateway-server
//! ```
//!
//! It starts a throwaway `redis-server` and three nodes in distributed mode with the Redis
//! offline store (`cluster.rs`), connects six users as WebSocket clients to `n2` and `n3`
//! (`client.rs`: they ack every frame and resume with `last_seq`), and sends them
//! acknowledged messages through `n1`'s HTTP API (`traffic.rs`). Then it applies one fault
//! after another, each in a phase of its own (`faults.rs`): none (a baseline), SIGKILL of a
//! node, SIGSTOP of a node past the presence TTL, a Redis restart, a client that stops
//! reading until it is disconnected as a slow consumer. After each it checks
//! (`checks.rs`), from what was recorded (`ledger.rs`):
//!
//! - no loss: every message the API reported `acked` or `stored_offline` reaches its user
//!   (after a reconnect, for what only the offline store holds);
//! - presence converges: every node reports every user where its client is connected,
//!   within a bound;
//! - duplicates only of the documented kinds (docs/delivery.md: resends keep their
//!   `message_id`, offline replays, a resume during registration): counted and shown,
//!   never a failure; a copy reaching the wrong user is one;
//! - a message sent while its user's connection is being registered is replayed to that
//!   connection (docs/delivery.md, Sequence numbers and resume), not left for a later one.
//!
//! It prints one line per phase and a summary (`report.rs`), and exits 0 when every
//! invariant held, 1 otherwise with the reasons. A run takes one to two minutes.

mod checks;
mod client;
mod cluster;
mod faults;
mod http;
mod ledger;
mod report;
mod traffic;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;

use crate::client::Client;
use crate::cluster::{Cluster, NODE_IDS};
use crate::faults::Fault;
use crate::ledger::Ledger;

#[derive(Debug, Parser)]
#[command(
    name = "wsc-chaos",
    about = "Three gateway-server nodes on a throwaway Redis, acknowledged traffic, and \
             faults one after another (SIGKILL, SIGSTOP, Redis restart, slow consumer), \
             each followed by the delivery and presence checks."
)]
struct Cli {
    /// The gateway-server binary.
    #[arg(long)]
    server: PathBuf,
    /// Duplicate messages shown per phase (all are counted).
    #[arg(long, default_value_t = 5)]
    show_duplicates: usize,
    /// Messages shown per phase that arrived only after a forced reconnect (all are
    /// counted).
    #[arg(long, default_value_t = 5)]
    show_late: usize,
}

/// The users, and the node each connects to: three on `n2`, three on `n3`.
const USERS: [(&str, usize); 6] = [
    ("u1", 1),
    ("u2", 2),
    ("u3", 1),
    ("u4", 2),
    ("u5", 1),
    ("u6", 2),
];

/// The user whose client has a small receive buffer, for the slow-consumer fault.
const SLOW_USER: &str = "u6";

/// Everything a phase works with.
#[derive(Debug)]
pub(crate) struct Chaos {
    /// Redis and the nodes.
    pub(crate) cluster: Cluster,
    /// The users' clients.
    pub(crate) clients: Vec<Client>,
    /// What was sent and received.
    pub(crate) ledger: Ledger,
    /// The client (index) with the small receive buffer.
    pub(crate) slow: Option<usize>,
    /// When the run began (times in the details are relative to it).
    pub(crate) started: Instant,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = Instant::now();
    // A panic in a bounded wait of a helper ends the run with its message, and dropping
    // the run's state kills every process it started. Ctrl-C aborts the run the same way,
    // so no node or Redis outlives it.
    let mut task = tokio::spawn(run(cli, started));
    let joined = tokio::select! {
        joined = &mut task => joined,
        _ = tokio::signal::ctrl_c() => {
            task.abort();
            // An aborted task drops its future (and kills the processes) before this ends.
            let _ = task.await;
            println!("result=FAILED reason=\"interrupted\"");
            return ExitCode::from(130);
        }
    };
    match joined {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Ok(Err(e)) => {
            println!("result=FAILED reason=\"{e}\"");
            ExitCode::FAILURE
        }
        Err(e) => {
            println!("result=FAILED reason=\"the run panicked: {e}\"");
            ExitCode::FAILURE
        }
    }
}

/// The whole run: whether every invariant held, or why it could not run.
async fn run(cli: Cli, started: Instant) -> Result<bool, String> {
    if !cli.server.is_file() {
        return Err(format!(
            "no gateway-server binary at {}",
            cli.server.display()
        ));
    }
    let cluster = Cluster::start(&cli.server).await?;
    eprintln!(
        "started Redis and nodes {} in {} ms",
        NODE_IDS.join(","),
        started.elapsed().as_millis()
    );
    let ledger = Ledger::default();
    let clients: Vec<Client> = USERS
        .iter()
        .map(|&(user, home)| {
            Client::start(
                user,
                home,
                user == SLOW_USER,
                cluster.directory.clone(),
                ledger.clone(),
            )
        })
        .collect();
    let slow = clients.iter().position(|c| c.user == SLOW_USER);
    let mut chaos = Chaos {
        cluster,
        clients,
        ledger,
        slow,
        started,
    };
    checks::clients_home(&chaos, Duration::from_secs(20)).await?;
    checks::presence_converged(&chaos, Duration::from_secs(20)).await?;

    let shown = report::Shown {
        duplicates: cli.show_duplicates,
        late: cli.show_late,
    };
    let mut failures: Vec<String> = Vec::new();
    let mut misses = 0;
    for (phase, fault) in Fault::ALL.into_iter().enumerate() {
        eprintln!("phase {phase}: {} ...", fault.name());
        let phase_start = Instant::now();
        let result = faults::run(&mut chaos, phase, fault).await;
        let printed = report::phase(&chaos, phase, fault, result, phase_start, shown);
        misses += printed.registration_misses;
        failures.extend(
            printed
                .failures
                .into_iter()
                .map(|f| format!("{}: {f}", fault.name())),
        );
    }
    let ok = report::summary(&chaos, &mut failures, misses);
    for client in chaos.clients.drain(..) {
        client.stop().await;
    }
    Ok(ok)
}
