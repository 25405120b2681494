//! A `gateway-server` process under test: started from its binary on free loopback ports,
//! configured through `GATEWAY__*` variables, and read from outside (its memory and
//! descriptors from `/proc`, its counters from `GET /api/v1/stats`).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use wsc_testkit::process::{KillOnDrop, Lines};

/// How long a server may take to start.
const START: Duration = Duration::from_secs(20);

/// A running server process; killed when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    child: KillOnDrop,
    /// The public listener (WebSocket, SSE).
    pub public: SocketAddr,
    /// The API listener.
    pub api: SocketAddr,
    /// Its stdout, drained on a thread so that it never blocks on a full pipe.
    _output: std::sync::Mutex<Lines>,
}

/// What `/proc` says about a process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Resident memory, in bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// OS threads.
    pub threads: u64,
}

impl ServerProcess {
    /// Starts `binary` with the loopback listeners, gRPC off, and `env` on top (pairs of
    /// `GATEWAY__...` names and values); waits until it listens.
    pub fn start(binary: &Path, env: &[(&str, String)]) -> Result<Self, String> {
        let (public_port, api_port) = (wsc_testkit::free_port(), wsc_testkit::free_port());
        Self::start_on(binary, env, public_port, api_port)
    }

    /// [`start`](Self::start) on given ports: a node restarted after a crash comes back
    /// where its clients and callers knew it (the server binds with `SO_REUSEADDR`, so the
    /// ports of a killed process can be bound again at once).
    pub fn start_on(
        binary: &Path,
        env: &[(&str, String)],
        public_port: u16,
        api_port: u16,
    ) -> Result<Self, String> {
        let mut command = Command::new(binary);
        command
            .env("GATEWAY__WSC__NODE_IP", "127.0.0.1")
            .env("GATEWAY__WSC__NODE_PORT", public_port.to_string())
            .env("GATEWAY__HTTP__HOST", "127.0.0.1")
            .env("GATEWAY__HTTP__PORT", api_port.to_string())
            .env("GATEWAY__GRPC__ENABLED", "false")
            .env("RUST_LOG", "error,gateway_server=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = KillOnDrop(
            command
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", binary.display()))?,
        );
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let output = Lines::new(stdout);
        output.wait_for("gateway-server listening", START);
        Ok(ServerProcess {
            child,
            public: SocketAddr::from(([127, 0, 0, 1], public_port)),
            api: SocketAddr::from(([127, 0, 0, 1], api_port)),
            _output: std::sync::Mutex::new(output),
        })
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ws://<public>/ws?<query>`.
    pub fn ws_url(&self, query: &str) -> String {
        format!("ws://{}/ws?{query}", self.public)
    }

    /// Its memory, descriptors and threads now.
    pub fn sample(&self) -> Result<Sample, String> {
        sample(self.pid())
    }

    /// Its counters (`GET /api/v1/stats`).
    pub async fn stats(&self) -> Value {
        wsc_testkit::http::get(self.api, "/api/v1/stats").await.1
    }

    /// Whether the process is still running (it did not exit or crash).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL, as a crash would (no drain, no leaving the cluster), and
    /// reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends `signal` (a name `kill -s` knows: `STOP`, `CONT`, `TERM`, ...) with the `kill`
    /// command, so that this crate needs no `libc` and no unsafe code.
    pub fn signal(&self, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run kill -s {signal}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -s {signal} {} failed: {status}", self.pid()))
        }
    }
}

/// What `/proc` says about process `pid` now.
pub fn sample(pid: u32) -> Result<Sample, String> {
    let process = procfs::process::Process::new(pid as i32).map_err(|e| e.to_string())?;
    let stat = process.stat().map_err(|e| e.to_string())?;
    let fds = process.fd_count().map_err(|e| e.to_string())?;
    Ok(Sample {
        rss: stat.rss * procfs::page_size(),
        fds: fds as u64,
        threads: stat.num_threads as u64,
    })
}
