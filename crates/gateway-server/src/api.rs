//! The API listener: health, readiness and the REST server API under `/api/v1`.
//!
//! Every answer is JSON. Errors are `{"error": "<code>", "message": "<text>"}` with a fitting
//! status, including the rejections of axum's own extractors (a body over the limit, a path
//! that does not decode), which the [`Body`] and [`ApiPath`] extractors turn into JSON. When
//! `api.keys` is set, every `/api/v1` route requires `Authorization: Bearer <key>`.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};
use wsc_config::GatewayConfig;
use wsc_hub::{BroadcastOptions, HubMessage, HubStats};

use crate::api_key::check_api_key;
use crate::error::ApiError;
use crate::state::AppState;
use crate::{layers, metrics, openapi, ops};

/// Largest accepted API request body.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn router(state: &AppState, config: &GatewayConfig) -> Router<AppState> {
    // Sends may wait for acks; their bound is the longest ack wait the API accepts.
    let sends = layers::timeout(
        Router::new()
            .route("/api/v1/users/{user_id}/messages", post(send_to_user))
            .route("/api/v1/tickets/{ticket_id}/messages", post(send_to_ticket))
            .route("/api/v1/groups/{group_id}/messages", post(send_to_group))
            .route(
                "/api/v1/connections/{client_id}/messages",
                post(send_to_connection),
            )
            .route("/api/v1/broadcast", post(broadcast)),
        layers::SEND_TIMEOUT,
    );
    let rest = layers::timeout(
        Router::new()
            .route("/api/v1/stats", get(stats))
            .route("/api/v1/users", get(online_users))
            .route("/api/v1/users/{user_id}/presence", get(presence))
            .route(
                "/api/v1/users/{user_id}/connections",
                axum::routing::delete(kick_user),
            )
            .route("/api/v1/groups/{group_id}/members", get(group_members))
            .route(
                "/api/v1/groups/{group_id}/members/{user_id}",
                put(join_group).delete(leave_group),
            ),
        layers::REQUEST_TIMEOUT,
    );
    let api = sends
        .merge(rest)
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let mut router = Router::new();
    if config.health.enabled {
        router = router
            .route(&config.health.path, get(health))
            .route(&config.health.ready_path, get(ready));
    }
    if config.metrics.enabled {
        router = router.route(&config.metrics.path, get(metrics::render));
    }
    let router = router
        .route("/api/v1/openapi.json", get(openapi_document))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    layers::around(router)
}

pub(crate) async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let hub_ok = state.hub.is_running();
    let mut checks = Map::new();
    checks.insert(
        "hub".to_owned(),
        json!(if hub_ok { "ok" } else { "stopped" }),
    );
    let mut ready = hub_ok;
    if let Some(backplane) = &state.redis {
        let redis = crate::cluster::check(backplane).await;
        ready &= redis.is_ok();
        checks.insert(
            "redis".to_owned(),
            json!(redis.map(|()| "ok".to_owned()).unwrap_or_else(|e| e)),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": checks,
    });
    (status, Json(body))
}

async fn openapi_document() -> Json<Value> {
    Json(openapi::document())
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Checks `Authorization: Bearer <key>` against `api.keys` (when any are configured).
async fn require_api_key(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("?"));
    check_api_key(&state.api_keys, authorization)?;
    Ok(next.run(request).await)
}

/// A request body of at most [`MAX_BODY`] bytes (the limit is the router's
/// `DefaultBodyLimit`). A larger body is `413 body_too_large` and an unreadable one
/// `400 invalid_body`, as JSON; axum's own `Bytes` rejection is plain text.
pub(crate) struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        Bytes::from_request(request, state)
            .await
            .map(Body)
            .map_err(body_rejection)
    }
}

fn body_rejection(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the body exceeds {MAX_BODY} bytes"),
        )
    } else {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.body_text())
    }
}

/// Path parameters, with a JSON `400 invalid_path` when they do not decode (bad
/// percent-encoding, invalid UTF-8); axum's own `Path` rejection is plain text.
pub(crate) struct ApiPath<T>(T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| ApiPath(value))
            .map_err(path_rejection)
    }
}

fn path_rejection(e: PathRejection) -> ApiError {
    if e.status().is_client_error() {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_path", e.body_text())
    } else {
        // The route and the handler disagree about the parameters: a server bug.
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.body_text())
    }
}

/// Parses a JSON body into `T`, answering bad bodies with a JSON 400.
fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("the body is not a valid message: {e}"),
        )
    })
}

/// `"ack": {"timeout_ms": n, "retries": n}` in a send body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AckOptions {
    timeout_ms: Option<u64>,
    retries: Option<u32>,
}

/// A send body: the message fields, plus the optional `ack` and (for broadcasts)
/// `exclude_user`.
struct SendBody {
    message: HubMessage,
    ack: Option<AckOptions>,
    exclude_user: Option<String>,
}

/// The trace id of an API request: `x-trace-id`, else the trace id of a W3C `traceparent`.
fn trace_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-trace-id")
        .map(str::to_owned)
        .or_else(|| header("traceparent")?.split('-').nth(1).map(str::to_owned))
        .filter(|t| !t.is_empty() && t.len() <= 128)
}

fn send_body(body: &[u8]) -> Result<SendBody, ApiError> {
    let mut fields: Map<String, Value> = parse(body)?;
    let ack = match fields.remove("ack") {
        None | Some(Value::Null) => None,
        Some(value) => Some(serde_json::from_value::<AckOptions>(value).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("`ack` must be {{\"timeout_ms\": n, \"retries\": n}}: {e}"),
            )
        })?),
    };
    let exclude_user = match fields.remove("exclude_user") {
        Some(Value::String(user)) if !user.is_empty() => Some(user),
        _ => None,
    };
    let message = parse(&serde_json::to_vec(&fields).unwrap_or_default())?;
    Ok(SendBody {
        message,
        ack,
        exclude_user,
    })
}

impl SendBody {
    /// Carries the request's trace id into the message unless it has one.
    fn trace(&mut self, headers: &axum::http::HeaderMap) {
        if self.message.trace_id.is_empty()
            && let Some(id) = trace_id(headers)
        {
            self.message.trace_id = id;
        }
    }

    /// The ack timeout and retries, defaulting to the configuration (`None`: no ack).
    fn ack_settings(&self, state: &AppState) -> Result<Option<(Duration, u32)>, ApiError> {
        let Some(ack) = self.ack.as_ref() else {
            return Ok(None);
        };
        ops::ack_settings(&state.hub.config(), ack.timeout_ms, ack.retries)
            .map(Some)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e.to_string()))
    }
}

/// A send handler: the message to `$plain`, or with `ack` to `$with_ack`.
macro_rules! send_handler {
    ($name:ident, $plain:ident, $with_ack:ident) => {
        async fn $name(
            State(state): State<AppState>,
            ApiPath(target): ApiPath<String>,
            headers: axum::http::HeaderMap,
            Body(body): Body,
        ) -> Result<Response, ApiError> {
            let mut body = send_body(&body)?;
            body.trace(&headers);
            let ack = body.ack_settings(&state)?;
            Ok(match ack {
                Some((timeout, retries)) => Json(
                    state
                        .hub
                        .$with_ack(&target, body.message, timeout, retries)
                        .await?,
                )
                .into_response(),
                None => Json(state.hub.$plain(&target, body.message).await?).into_response(),
            })
        }
    };
}

send_handler!(send_to_user, send_to_user, send_to_user_with_ack);
send_handler!(send_to_ticket, send_to_ticket, send_to_ticket_with_ack);
send_handler!(send_to_group, send_to_group, send_to_group_with_ack);
send_handler!(
    send_to_connection,
    send_to_connection,
    send_to_connection_with_ack
);

async fn broadcast(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Body(body): Body,
) -> Result<Response, ApiError> {
    let mut body = send_body(&body)?;
    body.trace(&headers);
    if body.ack.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "broadcasts are fire and forget; `ack` is only accepted by user, ticket, group and \
             connection sends",
        ));
    }
    let options = match body.exclude_user {
        Some(user) => BroadcastOptions::excluding(user),
        None => BroadcastOptions::default(),
    };
    Ok(Json(state.hub.broadcast(body.message, options).await?).into_response())
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
}

#[derive(Debug, Deserialize)]
struct KickQuery {
    reason: Option<String>,
    notify: Option<bool>,
}

async fn kick_user(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
    query: Result<Query<KickQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let reason = query
        .reason
        .unwrap_or_else(|| "kicked by the server".to_owned());
    let report = state
        .hub
        .kick_user(&user_id, &reason, query.notify.unwrap_or(true))
        .await?;
    Ok(Json(report).into_response())
}

#[derive(Debug, Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

async fn online_users(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(page) = page.map_err(bad_query)?;
    let offset = page.offset.unwrap_or(0);
    let limit = ops::page_limit(page.limit)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))?;
    let page = state.hub.cluster_online_users(offset, limit).await;
    Ok(Json(json!({
        "total": page.total,
        "offset": offset,
        "limit": limit,
        "users": page.users,
    })))
}

async fn presence(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(state.hub.presence(&user_id).await?)))
}

async fn stats(State(state): State<AppState>) -> Json<HubStats> {
    Json(state.hub.stats())
}

async fn group_members(
    State(state): State<AppState>,
    ApiPath(group_id): ApiPath<String>,
) -> Result<Json<Value>, ApiError> {
    let members = state.hub.group_members(&group_id)?;
    Ok(Json(
        json!({"group_id": group_id, "total": members.len(), "members": members}),
    ))
}

async fn join_group(
    State(state): State<AppState>,
    ApiPath((group_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let added = state.hub.join_group(&group_id, &user_id)?;
    Ok(Json(
        json!({"group_id": group_id, "user_id": user_id, "member": true, "added": added}),
    ))
}

async fn leave_group(
    State(state): State<AppState>,
    ApiPath((group_id, user_id)): ApiPath<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let removed = state.hub.leave_group(&group_id, &user_id)?;
    Ok(Json(
        json!({"group_id": group_id, "user_id": user_id, "member": false, "removed": removed}),
    ))
}
