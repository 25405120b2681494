//! Lifecycle: build, bind, serve, stop.
//!
//! Order of `start`: start the hub, bind the public listener, bind the API listener (or
//! share the public one when the ports are equal), then spawn the accept loops. A bind
//! failure is an error from `start`. Order of `stop`: stop accepting, close every WebSocket
//! with 1001 through the hub, wait for connection tasks until the deadline.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::routing::{any, get};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use wsc_config::GatewayConfig;
use wsc_hub::Hub;

use crate::auth::TokenVerifier;
use crate::guard::{HandshakeLimiter, RefusalLog};
use crate::metrics::ServerMetrics;
use crate::middleware::UpgradeMiddleware;
use crate::state::{AppState, AppStateInner, SharedPolicy, UpgradePolicy};
use crate::{api, cluster, grpc, guard, upgrade};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The token key in the configuration cannot be used.
    #[error("authentication is on but {0}")]
    Auth(String),
    /// The Redis settings cannot be used (a malformed URL, for example). An unreachable
    /// Redis is not an error: the node starts, reports not ready, and joins once it answers.
    #[error("the Redis settings cannot be used: {0}")]
    Redis(String),
    /// A TLS certificate, key or CA file cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not be bound (port in use, bad address, ...).
    #[error("cannot bind {what} listener on {addr}: {source}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A configured, not yet started gateway server.
pub struct Server {
    config: GatewayConfig,
    hub: Hub,
    middlewares: Vec<UpgradeMiddleware>,
    demo_page: bool,
}

impl Server {
    /// Builds the hub from the configuration.
    pub fn new(config: GatewayConfig) -> Self {
        let hub = Hub::new(config.wsc.hub_config());
        Server::with_hub(config, hub)
    }

    /// Uses an existing hub (for embedders that registered callbacks on it).
    pub fn with_hub(config: GatewayConfig, hub: Hub) -> Self {
        Server {
            config,
            hub,
            middlewares: Vec::new(),
            demo_page: false,
        }
    }

    /// Adds an upgrade middleware (see [`UpgradeMiddleware`]); they run in this order.
    pub fn with_middleware(mut self, middleware: UpgradeMiddleware) -> Self {
        self.middlewares.push(middleware);
        self
    }

    /// Serves the demo page (a customer-service desk) at `/` on the public listener, and the
    /// browser client at `/wsc.js`. The page calls the API on its own origin, so give the
    /// API the public port (`http.port` = `wsc.node_port`), as `gateway-server demo` does.
    pub fn with_demo_page(mut self) -> Self {
        self.demo_page = true;
        self
    }

    /// The hub, to register callbacks before starting.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The configuration.
    pub fn config(&self) -> &GatewayConfig {
        &self.config
    }

    /// Starts the hub and binds both listeners; returns once they accept connections.
    pub async fn start(self) -> Result<RunningServer, StartError> {
        let config = self.config;
        let hub = self.hub;
        let tokens = if config.wsc.security.enable_auth {
            let verifier =
                TokenVerifier::from_config(&config.wsc.security.token).map_err(StartError::Auth)?;
            Some(Arc::new(verifier))
        } else {
            None
        };
        // TLS files are read before anything is bound: a bad certificate fails the start.
        let public_tls = tls_for("wsc.tls", &config.wsc.tls, HTTP1)?;
        let api_tls = tls_for("http.tls", &config.http.tls, HTTP1)?;
        let grpc_tls = if config.grpc.enabled {
            tls_for("grpc.tls", &config.grpc.tls, &[b"h2"])?
        } else {
            None
        };
        let public_addr = host_port(&config.wsc.node_ip, config.wsc.node_port);
        let public = bind("public", &public_addr).await?;
        let shared = config.http.port == config.wsc.node_port && config.http.port != 0;
        let api_listener = if shared {
            None
        } else {
            let api_addr = host_port(&config.http.host, config.http.port);
            Some(bind("API", &api_addr).await?)
        };
        let grpc_listener = if config.grpc.enabled {
            let grpc_addr = host_port(&config.grpc.host, config.grpc.port);
            Some(bind("gRPC", &grpc_addr).await?)
        } else {
            None
        };
        let redis = cluster::link(&config, &hub).map_err(StartError::Redis)?;
        for warning in insecure_settings(&config) {
            tracing::warn!("{warning}");
        }
        hub.start();

        let tls_certificates: Vec<Arc<crate::tls::Certificates>> =
            [&public_tls, &api_tls, &grpc_tls]
                .into_iter()
                .flatten()
                .map(|(_, certs)| certs.clone())
                .collect();
        let state = AppState::new(AppStateInner {
            hub: hub.clone(),
            identity_params: Arc::new(config.wsc.identity_params()),
            policy: Arc::new(RwLock::new(Arc::new(UpgradePolicy::from_config(&config)))),
            api_keys: Arc::new(config.api.keys.clone()),
            middlewares: Arc::new(self.middlewares),
            tokens,
            handshakes: Arc::new(HandshakeLimiter::default()),
            refusals: Arc::new(RefusalLog::default()),
            metrics: Arc::new(ServerMetrics::new(
                hub.clone(),
                config.wsc.performance.enable_metrics,
                config
                    .wsc
                    .performance
                    .enable_slow_log
                    .then_some(config.wsc.performance.slow_log_threshold),
                tls_certificates.clone(),
            )),
            redis,
            connections: TaskTracker::new(),
            certificates: Arc::new(tls_certificates),
            sse_sessions: Arc::default(),
        });
        let mut public_router = Router::new();
        if config.wsc.enabled {
            public_router = public_router.route(&config.wsc.path, any(upgrade::websocket));
        }
        if self.demo_page {
            public_router = public_router.merge(crate::demo::router());
        }
        if config.wsc.sse.enabled {
            public_router =
                public_router.merge(crate::sse::router(&config.wsc.sse, state.policy.clone()));
        }
        let api_router = api::router(&state, &config);
        let shutdown = CancellationToken::new();
        let servers = TaskTracker::new();
        sweep_handshake_limiter(&servers, state.handshakes.clone(), shutdown.clone());
        let public_addr = local_addr(&public);
        let serve_with = |listener: TcpListener, app: Router, tls: Option<TlsSetup>| match tls {
            Some((acceptor, _)) => {
                let policy = state.policy.clone();
                crate::tls::serve(&servers, listener, acceptor, app, policy, shutdown.clone());
            }
            None => {
                let policy = state.policy.clone();
                crate::listen::serve(&servers, listener, app, policy, shutdown.clone());
            }
        };
        let api_addr = match api_listener {
            None => {
                // One listener serves everything, with the public listener's TLS.
                let app = public_router.merge(api_router).with_state(state.clone());
                serve_with(public, app, public_tls);
                public_addr
            }
            Some(listener) => {
                let addr = local_addr(&listener);
                let public_router = public_router.route("/health", get(api::health));
                serve_with(public, public_router.with_state(state.clone()), public_tls);
                serve_with(listener, api_router.with_state(state.clone()), api_tls);
                addr
            }
        };
        let certificates: Vec<_> = state.certificates.as_ref().clone();
        crate::tls::watch(&servers, certificates.clone(), shutdown.clone());
        let grpc_addr = match grpc_listener {
            Some(listener) => {
                let addr = local_addr(&listener);
                let service = grpc::GatewayService {
                    hub: hub.clone(),
                    shutdown: shutdown.clone(),
                };
                serve_grpc(
                    &servers,
                    listener,
                    grpc_tls.map(|(acceptor, _)| acceptor),
                    service,
                    state.api_keys.clone(),
                    shutdown.clone(),
                )
                .await;
                Some(addr)
            }
            None => None,
        };
        tracing::info!(%public_addr, %api_addr, ?grpc_addr, node_id = hub.node_id(), "gateway started");
        Ok(RunningServer {
            grpc_addr,
            policy: state.policy.clone(),
            hub,
            public_addr,
            api_addr,
            shutdown,
            servers,
            connections: state.connections.clone(),
            certificates,
        })
    }
}

/// Pending connections the kernel queues per listener. The default of 128 overflows when
/// hundreds of clients reconnect at once (after a deploy, say), and every overflowed client
/// then waits a second for its SYN to be retransmitted.
const LISTEN_BACKLOG: u32 = 4096;

/// `host:port`, with an IPv6 address in brackets (`[::1]:8081`) so that it parses back.
fn host_port(host: &str, port: u16) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, port).to_string(),
        Err(_) => format!("{host}:{port}"),
    }
}

/// Forgets idle clients of the handshake limiter every [`guard::SWEEP_EVERY`], until
/// shutdown; this keeps the sweep's linear cost off the handshakes themselves.
fn sweep_handshake_limiter<C>(
    tracker: &TaskTracker,
    limiter: Arc<HandshakeLimiter<C>>,
    shutdown: CancellationToken,
) where
    C: governor::clock::Clock + Clone + Send + Sync + 'static,
    C::Instant: Send + Sync,
{
    tracker.spawn(async move {
        let mut every = tokio::time::interval(guard::SWEEP_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = every.tick() => limiter.sweep(),
            }
        }
    });
}

async fn bind(what: &'static str, addr: &str) -> Result<TcpListener, StartError> {
    let error = |source| StartError::Bind {
        what,
        addr: addr.to_owned(),
        source,
    };
    let socket_addr: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .map_err(error)?
        .next()
        .ok_or_else(|| error(std::io::Error::other("the address resolves to nothing")))?;
    let socket = if socket_addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(error)?;
    // As std and tokio do for listeners on Unix: a restarted server can bind at once.
    #[cfg(unix)]
    socket.set_reuseaddr(true).map_err(error)?;
    socket.bind(socket_addr).map_err(error)?;
    socket.listen(LISTEN_BACKLOG).map_err(error)
}

fn local_addr(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
}

/// A listener's TLS acceptor and its reloadable certificates.
type TlsSetup = (tokio_rustls::TlsAcceptor, Arc<crate::tls::Certificates>);

/// The protocol of the HTTP listeners (WebSocket upgrades need HTTP/1.1).
const HTTP1: &[&[u8]] = &[b"http/1.1"];

/// The TLS setup of a listener when its section enables TLS, offering `alpn`.
fn tls_for(
    section: &str,
    config: &wsc_config::TlsConfig,
    alpn: &[&[u8]],
) -> Result<Option<TlsSetup>, StartError> {
    if !config.enabled {
        return Ok(None);
    }
    Ok(Some(crate::tls::acceptor(section, config, alpn)?))
}

async fn serve_grpc(
    tracker: &TaskTracker,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    service: grpc::GatewayService,
    api_keys: Arc<Vec<String>>,
    shutdown: CancellationToken,
) {
    use grpc::proto::gateway_server::GatewayServer;
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<GatewayServer<grpc::GatewayService>>()
        .await;
    // The same API keys as the REST API, as `authorization: Bearer <key>` metadata.
    let check = move |request: tonic::Request<()>| {
        let authorization = request
            .metadata()
            .get("authorization")
            .map(|v| v.to_str().unwrap_or("?"));
        match crate::api_key::check_api_key(&api_keys, authorization) {
            Ok(()) => Ok(request),
            Err(e) => Err(tonic::Status::unauthenticated(e.message)),
        }
    };
    let gateway = GatewayServer::with_interceptor(service, check);
    // Server reflection (both versions: grpcurl and other tools use either), so clients
    // need no .proto file. Its descriptors describe the API, never data: no key needed.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(grpc::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1();
    let reflection_v1alpha = reflection().build_v1alpha();
    let (reflection_v1, reflection_v1alpha) = match (reflection_v1, reflection_v1alpha) {
        (Ok(v1), Ok(v1alpha)) => (v1, v1alpha),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(error = %e, "gRPC reflection descriptors are invalid");
            return;
        }
    };
    let router = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(gateway);
    let done = shutdown.clone().cancelled_owned();
    // With TLS, the handshakes happen on tasks of their own (`tls::incoming`) and tonic
    // serves the connections that completed one; the certificates reload as on the HTTP
    // listeners.
    let result = match tls {
        Some(acceptor) => {
            let incoming = crate::tls::incoming(tracker, listener, acceptor, shutdown);
            tracker.spawn(router.serve_with_incoming_shutdown(incoming, done))
        }
        None => {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
            tracker.spawn(router.serve_with_incoming_shutdown(incoming, done))
        }
    };
    tracker.spawn(async move {
        if let Ok(Err(e)) = result.await {
            tracing::error!(error = %e, "gRPC listener failed");
        }
    });
}

/// Applies the runtime-safe keys of a reloaded configuration; see
/// [`RunningServer::config_applier`].
#[derive(Clone)]
pub struct ConfigApplier {
    hub: Hub,
    policy: SharedPolicy,
}

impl ConfigApplier {
    /// Applies hub limits, timeouts and policies, allowed origins and user types.
    pub fn apply(&self, config: &GatewayConfig) {
        self.hub.reconfigure(config.wsc.hub_config());
        if let Ok(mut policy) = self.policy.write() {
            *policy = Arc::new(UpgradePolicy::from_config(config));
        }
    }
}

/// A started server. Dropping it does not stop it; call [`RunningServer::stop`].
pub struct RunningServer {
    grpc_addr: Option<SocketAddr>,
    hub: Hub,
    policy: SharedPolicy,
    public_addr: SocketAddr,
    api_addr: SocketAddr,
    shutdown: CancellationToken,
    servers: TaskTracker,
    connections: TaskTracker,
    certificates: Vec<Arc<crate::tls::Certificates>>,
}

impl RunningServer {
    /// Reads the TLS certificate files again now, for each TLS listener whose files changed
    /// (the server also does this by itself every two seconds). Returns how many listeners
    /// took a new certificate; a pair that cannot be used is an error and the listener keeps
    /// the certificate it had.
    pub fn reload_certificates(&self) -> Result<usize, crate::tls::TlsError> {
        let mut reloaded = 0;
        for certs in &self.certificates {
            reloaded += usize::from(certs.reload_if_changed()?);
        }
        Ok(reloaded)
    }

    /// The hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Applies the runtime-safe keys of a (reloaded) configuration: hub limits, timeouts and
    /// policies, allowed origins and user types. Listener addresses need a restart.
    pub fn apply_config(&self, config: &GatewayConfig) {
        self.config_applier().apply(config);
    }

    /// A handle that applies reloaded configurations, usable from another task while the
    /// server keeps running (and after it stopped, where it changes nothing visible).
    pub fn config_applier(&self) -> ConfigApplier {
        ConfigApplier {
            hub: self.hub.clone(),
            policy: self.policy.clone(),
        }
    }

    /// Where the public listener (`/ws`) is bound.
    pub fn public_addr(&self) -> SocketAddr {
        self.public_addr
    }

    /// Where the gRPC listener is bound (`None` when `grpc.enabled` is false).
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.grpc_addr
    }

    /// Where the API listener is bound (equal to the public one when they share a port).
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Stops accepting, closes every WebSocket with 1001 and waits for the connections to
    /// finish, at most `deadline`. Returns whether everything drained in time.
    pub async fn stop(self, deadline: Duration) -> bool {
        let started = tokio::time::Instant::now();
        self.shutdown.cancel();
        let remaining = self.hub.stop(deadline).await;
        self.connections.close();
        self.servers.close();
        let left = deadline.saturating_sub(started.elapsed());
        let drained = tokio::time::timeout(left, async {
            self.connections.wait().await;
            self.servers.wait().await;
        })
        .await
        .is_ok();
        tracing::info!(drained, remaining, "gateway stopped");
        drained && remaining == 0
    }
}

/// What is open by configuration and should not be in production: the server starts anyway
/// (the defaults serve a first local try) and says so at `warn`.
pub(crate) fn insecure_settings(config: &GatewayConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    let loopback = |host: &str| {
        host.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
    };
    let api_open = config.api.keys.is_empty() && !loopback(&config.http.host);
    if api_open {
        warnings.push(format!(
            "the API listener ({}:{}) is reachable beyond this machine without API keys: \
             anyone who reaches it can send to, kick and list users; set api.keys or bind \
             http.host to 127.0.0.1",
            config.http.host, config.http.port
        ));
    }
    if api_open && config.grpc.enabled && !loopback(&config.grpc.host) {
        warnings.push(format!(
            "the gRPC listener ({}:{}) is reachable beyond this machine without API keys; \
             set api.keys or bind grpc.host to 127.0.0.1",
            config.grpc.host, config.grpc.port
        ));
    }
    if !config.wsc.security.enable_auth {
        warnings.push(
            "wsc.security.enable_auth is off: WebSocket clients name their own user \
             (user_id from the query, a header or a cookie); turn it on with a token key \
             outside development"
                .to_owned(),
        );
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_listeners_and_self_chosen_identities_are_named() {
        let defaults = GatewayConfig::default();
        let warnings = insecure_settings(&defaults);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].contains("API listener (0.0.0.0:8080)"));
        assert!(warnings[1].contains("gRPC listener (0.0.0.0:9090)"));
        assert!(warnings[2].contains("enable_auth is off"));

        let mut local = GatewayConfig::default();
        local.http.host = "127.0.0.1".to_owned();
        local.grpc.host = "::1".to_owned();
        assert_eq!(
            insecure_settings(&local).len(),
            1,
            "only the identity warning"
        );

        let mut keyed = GatewayConfig::default();
        keyed.api.keys = vec!["k".to_owned()];
        keyed.wsc.security.enable_auth = true;
        assert!(insecure_settings(&keyed).is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn the_handshake_limiter_forgets_idle_clients_every_10_s() {
        let clock = governor::clock::FakeRelativeClock::default();
        let limiter = Arc::new(HandshakeLimiter::with_clock(clock.clone()));
        let (tracker, shutdown) = (TaskTracker::new(), CancellationToken::new());
        sweep_handshake_limiter(&tracker, limiter.clone(), shutdown.clone());
        // The first sweep runs at once, with nothing to forget.
        tokio::task::yield_now().await;
        assert!(limiter.allow("192.0.2.1".parse().unwrap(), 5));
        // Idle long enough for a whole burst again: forgotten at the next sweep, not before.
        clock.advance(Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(9_900)).await;
        assert_eq!(limiter.tracked(), 1, "swept before 10 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(limiter.tracked(), 0, "not swept at 10 s");
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
    }
}
