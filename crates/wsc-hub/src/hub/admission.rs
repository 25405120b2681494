//! Registering a connection (checks, connect callbacks, one atomic admission) and
//! unregistering it (exactly one disconnect callback).

use super::*;

impl Hub {
    /// Registers a connection. When this returns `Ok`, the connection is reachable by every
    /// route: a message sent right after is queued for it.
    ///
    /// Order: identity check, node limit, connect callbacks, then one atomic admission
    /// (client-id replacement, multi-login policy, indexes).
    pub async fn register(&self, mut identity: Identity) -> Result<Registration, RegisterError> {
        let result = self.try_register(&mut identity).await;
        if result.is_err() {
            Counters::add(&self.inner.counters.connections_rejected, 1);
        }
        result
    }

    pub(super) async fn try_register(
        &self,
        identity: &mut Identity,
    ) -> Result<Registration, RegisterError> {
        if !self.is_running() {
            return Err(RegisterError::NotRunning);
        }
        identity.validate()?;
        let config = self.config();
        identity.check_list_limits(config.max_ticket_ids, config.max_group_ids)?;
        let reconnect = !identity.client_id.is_empty()
            && self
                .inner
                .registry
                .read()
                .by_client_any(&identity.client_id)
                .is_some();
        if config.max_connections > 0
            && !reconnect
            && self.connection_count() >= config.max_connections
        {
            return Err(RegisterError::NodeFull {
                limit: config.max_connections,
            });
        }
        if identity.client_id.is_empty() {
            identity.client_id = uuid::Uuid::now_v7().simple().to_string();
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let observer =
            config.observers_enabled && config.observer_types.contains(&identity.user_type);
        let conn = Arc::new(
            Connection::new(
                id,
                std::mem::take(identity),
                config.queue_capacity,
                self.now_ms(),
            )
            .observing(observer),
        );
        for callback in self.inner.callbacks.connect.snapshot() {
            if let Err(e) = callback(conn.clone()).await {
                self.emit_error(Some(&conn), &ErrorEvent::CallbackRejected(e.0.clone()));
                return Err(RegisterError::Rejected(e.0));
            }
        }
        // Offline messages and a requested resume go into the connection's backlog before it
        // becomes reachable, so they precede every live message. Loading has no side effect:
        // acks and counters for the replay start only once the admission succeeded.
        let mut backlog = Backlog::default();
        self.replay_offline(&conn, &mut backlog).await;
        // Messages already replayed from the offline store are not repeated.
        let mut recovery = match conn.identity().last_seq {
            Some(last_seq) => Some(
                self.resume(&conn, last_seq, &mut backlog.replayed, |frame| {
                    backlog.frames.push_back((frame, None))
                })
                .await,
            ),
            None => None,
        };
        let (admitted, was_online) = {
            let mut registry = self.inner.registry.write();
            // Checked under the lock `stop` takes to flip the flag: a connection admitted
            // here is in stop's snapshot and gets 1001.
            if !self.is_running() {
                return Err(RegisterError::NotRunning);
            }
            let was_online = registry.is_user_online(conn.user_id());
            let admitted = registry.admit(
                conn.clone(),
                config.multi_login,
                config.max_connections_per_user,
                config.max_connections,
            );
            (admitted, was_online)
        };
        let evicted = admitted.map_err(|e| match e {
            AdmitError::NodeFull => RegisterError::NodeFull {
                limit: config.max_connections,
            },
            AdmitError::UserLimit => RegisterError::UserConnectionLimit {
                limit: config.max_connections_per_user,
            },
            AdmitError::ClientIdInUse => RegisterError::ClientIdInUse,
        })?;
        for (old, reason) in evicted {
            if reason == DisconnectReason::LoginElsewhere {
                let notice = HubMessage {
                    receiver: old.user_id().to_owned(),
                    ..HubMessage::new(MessageType::ForceOffline, &config.kick_notification)
                }
                .with_data("reason", "login_elsewhere");
                self.send_direct(&old, notice);
            }
            old.close(reason);
        }
        // The user is present in the cluster before the store is read again: a node that
        // stores a message for it after this read finds it present and hands the message
        // here (`Envelope::Stored`); one that stored before is seen by the read.
        if !was_online {
            self.user_came_online(conn.user_id()).await;
        }
        // A message stored or numbered between the first reads and the admission is replayed
        // now, still ahead of anything routed after the admission (one numbered after the
        // admission may come twice, replayed and live: clients dedupe by `message_id`).
        self.replay_offline(&conn, &mut backlog).await;
        if let Some(recovery) = recovery.as_mut() {
            self.resume_rest(&conn, recovery, &mut backlog).await;
        }
        self.commit_replay(&conn, &mut backlog);
        if !was_online {
            self.load_memberships(conn.user_id()).await;
            if self.is_agent(&conn.identity().user_type) {
                self.agent_came_online(conn.user_id(), &conn.identity().group_ids)
                    .await;
            }
        }
        if conn.is_observer() {
            self.announce_observers();
        }
        Counters::add(&self.inner.counters.connections_accepted, 1);
        self.emit_event(|| HubEvent {
            user_id: conn.user_id().to_owned(),
            client_id: conn.client_id().to_owned(),
            ..HubEvent::new(events::CLIENT_CONNECTED)
        });
        for callback in self.inner.callbacks.registered.snapshot() {
            callback(&conn);
        }
        tracing::debug!(
            user_id = conn.user_id(),
            client_id = conn.client_id(),
            "registered"
        );
        Ok(Registration::new(self.clone(), conn, backlog))
    }

    pub(super) fn unregister(&self, conn: &Arc<Connection>, observed: DisconnectReason) {
        conn.close(observed);
        let reason =
            conn.disconnect_reason()
                .cloned()
                .unwrap_or(DisconnectReason::ConnectionLost {
                    error: "unknown".to_owned(),
                });
        self.inner.acks.drop_connection(conn);
        let empty = self.leave_registry(conn);
        Counters::add(&self.inner.counters.connections_closed, 1);
        if empty {
            self.inner.emptied.notify_waiters();
        }
        tracing::debug!(user_id = conn.user_id(), ?reason, "unregistered");
        self.emit_event(|| HubEvent {
            user_id: conn.user_id().to_owned(),
            client_id: conn.client_id().to_owned(),
            detail: serde_json::to_value(&reason).unwrap_or_default(),
            ..HubEvent::new(events::CLIENT_DISCONNECTED)
        });
        for callback in self.inner.callbacks.disconnect.snapshot() {
            callback(conn, &reason);
        }
    }
}
