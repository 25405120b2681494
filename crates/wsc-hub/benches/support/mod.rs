//! What the `wsc-hub` benchmarks share: the runtime they run on and a configuration whose
//! liveness sweep stays out of the measurements.

use std::time::Duration;

use tokio::runtime::Runtime;
use wsc_hub::HubConfig;

/// A current-thread runtime: one core, no work stealing, repeatable timings.
pub(crate) fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The default configuration with heartbeats and client timeouts far beyond any run.
pub(crate) fn quiet_config() -> HubConfig {
    let mut config = HubConfig::default();
    config.heartbeat_interval = Duration::from_secs(24 * 3600);
    config.client_timeout = Duration::from_secs(48 * 3600);
    config
}
