//! Routes as data: a [`Target`] and the filters every route shares, in a serializable
//! [`Route`]. The same value selects the recipients on this node (`Registry::resolve`) and
//! travels to other nodes through the [`Backplane`](crate::Backplane), which resolve it
//! against their own connections.

use serde::{Deserialize, Serialize};

/// The scope rule of every delivery: a message with an app id (namespace) only reaches
/// connections of that app (namespace); an empty one means any.
pub(crate) fn in_scope(msg_app: &str, msg_ns: &str, conn_app: &str, conn_ns: &str) -> bool {
    (msg_app.is_empty() || msg_app == conn_app) && (msg_ns.is_empty() || msg_ns == conn_ns)
}

/// Who a message is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Target {
    /// Every connection of a user.
    User {
        /// The user.
        user_id: String,
    },
    /// One connection, by client id.
    Connection {
        /// Its client id.
        client_id: String,
    },
    /// Every connection bound to a ticket.
    Ticket {
        /// The ticket.
        ticket_id: String,
    },
    /// Every connection of a group: connections that joined at connect and every connection
    /// of users who joined through the API.
    Group {
        /// The group.
        group_id: String,
    },
    /// Every connection.
    Broadcast,
    /// The observers whose scope covers a message of this app, namespace and groups: an
    /// observer with no namespace sees every message, one with a namespace that
    /// namespace's, one with groups too only messages of those groups (its app, when it has
    /// one, must match as well).
    Observers {
        /// The message's app.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        app_id: String,
        /// The message's namespace.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        namespace: String,
        /// The message's groups.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        group_ids: Vec<String>,
    },
}

/// A target plus the filters every route shares. Built by the hub's send operations and
/// passed to [`Hub::send`](crate::Hub::send); a route never names a connection by its
/// process-local id, so it means the same on every node.
///
/// Unless `exact_scope` is set, [`Hub::send`](crate::Hub::send) fills `app_id` and
/// `namespace` from the message: a message with an app id (namespace) only reaches
/// connections of that app (namespace).
///
/// ```
/// use wsc_hub::{Route, Target};
/// let route = Route::new(Target::Broadcast).excluding_user("alice");
/// assert_eq!(route.exclude_user.as_deref(), Some("alice"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Route {
    /// Who the message is for.
    pub target: Target,
    /// App scope (empty = any app, unless `exact_scope`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub app_id: String,
    /// Namespace scope (empty = any namespace, unless `exact_scope`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// The scope must match exactly, empty included: a relay stays inside its sender's app
    /// and namespace even when those are empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact_scope: bool,
    /// Only this connection (a user send with `receiver_client`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_client: Option<String>,
    /// Skip every connection of this user (the sender of a ticket message, a broadcast's
    /// exclusion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_user: Option<String>,
    /// Skip this connection (the origin of a relayed frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_client: Option<String>,
}

impl Route {
    /// A route to `target` with no filter.
    pub fn new(target: Target) -> Self {
        Route {
            target,
            app_id: String::new(),
            namespace: String::new(),
            exact_scope: false,
            only_client: None,
            exclude_user: None,
            exclude_client: None,
        }
    }

    /// Skips every connection of `user_id`.
    pub fn excluding_user(mut self, user_id: impl Into<String>) -> Self {
        self.exclude_user = Some(user_id.into()).filter(|u: &String| !u.is_empty());
        self
    }

    /// Skips the connection with this client id.
    pub fn excluding_client(mut self, client_id: impl Into<String>) -> Self {
        self.exclude_client = Some(client_id.into()).filter(|c: &String| !c.is_empty());
        self
    }

    /// Whether the route admits every connection its target selects (no scope, no
    /// exclusion).
    pub(crate) fn is_unfiltered(&self) -> bool {
        !self.exact_scope
            && self.app_id.is_empty()
            && self.namespace.is_empty()
            && self.only_client.is_none()
            && self.exclude_user.is_none()
            && self.exclude_client.is_none()
    }

    /// Whether a connection of this user, client id, app and namespace is a recipient
    /// (the target itself is matched by the registry's index).
    pub(crate) fn admits(&self, user_id: &str, client_id: &str, app_id: &str, ns: &str) -> bool {
        let scope = if self.exact_scope {
            self.app_id == app_id && self.namespace == ns
        } else {
            in_scope(&self.app_id, &self.namespace, app_id, ns)
        };
        scope
            && self.only_client.as_deref().is_none_or(|c| c == client_id)
            && self.exclude_user.as_deref() != Some(user_id)
            && self.exclude_client.as_deref() != Some(client_id)
    }

    /// Takes the scope of the message (unless the scope is exact): a message with an app id
    /// (namespace) only reaches connections of that app (namespace).
    pub(crate) fn scope_from(&mut self, msg: &crate::message::HubMessage) {
        if !self.exact_scope {
            self.app_id.clone_from(&msg.app_id);
            self.namespace.clone_from(&msg.namespace);
        }
    }

    /// The user a user route is for.
    pub(crate) fn user(&self) -> Option<&str> {
        match &self.target {
            Target::User { user_id } => Some(user_id),
            _ => None,
        }
    }
}
