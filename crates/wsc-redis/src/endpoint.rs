//! [`Endpoint`]: where a pub/sub connection goes, and how it finds the node that serves its
//! shard channels on a Redis Cluster.
//!
//! On one Redis there is one place to go. On a cluster a shard channel is served by the
//! shard that owns its slot; rather than reading the topology (`CLUSTER SHARDS`) and
//! hashing channel names, the subscriber asks a node it knows and follows the `MOVED`
//! answer, as Redis Cluster intends clients to: `SSUBSCRIBE` on a node of another shard
//! answers `-MOVED <slot> <host>:<port>`. The node it knows is the one that served the
//! channel last, else one of the seeds, taken in turn from one attempt to the next so that
//! a dead seed is not asked first every time.

use redis::{ConnectionAddr, ConnectionInfo, ProtocolVersion};

/// The most `MOVED` answers followed in one attempt: one is the rule, a second can happen
/// while a slot changes hands; more means the topology is changing faster than we follow.
pub(crate) const MAX_REDIRECTS: usize = 3;

/// Where pub/sub connections go. Every connection info asks for RESP3: pushed messages
/// share the connection with command replies only in RESP3, which is what lets one
/// multiplexed connection subscribe and still answer `PING`.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    /// The single Redis.
    Single(ConnectionInfo),
    /// The seed nodes of a Redis Cluster.
    Cluster(Vec<ConnectionInfo>),
}

impl Endpoint {
    /// The endpoint of a single Redis.
    pub(crate) fn single(info: ConnectionInfo) -> Self {
        Endpoint::Single(resp3(info))
    }

    /// The endpoint of a cluster known by these seeds.
    pub(crate) fn cluster(seeds: Vec<ConnectionInfo>) -> Self {
        Endpoint::Cluster(seeds.into_iter().map(resp3).collect())
    }

    /// Whether channels live on different shards (so each channel needs a connection of its
    /// own that follows its shard).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self, Endpoint::Cluster(_))
    }

    /// The nodes to ask, in order, in attempt number `attempt`: the node that served the
    /// channels last (`last`, if any), then every seed, starting one further each attempt.
    pub(crate) fn candidates(
        &self,
        last: Option<&ConnectionInfo>,
        attempt: usize,
    ) -> Vec<ConnectionInfo> {
        match self {
            Endpoint::Single(info) => vec![info.clone()],
            Endpoint::Cluster(seeds) => {
                let start = attempt % seeds.len().max(1);
                last.into_iter()
                    .chain(seeds[start..].iter())
                    .chain(seeds[..start].iter())
                    .cloned()
                    .collect()
            }
        }
    }
}

/// The same connection settings (credentials, TLS, protocol) for the node named by a
/// `MOVED` answer, `<host>:<port>` (the host may be an IPv6 address, itself full of `:`).
pub(crate) fn redirected(from: &ConnectionInfo, node: &str) -> Option<ConnectionInfo> {
    let (host, port) = node.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return None;
    }
    let mut addr = from.addr().clone();
    match &mut addr {
        ConnectionAddr::Tcp(h, p)
        | ConnectionAddr::TcpTls {
            host: h, port: p, ..
        } => {
            *h = host.to_owned();
            *p = port;
        }
        // A cluster announces TCP addresses; a seed given as a socket path has no TLS
        // settings to carry over.
        _ => addr = ConnectionAddr::Tcp(host.to_owned(), port),
    }
    Some(from.clone().set_addr(addr))
}

/// The address of a node, for logs.
pub(crate) fn describe(info: &ConnectionInfo) -> String {
    match info.addr() {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        other => format!("{other:?}"),
    }
}

fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::IntoConnectionInfo;

    fn info(url: &str) -> ConnectionInfo {
        url.into_connection_info().unwrap()
    }

    #[test]
    fn a_redirect_keeps_the_credentials_and_changes_the_address() {
        let from = info("redis://user:secret@10.0.0.1:7000/");
        let to = redirected(&from, "10.0.0.2:7001").unwrap();
        assert_eq!(describe(&to), "10.0.0.2:7001");
        assert_eq!(to.redis_settings().password(), Some("secret"));
        assert_eq!(to.redis_settings().username(), Some("user"));
        let v6 = redirected(&from, "::1:7002").unwrap();
        assert_eq!(describe(&v6), "::1:7002");
        assert!(redirected(&from, "no-port").is_none());
        assert!(redirected(&from, ":7000").is_none());
    }

    #[test]
    fn every_connection_asks_for_resp3() {
        let endpoint = Endpoint::cluster(vec![info("redis://a:1/"), info("redis://b:2/")]);
        for candidate in endpoint.candidates(None, 0) {
            assert_eq!(
                candidate.redis_settings().protocol(),
                ProtocolVersion::RESP3
            );
        }
        let single = Endpoint::single(info("redis://a:1/"));
        assert_eq!(
            single.candidates(None, 5)[0].redis_settings().protocol(),
            ProtocolVersion::RESP3
        );
        assert!(!single.is_cluster() && endpoint.is_cluster());
    }

    #[test]
    fn the_last_owner_comes_first_then_the_seeds_in_turn() {
        let endpoint = Endpoint::cluster(vec![
            info("redis://a:1/"),
            info("redis://b:2/"),
            info("redis://c:3/"),
        ]);
        let names = |list: Vec<ConnectionInfo>| list.iter().map(describe).collect::<Vec<_>>();
        assert_eq!(names(endpoint.candidates(None, 0)), ["a:1", "b:2", "c:3"]);
        assert_eq!(names(endpoint.candidates(None, 4)), ["b:2", "c:3", "a:1"]);
        let last = info("redis://d:4/");
        assert_eq!(
            names(endpoint.candidates(Some(&last), 2)),
            ["d:4", "c:3", "a:1", "b:2"]
        );
    }
}
