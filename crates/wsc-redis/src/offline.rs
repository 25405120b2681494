//! [`RedisOfflineStore`]: the hub's [`OfflineStore`] on Redis, shared by every node.
//!
//! Per user, two keys in one Redis Cluster slot (hash tag `{user:<id>}`): a list of message
//! ids in arrival order and a hash of id -> `<stored_at_ms>|<HubMessage JSON>`. Each
//! operation is one Lua script, so a store is atomic: the duplicate check, the append, the
//! trimming of the oldest messages and the TTL happen in one step, whatever other nodes do.
//! Expired messages are dropped from the head of the list by the next `store` or `load`
//! (every message lives for the same TTL, so the expired ones are the oldest), and both
//! keys carry the TTL too, so a user who never comes back leaves nothing behind.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::Script;
use wsc_hub::{BoxFuture, HubMessage, OfflineStore, StoreError};

use crate::error::Error;
use crate::options::{RedisOptions, millis};
use crate::pool::Redis;

/// Drops the expired head of the list (KEYS[1] ids, KEYS[2] messages, ARGV[1] ttl ms);
/// shared by the scripts below. Leaves `now` and `dropped` defined.
const EXPIRE_HEAD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
local dropped = 0
while true do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  local stored = redis.call('HGET', KEYS[2], head)
  local at = stored and tonumber(string.match(stored, '^(%d+)|')) or 0
  if at + ttl > now then break end
  redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], head)
  dropped = dropped + 1
end
";

/// ARGV: ttl ms, max per user, message id, JSON. Returns {stored (0/1), dropped}.
static STORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{EXPIRE_HEAD}{}",
        r"
if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
  return {0, dropped}
end
redis.call('HSET', KEYS[2], ARGV[3], string.format('%.0f', now) .. '|' .. ARGV[4])
redis.call('RPUSH', KEYS[1], ARGV[3])
local max = tonumber(ARGV[2])
while redis.call('LLEN', KEYS[1]) > max do
  local oldest = redis.call('LPOP', KEYS[1])
  redis.call('HDEL', KEYS[2], oldest)
  dropped = dropped + 1
end
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return {1, dropped}
"
    ))
});

/// ARGV: ttl ms. Returns {dropped, {stored values, oldest first}}.
static LOAD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{EXPIRE_HEAD}{}",
        r"
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
local values = {}
for _, id in ipairs(ids) do
  local stored = redis.call('HGET', KEYS[2], id)
  if stored then values[#values + 1] = stored end
end
return {dropped, values}
"
    ))
});

/// ARGV: message ids. Returns how many were removed.
static REMOVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local removed = 0
for _, id in ipairs(ARGV) do
  if redis.call('HDEL', KEYS[2], id) == 1 then
    redis.call('LREM', KEYS[1], 1, id)
    removed = removed + 1
  end
end
return removed
",
    )
});

/// Offline messages in Redis: bounded per user (oldest dropped first), each kept for a
/// TTL, deduplicated by `message_id`, shared by every node of the cluster.
///
/// Unlike [`MemoryOfflineStore`](wsc_hub::MemoryOfflineStore) it has no bound on all
/// users together: Redis' own `maxmemory` is that bound.
#[derive(Clone)]
pub struct RedisOfflineStore {
    redis: Arc<Redis>,
    max_per_user: usize,
    ttl: Duration,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedisOfflineStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisOfflineStore")
            .field("redis", &self.redis)
            .field("max_per_user", &self.max_per_user)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl RedisOfflineStore {
    /// A store on its own pool, without connecting (see
    /// [`RedisBackplane::offline_store`](crate::RedisBackplane::offline_store) to share the
    /// backplane's pool). `max_per_user` is at least 1; `ttl` is at least 1 ms.
    pub fn new(options: &RedisOptions, max_per_user: usize, ttl: Duration) -> Result<Self, Error> {
        Ok(Self::with_redis(
            Arc::new(Redis::new(options)?),
            max_per_user,
            ttl,
        ))
    }

    /// [`new`](Self::new), then checks that Redis answers within the connect timeout.
    pub async fn connect(
        options: &RedisOptions,
        max_per_user: usize,
        ttl: Duration,
    ) -> Result<Self, Error> {
        let store = Self::new(options, max_per_user, ttl)?;
        store.redis.ping().await?;
        Ok(store)
    }

    pub(crate) fn with_redis(redis: Arc<Redis>, max_per_user: usize, ttl: Duration) -> Self {
        RedisOfflineStore {
            redis,
            max_per_user: max_per_user.max(1),
            ttl: ttl.max(Duration::from_millis(1)),
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    fn count_dropped(&self, dropped: u64) {
        if dropped > 0 {
            self.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
    }

    async fn store_message(&self, user_id: &str, message: &HubMessage) -> Result<bool, Error> {
        let json = serde_json::to_string(message).map_err(|e| Error::Codec(e.to_string()))?;
        let redis = &self.redis;
        let (stored, dropped): (u8, u64) = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                STORE
                    .key(redis.keys().offline_list(user_id))
                    .key(redis.keys().offline_messages(user_id))
                    .arg(millis(self.ttl))
                    .arg(self.max_per_user)
                    .arg(&message.message_id)
                    .arg(json)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        self.count_dropped(dropped);
        Ok(stored == 1)
    }

    async fn load_messages(&self, user_id: &str) -> Result<Vec<HubMessage>, Error> {
        let redis = &self.redis;
        let (dropped, values): (u64, Vec<String>) = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                LOAD.key(redis.keys().offline_list(user_id))
                    .key(redis.keys().offline_messages(user_id))
                    .arg(millis(self.ttl))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        self.count_dropped(dropped);
        values.iter().map(|value| decode(value)).collect()
    }

    async fn remove_messages(&self, user_id: &str, ids: &[String]) -> Result<(), Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let redis = &self.redis;
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                let mut invocation = REMOVE.key(redis.keys().offline_list(user_id));
                invocation.key(redis.keys().offline_messages(user_id));
                for id in ids {
                    invocation.arg(id);
                }
                invocation
                    .invoke_async::<u64>(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))?;
                Ok(())
            })
            .await
    }
}

/// A stored value: `<stored_at_ms>|<json>`.
fn decode(value: &str) -> Result<HubMessage, Error> {
    let json = value.split_once('|').map_or(value, |(_, json)| json);
    serde_json::from_str(json).map_err(|e| Error::Codec(format!("stored message: {e}")))
}

impl OfflineStore for RedisOfflineStore {
    fn store(&self, user_id: &str, message: HubMessage) -> BoxFuture<Result<bool, StoreError>> {
        let store = self.clone();
        let user_id = user_id.to_owned();
        Box::pin(async move {
            store
                .store_message(&user_id, &message)
                .await
                .map_err(StoreError::from)
        })
    }

    fn load(&self, user_id: &str) -> BoxFuture<Result<Vec<HubMessage>, StoreError>> {
        let store = self.clone();
        let user_id = user_id.to_owned();
        Box::pin(async move {
            store
                .load_messages(&user_id)
                .await
                .map_err(StoreError::from)
        })
    }

    fn remove(&self, user_id: &str, message_ids: Vec<String>) -> BoxFuture<Result<(), StoreError>> {
        let store = self.clone();
        let user_id = user_id.to_owned();
        Box::pin(async move {
            store
                .remove_messages(&user_id, &message_ids)
                .await
                .map_err(StoreError::from)
        })
    }

    fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn a_stored_value_is_its_time_then_the_json() {
        let message = decode(r#"1700000000000|{"content":"a|b","message_id":"m"}"#).unwrap();
        assert_eq!(message.content, "a|b");
        assert_eq!(message.message_id, "m");
        assert!(decode("123|not json").is_err());
    }
}
