//! The publishers of a run: `run.publishers` connections (keep-alive HTTP/1.1 or gRPC
//! channels) sending `run.messages` publishes, paced or back to back, each call's round
//! trip recorded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gateway_server::grpc::proto::{
    self, BroadcastRequest, SendRequest, gateway_client::GatewayClient,
};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use super::{
    ACK_TIMEOUT_MS, Endpoint, Fanout, Pattern, Protocol, Via, now_us, round_trip_histogram,
};

/// How long one publish call may take: far beyond an acked send's wait
/// ([`ACK_TIMEOUT_MS`]) and a saturated broadcast's fan-out, so only a server that stopped
/// answering reaches it, and the run fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the publish calls of a run measured.
pub(crate) struct Calls {
    /// Request sent to answer read, in microseconds.
    pub(super) round_trips: Histogram<u64>,
    /// Calls with an ack answered without one.
    pub(super) unacked: u64,
}

/// Sends `run.messages` publishes: at `run.rate` per second, or back to back from
/// `run.publishers` connections.
pub(crate) async fn publish_all(endpoint: Endpoint, run: &Fanout) -> Result<Calls, String> {
    let next = Arc::new(AtomicU32::new(0));
    let interval = run
        .rate
        .map(|r| Duration::from_secs_f64(1.0 / r.max(0.001)));
    let started = Instant::now();
    let mut publishers = tokio::task::JoinSet::new();
    for _ in 0..run.publishers.max(1) {
        let (next, messages, size) = (next.clone(), run.messages, run.size);
        let (ack, via) = (run.ack, run.via);
        let (pattern, connections) = (run.pattern, run.connections.max(1));
        publishers.spawn(async move {
            let mut calls = Calls {
                round_trips: round_trip_histogram()?,
                unacked: 0,
            };
            let mut caller = Caller::connect(endpoint, via).await?;
            loop {
                let seq = next.fetch_add(1, Ordering::AcqRel);
                if seq >= messages {
                    return Ok::<_, String>(calls);
                }
                if let Some(interval) = interval {
                    // Publish `seq` at its slot, whichever connection is free.
                    let due = started + interval * seq;
                    tokio::time::sleep_until(due.into()).await;
                }
                let payload = payload(seq, size);
                let target = (pattern == Pattern::PerClient).then_some(seq as usize % connections);
                let sent = Instant::now();
                let answer =
                    tokio::time::timeout(CALL_TIMEOUT, caller.publish(&payload, target, ack))
                        .await
                        .map_err(|_| format!("publish {seq}: no answer within {CALL_TIMEOUT:?}"))?
                        .map_err(|e| format!("publish {seq}: {e}"))?;
                calls
                    .round_trips
                    .saturating_record((sent.elapsed().as_micros() as u64).max(1));
                // The gateway answers an acknowledged send with its outcome; the peers
                // answer only once acked (or fail the call).
                let acked =
                    endpoint.protocol != Protocol::Wsc || answer.contains("\"status\":\"acked\"");
                if ack && !acked {
                    calls.unacked += 1;
                }
            }
        });
    }
    let mut all = Calls {
        round_trips: round_trip_histogram()?,
        unacked: 0,
    };
    while let Some(done) = publishers.join_next().await {
        let calls = done.map_err(|e| e.to_string())??;
        all.round_trips
            .add(&calls.round_trips)
            .map_err(|e| e.to_string())?;
        all.unacked += calls.unacked;
    }
    Ok(all)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// A publishing connection: keep-alive HTTP/1.1, or a gRPC channel to the gateway.
enum Caller {
    /// The connection, the `host` header its requests carry, and whose paths it posts to
    /// (the gateway's API, or the peers' `/publish` that `wsc-inproc` serves too).
    Http(Sender, String, Protocol),
    Grpc(GatewayClient<Channel>),
}

impl Caller {
    async fn connect(endpoint: Endpoint, via: Via) -> Result<Self, String> {
        match via {
            Via::Http | Via::InProcess => Ok(Caller::Http(
                http_connection(endpoint.publish).await?,
                endpoint.publish.to_string(),
                match via {
                    Via::InProcess => Protocol::Bare,
                    _ => endpoint.protocol,
                },
            )),
            Via::Grpc if endpoint.protocol == Protocol::Wsc => {
                let channel =
                    tonic::transport::Endpoint::from_shared(format!("http://{}", endpoint.publish))
                        .map_err(|e| e.to_string())?
                        .tcp_nodelay(true)
                        .connect()
                        .await
                        .map_err(|e| format!("gRPC connection: {e}"))?;
                Ok(Caller::Grpc(GatewayClient::new(channel)))
            }
            Via::Grpc => Err(format!("{} has no gRPC API", endpoint.protocol.name())),
        }
    }

    /// Publishes `payload` to everyone, or to client `target`; the answer's body (the
    /// gateway's delivery report). A refused publish is an error.
    async fn publish(
        &mut self,
        payload: &str,
        target: Option<usize>,
        ack: bool,
    ) -> Result<String, String> {
        match self {
            Caller::Http(sender, host, paths) => {
                let (path, body) = paths.publish(payload, target, ack);
                let request = hyper::Request::post(path)
                    .header("host", host.as_str())
                    .header("content-type", "application/json")
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let response = sender
                    .send_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let answer = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                if !status.is_success() {
                    return Err(status.to_string());
                }
                Ok(String::from_utf8_lossy(&answer).into_owned())
            }
            Caller::Grpc(client) => {
                let message_json = serde_json::json!({ "content": payload }).to_string();
                let reply = match target {
                    None => {
                        let request = BroadcastRequest {
                            message_json,
                            ..BroadcastRequest::default()
                        };
                        client.broadcast(request).await
                    }
                    Some(i) => {
                        let request = SendRequest {
                            target: format!("load-{i}"),
                            message_json,
                            ack: ack.then_some(proto::Ack {
                                timeout_ms: ACK_TIMEOUT_MS,
                                retries: Some(0),
                            }),
                        };
                        client.send_to_user(request).await
                    }
                };
                reply
                    .map(|r| r.into_inner().report_json)
                    .map_err(|status| status.to_string())
            }
        }
    }
}

pub(super) async fn http_connection(addr: SocketAddr) -> Result<Sender, String> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("publish connection: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `~<seq>~<sent µs>~` padded with `x` to `size` bytes.
pub(super) fn payload(seq: u32, size: usize) -> String {
    let mut text = format!("~{seq}~{}~", now_us());
    while text.len() < size {
        text.push('x');
    }
    text
}
