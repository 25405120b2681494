//! [`AppState`]: what every handler of the public, API and gRPC listeners shares, and the
//! hot-reloadable upgrade policy.

use std::sync::{Arc, RwLock};

use tokio_util::task::TaskTracker;
use wsc_config::GatewayConfig;
use wsc_hub::{Hub, IdentityParams};

use crate::auth::TokenVerifier;
use crate::guard::{HandshakeLimiter, IpRules, RefusalLog};
use crate::metrics::{MetricsState, ServerMetrics};
use crate::middleware::UpgradeMiddleware;

/// State shared by every handler: one `Arc`, so that axum's clone of the state for each
/// extractor and each `from_fn_with_state` layer is one reference count rather than one per
/// field (measured: cloning and dropping the fields was about 3 % of an API request's CPU).
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppStateInner>);

impl AppState {
    pub(crate) fn new(inner: AppStateInner) -> Self {
        AppState(Arc::new(inner))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateInner;

    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What [`AppState`] holds.
pub(crate) struct AppStateInner {
    pub(crate) hub: Hub,
    pub(crate) identity_params: Arc<IdentityParams>,
    pub(crate) policy: SharedPolicy,
    pub(crate) api_keys: Arc<Vec<String>>,
    pub(crate) middlewares: Arc<Vec<UpgradeMiddleware>>,
    /// Present when `wsc.security.enable_auth` is on.
    pub(crate) tokens: Option<Arc<TokenVerifier>>,
    pub(crate) handshakes: Arc<HandshakeLimiter>,
    /// Rate limit of the log line written for each refused handshake.
    pub(crate) refusals: Arc<RefusalLog>,
    pub(crate) metrics: Arc<ServerMetrics>,
    /// The Redis link (`wsc.redis.enabled`), checked by `/ready`.
    pub(crate) redis: Option<wsc_redis::RedisBackplane>,
    pub(crate) connections: TaskTracker,
    /// The certificates of the TLS listeners, whose expiry `/ready` reports.
    pub(crate) certificates: Arc<Vec<Arc<crate::tls::Certificates>>>,
    /// The open SSE streams of this node, where their POSTed frames go.
    pub(crate) sse_sessions: Arc<crate::sse::SseSessions>,
}

/// The current upgrade policy: swapped whole on reload, shared (not copied) per handshake.
pub(crate) type SharedPolicy = Arc<RwLock<Arc<UpgradePolicy>>>;

/// The upgrade checks that hot-reload.
#[derive(Debug, Clone)]
pub(crate) struct UpgradePolicy {
    pub(crate) origins: Vec<String>,
    pub(crate) allowed_user_types: Vec<String>,
    pub(crate) ip_rules: IpRules,
    pub(crate) handshakes_per_ip_per_second: u32,
    pub(crate) handshake_timeout: std::time::Duration,
}

impl UpgradePolicy {
    pub(crate) fn from_config(config: &GatewayConfig) -> Self {
        let security = &config.wsc.security;
        UpgradePolicy {
            origins: config.wsc.websocket_origins.clone(),
            allowed_user_types: security.allowed_user_types.clone(),
            ip_rules: IpRules::new(&security.allowed_ips, &security.blocked_ips),
            handshakes_per_ip_per_second: security.max_handshakes_per_ip_per_second,
            handshake_timeout: security.handshake_timeout,
        }
    }
}

impl axum::extract::FromRef<AppState> for MetricsState {
    fn from_ref(state: &AppState) -> Self {
        MetricsState {
            metrics: state.metrics.clone(),
        }
    }
}
