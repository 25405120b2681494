//! Putting one frame in one connection's bounded queue, with the slow-consumer policy.

use super::*;
use crate::outbound_queue::Refused;

impl Hub {
    /// Non-blocking enqueue with the slow-consumer policy. Never awaits.
    pub(super) fn enqueue(
        &self,
        conn: &Connection,
        payload: &Payload,
        config: &HubConfig,
    ) -> Result<(), FailureReason> {
        let counters = &self.inner.counters;
        if conn.is_closing() {
            Counters::add(&counters.messages_dropped, 1);
            return Err(FailureReason::ConnectionClosed);
        }
        match conn
            .queue
            .push(Outbound::Message(payload.clone()), config.queue_max_bytes)
        {
            Ok(()) => {
                if conn.oldest_queued_us.load(Ordering::Relaxed) == 0 {
                    let _ = conn.oldest_queued_us.compare_exchange(
                        0,
                        self.now_us() + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                }
                return Ok(());
            }
            Err(Refused::Closed) => {
                Counters::add(&counters.messages_dropped, 1);
                return Err(FailureReason::ConnectionClosed);
            }
            Err(Refused::Full) => {}
        }
        Counters::add(&counters.messages_dropped, 1);
        match config.slow_consumer {
            SlowConsumerPolicy::DropMessage => Err(FailureReason::QueueFull),
            _ => {
                if conn.close(DisconnectReason::SlowConsumer) {
                    Counters::add(&counters.slow_consumer_disconnects, 1);
                    tracing::warn!(client_id = conn.client_id(), "slow consumer disconnected");
                    self.emit_error(Some(conn), &ErrorEvent::SlowConsumer);
                }
                Err(FailureReason::SlowConsumerDisconnected)
            }
        }
    }

    pub(super) fn enqueue_frame(
        &self,
        conn: &Connection,
        frame: Outbound,
    ) -> Result<(), FailureReason> {
        match frame {
            Outbound::Message(payload) => self.enqueue(conn, &payload, &self.config()),
            Outbound::Keepalive => conn
                .queue
                .push(Outbound::Keepalive, usize::MAX)
                .map_err(|_| FailureReason::QueueFull),
        }
    }
}
