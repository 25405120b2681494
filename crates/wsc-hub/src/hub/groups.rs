//! Group membership operations: join (with the limits), leave, list, a user's groups,
//! disband; and the index of the members connected here that group routes read.
//!
//! The [`GroupStore`] is the truth (shared by every node in a cluster); this node's
//! registry indexes the memberships of the users connected here. A change is written to the
//! store first, then to this node's index, then published to the other nodes, which update
//! their own index. A user's memberships are loaded into the index when the user's first
//! connection here is admitted.

use super::*;
use crate::groups::{GroupError, GroupLimits, GroupStore, JoinOutcome};

/// How often a load that raced with membership changes reads again before keeping what it
/// read (the next change fixes the index anyway).
const LOAD_ATTEMPTS: usize = 3;

impl Hub {
    /// Replaces the group store (the default is a [`MemoryGroups`](crate::MemoryGroups) of
    /// this hub's own). Give every node of a cluster the same store.
    pub fn set_group_store(&self, store: Arc<dyn GroupStore>) {
        *self.inner.groups.write() = store;
    }

    /// The group store in use.
    pub fn group_store(&self) -> Arc<dyn GroupStore> {
        self.inner.groups.read().clone()
    }

    /// Adds a user to a group, for every device of the user and across reconnects, until
    /// [`Hub::leave_group`] or [`Hub::disband_group`]. Returns whether the user was not a
    /// member yet. Refused with [`GroupError::GroupFull`] or [`GroupError::TooManyGroups`]
    /// when `max_group_size` or `max_groups_per_user` is reached (checked and added in one
    /// atomic step of the store, so concurrent joins never pass a limit).
    pub async fn join_group(&self, group_id: &str, user_id: &str) -> Result<bool, GroupError> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        let config = self.config();
        let limits = GroupLimits::new(config.max_group_size, config.max_groups_per_user);
        let outcome = self.group_store().join(group_id, user_id, limits).await?;
        match outcome {
            JoinOutcome::GroupFull => Err(GroupError::GroupFull {
                group_id: group_id.to_owned(),
                limit: limits.max_group_size,
            }),
            JoinOutcome::TooManyGroups => Err(GroupError::TooManyGroups {
                user_id: user_id.to_owned(),
                limit: limits.max_groups_per_user,
            }),
            JoinOutcome::AlreadyMember => Ok(false),
            _ => {
                self.membership_changed(group_id, user_id, true).await;
                Ok(true)
            }
        }
    }

    /// Removes a user from a group. Returns whether the user was a member.
    pub async fn leave_group(&self, group_id: &str, user_id: &str) -> Result<bool, GroupError> {
        InvalidId::check(group_id, "group_id")?;
        InvalidId::check(user_id, "user_id")?;
        let removed = self.group_store().leave(group_id, user_id).await?;
        if removed {
            self.membership_changed(group_id, user_id, false).await;
        }
        Ok(removed)
    }

    /// Ends every membership of a group; returns the members it had, sorted. Connections
    /// that joined it at connect (`group_id` in the identity) keep their binding until they
    /// close.
    pub async fn disband_group(&self, group_id: &str) -> Result<Vec<String>, GroupError> {
        InvalidId::check(group_id, "group_id")?;
        let members = self.group_store().disband(group_id).await?;
        self.inner.registry.write().disband_group(group_id);
        self.publish(|hub| Envelope::Disbanded {
            origin: hub.node_id().to_owned(),
            group_id: group_id.to_owned(),
        })
        .await;
        self.emit_event(|| HubEvent {
            detail: serde_json::json!({ "group_id": group_id, "members": members }),
            ..HubEvent::new(events::GROUP_DISBANDED)
        });
        Ok(members)
    }

    /// The members of a group, sorted: every member in the store (cluster-wide with a shared
    /// store), plus the users with a connection on this node that joined it at connect.
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<String>, GroupError> {
        InvalidId::check(group_id, "group_id")?;
        let mut members = self.group_store().members(group_id).await?;
        members.extend(
            self.inner
                .registry
                .read()
                .bound_members(group_id)
                .map(str::to_owned),
        );
        members.sort_unstable();
        members.dedup();
        Ok(members)
    }

    /// The groups a user belongs to, sorted (memberships in the store; bindings made at
    /// connect belong to their connection and are not listed).
    pub async fn user_groups(&self, user_id: &str) -> Result<Vec<String>, GroupError> {
        InvalidId::check(user_id, "user_id")?;
        Ok(self.group_store().groups_of(user_id).await?)
    }

    /// Applies a stored change to this node's index, tells the other nodes and emits the
    /// event.
    async fn membership_changed(&self, group_id: &str, user_id: &str, joined: bool) {
        {
            let mut registry = self.inner.registry.write();
            if joined {
                registry.join_group(group_id, user_id);
            } else {
                registry.leave_group(group_id, user_id);
            }
        }
        self.publish(|hub| Envelope::Membership {
            origin: hub.node_id().to_owned(),
            group_id: group_id.to_owned(),
            user_id: user_id.to_owned(),
            joined,
        })
        .await;
        let name = if joined {
            events::GROUP_JOINED
        } else {
            events::GROUP_LEFT
        };
        self.emit_event(|| HubEvent {
            user_id: user_id.to_owned(),
            detail: serde_json::json!({ "group_id": group_id }),
            ..HubEvent::new(name)
        });
    }

    /// Loads a user's memberships into this node's index (the user's first connection here
    /// was just admitted). A change seen while reading means the read may be stale: read
    /// again. A store that cannot be reached leaves the user without stored groups here
    /// (logged and counted); connect-time groups and every other route still work.
    pub(super) async fn load_user_groups(&self, user_id: &str) {
        for _ in 0..LOAD_ATTEMPTS {
            let epoch = self.inner.registry.read().membership_epoch();
            let groups = match self.group_store().groups_of(user_id).await {
                Ok(groups) => groups,
                Err(e) => {
                    Counters::add(&self.inner.counters.cluster_errors, 1);
                    tracing::warn!(user_id, error = %e, "loading the user's groups failed");
                    return;
                }
            };
            let mut registry = self.inner.registry.write();
            if !registry.is_user_online(user_id) {
                return;
            }
            let raced = registry.membership_epoch() != epoch;
            registry.set_user_groups(user_id, groups);
            if !raced {
                return;
            }
        }
    }
}
