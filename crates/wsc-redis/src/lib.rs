//! `wsc-redis`: several gateway nodes on one Redis.
//!
//! - [`RedisBackplane`] implements the hub's [`Backplane`](wsc_hub::Backplane): envelopes
//!   travel on sharded pub/sub channels (`SPUBLISH`/`SSUBSCRIBE`), one per node plus one
//!   broadcast channel; presence (user -> nodes) and the node registry live in keys with
//!   TTLs that live nodes renew.
//! - [`RedisOfflineStore`] implements the hub's [`OfflineStore`](wsc_hub::OfflineStore):
//!   a bounded, deduplicated list per user with a TTL, shared by every node.
//! - [`RedisHistory`] implements the hub's [`HistoryStore`](wsc_hub::HistoryStore): one
//!   `seq_no` counter and resume window per user, shared by every node.
//!
//! Every key and channel starts with [`RedisOptions::key_prefix`]; every operation waits
//! at most [`RedisOptions::connect_timeout`]. `docs/scaling.md` describes the keys, the
//! channels, the cost of each operation and the behaviour when Redis is down.
//!
//! # Sharded pub/sub
//!
//! Redis 7's `SSUBSCRIBE`/`SPUBLISH` also work on a single server, so the same code runs
//! on one Redis today and on Redis Cluster later, where a shard channel lives on the shard
//! that owns its slot instead of being flooded to every shard. redis 1.8 offers no
//! `ssubscribe` on its connection manager, and its automatic resubscription sends every
//! channel in one command whose extra confirmations the multiplexed connection would take
//! for the replies of later commands; so this crate supervises its pub/sub connection
//! itself and subscribes one channel per command (see the `subscriber` module). On Redis
//! Cluster the subscriber will need one connection per shard that owns a channel: that
//! comes with the cluster step. Redis 7.0 or newer is required.

mod attachment;
mod backplane;
mod error;
mod history;
mod keys;
mod offline;
mod options;
mod pool;
mod presence;
mod registry;
mod subscriber;

pub use backplane::{BackplaneStats, RedisBackplane};
pub use error::Error;
pub use history::RedisHistory;
pub use offline::RedisOfflineStore;
pub use options::RedisOptions;
