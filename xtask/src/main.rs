//! Project tasks: `cargo xtask <task>`.
//!
//! - `ci`: formatting check, clippy (`-D warnings`, all targets), every test and doc test,
//!   then clippy and the test of `gateway-server`'s optional `otlp` feature.
//!   Makes sure a Redis server answers first (starting a throwaway `redis-server` on a free
//!   port when none does) and exports its URL as `WSC_TEST_REDIS_URL`.
//! - `demo`: builds the gateway (release) and runs `gateway-server demo` on its embedded
//!   defaults: the customer-service desk page at http://127.0.0.1:8080/ (with the
//!   WebSocket, SSE and API on the same port), no Redis, no file; Ctrl-C stops it.
//!   `demo --nodes N` runs N plain nodes on one Redis (the local one, or a throwaway
//!   `redis-server`), each on its own ports, and prints their URLs.
//! - `e2e`: drives the demo page in headless Chromium (`e2e/`, WebDriver through
//!   chromedriver; Debian's `chromium` and `chromium-driver`), screenshots in `target/e2e/`.
//!   `ci` runs it last.
//! - `fuzz [--seconds N]`: runs the property-based fuzz targets (the frame codec, identities,
//!   the configuration loader, the API's bodies and paths, tokens) for N seconds each
//!   (default 10) in a release build; the test command runs them for 2 s each as ordinary
//!   tests.
//! - `abuse`: the abuse suite (`crates/wsc-bench`) against the release binary, each attack
//!   on a fresh server, printing the outcomes with memory and descriptors (docs/security.md).
//! - `soak [--minutes N]`: the mixed soak workload against the release binary for N minutes
//!   (default 10), sampled every 10 s; fails on memory growth after warm-up, descriptors or
//!   pending acks that do not come back, or a lost acknowledged message (docs/operations.md).
//! - `chaos`: three release nodes on a throwaway Redis under acknowledged traffic, with a
//!   node killed, a node stopped past the presence TTL, Redis restarted and a client's socket
//!   filled; prints the invariants as counts (docs/operations.md).
//! - `bench`: runs the criterion benchmarks. `bench fanout`: the gateway, the bare baseline
//!   (`wsc-bare`) and socketioxide (`wsc-socketio`) side by side, 10,000 WebSocket clients,
//!   broadcasts at 10, 50 and 100 per second and at saturation, medians of alternating runs,
//!   appended to docs/benchmarks.md (`crates/wsc-bench`). `bench idle`: the same servers
//!   holding 5,000, 10,000 and 19,000 idle clients; memory per connection and CPU per
//!   connection-second. `bench p2p`: each publish to one of 10,000 clients through the
//!   per-user API, at saturation and at half the gateway's saturation rate. `bench ack`: the
//!   same sends waiting for the client's ack, against the same sends without. `bench grpc`:
//!   the gateway's sends through HTTP and through gRPC, in alternation. `bench in-process`:
//!   the gateway embedded (`wsc-inproc`) publishing straight to its hub, against its API and
//!   the baseline. `bench
//!   churn`: 64 clients connecting and closing for ten seconds. `bench cross-node`: the
//!   gateway alone, on Redis, and as three nodes on Redis (a fresh Redis per run). `bench
//!   scale`: 100,000 clients over six nodes on Redis and six generator processes.
//! - `codegen`: regenerates the gRPC code from `crates/gateway-server/proto` with protox (no
//!   `protoc` needed) into `crates/gateway-server/src/grpc/wsc.v1.rs` and the reflection
//!   descriptors `wsc.v1.bin`, both committed.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "ci" => ci(),
        "demo" => match nodes_arg() {
            Ok(1) => demo(),
            Ok(n) => demo_cluster(n),
            Err(e) => Err(e),
        },
        "bench" => match std::env::args().nth(2) {
            None => run("cargo", &["bench", "-p", "wsc-hub"]),
            Some(scenario) => bench_scenario(&scenario),
        },
        "e2e" => e2e(),
        "fuzz" => seconds_arg().and_then(fuzz),
        "abuse" => abuse(),
        "soak" => minutes_arg().and_then(soak),
        "chaos" => chaos(),
        // The generator's dependencies are heavy; they are built only for this task.
        "codegen" => run(
            "cargo",
            &[
                "run",
                "-q",
                "-p",
                "xtask",
                "--features",
                "codegen",
                "--",
                "codegen-inner",
            ],
        ),
        #[cfg(feature = "codegen")]
        "codegen-inner" => codegen(),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|demo [--nodes N]|e2e|fuzz [--seconds N]|abuse|soak [--minutes N]|chaos|bench [{}]|codegen>",
                SCENARIOS.join("|")
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn ci() -> Result<(), String> {
    let _redis = ensure_redis()?;
    let started = Instant::now();
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    clippy(&["--workspace"])?;
    run(
        "cargo",
        &[
            "test",
            "--workspace",
            "--lib",
            "--bins",
            "--tests",
            "--examples",
        ],
    )?;
    run("cargo", &["test", "--workspace", "--doc"])?;
    // The optional OTLP tracing feature: linted and its test run, so it cannot rot.
    let otlp = ["-p", "gateway-server", "--features", "otlp"];
    clippy(&otlp)?;
    run(
        "cargo",
        &[&["test"], &otlp[..], &["--test", "otlp"]].concat(),
    )?;
    e2e()?;
    println!("xtask ci: all green in {:.0?}", started.elapsed());
    Ok(())
}

/// The demo on one node: the page, the sockets and the API on http://127.0.0.1:8080/.
fn demo() -> Result<(), String> {
    run("cargo", &["build", "--release", "-p", "gateway-server"])?;
    println!(
        "\nxtask demo: open http://127.0.0.1:8080/ in two browser tabs (one visitor, one agent);\n\
         WebSocket ws://127.0.0.1:8080/ws, SSE http://127.0.0.1:8080/sse, API http://127.0.0.1:8080/api/v1, \
         gRPC 127.0.0.1:9090. Ctrl-C stops it.\n"
    );
    run(&target_binary("release"), &["demo"])
}

/// The browser test: the demo server (debug build) and the page in headless Chromium.
fn e2e() -> Result<(), String> {
    run("cargo", &["build", "-p", "gateway-server", "-p", "e2e"])?;
    let server = target_binary("debug");
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let out = format!("{target}/e2e");
    run(
        &format!("{target}/debug/e2e"),
        &["--server", &server, "--out", &out],
    )
}

/// The `gateway-server` binary of a profile.
fn target_binary(profile: &str) -> String {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    format!("{target}/{profile}/gateway-server")
}

/// The `--seconds N` of `fuzz` (10 without it).
fn seconds_arg() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    match args.as_slice() {
        [] => Ok(10),
        [flag, n] if flag == "--seconds" => match n.parse::<u64>() {
            Ok(n) if (1..=86_400).contains(&n) => Ok(n),
            _ => Err(format!(
                "--seconds takes a number from 1 to 86400, got {n:?}"
            )),
        },
        other => Err(format!(
            "unexpected arguments {other:?}; usage: cargo xtask fuzz [--seconds N]"
        )),
    }
}

/// Runs every fuzz target (release build, so more inputs per second) for `seconds` each.
fn fuzz(seconds: u64) -> Result<(), String> {
    let status = Command::new("cargo")
        .args([
            "test",
            "--release",
            "-p",
            "wsc-hub",
            "--test",
            "fuzz_inputs",
            "-p",
            "gateway-server",
            "--test",
            "fuzz_config",
            "--test",
            "fuzz_api",
        ])
        .env("WSC_FUZZ_SECONDS", seconds.to_string())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("fuzzing failed with {status}"))
    }
}

/// Builds the release `gateway-server` and `wsc-bench` binaries; their paths.
fn release_tools() -> Result<(String, String), String> {
    run(
        "cargo",
        &[
            "build",
            "--release",
            "-p",
            "gateway-server",
            "-p",
            "wsc-bench",
        ],
    )?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    Ok((
        target_binary("release"),
        format!("{target}/release/wsc-bench"),
    ))
}

/// The scenarios of `cargo xtask bench <scenario>`.
const SCENARIOS: [&str; 9] = [
    "fanout",
    "p2p",
    "ack",
    "grpc",
    "in-process",
    "churn",
    "cross-node",
    "idle",
    "scale",
];

/// A scenario (`fanout`, `p2p`, `ack`, `grpc`, `in-process`, `churn`, `cross-node`, `idle`,
/// `scale`) of the gateway, the bare baseline and socketioxide, release builds; the table
/// goes to stdout and is appended to docs/benchmarks.md with the machine, the commit and
/// the command.
fn bench_scenario(scenario: &str) -> Result<(), String> {
    if !SCENARIOS.contains(&scenario) {
        return Err(format!(
            "unknown scenario {scenario:?}; usage: cargo xtask bench [{}]",
            SCENARIOS.join("|")
        ));
    }
    let (server, bench) = release_tools()?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    let (bare, socketio) = (
        format!("{target}/release/wsc-bare"),
        format!("{target}/release/wsc-socketio"),
    );
    let output = Command::new(&bench)
        .args(["bench", scenario, "--server", &server, "--bare", &bare])
        .args(["--socketio", &socketio])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {bench}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "the {scenario} scenario failed with {}",
            output.status
        ));
    }
    let table = String::from_utf8_lossy(&output.stdout).into_owned();
    print!("{table}");
    let commit = Command::new("git")
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let section = format!(
        "\n### `cargo xtask bench {scenario}` at `{commit}`\n\n{cores} cores ({cpu}), Linux {}, \
         the generator on the same machine; release builds; medians of 3 alternating runs per \
         row (each a fresh server).\n\n{table}",
        kernel.trim()
    );
    let mut doc = std::fs::OpenOptions::new()
        .append(true)
        .open("docs/benchmarks.md")
        .map_err(|e| format!("docs/benchmarks.md: {e}"))?;
    doc.write_all(section.as_bytes())
        .map_err(|e| format!("docs/benchmarks.md: {e}"))?;
    println!("appended to docs/benchmarks.md");
    Ok(())
}

/// The abuse suite against the release binary, with the memory table of docs/security.md.
fn abuse() -> Result<(), String> {
    let (server, bench) = release_tools()?;
    run(&bench, &["abuse", "--server", &server])
}

/// The soak against the release binary for `minutes`.
fn soak(minutes: u64) -> Result<(), String> {
    let (server, bench) = release_tools()?;
    let minutes = minutes.to_string();
    run(
        &bench,
        &["soak", "--server", &server, "--minutes", &minutes],
    )
}

/// The chaos run: three release nodes on a throwaway Redis, faults under acknowledged
/// traffic.
fn chaos() -> Result<(), String> {
    let (server, _) = release_tools()?;
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned());
    run(
        &format!("{target}/release/wsc-chaos"),
        &["--server", &server],
    )
}

/// The `--minutes N` of `soak` (10 without it).
fn minutes_arg() -> Result<u64, String> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    match args.as_slice() {
        [] => Ok(10),
        [flag, n] if flag == "--minutes" => match n.parse::<u64>() {
            Ok(n) if (1..=1_440).contains(&n) => Ok(n),
            _ => Err(format!(
                "--minutes takes a number from 1 to 1440, got {n:?}"
            )),
        },
        other => Err(format!(
            "unexpected arguments {other:?}; usage: cargo xtask soak [--minutes N]"
        )),
    }
}

/// The `--nodes N` of `demo` (1 without it).
fn nodes_arg() -> Result<usize, String> {
    let args: Vec<String> = std::env::args().skip(2).collect();
    match args.as_slice() {
        [] => Ok(1),
        [flag, n] if flag == "--nodes" => match n.parse::<usize>() {
            Ok(n) if (1..=9).contains(&n) => Ok(n),
            _ => Err(format!("--nodes takes a number from 1 to 9, got {n:?}")),
        },
        other => Err(format!(
            "unexpected arguments {other:?}; usage: cargo xtask demo [--nodes N]"
        )),
    }
}

/// Runs `n` gateway nodes on one Redis until Ctrl-C. Node `i` (from 1) listens for
/// WebSockets on 8081 + 10 (i - 1), for the API on 8080 + 10 (i - 1), for gRPC on
/// 9090 + 10 (i - 1).
fn demo_cluster(n: usize) -> Result<(), String> {
    let _redis = ensure_redis()?;
    let url = std::env::var("WSC_TEST_REDIS_URL").map_err(|e| e.to_string())?;
    run("cargo", &["build", "--release", "-p", "gateway-server"])?;
    let binary = target_binary("release");
    let mut nodes = Vec::new();
    for i in 0..n {
        let name = format!("node-{}", i + 1);
        let (ws, api, grpc) = (8081 + 10 * i, 8080 + 10 * i, 9090 + 10 * i);
        let child = Command::new(&binary)
            .env("GATEWAY__WSC__NODE_PORT", ws.to_string())
            .env("GATEWAY__HTTP__PORT", api.to_string())
            .env("GATEWAY__GRPC__PORT", grpc.to_string())
            .env("GATEWAY__WSC__REDIS__ENABLED", "true")
            .env("GATEWAY__WSC__REDIS__URL", &url)
            .env("GATEWAY__WSC__DISTRIBUTED__ENABLED", "true")
            .env("GATEWAY__WSC__DISTRIBUTED__NODE_ID", &name)
            .env("GATEWAY__WSC__DISTRIBUTED__KEY_PREFIX", "wsc-demo:")
            .env("GATEWAY__WSC__OFFLINE__STORE", "redis")
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        nodes.push(Node(child));
        println!(
            "{name}: ws://127.0.0.1:{ws}/ws?user_id=alice   API http://127.0.0.1:{api}   gRPC 127.0.0.1:{grpc}"
        );
    }
    println!(
        "{n} nodes on Redis {url}. Connect a client to one node and send through another, e.g.\n  \
         curl -X POST http://127.0.0.1:8080/api/v1/users/alice/messages -d '{{\"content\":\"hi\"}}'\n\
         Ctrl-C stops them all."
    );
    for node in &mut nodes {
        let _ = node.0.wait();
    }
    Ok(())
}

/// A demo node; killed when dropped (an early error stops the others).
struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(feature = "codegen")]
fn codegen() -> Result<(), String> {
    let root = "crates/gateway-server/proto";
    let out = "crates/gateway-server/src/grpc";
    let files = protox::compile(["wsc/v1/gateway.proto"], [root]).map_err(|e| e.to_string())?;
    // The descriptors themselves, for gRPC server reflection (`grpcurl` without the .proto).
    let descriptors = format!("{out}/wsc.v1.bin");
    std::fs::write(&descriptors, prost::Message::encode_to_vec(&files))
        .map_err(|e| format!("cannot write {descriptors}: {e}"))?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .out_dir(out)
        .compile_fds(files)
        .map_err(|e| e.to_string())?;
    println!("xtask codegen: wrote {out}/wsc.v1.rs and {descriptors}");
    Ok(())
}

/// `cargo clippy` on all targets of `scope`, every warning an error.
fn clippy(scope: &[&str]) -> Result<(), String> {
    let args = [
        &["clippy"],
        scope,
        &["--all-targets", "--", "-D", "warnings"],
    ]
    .concat();
    run("cargo", &args)
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    println!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{program} {}` failed with {status}",
            args.join(" ")
        ))
    }
}

/// A throwaway Redis started by this task; killed when dropped.
struct Redis(Option<Child>);

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Finds a Redis that answers PING: `WSC_TEST_REDIS_URL` when set, else 127.0.0.1:6379,
/// else a throwaway `redis-server` on a free port. Fails, with the install command, only
/// when there is no `redis-server` binary.
fn ensure_redis() -> Result<Redis, String> {
    if let Ok(url) = std::env::var("WSC_TEST_REDIS_URL") {
        let addr = url.trim_start_matches("redis://").trim_end_matches('/');
        if ping(addr) {
            println!("xtask: using Redis at {url}");
            return Ok(Redis(None));
        }
        return Err(format!("WSC_TEST_REDIS_URL={url} does not answer PING"));
    }
    if ping("127.0.0.1:6379") {
        set_redis_url("127.0.0.1:6379");
        println!("xtask: using Redis at 127.0.0.1:6379");
        return Ok(Redis(None));
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| {
            format!(
                "no Redis answers on 127.0.0.1:6379 and redis-server cannot be started ({e}).\n\
                 Install it: apt-get update && apt-get install -y redis-server"
            )
        })?;
    let redis = Redis(Some(child));
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ping(&addr) {
        if Instant::now() > deadline {
            return Err(format!(
                "throwaway redis-server on {addr} did not answer PING"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("xtask: no Redis on 6379; started a throwaway redis-server on {addr}");
    set_redis_url(&addr);
    Ok(redis)
}

fn set_redis_url(addr: &str) {
    // SAFETY: xtask has a single thread at this point, so no other thread reads the
    // environment while it changes; the variable is inherited by the cargo children.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("WSC_TEST_REDIS_URL", format!("redis://{addr}/"));
    }
}

fn ping(addr: &str) -> bool {
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}
