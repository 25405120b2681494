//! `wsc-inproc`: the gateway embedded through the `gateway` facade, publishing in-process.
//! Clients connect to the gateway's own WebSocket endpoint (`/ws?user_id=...`, the full
//! gateway: identity, registry, numbering, the JSON envelope); publishes arrive on a bare
//! hyper listener, as the peers' do, and go straight to the hub: `POST /publish` is
//! `Hub::broadcast`, `POST /publish/N` is `Hub::send_to_user("load-N")`. What the gateway's
//! HTTP API costs on top of the hub is the difference to `gateway-server` in the same
//! scenario.
//!
//! ```text
//! wsc-inproc --ws-port 9001 --publish-port 9002
//! ```
//!
//! The gateway reads the rest of its configuration from `GATEWAY__*` variables, as
//! `gateway-server` does (the benchmark sets the same ones).

use std::convert::Infallible;

use gateway::{BroadcastOptions, Gateway, Hub, HubMessage};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), String> {
    let (ws_addr, publish_addr) = wsc_bench::bench::peer_addresses("wsc-inproc")?;
    // The process environment, with the WebSocket address from the arguments.
    let gateway = Gateway::builder()
        .environment(
            std::env::vars()
                .chain([
                    ("GATEWAY__WSC__NODE_IP".to_owned(), ws_addr.ip().to_string()),
                    (
                        "GATEWAY__WSC__NODE_PORT".to_owned(),
                        ws_addr.port().to_string(),
                    ),
                ])
                .collect(),
        )
        .build_and_start()
        .await
        .map_err(|e| format!("the gateway did not start: {e}"))?;
    let publish = TcpListener::bind(publish_addr)
        .await
        .map_err(|e| e.to_string())?;
    println!("wsc-inproc listening ws={ws_addr} publish={publish_addr}");
    loop {
        let Ok((tcp, _)) = publish.accept().await else {
            continue;
        };
        let hub = gateway.hub().clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let hub = hub.clone();
                async move { Ok::<_, Infallible>(publish_one(&hub, request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await;
        });
    }
}

/// One publish: 200 once the hub took it, 404 for a client with no connection (and no
/// offline store), 400 for a body that is not text, 503 when the hub refused it.
async fn publish_one(hub: &Hub, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let target = request
        .uri()
        .path()
        .strip_prefix("/publish/")
        .map(|n| format!("load-{n}"));
    let broadcast = target.is_none();
    let body = request.into_body().collect().await.map(|b| b.to_bytes());
    let status = match body.map(|b| String::from_utf8(b.to_vec())) {
        Ok(Ok(text)) => {
            let message = HubMessage::text(text);
            let sent = match target {
                None => hub.broadcast(message, BroadcastOptions::default()).await,
                Some(user) => hub.send_to_user(&user, message).await,
            };
            match sent {
                // Nobody connected is not an error for a broadcast.
                Ok(_) if broadcast => 200,
                Ok(report) if report.delivered > 0 || report.stored_offline => 200,
                Ok(_) => 404,
                Err(_) => 503,
            }
        }
        _ => 400,
    };
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    response
}
