//! `wsc-config`: the gateway's configuration schema, its defaults, loading from a file plus
//! environment overrides, and validation.
//!
//! Every key has a default, so an empty file (or no file) is a valid configuration.
//! Environment variables override any key: `GATEWAY__WSC__NODE_PORT=9000` sets
//! `wsc.node_port` (prefix `GATEWAY`, `__` between levels).
//!
//! ```
//! use std::collections::HashMap;
//! use wsc_config::{GatewayConfig, Loader};
//!
//! let env = HashMap::from([("GATEWAY__WSC__NODE_PORT".to_owned(), "9000".to_owned())]);
//! let config: GatewayConfig = Loader::new().environment(env).load().unwrap();
//! assert_eq!(config.wsc.node_port, 9000);
//! assert_eq!(config.http.port, 8080);
//! ```

pub mod duration;
mod load;
mod schema;

pub use load::{ConfigError, ENV_PREFIX, Loader, Problem, validate};
pub use schema::*;
