//! Group membership operations: join (with the limits), leave, list, a user's groups,
//! disband; and the index of the members connected here that group routes read.
//!
//! The [`GroupStore`] is the truth (shared by every node in a cluster); this node's
//! registry indexes the memberships of the users connected here (`hub/membership.rs`).

use super::*;
use crate::groups::{GroupError, GroupLimits, GroupStore, JoinOutcome};

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
                self.membership_changed(MembershipKind::Group, group_id, user_id, true)
                    .await;
                self.emit_group_event(events::GROUP_JOINED, group_id, user_id);
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
            self.membership_changed(MembershipKind::Group, group_id, user_id, false)
                .await;
            self.emit_group_event(events::GROUP_LEFT, group_id, user_id);
        }
        Ok(removed)
    }

    /// Ends every membership of a group; returns the members it had, sorted. Connections
    /// that joined it at connect (`group_id` in the identity) keep their binding until they
    /// close.
    pub async fn disband_group(&self, group_id: &str) -> Result<Vec<String>, GroupError> {
        InvalidId::check(group_id, "group_id")?;
        let members = self.group_store().disband(group_id).await?;
        self.inner
            .registry
            .write()
            .remove_set(MembershipKind::Group, group_id);
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

    fn emit_group_event(&self, name: &'static str, group_id: &str, user_id: &str) {
        self.emit_event(|| HubEvent {
            user_id: user_id.to_owned(),
            detail: serde_json::json!({ "group_id": group_id }),
            ..HubEvent::new(name)
        });
    }
}
