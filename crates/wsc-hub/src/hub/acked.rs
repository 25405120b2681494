//! Acknowledged delivery: register the expected ack, send, wait in the caller's future,
//! resend on timeout, settle (acked, stored offline, timed out).

use super::router::{connection_route, group_route, ticket_route};
use super::*;

/// The delivery report the message-sent callbacks get for an acknowledged send: the
/// targets that acked count as delivered.
pub(super) fn ack_summary(report: &AckReport) -> DeliveryReport {
    let delivered = report
        .outcomes
        .iter()
        .filter(|o| matches!(o.status, AckStatus::Acked { .. }))
        .count();
    DeliveryReport {
        message_id: report.message_id.clone(),
        delivered,
        nodes: usize::from(delivered > 0),
        stored_offline: report
            .outcomes
            .iter()
            .any(|o| o.status == AckStatus::StoredOffline),
        failures: Vec::new(),
    }
}

impl Hub {
    /// Sends to a user and waits for a client's `ack` naming the message's `message_id`
    /// (generated when empty). Each `timeout` without an ack resends the same message (same
    /// `message_id` and `seq_no`) to the user's live connections, up to `max_retries`
    /// resends. When it is never acknowledged (or the user is offline) it goes to the
    /// offline store when there is one, and the `on_ack_failed` callbacks run on failure.
    pub async fn send_to_user_with_ack(
        &self,
        user_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        non_empty(user_id, "user_id")?;
        if msg.receiver.is_empty() {
            msg.receiver = user_id.to_owned();
        }
        let only = std::mem::take(&mut msg.receiver_client);
        msg.require_ack = true;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        let target = AckTarget::User(user_id.to_owned());
        let Some(mut rx) = self.await_ack(&msg.message_id, &target, None) else {
            return Err(SendError::DuplicateMessageId(msg.message_id));
        };
        // Targets are filtered by the message's scope only.
        let mut route = Route::new(Target::User {
            user_id: user_id.to_owned(),
        });
        route.scope_from(&msg);
        route.only_client = Some(only).filter(|c| !c.is_empty());
        let resolve = |hub: &Hub| hub.snapshot(|reg, out| reg.resolve(&route, out));
        let config = self.config();
        // The first delivery is queued under the history lock, like `send_to_user`, so
        // messages to one user are queued in `seq_no` order whichever way they are sent.
        let numbered = self
            .numbered(user_id, &mut msg, &config, |msg, payload| {
                let targets = resolve(self);
                self.send_attempt(msg, payload, &target, &targets, &config);
                !targets.is_empty()
            })
            .await;
        let numbered = match numbered {
            Ok(numbered) => numbered,
            Err(e) => {
                self.inner.acks.cancel(&msg.message_id, &target);
                return Err(e);
            }
        };
        let (payload, sent_here) = (numbered.payload, numbered.delivered);
        // Nodes where the user is connected deliver it too and forward the ack back here.
        let published = self
            .publish_awaiting_ack(&route, &payload, &msg.message_id)
            .await;
        let remote = *published.as_ref().unwrap_or(&0);
        drop(numbered.turn);
        let limits = (timeout, max_retries, sent_here || remote > 0);
        let (acked, attempts) = self
            .ack_loop(
                &msg,
                &payload,
                &target,
                &mut rx,
                limits,
                &resolve,
                Some(&route),
            )
            .await;
        let outcome = self
            .ack_outcome(&msg, &target, user_id, user_id, acked, attempts)
            .await;
        // Other nodes could not be told, nothing here took the message and it could not be
        // stored: say so (as `send_to_user` does) instead of reporting the user offline.
        if let Err(e) = published
            && outcome.status == AckStatus::Offline
        {
            return Err(SendError::Unavailable(e.to_string()));
        }
        let report = AckReport {
            message_id: msg.message_id.clone(),
            outcomes: vec![outcome],
        };
        let summary = ack_summary(&report);
        self.message_sent(&msg, &summary);
        self.observe(&msg, &summary).await;
        Ok(report)
    }

    /// [`send_to_connection`](Self::send_to_connection) with an ack (see
    /// [`send_to_user_with_ack`](Self::send_to_user_with_ack)); a failure is stored offline
    /// for the connection's user. A connection on another node is reached through the
    /// backplane and its ack comes back here; a failure there is reported, not stored (this
    /// node does not know that connection's user). With other nodes, a client id that no
    /// node has waits out the timeout (`TimedOut`): the origin cannot tell it from a
    /// connection that does not answer.
    pub async fn send_to_connection_with_ack(
        &self,
        client_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        let route = connection_route(client_id, &mut msg)?;
        let conns = self.recipients(route.clone(), &msg);
        if conns.is_empty() && self.has_peers() {
            return Box::pin(self.ack_elsewhere(route, client_id, msg, timeout, max_retries)).await;
        }
        if conns.is_empty() {
            // No such live connection (and no user to keep the message for).
            self.prepare(&mut msg);
            return Ok(AckReport {
                message_id: msg.message_id,
                outcomes: vec![AckOutcome {
                    target: client_id.to_owned(),
                    status: AckStatus::Offline,
                    attempts: 0,
                }],
            });
        }
        self.ack_each(conns, None, msg, timeout, max_retries).await
    }

    /// [`send_to_ticket`](Self::send_to_ticket) with an ack from every connection on the
    /// ticket (one outcome per connection).
    pub async fn send_to_ticket_with_ack(
        &self,
        ticket_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        let route = ticket_route(ticket_id, &mut msg)?;
        if msg.sender.is_empty() {
            msg.sender = SYSTEM.to_owned();
        }
        let route = route.excluding_user(msg.sender.clone());
        let conns = self.recipients(route.clone(), &msg);
        self.ack_each(conns, Some(route), msg, timeout, max_retries)
            .await
    }

    /// [`send_to_group`](Self::send_to_group) with an ack from every connection of the group
    /// (one outcome per connection).
    pub async fn send_to_group_with_ack(
        &self,
        group_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        self.ensure_running()?;
        let route = group_route(group_id, &mut msg)?;
        let conns = self.recipients(route.clone(), &msg);
        self.ack_each(conns, Some(route), msg, timeout, max_retries)
            .await
    }

    /// An acknowledged delivery to a connection that is not on this node: published with
    /// `awaits_ack`, resent through the backplane on each timeout, settled by the ack the
    /// connection's node forwards (matched by client id).
    async fn ack_elsewhere(
        &self,
        mut route: Route,
        client_id: &str,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        msg.require_ack = true;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        route.scope_from(&msg);
        let payload = self.encode_outbound(&msg, &self.config(), 0)?;
        let target = AckTarget::Connection(client_id.to_owned());
        let Some(mut rx) = self.await_ack(&msg.message_id, &target, None) else {
            return Err(SendError::DuplicateMessageId(msg.message_id));
        };
        let limits = (timeout, max_retries, false);
        let nobody = |_: &Hub| Vec::new();
        let (acked, attempts) = self
            .ack_loop(
                &msg,
                &payload,
                &target,
                &mut rx,
                limits,
                &nobody,
                Some(&route),
            )
            .await;
        if acked.is_none() {
            self.inner.acks.cancel(&msg.message_id, &target);
        }
        let status = match acked {
            Some(client_id) => AckStatus::Acked { client_id },
            None if attempts == 0 => AckStatus::Offline,
            None => {
                self.ack_failed(&msg, client_id, attempts, false);
                AckStatus::TimedOut
            }
        };
        let report = AckReport {
            message_id: msg.message_id.clone(),
            outcomes: vec![AckOutcome {
                target: client_id.to_owned(),
                status,
                attempts,
            }],
        };
        let summary = ack_summary(&report);
        self.message_sent(&msg, &summary);
        self.observe(&msg, &summary).await;
        Ok(report)
    }

    /// One acknowledged delivery per connection, concurrently; with `elsewhere`, also to
    /// the connections that route selects on other nodes.
    pub(super) async fn ack_each(
        &self,
        conns: Vec<Arc<Connection>>,
        elsewhere: Option<Route>,
        mut msg: HubMessage,
        timeout: Duration,
        max_retries: u32,
    ) -> Result<AckReport, SendError> {
        msg.require_ack = true;
        self.intercept(&mut msg)?;
        self.prepare(&mut msg);
        let payload = self.encode_outbound(&msg, &self.config(), 0)?;
        let flows = conns.iter().map(|conn| {
            let (msg, payload) = (&msg, &payload);
            async move {
                let target = AckTarget::Connection(conn.client_id().to_owned());
                let registered = self.await_ack(&msg.message_id, &target, Some(conn.id()));
                let (acked, attempts) = if let Some(mut rx) = registered {
                    let id = conn.id();
                    let resolve =
                        move |hub: &Hub| hub.connection_by_id(id).into_iter().collect::<Vec<_>>();
                    let limits = (timeout, max_retries, false);
                    self.ack_loop(msg, payload, &target, &mut rx, limits, &resolve, None)
                        .await
                } else {
                    (None, 0)
                };
                let (label, user) = (conn.client_id(), conn.user_id());
                self.ack_outcome(msg, &target, label, user, acked, attempts)
                    .await
            }
        });
        let remote = async {
            match elsewhere {
                Some(mut route) => {
                    route.scope_from(&msg);
                    self.ack_on_other_nodes(&route, &msg, &payload, (timeout, max_retries))
                        .await
                }
                None => Vec::new(),
            }
        };
        let (mut outcomes, remote) = tokio::join!(futures_util::future::join_all(flows), remote);
        outcomes.extend(remote);
        let report = AckReport {
            message_id: msg.message_id.clone(),
            outcomes,
        };
        let summary = ack_summary(&report);
        self.message_sent(&msg, &summary);
        self.observe(&msg, &summary).await;
        Ok(report)
    }

    /// Queues one attempt for every target connection that has a free pending slot.
    pub(super) fn send_attempt(
        &self,
        msg: &HubMessage,
        payload: &Payload,
        target: &AckTarget,
        targets: &[Arc<Connection>],
        config: &HubConfig,
    ) {
        for conn in targets {
            if self.inner.acks.add_connection(
                &msg.message_id,
                target,
                conn,
                config.max_pending_acks,
            ) {
                let _ = self.enqueue(conn, payload, config);
            }
        }
    }

    /// Sends, waits, resends: returns who acked (if anyone) and how many attempts were made.
    /// `limits` is (timeout, max resends, whether the caller already sent the first
    /// attempt). With `remote`, every resend also goes to the other nodes of that route.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn ack_loop(
        &self,
        msg: &HubMessage,
        payload: &Payload,
        target: &AckTarget,
        rx: &mut oneshot::Receiver<String>,
        limits: (Duration, u32, bool),
        resolve: &(dyn Fn(&Hub) -> Vec<Arc<Connection>> + Sync),
        remote: Option<&Route>,
    ) -> (Option<String>, u32) {
        let (timeout, max_retries, mut first_sent) = limits;
        let mut attempts = 0u32;
        loop {
            if !std::mem::take(&mut first_sent) {
                let targets = resolve(self);
                let remote = match remote {
                    Some(route) => self
                        .publish_awaiting_ack(route, payload, &msg.message_id)
                        .await
                        .unwrap_or(0),
                    None => 0,
                };
                if targets.is_empty() && remote == 0 {
                    return (None, attempts);
                }
                self.send_attempt(msg, payload, target, &targets, &self.config());
            }
            attempts += 1;
            if attempts > 1 {
                Counters::add(&self.inner.counters.ack_resends, 1);
            }
            match tokio::time::timeout(timeout, &mut *rx).await {
                Ok(Ok(client_id)) => return (Some(client_id), attempts),
                // The tracker dropped the waiter: the target connection ended.
                Ok(Err(_)) => return (None, attempts),
                Err(_) if attempts > max_retries => return (None, attempts),
                Err(_) => {}
            }
        }
    }

    /// Starts waiting for the ack of `message_id` from `target` (`owner`: the local
    /// connection whose end ends the wait). The receiver gets the acking client id; `None`
    /// when the same delivery is already waiting.
    fn await_ack(
        &self,
        message_id: &str,
        target: &AckTarget,
        owner: Option<ConnectionId>,
    ) -> Option<oneshot::Receiver<String>> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .acks
            .register(message_id, target.clone(), owner, Some(tx), None)
            .then_some(rx)
    }

    /// Counts a final failure and tells the `on_ack_failed` callbacks and event subscribers.
    fn ack_failed(&self, msg: &HubMessage, label: &str, attempts: u32, stored: bool) {
        Counters::add(&self.inner.counters.ack_failures, 1);
        let failure = AckFailure {
            target: label.to_owned(),
            attempts,
            stored_offline: stored,
        };
        self.emit_event(|| HubEvent {
            user_id: msg.receiver.clone(),
            client_id: msg.receiver_client.clone(),
            message: Some(msg.clone()),
            detail: serde_json::to_value(&failure).unwrap_or_default(),
            ..HubEvent::new(events::ACK_FAILED)
        });
        for callback in self.inner.callbacks.ack_failed.snapshot() {
            callback(msg, &failure);
        }
    }

    /// Settles an acknowledged delivery: acked, or stored offline / failed.
    pub(super) async fn ack_outcome(
        &self,
        msg: &HubMessage,
        target: &AckTarget,
        label: &str,
        user_id: &str,
        acked: Option<String>,
        attempts: u32,
    ) -> AckOutcome {
        let status = match acked {
            Some(client_id) => AckStatus::Acked { client_id },
            None => {
                self.inner.acks.cancel(&msg.message_id, target);
                // Timed out against live connections: keep it for the next connect. Never
                // reached anyone: the user may connect while it is being stored.
                let stored = match self.offline_store() {
                    Some(store) => {
                        self.store_offline(&store, user_id, msg, attempts == 0)
                            .await
                    }
                    None => false,
                };
                if attempts > 0 || !stored {
                    self.ack_failed(msg, label, attempts, stored);
                }
                match (stored, attempts) {
                    (true, _) => AckStatus::StoredOffline,
                    (false, 0) => AckStatus::Offline,
                    (false, _) => AckStatus::TimedOut,
                }
            }
        };
        AckOutcome {
            target: label.to_owned(),
            status,
            attempts,
        }
    }
}
