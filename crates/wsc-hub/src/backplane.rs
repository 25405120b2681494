//! The seam between nodes: the [`Backplane`] trait, what travels over it ([`Envelope`]),
//! and [`LocalOnly`], the default for a single node.
//!
//! A hub delivers to its own connections itself; the backplane carries what other nodes
//! must deliver (routed messages, kicks, group membership changes) and answers presence queries
//! about the whole cluster. Its shape follows socketioxide's adapter (routing options as
//! serializable data, a node drops nothing it did not publish itself because the backplane
//! never sends a node its own envelopes) and Centrifugo's split of broker and presence
//! manager (publishing and presence are separate methods, so a backend can keep presence
//! in keys with a TTL and messages on channels).

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::callbacks::BoxFuture;
use crate::codec::Payload;
use crate::membership::MembershipKind;
use crate::route::Route;

/// What one node publishes for the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Envelope {
    /// A message: every receiving node delivers `payload` to the connections `route`
    /// selects among its own.
    Message {
        /// The node that accepted the send.
        origin: String,
        /// The full route (target, scope, exclusions).
        route: Route,
        /// The message, serialized once by the origin node.
        payload: Payload,
        /// The `message_id` the origin waits for a client's ack of: a receiving node
        /// forwards such an ack to `origin`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        awaits_ack: Option<String>,
        /// Whether a receiving node answers with [`Envelope::Delivered`] (the acknowledged
        /// ticket and group sends, whose origin must learn who got the message).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        report: bool,
    },
    /// The connections a node delivered a reported [`Envelope::Message`] to (possibly none),
    /// for the node that sent it.
    Delivered {
        /// The node that delivered.
        origin: String,
        /// The node that sent the message.
        to_node: String,
        /// The message.
        message_id: String,
        /// The connections that got it.
        recipients: Vec<Recipient>,
    },
    /// A client acknowledged, on the publishing node, a message that `to_node` sent.
    Ack {
        /// The node where the client acked.
        origin: String,
        /// The node waiting for the ack.
        to_node: String,
        /// The acknowledged message.
        message_id: String,
        /// The acking connection's user.
        user_id: String,
        /// The acking connection's client id.
        client_id: String,
    },
    /// Close every connection of a user, with a `kick_out` frame first when `notify`.
    Kick {
        /// The node that accepted the kick.
        origin: String,
        /// The user.
        user_id: String,
        /// Why (the close reason and the notice's text).
        reason: String,
        /// Whether a `kick_out` frame precedes the close.
        notify: bool,
    },
    /// A user joined or left a group, or became or stopped being a ticket's participant.
    Membership {
        /// The node that accepted the change.
        origin: String,
        /// A group or a ticket.
        #[serde(default, rename = "of")]
        kind: MembershipKind,
        /// The group or ticket id.
        #[serde(alias = "group_id")]
        id: String,
        /// The user.
        user_id: String,
        /// Joined (true) or left (false).
        joined: bool,
    },
    /// The node has observer connections (`present`), or no longer has any. Repeated every
    /// heartbeat while it has some, so a node that starts later learns it, and forgotten
    /// when not repeated: a node sends observer copies to the others only while one of them
    /// said it has observers.
    Observers {
        /// The node.
        origin: String,
        /// Whether it has observers.
        present: bool,
    },
    /// A message was stored offline for a user who had no connection when it was sent. A
    /// node where the user connected since (its replay may have read the store just before
    /// the message was stored) delivers it as a replayed offline message; it stays stored
    /// until written or acknowledged there.
    Stored {
        /// The node that stored it.
        origin: String,
        /// The user.
        user_id: String,
        /// The message.
        message: Box<crate::HubMessage>,
    },
    /// To the node itself, from its backplane: its users were missing from the cluster's
    /// presence for a while (the presence store lost its data, or the node was removed while
    /// it could not renew) and are present again. Messages sent to them meanwhile were
    /// stored offline; the node replays them to the connections it has.
    Rejoined {
        /// The node.
        origin: String,
    },
    /// A group was disbanded: every membership of it ended.
    Disbanded {
        /// The node that accepted the change.
        origin: String,
        /// The group.
        group_id: String,
    },
}

impl Envelope {
    /// The node that published it.
    pub fn origin(&self) -> &str {
        match self {
            Envelope::Message { origin, .. }
            | Envelope::Kick { origin, .. }
            | Envelope::Membership { origin, .. }
            | Envelope::Disbanded { origin, .. }
            | Envelope::Stored { origin, .. }
            | Envelope::Rejoined { origin }
            | Envelope::Observers { origin, .. }
            | Envelope::Ack { origin, .. }
            | Envelope::Delivered { origin, .. } => origin,
        }
    }

    /// The one node an answer is for (an ack or a delivery report), `None` for the rest.
    pub fn to_node(&self) -> Option<&str> {
        match self {
            Envelope::Ack { to_node, .. } | Envelope::Delivered { to_node, .. } => Some(to_node),
            _ => None,
        }
    }
}

/// A connection on another node that a message reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// The connection's user.
    pub user_id: String,
    /// The connection's client id.
    pub client_id: String,
}

/// One page of the users online across the cluster, in name order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[non_exhaustive]
pub struct UserPage {
    /// How many users are online in all.
    pub total: usize,
    /// The users of this page.
    pub users: Vec<String>,
}

impl UserPage {
    /// A page of `users` out of `total`.
    pub fn new(total: usize, users: Vec<String>) -> Self {
        UserPage { total, users }
    }

    /// The page of a full sorted list: `limit` users from `offset`.
    pub fn of_sorted(all: Vec<String>, offset: usize, limit: usize) -> Self {
        let total = all.len();
        let users = all.into_iter().skip(offset).take(limit).collect();
        UserPage { total, users }
    }
}

/// Why a backplane operation failed. Local delivery never depends on it: a failed publish
/// only means other nodes did not get the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The backend could not be reached or refused the operation.
    #[error("backplane unavailable: {0}")]
    Unavailable(String),
}

/// Links the hubs of several nodes.
///
/// The hub calls [`attach`](Self::attach) when it starts and [`detach`](Self::detach) when
/// it stops; in between, envelopes other nodes publish arrive in the inbox it attached, and
/// the hub reports each user that comes online or goes offline on its node. A backplane
/// never delivers a node its own envelopes.
pub trait Backplane: Send + Sync + 'static {
    /// Whether other nodes may exist. When false the hub skips publishing and presence
    /// updates entirely, so a single node pays nothing for the seam.
    fn has_peers(&self) -> bool;

    /// Joins the cluster as `node_id`; envelopes for this node go to `inbox`.
    fn attach(
        &self,
        node_id: &str,
        inbox: mpsc::Sender<Envelope>,
    ) -> BoxFuture<Result<(), BackplaneError>>;

    /// Leaves the cluster: no more envelopes, and this node's users leave presence.
    fn detach(&self, node_id: &str) -> BoxFuture<Result<(), BackplaneError>>;

    /// Publishes to the other nodes that may have recipients. Returns how many nodes it
    /// was handed to.
    fn publish(&self, envelope: Envelope) -> BoxFuture<Result<usize, BackplaneError>>;

    /// A user's first connection on `node_id` opened (`online`) or its last one closed.
    fn set_user_online(
        &self,
        node_id: &str,
        user_id: &str,
        online: bool,
    ) -> BoxFuture<Result<(), BackplaneError>>;

    /// The nodes where a user has a connection, sorted.
    fn user_nodes(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, BackplaneError>>;

    /// `limit` of the users with a connection on some node, from `offset` in name order,
    /// and how many there are in all (`limit` 0 asks for the count alone). A backend
    /// answers without listing every user: this is what the online count and the paged
    /// online list of the APIs call.
    fn online_users(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<Result<UserPage, BackplaneError>>;

    /// Whether the backend can serve this node now (for a readiness check): `Ok` when it
    /// answers and this node receives what others publish. The default, for backends
    /// with nothing that can fail, is always `Ok`.
    fn health(&self) -> BoxFuture<Result<(), BackplaneError>> {
        ready(Ok(()))
    }
}

/// The single-node backplane: no peers, nothing published, presence is this node's.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalOnly;

fn ready<T: Send + 'static>(value: T) -> BoxFuture<T> {
    Box::pin(std::future::ready(value))
}

impl Backplane for LocalOnly {
    fn has_peers(&self) -> bool {
        false
    }

    fn attach(&self, _: &str, _: mpsc::Sender<Envelope>) -> BoxFuture<Result<(), BackplaneError>> {
        ready(Ok(()))
    }

    fn detach(&self, _: &str) -> BoxFuture<Result<(), BackplaneError>> {
        ready(Ok(()))
    }

    fn publish(&self, _: Envelope) -> BoxFuture<Result<usize, BackplaneError>> {
        ready(Ok(0))
    }

    fn set_user_online(&self, _: &str, _: &str, _: bool) -> BoxFuture<Result<(), BackplaneError>> {
        ready(Ok(()))
    }

    fn user_nodes(&self, _: &str) -> BoxFuture<Result<Vec<String>, BackplaneError>> {
        ready(Ok(Vec::new()))
    }

    fn online_users(&self, _: usize, _: usize) -> BoxFuture<Result<UserPage, BackplaneError>> {
        ready(Ok(UserPage::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::Target;
    use crate::{HubMessage, codec};

    #[test]
    fn an_envelope_travels_as_json_and_back_unchanged() {
        let payload = codec::encode(&HubMessage::text("héllo \"quoted\"")).unwrap();
        let envelope = Envelope::Message {
            origin: "node-a".to_owned(),
            route: Route::new(Target::Ticket {
                ticket_id: "t-1".to_owned(),
            })
            .excluding_user("agent"),
            payload,
            awaits_ack: Some("m-1".to_owned()),
            report: true,
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.origin(), "node-a");
        assert_eq!(back.to_node(), None);

        let delivered = Envelope::Delivered {
            origin: "node-b".to_owned(),
            to_node: "node-a".to_owned(),
            message_id: "m-1".to_owned(),
            recipients: vec![Recipient {
                user_id: "agent".to_owned(),
                client_id: "desk-1".to_owned(),
            }],
        };
        let text = serde_json::to_string(&delivered).unwrap();
        assert_eq!(serde_json::from_str::<Envelope>(&text).unwrap(), delivered);
        assert_eq!(delivered.to_node(), Some("node-a"));
    }
}
