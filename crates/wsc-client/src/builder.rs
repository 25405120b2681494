//! [`ClientBuilder`]: where to connect, who the connection is, and how the client behaves
//! (heartbeat, acks, dedupe, reconnect, TLS). Everything has a default except the URL and
//! the user (or a token).

use std::time::Duration;

use crate::error::ConnectError;
use crate::session::{Client, Events};

/// How a client connects and behaves.
///
/// ```no_run
/// use std::time::Duration;
/// use wsc_client::ClientBuilder;
///
/// # async fn run() -> Result<(), wsc_client::ConnectError> {
/// let (client, events) = ClientBuilder::new("ws://127.0.0.1:8081/ws")
///     .user("alice")
///     .user_type("customer")
///     .heartbeat(Duration::from_secs(25))
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    pub(crate) url: String,
    pub(crate) params: Vec<(&'static str, String)>,
    pub(crate) client_id: String,
    pub(crate) token: Option<String>,
    pub(crate) last_seq: Option<i64>,
    pub(crate) auto_ack: bool,
    pub(crate) heartbeat: Duration,
    pub(crate) pong_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) min_backoff: Duration,
    pub(crate) max_backoff: Duration,
    pub(crate) max_attempts: Option<usize>,
    pub(crate) root_certificates: Option<Vec<u8>>,
    pub(crate) dedupe_window: usize,
    pub(crate) event_buffer: usize,
}

impl ClientBuilder {
    /// A client of the gateway at `url` (`ws://host:8081/ws` or `wss://...`).
    ///
    /// The defaults: a generated client id kept across reconnects, automatic acks, a JSON
    /// `ping` every 25 s and a reconnect when nothing arrived for 75 s, reconnects after
    /// 0.5 s doubling to 30 s with jitter and no limit, the last 4096 message ids remembered
    /// for dedupe, the web PKI roots for `wss://`.
    pub fn new(url: impl Into<String>) -> Self {
        ClientBuilder {
            url: url.into(),
            params: Vec::new(),
            client_id: uuid::Uuid::new_v4().simple().to_string(),
            token: None,
            last_seq: None,
            auto_ack: true,
            heartbeat: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(75),
            connect_timeout: Duration::from_secs(10),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_attempts: None,
            root_certificates: None,
            dedupe_window: 4096,
            event_buffer: 1024,
        }
    }

    fn param(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.params.retain(|(n, _)| *n != name);
        self.params.push((name, value.into()));
        self
    }

    /// The user this connection belongs to (`user_id`); not needed with a token.
    pub fn user(self, user_id: impl Into<String>) -> Self {
        self.param("user_id", user_id)
    }

    /// The user type (`visitor` by default on the server).
    pub fn user_type(self, user_type: impl Into<String>) -> Self {
        self.param("user_type", user_type)
    }

    /// The device the user connects from.
    pub fn device(self, device_id: impl Into<String>) -> Self {
        self.param("device_id", device_id)
    }

    /// Tickets this connection joins.
    pub fn tickets<I: IntoIterator<Item = S>, S: Into<String>>(self, ids: I) -> Self {
        let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        self.param("ticket_id", ids.join(","))
    }

    /// Groups this connection joins while it is open.
    pub fn groups<I: IntoIterator<Item = S>, S: Into<String>>(self, ids: I) -> Self {
        let ids: Vec<String> = ids.into_iter().map(Into::into).collect();
        self.param("group_id", ids.join(","))
    }

    /// Application scope.
    pub fn app(self, app_id: impl Into<String>) -> Self {
        self.param("app_id", app_id)
    }

    /// Namespace (tenant) scope.
    pub fn namespace(self, namespace: impl Into<String>) -> Self {
        self.param("namespace", namespace)
    }

    /// This connection's client id (default: a generated one). It is kept across
    /// reconnects, so a reconnect replaces a stale connection instead of adding one.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// A signed token (sent as `Authorization: Bearer`); with authentication on, the
    /// server takes the identity from it.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Resumes after this `seq_no` on the first connection (a client that kept it across
    /// restarts); later reconnects resume from the last one received.
    pub fn resume_after(mut self, last_seq: i64) -> Self {
        self.last_seq = Some(last_seq);
        self
    }

    /// Whether frames with `require_ack` are acknowledged as soon as they arrive (default
    /// true). Off, call [`Client::ack`] once the message is handled.
    pub fn auto_ack(mut self, on: bool) -> Self {
        self.auto_ack = on;
        self
    }

    /// Interval of the JSON `ping` (default 25 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// The silence after which the connection counts as dead and is replaced (default 75 s).
    pub fn pong_timeout(mut self, after: Duration) -> Self {
        self.pong_timeout = after;
        self
    }

    /// How long one connection attempt may take (default 10 s).
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// The reconnect delays: from `min`, doubling up to `max`, each with random jitter
    /// (defaults 0.5 s and 30 s).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.min_backoff = min;
        self.max_backoff = max.max(min);
        self
    }

    /// Gives up after this many failed reconnect attempts in a row (default: never).
    pub fn max_reconnect_attempts(mut self, attempts: usize) -> Self {
        self.max_attempts = Some(attempts);
        self
    }

    /// Trusts only the CA certificates in this PEM text for `wss://` (a private CA),
    /// instead of the web PKI roots.
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// How many message ids are remembered for dedupe (default 4096).
    pub fn dedupe_window(mut self, ids: usize) -> Self {
        self.dedupe_window = ids;
        self
    }

    /// Connects once, then serves and reconnects in a background task. Fails when the
    /// first attempt fails (nothing runs then); the [`Events`] start with
    /// [`ClientEvent::Connected`](crate::ClientEvent::Connected).
    pub async fn connect(self) -> Result<(Client, Events), ConnectError> {
        crate::session::start(self).await
    }
}
