//! A client frame after decoding: stamping, pong, ack, resume, ticket requests, status
//! relay, the relay policy, interceptors and the message-received callbacks.

use super::*;

/// What the first look at a client frame decided.
// A return value that is matched at once and never stored: boxing the message would only add
// an allocation per routed frame.
#[allow(clippy::large_enum_variant)]
pub(super) enum Handled {
    /// Handled already; `matched_ack` says whether it was an ack that matched a delivery
    /// (pending or just confirmed): only those are exempt from the frame rate limit.
    Done { matched_ack: bool },
    /// To be routed, resumed or given to the callbacks.
    Route { msg: HubMessage, frame_id: String },
}

impl Hub {
    /// The first, synchronous look at one decoded client frame: pings and acks end here;
    /// everything else is handed back for [`handle_routed`](Self::handle_routed).
    pub(super) fn handle_message(&self, conn: &Arc<Connection>, mut msg: HubMessage) -> Handled {
        Counters::by_type(
            &self.inner.counters.in_by_type,
            type_label(&msg.message_type),
            1,
        );
        // The server speaks for the connection: a client cannot claim another identity or
        // leave its app and namespace.
        let identity = conn.identity();
        msg.sender = identity.user_id.clone();
        msg.sender_type = identity.user_type.clone();
        msg.sender_client = identity.client_id.clone();
        msg.app_id = identity.app_id.clone();
        msg.namespace = identity.namespace.clone();
        // Error frames name the id the client chose, never one the server generated.
        let frame_id = msg.id.clone();

        if msg.message_type.is_heartbeat() {
            let pong = HubMessage {
                id: frame_id,
                message_type: MessageType::Pong,
                sender: SYSTEM.to_owned(),
                sender_type: SYSTEM.to_owned(),
                receiver: identity.user_id.clone(),
                receiver_type: identity.user_type.clone(),
                ..HubMessage::default()
            };
            self.send_direct(conn, pong);
            return Handled::Done { matched_ack: false };
        }
        if msg.message_type == MessageType::Ack {
            let matched_ack = self.handle_ack(conn, &msg.message_id, &frame_id);
            return Handled::Done { matched_ack };
        }
        Handled::Route { msg, frame_id }
    }

    /// The frames that route, resume or reach the callbacks (not pings or acks).
    pub(super) async fn handle_routed(
        &self,
        conn: &Arc<Connection>,
        mut msg: HubMessage,
        frame_id: String,
    ) {
        if msg.message_type == MessageType::Resume {
            let recovery = self
                .resume(conn, msg.seq_no, &mut HashSet::new(), |frame| {
                    let _ = self.enqueue_frame(conn, frame);
                })
                .await;
            if let Some(notice) = self.recovered_notice(conn, &recovery) {
                let _ = self.enqueue_frame(conn, notice);
            }
            return;
        }
        // Numbering, the replay marker and ack tracking belong to the server: a client
        // frame cannot make its receiver record a sequence number, believe a message came
        // from the offline store, or ack something nobody waits for.
        msg.seq_no = 0;
        msg.source = None;
        msg.require_ack = false;
        self.prepare(&mut msg);
        for interceptor in self.inner.callbacks.inbound.snapshot() {
            if let Err(e) = interceptor(conn, &mut msg) {
                self.reject_frame(conn, FrameError::Rejected(e.0), &frame_id);
                return;
            }
        }
        let config = self.config();
        if config.ticket_client_requests && self.ticket_request(conn, &msg, &frame_id).await {
            return;
        }
        if msg.message_type.is_forwardable() && config.relay_status_messages {
            self.relay(conn, msg, &frame_id).await;
            return;
        }
        if config.relay.enabled
            && let Err(refusal) = self.relay_targeted(conn, &msg, &config.relay).await
        {
            self.reject_frame(conn, FrameError::Rejected(refusal), &frame_id);
            return;
        }
        self.emit_event(|| HubEvent {
            user_id: conn.user_id().to_owned(),
            client_id: conn.client_id().to_owned(),
            message: Some(msg.clone()),
            ..HubEvent::new(events::MESSAGE_RECEIVED)
        });
        let msg = Arc::new(msg);
        for callback in self.inner.callbacks.received.snapshot() {
            if let Err(e) = callback(conn.clone(), msg.clone()).await {
                self.emit_error(Some(conn), &ErrorEvent::CallbackRejected(e.0.clone()));
                self.reject_frame(conn, FrameError::Rejected(e.0), &frame_id);
                return;
            }
        }
    }

    pub(super) async fn relay(&self, conn: &Arc<Connection>, mut msg: HubMessage, frame_id: &str) {
        if msg.receiver.is_empty() {
            let err = FrameError::MissingReceiver(msg.message_type.to_string());
            self.reject_frame(conn, err, frame_id);
            return;
        }
        let policy = self.inner.relay_policy.read().clone();
        if let Some(policy) = policy
            && !policy(conn, &msg)
        {
            self.reject_frame(
                conn,
                FrameError::RelayDenied(msg.receiver.clone()),
                frame_id,
            );
            return;
        }
        let identity = conn.identity();
        // A relay stays inside the sender's exact app and namespace, even when those are
        // empty (an empty scope on a message would otherwise mean "anywhere"), and is
        // volatile: no number, no resume window, never stored.
        let mut route = Route::new(Target::User {
            user_id: msg.receiver.clone(),
        })
        .excluding_client(identity.client_id.clone());
        route.exact_scope = true;
        route.app_id.clone_from(&identity.app_id);
        route.namespace.clone_from(&identity.namespace);
        route.only_client = Some(msg.receiver_client.clone()).filter(|c| !c.is_empty());
        let _ = self.dispatch(&mut route, &mut msg, false).await;
    }

    /// The relay policy of [`HubConfig::relay`]: a client message naming a ticket, a group
    /// or a user is sent there when the sender may address it. `Err` is the refusal text
    /// (starting with `relay_denied`) or why the send failed.
    pub(super) async fn relay_targeted(
        &self,
        conn: &Arc<Connection>,
        msg: &HubMessage,
        policy: &RelayPolicy,
    ) -> Result<(), String> {
        let identity = conn.identity();
        let sent = if !msg.ticket_id.is_empty() {
            let bound = identity.ticket_ids.contains(&msg.ticket_id)
                || self
                    .inner
                    .registry
                    .read()
                    .is_ticket_participant(&msg.ticket_id, conn.user_id());
            if !bound {
                return Err(format!(
                    "relay_denied: not bound to ticket {}",
                    msg.ticket_id
                ));
            }
            self.send_to_ticket(&msg.ticket_id, msg.clone()).await
        } else if let Some(group) = msg.group_ids.first() {
            let member = conn.bound_groups().contains(group)
                || self
                    .inner
                    .registry
                    .read()
                    .is_group_member(group, conn.user_id());
            if !member {
                return Err(format!("relay_denied: not a member of group {group}"));
            }
            self.send_to_group(group, msg.clone()).await
        } else if !msg.receiver.is_empty() {
            if !policy.user_targets.contains(&identity.user_type) {
                return Err(format!(
                    "relay_denied: {} users may not message users directly",
                    identity.user_type
                ));
            }
            self.send_to_user(&msg.receiver, msg.clone()).await
        } else {
            return Ok(());
        };
        sent.map(drop).map_err(|e| e.to_string())
    }

    pub(super) fn handle_ack(
        &self,
        conn: &Arc<Connection>,
        message_id: &str,
        frame_id: &str,
    ) -> bool {
        if message_id.is_empty() {
            let error = FrameError::UnknownAck("message_id is required".to_owned());
            self.reject_frame(conn, error, frame_id);
            return false;
        }
        match self.inner.acks.ack(message_id, conn) {
            AckMatch::Confirmed { offline_user } => {
                Counters::add(&self.inner.counters.acks_confirmed, 1);
                if let (Some(user), Some(store)) = (offline_user, self.offline_store()) {
                    let removal = store.remove(&user, vec![message_id.to_owned()]);
                    tokio::spawn(removal);
                }
                true
            }
            // Another node sent it: the ack goes back there (for a ticket or group
            // message, each connection's ack; a repeated one is ignored there).
            AckMatch::Unknown | AckMatch::Duplicate if self.forward_ack(conn, message_id) => true,
            // A resend that crossed the first ack: nothing to do.
            AckMatch::Duplicate => true,
            AckMatch::Unknown => {
                let detail = format!("no delivery {message_id} is waiting for an ack");
                self.reject_frame(conn, FrameError::UnknownAck(detail), frame_id);
                false
            }
        }
    }

    pub(super) fn reject_frame(&self, conn: &Connection, error: FrameError, reply_to: &str) {
        Counters::add(&self.inner.counters.invalid_frames, 1);
        tracing::debug!(
            client_id = conn.client_id(),
            code = error.code(),
            "frame refused"
        );
        self.send_direct(conn, error.to_message(reply_to));
        self.emit_error(Some(conn), &ErrorEvent::InvalidFrame(error));
    }
}
