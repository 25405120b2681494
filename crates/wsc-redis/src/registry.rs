//! Reading the node registry: one sorted set, node id -> expiry in Redis server time (ms),
//! written by the presence scripts (see `presence.rs`).
//!
//! A node that stops renewing (it was killed) is filtered out by every read as soon as its
//! expiry passes, before any script has removed it. No `KEYS`/`SCAN`: the set holds one
//! entry per node. Expiries use Redis' clock (`TIME`), never a node's, so clock skew
//! between nodes cannot keep a dead node alive or hide a live one. On a Redis Cluster the
//! registry is one key, so one shard holds it, and both the scripts and every read take the
//! time from that shard's clock: shards with skewed clocks cannot disagree about it.

use redis::aio::ConnectionLike;

use crate::error::Error;
use crate::pool::Redis;

/// The live nodes, sorted, read on `conn` in one round trip: the server time and every
/// entry with its expiry, in one pipeline. On a cluster the pipeline goes as a whole to the
/// shard that owns the registry (`TIME` names no key and follows `ZRANGE`), so the time
/// read is that of the clock the expiries were computed with.
pub(crate) async fn read_live(
    redis: &Redis,
    conn: &mut impl ConnectionLike,
) -> redis::RedisResult<Vec<String>> {
    let reply: LiveReply = redis::pipe()
        .cmd("TIME")
        .cmd("ZRANGE")
        .arg(redis.keys().nodes())
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    Ok(live_from(reply))
}

/// Server time `(seconds, microseconds)` and `(node, expiry ms)` entries, as
/// [`read_live`] asks for them.
type LiveReply = ((u64, u64), Vec<(String, f64)>);

/// The nodes whose expiry is still ahead of the server time, sorted.
fn live_from(((secs, micros), entries): LiveReply) -> Vec<String> {
    let now = (secs * 1000 + micros / 1000) as f64;
    let mut nodes: Vec<String> = entries
        .into_iter()
        .filter(|(_, expiry)| *expiry > now)
        .map(|(node, _)| node)
        .collect();
    nodes.sort();
    nodes
}

/// The live nodes, sorted (one round trip).
pub(crate) async fn live_nodes(redis: &Redis) -> Result<Vec<String>, Error> {
    redis
        .bounded(async {
            let mut conn = redis.conn().await?;
            read_live(redis, &mut conn)
                .await
                .map_err(|e| redis.command_error(e))
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::live_from;

    #[test]
    fn an_entry_past_its_expiry_is_not_live() {
        let now = ((1_000, 500_000), vec![]);
        assert!(live_from(now).is_empty());
        let entries = vec![
            ("b".to_owned(), 1_000_600.0),
            ("dead".to_owned(), 1_000_500.0),
            ("a".to_owned(), 1_030_000.0),
        ];
        assert_eq!(live_from(((1_000, 500_000), entries)), ["a", "b"]);
    }
}
