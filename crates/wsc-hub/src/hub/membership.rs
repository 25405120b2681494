//! Stored memberships (groups, ticket participants) on this node: applying a change to the
//! registry's index and publishing it to the other nodes, and loading a user's memberships
//! when the user's first connection here is admitted.
//!
//! The stores are the truth. A change is written to its store first, then to this node's
//! index, then published (`Envelope::Membership`), so the other nodes update the index of
//! their own users. The publish travels on the channel to every node, like group and ticket
//! sends, so a send made after a change on the same node is routed with the change
//! everywhere.

use super::*;

/// How often a load that raced with membership changes reads again before keeping what it
/// read (the next change fixes the index anyway).
const LOAD_ATTEMPTS: usize = 3;

impl Hub {
    /// Applies a stored change to this node's index and tells the other nodes.
    pub(super) async fn membership_changed(
        &self,
        kind: MembershipKind,
        id: &str,
        user_id: &str,
        joined: bool,
    ) {
        {
            let mut registry = self.inner.registry.write();
            if joined {
                registry.add_member(kind, id, user_id);
            } else {
                registry.remove_member(kind, id, user_id);
            }
        }
        self.publish(|hub| Envelope::Membership {
            origin: hub.node_id().to_owned(),
            kind,
            id: id.to_owned(),
            user_id: user_id.to_owned(),
            joined,
        })
        .await;
    }

    /// Loads a user's groups and tickets into this node's index (the user's first
    /// connection here was just admitted). A change seen while reading means the read may
    /// be stale: read again. A store that cannot be reached leaves the user without stored
    /// memberships here (logged and counted); connect-time bindings and every other route
    /// still work.
    pub(super) async fn load_memberships(&self, user_id: &str) {
        for _ in 0..LOAD_ATTEMPTS {
            let epoch = self.inner.registry.read().membership_epoch();
            // Both stores at once: one round trip of waiting on a shared store, not two.
            let (groups, tickets) = tokio::join!(
                self.group_store().groups_of(user_id),
                self.ticket_store().tickets_of(user_id)
            );
            let (groups, tickets) = match (groups, tickets) {
                (Ok(groups), Ok(tickets)) => (groups, tickets),
                (Err(e), _) => return self.load_failed(user_id, &e.to_string()),
                (_, Err(e)) => return self.load_failed(user_id, &e.to_string()),
            };
            let mut registry = self.inner.registry.write();
            if !registry.is_user_online(user_id) {
                return;
            }
            let raced = registry.membership_epoch() != epoch;
            registry.load_memberships(user_id, groups, tickets);
            if !raced {
                return;
            }
        }
    }

    fn load_failed(&self, user_id: &str, error: &str) {
        Counters::add(&self.inner.counters.cluster_errors, 1);
        tracing::warn!(
            user_id,
            error,
            "loading the user's groups and tickets failed"
        );
    }
}
