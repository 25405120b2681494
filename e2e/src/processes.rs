//! The processes the browser test drives: the demo server (`gateway-server demo` on a free
//! port, stopped with SIGTERM and started again on the same port) and chromedriver.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use wsc_testkit::process::{KillOnDrop, wait_exit, wait_for_line};

/// How long a process may take to be ready.
const START: Duration = Duration::from_secs(30);

/// `gateway-server demo` on a port of its own.
pub(crate) struct DemoServer {
    binary: PathBuf,
    port: u16,
    process: Option<KillOnDrop>,
}

impl DemoServer {
    pub(crate) fn start(binary: &Path) -> Result<Self, String> {
        if !binary.exists() {
            return Err(format!(
                "{} does not exist: build it with `cargo build -p gateway-server`",
                binary.display()
            ));
        }
        let mut server = DemoServer {
            binary: binary.to_owned(),
            port: wsc_testkit::free_port(),
            process: None,
        };
        server.start_again()?;
        Ok(server)
    }

    /// The page's URL.
    pub(crate) fn page(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port and waits for its ready line.
    pub(crate) fn start_again(&mut self) -> Result<(), String> {
        let mut child = Command::new(&self.binary)
            .args(["demo", "--port", &self.port.to_string()])
            .env("GATEWAY__GRPC__ENABLED", "false")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        self.process = Some(KillOnDrop(child));
        wait_for_line(stdout, "demo page", START);
        Ok(())
    }

    /// Stops it as an operator would (SIGTERM: clients get close 1001) and waits for it.
    pub(crate) fn stop(&mut self) -> Result<(), String> {
        let mut process = self.process.take().ok_or("the server is not running")?;
        let pid = process.0.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        let status = wait_exit(&mut process.0, START);
        if !status.success() {
            return Err(format!("the server exited with {status} on SIGTERM"));
        }
        Ok(())
    }

    /// POSTs a JSON body to the API; fails unless 2xx.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<(), String> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let body = body.to_string();
        let (status, _, answer) =
            wsc_testkit::http::raw(addr, "POST", path, &[], Some(&body)).await;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(format!("POST {path}: {status} {answer}"))
        }
    }
}

/// chromedriver on a free port.
pub(crate) struct Chromedriver {
    port: u16,
    _process: KillOnDrop,
}

impl Chromedriver {
    pub(crate) fn start(binary: &str) -> Result<Self, String> {
        let port = wsc_testkit::free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {binary}: {e}"))?;
        let process = KillOnDrop(child);
        let deadline = Instant::now() + START;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{binary} did not listen on {port} in time"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Chromedriver {
            port,
            _process: process,
        })
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}
