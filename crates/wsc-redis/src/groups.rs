//! [`RedisGroups`]: the hub's [`GroupStore`] on Redis, shared by every node, so a group's
//! members and a user's groups are the same whichever node asks, and the limits hold for
//! the whole cluster.
//!
//! Two sets per membership (a group's members, a user's groups), all under the `{groups}`
//! hash tag, so one Lua script sees both sets: a join checks membership, `max_group_size`
//! and `max_groups_per_user` and adds to both sets in one atomic step. Two nodes joining at
//! the same moment are serialized by Redis, so a limit is never passed. Memberships have no
//! TTL: they last until a leave or a disband, like a group chat's.

use std::sync::Arc;
use std::sync::LazyLock;

use redis::Script;
use wsc_hub::{BoxFuture, GroupLimits, GroupStore, JoinOutcome, StoreError};

use crate::error::Error;
use crate::options::RedisOptions;
use crate::pool::Redis;

/// KEYS: the group's members, the user's groups. ARGV: group, user, max group size, max
/// groups per user (0 = no limit). Returns 1 joined, 0 already a member, -1 group full,
/// -2 too many groups.
static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then return 0 end
local max_size = tonumber(ARGV[3])
if max_size > 0 and redis.call('SCARD', KEYS[1]) >= max_size then return -1 end
local max_groups = tonumber(ARGV[4])
if max_groups > 0 and redis.call('SCARD', KEYS[2]) >= max_groups then return -2 end
redis.call('SADD', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
",
    )
});

/// KEYS: the group's members, the user's groups. ARGV: group, user. Returns 1 when the
/// user was a member.
static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('SREM', KEYS[1], ARGV[2])
",
    )
});

/// KEYS: the group's members. ARGV: the name of a user's set without the user id, the
/// group. Removes the group from each member's set (same slot: the `{groups}` tag) and
/// returns the members.
static DISBAND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local members = redis.call('SMEMBERS', KEYS[1])
for _, user in ipairs(members) do
  redis.call('SREM', ARGV[1] .. user, ARGV[2])
end
redis.call('DEL', KEYS[1])
return members
",
    )
});

/// Group memberships in Redis, shared by every node (see the module docs).
#[derive(Clone)]
pub struct RedisGroups {
    redis: Arc<Redis>,
}

impl std::fmt::Debug for RedisGroups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisGroups")
            .field("redis", &self.redis)
            .finish()
    }
}

impl RedisGroups {
    /// A store on its own pool, without connecting (see
    /// [`RedisBackplane::groups`](crate::RedisBackplane::groups) to share the backplane's
    /// pool).
    pub fn new(options: &RedisOptions) -> Result<Self, Error> {
        Ok(Self::with_redis(Arc::new(Redis::new(options)?)))
    }

    pub(crate) fn with_redis(redis: Arc<Redis>) -> Self {
        RedisGroups { redis }
    }

    async fn join_now(
        &self,
        group_id: &str,
        user_id: &str,
        limits: GroupLimits,
    ) -> Result<JoinOutcome, Error> {
        let redis = &self.redis;
        let outcome: i64 = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                JOIN.key(redis.keys().group_members(group_id))
                    .key(redis.keys().user_groups(user_id))
                    .arg(group_id)
                    .arg(user_id)
                    .arg(limits.max_group_size)
                    .arg(limits.max_groups_per_user)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        Ok(match outcome {
            1 => JoinOutcome::Joined,
            -1 => JoinOutcome::GroupFull,
            -2 => JoinOutcome::TooManyGroups,
            _ => JoinOutcome::AlreadyMember,
        })
    }

    async fn leave_now(&self, group_id: &str, user_id: &str) -> Result<bool, Error> {
        let redis = &self.redis;
        let removed: u8 = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                LEAVE
                    .key(redis.keys().group_members(group_id))
                    .key(redis.keys().user_groups(user_id))
                    .arg(group_id)
                    .arg(user_id)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        Ok(removed == 1)
    }

    async fn disband_now(&self, group_id: &str) -> Result<Vec<String>, Error> {
        let redis = &self.redis;
        let user_prefix = redis.keys().user_groups("");
        let mut members: Vec<String> = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                DISBAND
                    .key(redis.keys().group_members(group_id))
                    .arg(user_prefix)
                    .arg(group_id)
                    .invoke_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        members.sort_unstable();
        Ok(members)
    }

    async fn set(&self, key: String) -> Result<Vec<String>, Error> {
        let redis = &self.redis;
        let mut values: Vec<String> = redis
            .bounded(async {
                let mut conn = redis.conn().await?;
                redis::cmd("SMEMBERS")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| redis.command_error(e))
            })
            .await?;
        values.sort_unstable();
        Ok(values)
    }
}

impl GroupStore for RedisGroups {
    fn join(
        &self,
        group_id: &str,
        user_id: &str,
        limits: GroupLimits,
    ) -> BoxFuture<Result<JoinOutcome, StoreError>> {
        let store = self.clone();
        let (group_id, user_id) = (group_id.to_owned(), user_id.to_owned());
        Box::pin(async move { Ok(store.join_now(&group_id, &user_id, limits).await?) })
    }

    fn leave(&self, group_id: &str, user_id: &str) -> BoxFuture<Result<bool, StoreError>> {
        let store = self.clone();
        let (group_id, user_id) = (group_id.to_owned(), user_id.to_owned());
        Box::pin(async move { Ok(store.leave_now(&group_id, &user_id).await?) })
    }

    fn members(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let store = self.clone();
        let key = self.redis.keys().group_members(group_id);
        Box::pin(async move { Ok(store.set(key).await?) })
    }

    fn groups_of(&self, user_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let store = self.clone();
        let key = self.redis.keys().user_groups(user_id);
        Box::pin(async move { Ok(store.set(key).await?) })
    }

    fn disband(&self, group_id: &str) -> BoxFuture<Result<Vec<String>, StoreError>> {
        let store = self.clone();
        let group_id = group_id.to_owned();
        Box::pin(async move { Ok(store.disband_now(&group_id).await?) })
    }
}
