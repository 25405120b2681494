//! The load generator: WebSocket clients that speak the protocol of the server under test
//! (the gateway's, the bare baseline's raw frames, or Socket.IO), publishes through the
//! server's HTTP API, its gRPC API or straight to an embedded hub, and what came of them:
//! deliveries per second, latency percentiles from an HDR histogram, exact lost and
//! duplicated counts, the server's and the generator's own CPU, and memory per connection.
//!
//! Every published payload starts with `~<seq>~<sent µs>~`, so a client finds its number and
//! age in any framing (a JSON `content`, a Socket.IO event, a raw frame) without parsing it.
//! Clients spread over `127.0.0.<1..=sources>` source addresses, so one generator can hold
//! more connections than one source address has ports.
//!
//! This file holds what every run shares (the protocols, the endpoint, how publishes travel
//! and to whom); the runs are in `fanout.rs` (fan-out, point to point, acked), `idle.rs`,
//! `churn.rs` and `hold.rs` (a generator of the scale scenario); the clients in `clients.rs`
//! and the publishers in `publish.rs`.

mod churn;
mod clients;
mod fanout;
mod hold;
mod idle;
mod publish;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// How long a server waits for a client's acknowledgement in the ack scenario before the
/// send fails (it never should: the clients ack at once).
pub const ACK_TIMEOUT_MS: u64 = 10_000;

/// What the server under test speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The gateway: `/ws?user_id=...`, JSON frames, `POST /api/v1/broadcast`.
    Wsc,
    /// The bare baseline (`wsc-bare`): raw text frames, `POST /publish`.
    Bare,
    /// Socket.IO (`wsc-socketio`): Engine.IO v4 over WebSocket, `POST /publish`.
    SocketIo,
}

impl Protocol {
    /// Parses `wsc`, `bare` or `socketio`.
    pub fn parse(name: &str) -> Result<Self, String> {
        match name {
            "wsc" => Ok(Protocol::Wsc),
            "bare" => Ok(Protocol::Bare),
            "socketio" => Ok(Protocol::SocketIo),
            other => Err(format!("unknown protocol {other:?} (wsc, bare, socketio)")),
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Wsc => "gateway-server",
            Protocol::Bare => "bare tokio-tungstenite",
            Protocol::SocketIo => "socketioxide 0.18",
        }
    }

    /// Where client `i` connects; `own` asks the peers for a queue or room of its own (the
    /// gateway addresses every user anyway).
    fn path(self, i: usize, own: bool) -> String {
        match (self, own) {
            (Protocol::Wsc, _) => format!("/ws?user_id=load-{i}"),
            (Protocol::Bare, false) => "/".to_owned(),
            (Protocol::Bare, true) => format!("/?client={i}"),
            (Protocol::SocketIo, false) => "/socket.io/?EIO=4&transport=websocket".to_owned(),
            (Protocol::SocketIo, true) => {
                format!("/socket.io/?EIO=4&transport=websocket&client={i}")
            }
        }
    }

    /// The request that publishes `payload` to everyone, or to client `target` only; with
    /// `ack`, a request that answers once the client acknowledged the frame.
    fn publish(self, payload: &str, target: Option<usize>, ack: bool) -> (String, String) {
        match (self, target) {
            (Protocol::Wsc, None) => (
                "/api/v1/broadcast".to_owned(),
                serde_json::json!({ "content": payload }).to_string(),
            ),
            (Protocol::Wsc, Some(i)) if ack => (
                format!("/api/v1/users/load-{i}/messages"),
                serde_json::json!({
                    "content": payload,
                    "ack": { "timeout_ms": ACK_TIMEOUT_MS, "retries": 0 },
                })
                .to_string(),
            ),
            (Protocol::Wsc, Some(i)) => (
                format!("/api/v1/users/load-{i}/messages"),
                serde_json::json!({ "content": payload }).to_string(),
            ),
            (Protocol::Bare | Protocol::SocketIo, None) => {
                ("/publish".to_owned(), payload.to_owned())
            }
            (Protocol::Bare | Protocol::SocketIo, Some(i)) if ack => {
                (format!("/publish/{i}?ack"), payload.to_owned())
            }
            (Protocol::Bare | Protocol::SocketIo, Some(i)) => {
                (format!("/publish/{i}"), payload.to_owned())
            }
        }
    }

    /// The answer a client sends to a frame that asks for an acknowledgement, if `text`
    /// asks for one: the gateway's ack frame, the bare baseline's `ack`, or a Socket.IO ack
    /// packet (`43<id>[...]` for an event `42<id>[...]`).
    fn ack_reply(self, text: &str) -> Option<String> {
        match self {
            Protocol::Wsc => {
                if !text.contains("\"require_ack\":true") {
                    return None;
                }
                let start = text.find("\"message_id\":\"")? + "\"message_id\":\"".len();
                let end = start + text[start..].find('"')?;
                Some(format!(
                    "{{\"message_type\":\"ack\",\"message_id\":\"{}\"}}",
                    &text[start..end]
                ))
            }
            Protocol::Bare => Some("ack".to_owned()),
            Protocol::SocketIo => {
                let id = text.strip_prefix("42")?.split('[').next()?;
                (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| format!("43{id}[\"ok\"]"))
            }
        }
    }
}

/// The server under test.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// Its protocol.
    pub protocol: Protocol,
    /// Where clients connect.
    pub ws: SocketAddr,
    /// Where publishes go.
    pub publish: SocketAddr,
    /// Its process, for memory and CPU.
    pub pid: u32,
}

/// How publishes reach the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Via {
    /// Its HTTP API, keep-alive HTTP/1.1 connections.
    #[default]
    Http,
    /// The gateway's gRPC API (`wsc.v1.Gateway`), one HTTP/2 channel per publisher; the
    /// peers have none.
    Grpc,
    /// The gateway embedded in `wsc-inproc`, whose bare `POST /publish[/N]` (the peers'
    /// paths) calls the hub in-process: no API stack in between.
    InProcess,
}

impl Endpoint {
    /// A gateway process: clients on its public listener, publishes to its HTTP API.
    pub fn gateway(server: &crate::server::ServerProcess) -> Endpoint {
        Endpoint {
            protocol: Protocol::Wsc,
            ws: server.public,
            publish: server.api,
            pid: server.pid(),
        }
    }
}

/// Who receives a publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pattern {
    /// Every client (a broadcast).
    #[default]
    Broadcast,
    /// Publish `seq` goes to client `seq % connections` only (point to point, through the
    /// per-user API).
    PerClient,
}

/// Microseconds as milliseconds with one decimal, for the tables.
pub fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// Microseconds since the Unix epoch (the clock publishes and receipts share).
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .map_err(|e| e.to_string())?;
    Ok((stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64)
}

pub(super) fn round_trip_histogram() -> Result<Histogram<u64>, String> {
    Histogram::new_with_bounds(1, 600_000_000, 3).map_err(|e| e.to_string())
}

pub use churn::{Churn, ChurnResult, churn};
pub use fanout::{Fanout, FanoutResult, fanout};
pub use hold::{Held, HeldOutcome, hold};
pub use idle::{IdleResult, idle};
pub(crate) use publish::publish_all;

#[cfg(test)]
mod tests {
    use super::clients::marker;
    use super::publish::payload;
    use super::*;

    #[test]
    fn the_marker_is_found_in_every_framing() {
        let p = payload(42, 100);
        assert_eq!(p.len(), 100);
        let sent = marker(&p).expect("raw").1;
        assert_eq!(marker(&p), Some((42, sent)));
        let json = serde_json::json!({"content": p}).to_string();
        assert_eq!(marker(&json), Some((42, sent)));
        let socket_io = format!("42[\"message\",\"{p}\"]");
        assert_eq!(marker(&socket_io), Some((42, sent)));
        assert_eq!(marker("no marker"), None);
    }

    #[test]
    fn every_protocol_answers_a_frame_that_asks_for_an_ack() {
        let frame = r#"{"content":"~1~2~","message_id":"m-7","require_ack":true}"#;
        assert_eq!(
            Protocol::Wsc.ack_reply(frame).as_deref(),
            Some(r#"{"message_type":"ack","message_id":"m-7"}"#)
        );
        let plain = r#"{"content":"~1~2~","message_id":"m-7"}"#;
        assert_eq!(Protocol::Wsc.ack_reply(plain), None);
        assert_eq!(
            Protocol::SocketIo
                .ack_reply(r#"4212["message","~1~2~"]"#)
                .as_deref(),
            Some(r#"4312["ok"]"#)
        );
        assert_eq!(
            Protocol::SocketIo.ack_reply(r#"42["message","~1~2~"]"#),
            None
        );
        assert_eq!(Protocol::Bare.ack_reply("~1~2~").as_deref(), Some("ack"));
    }
}
