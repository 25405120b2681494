//! The faults and the phase around each: steady acknowledged traffic starts, the fault is
//! applied and undone, then the recovery is checked (clients back home, presence
//! converged, traffic flowing again, every accepted message delivered).
//!
//! The holds inside a fault (a node stopped one second longer after it left presence,
//! Redis kept down two seconds) are the experiment's design, so that sends meet the fault;
//! every condition the run relies on is polled with a deadline.

use std::time::{Duration, Instant};

use crate::Chaos;
use crate::checks;
use crate::cluster::{NODE_IDS, SENDER, TTL};
use crate::traffic::{FLOOD, ID_PREFIX, STEADY, Traffic};

/// The faults, in the order the run applies them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// No fault: what the counts look like when nothing goes wrong.
    Baseline,
    /// A client node killed with SIGKILL and restarted on the same ports.
    SigkillNode,
    /// A client node stopped with SIGSTOP until it left presence, then continued.
    SigstopNode,
    /// Redis killed and started again, empty, on the same port.
    RedisRestart,
    /// One client stops reading until its node disconnects it as a slow consumer.
    SlowConsumer,
}

impl Fault {
    /// Every fault, in order.
    pub(crate) const ALL: [Fault; 5] = [
        Fault::Baseline,
        Fault::SigkillNode,
        Fault::SigstopNode,
        Fault::RedisRestart,
        Fault::SlowConsumer,
    ];

    /// Its name in the output.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Fault::Baseline => "baseline",
            Fault::SigkillNode => "sigkill_node",
            Fault::SigstopNode => "sigstop_node",
            Fault::RedisRestart => "redis_restart",
            Fault::SlowConsumer => "slow_consumer",
        }
    }
}

/// The node the node faults hit: `n2` is killed, `n3` is stopped (each holds half the
/// clients; `n1`, the sender, is never hit).
const KILLED: usize = 1;
const STOPPED: usize = 2;

/// Every bound on one step of a phase.
const STEP: Duration = Duration::from_secs(20);

/// Acknowledged deliveries that show the traffic flows, before a fault and after it.
const FLOWING: usize = 20;

/// Steady traffic before each fault and after each recovery, so that every fault meets
/// traffic in full flow and every recovery carries some: the run's length is mostly these.
const STEADY_BEFORE: Duration = Duration::from_secs(4);
const STEADY_AFTER: Duration = Duration::from_secs(4);

/// How long the baseline phase sends without a fault.
const BASELINE: Duration = Duration::from_secs(8);

/// What a phase observed, beyond the ledger's counts.
#[derive(Debug, Default)]
pub(crate) struct PhaseResult {
    /// Milliseconds from the end of the fault until presence converged.
    pub(crate) presence_ms: Option<u128>,
    /// What happened, for the reader.
    pub(crate) notes: Vec<String>,
    /// Broken invariants and steps that did not happen in time.
    pub(crate) failures: Vec<String>,
    /// Users the delivery check reconnected to get their offline replay.
    pub(crate) reconnected: Vec<String>,
}

/// Runs phase `phase` with `fault`.
pub(crate) async fn run(chaos: &mut Chaos, phase: usize, fault: Fault) -> PhaseResult {
    let mut result = PhaseResult::default();
    let begun = Instant::now();
    let users: Vec<String> = chaos.clients.iter().map(|c| c.user.clone()).collect();
    let traffic = Traffic::start(
        chaos.cluster.api(SENDER),
        &users,
        phase,
        STEADY,
        &chaos.ledger,
    );
    if let Err(e) = checks::traffic_flows(chaos, phase, begun, FLOWING, STEP).await {
        result.failures.push(format!("before the fault: {e}"));
    }
    tokio::time::sleep_until((begun + STEADY_BEFORE).into()).await;
    let applied = match fault {
        Fault::Baseline => {
            tokio::time::sleep(BASELINE).await;
            Ok(Instant::now())
        }
        Fault::SigkillNode => sigkill(chaos, &mut result.notes).await,
        Fault::SigstopNode => sigstop(chaos, &mut result.notes).await,
        Fault::RedisRestart => redis_restart(chaos, &mut result.notes).await,
        Fault::SlowConsumer => slow_consumer(chaos, phase, &mut result.notes).await,
    };
    let undone = applied.unwrap_or_else(|e| {
        result.failures.push(e);
        Instant::now()
    });
    if let Err(e) = checks::clients_home(chaos, STEP).await {
        result.failures.push(format!("after the fault: {e}"));
    }
    match checks::presence_converged(chaos, STEP).await {
        Ok(at) => result.presence_ms = Some(at.duration_since(undone).as_millis()),
        Err(e) => result.failures.push(format!("after the fault: {e}")),
    }
    // Traffic must flow again once presence agrees, not merely be stored offline.
    let recovered = Instant::now();
    if let Err(e) = checks::traffic_flows(chaos, phase, recovered, FLOWING, STEP).await {
        result.failures.push(format!("after recovery: {e}"));
    }
    tokio::time::sleep_until((recovered + STEADY_AFTER).into()).await;
    if let Err(e) = traffic.stop().await {
        result.failures.push(e);
    }
    let in_flight = chaos.ledger.lock().in_flight(phase);
    if in_flight > 0 {
        result
            .failures
            .push(format!("{in_flight} sends still without an answer"));
    }
    let delivery = checks::deliveries(chaos, phase).await;
    if !delivery.reconnected.is_empty() {
        result.notes.push(format!(
            "{} accepted messages arrived only after the run reconnected {} (offline replay)",
            delivery.needed_reconnect,
            delivery.reconnected.join(",")
        ));
    }
    result.reconnected = delivery.reconnected;
    // The reconnects moved clients: presence must agree again.
    if let Err(e) = checks::presence_converged(chaos, STEP).await {
        result
            .failures
            .push(format!("after the delivery check: {e}"));
    }
    let exited = chaos.cluster.exited();
    if !exited.is_empty() {
        result
            .failures
            .push(format!("nodes exited on their own: {}", exited.join(",")));
    }
    result
}

/// Kills `n2`; half its clients fail over to `n3` at once, the other half wait for `n2`
/// to come back. `n2` is restarted (same node id, same ports) once the cluster dropped it
/// from presence, and the clients that failed over move back to it.
async fn sigkill(chaos: &mut Chaos, notes: &mut Vec<String>) -> Result<Instant, String> {
    let victims: Vec<usize> = (0..chaos.clients.len())
        .filter(|&i| chaos.clients[i].home == KILLED)
        .collect();
    for (k, &i) in victims.iter().enumerate() {
        chaos.clients[i].set_failover(k % 2 == 0);
    }
    let failover = |c: &crate::client::Client, s: &crate::client::State| {
        c.home != KILLED || !s.failover || s.node.is_some_and(|n| n != KILLED)
    };
    let sticky: Vec<String> = victims
        .iter()
        .filter(|&&i| !chaos.clients[i].state().failover)
        .map(|&i| chaos.clients[i].user.clone())
        .collect();
    chaos.cluster.kill(KILLED);
    let killed = Instant::now();
    notes.push(format!("killed {} with SIGKILL", NODE_IDS[KILLED]));
    let took = checks::clients_where(chaos, STEP, "failed over", failover).await?;
    notes.push(format!(
        "failover clients admitted on another node {} ms after the kill",
        took.as_millis()
    ));
    let left = left_presence(chaos, &sticky, KILLED).await?;
    notes.push(format!(
        "{} left presence {} ms after the kill (node TTL {} ms)",
        NODE_IDS[KILLED],
        left.duration_since(killed).as_millis(),
        TTL.as_millis()
    ));
    chaos.cluster.restart(KILLED).await?;
    let undone = Instant::now();
    notes.push(format!(
        "restarted {} on the same ports, ready {} ms after the kill",
        NODE_IDS[KILLED],
        undone.duration_since(killed).as_millis()
    ));
    // The clients that waited come back to the restarted node by themselves; those that
    // failed over are moved back, so every phase starts from the same layout.
    for &i in &victims {
        let client = &chaos.clients[i];
        if client.state().failover {
            client.set_failover(false);
            client.reconnect();
        }
    }
    Ok(undone)
}

/// Stops `n3` with SIGSTOP until the other nodes no longer list it in presence (its
/// registry entry expired: longer than the presence TTL), one second more, then continues
/// it.
async fn sigstop(chaos: &mut Chaos, notes: &mut Vec<String>) -> Result<Instant, String> {
    let users: Vec<String> = chaos
        .clients
        .iter()
        .filter(|c| c.home == STOPPED)
        .map(|c| c.user.clone())
        .collect();
    chaos.cluster.pause(STOPPED)?;
    let stopped = Instant::now();
    let left = left_presence(chaos, &users, STOPPED).await;
    if let Ok(left) = left {
        notes.push(format!(
            "{} left presence {} ms after SIGSTOP (presence TTL {} ms)",
            NODE_IDS[STOPPED],
            left.duration_since(stopped).as_millis(),
            TTL.as_millis()
        ));
        // Sends while it is out of presence go to the offline store directly; and it stays
        // stopped longer than the presence TTL in any case.
        let hold = (TTL + Duration::from_secs(1)).saturating_sub(stopped.elapsed());
        tokio::time::sleep(hold.max(Duration::from_secs(1))).await;
    }
    // Continued in any case, so a failed wait does not leave it stopped.
    chaos.cluster.resume(STOPPED)?;
    let undone = Instant::now();
    left?;
    notes.push(format!(
        "SIGCONT after {} ms stopped",
        undone.duration_since(stopped).as_millis()
    ));
    Ok(undone)
}

/// Kills Redis, keeps it down two seconds after the sender noticed, and starts it again,
/// empty, on the same port; waits until every node is ready again.
async fn redis_restart(chaos: &mut Chaos, notes: &mut Vec<String>) -> Result<Instant, String> {
    chaos.cluster.kill_redis();
    let killed = Instant::now();
    let noticed = chaos.cluster.wait_unready(SENDER, STEP).await;
    if let Ok(noticed) = noticed {
        notes.push(format!(
            "killed Redis; {} not ready after {} ms",
            NODE_IDS[SENDER],
            noticed.as_millis()
        ));
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    chaos.cluster.restart_redis();
    let undone = Instant::now();
    noticed?;
    notes.push(format!(
        "Redis restarted empty after {} ms down",
        undone.duration_since(killed).as_millis()
    ));
    let mut slowest = Duration::ZERO;
    for node in 0..NODE_IDS.len() {
        slowest = slowest.max(chaos.cluster.wait_ready(node, STEP).await?);
    }
    notes.push(format!(
        "every node ready again {} ms after the restart",
        undone.elapsed().as_millis().max(slowest.as_millis())
    ));
    Ok(undone)
}

/// The client with the small receive buffer stops reading; large acknowledged messages
/// to its user fill its socket and queue until its node disconnects it as a slow
/// consumer; then it reads what its socket holds and reconnects.
async fn slow_consumer(
    chaos: &mut Chaos,
    phase: usize,
    notes: &mut Vec<String>,
) -> Result<Instant, String> {
    let index = chaos
        .slow
        .ok_or("no client was started with a small receive buffer")?;
    let (user, state) = (
        chaos.clients[index].user.clone(),
        chaos.clients[index].state(),
    );
    let node = state.node.ok_or(format!("{user} is not connected"))?;
    let base = chaos
        .cluster
        .stat(node, "slow_consumer_disconnects")
        .await?;
    chaos.clients[index].stall();
    checks::clients_where(chaos, STEP, "stalled", |c, s| c.user != user || s.stalled).await?;
    let stalled = Instant::now();
    let flood = Traffic::start(
        chaos.cluster.api(SENDER),
        std::slice::from_ref(&user),
        phase,
        FLOOD,
        &chaos.ledger,
    );
    let mut disconnected = None;
    while stalled.elapsed() < STEP * 2 {
        if chaos
            .cluster
            .stat(node, "slow_consumer_disconnects")
            .await
            .is_ok_and(|n| n > base)
        {
            disconnected = Some(stalled.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let flooded = chaos
        .ledger
        .lock()
        .sent
        .keys()
        .filter(|id| id.starts_with(&format!("{ID_PREFIX}{phase}-{}-", FLOOD.label)))
        .count();
    let stopped = flood.stop().await;
    chaos.clients[index].unstall();
    let undone = Instant::now();
    let disconnected = disconnected.ok_or(format!(
        "{} did not disconnect {user} as a slow consumer within {:?}",
        NODE_IDS[node],
        STEP * 2
    ))?;
    stopped?;
    notes.push(format!(
        "{user} stopped reading; {} disconnected it as a slow consumer after {} ms and \
         {flooded} messages of {} KiB",
        NODE_IDS[node],
        disconnected.as_millis(),
        FLOOD.size / 1024
    ));
    let connections = state.connections;
    checks::clients_where(chaos, STEP, "reconnected after the stall", |c, s| {
        c.user != user || (s.connections > connections && s.node.is_some())
    })
    .await?;
    let after = chaos.clients[index].state();
    let endings = after.endings.get(connections as usize - 1..).unwrap_or(&[]);
    notes.push(format!(
        "{user}'s stalled connection ended with: {}",
        endings.first().map_or("?", String::as_str)
    ));
    Ok(undone)
}

/// Waits until node `index` is in none of `users`' presence as the sender sees it (its
/// registry entry expired); returns when.
async fn left_presence(chaos: &Chaos, users: &[String], index: usize) -> Result<Instant, String> {
    let start = Instant::now();
    loop {
        let mut still = None;
        for user in users {
            let body = chaos.cluster.presence(SENDER, user).await?;
            let listed = body["nodes"]
                .as_array()
                .is_some_and(|a| a.iter().any(|n| n == NODE_IDS[index]));
            if listed {
                still = Some(user);
                break;
            }
        }
        let Some(user) = still else {
            return Ok(Instant::now());
        };
        if start.elapsed() >= STEP {
            return Err(format!(
                "{} still lists {user} on {} {STEP:?} after the fault",
                NODE_IDS[SENDER], NODE_IDS[index]
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
