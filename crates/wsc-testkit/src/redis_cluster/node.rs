//! One `redis-server` of a test cluster, in its own temporary directory, watched by a shell
//! so that it never outlives the test process; and a few inline commands to it.
//!
//! The shell starts the server, then waits on a pipe from the test process. When the pipe
//! closes (the node is dropped or killed, or the test process ends, however it ends: a
//! shared cluster in a static is never dropped), the shell kills the server with SIGKILL
//! and removes its directory.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::WAIT;

/// What the watching shell runs: the server in the background (its arguments are the
/// shell's), then, once standard input closes, SIGKILL for it and its directory removed.
const WATCH: &str = r#"redis-server "$@" &
server=$!
read -r _
kill -9 "$server" 2>/dev/null
wait "$server" 2>/dev/null
rm -rf "$WSC_NODE_DIR""#;

/// A cluster-enabled server.
#[derive(Debug)]
pub(super) struct Node {
    pub(super) port: u16,
    /// The watching shell; `None` once the node was killed.
    shell: Option<Child>,
    /// Holds `nodes-<port>.conf`; removed with the node.
    _dir: TempDir,
}

impl Node {
    /// Starts one on `port`, its cluster bus on `bus_port` (Redis 7's `cluster-port`,
    /// instead of the default `port + 10000`, which may be taken or past 65535), and waits
    /// until it answers `PING`.
    pub(super) fn start(port: u16, bus_port: u16) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("wsc-redis-cluster-")
            .tempdir()
            .expect("a temporary directory for a cluster node");
        let shell = Command::new("sh")
            .arg("-c")
            .arg(WATCH)
            .arg("sh")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args(["--cluster-port", &bus_port.to_string()])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .args(["--dir", &dir.path().to_string_lossy()])
            .args(["--save", "", "--appendonly", "no"])
            .env("WSC_NODE_DIR", dir.path())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sh, to watch a test cluster node");
        let node = Node {
            port,
            shell: Some(shell),
            _dir: dir,
        };
        let deadline = Instant::now() + WAIT;
        while node.command("PING").as_deref() != Some("PONG") {
            assert!(
                Instant::now() < deadline,
                "the test's cluster node on port {port} does not answer"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        node
    }

    /// Whether it runs (it was not killed).
    pub(super) fn alive(&self) -> bool {
        self.shell.is_some()
    }

    /// Kills the server (SIGKILL) and removes its directory, then returns.
    pub(super) fn kill(&mut self) {
        if let Some(mut shell) = self.shell.take() {
            // Closing the pipe is the signal; the shell exits once the server is gone.
            drop(shell.stdin.take());
            let _ = shell.wait();
        }
    }

    /// Sends an inline command and returns its simple-string or bulk-string reply, or the
    /// first element of an array reply (`ROLE`); errors and other shapes are `None`. Enough
    /// for the few commands the launcher needs, without a client library.
    pub(super) fn command(&self, line: &str) -> Option<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        stream.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut reader = BufReader::new(stream);
        let mut header = read_line(&mut reader)?;
        if header.starts_with('*') {
            header = read_line(&mut reader)?;
        }
        if let Some(simple) = header.strip_prefix('+') {
            return Some(simple.to_owned());
        }
        let len: usize = header.strip_prefix('$')?.parse().ok()?;
        let mut body = vec![0; len];
        reader.read_exact(&mut body).ok()?;
        String::from_utf8(body).ok()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_line(reader: &mut impl BufRead) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    Some(line.trim_end().to_owned())
}

/// Ports that were free a moment ago, all different: every listener is held until all are
/// found, so the kernel cannot hand out one port twice.
pub(super) fn distinct_free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port on 127.0.0.1"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("a bound address").port())
        .collect()
}
