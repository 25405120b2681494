//! A Redis Cluster of a test's own: three masters (no replicas, no persistence) on free
//! loopback ports, each `redis-server` in its own temporary directory, joined with
//! `redis-cli --cluster create` and ready (`cluster_state:ok` on every node) before
//! [`RedisCluster::start`] returns. A test can add a replica to a master, kill a node and
//! promote a replica, to see a failover. Killed, and its files removed, when dropped, and
//! in any case when the test process ends. Fails, with the install command, when
//! `redis-server` or `redis-cli` is missing, and with what the tools printed when the
//! cluster does not form.
//!
//! ```no_run
//! use wsc_testkit::redis_cluster::RedisCluster;
//!
//! let cluster = RedisCluster::shared();
//! let seeds: Vec<String> = cluster.urls(); // redis://127.0.0.1:<port>/ each
//! # let _ = seeds;
//! ```

mod node;

use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::WAIT;
use node::{Node, distinct_free_ports};

/// How many masters a cluster has: the fewest `redis-cli --cluster create` accepts.
const MASTERS: usize = 3;

/// The install command printed when a binary is missing.
const INSTALL: &str = "apt-get update && apt-get install -y redis-server (Redis 7.0 or newer; \
                       it brings redis-cli too)";

/// A throwaway Redis Cluster on 127.0.0.1: three masters, and the replicas a test adds.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Node>,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers, joins them (slots split evenly: 0-5460,
    /// 5461-10922, 10923-16383, in start order) and waits until every node reports
    /// `cluster_state:ok`.
    pub fn start() -> Self {
        require_tools();
        let ports = distinct_free_ports(2 * MASTERS);
        let nodes: Vec<Node> = ports
            .chunks(2)
            .map(|pair| Node::start(pair[0], pair[1]))
            .collect();
        let cluster = RedisCluster { nodes };
        cluster.create();
        cluster.wait_until_ok();
        cluster
    }

    /// One cluster for every test of this process that asks for it, started by the first
    /// one. It lives as long as the process: its servers are killed and their directories
    /// removed when the process ends, however it ends. Tests that share it must not change
    /// its topology; those that move slots or kill nodes [`start`](Self::start) their own.
    pub fn shared() -> &'static RedisCluster {
        static SHARED: OnceLock<RedisCluster> = OnceLock::new();
        SHARED.get_or_init(RedisCluster::start)
    }

    /// The URL of every node (`redis://127.0.0.1:<port>/`), in start order: any of them is
    /// a seed for a cluster client.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("redis://127.0.0.1:{}/", node.port))
            .collect()
    }

    /// The client port of every node, in start order.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// The cluster node id of the node at `index` (`CLUSTER MYID`).
    pub fn node_id(&self, index: usize) -> String {
        let node = &self.nodes[index];
        node.command("CLUSTER MYID")
            .unwrap_or_else(|| panic!("CLUSTER MYID on the test's cluster node {}", node.port))
    }

    /// Starts one more node and makes it a replica of the master at `master` (with
    /// `redis-cli --cluster add-node --cluster-slave`); returns the new node's index. It
    /// serves no slot until it is promoted ([`promote`](Self::promote)).
    pub fn add_replica(&mut self, master: usize) -> usize {
        let ports = distinct_free_ports(2);
        let node = Node::start(ports[0], ports[1]);
        let master_id = self.node_id(master);
        let output = redis_cli()
            .arg("--cluster")
            .arg("add-node")
            .arg(format!("127.0.0.1:{}", node.port))
            .arg(format!("127.0.0.1:{}", self.nodes[master].port))
            .args(["--cluster-slave", "--cluster-master-id", &master_id])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install it: {INSTALL}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster add-node failed:\n{}",
            printed(&output)
        );
        let deadline = Instant::now() + WAIT;
        while node.command("ROLE").as_deref() != Some("slave") {
            assert!(
                Instant::now() < deadline,
                "node {} did not become a replica",
                node.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        // Every node must know the replica before it can be promoted: a node that has not
        // heard of it yet ignores its takeover and keeps the dead master as the owner of
        // the slots. `add-node` introduces it to one node; gossip does the rest.
        let id = node
            .command("CLUSTER MYID")
            .unwrap_or_else(|| panic!("CLUSTER MYID on the new node {}", node.port));
        for other in self.nodes.iter().filter(|other| other.alive()) {
            while !other
                .command("CLUSTER NODES")
                .is_some_and(|nodes| nodes.lines().any(|line| line.starts_with(&id)))
            {
                assert!(
                    Instant::now() < deadline,
                    "node {} did not learn of the new replica {}",
                    other.port,
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.nodes.push(node);
        self.nodes.len() - 1
    }

    /// Kills the node at `index` (SIGKILL). A master's slots stay uncovered until a replica
    /// of it is promoted; the other nodes notice after the cluster node timeout (15 s by
    /// default).
    pub fn kill(&mut self, index: usize) {
        self.nodes[index].kill();
    }

    /// Makes the replica at `replica` the master of its shard at once, without the
    /// agreement of the other masters (`CLUSTER FAILOVER TAKEOVER`): what an automatic
    /// failover ends with, without waiting for the failure detection. Returns when every
    /// live node sees it as the master of its slots and reports `cluster_state:ok` (a node
    /// can report ok while it still believes an unreachable old master owns the slots).
    pub fn promote(&self, replica: usize) {
        let node = &self.nodes[replica];
        let reply = node.command("CLUSTER FAILOVER TAKEOVER");
        assert_eq!(
            reply.as_deref(),
            Some("OK"),
            "CLUSTER FAILOVER TAKEOVER on {}",
            node.port
        );
        let deadline = Instant::now() + WAIT;
        while node.command("ROLE").as_deref() != Some("master") {
            assert!(
                Instant::now() < deadline,
                "node {} did not become a master",
                node.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let id = self.node_id(replica);
        for other in self.nodes.iter().filter(|node| node.alive()) {
            loop {
                let nodes = other.command("CLUSTER NODES").unwrap_or_default();
                if owns_slots(&nodes, &id) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "node {} does not see {} as a master with slots:\n{nodes}",
                    other.port,
                    node.port
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.wait_until_ok();
    }

    /// Waits until every live node reports `cluster_state:ok`.
    pub fn wait_until_ok(&self) {
        let deadline = Instant::now() + WAIT;
        for node in self.nodes.iter().filter(|node| node.alive()) {
            loop {
                let info = node.command("CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the test's Redis Cluster on ports {:?} is not ok after {WAIT:?}; node {} \
                     says:\n{info}",
                    self.ports(),
                    node.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn create(&self) {
        let output = redis_cli()
            .arg("--cluster")
            .arg("create")
            .args(
                self.nodes
                    .iter()
                    .map(|node| format!("127.0.0.1:{}", node.port)),
            )
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}); install it: {INSTALL}"));
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed on ports {:?}:\n{}",
            self.ports(),
            printed(&output)
        );
    }
}

/// Fails, loudly and with the install command, when a binary the launcher needs is missing
/// (the servers start under a shell, which would only report it as a server that never
/// answers).
fn require_tools() {
    for tool in ["redis-server", "redis-cli"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        assert!(
            found,
            "this test starts its own Redis Cluster and needs `{tool}`, which cannot be run; \
             install it: {INSTALL}"
        );
    }
}

/// Whether a `CLUSTER NODES` listing shows node `id` as a master that owns slots (fields
/// past the eighth are its slot ranges).
fn owns_slots(nodes: &str, id: &str) -> bool {
    nodes.lines().any(|line| {
        let fields: Vec<&str> = line.split(' ').collect();
        fields.len() > 8 && fields[0] == id && fields[2].split(',').any(|flag| flag == "master")
    })
}

/// `redis-cli` with nothing to read on standard input.
fn redis_cli() -> Command {
    let mut cli = Command::new("redis-cli");
    cli.stdin(Stdio::null());
    cli
}

/// What a tool wrote, for a failure message.
fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
