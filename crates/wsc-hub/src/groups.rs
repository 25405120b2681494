//! Group membership: the [`GroupStore`] trait (the seam a cluster backs with shared storage),
//! [`MemoryGroups`] (one process's, the default), the limits a join respects and
//! [`GroupError`].
//!
//! Membership belongs to a *user*, not to a connection: every device of a member receives
//! the group's messages, and membership outlives connections until the user leaves or the
//! group is disbanded. The store is the truth; each hub keeps an index of the memberships of
//! the users connected to it (loaded when a user's first connection arrives, updated by the
//! membership envelopes of other nodes), so a group send never waits for the store.
//!
//! A join checks both limits and adds the member in one atomic step, so two concurrent joins
//! (on one node or on two nodes sharing a store) never take a group past
//! `max_group_size` or a user past `max_groups_per_user`.

use std::collections::BTreeSet;

use parking_lot::Mutex;

use crate::callbacks::BoxFuture;
use crate::fast_hash::HashMap;
use crate::offline::StoreError;
use crate::report::InvalidId;

/// The limits a join must respect; 0 means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GroupLimits {
    /// Members a group may have.
    pub max_group_size: usize,
    /// Groups a user may belong to.
    pub max_groups_per_user: usize,
}

impl GroupLimits {
    /// Limits of `max_group_size` members per group and `max_groups_per_user` groups per
    /// user (0 = unlimited).
    pub fn new(max_group_size: usize, max_groups_per_user: usize) -> Self {
        GroupLimits {
            max_group_size,
            max_groups_per_user,
        }
    }
}

/// What a join did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JoinOutcome {
    /// The user became a member.
    Joined,
    /// The user was a member already; nothing changed.
    AlreadyMember,
    /// The group has `max_group_size` members; nothing changed.
    GroupFull,
    /// The user belongs to `max_groups_per_user` groups; nothing changed.
    TooManyGroups,
}

/// Why a group operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// An id argument was blank or held control characters.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// The group already has the most members allowed.
    #[error("group {group_id} is full: at most {limit} members")]
    GroupFull {
        /// The group.
        group_id: String,
        /// `max_group_size`.
        limit: usize,
    },
    /// The user already belongs to the most groups allowed.
    #[error("user {user_id} is in too many groups: at most {limit}")]
    TooManyGroups {
        /// The user.
        user_id: String,
        /// `max_groups_per_user`.
        limit: usize,
    },
    /// The group store could not be reached; nothing changed.
    #[error("group store unavailable: {0}")]
    Unavailable(String),
}

impl GroupError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            GroupError::InvalidId(e) => e.code(),
            GroupError::GroupFull { .. } => "group_full",
            GroupError::TooManyGroups { .. } => "too_many_groups",
            GroupError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for GroupError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => GroupError::Unavailable(reason),
        }
    }
}

/// Where group membership is kept. Every method is one atomic step of the store.
pub trait GroupStore: Send + Sync + 'static {
    /// Adds `user_id` to `group_id` unless the user is a member already or a limit is
    /// reached, checking and adding atomically.
    fn join(
        &self,
        group_id: &str,
        user_id: &str,
        limits: GroupLimits,
    ) -> BoxFuture<Result<JoinOutcome, StoreError>>;
    /// Removes `user_id` from `group_id`; whether it was a member.
    fn leave(&self, group_id: &str, user_id: &str) -> BoxFuture<Result<bool, StoreError>>;
    /// The members of a group, sorted.
    fn members(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>>;
    /// The groups of a user, sorted.
    fn groups_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>>;
    /// Removes every member of a group; the members it had, sorted.
    fn disband(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>>;
}

/// Membership in this process's memory: the default store. Give every hub of a process the
/// same `Arc` to share it (tests, an in-process cluster); nodes in several processes share
/// a Redis store instead.
#[derive(Debug, Default)]
pub struct MemoryGroups {
    inner: Mutex<Memberships>,
}

#[derive(Debug, Default)]
struct Memberships {
    members: HashMap<String, BTreeSet<String>>,
    groups: HashMap<String, BTreeSet<String>>,
}

impl MemoryGroups {
    /// An empty store.
    pub fn new() -> Self {
        MemoryGroups::default()
    }

    fn join_now(&self, group_id: &str, user_id: &str, limits: GroupLimits) -> JoinOutcome {
        let mut inner = self.inner.lock();
        let size = inner.members.get(group_id).map_or(0, BTreeSet::len);
        if inner
            .members
            .get(group_id)
            .is_some_and(|m| m.contains(user_id))
        {
            return JoinOutcome::AlreadyMember;
        }
        if limits.max_group_size > 0 && size >= limits.max_group_size {
            return JoinOutcome::GroupFull;
        }
        let count = inner.groups.get(user_id).map_or(0, BTreeSet::len);
        if limits.max_groups_per_user > 0 && count >= limits.max_groups_per_user {
            return JoinOutcome::TooManyGroups;
        }
        let inner = &mut *inner;
        inner
            .members
            .entry(group_id.to_owned())
            .or_default()
            .insert(user_id.to_owned());
        inner
            .groups
            .entry(user_id.to_owned())
            .or_default()
            .insert(group_id.to_owned());
        JoinOutcome::Joined
    }

    fn leave_now(&self, group_id: &str, user_id: &str) -> bool {
        let mut inner = self.inner.lock();
        let removed = remove(&mut inner.members, group_id, user_id);
        remove(&mut inner.groups, user_id, group_id);
        removed
    }

    fn disband_now(&self, group_id: &str) -> Vec<String> {
        let mut inner = self.inner.lock();
        let members = inner.members.remove(group_id).unwrap_or_default();
        for user in &members {
            remove(&mut inner.groups, user, group_id);
        }
        members.into_iter().collect()
    }

    fn list(&self, pick: impl FnOnce(&Memberships) -> Option<&BTreeSet<String>>) -> Vec<String> {
        pick(&self.inner.lock())
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// Removes `value` from the set at `key`, dropping the set when it empties.
fn remove(map: &mut HashMap<String, BTreeSet<String>>, key: &str, value: &str) -> bool {
    let Some(set) = map.get_mut(key) else {
        return false;
    };
    let removed = set.remove(value);
    if set.is_empty() {
        map.remove(key);
    }
    removed
}

impl GroupStore for MemoryGroups {
    fn join(
        &self,
        group_id: &str,
        user_id: &str,
        limits: GroupLimits,
    ) -> BoxFuture<Result<JoinOutcome, StoreError>> {
        let outcome = self.join_now(group_id, user_id, limits);
        Box::pin(async move { Ok(outcome) })
    }

    fn leave(&self, group_id: &str, user_id: &str) -> BoxFuture<Result<bool, StoreError>> {
        let removed = self.leave_now(group_id, user_id);
        Box::pin(async move { Ok(removed) })
    }

    fn members(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let members = self.list(|m| m.members.get(group_id));
        Box::pin(async move { Ok(members) })
    }

    fn groups_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let groups = self.list(|m| m.groups.get(user_id));
        Box::pin(async move { Ok(groups) })
    }

    fn disband(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let members = self.disband_now(group_id);
        Box::pin(async move { Ok(members) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_respects_both_limits_and_changes_nothing_when_refused() {
        let store = MemoryGroups::new();
        let limits = GroupLimits::new(2, 2);
        assert_eq!(store.join_now("g", "a", limits), JoinOutcome::Joined);
        assert_eq!(store.join_now("g", "a", limits), JoinOutcome::AlreadyMember);
        assert_eq!(store.join_now("g", "b", limits), JoinOutcome::Joined);
        assert_eq!(store.join_now("g", "c", limits), JoinOutcome::GroupFull);
        assert_eq!(store.join_now("h", "a", limits), JoinOutcome::Joined);
        assert_eq!(store.join_now("i", "a", limits), JoinOutcome::TooManyGroups);
        assert_eq!(store.list(|m| m.members.get("g")), ["a", "b"]);
        assert_eq!(store.list(|m| m.groups.get("a")), ["g", "h"]);
        assert!(store.list(|m| m.groups.get("c")).is_empty());
        // A member already in the group is never refused by a limit.
        assert_eq!(
            store.join_now("g", "b", GroupLimits::new(1, 1)),
            JoinOutcome::AlreadyMember
        );
    }

    #[test]
    fn leaving_and_disbanding_update_both_sides() {
        let store = MemoryGroups::new();
        let open = GroupLimits::default();
        for (g, u) in [("g", "a"), ("g", "b"), ("h", "a")] {
            assert_eq!(store.join_now(g, u, open), JoinOutcome::Joined);
        }
        assert!(store.leave_now("h", "a"));
        assert!(!store.leave_now("h", "a"));
        assert_eq!(store.disband_now("g"), ["a", "b"]);
        assert!(store.list(|m| m.groups.get("a")).is_empty());
        assert!(store.inner.lock().members.is_empty());
        assert!(store.inner.lock().groups.is_empty());
    }
}
