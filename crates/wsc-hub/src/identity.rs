//! Who a connection belongs to: [`Identity`], and how it is read from an upgrade request.

use std::collections::HashMap;

/// The default user type when the request names none.
pub const DEFAULT_USER_TYPE: &str = "visitor";

/// Longest accepted identity value (user id, client id, ...), in bytes.
pub const MAX_IDENTITY_LEN: usize = 256;

/// The identity of one connection, fixed at connect time.
///
/// ```
/// use wsc_hub::Identity;
/// let id = Identity::new("alice").with_user_type("agent").with_groups(["vip"]);
/// assert_eq!(id.user_type, "agent");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Identity {
    /// The user this connection belongs to (required).
    pub user_id: String,
    /// `visitor`, `customer`, `agent`, `admin`, ...; defaults to `visitor`.
    pub user_type: String,
    /// Unique id of this connection; generated when empty. A new connection with the client
    /// id of a live one replaces it.
    pub client_id: String,
    /// The device the user connects from.
    pub device_id: String,
    /// Tickets this connection is bound to.
    pub ticket_ids: Vec<String>,
    /// Groups this connection joins for as long as it lives.
    pub group_ids: Vec<String>,
    /// Application scope.
    pub app_id: String,
    /// Namespace (tenant) scope.
    pub namespace: String,
    /// Free-form metadata (for example the peer address or user agent).
    pub metadata: HashMap<String, String>,
    /// The last `seq_no` the client saw, to resume after a reconnect (query `last_seq`).
    pub last_seq: Option<i64>,
}

impl Identity {
    /// An identity for `user_id` with the default user type.
    pub fn new(user_id: impl Into<String>) -> Self {
        Identity {
            user_id: user_id.into(),
            user_type: DEFAULT_USER_TYPE.to_owned(),
            ..Identity::default()
        }
    }

    /// Sets the user type.
    pub fn with_user_type(mut self, user_type: impl Into<String>) -> Self {
        self.user_type = user_type.into();
        self
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets the device id.
    pub fn with_device_id(mut self, device_id: impl Into<String>) -> Self {
        self.device_id = device_id.into();
        self
    }

    /// Binds the connection to tickets.
    pub fn with_tickets<I: IntoIterator<Item = S>, S: Into<String>>(mut self, tickets: I) -> Self {
        self.ticket_ids = tickets.into_iter().map(Into::into).collect();
        self
    }

    /// Joins groups for the lifetime of the connection.
    pub fn with_groups<I: IntoIterator<Item = S>, S: Into<String>>(mut self, groups: I) -> Self {
        self.group_ids = groups.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the app and namespace scope.
    pub fn with_scope(mut self, app_id: impl Into<String>, namespace: impl Into<String>) -> Self {
        self.app_id = app_id.into();
        self.namespace = namespace.into();
        self
    }

    /// Asks to resume after the given sequence number (see `docs/delivery.md`).
    pub fn with_last_seq(mut self, last_seq: i64) -> Self {
        self.last_seq = Some(last_seq);
        self
    }

    /// Adds one metadata entry.
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Checks the identity and fills the defaults (user type). Repeated ticket and group ids
    /// are removed (the first occurrence is kept), so a connection is bound to each once.
    pub fn validate(&mut self) -> Result<(), IdentityError> {
        // Only spaces is no user id either (found by fuzzing: `?user_id=+`).
        if self.user_id.trim().is_empty() {
            return Err(IdentityError::MissingUserId);
        }
        dedupe(&mut self.ticket_ids);
        dedupe(&mut self.group_ids);
        if self.user_type.is_empty() {
            self.user_type = DEFAULT_USER_TYPE.to_owned();
        }
        let single = [
            ("user_id", &self.user_id),
            ("user_type", &self.user_type),
            ("client_id", &self.client_id),
            ("device_id", &self.device_id),
            ("app_id", &self.app_id),
            ("namespace", &self.namespace),
        ];
        let lists = self
            .ticket_ids
            .iter()
            .map(|v| ("ticket_id", v))
            .chain(self.group_ids.iter().map(|v| ("group_id", v)));
        for (field, value) in single.into_iter().chain(lists) {
            if value.len() > MAX_IDENTITY_LEN || value.chars().any(char::is_control) {
                return Err(IdentityError::Invalid {
                    field,
                    reason: format!(
                        "must be at most {MAX_IDENTITY_LEN} bytes without control characters"
                    ),
                });
            }
        }
        Ok(())
    }

    /// Checks the number of ticket and group ids against the limits (0 = unlimited). Call
    /// after [`validate`](Self::validate), which removes repeated ids.
    pub fn check_list_limits(
        &self,
        max_ticket_ids: usize,
        max_group_ids: usize,
    ) -> Result<(), IdentityError> {
        let lists = [
            ("ticket_id", self.ticket_ids.len(), max_ticket_ids),
            ("group_id", self.group_ids.len(), max_group_ids),
        ];
        for (field, count, limit) in lists {
            if limit > 0 && count > limit {
                return Err(IdentityError::TooMany {
                    field,
                    count,
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// Removes repeated values, keeping the first occurrence of each in order.
fn dedupe(values: &mut Vec<String>) {
    if values.len() > 1 {
        let mut seen = std::collections::HashSet::with_capacity(values.len());
        values.retain(|v| seen.insert(v.clone()));
    }
}

/// Why an identity was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// No user id in the query, headers or cookies.
    #[error("user_id is required (query parameter user_id or header X-User-ID)")]
    MissingUserId,
    /// A list (`ticket_id`, `group_id`) names more ids than a connection may have.
    #[error("too many {field} values: {count} given, at most {limit} allowed")]
    TooMany {
        /// Which identity field.
        field: &'static str,
        /// How many distinct ids were given.
        count: usize,
        /// The configured maximum.
        limit: usize,
    },
    /// A field has an unacceptable value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which identity field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

impl IdentityError {
    /// Stable machine code for HTTP error bodies.
    pub fn code(&self) -> &'static str {
        match self {
            IdentityError::MissingUserId => "missing_user_id",
            IdentityError::Invalid { .. } => "invalid_identity",
            IdentityError::TooMany { .. } => "too_many_ids",
        }
    }
}

/// Where one identity field is read from: a query parameter, then a header, then a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamName {
    /// Query parameter name.
    pub query: String,
    /// Header name.
    pub header: String,
    /// Cookie name.
    pub cookie: String,
}

impl ParamName {
    fn new(query: &str, header: &str) -> Self {
        ParamName {
            query: query.to_owned(),
            header: header.to_owned(),
            cookie: query.to_owned(),
        }
    }
}

/// The parameter names of every identity field; the defaults are go-wsc's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IdentityParams {
    /// `user_id` / `X-User-ID`
    pub user_id: ParamName,
    /// `user_type` / `X-User-Type`
    pub user_type: ParamName,
    /// `client_id` / `X-Client-ID`
    pub client_id: ParamName,
    /// `device_id` / `X-Device-ID`
    pub device_id: ParamName,
    /// `ticket_id` / `X-Ticket-ID` (comma list)
    pub ticket_id: ParamName,
    /// `group_id` / `X-Group-ID` (comma list)
    pub group_id: ParamName,
    /// `app_id` / `X-App-ID`
    pub app_id: ParamName,
    /// `namespace` / `X-Namespace`
    pub namespace: ParamName,
    /// `last_seq` / `X-Last-Seq`: resume after this sequence number
    pub last_seq: ParamName,
}

impl Default for IdentityParams {
    fn default() -> Self {
        IdentityParams {
            user_id: ParamName::new("user_id", "x-user-id"),
            user_type: ParamName::new("user_type", "x-user-type"),
            client_id: ParamName::new("client_id", "x-client-id"),
            device_id: ParamName::new("device_id", "x-device-id"),
            ticket_id: ParamName::new("ticket_id", "x-ticket-id"),
            group_id: ParamName::new("group_id", "x-group-id"),
            app_id: ParamName::new("app_id", "x-app-id"),
            namespace: ParamName::new("namespace", "x-namespace"),
            last_seq: ParamName::new("last_seq", "x-last-seq"),
        }
    }
}

#[cfg(feature = "http")]
impl IdentityParams {
    /// Reads an identity from an upgrade request's URI and headers (query first, then
    /// header, then cookie; the first non-empty value wins) and validates it.
    ///
    /// ```
    /// use wsc_hub::IdentityParams;
    /// let req = http::Request::get("/ws?user_id=alice&group_id=a,b").body(()).unwrap();
    /// let id = IdentityParams::default().extract(req.uri(), req.headers()).unwrap();
    /// assert_eq!((id.user_id.as_str(), id.group_ids.len()), ("alice", 2));
    /// ```
    pub fn extract(
        &self,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Result<Identity, IdentityError> {
        let mut identity = self.extract_unchecked(uri, headers)?;
        identity.validate()?;
        Ok(identity)
    }

    /// Reads the identity fields without requiring a user id or checking them (for a
    /// server that takes the user from a signed token and the rest from the request).
    pub fn extract_unchecked(
        &self,
        uri: &http::Uri,
        headers: &http::HeaderMap,
    ) -> Result<Identity, IdentityError> {
        let query: Vec<(String, String)> = uri
            .query()
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        let cookies: Vec<(String, String)> = headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                Some((k.trim().to_owned(), v.trim().to_owned()))
            })
            .collect();
        let read = |name: &ParamName| -> String {
            let from_query = query
                .iter()
                .find(|(k, v)| *k == name.query && !v.is_empty());
            if let Some((_, v)) = from_query {
                return v.clone();
            }
            let from_header = headers
                .get(name.header.as_str())
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty());
            if let Some(v) = from_header {
                return v.to_owned();
            }
            cookies
                .iter()
                .find(|(k, v)| *k == name.cookie && !v.is_empty())
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let list = |name: &ParamName| -> Vec<String> {
            read(name)
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let mut identity = Identity {
            user_id: read(&self.user_id),
            user_type: read(&self.user_type),
            client_id: read(&self.client_id),
            device_id: read(&self.device_id),
            ticket_ids: list(&self.ticket_id),
            group_ids: list(&self.group_id),
            app_id: read(&self.app_id),
            namespace: read(&self.namespace),
            metadata: HashMap::new(),
            last_seq: None,
        };
        let last_seq = read(&self.last_seq);
        if !last_seq.is_empty() {
            identity.last_seq = Some(last_seq.parse().map_err(|_| IdentityError::Invalid {
                field: "last_seq",
                reason: format!("`{last_seq}` is not an integer"),
            })?);
        }
        if let Some(agent) = headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            identity
                .metadata
                .insert("user_agent".to_owned(), agent.to_owned());
        }
        Ok(identity)
    }
}

#[cfg(all(test, feature = "http"))]
mod tests {
    use super::*;

    fn extract(req: http::Request<()>) -> Result<Identity, IdentityError> {
        IdentityParams::default().extract(req.uri(), req.headers())
    }

    #[test]
    fn query_wins_over_header_and_cookie() {
        let req = http::Request::get("/ws?user_id=q")
            .header("X-User-ID", "h")
            .header("Cookie", "user_id=c")
            .body(())
            .unwrap();
        assert_eq!(extract(req).unwrap().user_id, "q");
        let req = http::Request::get("/ws")
            .header("Cookie", "a=1; user_id=c; user_type=agent")
            .body(())
            .unwrap();
        let id = extract(req).unwrap();
        assert_eq!((id.user_id.as_str(), id.user_type.as_str()), ("c", "agent"));
    }

    #[test]
    fn defaults_and_errors() {
        let req = http::Request::get("/ws?user_id=a%20b").body(()).unwrap();
        let id = extract(req).unwrap();
        assert_eq!(id.user_id, "a b");
        assert_eq!(id.user_type, "visitor");
        let req = http::Request::get("/ws?user_type=agent").body(()).unwrap();
        assert_eq!(extract(req).unwrap_err(), IdentityError::MissingUserId);
        let long = "x".repeat(MAX_IDENTITY_LEN + 1);
        let req = http::Request::get(format!("/ws?user_id={long}"))
            .body(())
            .unwrap();
        assert_eq!(extract(req).unwrap_err().code(), "invalid_identity");
    }
}
