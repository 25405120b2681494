//! Stored memberships as this node indexes them: [`MembershipKind`] (a group or a ticket)
//! and `MemberIndex`, the users of each group or ticket among the users connected here.
//!
//! The stores (`GroupStore`, `TicketStore`) are the truth, shared by every node in a
//! cluster. A node indexes the memberships of its own users only: loaded when a user's first
//! connection is admitted, updated by changes from any node, dropped with the user's last
//! connection. Routes read the index, so a group or ticket send never waits for a store.

use serde::{Deserialize, Serialize};

use crate::fast_hash::{HashMap, HashSet};

/// What a stored membership is of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MembershipKind {
    /// A group (`Hub::join_group`).
    #[default]
    Group,
    /// A ticket's participants: its customer and its agent (`Hub::open_ticket`).
    Ticket,
}

/// The users of each set (group or ticket) and the sets of each user, for the users whose
/// memberships are loaded here.
#[derive(Debug, Default)]
pub(crate) struct MemberIndex {
    users_of: HashMap<String, HashSet<String>>,
    sets_of: HashMap<String, HashSet<String>>,
}

impl MemberIndex {
    /// Adds a membership of a loaded user (others are read from the store when they come).
    pub(crate) fn add(&mut self, set: &str, user: &str) {
        if let Some(sets) = self.sets_of.get_mut(user) {
            sets.insert(set.to_owned());
            self.users_of
                .entry(set.to_owned())
                .or_default()
                .insert(user.to_owned());
        }
    }

    pub(crate) fn remove(&mut self, set: &str, user: &str) {
        if let Some(sets) = self.sets_of.get_mut(user) {
            sets.remove(set);
            remove_from_set(&mut self.users_of, set, user);
        }
    }

    /// Ends every membership of a set.
    pub(crate) fn remove_set(&mut self, set: &str) {
        for user in self.users_of.remove(set).unwrap_or_default() {
            if let Some(sets) = self.sets_of.get_mut(&user) {
                sets.remove(set);
            }
        }
    }

    /// Replaces what is indexed of a user with what the store holds.
    pub(crate) fn load(&mut self, user: &str, sets: Vec<String>) {
        self.forget(user);
        for set in &sets {
            self.users_of
                .entry(set.clone())
                .or_default()
                .insert(user.to_owned());
        }
        self.sets_of
            .insert(user.to_owned(), sets.into_iter().collect());
    }

    /// Drops a user (its last connection here closed).
    pub(crate) fn forget(&mut self, user: &str) {
        for set in self.sets_of.remove(user).unwrap_or_default() {
            remove_from_set(&mut self.users_of, &set, user);
        }
    }

    /// The indexed users of a set.
    pub(crate) fn users(&self, set: &str) -> impl Iterator<Item = &String> {
        self.users_of.get(set).into_iter().flatten()
    }

    pub(crate) fn contains(&self, set: &str, user: &str) -> bool {
        self.users_of
            .get(set)
            .is_some_and(|users| users.contains(user))
    }
}

fn remove_from_set(map: &mut HashMap<String, HashSet<String>>, key: &str, value: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(value);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loaded_users_are_indexed_and_forgetting_clears_both_sides() {
        let mut index = MemberIndex::default();
        index.add("g", "ann");
        assert_eq!(index.users("g").count(), 0, "ann is not loaded here");
        index.load("ann", vec!["g".into(), "h".into()]);
        index.load("bob", Vec::new());
        index.add("g", "bob");
        assert!(index.contains("g", "ann") && index.contains("g", "bob"));
        index.remove("h", "ann");
        assert!(!index.contains("h", "ann"));
        index.remove_set("g");
        assert_eq!(index.users("g").count(), 0);
        index.load("ann", vec!["k".into()]);
        index.forget("ann");
        assert!(index.users_of.is_empty());
        assert_eq!(index.sets_of.len(), 1, "bob stays, with no sets");
    }
}
