//! Helpers of the example tests: bounded waits on the lines the examples print and the
//! gateway start-up; the clients and waits come from `wsc-testkit`, shared with the other
//! crates.

#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;

use gateway::Gateway;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_tungstenite::tungstenite::Error as WsError;

pub(crate) use wsc_testkit::ws::{
    assert_nothing_queued, next_close as close_frame, next_json, send,
};
pub(crate) use wsc_testkit::{Client, WAIT};

/// The lines an example printed, read in order with a bounded wait.
pub(crate) struct Lines {
    rx: UnboundedReceiver<String>,
    /// Every line read so far.
    pub(crate) seen: Vec<String>,
}

impl Lines {
    pub(crate) fn new(rx: UnboundedReceiver<String>) -> Self {
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// The next printed line.
    pub(crate) async fn next(&mut self) -> String {
        let line = tokio::time::timeout(WAIT, self.rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no line in time; printed so far: {:#?}", self.seen))
            .expect("the example keeps its sender");
        self.seen.push(line.clone());
        line
    }

    /// Reads lines until one matches; returns it.
    pub(crate) async fn until(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no line matching {what} in time; printed: {:#?}", self.seen)
                })
                .expect("the example keeps its sender");
            self.seen.push(line.clone());
            if matches(&line) {
                return line;
            }
        }
    }

    /// Reads lines until each of `expected` was printed (in any order, earlier lines count).
    pub(crate) async fn until_all(&mut self, expected: &[&str]) {
        while !expected.iter().all(|e| self.seen.iter().any(|l| l == e)) {
            let line = tokio::time::timeout(WAIT, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "not all of {expected:#?} printed in time; printed: {:#?}",
                        self.seen
                    )
                })
                .expect("the example keeps its sender");
            self.seen.push(line);
        }
    }

    /// Reads lines until this exact one.
    pub(crate) async fn until_eq(&mut self, expected: &str) -> String {
        self.until(&format!("{expected:?}"), |l| l == expected)
            .await
    }
}

/// The WebSocket listener of a running gateway.
pub(crate) async fn ws_addr(gateway: &Gateway) -> SocketAddr {
    gateway.addresses().await.expect("gateway is running").0
}

/// The `/ws` URL of a running gateway with this query string.
pub(crate) async fn ws_url(gateway: &Gateway, query: &str) -> String {
    format!("ws://{}/ws?{query}", ws_addr(gateway).await)
}

/// Connects with this query string and these headers.
pub(crate) async fn try_connect(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> Result<Client, WsError> {
    wsc_testkit::ws::try_connect(&ws_url(gateway, query).await, headers).await
}

/// The status and JSON body of a refused handshake.
pub(crate) async fn refused(
    gateway: &Gateway,
    query: &str,
    headers: &[(&'static str, &str)],
) -> (u16, Value) {
    wsc_testkit::ws::refused(&ws_url(gateway, query).await, headers).await
}

/// Stops the gateway while answering the 1001 close frames of `clients`; returns whether it
/// drained.
pub(crate) async fn stop(gateway: &Gateway, clients: Vec<Client>) -> bool {
    let stopping = tokio::spawn({
        let gateway = gateway.clone();
        async move { gateway.stop().await }
    });
    for mut client in clients {
        assert_eq!(close_frame(&mut client).await.0, 1001);
    }
    tokio::time::timeout(WAIT * 2, stopping)
        .await
        .expect("stop in time")
        .unwrap()
        .expect("the gateway was running")
}
