//! Child processes of a test (the `gateway-server` binary): waiting for a line of their
//! output and for their exit, each within a bound, so that a regression fails with a message
//! instead of hanging the suite.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Reads `output` (a child's stdout or stderr) on a thread of its own until a line contains
/// `needle`, and returns that line; panics with the lines read so far after `within`. The
/// thread goes on draining the output afterwards, so the child never blocks on a full pipe.
pub fn wait_for_line(output: impl Read + Send + 'static, needle: &str, within: Duration) -> String {
    Lines::new(output).wait_for(needle, within)
}

/// The lines of a child's output, read on a thread of its own (which drains the output to
/// its end, so the child never blocks on a full pipe).
#[derive(Debug)]
pub struct Lines {
    lines: mpsc::Receiver<String>,
}

impl Lines {
    /// Starts reading `output`.
    pub fn new(output: impl Read + Send + 'static) -> Self {
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { break };
                // Nobody listens any more: keep draining.
                let _ = tx.send(line);
            }
        });
        Lines { lines }
    }

    /// The next line that contains `needle` (the lines before it are skipped); panics with
    /// what was read after `within`, or when the output ends first.
    pub fn wait_for(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                    "no line with `{needle}` within {within:?}; output so far:\n{}",
                    seen.join("\n")
                ),
                Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                    "the output ended without a line with `{needle}`:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }
}

/// A child process that is killed when the guard is dropped, so that a failing test does
/// not leave a server running (and holding the test's output pipes open).
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

/// Waits for the child to exit, at most `within`; kills it and panics after that.
pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the child did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
