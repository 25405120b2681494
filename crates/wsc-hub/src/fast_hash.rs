//! The hash maps of the hub's own indexes (registry, histories, acks, per-type counters):
//! std's maps with foldhash instead of SipHash.
//!
//! Every send hashes a few ids (its route's key, the user's history, the message type);
//! with SipHash that was about 200 instructions each (callgrind, `docs/benchmarks.md`).
//! foldhash is several times cheaper on short keys and is seeded at random per map, which
//! keeps the minimal resistance to crafted keys that ids chosen by clients call for.

/// A `HashMap` hashed with foldhash.
pub(crate) type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A `HashSet` hashed with foldhash.
pub(crate) type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
