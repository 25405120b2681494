//! This node's link to the others: from `wsc.redis` and `wsc.distributed`, the Redis
//! backplane (routing and presence), the shared history (`seq_no` and resume windows) and
//! the Redis offline store, set on the hub before it starts; and the readiness check.

use std::sync::Arc;

use wsc_config::{GatewayConfig, OfflineStore};
use wsc_hub::Hub;
use wsc_redis::{RedisBackplane, RedisOptions};

/// The Redis options of a configuration (the same fields and defaults as the file's).
pub(crate) fn redis_options(config: &GatewayConfig) -> RedisOptions {
    let (redis, distributed) = (&config.wsc.redis, &config.wsc.distributed);
    let options = if redis.cluster_urls.is_empty() {
        RedisOptions::new(redis.url.clone())
    } else {
        RedisOptions::cluster(redis.cluster_urls.iter().cloned())
    };
    options
        .with_pool_size(redis.pool_size)
        .with_connect_timeout(redis.connect_timeout)
        .with_key_prefix(distributed.key_prefix.clone())
        .with_presence_ttl(distributed.presence_ttl)
        .with_node_ttl(distributed.node_ttl)
}

/// Links the hub to Redis as the configuration says, before it starts: with
/// `wsc.distributed.enabled`, as a node of the cluster (backplane, shared history, group
/// memberships and tickets); with
/// `wsc.offline.store: redis`, with the shared offline store. Returns the Redis link when
/// one is used (for readiness), or `None` when `wsc.redis.enabled` is false.
///
/// Nothing here waits for Redis: a node whose Redis is down starts, serves its own
/// connections, reports not ready, and joins the cluster by itself once Redis answers.
pub(crate) fn link(config: &GatewayConfig, hub: &Hub) -> Result<Option<RedisBackplane>, String> {
    if !config.wsc.redis.enabled {
        return Ok(None);
    }
    let backplane = RedisBackplane::new(redis_options(config)).map_err(|e| e.to_string())?;
    if config.wsc.distributed.enabled {
        hub.set_backplane(Arc::new(backplane.clone()));
        hub.set_history(Arc::new(backplane.history()));
        hub.set_group_store(Arc::new(backplane.groups()));
        hub.set_ticket_store(Arc::new(backplane.tickets()));
    }
    let offline = &config.wsc.offline;
    if offline.enabled && offline.store == OfflineStore::Redis {
        let store = backplane.offline_store(offline.max_per_user, offline.ttl);
        hub.set_offline_store(Some(Arc::new(store)));
    }
    Ok(Some(backplane))
}

/// The readiness of the Redis link: `Ok` when Redis answers (and, for a node of a cluster,
/// its subscription is up), else why not.
pub(crate) async fn check(backplane: &RedisBackplane) -> Result<(), String> {
    use wsc_hub::Backplane as _;
    backplane.health().await.map_err(|e| e.to_string())
}
