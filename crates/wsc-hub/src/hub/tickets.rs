//! Ticket operations: open (auto-assigned or queued), transfer, close, the timeout sweep,
//! agents becoming available or not, and the queries (a ticket, the queue, agents'
//! workloads). Each state change is written to the [`TicketStore`] in one atomic step, then
//! told: the participants' index is updated on every node (so `send_to_ticket` reaches the
//! customer and the agent), each participant gets a frame (`ticket_created`,
//! `ticket_assigned`, `ticket_transfer`, `ticket_closed`, `ticket_timeout_closed`, with the
//! ticket in `data.ticket`) and the event feed gets an event.

use super::*;
use crate::tickets::{
    AgentLoad, AgentProfile, NewTicket, Ticket, TicketChange, TicketError, TicketStore,
};

/// What happened to a ticket, for the frames and events it causes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Created,
    Assigned,
    Transferred,
    Closed,
}

impl Hub {
    /// Replaces the ticket store (the default is a [`MemoryTickets`](crate::MemoryTickets)
    /// of this hub's own). Give every node of a cluster the same store.
    pub fn set_ticket_store(&self, store: Arc<dyn TicketStore>) {
        *self.inner.tickets.write() = store;
    }

    /// The ticket store in use.
    pub fn ticket_store(&self) -> Arc<dyn TicketStore> {
        self.inner.tickets.read().clone()
    }

    /// Opens a ticket for a customer (an id is generated when `ticket.ticket_id` is empty).
    /// With `ticket_auto_assign` it goes to the least-loaded available agent under
    /// `max_tickets_per_agent`, else it is queued (VIP first, then oldest first) until an
    /// agent has room. The customer gets `ticket_created`, and both sides `ticket_assigned`
    /// once an agent has it.
    pub async fn open_ticket(&self, mut ticket: NewTicket) -> Result<Ticket, TicketError> {
        InvalidId::check(&ticket.customer_id, "customer_id")?;
        if ticket.ticket_id.is_empty() {
            ticket.ticket_id = uuid::Uuid::now_v7().simple().to_string();
        }
        InvalidId::check(&ticket.ticket_id, "ticket_id")?;
        if !ticket.department.is_empty() {
            InvalidId::check(&ticket.department, "department")?;
        }
        let auto = self.config().ticket_auto_assign;
        let change = self
            .ticket_store()
            .open(ticket, auto, self.unix_ms())
            .await?;
        let ticket = change.ticket.clone();
        self.ticket_changed(Step::Created, change).await;
        Ok(ticket)
    }

    /// Moves an open ticket to another available agent with room. The customer, the
    /// previous agent and the new one get `ticket_transfer`.
    pub async fn transfer_ticket(
        &self,
        ticket_id: &str,
        agent_id: &str,
    ) -> Result<Ticket, TicketError> {
        InvalidId::check(ticket_id, "ticket_id")?;
        InvalidId::check(agent_id, "agent_id")?;
        let auto = self.config().ticket_auto_assign;
        let change = self
            .ticket_store()
            .transfer(ticket_id, agent_id, auto, self.unix_ms())
            .await?;
        let ticket = change.ticket.clone();
        if change.previous_agent != change.ticket.agent_id {
            self.ticket_changed(Step::Transferred, change).await;
        }
        Ok(ticket)
    }

    /// Closes an open ticket (`reason` is kept; empty means `closed`). Its participants get
    /// `ticket_closed`; the agent's freed place takes the next queued ticket.
    pub async fn close_ticket(&self, ticket_id: &str, reason: &str) -> Result<Ticket, TicketError> {
        InvalidId::check(ticket_id, "ticket_id")?;
        let reason = if reason.is_empty() { "closed" } else { reason };
        let auto = self.config().ticket_auto_assign;
        let change = self
            .ticket_store()
            .close(ticket_id, reason, auto, self.unix_ms())
            .await?;
        let ticket = change.ticket.clone();
        self.ticket_changed(Step::Closed, change).await;
        Ok(ticket)
    }

    /// A ticket by id (closed ones for an hour).
    pub async fn ticket(&self, ticket_id: &str) -> Result<Option<Ticket>, TicketError> {
        InvalidId::check(ticket_id, "ticket_id")?;
        self.ticket_store().get(ticket_id).await
    }

    /// A ticket request from a client frame: `ticket_created` opens a ticket for the sender
    /// (not an agent), `ticket_closed` closes one the sender takes part in (reason: the
    /// frame's `content`, else `closed`), `ticket_transfer` moves one from the sender (its
    /// agent) to `receiver`. Returns whether the frame was one of them; a refusal is an
    /// error frame with the ticket error's code, a success is the usual notices.
    pub(super) async fn ticket_request(
        &self,
        conn: &Arc<Connection>,
        msg: &HubMessage,
        frame_id: &str,
    ) -> bool {
        let user = conn.user_id();
        let result = match msg.message_type {
            MessageType::TicketCreated => {
                if self.is_agent(&conn.identity().user_type) {
                    Err(TicketError::Forbidden {
                        ticket_id: msg.ticket_id.clone(),
                        user_id: user.to_owned(),
                    })
                } else {
                    let department = msg
                        .data_value("department")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default();
                    let ticket = NewTicket::new(user)
                        .with_id(msg.ticket_id.clone())
                        .with_department(department);
                    self.open_ticket(ticket).await.map(drop)
                }
            }
            MessageType::TicketClosed => match self.participant(&msg.ticket_id, user).await {
                Ok(_) => self
                    .close_ticket(&msg.ticket_id, &msg.content)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            },
            MessageType::TicketTransfer => match self.participant(&msg.ticket_id, user).await {
                Ok(ticket) if ticket.agent_id == user => self
                    .transfer_ticket(&msg.ticket_id, &msg.receiver)
                    .await
                    .map(drop),
                Ok(_) => Err(TicketError::Forbidden {
                    ticket_id: msg.ticket_id.clone(),
                    user_id: user.to_owned(),
                }),
                Err(e) => Err(e),
            },
            _ => return false,
        };
        if let Err(e) = result {
            self.reject_frame(conn, FrameError::Ticket(e), frame_id);
        }
        true
    }

    /// The ticket, when `user_id` is its customer or agent.
    async fn participant(&self, ticket_id: &str, user_id: &str) -> Result<Ticket, TicketError> {
        let ticket = self
            .ticket(ticket_id)
            .await?
            .ok_or_else(|| TicketError::NotFound(ticket_id.to_owned()))?;
        if ticket.customer_id == user_id || ticket.agent_id == user_id {
            Ok(ticket)
        } else {
            Err(TicketError::Forbidden {
                ticket_id: ticket_id.to_owned(),
                user_id: user_id.to_owned(),
            })
        }
    }

    /// The queued tickets, in the order agents take them.
    pub async fn ticket_queue(&self) -> Result<Vec<Ticket>, TicketError> {
        self.ticket_store().queue().await
    }

    /// Every agent's workload (agents appear once they were available).
    pub async fn agent_workloads(&self) -> Result<Vec<AgentLoad>, TicketError> {
        self.ticket_store().agents().await
    }

    /// Whether connections of this user type are agents that take tickets.
    pub(super) fn is_agent(&self, user_type: &str) -> bool {
        self.config().agent_types.iter().any(|t| t == user_type)
    }

    /// An agent's first connection on this node was admitted: it takes tickets (of no
    /// department, or of one of its connection's groups, `skills`), and the queued ones it
    /// has room for now.
    pub(super) async fn agent_came_online(&self, agent_id: &str, skills: &[String]) {
        let config = self.config();
        let profile = AgentProfile::new(agent_id, self.node_id(), config.max_tickets_per_agent)
            .with_skills(skills.iter().cloned());
        let taken = self
            .ticket_store()
            .agent_available(profile, config.ticket_auto_assign, self.unix_ms())
            .await;
        match taken {
            Ok(taken) => self.tickets_assigned(taken).await,
            Err(e) => self.ticket_store_failed("an agent becoming available", &e),
        }
    }

    /// An agent's last connection on this node closed (without waiting: it runs from
    /// synchronous unregistration).
    pub(super) fn agent_went_offline(&self, agent_id: &str) {
        let update = self
            .ticket_store()
            .agent_unavailable(agent_id, self.node_id());
        let hub = self.clone();
        tokio::spawn(async move {
            if let Err(e) = update.await {
                hub.ticket_store_failed("an agent leaving", &e);
            }
        });
    }

    /// Records a message sent to a ticket (its activity, and its frame, as the router
    /// encoded it, for an agent who takes the ticket later), without waiting. Ids that are
    /// no open ticket of the store (bindings made at connect) record nothing.
    pub(super) fn record_ticket_message(&self, ticket_id: &str, frame: &Payload) {
        let keep = self.config().ticket_history_size;
        let frame = if keep > 0 {
            frame.as_str().to_owned()
        } else {
            String::new()
        };
        let record = self
            .ticket_store()
            .record(ticket_id, frame, keep, self.unix_ms());
        tokio::spawn(async move {
            let _ = record.await;
        });
    }

    /// The conversation so far, for an agent who just took a ticket: its kept messages,
    /// oldest first, marked `source: offline` (replayed), with their own ids.
    async fn send_history(&self, ticket: &Ticket) {
        let frames = match self.ticket_store().history(&ticket.ticket_id).await {
            Ok(frames) => frames,
            Err(e) => return self.ticket_store_failed("reading a ticket's history", &e),
        };
        for frame in frames {
            let Ok(mut msg) = serde_json::from_str::<HubMessage>(&frame) else {
                continue;
            };
            msg.source = Some(Source::Offline);
            msg.seq_no = 0;
            if let Err(e) = self.send_to_user(&ticket.agent_id, msg).await {
                tracing::warn!(ticket_id = %ticket.ticket_id, error = %e, "a ticket's history was not sent");
            }
        }
    }

    /// The timer's pass over tickets: closes those without activity for `ticket_timeout`
    /// (`ticket_timeout_closed` to their participants) and lets the store forget old
    /// closed ones. Every node runs it; the store closes each ticket once.
    pub(super) fn sweep_tickets(&self) {
        let config = self.config();
        let expire = self.ticket_store().expire(
            config.ticket_timeout.as_millis() as u64,
            config.ticket_auto_assign,
            self.unix_ms(),
        );
        let hub = self.clone();
        tokio::spawn(async move {
            match expire.await {
                Ok(closed) => {
                    for change in closed {
                        hub.ticket_changed(Step::Closed, change).await;
                    }
                }
                Err(e) => hub.ticket_store_failed("the ticket timeout sweep", &e),
            }
        });
    }

    fn ticket_store_failed(&self, what: &str, error: &TicketError) {
        Counters::add(&self.inner.counters.cluster_errors, 1);
        tracing::warn!(what, %error, "the ticket store failed");
    }

    /// Queued tickets an agent took: both sides learn it.
    async fn tickets_assigned(&self, taken: Vec<Ticket>) {
        for ticket in taken {
            self.ticket_changed(
                Step::Assigned,
                TicketChange {
                    ticket,
                    previous_agent: String::new(),
                    assigned: Vec::new(),
                },
            )
            .await;
        }
    }

    /// Tells a stored change: the index on every node, a frame to each participant, an
    /// event; then the queued tickets the change let an agent take.
    async fn ticket_changed(&self, step: Step, change: TicketChange) {
        let TicketChange {
            ticket,
            previous_agent,
            assigned,
        } = change;
        let id = ticket.ticket_id.as_str();
        let (customer, agent) = (ticket.customer_id.as_str(), ticket.agent_id.as_str());
        let kind = MembershipKind::Ticket;
        match step {
            Step::Created => self.membership_changed(kind, id, customer, true).await,
            Step::Closed => {
                self.membership_changed(kind, id, customer, false).await;
                if !agent.is_empty() {
                    self.membership_changed(kind, id, agent, false).await;
                }
            }
            Step::Transferred if !previous_agent.is_empty() => {
                self.membership_changed(kind, id, &previous_agent, false)
                    .await;
            }
            _ => {}
        }
        let with_agent = matches!(step, Step::Assigned | Step::Transferred)
            || (step == Step::Created && !agent.is_empty());
        if with_agent {
            self.membership_changed(kind, id, agent, true).await;
        }
        let (message_type, event) = match step {
            Step::Created => (MessageType::TicketCreated, events::TICKET_CREATED),
            Step::Assigned => (MessageType::TicketAssigned, events::TICKET_ASSIGNED),
            Step::Transferred => (MessageType::TicketTransfer, events::TICKET_TRANSFERRED),
            Step::Closed if ticket.close_reason == "timeout" => {
                (MessageType::TicketTimeoutClosed, events::TICKET_CLOSED)
            }
            Step::Closed => (MessageType::TicketClosed, events::TICKET_CLOSED),
        };
        let mut told: Vec<&str> = vec![customer];
        if step != Step::Created && !agent.is_empty() {
            told.push(agent);
        }
        if step == Step::Transferred && !previous_agent.is_empty() {
            told.push(&previous_agent);
        }
        for user in told {
            self.tell(user, &ticket, message_type.clone()).await;
        }
        self.emit_ticket_event(event, &ticket);
        if matches!(step, Step::Assigned | Step::Transferred) {
            self.send_history(&ticket).await;
        }
        if step == Step::Created && !agent.is_empty() {
            for user in [customer, agent] {
                self.tell(user, &ticket, MessageType::TicketAssigned).await;
            }
            self.emit_ticket_event(events::TICKET_ASSIGNED, &ticket);
        }
        Box::pin(self.tickets_assigned(assigned)).await;
    }

    /// One ticket frame to one user (every device, numbered, kept offline when away).
    async fn tell(&self, user_id: &str, ticket: &Ticket, message_type: MessageType) {
        let mut msg = HubMessage::new(message_type, "")
            .with_data("ticket", serde_json::to_value(ticket).unwrap_or_default());
        msg.ticket_id = ticket.ticket_id.clone();
        if let Err(e) = self.send_to_user(user_id, msg).await {
            tracing::warn!(user_id, ticket_id = %ticket.ticket_id, error = %e, "a ticket notice was not sent");
        }
    }

    fn emit_ticket_event(&self, name: &'static str, ticket: &Ticket) {
        self.emit_event(|| HubEvent {
            user_id: ticket.customer_id.clone(),
            detail: serde_json::to_value(ticket).unwrap_or_default(),
            ..HubEvent::new(name)
        });
    }

    /// Wall-clock milliseconds on the hub's own clock (tokio's, so paused tests control
    /// ticket timeouts too).
    pub(super) fn unix_ms(&self) -> u64 {
        self.inner.origin_unix_ms + self.now_ms()
    }
}
