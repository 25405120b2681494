//! Queries: who is online, a user's connections, stats.

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

    /// An exact snapshot of the counters.
    pub fn stats(&self) -> HubStats {
        let (connections, users, observers) = {
            let reg = self.inner.registry.read();
            (reg.len(), reg.user_count(), reg.observer_count())
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
            (connections, users, pending, dropped, observers),
            uptime,
        )
    }
}
