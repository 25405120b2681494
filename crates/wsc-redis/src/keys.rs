//! [`Keys`]: the name of every key and channel, derived from the prefix in one place.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `<p>{presence}:nodes` | sorted set | node id -> expiry (Redis server time, ms) |
//! | `<p>{presence}:node:<id>:users` | set | users with a connection on that node |
//! | `<p>{presence}:users` | sorted set | users with a connection on some node (score 0: name order) |
//! | `<p>{presence}:user_nodes` | hash | user -> how many node sets hold the user |
//! | `<p>{user:<id>}:offline` | list | the user's stored message ids, oldest first |
//! | `<p>{user:<id>}:offline:msgs` | hash | message id -> `<stored_at_ms>\|<json>` |
//! | `<p>{user:<id>}:seq` | string | the user's last sequence number |
//! | `<p>{user:<id>}:history` | sorted set | the user's resume window, scored by sequence number |
//! | `<p>{groups}:group:<id>` | set | a group's members |
//! | `<p>{groups}:user:<id>` | set | a user's groups |
//! | `<p>{presence}:desk:...` | hashes, sets, sorted sets | tickets, the queue, agents' capacity, load and nodes (`lua/tickets_common.lua`) |
//! | `<p>node:<id>` | shard channel | envelopes for that node only |
//! | `<p>broadcast` | shard channel | envelopes for every node |

/// Builds key and channel names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Keys {
    prefix: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_owned(),
        }
    }

    /// The prefix itself.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The node registry (one small sorted set for the whole cluster). Every presence key
    /// has the `{presence}` hash tag: one Redis Cluster slot holds them all, so one script
    /// can update them together.
    pub(crate) fn nodes(&self) -> String {
        format!("{}{{presence}}:nodes", self.prefix)
    }

    /// The users present on a node. The scripts build these names from
    /// [`node_users_prefix`](Self::node_users_prefix); this spells the scheme out for the
    /// test that pins it.
    #[cfg(test)]
    pub(crate) fn node_users(&self, node_id: &str) -> String {
        format!("{}{node_id}:users", self.node_users_prefix())
    }

    /// What every node's user set name starts with (the scripts build the names).
    pub(crate) fn node_users_prefix(&self) -> String {
        format!("{}{{presence}}:node:", self.prefix)
    }

    /// The users present on some node, in name order.
    pub(crate) fn online_users(&self) -> String {
        format!("{}{{presence}}:users", self.prefix)
    }

    /// How many node sets hold each present user.
    pub(crate) fn user_node_counts(&self) -> String {
        format!("{}{{presence}}:user_nodes", self.prefix)
    }

    /// A node's own channel.
    pub(crate) fn node_channel(&self, node_id: &str) -> String {
        format!("{}node:{node_id}", self.prefix)
    }

    /// The channel every node listens to.
    pub(crate) fn broadcast_channel(&self) -> String {
        format!("{}broadcast", self.prefix)
    }

    /// A user's offline message ids, in order. The `{user:<id>}` hash tag puts both offline
    /// keys of a user in one Redis Cluster slot, so one script can update them together.
    pub(crate) fn offline_list(&self, user_id: &str) -> String {
        format!("{}{{user:{user_id}}}:offline", self.prefix)
    }

    /// A user's last sequence number (same slot as the window: one script updates both).
    pub(crate) fn history_counter(&self, user_id: &str) -> String {
        format!("{}{{user:{user_id}}}:seq", self.prefix)
    }

    /// A user's resume window.
    pub(crate) fn history_window(&self, user_id: &str) -> String {
        format!("{}{{user:{user_id}}}:history", self.prefix)
    }

    /// What every ticket key starts with. Ticket keys share the registry's `{presence}`
    /// tag: the assignment script checks in the same step that an agent's node is alive.
    pub(crate) fn tickets_prefix(&self) -> String {
        format!("{}{{presence}}:desk:", self.prefix)
    }

    /// A group's members. Every membership key has the `{groups}` hash tag: one Redis
    /// Cluster slot holds them all, so one script checks both limits and adds a member to
    /// both sets atomically.
    pub(crate) fn group_members(&self, group_id: &str) -> String {
        format!("{}{{groups}}:group:{group_id}", self.prefix)
    }

    /// A user's groups (same slot as every group's members).
    pub(crate) fn user_groups(&self, user_id: &str) -> String {
        format!("{}{{groups}}:user:{user_id}", self.prefix)
    }

    /// A user's offline messages by id.
    pub(crate) fn offline_messages(&self, user_id: &str) -> String {
        format!("{}{{user:{user_id}}}:offline:msgs", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::Keys;

    #[test]
    fn every_name_starts_with_the_prefix() {
        let keys = Keys::new("t:");
        assert_eq!(keys.nodes(), "t:{presence}:nodes");
        assert_eq!(keys.node_users("n1"), "t:{presence}:node:n1:users");
        assert_eq!(keys.online_users(), "t:{presence}:users");
        assert_eq!(keys.user_node_counts(), "t:{presence}:user_nodes");
        assert_eq!(keys.node_channel("n1"), "t:node:n1");
        assert_eq!(keys.broadcast_channel(), "t:broadcast");
        assert_eq!(keys.offline_list("bob"), "t:{user:bob}:offline");
        assert_eq!(keys.offline_messages("bob"), "t:{user:bob}:offline:msgs");
        assert_eq!(keys.history_counter("bob"), "t:{user:bob}:seq");
        assert_eq!(keys.history_window("bob"), "t:{user:bob}:history");
        assert_eq!(keys.group_members("vip"), "t:{groups}:group:vip");
        assert_eq!(keys.user_groups("bob"), "t:{groups}:user:bob");
        assert_eq!(keys.tickets_prefix(), "t:{presence}:desk:");
    }
}
