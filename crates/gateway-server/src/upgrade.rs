//! The WebSocket upgrade on the public listener.
//!
//! Every check happens before the `101 Switching Protocols`: a refused handshake is a real
//! HTTP error with a JSON body, never an empty 200. The connection is registered with the
//! hub before the handler returns, so a message sent as soon as the client sees the 101
//! reaches it. The upgrade is done directly on hyper's upgraded stream and served by
//! `wsc_hub::tungstenite::serve` (cheaper per frame than going through axum's wrapper).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use wsc_hub::{RegisterError, Registration, tungstenite};

use crate::error::{ApiError, ErrorCode, ErrorMessage};
use crate::handshake::{self, Transport};
use crate::state::AppState;

pub(crate) async fn websocket(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let path = request.uri().path().to_owned();
    let observer = handshake::Observer::new(&state, Transport::WebSocket);
    let response = upgrade(state, peer, request).await;
    observer.record(&response, peer, &path);
    response
}

async fn upgrade(state: AppState, peer: SocketAddr, mut request: Request) -> Response {
    // Cheapest checks first: who is calling, how often, then what they ask for.
    let policy = match handshake::precheck(&state, peer) {
        Ok(policy) => policy,
        Err(e) => return e.into_response(),
    };
    if request.method() != Method::GET {
        let message = format!(
            "a WebSocket upgrade is a GET request, not {}",
            request.method()
        );
        let mut response = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            message,
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let key = match check_handshake(request.headers()) {
        Ok(key) => key,
        Err(e) => return e.into_response(),
    };
    let subprotocol = match choose_subprotocol(request.headers()) {
        Ok(subprotocol) => subprotocol,
        Err(e) => return e.into_response(),
    };
    let identity = handshake::identify(
        &state,
        &policy,
        peer,
        request.uri(),
        request.headers(),
        Transport::WebSocket,
    );
    let identity = match identity {
        Ok(identity) => identity,
        Err(e) => return e.into_response(),
    };
    let identity_user = identity.user_id.clone();
    let on_upgrade = hyper::upgrade::on(&mut request);
    let hub = state.hub.clone();
    // A connect callback's refusal is told over the socket (close 1008 with its reason);
    // every other refusal is an HTTP error before the upgrade.
    let (registration, refusal) = match hub.register(identity).await {
        Ok(registration) => (Some(registration), String::new()),
        Err(e @ RegisterError::Rejected(_)) => (None, e.to_string()),
        Err(e) => return handshake::register_error(e).into_response(),
    };
    // The callback's reason, for the refusal log (the socket task takes `refusal`).
    let rejected = registration.is_none().then(|| refusal.clone());
    let client_id = registration
        .as_ref()
        .map(|r| r.connection().client_id().to_owned());
    let config = tungstenite::websocket_config(&hub.config());
    let handshake_timeout = policy.handshake_timeout;
    // A debug span: an enabled span keeps its formatted fields for the connection's whole
    // life (about 200 bytes each). Log lines about a connection name its client anyway.
    let span = tracing::debug_span!(
        "connection",
        user_id = identity_user,
        client_id = client_id.as_deref().unwrap_or_default()
    );
    state.connections.spawn(tracing::Instrument::instrument(
        take_over(on_upgrade, handshake_timeout, registration, refusal, config),
        span,
    ));
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if let Some(subprotocol) = subprotocol {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, subprotocol);
    }
    if let Some(client_id) = &client_id {
        handshake::connection_headers(headers, client_id, hub.node_id());
    }
    if let Some(reason) = rejected {
        let extensions = response.extensions_mut();
        extensions.insert(ErrorCode("rejected_by_callback"));
        extensions.insert(ErrorMessage(reason));
    }
    response
}

/// After the `101`: waits (at most `handshake_timeout`) for hyper to hand over the
/// connection, then serves the registration on it, or closes it with the connect
/// callback's `refusal` (1008). When the connection is not handed over in time, or the
/// upgrade fails, the registration is dropped here, which unregisters it.
async fn take_over<U>(
    on_upgrade: U,
    handshake_timeout: Duration,
    registration: Option<Registration>,
    refusal: String,
    config: WebSocketConfig,
) where
    U: Future<Output = hyper::Result<Upgraded>>,
{
    let upgraded = match tokio::time::timeout(handshake_timeout, on_upgrade).await {
        Ok(Ok(upgraded)) => upgraded,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upgrade failed");
            return;
        }
        Err(_) => {
            tracing::debug!("upgrade not completed within the handshake timeout");
            return;
        }
    };
    // The block ends with the future that serves the connection, so the values moved into
    // it (the stream, the registration) are not also kept beside it in this task's state,
    // which every connection holds for its whole life.
    let serving = {
        // The raw byte budget is the hub's; a refused connection only reads its close reply.
        let hub_config = registration
            .as_ref()
            .map_or_else(Default::default, |r| r.hub().config());
        let io = tungstenite::MeteredStream::new(TokioIo::new(upgraded), &hub_config);
        let mut ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
        match registration {
            Some(registration) => Either::Left(tungstenite::serve(registration, ws)),
            None => Either::Right(async move {
                tungstenite::close_with(&mut ws, 1008, &refusal).await;
            }),
        }
    };
    serving.await;
}

fn check_handshake(headers: &HeaderMap) -> Result<String, ApiError> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    };
    if !has_token(header::UPGRADE, "websocket") || !has_token(header::CONNECTION, "upgrade") {
        return Err(ApiError::new(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_upgrade_required",
            "this endpoint only accepts WebSocket upgrades (Connection: upgrade, Upgrade: websocket)",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_websocket_version",
            "Sec-WebSocket-Version must be 13",
        ));
    }
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "missing_websocket_key",
                "Sec-WebSocket-Key is required",
            )
        })
}

/// The subprotocol this server speaks: the JSON frames of docs/protocol.md.
pub(crate) const SUBPROTOCOL: &str = "wsc.v1";

/// The answer to a client's `Sec-WebSocket-Protocol` offer. A browser that offers
/// subprotocols fails the connection when the server picks none, so one is always picked:
/// [`SUBPROTOCOL`] when offered, else the client's first (the frames are this server's JSON
/// protocol either way). No offer, no header. An offer that is not a list of tokens is a 400.
fn choose_subprotocol(headers: &HeaderMap) -> Result<Option<HeaderValue>, ApiError> {
    let mut offered = Vec::new();
    for value in headers.get_all(header::SEC_WEBSOCKET_PROTOCOL) {
        let text = value.to_str().unwrap_or("\u{0}");
        for token in text.split(',').map(str::trim) {
            let valid = !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !valid {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_subprotocol",
                    "Sec-WebSocket-Protocol must be a comma-separated list of tokens",
                ));
            }
            offered.push(token);
        }
    }
    let chosen = offered
        .iter()
        .find(|p| **p == SUBPROTOCOL)
        .or(offered.first());
    Ok(chosen.and_then(|p| HeaderValue::from_str(p).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_not_handed_over_within_the_handshake_timeout_is_unregistered() {
        let hub = wsc_hub::Hub::new(wsc_hub::HubConfig::default());
        hub.start();
        let (ended_tx, mut ended) = tokio::sync::mpsc::unbounded_channel();
        hub.on_client_disconnect(move |conn, reason| {
            let _ = ended_tx.send((conn.client_id().to_owned(), reason.clone()));
        });
        let registration = hub
            .register(wsc_hub::Identity::new("late").with_client_id("c-late"))
            .await
            .expect("registered");
        let config = tungstenite::websocket_config(&hub.config());
        // hyper never hands the connection over; the timeout is the configured default.
        let never = std::future::pending::<hyper::Result<Upgraded>>();
        let defaults = wsc_config::GatewayConfig::default();
        let handshake_timeout =
            crate::state::UpgradePolicy::from_config(&defaults).handshake_timeout;
        let task = tokio::spawn(take_over(
            never,
            handshake_timeout,
            Some(registration),
            String::new(),
            config,
        ));
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert_eq!(hub.connection_count(), 1, "dropped before the timeout");
        assert!(!task.is_finished());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(task.is_finished(), "still waiting after the timeout");
        task.await.expect("the task ends cleanly");
        assert_eq!(hub.connection_count(), 0, "not unregistered");
        let (client_id, reason) = ended.try_recv().expect("a disconnect callback");
        assert_eq!(client_id, "c-late");
        assert!(
            matches!(reason, wsc_hub::DisconnectReason::ConnectionLost { .. }),
            "{reason:?}"
        );
    }
}
