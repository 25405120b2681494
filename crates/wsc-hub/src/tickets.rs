//! Tickets (customer-service conversations): [`Ticket`] and its states, the
//! [`TicketStore`] trait (the seam a cluster backs with shared storage),
//! [`MemoryTickets`] (one process's, the default) and [`TicketError`].
//!
//! A ticket is opened for a customer and is `queued` until an agent takes it, then
//! `assigned` to one agent, until it is `closed` (by either side, by the API, or after
//! `ticket_timeout` without activity). Every state change is one atomic step of the store:
//! assignment picks the least-loaded available agent under `max_tickets_per_agent`, so two
//! nodes opening tickets at the same moment never give an agent more than its capacity. A
//! queued ticket is taken, VIP first and then oldest first, as soon as an agent has room:
//! when an agent becomes available, and when one of its tickets closes or is transferred
//! away.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::callbacks::BoxFuture;
use crate::fast_hash::HashMap;
use crate::offline::StoreError;
use crate::report::InvalidId;

/// How long a closed ticket can still be read (`get`) before the store forgets it.
pub const CLOSED_RETENTION_MS: u64 = 3_600_000;

/// Where a ticket is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub enum TicketState {
    /// Waiting for an agent with room.
    Queued,
    /// With one agent.
    Assigned,
    /// Over; it takes no part in routing any more.
    Closed,
}

/// A ticket as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct Ticket {
    /// Its id (the `ticket_id` of its messages).
    pub ticket_id: String,
    /// The customer's user id.
    pub customer_id: String,
    /// The agent's user id (empty while queued).
    pub agent_id: String,
    /// Where it is in its life.
    pub state: TicketState,
    /// Served before the other queued tickets.
    pub vip: bool,
    /// The department (skill) it asks for: only agents with it take it (empty: any agent).
    #[serde(default)]
    pub department: String,
    /// When it was opened (Unix time, ms).
    pub created_at_ms: u64,
    /// Its last change or activity (Unix time, ms).
    pub updated_at_ms: u64,
    /// Why it closed (`closed`: by a participant or the API; `timeout`: no activity).
    pub close_reason: String,
}

/// A ticket to open.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewTicket {
    /// Its id (generated when empty).
    pub ticket_id: String,
    /// The customer's user id.
    pub customer_id: String,
    /// Served before the other queued tickets.
    pub vip: bool,
    /// The department (skill) it asks for (empty: any agent).
    pub department: String,
}

impl NewTicket {
    /// A ticket for `customer_id`, with a generated id.
    pub fn new(customer_id: impl Into<String>) -> Self {
        NewTicket {
            ticket_id: String::new(),
            customer_id: customer_id.into(),
            vip: false,
            department: String::new(),
        }
    }

    /// For agents of this department only.
    pub fn with_department(mut self, department: impl Into<String>) -> Self {
        self.department = department.into();
        self
    }

    /// With this id.
    pub fn with_id(mut self, ticket_id: impl Into<String>) -> Self {
        self.ticket_id = ticket_id.into();
        self
    }

    /// Served first.
    pub fn vip(mut self, vip: bool) -> Self {
        self.vip = vip;
        self
    }
}

/// An agent becoming available.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AgentProfile {
    /// The agent's user id.
    pub agent_id: String,
    /// The node where it connected.
    pub node_id: String,
    /// Tickets it takes at most.
    pub capacity: usize,
    /// The departments it serves (its connection's groups), besides tickets of none.
    pub skills: Vec<String>,
}

impl AgentProfile {
    /// An agent on `node_id` taking up to `capacity` tickets, with no department.
    pub fn new(agent_id: impl Into<String>, node_id: impl Into<String>, capacity: usize) -> Self {
        AgentProfile {
            agent_id: agent_id.into(),
            node_id: node_id.into(),
            capacity,
            skills: Vec::new(),
        }
    }

    /// Serving these departments too.
    pub fn with_skills<I: IntoIterator<Item = S>, S: Into<String>>(mut self, skills: I) -> Self {
        self.skills = skills.into_iter().map(Into::into).collect();
        self
    }
}

/// An agent's workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[non_exhaustive]
pub struct AgentLoad {
    /// The agent's user id.
    pub agent_id: String,
    /// Tickets assigned to the agent now.
    pub load: usize,
    /// The most it takes (`max_tickets_per_agent` when it became available).
    pub capacity: usize,
    /// Whether it is connected somewhere and takes new tickets.
    pub available: bool,
    /// The departments it serves (besides tickets of none), sorted.
    #[serde(default)]
    pub skills: Vec<String>,
}

/// What one store step changed: the ticket acted on, the agent it had before, and the
/// queued tickets that agent took in the same step because it had room again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TicketChange {
    /// The ticket after the change.
    pub ticket: Ticket,
    /// Its agent before the change (empty when it had none).
    pub previous_agent: String,
    /// Queued tickets assigned in the same step, in the order they were taken.
    pub assigned: Vec<Ticket>,
}

impl TicketChange {
    /// A change of `ticket` alone (no previous agent, nothing else assigned).
    pub fn new(ticket: Ticket) -> Self {
        TicketChange {
            ticket,
            previous_agent: String::new(),
            assigned: Vec::new(),
        }
    }
}

/// Why a ticket operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TicketError {
    /// An id argument was blank or held control characters.
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    /// No ticket has this id.
    #[error("ticket {0} not found")]
    NotFound(String),
    /// A ticket with this id exists already.
    #[error("ticket {0} exists already")]
    AlreadyExists(String),
    /// The ticket is closed.
    #[error("ticket {0} is closed")]
    Closed(String),
    /// The agent is not connected anywhere.
    #[error("agent {0} is not available")]
    AgentUnavailable(String),
    /// The agent has as many tickets as it takes.
    #[error("agent {agent_id} is full: at most {limit} tickets")]
    AgentFull {
        /// The agent.
        agent_id: String,
        /// Its capacity.
        limit: usize,
    },
    /// The user may not do this to the ticket (a client frame of someone who is not its
    /// customer or agent, or an agent opening a ticket).
    #[error("{user_id} may not do this to ticket {ticket_id}")]
    Forbidden {
        /// The ticket (empty when opening).
        ticket_id: String,
        /// The user.
        user_id: String,
    },
    /// The ticket store could not be reached; nothing changed.
    #[error("ticket store unavailable: {0}")]
    Unavailable(String),
}

impl TicketError {
    /// Stable machine code.
    pub fn code(&self) -> &'static str {
        match self {
            TicketError::InvalidId(e) => e.code(),
            TicketError::NotFound(_) => "ticket_not_found",
            TicketError::AlreadyExists(_) => "ticket_exists",
            TicketError::Closed(_) => "ticket_closed",
            TicketError::AgentUnavailable(_) => "agent_unavailable",
            TicketError::AgentFull { .. } => "agent_full",
            TicketError::Forbidden { .. } => "ticket_forbidden",
            TicketError::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for TicketError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(reason) => TicketError::Unavailable(reason),
        }
    }
}

/// Where tickets and agents' workloads are kept. Every method is one atomic step; `now_ms`
/// is the caller's clock (Unix ms), which a store with a clock of its own may ignore.
pub trait TicketStore: Send + Sync + 'static {
    /// Opens a ticket: assigned to the least-loaded available agent with room when
    /// `auto_assign`, else queued.
    fn open(
        &self,
        ticket: NewTicket,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>>;
    /// An agent connected on `node_id`: it takes tickets up to `capacity`, of no department
    /// or of one of its `skills` (added to those it had); queued tickets it can take are
    /// assigned to it now (returned in order) when `auto_assign`.
    fn agent_available(
        &self,
        agent: AgentProfile,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<Vec<Ticket>, TicketError>>;
    /// The agent's last connection on `node_id` closed. Its tickets stay with it.
    fn agent_unavailable(
        &self,
        agent_id: &str,
        node_id: &str,
    ) -> BoxFuture<Result<(), TicketError>>;
    /// Moves an open ticket to another available agent with room.
    fn transfer(
        &self,
        ticket_id: &str,
        agent_id: &str,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>>;
    /// Closes an open ticket with a reason.
    fn close(
        &self,
        ticket_id: &str,
        reason: &str,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>>;
    /// Records a message sent to an open ticket: keeps its frame among the ticket's last
    /// `keep` (0: none) and postpones the ticket's timeout. Nothing for another id.
    fn record(
        &self,
        ticket_id: &str,
        frame: String,
        keep: usize,
        now_ms: u64,
    ) -> BoxFuture<Result<(), TicketError>>;
    /// The frames kept by [`record`](Self::record), oldest first.
    fn history(&self, ticket_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>>;
    /// Closes the open tickets without activity for `timeout_ms` (0: none), reason
    /// `timeout`, and forgets tickets closed more than [`CLOSED_RETENTION_MS`] ago.
    fn expire(
        &self,
        timeout_ms: u64,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<Vec<TicketChange>, TicketError>>;
    /// A ticket by id.
    fn get(&self, ticket_id: &str) -> BoxFuture<Result<Option<Ticket>, TicketError>>;
    /// The open tickets a user takes part in (as customer or agent), sorted.
    fn tickets_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>>;
    /// Every agent that ever became available, by id.
    fn agents(&self) -> BoxFuture<Result<Vec<AgentLoad>, TicketError>>;
    /// The queued tickets, in the order agents take them.
    fn queue(&self) -> BoxFuture<Result<Vec<Ticket>, TicketError>>;
}

/// Tickets in this process's memory: the default store. Give every hub of a process the
/// same `Arc` to share it; nodes in several processes share a Redis store instead.
#[derive(Debug, Default)]
pub struct MemoryTickets {
    inner: Mutex<Desk>,
}

#[derive(Debug, Default)]
struct Desk {
    tickets: HashMap<String, Ticket>,
    /// Queue order: (not VIP, opened at, sequence) -> ticket id.
    queue: BTreeMap<(bool, u64, u64), String>,
    next: u64,
    agents: BTreeMap<String, Agent>,
    /// The last messages of each known ticket, oldest first.
    history: HashMap<String, std::collections::VecDeque<String>>,
}

#[derive(Debug, Default)]
struct Agent {
    load: usize,
    capacity: usize,
    /// Nodes where the agent is connected.
    nodes: Vec<String>,
    skills: std::collections::BTreeSet<String>,
}

impl Agent {
    fn takes(&self, department: &str) -> bool {
        department.is_empty() || self.skills.contains(department)
    }
}

impl Desk {
    fn open_ticket(&mut self, id: &str) -> Result<&mut Ticket, TicketError> {
        match self.tickets.get_mut(id) {
            None => Err(TicketError::NotFound(id.to_owned())),
            Some(t) if t.state == TicketState::Closed => Err(TicketError::Closed(id.to_owned())),
            Some(t) => Ok(t),
        }
    }

    /// The least-loaded available agent with room for a ticket of `department` (ties: by
    /// id).
    fn pick_agent(&self, department: &str) -> Option<String> {
        self.agents
            .iter()
            .filter(|(_, a)| !a.nodes.is_empty() && a.load < a.capacity && a.takes(department))
            .min_by_key(|(id, a)| (a.load, (*id).clone()))
            .map(|(id, _)| id.clone())
    }

    fn assign(&mut self, ticket_id: &str, agent_id: &str, now_ms: u64) -> Ticket {
        if let Some(agent) = self.agents.get_mut(agent_id) {
            agent.load += 1;
        }
        let ticket = self.tickets.get_mut(ticket_id).expect("ticket exists");
        ticket.state = TicketState::Assigned;
        ticket.agent_id = agent_id.to_owned();
        ticket.updated_at_ms = now_ms;
        ticket.clone()
    }

    /// Gives `agent_id` queued tickets while it has room.
    fn drain_to(&mut self, agent_id: &str, now_ms: u64) -> Vec<Ticket> {
        let mut taken = Vec::new();
        while let Some(agent) = self.agents.get(agent_id)
            && !agent.nodes.is_empty()
            && agent.load < agent.capacity
            && let Some(key) = self
                .queue
                .iter()
                .find(|(_, id)| agent.takes(&self.tickets[id.as_str()].department))
                .map(|(key, _)| *key)
            && let Some(ticket_id) = self.queue.remove(&key)
        {
            taken.push(self.assign(&ticket_id, agent_id, now_ms));
        }
        taken
    }

    /// Frees the place a ticket took with its agent (none when it had no agent); with
    /// `auto`, the place takes the next queued ticket the agent can serve.
    fn release(&mut self, agent_id: &str, auto: bool, now_ms: u64) -> Vec<Ticket> {
        let Some(agent) = self.agents.get_mut(agent_id) else {
            return Vec::new();
        };
        agent.load = agent.load.saturating_sub(1);
        if auto {
            self.drain_to(agent_id, now_ms)
        } else {
            Vec::new()
        }
    }

    fn close(
        &mut self,
        id: &str,
        reason: &str,
        auto: bool,
        now_ms: u64,
    ) -> Result<TicketChange, TicketError> {
        let ticket = self.open_ticket(id)?;
        let previous_agent = ticket.agent_id.clone();
        let queued = ticket.state == TicketState::Queued;
        ticket.state = TicketState::Closed;
        ticket.close_reason = reason.to_owned();
        ticket.updated_at_ms = now_ms;
        let ticket = ticket.clone();
        if queued {
            self.queue.retain(|_, t| t != id);
        }
        let assigned = self.release(&previous_agent, auto, now_ms);
        Ok(TicketChange {
            ticket,
            previous_agent,
            assigned,
        })
    }
}

impl MemoryTickets {
    /// An empty store.
    pub fn new() -> Self {
        MemoryTickets::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut Desk) -> T) -> BoxFuture<T>
    where
        T: Send + 'static,
    {
        let out = f(&mut self.inner.lock());
        Box::pin(async move { out })
    }
}

impl TicketStore for MemoryTickets {
    fn open(
        &self,
        new: NewTicket,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        self.with(|desk| {
            if desk.tickets.contains_key(&new.ticket_id) {
                return Err(TicketError::AlreadyExists(new.ticket_id));
            }
            let ticket = Ticket {
                ticket_id: new.ticket_id.clone(),
                customer_id: new.customer_id,
                agent_id: String::new(),
                state: TicketState::Queued,
                vip: new.vip,
                department: new.department,
                created_at_ms: now_ms,
                updated_at_ms: now_ms,
                close_reason: String::new(),
            };
            desk.tickets.insert(new.ticket_id.clone(), ticket.clone());
            let agent = auto_assign
                .then(|| desk.pick_agent(&ticket.department))
                .flatten();
            let ticket = match agent {
                Some(agent) => desk.assign(&new.ticket_id, &agent, now_ms),
                None => {
                    desk.next += 1;
                    let key = (!new.vip, now_ms, desk.next);
                    desk.queue.insert(key, new.ticket_id);
                    ticket
                }
            };
            Ok(TicketChange {
                ticket,
                previous_agent: String::new(),
                assigned: Vec::new(),
            })
        })
    }

    fn agent_available(
        &self,
        profile: AgentProfile,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<Vec<Ticket>, TicketError>> {
        self.with(|desk| {
            let agent = desk.agents.entry(profile.agent_id.clone()).or_default();
            agent.capacity = profile.capacity;
            agent.skills.extend(profile.skills);
            if !agent.nodes.contains(&profile.node_id) {
                agent.nodes.push(profile.node_id);
            }
            Ok(if auto_assign {
                desk.drain_to(&profile.agent_id, now_ms)
            } else {
                Vec::new()
            })
        })
    }

    fn agent_unavailable(
        &self,
        agent_id: &str,
        node_id: &str,
    ) -> BoxFuture<Result<(), TicketError>> {
        self.with(|desk| {
            if let Some(agent) = desk.agents.get_mut(agent_id) {
                agent.nodes.retain(|n| n != node_id);
            }
            Ok(())
        })
    }

    fn transfer(
        &self,
        ticket_id: &str,
        agent_id: &str,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        self.with(|desk| {
            let state = desk.open_ticket(ticket_id)?.state;
            let previous_agent = desk.tickets[ticket_id].agent_id.clone();
            if previous_agent == agent_id {
                return Ok(TicketChange {
                    ticket: desk.tickets[ticket_id].clone(),
                    previous_agent,
                    assigned: Vec::new(),
                });
            }
            match desk.agents.get(agent_id) {
                Some(a) if !a.nodes.is_empty() && a.load >= a.capacity => {
                    return Err(TicketError::AgentFull {
                        agent_id: agent_id.to_owned(),
                        limit: a.capacity,
                    });
                }
                Some(a) if !a.nodes.is_empty() => {}
                _ => return Err(TicketError::AgentUnavailable(agent_id.to_owned())),
            }
            if state == TicketState::Queued {
                desk.queue.retain(|_, t| t != ticket_id);
            }
            let ticket = desk.assign(ticket_id, agent_id, now_ms);
            let assigned = desk.release(&previous_agent, auto_assign, now_ms);
            Ok(TicketChange {
                ticket,
                previous_agent,
                assigned,
            })
        })
    }

    fn close(
        &self,
        ticket_id: &str,
        reason: &str,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<TicketChange, TicketError>> {
        self.with(|desk| desk.close(ticket_id, reason, auto_assign, now_ms))
    }

    fn record(
        &self,
        ticket_id: &str,
        frame: String,
        keep: usize,
        now_ms: u64,
    ) -> BoxFuture<Result<(), TicketError>> {
        self.with(|desk| {
            let Ok(ticket) = desk.open_ticket(ticket_id) else {
                return Ok(());
            };
            ticket.updated_at_ms = now_ms;
            if keep > 0 {
                let kept = desk.history.entry(ticket_id.to_owned()).or_default();
                kept.push_back(frame);
                while kept.len() > keep {
                    kept.pop_front();
                }
            }
            Ok(())
        })
    }

    fn history(&self, ticket_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>> {
        self.with(|desk| {
            Ok(desk
                .history
                .get(ticket_id)
                .map(|kept| kept.iter().cloned().collect())
                .unwrap_or_default())
        })
    }

    fn expire(
        &self,
        timeout_ms: u64,
        auto_assign: bool,
        now_ms: u64,
    ) -> BoxFuture<Result<Vec<TicketChange>, TicketError>> {
        self.with(|desk| {
            desk.tickets.retain(|_, t| {
                t.state != TicketState::Closed
                    || now_ms.saturating_sub(t.updated_at_ms) < CLOSED_RETENTION_MS
            });
            let Desk {
                tickets, history, ..
            } = desk;
            history.retain(|id, _| tickets.contains_key(id));
            if timeout_ms == 0 {
                return Ok(Vec::new());
            }
            let mut due: Vec<(u64, String)> = desk
                .tickets
                .values()
                .filter(|t| {
                    t.state != TicketState::Closed
                        && now_ms.saturating_sub(t.updated_at_ms) >= timeout_ms
                })
                .map(|t| (t.updated_at_ms, t.ticket_id.clone()))
                .collect();
            due.sort();
            due.into_iter()
                .map(|(_, id)| desk.close(&id, "timeout", auto_assign, now_ms))
                .collect()
        })
    }

    fn get(&self, ticket_id: &str) -> BoxFuture<Result<Option<Ticket>, TicketError>> {
        self.with(|desk| Ok(desk.tickets.get(ticket_id).cloned()))
    }

    fn tickets_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, TicketError>> {
        self.with(|desk| {
            let mut ids: Vec<String> = desk
                .tickets
                .values()
                .filter(|t| {
                    t.state != TicketState::Closed
                        && (t.customer_id == user_id || t.agent_id == user_id)
                })
                .map(|t| t.ticket_id.clone())
                .collect();
            ids.sort();
            Ok(ids)
        })
    }

    fn agents(&self) -> BoxFuture<Result<Vec<AgentLoad>, TicketError>> {
        self.with(|desk| {
            Ok(desk
                .agents
                .iter()
                .map(|(id, a)| AgentLoad {
                    agent_id: id.clone(),
                    load: a.load,
                    capacity: a.capacity,
                    available: !a.nodes.is_empty(),
                    skills: a.skills.iter().cloned().collect(),
                })
                .collect())
        })
    }

    fn queue(&self) -> BoxFuture<Result<Vec<Ticket>, TicketError>> {
        self.with(|desk| {
            Ok(desk
                .queue
                .values()
                .filter_map(|id| desk.tickets.get(id).cloned())
                .collect())
        })
    }
}
