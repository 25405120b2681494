//! This node in a cluster: the backplane it is linked to, the inbox task that applies what
//! other nodes publish, presence bookkeeping, and the cluster-wide presence queries.

use serde::Serialize;

use super::*;

/// Envelopes waiting for this node's inbox task; beyond it publishers skip this node.
const INBOX_CAPACITY: usize = 4096;

/// Where a user is connected, across the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserPresence {
    /// The user.
    pub user_id: String,
    /// Whether the user has a connection on some node.
    pub online: bool,
    /// The nodes with a connection of the user, sorted.
    pub nodes: Vec<String>,
    /// The user's connections on this node.
    pub connections: Vec<ConnectionInfo>,
}

impl Hub {
    /// Links this hub to the other nodes of a cluster (the default, [`LocalOnly`], has
    /// none). Set it before [`start`](Self::start): the hub joins the cluster when it starts
    /// and leaves it when it stops.
    pub fn set_backplane(&self, backplane: Arc<dyn Backplane>) {
        let peers = backplane.has_peers();
        *self.inner.backplane.write() = backplane;
        self.inner.peers.store(peers, Ordering::Release);
    }

    /// The backplane in use.
    pub fn backplane(&self) -> Arc<dyn Backplane> {
        self.inner.backplane.read().clone()
    }

    /// Whether other nodes may exist (the backplane's `has_peers`, read without a lock).
    pub(super) fn has_peers(&self) -> bool {
        self.inner.peers.load(Ordering::Acquire)
    }

    /// Joins the cluster and runs the inbox task until `stop` cancels `token`.
    pub(super) fn attach_backplane(&self, token: CancellationToken) {
        let backplane = self.backplane();
        if !backplane.has_peers() {
            return;
        }
        let (inbox, mut envelopes) = mpsc::channel(INBOX_CAPACITY);
        let attached = backplane.attach(self.node_id(), inbox);
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            if let Err(e) = attached.await {
                tracing::warn!(error = %e, "joining the cluster failed; serving this node only");
            }
            loop {
                let envelope = tokio::select! {
                    _ = token.cancelled() => break,
                    envelope = envelopes.recv() => envelope,
                };
                let (Some(envelope), Some(inner)) = (envelope, weak.upgrade()) else {
                    break;
                };
                Hub { inner }.apply(envelope);
            }
        });
    }

    /// Leaves the cluster (stop): no more envelopes, and this node's users leave presence.
    pub(super) async fn detach_backplane(&self) {
        let backplane = self.backplane();
        if backplane.has_peers()
            && let Err(e) = backplane.detach(self.node_id()).await
        {
            tracing::warn!(error = %e, "leaving the cluster failed");
        }
    }

    /// Applies what another node published to this node's connections.
    fn apply(&self, envelope: Envelope) {
        match envelope {
            Envelope::Message {
                origin,
                route,
                payload,
                awaits_ack,
                report,
            } => {
                if let Some(message_id) = &awaits_ack {
                    let mut remote_acks = self.inner.remote_acks.lock();
                    remote_acks.expect(message_id.clone(), origin.clone());
                }
                let reached = self.deliver_remote(&route, &payload);
                self.count_observer_copies(&route, reached.len());
                if report && let Some(message_id) = awaits_ack {
                    let recipients = reached
                        .iter()
                        .map(|conn| Recipient {
                            user_id: conn.user_id().to_owned(),
                            client_id: conn.client_id().to_owned(),
                        })
                        .collect();
                    self.publish_later(Envelope::Delivered {
                        origin: self.node_id().to_owned(),
                        to_node: origin,
                        message_id,
                        recipients,
                    });
                }
            }
            Envelope::Delivered {
                message_id,
                recipients,
                ..
            } => self.remote_delivered(&message_id, recipients),
            Envelope::Ack {
                message_id,
                user_id,
                client_id,
                ..
            } => match self
                .inner
                .acks
                .ack_remote(&message_id, &user_id, &client_id)
            {
                AckMatch::Confirmed { .. } => Counters::add(&self.inner.counters.acks_confirmed, 1),
                // Not a waiter of its own: perhaps one connection of a ticket or group send.
                _ => {
                    self.remote_ack_for_send(&message_id, &client_id);
                }
            },
            Envelope::Kick {
                user_id,
                reason,
                notify,
                ..
            } => {
                self.kick_local(&user_id, &reason, notify);
            }
            Envelope::Membership {
                kind,
                id,
                user_id,
                joined,
                ..
            } => {
                let mut registry = self.inner.registry.write();
                if joined {
                    registry.add_member(kind, &id, &user_id);
                } else {
                    registry.remove_member(kind, &id, &user_id);
                }
            }
            Envelope::Stored {
                user_id, message, ..
            } => {
                self.deliver_if_reconnected(&user_id, &message);
            }
            Envelope::Rejoined { .. } => self.replay_to_connected_users(),
            Envelope::Observers { origin, present } => {
                self.observers_announced(&origin, present);
            }
            Envelope::Disbanded { group_id, .. } => {
                self.inner
                    .registry
                    .write()
                    .remove_set(MembershipKind::Group, &group_id);
            }
        }
    }

    /// Hands an envelope to the other nodes; returns how many got it. A single node (or a
    /// failed publish, which is logged and counted) reaches none: local delivery never
    /// depends on it.
    pub(super) async fn publish(&self, envelope: impl FnOnce(&Hub) -> Envelope) -> usize {
        self.try_publish(envelope).await.unwrap_or(0)
    }

    /// [`publish`](Self::publish) that says when the backplane failed. The envelope is
    /// built only when there are peers, so a single node pays nothing.
    pub(super) async fn try_publish(
        &self,
        envelope: impl FnOnce(&Hub) -> Envelope,
    ) -> Result<usize, BackplaneError> {
        if !self.has_peers() {
            return Ok(0);
        }
        let backplane = self.backplane();
        backplane
            .publish(envelope(self))
            .await
            .inspect_err(|e| self.cluster_failed("publishing to other nodes", e))
    }

    /// Logs and counts a failed cluster operation.
    pub(super) fn cluster_failed(&self, what: &str, error: &dyn std::fmt::Display) {
        Counters::add(&self.inner.counters.cluster_errors, 1);
        tracing::warn!(error = %error, "{what} failed");
    }

    /// An ack for a message another node sent: forwards it there. Returns whether this
    /// node delivered such a message (the ack then matched, remotely). The entry stays: the
    /// other connections a ticket or group message reached here ack it too.
    pub(super) fn forward_ack(&self, conn: &Connection, message_id: &str) -> bool {
        let Some(to_node) = self.inner.remote_acks.lock().origin(message_id) else {
            return false;
        };
        self.inner.acks.forwarded(message_id);
        self.publish_later(Envelope::Ack {
            origin: self.node_id().to_owned(),
            to_node,
            message_id: message_id.to_owned(),
            user_id: conn.user_id().to_owned(),
            client_id: conn.client_id().to_owned(),
        });
        true
    }

    /// Hands an acknowledged message to the other nodes where its route may reach someone;
    /// they forward the client's ack back here. Returns how many nodes got it, or why the
    /// backplane failed (logged and counted already).
    pub(super) async fn publish_awaiting_ack(
        &self,
        route: &Route,
        payload: &Payload,
        message_id: &str,
    ) -> Result<usize, BackplaneError> {
        self.try_publish(|hub| Envelope::Message {
            origin: hub.node_id().to_owned(),
            route: route.clone(),
            payload: payload.clone(),
            awaits_ack: Some(message_id.to_owned()),
            report: false,
        })
        .await
    }

    /// Publishes without waiting (from synchronous operations such as group membership).
    pub(super) fn publish_later(&self, envelope: Envelope) {
        if self.has_peers() {
            let hub = self.clone();
            tokio::spawn(async move { hub.publish(|_| envelope).await });
        }
    }

    /// Tells the cluster that a user's first connection here opened, and waits for it, so
    /// that the user is reachable from every node once `register` returns.
    pub(super) async fn user_came_online(&self, user_id: &str) {
        if !self.has_peers() {
            return;
        }
        if let Err(e) = self
            .backplane()
            .set_user_online(self.node_id(), user_id, true)
            .await
        {
            self.cluster_failed("presence update", &e);
        }
    }

    /// Tells the cluster that a user's last connection here closed (without waiting: it
    /// runs from synchronous unregistration).
    pub(super) fn user_went_offline(&self, user_id: &str) {
        if self.has_peers() {
            let update = self
                .backplane()
                .set_user_online(self.node_id(), user_id, false);
            let hub = self.clone();
            tokio::spawn(async move {
                if let Err(e) = update.await {
                    hub.cluster_failed("presence update", &e);
                }
            });
        }
    }

    /// Removes a connection from every index and reports its user offline when it was the
    /// user's last connection on this node. Returns whether the node has no connection left.
    pub(super) fn leave_registry(&self, conn: &Connection) -> bool {
        let (user_gone, empty) = {
            let mut registry = self.inner.registry.write();
            let removed = registry.remove(conn.id()).is_some();
            let user_gone = removed && !registry.is_user_online(conn.user_id());
            if user_gone {
                registry.forget_memberships(conn.user_id());
            }
            (user_gone, registry.len() == 0)
        };
        if user_gone {
            self.user_went_offline(conn.user_id());
            if self.is_agent(&conn.identity().user_type) {
                self.agent_went_offline(conn.user_id());
            }
        }
        if conn.is_observer() {
            self.announce_observers();
        }
        empty
    }

    /// Where a user is connected, on every node: the nodes come from the backplane (this
    /// node only, on a single node), the connection details from this node.
    pub async fn presence(&self, user_id: &str) -> Result<UserPresence, InvalidId> {
        let connections = self.user_connections(user_id)?;
        let backplane = self.backplane();
        let mut nodes = if backplane.has_peers() {
            match backplane.user_nodes(user_id).await {
                Ok(nodes) => nodes,
                Err(e) => {
                    self.cluster_failed("cluster presence (answering for this node)", &e);
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if !connections.is_empty() && !nodes.iter().any(|n| n == self.node_id()) {
            nodes.push(self.node_id().to_owned());
            nodes.sort();
        }
        Ok(UserPresence {
            user_id: user_id.to_owned(),
            online: !nodes.is_empty(),
            nodes,
            connections,
        })
    }

    /// `limit` of the users with a connection on some node, from `offset` in name order,
    /// with the total: from the backplane, or this node's users on a single node or when
    /// the backplane cannot answer.
    pub async fn cluster_online_users(&self, offset: usize, limit: usize) -> UserPage {
        let backplane = self.backplane();
        if backplane.has_peers() {
            match backplane.online_users(offset, limit).await {
                Ok(page) => return page,
                Err(e) => self.cluster_failed("cluster presence (answering for this node)", &e),
            }
        }
        if limit == 0 {
            return UserPage::new(self.online_user_count(), Vec::new());
        }
        UserPage::of_sorted(self.online_users(), offset, limit)
    }

    /// How many users have a connection on some node (this node's, on a single node or
    /// when the backplane cannot answer). Cheap on every backend: no listing.
    pub async fn cluster_online_user_count(&self) -> usize {
        self.cluster_online_users(0, 0).await.total
    }
}

/// Messages other nodes sent here that await an ack: message id -> the node waiting for it.
/// Bounded: the oldest entries go first (their senders have timed out long ago).
#[derive(Default)]
pub(super) struct RemoteAcks {
    origins: HashMap<String, String>,
    order: VecDeque<String>,
}

/// Remote messages awaiting an ack that a node remembers.
const REMOTE_ACKS: usize = 65_536;

impl RemoteAcks {
    fn expect(&mut self, message_id: String, origin: String) {
        if self.origins.insert(message_id.clone(), origin).is_none() {
            self.order.push_back(message_id);
            while self.order.len() > REMOTE_ACKS {
                if let Some(oldest) = self.order.pop_front() {
                    self.origins.remove(&oldest);
                }
            }
        }
    }

    fn origin(&self, message_id: &str) -> Option<String> {
        self.origins.get(message_id).cloned()
    }
}
