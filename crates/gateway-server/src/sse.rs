//! The server-sent events endpoint on the public listener, for clients that cannot open a
//! WebSocket: `GET {wsc.sse.path}` opens a stream after the same checks as `/ws`
//! (`handshake.rs`), served by `wsc_hub::sse`; `POST {path}/ack` and `POST {path}/send`
//! carry the client's frames to that stream's connection, named by the session secret the
//! stream's first event gave it. Cross-origin pages get CORS answers for the same origins
//! the WebSocket allows.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower_http::cors::{AllowOrigin, CorsLayer};
use wsc_config::SseConfig;
use wsc_hub::sse::{self, SseOptions};

use crate::error::ApiError;
use crate::handshake::{self, Transport};
use crate::state::{AppState, SharedPolicy};

/// The header naming a stream's session on its POSTs.
pub(crate) const SESSION_HEADER: &str = "x-wsc-session";

/// Frames a client may have in flight to its stream's task; more is a 429.
const INBOUND_CAPACITY: usize = 64;

/// Body chunks waiting for the client's socket. A chunk waits here only while the socket is
/// full, which is what the write deadline measures.
const OUTBOUND_CAPACITY: usize = 2;

/// The open streams of this node, by session: where their POSTed frames go.
#[derive(Default)]
pub(crate) struct SseSessions {
    streams: Mutex<HashMap<String, mpsc::Sender<String>>>,
}

impl SseSessions {
    fn insert(&self, session: String, inbound: mpsc::Sender<String>) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert(session, inbound);
        }
    }

    fn remove(&self, session: &str) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(session);
        }
    }

    fn get(&self, session: &str) -> Option<mpsc::Sender<String>> {
        self.streams.lock().ok()?.get(session).cloned()
    }
}

/// The SSE routes of `wsc.sse`, with CORS for the allowed origins.
pub(crate) fn router(config: &SseConfig, policy: SharedPolicy) -> Router<AppState> {
    let heartbeat = config.heartbeat;
    Router::new()
        .route(
            &config.path,
            get(move |state, peer, request| open(state, peer, request, heartbeat)),
        )
        .route(&config.ack_path(), post(ack))
        .route(&config.send_path(), post(send))
        .layer(cors(policy))
}

/// CORS for the SSE routes: the origins of `wsc.websocket_origins` (hot-reloaded), with
/// credentials (identity cookies), the headers a client sends and the ones it may read.
fn cors(policy: SharedPolicy) -> CorsLayer {
    let allowed = AllowOrigin::predicate(move |origin: &HeaderValue, _| {
        let Ok(policy) = policy.read() else {
            return false;
        };
        handshake::check_origin(Some(origin), &policy.origins).is_ok()
    });
    CorsLayer::new()
        .allow_origin(allowed)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("last-event-id"),
            HeaderName::from_static(SESSION_HEADER),
        ])
        .expose_headers([
            HeaderName::from_static("x-wsc-client-id"),
            HeaderName::from_static("x-wsc-node-id"),
        ])
}

async fn open(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    heartbeat: Duration,
) -> Response {
    let path = request.uri().path().to_owned();
    let observer = handshake::Observer::new(&state, Transport::Sse);
    let response = match open_stream(state, peer, request, heartbeat).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    };
    observer.record(&response, peer, &path);
    response
}

async fn open_stream(
    state: AppState,
    peer: SocketAddr,
    request: Request,
    heartbeat: Duration,
) -> Result<Response, ApiError> {
    let policy = handshake::precheck(&state, peer)?;
    let (uri, headers) = (request.uri(), request.headers());
    let mut identity = handshake::identify(&state, &policy, peer, uri, headers, Transport::Sse)?;
    // A browser's EventSource resumes with Last-Event-ID, which is the last `seq_no` it saw
    // (only numbered events carry an id); an explicit `last_seq` wins.
    if identity.last_seq.is_none()
        && let Some(value) = headers.get("last-event-id")
    {
        let seq = value.to_str().ok().and_then(|v| v.trim().parse().ok());
        identity.last_seq = Some(seq.ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_identity",
                "Last-Event-ID must be an integer (the last seq_no received)",
            )
        })?);
    }
    let hub = state.hub.clone();
    let registration = hub
        .register(identity)
        .await
        .map_err(handshake::register_error)?;
    let client_id = registration.connection().client_id().to_owned();
    let session = uuid::Uuid::new_v4().simple().to_string();
    let (out_tx, out_rx) = mpsc::channel::<Bytes>(OUTBOUND_CAPACITY);
    let (in_tx, in_rx) = mpsc::channel::<String>(INBOUND_CAPACITY);
    state.sse_sessions.insert(session.clone(), in_tx);
    let sessions = state.sse_sessions.clone();
    // A debug span: an enabled span keeps its formatted fields for the connection's whole
    // life (about 200 bytes each). Log lines about a connection name its client anyway.
    let span = tracing::debug_span!(
        "connection",
        user_id = registration.connection().user_id(),
        client_id,
        transport = "sse"
    );
    let options = SseOptions {
        heartbeat,
        session: session.clone(),
    };
    state.connections.spawn(tracing::Instrument::instrument(
        async move {
            sse::serve(registration, out_tx, in_rx, options).await;
            sessions.remove(&session);
        },
        span,
    ));
    let body = Body::from_stream(ReceiverStream::new(out_rx).map(Ok::<_, Infallible>));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx buffers responses by default, which would hold events back.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    handshake::connection_headers(headers, &client_id, hub.node_id());
    Ok(response)
}

/// `POST {path}/ack`: `{"message_id": "..."}` or `{"message_ids": ["...", ...]}`, each
/// handled as an `ack` frame of the stream's connection.
async fn ack(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (inbound, body) = session_and_body(&state, request).await?;
        let ids = parse_acks(&body)?;
        let frames = ids
            .iter()
            .map(|id| serde_json::json!({"message_type": "ack", "message_id": id}).to_string());
        forward(&inbound, frames)
    }
    .await;
    respond(result)
}

/// `POST {path}/send`: one frame, handled as a text frame of the stream's connection
/// (`ping`, `typing`, `read`, an application message, ...). Error frames come back on the
/// stream, as they would on a WebSocket.
async fn send(State(state): State<AppState>, request: Request) -> Response {
    let result = async {
        let (inbound, body) = session_and_body(&state, request).await?;
        forward(&inbound, std::iter::once(body))
    }
    .await;
    respond(result)
}

fn respond(result: Result<usize, ApiError>) -> Response {
    match result {
        Ok(accepted) => (
            StatusCode::ACCEPTED,
            axum::Json(serde_json::json!({ "accepted": accepted })),
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

/// The stream named by the session header, and the body as text within the frame limit.
async fn session_and_body(
    state: &AppState,
    request: Request,
) -> Result<(mpsc::Sender<String>, String), ApiError> {
    let session = request
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_session",
                "X-WSC-Session is required: the session of the stream's `connected` event",
            )
        })?;
    let inbound = state
        .sse_sessions
        .get(session)
        .ok_or_else(session_not_found)?;
    let limit = state.hub.config().limits.max_message_size;
    let body = axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "message_too_large",
                format!("the body is larger than the frame limit of {limit} bytes"),
            )
        })?;
    let text = String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_utf8",
            "the body is not valid UTF-8",
        )
    })?;
    Ok((inbound, text))
}

fn session_not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "sse_session_not_found",
        "no open event stream has this session on this node: it ended (reconnect), or the \
         request reached another node (route a session's requests to the node of its stream)",
    )
}

/// Hands frames to the stream's task without waiting: a client that outruns its own
/// connection gets a 429, never a blocked request.
fn forward(
    inbound: &mpsc::Sender<String>,
    frames: impl Iterator<Item = String>,
) -> Result<usize, ApiError> {
    let mut accepted = 0;
    for frame in frames {
        match inbound.try_send(frame) {
            Ok(()) => accepted += 1,
            Err(mpsc::error::TrySendError::Full(_)) => {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_frames",
                    format!(
                        "{INBOUND_CAPACITY} frames are already waiting for this stream; \
                         {accepted} of this request were accepted"
                    ),
                ));
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(session_not_found()),
        }
    }
    Ok(accepted)
}

/// The message ids of an ack body.
fn parse_acks(body: &str) -> Result<Vec<String>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Acks {
        message_id: Option<String>,
        #[serde(default)]
        message_ids: Vec<String>,
    }
    let invalid = |detail: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_ack",
            format!("expected {{\"message_id\": \"...\"}} or {{\"message_ids\": [...]}}: {detail}"),
        )
    };
    let acks: Acks = serde_json::from_str(body).map_err(|e| invalid(e.to_string()))?;
    let ids: Vec<String> = acks
        .message_id
        .into_iter()
        .chain(acks.message_ids)
        .collect();
    if ids.is_empty() {
        return Err(invalid("no message id".to_owned()));
    }
    if ids.len() > INBOUND_CAPACITY {
        return Err(invalid(format!("more than {INBOUND_CAPACITY} ids")));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_beyond_what_the_stream_holds_are_429_and_say_how_many_went_in() {
        let (inbound, _stream) = mpsc::channel(2);
        let frames = ["a", "b", "c"].map(str::to_owned).into_iter();
        let error = forward(&inbound, frames).unwrap_err();
        assert_eq!(
            (error.status, error.code),
            (StatusCode::TOO_MANY_REQUESTS, "too_many_frames")
        );
        assert!(
            error.message.ends_with("2 of this request were accepted"),
            "{}",
            error.message
        );
    }

    #[test]
    fn an_ack_body_names_one_or_many_messages() {
        assert_eq!(parse_acks(r#"{"message_id":"a"}"#).unwrap(), ["a"]);
        assert_eq!(
            parse_acks(r#"{"message_ids":["a","b"]}"#).unwrap(),
            ["a", "b"]
        );
        for bad in ["", "{}", r#"{"message_ids":[]}"#, r#"{"id":"a"}"#, "[1]"] {
            assert_eq!(parse_acks(bad).unwrap_err().code, "invalid_ack", "{bad}");
        }
    }
}
