//! `wsc-config`: the gateway's configuration schema, its defaults, loading from a file plus
//! environment overrides, validation, a redacted view for printing and hot reload.
//!
//! Every key has a default, so an empty file (or no file) is a valid configuration.
//! Environment variables override any key: `GATEWAY__WSC__NODE_PORT=9000` sets
//! `wsc.node_port` (prefix `GATEWAY`, `__` between levels).
//!
//! ```
//! use std::collections::HashMap;
//! use wsc_config::Loader;
//!
//! let env = HashMap::from([("GATEWAY__WSC__NODE_PORT".to_owned(), "9000".to_owned())]);
//! let loaded = Loader::new().environment(env).load().unwrap();
//! assert_eq!(loaded.config.wsc.node_port, 9000);
//! assert_eq!(loaded.config.http.port, 8080);
//! assert!(loaded.warnings.is_empty());
//! ```

pub mod duration;
mod load;
mod mapping;
mod reload;
mod schema;
pub mod size;
mod validate;

pub use load::{ConfigError, ENV_PREFIX, Loaded, Loader, Problem, validate};
pub use reload::{ConfigWatch, HOT_KEYS, ReloadEvent, WatchError, is_hot, watch_file};
pub use schema::*;

/// A commented configuration file that sets every key to its default (what
/// `gateway-server genconfig` prints, and section 2 of docs/configuration.md).
pub const EXAMPLE_YAML: &str = include_str!("example.yaml");

/// An entry of an IP allow or block list (`wsc.security.*`): an address (`192.168.1.7`,
/// `::1`) or a CIDR range (`10.0.0.0/8`, `2001:db8::/32`). Validation and the server's guard
/// read the lists with this one parser; `None` for anything else.
pub fn ip_net(entry: &str) -> Option<ipnet::IpNet> {
    entry.parse::<ipnet::IpNet>().ok().or_else(|| {
        entry
            .parse::<std::net::IpAddr>()
            .ok()
            .map(ipnet::IpNet::from)
    })
}
