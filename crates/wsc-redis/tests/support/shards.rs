//! Where names live on a Redis Cluster, asked of the cluster itself: the slot of a key or
//! channel (`CLUSTER KEYSLOT`), the master that owns a slot (`CLUSTER NODES`), and a key
//! prefix under which a test's channels spread over every shard, so that the cluster tests
//! really cross shards instead of happening to run on one.

use std::collections::BTreeSet;

use redis::aio::MultiplexedConnection;

use super::raw_at;

/// The masters of a cluster and the slot ranges each one owns.
#[derive(Debug, Clone)]
pub(crate) struct ShardMap {
    /// `(first slot, last slot, master node id, master "host:port")`.
    ranges: Vec<(u16, u16, String, String)>,
}

impl ShardMap {
    /// Reads the map from the node at `url` (`CLUSTER NODES`).
    pub(crate) async fn read(url: &str) -> ShardMap {
        let mut conn = raw_at(url).await;
        let nodes: String = redis::cmd("CLUSTER")
            .arg("NODES")
            .query_async(&mut conn)
            .await
            .expect("CLUSTER NODES");
        let mut ranges = Vec::new();
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].split(',').any(|flag| flag == "master") {
                continue;
            }
            let address = fields[1].split('@').next().unwrap_or_default().to_owned();
            // Slot fields are `first-last` or a single slot; `[slot->-id]` marks a
            // migration in progress and owns nothing yet.
            for slots in fields[8..].iter().filter(|f| !f.starts_with('[')) {
                let (first, last) = slots.split_once('-').unwrap_or((slots, slots));
                ranges.push((
                    first.parse().expect("a slot"),
                    last.parse().expect("a slot"),
                    fields[0].to_owned(),
                    address.clone(),
                ));
            }
        }
        assert!(!ranges.is_empty(), "no master owns a slot:\n{nodes}");
        ShardMap { ranges }
    }

    /// The node id of the master that owns `slot`.
    pub(crate) fn owner(&self, slot: u16) -> &str {
        &self.entry(slot).2
    }

    /// The `host:port` of the master that owns `slot`.
    pub(crate) fn owner_address(&self, slot: u16) -> &str {
        &self.entry(slot).3
    }

    /// The node ids of every master that owns a slot.
    pub(crate) fn masters(&self) -> BTreeSet<String> {
        self.ranges.iter().map(|r| r.2.clone()).collect()
    }

    fn entry(&self, slot: u16) -> &(u16, u16, String, String) {
        self.ranges
            .iter()
            .find(|(first, last, _, _)| (*first..=*last).contains(&slot))
            .unwrap_or_else(|| panic!("no master owns slot {slot}"))
    }
}

/// The slot of a key or shard channel, as the cluster computes it.
pub(crate) async fn keyslot(conn: &mut MultiplexedConnection, name: &str) -> u16 {
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(name)
        .query_async(conn)
        .await
        .expect("CLUSTER KEYSLOT")
}

/// The node ids of the masters that own these names.
pub(crate) async fn shards_of(url: &str, names: &[String]) -> BTreeSet<String> {
    let map = ShardMap::read(url).await;
    let mut conn = raw_at(url).await;
    let mut shards = BTreeSet::new();
    for name in names {
        shards.insert(map.owner(keyslot(&mut conn, name).await).to_owned());
    }
    shards
}

/// A fresh random key prefix under which the shard channels of these nodes
/// (`<p>node:<name>`) and the broadcast channel (`<p>broadcast`) are owned by as many
/// different masters as they can be (all of them, or one each when there are fewer
/// channels than masters), checked with `CLUSTER KEYSLOT`. Prefixes are drawn until one
/// does: about one draw in two does for four channels on three masters, one in five for
/// three channels.
pub(crate) async fn spread_prefix(url: &str, nodes: &[&str]) -> String {
    let map = ShardMap::read(url).await;
    let mut conn = raw_at(url).await;
    let wanted = map.masters().len().min(nodes.len() + 1);
    for _ in 0..1000 {
        let prefix = format!("wsc-test:{}:", uuid::Uuid::now_v7().simple());
        let mut shards = BTreeSet::new();
        for channel in channels(&prefix, nodes) {
            shards.insert(map.owner(keyslot(&mut conn, &channel).await).to_owned());
        }
        if shards.len() == wanted {
            return prefix;
        }
    }
    panic!("no prefix spreads the channels of {nodes:?} over {wanted} shards");
}

/// The shard channels of these nodes under `prefix`: each node's own, then the broadcast
/// channel.
pub(crate) fn channels(prefix: &str, nodes: &[&str]) -> Vec<String> {
    nodes
        .iter()
        .map(|node| format!("{prefix}node:{node}"))
        .chain(std::iter::once(format!("{prefix}broadcast")))
        .collect()
}
