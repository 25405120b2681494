//! Hot reload: watch the config file, debounce, re-validate, apply the runtime-safe keys.
//!
//! The parent directory is watched (editors save by writing a new file and renaming it);
//! events for other files in it are ignored, and so are mere reads of the file (the reload
//! reads it too, and reacting to that would reload forever). After the debounce the file is
//! read once, and it is judged only when its content differs from the content judged last:
//! every change of the content is judged, logged and reported exactly once, and saving the
//! same content again does nothing. A valid new file publishes a configuration in which the runtime-safe keys take their new
//! values and every other key keeps its running value; the keys that need a restart are
//! reported in [`ReloadEvent::Applied::restart_required`]. An invalid file changes nothing
//! and is reported as [`ReloadEvent::Rejected`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::load::{Loader, Problem};
use crate::schema::GatewayConfig;

/// Keys (or key prefixes ending in `.`) that apply without a restart.
pub const HOT_KEYS: &[&str] = &[
    "logging.level",
    "wsc.heartbeat_interval",
    "wsc.client_timeout",
    "wsc.message_buffer_size",
    "wsc.websocket_origins",
    "wsc.relay_status_messages",
    "wsc.multi_login.",
    "wsc.groups.",
    "wsc.tickets.",
    "wsc.observers.",
    "wsc.ack.",
    "wsc.recovery.",
    "wsc.security.enable_rate_limit",
    "wsc.security.max_messages_per_second",
    "wsc.security.max_bytes_per_second",
    "wsc.security.max_message_size",
    "wsc.security.max_ticket_ids",
    "wsc.security.max_group_ids",
    "wsc.security.allowed_user_types",
    "wsc.security.allowed_ips",
    "wsc.security.blocked_ips",
    "wsc.security.max_handshakes_per_ip_per_second",
    "wsc.security.handshake_timeout",
    "wsc.performance.max_connections_per_node",
    "wsc.performance.read_buffer_size",
    "wsc.performance.write_buffer_size",
    "wsc.performance.queue_max_bytes",
    "wsc.performance.slow_consumer",
    "wsc.performance.write_timeout",
];

/// Whether a key applies at runtime (hot reload) or needs a restart.
pub fn is_hot(key: &str) -> bool {
    HOT_KEYS.iter().any(|hot| match hot.strip_suffix('.') {
        Some(prefix) => key.starts_with(prefix) && key[prefix.len()..].starts_with('.'),
        None => key == *hot,
    })
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReloadEvent {
    /// The new file was valid; runtime-safe changes were published.
    Applied {
        /// Keys whose new value now applies.
        changed: Vec<String>,
        /// Keys that changed in the file but keep their running value until a restart.
        restart_required: Vec<String>,
        /// Warnings of the new file (unknown keys, ...).
        warnings: Vec<Problem>,
    },
    /// The new file was invalid; the running configuration is unchanged.
    Rejected {
        /// Why, with every problem.
        error: String,
    },
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The loader has no file to watch.
    #[error("hot reload needs a configuration file")]
    NoFile,
    /// The file system watcher failed.
    #[error("cannot watch {path}: {source}")]
    Notify {
        /// The directory.
        path: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// A running watch: the current configuration and the stream of reload events.
pub struct ConfigWatch {
    config: watch::Receiver<Arc<GatewayConfig>>,
    events: mpsc::UnboundedReceiver<ReloadEvent>,
    _watcher: notify::RecommendedWatcher,
}

impl ConfigWatch {
    /// A receiver of the current configuration (changes on every applied reload).
    pub fn subscribe(&self) -> watch::Receiver<Arc<GatewayConfig>> {
        self.config.clone()
    }

    /// The next reload event; `None` when the watch ended.
    pub async fn next_event(&mut self) -> Option<ReloadEvent> {
        self.events.recv().await
    }
}

impl std::fmt::Debug for ConfigWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigWatch").finish_non_exhaustive()
    }
}

/// Whether a file system event may have changed the file's content. Opening, reading and
/// closing after a read change nothing.
fn may_change_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}

/// Starts watching the loader's file. `initial` is the running configuration, loaded from
/// the file's current content (which therefore is not judged again); changes are judged
/// `debounce` after the last file event. Must be called inside a tokio runtime.
pub fn watch_file(
    loader: Loader,
    initial: GatewayConfig,
    debounce: Duration,
) -> Result<ConfigWatch, WatchError> {
    let path = loader.file_path().ok_or(WatchError::NoFile)?.to_owned();
    let name = path.file_name().map(|n| n.to_owned());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let (touched, mut touches) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && may_change_content(&event.kind)
            && event.paths.iter().any(|p| p.file_name() == name.as_deref())
        {
            let _ = touched.send(());
        }
    })
    .map_err(|source| WatchError::Notify {
        path: dir.clone(),
        source,
    })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError::Notify {
            path: dir.clone(),
            source,
        })?;
    let (publish, config) = watch::channel(Arc::new(initial));
    let (report, events) = mpsc::unbounded_channel();
    // The content the running configuration was loaded from (`None`: unreadable).
    let mut judged = std::fs::read(&path).ok();
    tokio::spawn(async move {
        while touches.recv().await.is_some() {
            // Debounce: wait until the file has been quiet for `debounce`.
            loop {
                match tokio::time::timeout(debounce, touches.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            // A save of the same bytes (or a touch) is not a change: judging it again would
            // only repeat the warnings already logged for this content.
            let content = std::fs::read(&path).ok();
            if content == judged {
                continue;
            }
            judged = content;
            let running = publish.borrow().clone();
            let event = match loader.load() {
                Err(e) => {
                    tracing::warn!(error = %e, "configuration reload rejected; keeping the running configuration");
                    ReloadEvent::Rejected {
                        error: e.to_string(),
                    }
                }
                Ok(loaded) => {
                    let (next, changed, restart_required) = merge(&running, &loaded.config);
                    for key in &restart_required {
                        tracing::warn!(key, "changed in the file; needs a restart to apply");
                    }
                    if !changed.is_empty() {
                        tracing::info!(?changed, "configuration reloaded");
                        let _ = publish.send(Arc::new(next));
                    }
                    ReloadEvent::Applied {
                        changed,
                        restart_required,
                        warnings: loaded.warnings,
                    }
                }
            };
            if report.send(event).is_err() {
                return;
            }
        }
    });
    Ok(ConfigWatch {
        config,
        events,
        _watcher: watcher,
    })
}

/// The running configuration with the hot keys of `new` applied, the hot keys that changed,
/// and the other keys that changed.
fn merge(
    running: &GatewayConfig,
    new: &GatewayConfig,
) -> (GatewayConfig, Vec<String>, Vec<String>) {
    let (old_keys, new_keys) = (running.flatten(), new.flatten());
    let mut merged = serde_json::to_value(running).unwrap_or_default();
    let (mut changed, mut restart) = (Vec::new(), Vec::new());
    for (key, value) in &new_keys {
        if old_keys.get(key) == Some(value) {
            continue;
        }
        if is_hot(key) {
            let pointer = format!("/{}", key.replace('.', "/"));
            if let Some(slot) = merged.pointer_mut(&pointer) {
                *slot = value.clone();
            }
            changed.push(key.clone());
        } else {
            restart.push(key.clone());
        }
    }
    let merged: Value = merged;
    let next = serde_json::from_value(merged).unwrap_or_else(|_| running.clone());
    (next, changed, restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_keys() {
        assert!(is_hot("wsc.client_timeout"));
        assert!(is_hot("wsc.multi_login.policy"));
        assert!(is_hot("logging.level"));
        assert!(!is_hot("wsc.node_port"));
        assert!(!is_hot("wsc.multi_login_x"));
        assert!(!is_hot("http.port"));
    }

    #[test]
    fn merge_applies_hot_keys_only() {
        let running = GatewayConfig::default();
        let mut new = running.clone();
        new.wsc.client_timeout = Duration::from_secs(120);
        new.wsc.node_port = 9999;
        let (next, changed, restart) = merge(&running, &new);
        assert_eq!(changed, ["wsc.client_timeout"]);
        assert_eq!(restart, ["wsc.node_port"]);
        assert_eq!(next.wsc.client_timeout, Duration::from_secs(120));
        assert_eq!(next.wsc.node_port, running.wsc.node_port);
    }
}
