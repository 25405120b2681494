//! [`Keys`]: the name of every key and channel, derived from the prefix in one place.
//!
//! | name | kind | what |
//! |---|---|---|
//! | `<p>nodes` | sorted set | node id -> expiry (Redis server time, ms) |
//! | `<p>node:<id>:users` | set | users with a connection on that node (key TTL) |
//! | `<p>{user:<id>}:offline` | list | the user's stored message ids, oldest first |
//! | `<p>{user:<id>}:offline:msgs` | hash | message id -> `<stored_at_ms>\|<json>` |
//! | `<p>{user:<id>}:seq` | string | the user's last sequence number |
//! | `<p>{user:<id>}:history` | sorted set | the user's resume window, scored by sequence number |
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

    /// The node registry (one small sorted set for the whole cluster).
    pub(crate) fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    /// The users present on a node.
    pub(crate) fn node_users(&self, node_id: &str) -> String {
        format!("{}node:{node_id}:users", self.prefix)
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
        assert_eq!(keys.nodes(), "t:nodes");
        assert_eq!(keys.node_users("n1"), "t:node:n1:users");
        assert_eq!(keys.node_channel("n1"), "t:node:n1");
        assert_eq!(keys.broadcast_channel(), "t:broadcast");
        assert_eq!(keys.offline_list("bob"), "t:{user:bob}:offline");
        assert_eq!(keys.offline_messages("bob"), "t:{user:bob}:offline:msgs");
        assert_eq!(keys.history_counter("bob"), "t:{user:bob}:seq");
        assert_eq!(keys.history_window("bob"), "t:{user:bob}:history");
    }
}
