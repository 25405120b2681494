//! Side-by-side scenarios: the gateway, the bare baseline (`wsc-bare`) and socketioxide
//! (`wsc-socketio`) started fresh for every run, run in alternation (A B C, A B C, ...), and
//! the medians written as a markdown table with the ratios to the baseline and to the peer.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use wsc_testkit::process::{KillOnDrop, Lines};

use wsc_testkit::redis_server::RedisServer;

use crate::load::{
    Churn, ChurnResult, Endpoint, Fanout, FanoutResult, IdleResult, Pattern, Protocol, Via, ms,
};
use crate::server::ServerProcess;

/// The `--ws-port P --publish-port Q` of a peer server (`wsc-bare`, `wsc-socketio`): its
/// two loopback addresses.
pub fn peer_addresses(usage: &str) -> Result<(std::net::SocketAddr, std::net::SocketAddr), String> {
    let args: Vec<String> = std::env::args().collect();
    let port = |flag: &str| -> Result<u16, String> {
        let i = args.iter().position(|a| a == flag).ok_or_else(|| {
            format!("usage: {usage} --ws-port P --publish-port Q ({flag} missing)")
        })?;
        args.get(i + 1)
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("{flag} needs a port"))
    };
    Ok((
        ([127, 0, 0, 1], port("--ws-port")?).into(),
        ([127, 0, 0, 1], port("--publish-port")?).into(),
    ))
}

/// The `N` of a peer client's `client=N` query parameter (the point-to-point scenario).
pub fn client_param(query: Option<&str>) -> Option<u64> {
    query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("client="))
        .and_then(|n| n.parse().ok())
}

/// The three servers' binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// `gateway-server`.
    pub gateway: PathBuf,
    /// `wsc-bare`.
    pub bare: PathBuf,
    /// `wsc-socketio`.
    pub socketio: PathBuf,
    /// `wsc-inproc` (the gateway embedded, publishing in-process).
    pub inproc: PathBuf,
}

/// A server started for one run, held (never read) until the run ends; stopped when
/// dropped.
#[allow(dead_code)]
enum Running {
    Gateway(ServerProcess),
    Peer(KillOnDrop, Lines),
}

/// Settings of the gateway in a benchmark: nothing that refuses load on purpose (the
/// generator is one client address with thousands of connections).
fn gateway_env() -> Vec<(&'static str, String)> {
    [
        ("GATEWAY__WSC__SECURITY__ENABLE_RATE_LIMIT", "false"),
        ("GATEWAY__WSC__PERFORMANCE__MAX_CONNECTIONS_PER_NODE", "0"),
        ("GATEWAY__WSC__MULTI_LOGIN__MAX_CONNECTIONS_PER_USER", "0"),
        (
            "GATEWAY__WSC__SECURITY__MAX_HANDSHAKES_PER_IP_PER_SECOND",
            "0",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

/// Starts a fresh server; publishes go to its HTTP API, or for the gateway with
/// [`Via::Grpc`], to its gRPC listener (switched on for the run).
async fn start(
    protocol: Protocol,
    binaries: &Binaries,
    via: Via,
) -> Result<(Running, Endpoint), String> {
    match protocol {
        Protocol::Wsc if via == Via::InProcess => {
            let mut env: Vec<(&str, String)> = gateway_env();
            env.extend([
                ("GATEWAY__HTTP__HOST", "127.0.0.1".to_owned()),
                ("GATEWAY__HTTP__PORT", wsc_testkit::free_port().to_string()),
                ("GATEWAY__GRPC__ENABLED", "false".to_owned()),
                ("RUST_LOG", "error".to_owned()),
            ]);
            start_peer(protocol, &binaries.inproc, &env).await
        }
        Protocol::Wsc => {
            let mut env: Vec<(&str, String)> = gateway_env();
            let grpc = (via == Via::Grpc).then(wsc_testkit::free_port);
            if let Some(port) = grpc {
                env.extend([
                    ("GATEWAY__GRPC__ENABLED", "true".to_owned()),
                    ("GATEWAY__GRPC__HOST", "127.0.0.1".to_owned()),
                    ("GATEWAY__GRPC__PORT", port.to_string()),
                ]);
            }
            let server = ServerProcess::start(&binaries.gateway, &env)?;
            let mut endpoint = Endpoint::gateway(&server);
            if let Some(port) = grpc {
                endpoint.publish = ([127, 0, 0, 1], port).into();
            }
            Ok((Running::Gateway(server), endpoint))
        }
        Protocol::Bare | Protocol::SocketIo => {
            let binary = if protocol == Protocol::Bare {
                &binaries.bare
            } else {
                &binaries.socketio
            };
            start_peer(protocol, binary, &[]).await
        }
    }
}

/// Starts a server binary that takes `--ws-port` and `--publish-port` and says `listening`
/// (the peers, and `wsc-inproc` with `env`); clients speak `protocol`.
async fn start_peer(
    protocol: Protocol,
    binary: &std::path::Path,
    env: &[(&str, String)],
) -> Result<(Running, Endpoint), String> {
    let (ws, publish) = (wsc_testkit::free_port(), wsc_testkit::free_port());
    let mut child = KillOnDrop(
        Command::new(binary)
            .args(["--ws-port", &ws.to_string()])
            .args(["--publish-port", &publish.to_string()])
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?,
    );
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let lines = Lines::new(stdout);
    lines.wait_for("listening", Duration::from_secs(20));
    let endpoint = Endpoint {
        protocol,
        ws: ([127, 0, 0, 1], ws).into(),
        publish: ([127, 0, 0, 1], publish).into(),
        pid: child.id(),
    };
    Ok((Running::Peer(child, lines), endpoint))
}

/// The servers in the order they take turns.
pub const SUBJECTS: [Protocol; 3] = [Protocol::Wsc, Protocol::Bare, Protocol::SocketIo];

/// One fan-out run against a fresh server.
pub async fn fanout_once(
    protocol: Protocol,
    binaries: &Binaries,
    run: &Fanout,
) -> Result<FanoutResult, String> {
    let (_server, endpoint) = start(protocol, binaries, run.via).await?;
    crate::load::fanout(endpoint, run).await
}

/// The header of the fan-out and point-to-point tables.
const DELIVERY_TABLE: &str = "| publishes/s | server | deliveries/s | p50 | p99 | p99.9 | lost | duplicated | server CPU / delivery | loadgen CPU | idle memory / conn | vs bare | vs socketioxide |\n\
     |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// The fan-out scenario: for each rate (publishes per second; `None` = saturation), `rounds`
/// alternating runs of each server; the markdown table of medians.
pub async fn fanout(
    binaries: &Binaries,
    connections: usize,
    rates: &[Option<f64>],
    rounds: usize,
) -> Result<String, String> {
    let mut table = String::from(DELIVERY_TABLE);
    for rate in rates {
        let run = Fanout {
            connections,
            messages: match rate {
                Some(r) => (r * 10.0).round().max(1.0) as u32,
                None => 200,
            },
            rate: *rate,
            publishers: if rate.is_some() { 4 } else { 8 },
            ..Fanout::default()
        };
        let medians = alternate(binaries, &run, rounds, "fanout").await?;
        table.push_str(&rows(&rate_label(*rate), &medians));
        if rate.is_none() {
            // The same bytes on the wire: the peers publish payloads as large as the
            // gateway's frame (its envelope around the same 100 bytes), so the ratio shows
            // what the envelope's size costs and what the rest of the path does.
            let frame = medians[0].frame_bytes.round() as usize;
            let same_bytes = |protocol| Fanout {
                size: if protocol == Protocol::Wsc {
                    run.size
                } else {
                    frame
                },
                ..run.clone()
            };
            let medians = alternate_each(binaries, same_bytes, rounds, "fanout").await?;
            table.push_str(&rows(&format!("saturation, peers at {frame} B"), &medians));
        }
    }
    Ok(table)
}

/// The point-to-point scenario: `connections` clients, each publish to one of them through
/// the per-user API (`seq % connections`), from 32 publishing connections. First as fast as
/// they go, then at half the gateway's saturation rate (the same rate for every server).
pub async fn p2p(binaries: &Binaries, connections: usize, rounds: usize) -> Result<String, String> {
    let mut table = String::from(DELIVERY_TABLE);
    let run = Fanout {
        connections,
        pattern: Pattern::PerClient,
        messages: 100_000,
        rate: None,
        publishers: 32,
        ..Fanout::default()
    };
    let saturation = alternate(binaries, &run, rounds, "p2p").await?;
    table.push_str(&rows(&rate_label(None), &saturation));
    let half = (saturation[0].deliveries_per_s / 2.0).round().max(1.0);
    let run = Fanout {
        messages: (half * 10.0) as u32,
        rate: Some(half),
        ..run
    };
    let rated = alternate(binaries, &run, rounds, "p2p").await?;
    table.push_str(&rows(&rate_label(Some(half)), &rated));
    Ok(table)
}

/// The ack scenario: point-to-point sends (as in [`p2p`]) that each wait for the client's
/// acknowledgement, against the same sends without one. Three runs per server: unacked at
/// saturation, acked at saturation, and acked at half the gateway's acked saturation rate.
/// The call round trip (request to answer, which for an acked send includes the client's
/// ack) is the latency that counts; acked calls per second over unacked ones is the cost of
/// the acknowledgement.
pub async fn ack(binaries: &Binaries, connections: usize, rounds: usize) -> Result<String, String> {
    let mut table = String::from(
        "| run | server | calls/s | call p50 | call p99 | delivery p99 | unacked | lost | server CPU / call | acked / unacked | vs bare | vs socketioxide |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let unacked_run = Fanout {
        connections,
        pattern: Pattern::PerClient,
        messages: 50_000,
        rate: None,
        publishers: 32,
        ..Fanout::default()
    };
    let acked_run = Fanout {
        ack: true,
        ..unacked_run.clone()
    };
    let unacked = alternate(binaries, &unacked_run, rounds, "ack(off)").await?;
    let acked = alternate(binaries, &acked_run, rounds, "ack(on)").await?;
    let half = (acked[0].calls_per_s / 2.0).round().max(1.0);
    let rated_run = Fanout {
        messages: (half * 10.0) as u32,
        rate: Some(half),
        ..acked_run.clone()
    };
    let rated = alternate(binaries, &rated_run, rounds, "ack(on)").await?;
    let runs = [
        ("unacked, saturation".to_owned(), &unacked_run, &unacked),
        ("acked, saturation".to_owned(), &acked_run, &acked),
        (format!("acked, {half}/s"), &rated_run, &rated),
    ];
    for (name, run, medians) in runs {
        let (bare, peer) = (medians[1].calls_per_s, medians[2].calls_per_s);
        for (s, protocol) in SUBJECTS.iter().enumerate() {
            let m = &medians[s];
            let cost = if run.ack && run.rate.is_none() {
                format!("{:.2}", m.calls_per_s / unacked[s].calls_per_s.max(1.0))
            } else {
                String::new()
            };
            table.push_str(&format!(
                "| {name} | {} | {:.0} | {} | {} | {} | {} | {} | {:.1} µs | {cost} | {:.2}x | {:.2}x |\n",
                protocol.name(),
                m.calls_per_s,
                ms(m.call_p50_us),
                ms(m.call_p99_us),
                ms(m.p99_us),
                m.unacked,
                m.lost,
                m.server_us_per_call(run.messages),
                m.calls_per_s / bare.max(1.0),
                m.calls_per_s / peer.max(1.0),
            ));
        }
    }
    Ok(table)
}

/// `rounds` alternating runs of every server (a fresh one each time); the median run of each
/// ([`median_run`]).
async fn alternate(
    binaries: &Binaries,
    run: &Fanout,
    rounds: usize,
    scenario: &str,
) -> Result<Vec<FanoutResult>, String> {
    alternate_each(binaries, |_| run.clone(), rounds, scenario).await
}

/// [`alternate`] with a run of its own for each server.
async fn alternate_each(
    binaries: &Binaries,
    run_of: impl Fn(Protocol) -> Fanout,
    rounds: usize,
    scenario: &str,
) -> Result<Vec<FanoutResult>, String> {
    let mut results: Vec<Vec<FanoutResult>> = vec![Vec::new(); SUBJECTS.len()];
    for round in 0..rounds {
        for (s, protocol) in SUBJECTS.iter().enumerate() {
            let run = run_of(*protocol);
            let result = fanout_once(*protocol, binaries, &run).await?;
            eprintln!(
                "{scenario} rate={} round={round} {}: {}",
                run.rate.map_or("saturation".to_owned(), |r| r.to_string()),
                protocol.name(),
                result.line()
            );
            results[s].push(result);
        }
    }
    let run = run_of(SUBJECTS[0]);
    Ok(results.iter().map(|r| median_run(r, &run)).collect())
}

/// The first cell of a delivery row: the publish rate, or saturation.
fn rate_label(rate: Option<f64>) -> String {
    rate.map_or("saturation".to_owned(), |r| format!("{r}"))
}

/// One table row per server, with the ratios to the baseline and to the peer.
fn rows(label: &str, medians: &[FanoutResult]) -> String {
    let (bare, peer) = (medians[1].deliveries_per_s, medians[2].deliveries_per_s);
    let mut rows = String::new();
    for (s, protocol) in SUBJECTS.iter().enumerate() {
        let m = &medians[s];
        rows.push_str(&format!(
            "| {} | {} | {:.0} | {} | {:.2} µs | {:.1} s | {:.1} KB | {:.2}x | {:.2}x |\n",
            label,
            protocol.name(),
            m.deliveries_per_s,
            m.latency_and_loss_cells(),
            m.server_us_per_delivery(),
            m.loadgen_cpu_s,
            m.idle_bytes_per_connection / 1000.0,
            m.deliveries_per_s / bare.max(1.0),
            m.deliveries_per_s / peer.max(1.0),
        ));
    }
    rows
}

/// The idle scenario: for each connection count, `rounds` alternating runs of each server
/// holding that many idle clients (heartbeats answered) for `window`; the markdown table of
/// medians (by memory per connection).
pub async fn idle(
    binaries: &Binaries,
    counts: &[usize],
    window: Duration,
    rounds: usize,
) -> Result<String, String> {
    let mut table = String::from(
        "| connections | server | memory / conn | server RSS | CPU / conn-second | dropped | vs bare | vs socketioxide |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for &count in counts {
        let mut results: Vec<Vec<IdleResult>> = vec![Vec::new(); SUBJECTS.len()];
        for round in 0..rounds {
            for (s, protocol) in SUBJECTS.iter().enumerate() {
                let (_server, endpoint) = start(*protocol, binaries, Via::Http).await?;
                let result =
                    crate::load::idle(endpoint, count, Duration::from_secs(2), window).await?;
                eprintln!(
                    "idle connections={count} round={round} {}: {:.0} B/conn, rss {} KiB, \
                     {:.0} ns CPU per conn-second, dropped {}",
                    protocol.name(),
                    result.bytes_per_connection,
                    result.rss / 1024,
                    result.cpu_ns_per_connection_second,
                    result.dropped
                );
                results[s].push(result);
            }
        }
        let medians: Vec<IdleResult> = results
            .iter()
            .map(|runs| median_by(runs, |r| r.bytes_per_connection))
            .collect();
        let (bare, peer) = (
            medians[1].bytes_per_connection,
            medians[2].bytes_per_connection,
        );
        for (s, protocol) in SUBJECTS.iter().enumerate() {
            let m = &medians[s];
            table.push_str(&format!(
                "| {count} | {} | {:.2} KiB | {:.1} MiB | {:.0} ns | {} | {:.2}x | {:.2}x |\n",
                protocol.name(),
                m.bytes_per_connection / 1024.0,
                m.rss as f64 / (1024.0 * 1024.0),
                m.cpu_ns_per_connection_second,
                m.dropped,
                m.bytes_per_connection / bare.max(1.0),
                m.bytes_per_connection / peer.max(1.0),
            ));
        }
    }
    Ok(table)
}

/// The churn scenario: 64 clients connect, close and connect again for ten seconds; `rounds`
/// alternating runs of each server; the markdown table of medians (by cycles per second).
pub async fn churn(binaries: &Binaries, rounds: usize) -> Result<String, String> {
    let run = Churn::default();
    let mut results: Vec<Vec<ChurnResult>> = vec![Vec::new(); SUBJECTS.len()];
    for round in 0..rounds {
        for (s, protocol) in SUBJECTS.iter().enumerate() {
            let (_server, endpoint) = start(*protocol, binaries, Via::Http).await?;
            let result = crate::load::churn(endpoint, &run).await?;
            eprintln!(
                "churn round={round} {}: {:.0} cycles/s, connect p50 {} µs p99 {} µs, \
                 failed {} ({}), {:.0} µs CPU per cycle, descriptors left {}, rss growth {} KiB",
                protocol.name(),
                result.cycles_per_s,
                result.connect_p50_us,
                result.connect_p99_us,
                result.failed,
                result.first_error.as_deref().unwrap_or("-"),
                result.server_us_per_cycle,
                result.descriptors_left,
                result.rss_growth / 1024
            );
            results[s].push(result);
        }
    }
    let medians: Vec<ChurnResult> = results
        .iter()
        .map(|runs| median_by(runs, |r| r.cycles_per_s))
        .collect();
    let (bare, peer) = (medians[1].cycles_per_s, medians[2].cycles_per_s);
    let mut table = String::from(
        "| server | connects + closes / s | connect p50 | connect p99 | failed | server CPU / cycle | descriptors left | RSS growth | vs bare | vs socketioxide |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (s, protocol) in SUBJECTS.iter().enumerate() {
        let m = &medians[s];
        table.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {:.0} µs | {} | {:.1} MiB | {:.2}x | {:.2}x |\n",
            protocol.name(),
            m.cycles_per_s,
            ms(m.connect_p50_us),
            ms(m.connect_p99_us),
            m.failed,
            m.server_us_per_cycle,
            m.descriptors_left,
            m.rss_growth as f64 / (1024.0 * 1024.0),
            m.cycles_per_s / bare.max(1.0),
            m.cycles_per_s / peer.max(1.0),
        ));
    }
    Ok(table)
}

/// The gRPC scenario (the gateway only: the peers have no gRPC API): the same publishes
/// through the HTTP API and through gRPC, in alternation: point to point at saturation (as
/// [`p2p`]), acked point to point at saturation (as [`ack`]) and a broadcast to every
/// client at saturation (as [`fanout`]).
pub async fn grpc(
    binaries: &Binaries,
    connections: usize,
    rounds: usize,
) -> Result<String, String> {
    let p2p = Fanout {
        connections,
        pattern: Pattern::PerClient,
        messages: 50_000,
        publishers: 32,
        ..Fanout::default()
    };
    let runs = [
        ("point to point, saturation", p2p.clone()),
        (
            "acked point to point, saturation",
            Fanout { ack: true, ..p2p },
        ),
        (
            "broadcast, saturation",
            Fanout {
                connections,
                ..Fanout::default()
            },
        ),
    ];
    let mut table = String::from(
        "| run | API | calls/s | deliveries/s | call p50 | call p99 | delivery p99 | lost | unacked | server CPU / call |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, run) in runs {
        let mut results: [Vec<FanoutResult>; 2] = [Vec::new(), Vec::new()];
        for round in 0..rounds {
            for (v, via) in [Via::Http, Via::Grpc].into_iter().enumerate() {
                let run = Fanout { via, ..run.clone() };
                let result = fanout_once(Protocol::Wsc, binaries, &run).await?;
                eprintln!("grpc {name} round={round} {via:?}: {}", result.line());
                results[v].push(result);
            }
        }
        for (v, api) in ["HTTP", "gRPC"].into_iter().enumerate() {
            let m = median_by(&results[v], |r| r.calls_per_s);
            table.push_str(&format!(
                "| {name} | {api} | {:.0} | {:.0} | {} | {} | {} | {} | {} | {:.1} µs |\n",
                m.calls_per_s,
                m.deliveries_per_s,
                ms(m.call_p50_us),
                ms(m.call_p99_us),
                ms(m.p99_us),
                m.lost,
                m.unacked,
                m.server_us_per_call(run.messages),
            ));
        }
    }
    Ok(table)
}

/// The in-process scenario: what the gateway's HTTP API costs on top of the hub. The
/// gateway through its API (`gateway-server`), the same gateway embedded in `wsc-inproc`
/// publishing in-process (a bare hyper listener calling `Hub::send_to_user` and
/// `Hub::broadcast`), and the bare baseline, in alternation: point to point at saturation
/// (as [`p2p`]) and a broadcast to every client at saturation (as [`fanout`]).
pub async fn in_process(
    binaries: &Binaries,
    connections: usize,
    rounds: usize,
) -> Result<String, String> {
    let subjects = [
        ("gateway-server (HTTP API)", Protocol::Wsc, Via::Http),
        (
            "gateway in-process (wsc-inproc)",
            Protocol::Wsc,
            Via::InProcess,
        ),
        ("bare tokio-tungstenite", Protocol::Bare, Via::Http),
    ];
    let runs = [
        (
            "point to point, saturation",
            Fanout {
                connections,
                pattern: Pattern::PerClient,
                messages: 50_000,
                publishers: 32,
                ..Fanout::default()
            },
        ),
        (
            "broadcast, saturation",
            Fanout {
                connections,
                ..Fanout::default()
            },
        ),
    ];
    let mut table = String::from(
        "| run | server | deliveries/s | p50 | p99 | p99.9 | lost | duplicated | server CPU / delivery | vs bare |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, run) in runs {
        let mut results: Vec<Vec<FanoutResult>> = vec![Vec::new(); subjects.len()];
        for round in 0..rounds {
            for (s, (server, protocol, via)) in subjects.iter().enumerate() {
                let run = Fanout {
                    via: *via,
                    ..run.clone()
                };
                let result = fanout_once(*protocol, binaries, &run).await?;
                eprintln!(
                    "in-process {name} round={round} {server}: {}",
                    result.line()
                );
                results[s].push(result);
            }
        }
        let medians: Vec<FanoutResult> = results.iter().map(|r| median_run(r, &run)).collect();
        let bare = medians[2].deliveries_per_s;
        for (s, (server, _, _)) in subjects.iter().enumerate() {
            let m = &medians[s];
            table.push_str(&format!(
                "| {name} | {server} | {:.0} | {} | {:.2} µs | {:.2}x |\n",
                m.deliveries_per_s,
                m.latency_and_loss_cells(),
                m.server_us_per_delivery(),
                m.deliveries_per_s / bare.max(1.0),
            ));
        }
    }
    Ok(table)
}

/// `count` gateway nodes; on `redis` (a fresh server per run, so that no run sees another's
/// presence) when given, as one cluster.
pub fn start_nodes(
    binary: &std::path::Path,
    count: usize,
    redis: Option<&RedisServer>,
) -> Result<Vec<ServerProcess>, String> {
    let mut env: Vec<(&str, String)> = gateway_env();
    if let Some(redis) = redis {
        env.extend([
            ("GATEWAY__WSC__REDIS__ENABLED", "true".to_owned()),
            ("GATEWAY__WSC__REDIS__URL", redis.url()),
            ("GATEWAY__WSC__DISTRIBUTED__ENABLED", "true".to_owned()),
            ("GATEWAY__WSC__DISTRIBUTED__KEY_PREFIX", "bench:".to_owned()),
        ]);
    }
    (0..count)
        .map(|i| {
            let mut env = env.clone();
            env.push(("GATEWAY__WSC__DISTRIBUTED__NODE_ID", format!("bench-{i}")));
            ServerProcess::start(binary, &env)
        })
        .collect()
}

/// The cross-node scenario (the gateway only: the peers have no multi-node mode in this
/// harness). The same runs on one node alone, one node on Redis, and three nodes on Redis
/// with the clients spread over them round robin and every publish sent through the first
/// node's API (so two thirds of the deliveries cross Redis): point to point at 10,000/s, a
/// broadcast to every client once a second, and point to point at saturation.
pub async fn cross_node(
    binaries: &Binaries,
    connections: usize,
    rounds: usize,
) -> Result<String, String> {
    let topologies: [(&str, usize, bool); 3] = [
        ("1 node", 1, false),
        ("1 node on Redis", 1, true),
        ("3 nodes on Redis", 3, true),
    ];
    let p2p = Fanout {
        connections,
        pattern: Pattern::PerClient,
        messages: 50_000,
        rate: Some(10_000.0),
        publishers: 32,
        ..Fanout::default()
    };
    let broadcast = Fanout {
        connections,
        messages: 10,
        rate: Some(1.0),
        publishers: 4,
        ..Fanout::default()
    };
    let saturation = Fanout {
        rate: None,
        ..p2p.clone()
    };
    let runs = [
        ("point to point, 10,000/s", p2p),
        ("broadcast, 1/s", broadcast),
        ("point to point, saturation", saturation),
    ];
    let mut table = String::from(
        "| run | gateway | deliveries/s | p50 | p99 | p99.9 | lost | duplicated | p99 added vs 1 node | vs 1 node (deliveries/s) |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (name, run) in runs {
        let mut results: Vec<Vec<FanoutResult>> = vec![Vec::new(); topologies.len()];
        for round in 0..rounds {
            for (t, (topology, count, on_redis)) in topologies.iter().enumerate() {
                let redis = on_redis.then(RedisServer::start);
                let nodes = start_nodes(&binaries.gateway, *count, redis.as_ref())?;
                let endpoint = Endpoint::gateway(&nodes[0]);
                let run = Fanout {
                    nodes: nodes.iter().map(|n| n.public).collect(),
                    ..run.clone()
                };
                let result = crate::load::fanout(endpoint, &run).await?;
                eprintln!(
                    "cross-node {name} round={round} {topology}: {}",
                    result.line()
                );
                results[t].push(result);
            }
        }
        let medians: Vec<FanoutResult> = results.iter().map(|r| median_run(r, &run)).collect();
        let alone = &medians[0];
        for (t, (topology, _, _)) in topologies.iter().enumerate() {
            let m = &medians[t];
            table.push_str(&format!(
                "| {name} | {topology} | {:.0} | {} | {:+.1} ms | {:.2}x |\n",
                m.deliveries_per_s,
                m.latency_and_loss_cells(),
                (m.p99_us as f64 - alone.p99_us as f64) / 1000.0,
                m.deliveries_per_s / alone.deliveries_per_s.max(1.0),
            ));
        }
    }
    Ok(table)
}

/// The median of runs of `run`: by deliveries per second at saturation; at a set rate, where
/// every run delivers the same, by the latency the row is about (the call round trip of an
/// acked send, the delivery otherwise).
fn median_run(runs: &[FanoutResult], run: &Fanout) -> FanoutResult {
    match (run.rate, run.ack) {
        (None, _) => median_by(runs, |r| r.deliveries_per_s),
        (Some(_), true) => median_by(runs, |r| r.call_p99_us as f64),
        (Some(_), false) => median_by(runs, |r| r.p99_us as f64),
    }
}

/// The run with the median `key` (its other figures come with it, so one row is one real
/// run).
fn median_by<T: Clone + Default>(runs: &[T], key: impl Fn(&T) -> f64) -> T {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| key(a).total_cmp(&key(b)));
    sorted.get(sorted.len() / 2).cloned().unwrap_or_default()
}
