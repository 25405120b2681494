//! The router: every routed send resolves its recipients under the registry's read lock,
//! is encoded once, queued, handed to the other nodes and reported. User sends are
//! numbered first (`numbering.rs`).

use super::*;

/// Options of [`Hub::broadcast`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastOptions {
    /// Only connections of this app (also stamped on the message).
    pub app_id: Option<String>,
    /// Only connections of this namespace (also stamped on the message).
    pub namespace: Option<String>,
    /// Skip every connection of this user.
    pub exclude_user: Option<String>,
}

impl BroadcastOptions {
    /// Everyone except `user_id`.
    pub fn excluding(user_id: impl Into<String>) -> Self {
        BroadcastOptions {
            exclude_user: Some(user_id.into()),
            ..Self::default()
        }
    }

    /// Only connections of this app and namespace.
    pub fn scoped(app_id: impl Into<String>, namespace: impl Into<String>) -> Self {
        BroadcastOptions {
            app_id: Some(app_id.into()),
            namespace: Some(namespace.into()),
            ..Self::default()
        }
    }
}

impl Hub {
    /// Sends `msg` along `route`: the one path of every routed send. Runs the outbound
    /// interceptors, fills the ids, sender and time, serializes once (refusing a message over
    /// the outbound limit), queues it to this node's recipients, hands the same payload and
    /// route to the other nodes through the backplane, and reports.
    ///
    /// A user route also numbers the message (`seq_no`) and keeps it in the user's resume
    /// window; when no node has a connection of the user, the message goes to the offline
    /// store. A ticket route never returns a message to its sender's connections.
    ///
    /// ```
    /// use wsc_hub::{Hub, HubConfig, HubMessage, Identity, Route, Target};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let hub = Hub::new(HubConfig::default());
    /// hub.start();
    /// let _desk = hub.register(Identity::new("agent").with_tickets(["t-7"])).await.unwrap();
    /// let route = Route::new(Target::Ticket { ticket_id: "t-7".into() });
    /// let report = hub.send(route, HubMessage::text("new reply")).await.unwrap();
    /// assert_eq!(report.delivered, 1);
    /// # }
    /// ```
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn send(
        &self,
        mut route: Route,
        mut msg: HubMessage,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + '_ {
        // A plain function returning an `async move` block, not an `async fn`: the message
        // and route then live once in the future (an `async fn` keeps a second copy of its
        // by-value arguments, 700 bytes here, which measurably slowed every send).
        async move {
            self.ensure_running()?;
            let numbered = route.user().is_some();
            self.dispatch(&mut route, &mut msg, numbered).await
        }
    }

    /// [`send`](Self::send) with the numbering decided by the caller: status relays to a
    /// user are volatile (no `seq_no`, no resume window, never stored offline). The message
    /// is borrowed, not moved: it stays in the caller's future instead of being copied into
    /// this one on every send.
    pub(super) async fn dispatch(
        &self,
        route: &mut Route,
        msg: &mut HubMessage,
        numbered: bool,
    ) -> Result<DeliveryReport, SendError> {
        self.intercept(msg)?;
        self.prepare(msg);
        route.scope_from(msg);
        if matches!(route.target, Target::Ticket { .. }) && route.exclude_user.is_none() {
            route.exclude_user = Some(msg.sender.clone());
        }
        let config = self.config();
        let deliver = |msg: &HubMessage, payload: &Payload| {
            let targets = self.snapshot(|reg, out| reg.resolve(route, out));
            self.enqueue_all(&targets, payload, msg, &config)
        };
        let first = match route.user() {
            Some(user_id) if numbered => Some(self.numbered(user_id, msg, &config, deliver).await?),
            _ => None,
        };
        let (payload, mut report, turn) = match first {
            Some(numbered) => (numbered.payload, numbered.delivered, numbered.turn),
            None => {
                let payload = self.encode_outbound(msg, &config, 0)?;
                let report = deliver(msg, &payload);
                (payload, report, None)
            }
        };
        // A ticket keeps its messages (activity, history): the frame as encoded, shared.
        let ticket_frame = matches!(route.target, Target::Ticket { .. }).then(|| payload.clone());
        let published = self
            .try_publish(|hub| Envelope::Message {
                origin: hub.node_id().to_owned(),
                route: route.clone(),
                payload,
                awaits_ack: None,
                report: false,
            })
            .await;
        drop(turn);
        let remote = *published.as_ref().unwrap_or(&0);
        report.nodes += remote;
        if numbered
            && remote == 0
            && route.only_client.is_none()
            && reached_nobody(&report)
            && let (Some(user_id), Some(store)) = (route.user(), self.offline_store())
        {
            // Boxed, like every rare path here: it keeps the send's future small.
            report.stored_offline = Box::pin(self.store_offline(&store, user_id, msg, true)).await;
        }
        // Other nodes could not be told and nothing here took the message: say so instead
        // of reporting a send that reached nobody. (Reaching some, it is counted and logged.)
        if let Err(e) = published
            && report.delivered == 0
            && !report.stored_offline
        {
            return Err(SendError::Unavailable(e.to_string()));
        }
        if let (Some(frame), Target::Ticket { ticket_id }) = (ticket_frame, &route.target) {
            self.record_ticket_message(ticket_id, &frame);
        }
        self.message_sent(msg, &report);
        // Observers get broadcasts anyway.
        if !matches!(route.target, Target::Broadcast) {
            self.observe(msg, &report).await;
        }
        Ok(report)
    }

    /// This node's recipients of `route`, in the scope of `msg`.
    pub(super) fn recipients(&self, mut route: Route, msg: &HubMessage) -> Vec<Arc<Connection>> {
        route.scope_from(msg);
        self.snapshot(|reg, out| reg.resolve(&route, out))
    }

    /// Delivers a message another node routed here to this node's recipients; returns the
    /// connections that took it.
    pub(super) fn deliver_remote(&self, route: &Route, payload: &Payload) -> Vec<Arc<Connection>> {
        let config = self.config();
        let mut targets = self.snapshot(|reg, out| reg.resolve(route, out));
        targets.retain(|conn| self.enqueue(conn, payload, &config).is_ok());
        targets
    }

    /// Sends to every live connection of a user. When `msg.receiver_client` is set, only
    /// that connection of the user receives it. The message gets the user's next `seq_no`
    /// and enters the user's resume window. When the user has no live connection on any
    /// node, it goes to the offline store (if any) and the report says `stored_offline`.
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn send_to_user<'a>(
        &'a self,
        user_id: &'a str,
        mut msg: HubMessage,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + 'a {
        async move {
            self.ensure_running()?;
            non_empty(user_id, "user_id")?;
            if msg.receiver.is_empty() {
                msg.receiver = user_id.to_owned();
            }
            let mut route = Route::new(Target::User {
                user_id: user_id.to_owned(),
            });
            route.only_client =
                Some(std::mem::take(&mut msg.receiver_client)).filter(|c| !c.is_empty());
            self.dispatch(&mut route, &mut msg, true).await
        }
    }

    /// Sends to every connection bound to a ticket, except the connections of
    /// `msg.sender` (the sender does not get its own message back).
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn send_to_ticket<'a>(
        &'a self,
        ticket_id: &'a str,
        mut msg: HubMessage,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + 'a {
        async move {
            self.ensure_running()?;
            let mut route = ticket_route(ticket_id, &mut msg)?;
            self.dispatch(&mut route, &mut msg, false).await
        }
    }

    /// Sends to every connection of a group: connections that joined at connect and every
    /// connection of users who joined through [`Hub::join_group`].
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn send_to_group<'a>(
        &'a self,
        group_id: &'a str,
        mut msg: HubMessage,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + 'a {
        async move {
            self.ensure_running()?;
            let mut route = group_route(group_id, &mut msg)?;
            self.dispatch(&mut route, &mut msg, false).await
        }
    }

    /// Sends to one connection, by client id.
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn send_to_connection<'a>(
        &'a self,
        client_id: &'a str,
        mut msg: HubMessage,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + 'a {
        async move {
            self.ensure_running()?;
            let mut route = connection_route(client_id, &mut msg)?;
            self.dispatch(&mut route, &mut msg, false).await
        }
    }

    /// Sends to every connection, optionally scoped to an app/namespace and excluding a user.
    // Not an `async fn` on purpose (see `send`).
    #[allow(clippy::manual_async_fn)]
    pub fn broadcast(
        &self,
        mut msg: HubMessage,
        options: BroadcastOptions,
    ) -> impl Future<Output = Result<DeliveryReport, SendError>> + Send + '_ {
        async move {
            self.ensure_running()?;
            if let Some(app) = options.app_id {
                msg.app_id = app;
            }
            if let Some(ns) = options.namespace {
                msg.namespace = ns;
            }
            let mut route = Route::new(Target::Broadcast)
                .excluding_user(options.exclude_user.unwrap_or_default());
            self.dispatch(&mut route, &mut msg, false).await
        }
    }

    /// Closes every connection of a user with 1008, on every node. With `notify`, each
    /// first receives a `kick_out` frame, written before the close frame.
    pub async fn kick_user(
        &self,
        user_id: &str,
        reason: &str,
        notify: bool,
    ) -> Result<KickReport, SendError> {
        self.ensure_running()?;
        non_empty(user_id, "user_id")?;
        let kicked = self.kick_local(user_id, reason, notify);
        self.publish(|hub| Envelope::Kick {
            origin: hub.node_id().to_owned(),
            user_id: user_id.to_owned(),
            reason: reason.to_owned(),
            notify,
        })
        .await;
        Ok(KickReport { kicked })
    }

    /// The local part of a kick: returns how many connections of this node were closed.
    pub(super) fn kick_local(&self, user_id: &str, reason: &str, notify: bool) -> usize {
        let conns = self.snapshot(|reg, out| out.extend(reg.user(user_id).cloned()));
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for conn in &conns {
            if notify {
                let notice = HubMessage {
                    receiver: user_id.to_owned(),
                    ..HubMessage::new(MessageType::KickOut, reason)
                }
                .with_data("reason", reason)
                .with_data("kicked_at", secs);
                self.send_direct(conn, notice);
            }
            conn.close(DisconnectReason::Kicked {
                reason: reason.to_owned(),
            });
            // A kicked connection leaves every route and query now, not when its close
            // handshake completes; its disconnect callback still runs once, at the end.
            self.leave_registry(conn);
        }
        conns.len()
    }

    /// Queues a message for a connection that may not be registered yet (for example a
    /// welcome frame from a connect callback). Returns whether it was queued.
    pub fn send_to_new_connection(&self, conn: &Connection, msg: HubMessage) -> bool {
        self.send_direct(conn, msg)
    }

    pub(super) fn send_direct(&self, conn: &Connection, mut msg: HubMessage) -> bool {
        self.prepare(&mut msg);
        let config = self.config();
        match self.encode_outbound(&msg, &config, 0) {
            Ok(payload) => self.enqueue(conn, &payload, &config).is_ok(),
            Err(_) => false,
        }
    }

    pub(super) fn snapshot(
        &self,
        select: impl FnOnce(&Registry, &mut Vec<Arc<Connection>>),
    ) -> Vec<Arc<Connection>> {
        let mut out = Vec::new();
        select(&self.inner.registry.read(), &mut out);
        out
    }

    pub(super) fn enqueue_all(
        &self,
        targets: &[Arc<Connection>],
        payload: &Payload,
        msg: &HubMessage,
        config: &HubConfig,
    ) -> DeliveryReport {
        let mut report = DeliveryReport {
            message_id: msg.message_id.clone(),
            ..DeliveryReport::default()
        };
        for conn in targets {
            match self.enqueue(conn, payload, config) {
                Ok(()) => report.delivered += 1,
                Err(reason) => report.failures.push(DeliveryFailure {
                    client_id: conn.client_id().to_owned(),
                    user_id: conn.user_id().to_owned(),
                    reason,
                }),
            }
        }
        report.nodes = usize::from(report.delivered > 0);
        report
    }

    /// Serializes a routed message once, refusing it when it exceeds the outbound limit
    /// (before anything is queued, numbered or stored). `reserve` is room for what is added
    /// after encoding (a `seq_no`), counted in the size.
    pub(super) fn encode_outbound(
        &self,
        msg: &HubMessage,
        config: &HubConfig,
        reserve: usize,
    ) -> Result<Payload, SendError> {
        let payload = codec::encode(msg)?;
        let (size, limit) = (payload.len() + reserve, config.max_outbound_message_size);
        if limit > 0 && size > limit {
            return Err(SendError::TooLarge { size, limit });
        }
        Ok(payload)
    }

    /// Fills the ids, the sender and the timestamp the caller left empty.
    pub(super) fn prepare(&self, msg: &mut HubMessage) {
        if msg.sender.is_empty() {
            msg.sender = SYSTEM.to_owned();
            if msg.sender_type.is_empty() {
                msg.sender_type = SYSTEM.to_owned();
            }
        }
        if msg.id.is_empty() {
            msg.id = uuid::Uuid::now_v7().to_string();
        }
        if msg.message_id.is_empty() {
            msg.message_id = msg.id.clone();
        }
        if msg.create_at.is_empty() {
            msg.create_at = now_rfc3339();
        }
    }
}

/// No open connection of this node took the message (none, or each closed under our
/// hands): the user gets it from the store on the next connect. A queue that is merely full
/// under the drop policy keeps its connection, so such a message is not stored.
fn reached_nobody(report: &DeliveryReport) -> bool {
    report.delivered == 0
        && report
            .failures
            .iter()
            .all(|f| f.reason != FailureReason::QueueFull)
}

/// The route of a ticket send; the message names its ticket.
pub(super) fn ticket_route(ticket_id: &str, msg: &mut HubMessage) -> Result<Route, SendError> {
    non_empty(ticket_id, "ticket_id")?;
    msg.ticket_id = ticket_id.to_owned();
    Ok(Route::new(Target::Ticket {
        ticket_id: ticket_id.to_owned(),
    }))
}

/// The route of a group send; the message lists its group.
pub(super) fn group_route(group_id: &str, msg: &mut HubMessage) -> Result<Route, SendError> {
    non_empty(group_id, "group_id")?;
    if !msg.group_ids.iter().any(|g| g == group_id) {
        msg.group_ids.push(group_id.to_owned());
    }
    Ok(Route::new(Target::Group {
        group_id: group_id.to_owned(),
    }))
}

/// The route of a send to one connection; the message names it in `receiver_client`.
pub(super) fn connection_route(client_id: &str, msg: &mut HubMessage) -> Result<Route, SendError> {
    non_empty(client_id, "client_id")?;
    msg.receiver_client = client_id.to_owned();
    Ok(Route::new(Target::Connection {
        client_id: client_id.to_owned(),
    }))
}
