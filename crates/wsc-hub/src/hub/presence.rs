//! Queries: who is online, a user's connections, group membership, stats.

use super::*;

impl Hub {
    /// Ids of every user with a live connection on this node, sorted.
    pub fn online_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.inner.registry.read().users().cloned().collect();
        users.sort();
        users
    }

    /// Number of users with a live connection.
    pub fn online_user_count(&self) -> usize {
        self.inner.registry.read().user_count()
    }

    /// Whether the user has a live connection (never for a blank id).
    pub fn is_user_online(&self, user_id: &str) -> bool {
        self.inner.registry.read().is_user_online(user_id)
    }

    /// Number of live connections.
    pub fn connection_count(&self) -> usize {
        self.inner.registry.read().len()
    }

    /// Snapshots of a user's live connections.
    pub fn user_connections(&self, user_id: &str) -> Result<Vec<ConnectionInfo>, InvalidId> {
        InvalidId::check(user_id, "user_id")?;
        let node = self.node_id();
        Ok(self
            .snapshot(|reg, out| out.extend(reg.user(user_id).cloned()))
            .iter()
            .map(|c| c.info(node))
            .collect())
    }

    /// A live connection by client id.
    pub fn connection(&self, client_id: &str) -> Option<Arc<Connection>> {
        self.inner.registry.read().by_client(client_id).cloned()
    }

    /// A live connection by process-local id.
    pub fn connection_by_id(&self, id: ConnectionId) -> Option<Arc<Connection>> {
        self.inner.registry.read().get(id).cloned()
    }

    /// Adds a user to a group (kept until [`Hub::leave_group`], across reconnects).
    /// Returns whether the user was not a member yet.
    pub fn join_group(&self, group_id: &str, user_id: &str) -> Result<bool, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        let added = self.inner.registry.write().join_group(group_id, user_id);
        self.publish_membership(group_id, user_id, true);
        Ok(added)
    }

    /// Removes a user from a group. Returns whether it was a member through the API.
    pub fn leave_group(&self, group_id: &str, user_id: &str) -> Result<bool, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        let removed = self.inner.registry.write().leave_group(group_id, user_id);
        self.publish_membership(group_id, user_id, false);
        Ok(removed)
    }

    /// Users in a group, sorted.
    pub fn group_members(&self, group_id: &str) -> Result<Vec<String>, InvalidId> {
        InvalidId::check(group_id, "group_id")?;
        Ok(self.inner.registry.read().group_members(group_id))
    }

    /// An exact snapshot of the counters.
    pub fn stats(&self) -> HubStats {
        let (connections, users) = {
            let reg = self.inner.registry.read();
            (reg.len(), reg.user_count())
        };
        let uptime = self
            .inner
            .started_at
            .lock()
            .map(|t| t.elapsed().as_secs())
            .unwrap_or(0);
        let dropped = self.offline_store().map(|s| s.dropped()).unwrap_or(0);
        let pending = self.inner.acks.len();
        self.inner.counters.snapshot(
            self.node_id(),
            (connections, users, pending, dropped),
            uptime,
        )
    }

    /// Group membership is kept on every node: the change goes to the others too.
    fn publish_membership(&self, group_id: &str, user_id: &str, joined: bool) {
        self.publish_later(Envelope::Membership {
            origin: self.node_id().to_owned(),
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
            joined,
        });
    }
}
