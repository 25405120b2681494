//! Starting and stopping the hub, and the shared liveness timer (one task per hub).

use super::*;

impl Hub {
    /// Starts the hub: accepts registrations, runs the shared liveness timer (one task for
    /// all connections) and, with a backplane that has peers, joins the cluster. Idempotent.
    /// Must be called inside a tokio runtime.
    pub fn start(&self) {
        if self.inner.running.swap(true, Ordering::SeqCst) {
            return;
        }
        *self.inner.started_at.lock() = Some(std::time::Instant::now());
        let token = CancellationToken::new();
        *self.inner.timer.lock() = Some(token.clone());
        self.attach_backplane(token.clone());
        let weak = Arc::downgrade(&self.inner);
        let heartbeat = |hub: &Hub| {
            hub.config()
                .heartbeat_interval
                .max(Duration::from_millis(10))
        };
        let mut period = heartbeat(self);
        tokio::spawn(async move {
            let every = |period| {
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ticks
            };
            let mut ticks = every(period);
            loop {
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = ticks.tick() => {}
                }
                let Some(inner) = weak.upgrade() else { break };
                let hub = Hub { inner };
                hub.sweep();
                // A reconfigured heartbeat interval takes effect from the next tick.
                if heartbeat(&hub) != period {
                    period = heartbeat(&hub);
                    ticks = every(period);
                }
            }
        });
        tracing::info!(node_id = %self.node_id(), "hub started");
    }

    /// Stops the hub: refuses new registrations and sends, closes every connection with
    /// 1001, settles in-flight acknowledged sends (stored offline when not acked), and waits
    /// until every connection has ended or `deadline` passed. Returns the number of
    /// connections still open at the deadline (0 on a clean drain).
    pub async fn stop(&self, deadline: Duration) -> usize {
        // The flag flips under the registry's write lock, where admissions happen too: an
        // admission either completed before (and is in the snapshot below, so it gets 1001)
        // or sees the hub stopped and is refused. None slips in between.
        let registered: Vec<Arc<Connection>> = {
            let registry = self.inner.registry.write();
            self.inner.running.store(false, Ordering::SeqCst);
            registry.all_registered().cloned().collect()
        };
        if let Some(token) = self.inner.timer.lock().take() {
            token.cancel();
        }
        self.detach_backplane().await;
        for conn in registered {
            conn.close(DisconnectReason::ServerShutdown);
        }
        // In-flight acknowledged sends settle now: unacknowledged messages go to the
        // offline store (when there is one) instead of waiting out their timeouts.
        self.inner.acks.release_waiters();
        let drained = tokio::time::timeout(deadline, async {
            loop {
                let notified = self.inner.emptied.notified();
                if self.connection_count() == 0 {
                    return;
                }
                notified.await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                remaining = self.connection_count(),
                "hub stop deadline passed with connections still open"
            );
        }
        self.connection_count()
    }

    /// Whether the hub accepts registrations and sends.
    pub fn is_running(&self) -> bool {
        self.inner.running.load(Ordering::SeqCst)
    }

    pub(super) fn ensure_running(&self) -> Result<(), SendError> {
        if self.is_running() {
            Ok(())
        } else {
            Err(SendError::NotRunning)
        }
    }

    /// One pass of the shared liveness timer: close the silent, ping the rest.
    pub(super) fn sweep(&self) {
        let now = self.now_ms();
        let timeout = self.config().client_timeout.as_millis() as u64;
        for conn in self.snapshot(|reg, out| out.extend(reg.all_registered().cloned())) {
            if now.saturating_sub(conn.last_seen_ms()) >= timeout {
                conn.close(DisconnectReason::Timeout);
            } else {
                // A full queue already means traffic is pending; skipping the ping is fine.
                let _ = self.enqueue_frame(&conn, Outbound::Keepalive);
            }
        }
        if let Some(store) = self.offline_store() {
            store.purge_expired();
        }
        self.prune_histories();
        self.sweep_tickets();
        if self.inner.had_observers.load(Ordering::Acquire) {
            self.announce_observers();
        }
    }
}
