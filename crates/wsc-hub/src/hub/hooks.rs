//! Registering callback chains and interceptors, and running the ones every operation shares.

use super::*;

impl Hub {
    /// Adds an inbound interceptor: it sees every client message the hub does not handle
    /// itself (not pings, acks or resumes), after the sender fields are stamped, and may
    /// modify it or refuse it (the client gets an error frame `rejected`).
    pub fn add_inbound_interceptor<F>(&self, f: F)
    where
        F: Fn(&Connection, &mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        self.inner.callbacks.inbound.push(Arc::new(f));
    }

    /// Adds an outbound interceptor: it sees every message sent through the hub's routes
    /// (and relays) before it is serialized, and may modify it or refuse it (the send fails
    /// with [`SendError::Rejected`]).
    pub fn add_outbound_interceptor<F>(&self, f: F)
    where
        F: Fn(&mut HubMessage) -> Result<(), CallbackError> + Send + Sync + 'static,
    {
        self.inner.callbacks.outbound.push(Arc::new(f));
    }

    pub(super) fn intercept(&self, msg: &mut HubMessage) -> Result<(), SendError> {
        if self.inner.callbacks.outbound.is_empty() {
            return Ok(());
        }
        for interceptor in self.inner.callbacks.outbound.snapshot() {
            interceptor(msg).map_err(|e| SendError::Rejected(e.0))?;
        }
        Ok(())
    }

    /// Adds a callback for acknowledged deliveries that finally failed (after every
    /// resend, or to an offline target without a store), with the message and why.
    pub fn on_ack_failed<F>(&self, f: F)
    where
        F: Fn(&HubMessage, &AckFailure) + Send + Sync + 'static,
    {
        self.inner.callbacks.ack_failed.push(Arc::new(f));
    }

    /// Adds a connect callback. An error rejects the connection: [`Hub::register`] returns
    /// [`RegisterError::Rejected`] with its text. The callback runs before the connection is
    /// reachable by the routes; to greet it, queue a frame with
    /// [`Hub::send_to_new_connection`].
    pub fn on_client_connect<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Connection>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner
            .callbacks
            .connect
            .push(Arc::new(move |c| Box::pin(f(c))));
    }

    /// Adds a callback that runs once a connection is admitted and reachable by every route
    /// (after the connect callbacks accepted it and the multi-login policy let it in). Every
    /// registered connection later gets exactly one disconnect callback.
    pub fn on_client_registered<F>(&self, f: F)
    where
        F: Fn(&Connection) + Send + Sync + 'static,
    {
        self.inner.callbacks.registered.push(Arc::new(f));
    }

    /// Adds a disconnect callback; it runs exactly once per registered connection, with the
    /// first reason that applied.
    pub fn on_client_disconnect<F>(&self, f: F)
    where
        F: Fn(&Connection, &DisconnectReason) + Send + Sync + 'static,
    {
        self.inner.callbacks.disconnect.push(Arc::new(f));
    }

    /// Adds a message-received callback for client frames the hub does not handle itself.
    /// An error stops the chain and answers the client with an error frame (`rejected`).
    pub fn on_message_received<F, Fut>(&self, f: F)
    where
        F: Fn(Arc<Connection>, Arc<HubMessage>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), CallbackError>> + Send + 'static,
    {
        self.inner
            .callbacks
            .received
            .push(Arc::new(move |c, m| Box::pin(f(c, m))));
    }

    /// Adds a callback that runs once per send operation, after routing, with the report
    /// (for acknowledged sends, once settled: the targets that acked count as delivered).
    /// Frames the hub produces itself (pong, errors, notices, replays) are not sends.
    pub fn on_message_sent<F>(&self, f: F)
    where
        F: Fn(&HubMessage, &DeliveryReport) + Send + Sync + 'static,
    {
        self.inner.callbacks.sent.push(Arc::new(f));
    }

    /// Adds an error callback (invalid frames, slow consumers, refused callbacks).
    pub fn on_error<F>(&self, f: F)
    where
        F: Fn(Option<&Connection>, &ErrorEvent) + Send + Sync + 'static,
    {
        self.inner.callbacks.error.push(Arc::new(f));
    }

    /// Replaces the relay policy for status frames (`typing`, `read`, ...): it decides
    /// whether `connection` may relay `message` to `message.receiver`. Without one, every
    /// relay inside the sender's app and namespace is allowed (when
    /// [`HubConfig::relay_status_messages`] is on).
    pub fn set_relay_policy<F>(&self, f: F)
    where
        F: Fn(&Connection, &HubMessage) -> bool + Send + Sync + 'static,
    {
        *self.inner.relay_policy.write() = Some(Arc::new(f));
    }

    pub(super) fn emit_error(&self, conn: Option<&Connection>, event: &ErrorEvent) {
        for callback in self.inner.callbacks.error.snapshot() {
            callback(conn, event);
        }
    }

    pub(super) fn message_sent(&self, msg: &HubMessage, report: &DeliveryReport) {
        Counters::by_type(
            &self.inner.counters.out_by_type,
            type_label(&msg.message_type),
            report.delivered as u64,
        );
        self.emit_event(|| HubEvent {
            user_id: msg.receiver.clone(),
            client_id: msg.receiver_client.clone(),
            message: Some(msg.clone()),
            detail: serde_json::to_value(report).unwrap_or_default(),
            ..HubEvent::new(events::MESSAGE_SENT)
        });
        if !self.inner.callbacks.sent.is_empty() {
            for callback in self.inner.callbacks.sent.snapshot() {
                callback(msg, report);
            }
        }
    }

    /// Adds an event handler: it runs for every [`HubEvent`], synchronously where the event
    /// happens and before the callbacks of that kind (so a `message.received` handler runs
    /// before a message callback can refuse the message).
    pub fn on_event<F>(&self, f: F)
    where
        F: Fn(&HubEvent) + Send + Sync + 'static,
    {
        self.inner.callbacks.event.push(Arc::new(f));
        self.inner.event_listeners.store(true, Ordering::Release);
    }

    /// Every event, for a consumer in another task (the gRPC event stream). A receiver that
    /// falls more than 1,024 events behind misses the oldest ones rather than slowing the
    /// hub down.
    pub fn subscribe_events(&self) -> tokio::sync::broadcast::Receiver<HubEvent> {
        self.inner.event_listeners.store(true, Ordering::Release);
        self.inner.events.subscribe()
    }

    /// Builds and hands out an event, only when someone listens.
    pub(super) fn emit_event(&self, make: impl FnOnce() -> HubEvent) {
        // One load on the hot path of a hub nobody listens to.
        if !self.inner.event_listeners.load(Ordering::Acquire) {
            return;
        }
        let handlers = !self.inner.callbacks.event.is_empty();
        let stream = self.inner.events.receiver_count() > 0;
        if !handlers && !stream {
            return;
        }
        let event = make();
        for handler in self.inner.callbacks.event.snapshot() {
            handler(&event);
        }
        if stream {
            let _ = self.inner.events.send(event);
        }
    }
}
