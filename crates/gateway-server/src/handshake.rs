//! The checks every transport's handshake shares (`/ws` and `/sse`): IP rules, the
//! per-IP handshake rate, the origin allowlist, the identity (signed token or request
//! parameters, then the upgrade middlewares), the allowed user types, and how a refusal
//! is counted and logged. Each transport adds only its own checks around these.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use wsc_hub::{Identity, RegisterError};

use crate::error::{ApiError, ErrorCode, ErrorMessage};
use crate::guard::RefusalLog;
use crate::metrics::ServerMetrics;
use crate::middleware::UpgradeRequest;
use crate::state::{AppState, UpgradePolicy};

/// Which transport a handshake opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    WebSocket,
    Sse,
}

impl Transport {
    /// The connection metadata value (`transport`), as the connection list shows it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Transport::WebSocket => "websocket",
            Transport::Sse => "sse",
        }
    }
}

/// Counts every handshake by outcome and logs refusals (rate limited).
pub(crate) struct Observer {
    metrics: Arc<ServerMetrics>,
    refusals: Arc<RefusalLog>,
    transport: Transport,
}

impl Observer {
    pub(crate) fn new(state: &AppState, transport: Transport) -> Self {
        Observer {
            metrics: state.metrics.clone(),
            refusals: state.refusals.clone(),
            transport,
        }
    }

    /// Records the handshake's outcome: `accepted`, the refusal's error code, or `other`.
    pub(crate) fn record(&self, response: &Response, peer: SocketAddr, path: &str) {
        let accepted = match self.transport {
            Transport::WebSocket => StatusCode::SWITCHING_PROTOCOLS,
            Transport::Sse => StatusCode::OK,
        };
        let outcome = match response.extensions().get::<ErrorCode>() {
            Some(ErrorCode(code)) => code,
            None if response.status() == accepted => "accepted",
            None => "other",
        };
        self.metrics.handshake(outcome);
        // Browsers do not show a refused handshake's body, so the log is where an operator
        // learns why a client could not connect; the rate limit keeps a flood out of it.
        if outcome == "accepted" {
            return;
        }
        let Some(suppressed) = self.refusals.admit() else {
            return;
        };
        let reason = response
            .extensions()
            .get::<ErrorMessage>()
            .map_or("", |m| m.0.as_str());
        let status = response.status().as_u16();
        match self.transport {
            Transport::WebSocket => tracing::info!(
                code = outcome, status, %peer, path = %path, reason, suppressed,
                "WebSocket handshake refused"
            ),
            Transport::Sse => tracing::info!(
                code = outcome, status, %peer, path = %path, reason, suppressed,
                "SSE handshake refused"
            ),
        }
    }
}

/// The checks before anything of the request is read: the IP rules and the per-IP rate.
/// Returns the current policy for the later checks.
pub(crate) fn precheck(state: &AppState, peer: SocketAddr) -> Result<Arc<UpgradePolicy>, ApiError> {
    let policy = match state.policy.read() {
        Ok(policy) => policy.clone(),
        Err(_) => {
            let e = ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "policy lock");
            return Err(e);
        }
    };
    if let Err((code, message)) = policy.ip_rules.check(peer.ip()) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, code, message));
    }
    if !state
        .handshakes
        .allow(peer.ip(), policy.handshakes_per_ip_per_second)
    {
        let message = format!(
            "more than {} connection attempts per second from {}",
            policy.handshakes_per_ip_per_second,
            peer.ip()
        );
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            message,
        ));
    }
    Ok(policy)
}

/// The origin, then the identity: from the signed token when authentication is on (the
/// request adds only what describes the connection), else from the request parameters;
/// then the upgrade middlewares, the identity's own rules and the allowed user types.
pub(crate) fn identify(
    state: &AppState,
    policy: &UpgradePolicy,
    peer: SocketAddr,
    uri: &Uri,
    headers: &HeaderMap,
    transport: Transport,
) -> Result<Identity, ApiError> {
    check_origin(headers.get(header::ORIGIN), &policy.origins)?;
    let params = &state.identity_params;
    let from_request = params
        .extract_unchecked(uri, headers)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    let mut identity = match &state.tokens {
        Some(tokens) => tokens
            .identity(uri, headers, &from_request)
            .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, e.code, e.message))?,
        // Middlewares may still supply the user (from a session cookie, say), so the
        // identity is checked after them.
        None => from_request,
    };
    let seen = UpgradeRequest { uri, headers, peer };
    for middleware in state.middlewares.iter() {
        middleware(&seen, &mut identity).map_err(|r| ApiError::new(r.status, r.code, r.message))?;
    }
    identity
        .validate()
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    if !policy.allowed_user_types.is_empty()
        && !policy.allowed_user_types.contains(&identity.user_type)
    {
        let message = format!("user type `{}` may not connect", identity.user_type);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "user_type_not_allowed",
            message,
        ));
    }
    identity
        .metadata
        .insert("peer_addr".to_owned(), peer.to_string());
    identity
        .metadata
        .insert("transport".to_owned(), transport.name().to_owned());
    Ok(identity)
}

pub(crate) fn register_error(e: RegisterError) -> ApiError {
    let status = match &e {
        RegisterError::Identity(_) => StatusCode::BAD_REQUEST,
        RegisterError::NotRunning | RegisterError::NodeFull { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        RegisterError::UserConnectionLimit { .. } | RegisterError::ClientIdInUse => {
            StatusCode::CONFLICT
        }
        _ => StatusCode::FORBIDDEN,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The origin allowlist (`wsc.websocket_origins`) for a request's `Origin` header; the
/// SSE routes' CORS answers use the same rule.
pub(crate) fn check_origin(
    origin: Option<&HeaderValue>,
    allowed: &[String],
) -> Result<(), ApiError> {
    if allowed.is_empty() || allowed.iter().any(|o| o == "*") {
        return Ok(());
    }
    // Non-browser clients send no Origin; the allowlist protects browsers from
    // cross-site WebSocket hijacking, which always carries one.
    let Some(origin) = origin else {
        return Ok(());
    };
    // An Origin that is present but not readable text cannot match the list; letting it
    // pass as if absent would open the check to anyone who sends one.
    let Ok(origin) = origin.to_str() else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            "the Origin header is not readable (it must be visible ASCII)",
        ));
    };
    if allowed.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            format!("origin `{origin}` is not allowed"),
        ))
    }
}

/// The headers that tell a client which connection it got: its client id (the generated one
/// if it sent none) and the node serving it. Both transports answer with them.
pub(crate) fn connection_headers(headers: &mut HeaderMap, client_id: &str, node_id: &str) {
    if let Ok(id) = HeaderValue::from_str(client_id) {
        headers.insert("x-wsc-client-id", id);
    }
    if let Ok(node) = HeaderValue::from_str(node_id) {
        headers.insert("x-wsc-node-id", node);
    }
}
