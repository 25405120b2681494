//! [`MemoryBackplane`]: links several hubs in one process, for tests and examples of
//! multi-node behaviour without Redis.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::backplane::{Backplane, BackplaneError, Envelope, UserPage};
use crate::callbacks::BoxFuture;
use crate::route::Target;

#[derive(Default)]
struct Nodes {
    inboxes: HashMap<String, mpsc::Sender<Envelope>>,
    /// Node -> users with a connection there.
    presence: HashMap<String, BTreeSet<String>>,
}

/// An in-process backplane: every hub given a clone of the same value is a node of one
/// cluster. Publishing hands the envelope to the other nodes' inboxes (a user message only
/// to the nodes where the user is present); presence is a shared map. Work happens when the
/// method is called, so a hub that returned from `register` is visible to the others at
/// once.
///
/// ```
/// use std::sync::Arc;
/// use wsc_hub::{Hub, HubConfig, HubMessage, Identity, MemoryBackplane};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let cluster = MemoryBackplane::new();
/// let (a, b) = (Hub::new(HubConfig::default()), Hub::new(HubConfig::default()));
/// a.set_backplane(Arc::new(cluster.clone()));
/// b.set_backplane(Arc::new(cluster.clone()));
/// a.start();
/// b.start();
/// let _bob = b.register(Identity::new("bob")).await.unwrap();
/// let report = a.send_to_user("bob", HubMessage::text("hi")).await.unwrap();
/// assert_eq!((report.delivered, report.nodes), (0, 1));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackplane {
    nodes: Arc<Mutex<Nodes>>,
}

impl MemoryBackplane {
    /// A new, empty cluster.
    pub fn new() -> Self {
        Self::default()
    }

    /// The attached nodes, sorted.
    pub fn nodes(&self) -> Vec<String> {
        let mut nodes: Vec<String> = self.nodes.lock().inboxes.keys().cloned().collect();
        nodes.sort();
        nodes
    }
}

impl std::fmt::Debug for MemoryBackplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryBackplane")
            .field("nodes", &self.nodes())
            .finish()
    }
}

fn ready<T: Send + 'static>(value: T) -> BoxFuture<T> {
    Box::pin(std::future::ready(value))
}

impl Backplane for MemoryBackplane {
    fn has_peers(&self) -> bool {
        true
    }

    fn attach(
        &self,
        node_id: &str,
        inbox: mpsc::Sender<Envelope>,
    ) -> BoxFuture<Result<(), BackplaneError>> {
        self.nodes.lock().inboxes.insert(node_id.to_owned(), inbox);
        ready(Ok(()))
    }

    fn detach(&self, node_id: &str) -> BoxFuture<Result<(), BackplaneError>> {
        let mut nodes = self.nodes.lock();
        nodes.inboxes.remove(node_id);
        nodes.presence.remove(node_id);
        ready(Ok(()))
    }

    fn publish(&self, envelope: Envelope) -> BoxFuture<Result<usize, BackplaneError>> {
        let nodes = self.nodes.lock();
        let user = match &envelope {
            Envelope::Message { route, .. } => match &route.target {
                Target::User { user_id } => Some(user_id.as_str()),
                _ => None,
            },
            Envelope::Kick { user_id, .. } | Envelope::Stored { user_id, .. } => {
                Some(user_id.as_str())
            }
            _ => None,
        };
        let only = envelope.to_node();
        let mut reached = 0;
        for (node, inbox) in &nodes.inboxes {
            if node == envelope.origin() || only.is_some_and(|only| only != node) {
                continue;
            }
            if let Some(user) = user
                && !nodes.presence.get(node).is_some_and(|u| u.contains(user))
            {
                continue;
            }
            // A full inbox means that node is far behind; like a lost pub/sub message, the
            // envelope is skipped for it rather than blocking the sender.
            if inbox.try_send(envelope.clone()).is_ok() {
                reached += 1;
            }
        }
        ready(Ok(reached))
    }

    fn set_user_online(
        &self,
        node_id: &str,
        user_id: &str,
        online: bool,
    ) -> BoxFuture<Result<(), BackplaneError>> {
        let mut nodes = self.nodes.lock();
        let users = nodes.presence.entry(node_id.to_owned()).or_default();
        if online {
            users.insert(user_id.to_owned());
        } else {
            users.remove(user_id);
        }
        ready(Ok(()))
    }

    fn user_nodes(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, BackplaneError>> {
        let nodes = self.nodes.lock();
        let mut found: Vec<String> = nodes
            .presence
            .iter()
            .filter(|(_, users)| users.contains(user_id))
            .map(|(node, _)| node.clone())
            .collect();
        found.sort();
        ready(Ok(found))
    }

    fn online_users(
        &self,
        offset: usize,
        limit: usize,
    ) -> BoxFuture<Result<UserPage, BackplaneError>> {
        let nodes = self.nodes.lock();
        let users: BTreeSet<String> = nodes.presence.values().flatten().cloned().collect();
        let page = UserPage::of_sorted(users.into_iter().collect(), offset, limit);
        ready(Ok(page))
    }

    fn health(&self) -> BoxFuture<Result<(), BackplaneError>> {
        // Nothing between the nodes of one process can fail.
        ready(Ok(()))
    }
}
