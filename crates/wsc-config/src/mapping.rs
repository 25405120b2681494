//! From the file to the hub: [`WscConfig::hub_config`] maps the `wsc` section onto the hub's
//! own [`HubConfig`], and [`WscConfig::identity_params`] names the identity parameters.

use wsc_hub::{DecodeLimits, HubConfig, IdentityParams, MultiLoginPolicy, SlowConsumerPolicy};

use crate::schema::{LoginPolicy, SlowConsumer, WscConfig};

impl WscConfig {
    /// The hub settings this configuration describes.
    pub fn hub_config(&self) -> HubConfig {
        let mut hub = HubConfig::default();
        if !self.distributed.node_id.is_empty() {
            hub.node_id = self.distributed.node_id.clone();
        }
        hub.heartbeat_interval = self.heartbeat_interval;
        hub.client_timeout = self.client_timeout;
        hub.queue_capacity = self.message_buffer_size;
        hub.queue_max_bytes = self.performance.queue_max_bytes;
        hub.slow_consumer = match self.performance.slow_consumer {
            SlowConsumer::Disconnect => SlowConsumerPolicy::Disconnect,
            SlowConsumer::DropMessage => SlowConsumerPolicy::DropMessage,
        };
        hub.write_timeout = self.performance.write_timeout;
        hub.read_buffer_size = self.performance.read_buffer_size;
        hub.write_buffer_size = self.performance.write_buffer_size;
        hub.multi_login = match self.multi_login.policy {
            LoginPolicy::AllowAll => MultiLoginPolicy::AllowAll,
            LoginPolicy::KickOld => MultiLoginPolicy::KickOld,
            LoginPolicy::KickNew => MultiLoginPolicy::KickNew,
        };
        hub.max_connections_per_user = self.multi_login.max_connections_per_user;
        hub.kick_notification = self.multi_login.kick_notification.clone();
        hub.max_group_size = self.groups.max_group_size;
        hub.max_groups_per_user = self.groups.max_groups_per_user;
        hub.max_tickets_per_agent = self.tickets.max_tickets_per_agent;
        hub.ticket_auto_assign = self.tickets.auto_assign;
        hub.ticket_timeout = self.tickets.timeout;
        hub.agent_types = self.tickets.agent_types.clone();
        hub.ticket_history_size = self.tickets.history_size;
        hub.ticket_client_requests = self.tickets.client_requests;
        hub.observers_enabled = self.observers.enabled;
        hub.observer_types = self.observers.user_types.clone();
        hub.max_connections = self.performance.max_connections_per_node;
        hub.limits = DecodeLimits {
            max_message_size: self.security.max_message_size,
            ..DecodeLimits::default()
        };
        (hub.max_inbound_per_second, hub.max_inbound_bytes_per_second) =
            if self.security.enable_rate_limit {
                (
                    self.security.max_messages_per_second,
                    self.security.max_bytes_per_second,
                )
            } else {
                (0, 0)
            };
        hub.relay_status_messages = self.relay_status_messages;
        hub.relay.enabled = self.relay.enabled;
        hub.relay.user_targets = self.relay.user_targets.clone();
        hub.ack_timeout = self.ack.timeout;
        hub.ack_retries = self.ack.max_retries;
        hub.max_pending_acks = self.ack.max_pending_per_connection;
        hub.offline_enabled = self.offline.enabled;
        hub.offline_max_per_user = self.offline.max_per_user;
        hub.offline_ttl = self.offline.ttl;
        hub.offline_max_total = self.offline.max_total;
        hub.max_outbound_message_size = self.security.max_outbound_message_size;
        hub.max_ticket_ids = self.security.max_ticket_ids;
        hub.max_group_ids = self.security.max_group_ids;
        hub.history_size = self.recovery.history_size;
        hub.history_ttl = self.recovery.history_ttl;
        hub
    }

    /// The identity parameter names (go-wsc's defaults).
    pub fn identity_params(&self) -> IdentityParams {
        IdentityParams::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::schema::GatewayConfig;

    #[test]
    fn the_default_file_maps_onto_the_hub_defaults() {
        let mut mapped = GatewayConfig::default().wsc.hub_config();
        let hub = HubConfig::default();
        mapped.node_id = hub.node_id.clone();
        assert_eq!(mapped, hub);
    }

    #[test]
    fn every_mapped_key_reaches_the_hub() {
        let mut wsc = WscConfig {
            client_timeout: Duration::from_secs(7),
            message_buffer_size: 9,
            ..WscConfig::default()
        };
        wsc.multi_login.policy = LoginPolicy::KickNew;
        wsc.security.enable_rate_limit = false;
        wsc.performance.slow_consumer = SlowConsumer::DropMessage;
        wsc.distributed.node_id = "node-a".to_owned();
        let hub = wsc.hub_config();
        assert_eq!(hub.client_timeout, Duration::from_secs(7));
        assert_eq!(hub.queue_capacity, 9);
        assert_eq!(hub.multi_login, MultiLoginPolicy::KickNew);
        assert_eq!(
            (hub.max_inbound_per_second, hub.max_inbound_bytes_per_second),
            (0, 0)
        );
        assert_eq!(hub.slow_consumer, SlowConsumerPolicy::DropMessage);
        assert_eq!(hub.node_id, "node-a");
    }
}
