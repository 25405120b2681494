//! [`RedisHistory`]: the hub's [`HistoryStore`] on Redis, shared by every node, so a
//! user's `seq_no` is unique across the cluster and a client resumes on whichever node it
//! reconnects to.
//!
//! Per user, two keys in one Redis Cluster slot (hash tag `{user:<id>}`): the counter and
//! the window, a sorted set scored by sequence number whose members are small JSON records
//! (number, expiry, message id, scope, and the frame without its number). `append` is one
//! Lua script: it takes the next number, keeps the record, trims the window to its size and
//! drops expired records, atomically, whatever other nodes do at the same moment. Expiry
//! times come from Redis' own clock, so nodes with skewed clocks agree.

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use serde::Deserialize;
use wsc_hub::{
    BoxFuture, HistoryStore, NewEntry, Payload, StoreError, Window, WindowEntry, WindowLimits,
};

use crate::error::Error;
use crate::options::{RedisOptions, millis};
use crate::pool::Redis;

/// How long a user's counter outlives its last message: long enough that a client that
/// was away for a while gets an honest `recovered: false` rather than a number that
/// started again from 1.
const COUNTER_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// KEYS: counter, window. ARGV: size, ttl ms, counter ttl ms, message id, app, namespace,
/// base frame. Returns the number.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local size = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
local seq = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
if size > 0 then
  local record = cjson.encode({seq = seq, exp = now + ttl, id = ARGV[4], app = ARGV[5],
    ns = ARGV[6], base = ARGV[7]})
  redis.call('ZADD', KEYS[2], seq, record)
  local n = redis.call('ZCARD', KEYS[2])
  if n > size then
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, n - size - 1)
  end
  redis.call('PEXPIRE', KEYS[2], ttl)
end
while true do
  local head = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #head == 0 or cjson.decode(head[1]).exp > now then break end
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, 0)
end
return seq
",
    )
});

/// KEYS: counter, window. Returns {latest, now ms, every record oldest first}.
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local latest = tonumber(redis.call('GET', KEYS[1]) or '0')
return {latest, now, redis.call('ZRANGE', KEYS[2], 0, -1)}
",
    )
});

/// One kept message as the scripts write it.
#[derive(Deserialize)]
struct Record {
    seq: i64,
    exp: u64,
    id: String,
    app: String,
    ns: String,
    base: String,
}

/// Sequence numbers and resume windows in Redis.
#[derive(Clone)]
pub struct RedisHistory {
    redis: Arc<Redis>,
}

impl std::fmt::Debug for RedisHistory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHistory")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisHistory {
    /// A history on its own pool, without connecting (see
    /// [`RedisBackplane::history`](crate::RedisBackplane::history) to share the backplane's
    /// pool).
    pub fn new(options: &RedisOptions) -> Result<Self, Error> {
        Ok(Self::with_redis(Arc::new(Redis::new(options)?)))
    }

    pub(crate) fn with_redis(redis: Arc<Redis>) -> Self {
        RedisHistory { redis }
    }

    async fn append_entry(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> Result<i64, Error> {
        let redis = &self.redis;
        redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                APPEND
                    .key(redis.keys().history_counter(user_id))
                    .key(redis.keys().history_window(user_id))
                    .arg(limits.size)
                    .arg(millis(limits.ttl).max(1))
                    .arg(millis(COUNTER_TTL.max(limits.ttl)))
                    .arg(&entry.message_id)
                    .arg(&entry.app_id)
                    .arg(&entry.namespace)
                    .arg(entry.base.as_str())
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await
    }

    async fn read_window(&self, user_id: &str, after: i64) -> Result<Window, Error> {
        let redis = &self.redis;
        let (latest, now, records): (i64, u64, Vec<String>) = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                READ.key(redis.keys().history_counter(user_id))
                    .key(redis.keys().history_window(user_id))
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        let mut live = Vec::with_capacity(records.len());
        for record in records {
            let record: Record = serde_json::from_str(&record)
                .map_err(|e| Error::Codec(format!("history record: {e}")))?;
            if record.exp > now {
                live.push(numbered(record)?);
            }
        }
        Ok(Window::after(latest, live, after))
    }
}

/// The window entry of a record: its frame gets its number written in.
fn numbered(record: Record) -> Result<WindowEntry, Error> {
    let base =
        Payload::from_json(record.base).map_err(|e| Error::Codec(format!("history frame: {e}")))?;
    let mut entry = NewEntry::new(record.id, base);
    entry.app_id = record.app;
    entry.namespace = record.ns;
    Ok(WindowEntry::numbered(entry, record.seq))
}

impl HistoryStore for RedisHistory {
    fn append(
        &self,
        user_id: &str,
        entry: NewEntry,
        limits: WindowLimits,
    ) -> BoxFuture<Result<i64, StoreError>> {
        let history = self.clone();
        let user_id = user_id.to_owned();
        Box::pin(async move {
            history
                .append_entry(&user_id, entry, limits)
                .await
                .map_err(StoreError::from)
        })
    }

    fn read(&self, user_id: &str, after: i64) -> BoxFuture<Result<Window, StoreError>> {
        let history = self.clone();
        let user_id = user_id.to_owned();
        Box::pin(async move {
            history
                .read_window(&user_id, after)
                .await
                .map_err(StoreError::from)
        })
    }
}
