//! The connection registry: every index the router needs, kept consistent under one lock.
//!
//! All mutation happens inside [`Registry::admit`] and [`Registry::remove`], called with the
//! hub's write lock held, so an admission (replacement, multi-login eviction, insertion) is
//! atomic: no reader ever sees a user with neither the old nor the new connection.
//!
//! A connection that is closing (kicked, timed out, slow, rate-limited) stays registered
//! until its transport finished the close, but the route lookups (`user`, `ticket`, `group`,
//! `by_client`, `all`) skip it: a message sent in that window takes the offline path
//! instead of being queued to a connection that will never write it.

use crate::fast_hash::{HashMap, HashSet};
use std::sync::Arc;

use crate::config::MultiLoginPolicy;
use crate::connection::{Connection, ConnectionId, DisconnectReason};
use crate::membership::{MemberIndex, MembershipKind};
use crate::route::{Route, Target};

/// The connections removed to admit a new one, with why.
pub(crate) type Evicted = Vec<(Arc<Connection>, DisconnectReason)>;

#[derive(Debug, Default)]
pub(crate) struct Registry {
    by_id: HashMap<ConnectionId, Arc<Connection>>,
    by_client: HashMap<String, ConnectionId>,
    /// Oldest first, so the multi-login policy can find the oldest connection.
    by_user: HashMap<String, Vec<ConnectionId>>,
    by_ticket: HashMap<String, Vec<ConnectionId>>,
    /// Groups joined by a connection at connect time; they end with the connection.
    group_conns: HashMap<String, HashSet<ConnectionId>>,
    /// The stored group memberships of the users connected here.
    groups: MemberIndex,
    /// The tickets the users connected here take part in (customer or agent).
    tickets: MemberIndex,
    /// Counts every membership change seen, applied or not, so a load that raced with one
    /// can tell and read again.
    membership_epoch: u64,
    /// The observer connections.
    observers: HashSet<ConnectionId>,
}

/// Why [`Registry::admit`] refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdmitError {
    NodeFull,
    UserLimit,
    /// The client id belongs to a live connection of another user.
    ClientIdInUse,
}

impl Registry {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn user_count(&self) -> usize {
        self.by_user.len()
    }

    /// Inserts `conn`, applying client-id replacement and the multi-login policy.
    pub(crate) fn admit(
        &mut self,
        conn: Arc<Connection>,
        policy: MultiLoginPolicy,
        max_per_user: usize,
        max_connections: usize,
    ) -> Result<Evicted, AdmitError> {
        let replaced = self.by_client.get(conn.client_id()).copied();
        // Only the same user may take over a client id; anyone else would be able to kick a
        // stranger off by copying its client id.
        if let Some(old) = replaced.and_then(|id| self.by_id.get(&id))
            && old.user_id() != conn.user_id()
        {
            return Err(AdmitError::ClientIdInUse);
        }
        let live = self.len() - usize::from(replaced.is_some());
        if max_connections > 0 && live >= max_connections {
            return Err(AdmitError::NodeFull);
        }
        let user_conns: Vec<ConnectionId> = self
            .by_user
            .get(conn.user_id())
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| Some(*id) != replaced)
                    .collect()
            })
            .unwrap_or_default();
        let over = if max_per_user == 0 || policy == MultiLoginPolicy::AllowAll {
            0
        } else {
            (user_conns.len() + 1).saturating_sub(max_per_user)
        };
        if over > 0 && policy == MultiLoginPolicy::KickNew {
            return Err(AdmitError::UserLimit);
        }
        let mut evicted = Vec::new();
        if let Some(old) = replaced.and_then(|id| self.remove(id)) {
            evicted.push((old, DisconnectReason::Replaced));
        }
        for id in user_conns.into_iter().take(over) {
            if let Some(old) = self.remove(id) {
                evicted.push((old, DisconnectReason::LoginElsewhere));
            }
        }
        let id = conn.id();
        self.by_client.insert(conn.client_id().to_owned(), id);
        self.by_user
            .entry(conn.user_id().to_owned())
            .or_default()
            .push(id);
        for ticket in &conn.identity().ticket_ids {
            self.by_ticket.entry(ticket.clone()).or_default().push(id);
        }
        // An observer's groups are its scope, not memberships: it gets copies instead.
        for group in conn.bound_groups() {
            self.group_conns
                .entry(group.clone())
                .or_default()
                .insert(id);
        }
        if conn.is_observer() {
            self.observers.insert(id);
        }
        self.by_id.insert(id, conn);
        Ok(evicted)
    }

    /// Removes a connection from every index. `None` when it was already gone (evicted).
    pub(crate) fn remove(&mut self, id: ConnectionId) -> Option<Arc<Connection>> {
        let conn = self.by_id.remove(&id)?;
        self.observers.remove(&id);
        if self.by_client.get(conn.client_id()) == Some(&id) {
            self.by_client.remove(conn.client_id());
        }
        remove_from_list(&mut self.by_user, conn.user_id(), id);
        for ticket in &conn.identity().ticket_ids {
            remove_from_list(&mut self.by_ticket, ticket, id);
        }
        for group in conn.bound_groups() {
            if let Some(set) = self.group_conns.get_mut(group) {
                set.remove(&id);
                if set.is_empty() {
                    self.group_conns.remove(group);
                }
            }
        }
        Some(conn)
    }

    /// The open connections a route selects, appended to `out`: the one place where a
    /// target and its filters meet the indexes.
    pub(crate) fn resolve(&self, route: &Route, out: &mut Vec<Arc<Connection>>) {
        match &route.target {
            Target::User { user_id } => collect(route, self.user(user_id), out),
            Target::Connection { client_id } => collect(route, self.by_client(client_id), out),
            Target::Ticket { ticket_id } => collect(route, self.ticket(ticket_id), out),
            Target::Group { group_id } => collect(route, self.group(group_id), out),
            Target::Observers {
                app_id,
                namespace,
                group_ids,
            } => collect(
                route,
                self.ids_of(&self.observers).filter(|conn| {
                    let id = conn.identity();
                    (id.app_id.is_empty() || id.app_id == *app_id)
                        && (id.namespace.is_empty() || id.namespace == *namespace)
                        && (id.group_ids.is_empty()
                            || group_ids.iter().any(|g| id.group_ids.contains(g)))
                }),
                out,
            ),
            Target::Broadcast => {
                out.reserve(self.len());
                collect(route, self.all(), out)
            }
        }
    }

    pub(crate) fn get(&self, id: ConnectionId) -> Option<&Arc<Connection>> {
        self.by_id.get(&id)
    }

    /// The connection with this client id, closing or not (admission and replacement).
    pub(crate) fn by_client_any(&self, client_id: &str) -> Option<&Arc<Connection>> {
        self.by_client
            .get(client_id)
            .and_then(|id| self.by_id.get(id))
    }

    /// The open connection with this client id (a route target).
    pub(crate) fn by_client(&self, client_id: &str) -> Option<&Arc<Connection>> {
        self.by_client_any(client_id).filter(|c| !c.is_closing())
    }

    pub(crate) fn user(&self, user_id: &str) -> impl Iterator<Item = &Arc<Connection>> {
        self.ids(self.by_user.get(user_id))
    }

    /// Every open connection (closing ones are no longer route targets).
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.by_id.values().filter(|c| !c.is_closing())
    }

    /// Every registered connection, closing or not (liveness and shutdown).
    pub(crate) fn all_registered(&self) -> impl Iterator<Item = &Arc<Connection>> {
        self.by_id.values()
    }

    pub(crate) fn users(&self) -> impl Iterator<Item = &String> {
        self.by_user.keys()
    }

    pub(crate) fn is_user_online(&self, user_id: &str) -> bool {
        self.by_user.contains_key(user_id)
    }

    /// Connections in a group: those that joined at connect plus every connection of the
    /// users who joined through the API, each once.
    pub(crate) fn group(&self, group_id: &str) -> Vec<&Arc<Connection>> {
        let direct = self.group_conns.get(group_id).into_iter().flatten();
        self.bound_and_members(direct, self.groups.users(group_id))
    }

    /// Connections on a ticket: those bound at connect plus every connection of its
    /// participants (customer and agent), each once.
    pub(crate) fn ticket(&self, ticket_id: &str) -> Vec<&Arc<Connection>> {
        let direct = self.by_ticket.get(ticket_id).into_iter().flatten();
        self.bound_and_members(direct, self.tickets.users(ticket_id))
    }

    /// The open connections among `bound` and those of `members`, each once. A connection
    /// belongs to one user, so the members' connections never repeat among themselves:
    /// only those also bound at connect are skipped, which spares a set of every recipient
    /// (and its growing) on each group send.
    fn bound_and_members<'a>(
        &'a self,
        bound: impl Iterator<Item = &'a ConnectionId>,
        members: impl Iterator<Item = &'a String>,
    ) -> Vec<&'a Arc<Connection>> {
        let bound: Vec<ConnectionId> = bound.copied().collect();
        // A few bound connections are searched in place; many go into a set once.
        let bound_set: Option<HashSet<ConnectionId>> =
            (bound.len() > 16).then(|| bound.iter().copied().collect());
        let is_bound = |id: &ConnectionId| match &bound_set {
            Some(set) => set.contains(id),
            None => bound.contains(id),
        };
        let open = |id: &ConnectionId| self.by_id.get(id).filter(|conn| !conn.is_closing());
        let mut out: Vec<&Arc<Connection>> = bound.iter().filter_map(open).collect();
        let via_users = members.filter_map(|user| self.by_user.get(user)).flatten();
        out.extend(via_users.filter(|id| !is_bound(id)).filter_map(open));
        out
    }

    fn index(&mut self, kind: MembershipKind) -> &mut MemberIndex {
        self.membership_epoch += 1;
        match kind {
            MembershipKind::Ticket => &mut self.tickets,
            _ => &mut self.groups,
        }
    }

    /// Records a stored membership: indexed when the user's memberships are loaded here.
    pub(crate) fn add_member(&mut self, kind: MembershipKind, set: &str, user_id: &str) {
        self.index(kind).add(set, user_id);
    }

    /// Forgets a stored membership.
    pub(crate) fn remove_member(&mut self, kind: MembershipKind, set: &str, user_id: &str) {
        self.index(kind).remove(set, user_id);
    }

    /// Forgets every stored membership of a group or ticket.
    pub(crate) fn remove_set(&mut self, kind: MembershipKind, set: &str) {
        self.index(kind).remove_set(set);
    }

    /// How many membership changes this registry has seen.
    pub(crate) fn membership_epoch(&self) -> u64 {
        self.membership_epoch
    }

    /// Indexes a user's stored groups and tickets, replacing what was indexed.
    pub(crate) fn load_memberships(
        &mut self,
        user_id: &str,
        groups: Vec<String>,
        tickets: Vec<String>,
    ) {
        self.groups.load(user_id, groups);
        self.tickets.load(user_id, tickets);
    }

    /// Drops a user's memberships from the index (the user's last connection left).
    pub(crate) fn forget_memberships(&mut self, user_id: &str) {
        self.groups.forget(user_id);
        self.tickets.forget(user_id);
    }

    /// How many observer connections are registered here.
    pub(crate) fn observer_count(&self) -> usize {
        self.observers.len()
    }

    /// The open connections among these ids.
    fn ids_of<'a>(
        &'a self,
        ids: &'a HashSet<ConnectionId>,
    ) -> impl Iterator<Item = &'a Arc<Connection>> + 'a {
        ids.iter()
            .filter_map(|id| self.by_id.get(id))
            .filter(|c| !c.is_closing())
    }

    /// Whether a user takes part in a ticket (its customer or agent), as indexed here.
    pub(crate) fn is_ticket_participant(&self, ticket_id: &str, user_id: &str) -> bool {
        self.tickets.contains(ticket_id, user_id)
    }

    /// Whether a user belongs to a group: through the API, or with a connection that joined
    /// it at connect.
    pub(crate) fn is_group_member(&self, group_id: &str, user_id: &str) -> bool {
        self.groups.contains(group_id, user_id)
            || self
                .ids(self.by_user.get(user_id))
                .any(|c| c.bound_groups().iter().any(|g| g == group_id))
    }

    /// Users with a connection here that joined the group at connect (`group_id`).
    pub(crate) fn bound_members(&self, group_id: &str) -> impl Iterator<Item = &str> {
        self.group_conns
            .get(group_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .map(|conn| conn.user_id())
    }

    fn ids<'a>(
        &'a self,
        ids: Option<&'a Vec<ConnectionId>>,
    ) -> impl Iterator<Item = &'a Arc<Connection>> + 'a {
        ids.into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
            .filter(|c| !c.is_closing())
    }
}

fn remove_from_list(map: &mut HashMap<String, Vec<ConnectionId>>, key: &str, id: ConnectionId) {
    if let Some(list) = map.get_mut(key) {
        list.retain(|x| *x != id);
        if list.is_empty() {
            map.remove(key);
        }
    }
}

/// Appends the connections a route admits. A route without scope or exclusions (the common
/// broadcast) admits everyone, so the per-connection check is skipped on the hot path.
fn collect<'a>(
    route: &Route,
    connections: impl IntoIterator<Item = &'a Arc<Connection>>,
    out: &mut Vec<Arc<Connection>>,
) {
    if route.is_unfiltered() {
        out.extend(connections.into_iter().cloned());
    } else {
        out.extend(
            connections
                .into_iter()
                .filter(|c| {
                    let id = c.identity();
                    route.admits(&id.user_id, &id.client_id, &id.app_id, &id.namespace)
                })
                .cloned(),
        );
    }
}
