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
//! - [`RedisGroups`] implements the hub's [`GroupStore`](wsc_hub::GroupStore): group
//!   memberships shared by every node, the limits checked and the member added in one
//!   script.
//! - [`RedisTickets`] implements the hub's [`TicketStore`](wsc_hub::TicketStore): tickets,
//!   the queue and agents' workloads for the cluster, each change one script.
//!
//! Every key and channel starts with [`RedisOptions::key_prefix`]; every operation waits
//! at most [`RedisOptions::connect_timeout`]. `docs/scaling.md` describes the keys, the
//! channels, the cost of each operation and the behaviour when Redis is down.
//!
//! # One Redis or a Redis Cluster
//!
//! [`RedisOptions::new`] names one Redis, [`RedisOptions::cluster`] the seed nodes of a
//! Redis Cluster; the rest is the same code. Commands go through a deadpool-redis pool of
//! single-server or cluster connections (the cluster client follows `MOVED`/`ASK` and
//! topology changes); every script and transaction touches keys of one hash slot (one key,
//! or one user's `{user:<id>}`-tagged keys), and commands on keys of different slots are
//! sent separately, all at once.
//!
//! # Sharded pub/sub
//!
//! The channels are shard channels (`SSUBSCRIBE`/`SPUBLISH`, Redis 7.0 or newer): on a
//! cluster a channel lives on the shard that owns its slot instead of being flooded to
//! every shard. redis 1.8 offers no `ssubscribe` on its connection manager, and its
//! automatic resubscriptions (connection manager and cluster connection) track the
//! subscriptions from the server's confirmations, so the `sunsubscribe` that Redis Cluster
//! pushes when a channel's slot moves makes them forget the channel for good. This crate
//! therefore supervises its pub/sub connections itself: one for both channels on one Redis,
//! one per channel on a cluster, each connecting where its channel lives by following
//! `MOVED` and subscribing again when the connection drops or the slot moves (see the
//! `subscriber` module).

mod attachment;
mod backplane;
mod conn;
mod endpoint;
mod error;
mod groups;
mod history;
mod keys;
mod offline;
mod options;
mod pool;
mod presence;
mod push;
mod readiness;
mod recycle;
mod registry;
mod subscriber;
mod tickets;

pub use backplane::{BackplaneStats, RedisBackplane};
pub use error::Error;
pub use groups::RedisGroups;
pub use history::RedisHistory;
pub use offline::RedisOfflineStore;
pub use options::RedisOptions;
pub use tickets::RedisTickets;
