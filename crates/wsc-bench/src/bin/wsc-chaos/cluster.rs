//! The system under test: a throwaway `redis-server` and three `gateway-server` nodes on it,
//! and what the run does to them (kill and restart a node on the same ports, stop and
//! continue it, kill and restart Redis), plus the queries every check needs (readiness,
//! presence, counters).
//!
//! The nodes run as in `crates/gateway-server/tests/multinode.rs`: distributed mode on one
//! Redis, the Redis offline store, presence and node TTLs of two seconds so a fault shows
//! within a few seconds, and a one-second Redis timeout so calls fail fast while Redis is
//! down. [`Directory`] is what clients read to choose a node; it is separate from
//! [`Cluster`] so that client tasks never wait for the controller.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use wsc_bench::server::ServerProcess;
use wsc_testkit::redis_server::RedisServer;

use crate::http;

/// The nodes' ids, in index order. `n1` takes the API traffic and holds no client, so it
/// is never a fault's target: every send crosses Redis to `n2` or `n3`.
pub(crate) const NODE_IDS: [&str; 3] = ["n1", "n2", "n3"];

/// The node that takes the API traffic.
pub(crate) const SENDER: usize = 0;

/// Presence and node-registry TTL: a node that stops renewing leaves every answer within
/// this time (renewals run every third of it).
pub(crate) const TTL: Duration = Duration::from_secs(2);

/// How a node is, as far as clients and checks are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodeState {
    /// Running: clients may connect, checks query it.
    Up,
    /// Killed: refuses connections.
    Down,
    /// Stopped with SIGSTOP: the kernel still accepts connections, nothing answers. Nobody
    /// should wait on it.
    Stopped,
}

/// Where one node listens and how it is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NodeInfo {
    /// Its node id.
    pub(crate) id: &'static str,
    /// The public listener (`/ws`).
    pub(crate) public: SocketAddr,
    /// The API listener.
    pub(crate) api: SocketAddr,
    /// How it is.
    pub(crate) state: NodeState,
}

/// The nodes as clients and checks see them; shared, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Directory(Arc<Mutex<Vec<NodeInfo>>>);

impl Directory {
    fn lock(&self) -> MutexGuard<'_, Vec<NodeInfo>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Node `index`.
    pub(crate) fn get(&self, index: usize) -> NodeInfo {
        self.lock()[index]
    }

    fn set_state(&self, index: usize, state: NodeState) {
        self.lock()[index].state = state;
    }

    /// The nodes that answer, by index.
    pub(crate) fn up(&self) -> Vec<usize> {
        let nodes = self.lock();
        (0..nodes.len())
            .filter(|&i| nodes[i].state == NodeState::Up)
            .collect()
    }

    /// The node a client whose home is `home` should connect to now: its home when it is
    /// up; otherwise, with `failover`, another node that holds clients (never the sender,
    /// so that every send keeps crossing Redis); otherwise none (wait for the home node).
    pub(crate) fn pick(&self, home: usize, failover: bool) -> Option<usize> {
        let nodes = self.lock();
        if nodes[home].state == NodeState::Up {
            return Some(home);
        }
        if !failover {
            return None;
        }
        (0..nodes.len()).find(|&i| i != SENDER && i != home && nodes[i].state == NodeState::Up)
    }
}

/// Redis and the three nodes; everything is killed when dropped.
#[derive(Debug)]
pub(crate) struct Cluster {
    binary: PathBuf,
    redis: RedisServer,
    prefix: String,
    processes: Vec<Option<ServerProcess>>,
    /// What clients and checks read.
    pub(crate) directory: Directory,
}

impl Cluster {
    /// Starts Redis and the three nodes, and waits until every node is ready (Redis
    /// reachable, subscribed).
    pub(crate) async fn start(binary: &Path) -> Result<Cluster, String> {
        // `RedisServer::start` panics without a `redis-server`; say so plainly first.
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !found {
            return Err("no redis-server binary on PATH; install it: \
                        apt-get update && apt-get install -y redis-server"
                .to_owned());
        }
        // Its start waits on the thread (polling PING): keep the runtime's other tasks going.
        let redis = tokio::task::block_in_place(RedisServer::start);
        let mut cluster = Cluster {
            binary: binary.to_owned(),
            redis,
            prefix: format!("chaos{}:", std::process::id()),
            processes: Vec::new(),
            directory: Directory(Arc::new(Mutex::new(Vec::new()))),
        };
        for (index, id) in NODE_IDS.into_iter().enumerate() {
            let process = cluster.spawn(index, None)?;
            cluster.directory.lock().push(NodeInfo {
                id,
                public: process.public,
                api: process.api,
                state: NodeState::Up,
            });
            cluster.processes.push(Some(process));
        }
        for index in 0..NODE_IDS.len() {
            cluster.wait_ready(index, Duration::from_secs(20)).await?;
        }
        Ok(cluster)
    }

    /// The settings of node `index` (on top of `ServerProcess`'s loopback listeners).
    fn env(&self, index: usize) -> Vec<(&'static str, String)> {
        let ttl = format!("{}ms", TTL.as_millis());
        vec![
            ("GATEWAY__WSC__REDIS__ENABLED", "true".to_owned()),
            ("GATEWAY__WSC__REDIS__URL", self.redis.url()),
            ("GATEWAY__WSC__REDIS__CONNECT_TIMEOUT", "1s".to_owned()),
            ("GATEWAY__WSC__DISTRIBUTED__ENABLED", "true".to_owned()),
            (
                "GATEWAY__WSC__DISTRIBUTED__NODE_ID",
                NODE_IDS[index].to_owned(),
            ),
            ("GATEWAY__WSC__DISTRIBUTED__KEY_PREFIX", self.prefix.clone()),
            ("GATEWAY__WSC__DISTRIBUTED__PRESENCE_TTL", ttl.clone()),
            ("GATEWAY__WSC__DISTRIBUTED__NODE_TTL", ttl),
            ("GATEWAY__WSC__OFFLINE__STORE", "redis".to_owned()),
            // The store's per-user bound drops the oldest messages, as documented; the run
            // must never reach it, or a documented drop would look like a loss.
            ("GATEWAY__WSC__OFFLINE__MAX_PER_USER", "10000".to_owned()),
            // A resume window that covers every fault's gap at the run's send rate.
            ("GATEWAY__WSC__RECOVERY__HISTORY_SIZE", "1000".to_owned()),
            // A stalled client is found within 2 s of its socket filling up, and its queue
            // fills with a few large messages, so the slow-consumer fault takes seconds.
            ("GATEWAY__WSC__PERFORMANCE__WRITE_TIMEOUT", "2s".to_owned()),
            (
                "GATEWAY__WSC__PERFORMANCE__QUEUE_MAX_BYTES",
                "256KiB".to_owned(),
            ),
            // A client acks every copy, and a reconnect can replay hundreds at once (offline
            // and resume together): the inbound rate limit, which the abuse suite covers,
            // would close it with 1008 and add a fault the run did not choose.
            (
                "GATEWAY__WSC__SECURITY__ENABLE_RATE_LIMIT",
                "false".to_owned(),
            ),
        ]
    }

    /// Starts node `index`, on `ports` (public, API) when given, else on free ones.
    fn spawn(&self, index: usize, ports: Option<(u16, u16)>) -> Result<ServerProcess, String> {
        let env = self.env(index);
        // The start waits for the ready line on this thread.
        tokio::task::block_in_place(|| match ports {
            Some((public, api)) => ServerProcess::start_on(&self.binary, &env, public, api),
            None => ServerProcess::start(&self.binary, &env),
        })
        .map_err(|e| format!("node {}: {e}", NODE_IDS[index]))
    }

    /// Node `index`'s API listener.
    pub(crate) fn api(&self, index: usize) -> SocketAddr {
        self.directory.get(index).api
    }

    /// Kills node `index` with SIGKILL (no drain, no leaving the cluster).
    pub(crate) fn kill(&mut self, index: usize) {
        self.directory.set_state(index, NodeState::Down);
        if let Some(mut process) = self.processes[index].take() {
            process.kill();
        }
    }

    /// Starts node `index` again with the same node id on the same ports, and waits until
    /// it is ready.
    pub(crate) async fn restart(&mut self, index: usize) -> Result<(), String> {
        let info = self.directory.get(index);
        let process = self.spawn(index, Some((info.public.port(), info.api.port())))?;
        self.processes[index] = Some(process);
        self.directory.set_state(index, NodeState::Up);
        self.wait_ready(index, Duration::from_secs(20)).await?;
        Ok(())
    }

    /// Stops node `index` with SIGSTOP (marked stopped first, so nothing starts waiting on
    /// it).
    pub(crate) fn pause(&self, index: usize) -> Result<(), String> {
        self.directory.set_state(index, NodeState::Stopped);
        let stopped = self.process(index).and_then(|p| p.signal("STOP"));
        if stopped.is_err() {
            self.directory.set_state(index, NodeState::Up);
        }
        stopped
    }

    /// Continues node `index` with SIGCONT.
    pub(crate) fn resume(&self, index: usize) -> Result<(), String> {
        self.process(index)?.signal("CONT")?;
        self.directory.set_state(index, NodeState::Up);
        Ok(())
    }

    fn process(&self, index: usize) -> Result<&ServerProcess, String> {
        self.processes[index]
            .as_ref()
            .ok_or_else(|| format!("node {} is not running", NODE_IDS[index]))
    }

    /// Kills Redis (SIGKILL: every key is gone, every connection drops).
    pub(crate) fn kill_redis(&mut self) {
        tokio::task::block_in_place(|| self.redis.kill());
    }

    /// Starts Redis again, empty, on the same port; returns once it answers `PING`.
    pub(crate) fn restart_redis(&mut self) {
        tokio::task::block_in_place(|| self.redis.restart());
    }

    /// Whether every node that should run still does; names the ones that exited.
    pub(crate) fn exited(&mut self) -> Vec<&'static str> {
        let mut exited = Vec::new();
        for (index, process) in self.processes.iter_mut().enumerate() {
            if let Some(process) = process
                && !process.is_running()
            {
                exited.push(NODE_IDS[index]);
            }
        }
        exited
    }

    /// Waits until node `index`'s `/ready` answers 200; returns how long that took.
    pub(crate) async fn wait_ready(
        &self,
        index: usize,
        within: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < within {
            match http::get(self.api(index), "/ready").await {
                Ok((200, _)) => return Ok(start.elapsed()),
                Ok((status, body)) => last = format!("{status} {body}"),
                Err(e) => last = e,
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "node {} not ready within {within:?}: {last}",
            NODE_IDS[index]
        ))
    }

    /// Waits until node `index`'s `/ready` answers 503 (it noticed Redis is gone).
    pub(crate) async fn wait_unready(
        &self,
        index: usize,
        within: Duration,
    ) -> Result<Duration, String> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Ok((503, _)) = http::get(self.api(index), "/ready").await {
                return Ok(start.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "node {} still ready {within:?} after Redis died",
            NODE_IDS[index]
        ))
    }

    /// A counter of node `index`'s `GET /api/v1/stats`.
    pub(crate) async fn stat(&self, index: usize, name: &str) -> Result<u64, String> {
        let (status, body) = http::get(self.api(index), "/api/v1/stats").await?;
        body[name]
            .as_u64()
            .filter(|_| status == 200)
            .ok_or_else(|| format!("stats of {}: {status} {body}", NODE_IDS[index]))
    }

    /// `GET /api/v1/users/{user}/presence` on node `index`.
    pub(crate) async fn presence(&self, index: usize, user: &str) -> Result<Value, String> {
        let (status, body) =
            http::get(self.api(index), &format!("/api/v1/users/{user}/presence")).await?;
        if status == 200 {
            Ok(body)
        } else {
            Err(format!(
                "presence of {user} on {}: {status} {body}",
                NODE_IDS[index]
            ))
        }
    }
}
