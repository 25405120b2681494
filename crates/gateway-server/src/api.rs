//! The API listener: health, readiness and the REST server API under `/api/v1`.
//!
//! Every answer is JSON. Errors are `{"error": "<code>", "message": "<text>"}` with a fitting
//! status, including the rejections of axum's own extractors (a body over the limit, a path
//! that does not decode), which the [`Body`] and [`ApiPath`] extractors turn into JSON. When
//! `api.keys` is set, every `/api/v1` route requires `Authorization: Bearer <key>`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::HttpMethod;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wsc_config::GatewayConfig;
use wsc_hub::{BroadcastOptions, DeliveryReport, HubMessage, HubStats, KickReport, UserPresence};

use crate::api_key::check_api_key;
use crate::error::ApiError;
use crate::openapi::{BroadcastRequest, ErrorBody, SendReply, SendRequest};
use crate::state::AppState;
use crate::{layers, metrics, openapi, ops};

mod groups;
mod tickets;

/// Largest accepted API request body.
const MAX_BODY: usize = 1024 * 1024;

pub(crate) fn router(state: &AppState, config: &GatewayConfig) -> Router<AppState> {
    // Each route is added with its documentation (`routes!`), so the OpenAPI document and
    // the router cannot disagree.
    // Sends may wait for acks; their bound is the longest ack wait the API accepts.
    let (sends, mut doc) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(send_to_user))
        .routes(routes!(send_to_ticket))
        .routes(routes!(send_to_group))
        .routes(routes!(send_to_connection))
        .routes(routes!(broadcast))
        .split_for_parts();
    let (rest, rest_doc) = OpenApiRouter::default()
        .routes(routes!(stats))
        .routes(routes!(online_users))
        .routes(routes!(presence))
        .routes(routes!(kick_user))
        .routes(routes!(groups::group_members))
        .routes(routes!(groups::join_group, groups::leave_group))
        .routes(routes!(groups::disband_group))
        .routes(routes!(groups::user_groups))
        .routes(routes!(tickets::open_ticket))
        .routes(routes!(tickets::ticket_queue))
        .routes(routes!(tickets::ticket))
        .routes(routes!(tickets::transfer_ticket))
        .routes(routes!(tickets::close_ticket))
        .routes(routes!(tickets::agents))
        .split_for_parts();
    doc.merge(rest_doc);
    let api = layers::timeout(sends, layers::SEND_TIMEOUT)
        .merge(layers::timeout(rest, layers::REQUEST_TIMEOUT))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_api_key,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY));
    let mut router = Router::new();
    // Health and readiness live at configurable paths: documented where they are served.
    if config.health.enabled {
        router = router
            .route(&config.health.path, get(health))
            .route(&config.health.ready_path, get(ready));
        document::<__path_health>(&mut doc, &config.health.path);
        document::<__path_ready>(&mut doc, &config.health.ready_path);
    }
    if config.metrics.enabled {
        router = router.route(&config.metrics.path, get(metrics::render));
    }
    document::<__path_openapi_document>(&mut doc, OPENAPI_PATH);
    let doc = OpenApiDocument(Arc::new(doc.to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        "{}".to_owned()
    })));
    let router = router
        .route(OPENAPI_PATH, get(openapi_document))
        .layer(Extension(doc))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ));
    layers::around(router)
}

/// Where the document is served.
const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// The serialized document, built once with the router.
#[derive(Clone)]
struct OpenApiDocument(Arc<String>);

/// Adds the documented GET operation `P` at `path` (for routes whose path is configured).
fn document<P: utoipa::Path>(doc: &mut utoipa::openapi::OpenApi, path: &str) {
    doc.paths
        .add_path_operation(path, vec![HttpMethod::Get], P::operation());
}

/// `/health`: the process is up.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `/ready`: whether this node can serve, with each component's check.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Ready {
    /// `ready` or `not_ready`.
    #[schema(example = "ready")]
    status: &'static str,
    /// `ok`, or why a component is not ready, by component (`hub`, `redis` when enabled,
    /// and the certificate of each TLS listener, as `wsc.tls` or `http.tls`).
    checks: BTreeMap<String, String>,
    /// When the certificate of each TLS listener expires (absent without TLS).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    certificates: BTreeMap<String, CertificateExpiry>,
}

/// When a TLS listener's certificate expires.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CertificateExpiry {
    /// The end of its validity, RFC 3339.
    not_after: String,
    /// Seconds from now until then (negative once it has expired).
    expires_in_seconds: i64,
}

/// A page of the users online on every node.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UsersPage {
    /// Online users in all.
    total: usize,
    /// Users skipped.
    offset: usize,
    /// Page size.
    limit: usize,
    /// The page, in name order.
    users: Vec<String>,
}

/// Liveness.
#[utoipa::path(get, path = "/health", security(()), responses(
    (status = 200, description = "alive", body = Health),
))]
pub(crate) async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness with component checks.
#[utoipa::path(get, path = "/ready", security(()), responses(
    (status = 200, description = "ready", body = Ready),
    (status = 503, description = "not ready", body = Ready),
))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Ready>) {
    let hub_ok = state.hub.is_running();
    let mut checks = BTreeMap::new();
    checks.insert(
        "hub".to_owned(),
        if hub_ok { "ok" } else { "stopped" }.to_owned(),
    );
    let mut ready = hub_ok;
    if let Some(backplane) = &state.redis {
        let redis = crate::cluster::check(backplane).await;
        ready &= redis.is_ok();
        checks.insert(
            "redis".to_owned(),
            redis.map(|()| "ok".to_owned()).unwrap_or_else(|e| e),
        );
    }
    let mut certificates = BTreeMap::new();
    let now = crate::tls::unix_now();
    for certs in state.certificates.iter() {
        let Some(not_after) = certs.not_after() else {
            continue;
        };
        let when = time::OffsetDateTime::from_unix_timestamp(not_after)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default();
        // An expired certificate fails every new handshake: the node cannot serve.
        let check = if not_after > now {
            "ok".to_owned()
        } else {
            ready = false;
            format!("the certificate expired at {when}")
        };
        checks.insert(certs.section().to_owned(), check);
        certificates.insert(
            certs.section().to_owned(),
            CertificateExpiry {
                not_after: when,
                expires_in_seconds: not_after - now,
            },
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Ready {
        status: if ready { "ready" } else { "not_ready" },
        checks,
        certificates,
    };
    (status, Json(body))
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", security(()), responses(
    (status = 200, description = "the OpenAPI 3.1 document", content_type = "application/json", body = Object),
))]
async fn openapi_document(Extension(doc): Extension<OpenApiDocument>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
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

/// The trace id of an API request: `x-trace-id`, else the trace id of a valid W3C
/// `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, trace id not all zeros); anything else
/// is ignored. With the `otlp` feature the request's span also continues that context.
fn trace_id(headers: &axum::http::HeaderMap) -> Option<String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    header("x-trace-id")
        .map(str::to_owned)
        .filter(|t| !t.is_empty() && t.len() <= 128)
        .or_else(|| w3c_trace_id(header("traceparent")?))
}

fn w3c_trace_id(traceparent: &str) -> Option<String> {
    let parts: Vec<&str> = traceparent.trim().split('-').collect();
    let hex = |part: &str, len: usize| {
        part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let [version, trace, span, flags] = parts[..] else {
        return None;
    };
    let valid = hex(version, 2)
        && version != "ff"
        && hex(trace, 32)
        && trace.bytes().any(|b| b != b'0')
        && hex(span, 16)
        && hex(flags, 2);
    valid.then(|| trace.to_owned())
}

#[cfg(test)]
mod tests {
    use super::w3c_trace_id;

    #[test]
    fn only_a_valid_traceparent_gives_a_trace_id() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            w3c_trace_id(&format!("00-{id}-00f067aa0ba902b7-01")).as_deref(),
            Some(id)
        );
        for bad in [
            "",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e47-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(w3c_trace_id(bad), None, "{bad}");
        }
    }
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

/// A send handler at `$path` (target in the path parameter `$param`): the message to
/// `$plain`, or with `ack` to `$with_ack`.
macro_rules! send_handler {
    ($name:ident, $plain:ident, $with_ack:ident, $path:literal, $param:literal, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(
            post,
            path = $path,
            params(($param = String, Path, description = "the target")),
            request_body = SendRequest,
            responses(
                (status = 200, description = "the delivery report, or with `ack` the acknowledgement report", body = SendReply),
                (status = "default", description = "an error", body = ErrorBody),
            )
        )]
        async fn $name(
            State(state): State<AppState>,
            ApiPath(target): ApiPath<String>,
            headers: axum::http::HeaderMap,
            Body(body): Body,
        ) -> Result<Json<SendReply>, ApiError> {
            let mut body = send_body(&body)?;
            body.trace(&headers);
            let ack = body.ack_settings(&state)?;
            Ok(match ack {
                Some((timeout, retries)) => Json(SendReply::Acknowledged(
                    state
                        .hub
                        .$with_ack(&target, body.message, timeout, retries)
                        .await?,
                )),
                None => Json(SendReply::Delivered(
                    state.hub.$plain(&target, body.message).await?,
                )),
            })
        }
    };
}

send_handler!(
    send_to_user,
    send_to_user,
    send_to_user_with_ack,
    "/api/v1/users/{user_id}/messages",
    "user_id",
    "Send to every connection of a user (optionally acknowledged); an offline user gets it on reconnect."
);
send_handler!(
    send_to_ticket,
    send_to_ticket,
    send_to_ticket_with_ack,
    "/api/v1/tickets/{ticket_id}/messages",
    "ticket_id",
    "Send to every connection on a ticket except the sender's (optionally acknowledged)."
);
send_handler!(
    send_to_group,
    send_to_group,
    send_to_group_with_ack,
    "/api/v1/groups/{group_id}/messages",
    "group_id",
    "Send to every connection of a group (optionally acknowledged)."
);
send_handler!(
    send_to_connection,
    send_to_connection,
    send_to_connection_with_ack,
    "/api/v1/connections/{client_id}/messages",
    "client_id",
    "Send to one connection (optionally acknowledged)."
);

/// Send to every connection (optionally scoped to an app or namespace, excluding a user).
#[utoipa::path(post, path = "/api/v1/broadcast", request_body = BroadcastRequest, responses(
    (status = 200, description = "the delivery report", body = DeliveryReport),
    (status = "default", description = "an error", body = ErrorBody),
))]
async fn broadcast(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Body(body): Body,
) -> Result<Json<DeliveryReport>, ApiError> {
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
    Ok(Json(state.hub.broadcast(body.message, options).await?))
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.body_text())
}

#[derive(Debug, Deserialize)]
struct KickQuery {
    reason: Option<String>,
    notify: Option<bool>,
}

/// Kick a user: every connection gets `kick_out` (unless `notify=false`), then close 1008.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}/connections",
    params(
        ("user_id" = String, Path, description = "the user"),
        ("reason" = Option<String>, Query, description = "the reason the client is told"),
        ("notify" = Option<bool>, Query, description = "send a kick_out frame first (default true)"),
    ),
    responses(
        (status = 200, description = "how many connections were closed", body = KickReport),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
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

/// Online users on every node, paged in name order.
#[utoipa::path(get, path = "/api/v1/users",
    params(
        ("offset" = Option<usize>, Query, description = "skip this many (default 0)"),
        ("limit" = Option<usize>, Query, description = "page size, 1..1000 (default 100)"),
    ),
    responses(
        (status = 200, description = "a page of user ids with the total", body = UsersPage),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
async fn online_users(
    State(state): State<AppState>,
    page: Result<Query<Page>, QueryRejection>,
) -> Result<Json<UsersPage>, ApiError> {
    let Query(page) = page.map_err(bad_query)?;
    let offset = page.offset.unwrap_or(0);
    let limit = ops::page_limit(page.limit)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", e.to_string()))?;
    let page = state.hub.cluster_online_users(offset, limit).await;
    Ok(Json(UsersPage {
        total: page.total,
        offset,
        limit,
        users: page.users,
    }))
}

/// Whether a user is online, its nodes and its connections on this node.
#[utoipa::path(get, path = "/api/v1/users/{user_id}/presence",
    params(("user_id" = String, Path, description = "the user")),
    responses(
        (status = 200, description = "presence", body = UserPresence),
        (status = "default", description = "an error", body = ErrorBody),
    )
)]
async fn presence(
    State(state): State<AppState>,
    ApiPath(user_id): ApiPath<String>,
) -> Result<Json<UserPresence>, ApiError> {
    Ok(Json(state.hub.presence(&user_id).await?))
}

/// This node's hub statistics.
#[utoipa::path(get, path = "/api/v1/stats", responses(
    (status = 200, description = "the stats snapshot", body = HubStats),
    (status = "default", description = "an error", body = ErrorBody),
))]
async fn stats(State(state): State<AppState>) -> Json<HubStats> {
    Json(state.hub.stats())
}
