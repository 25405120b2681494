//! [`validate`]: the value rules of a configuration, every problem at once, each at its key
//! path with what is allowed (the loader calls it; so can code that builds a config itself).

use std::net::IpAddr;

use crate::load::{Problem, mask_url};
use crate::schema::{GatewayConfig, OfflineStore, TokenKeyKind};

/// Every value problem of a configuration, at once.
pub fn validate(config: &GatewayConfig) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut check = |ok: bool, key: &str, message: String| {
        if !ok {
            problems.push(Problem::new(key, message));
        }
    };
    check(
        valid_log_level(&config.logging.level),
        "logging.level",
        format!(
            "`{}` is not a log level (trace, debug, info, warn, error, off) or a list of \
             `target=level` directives such as `info,wsc_hub=debug`",
            config.logging.level
        ),
    );
    for (prefix, tls) in [
        ("http.tls", &config.http.tls),
        ("wsc.tls", &config.wsc.tls),
        ("grpc.tls", &config.grpc.tls),
    ] {
        check(
            matches!(tls.min_version.as_str(), "1.2" | "1.3"),
            &format!("{prefix}.min_version"),
            format!("`{}` must be \"1.2\" or \"1.3\"", tls.min_version),
        );
        for (name, file) in [("cert_file", &tls.cert_file), ("key_file", &tls.key_file)] {
            check(
                !tls.enabled || !file.trim().is_empty(),
                &format!("{prefix}.{name}"),
                format!("{prefix}.enabled needs a PEM file in {prefix}.{name}"),
            );
        }
    }
    check(
        config.wsc.tls.client_ca_file.is_empty(),
        "wsc.tls.client_ca_file",
        "client certificates are for the API and gRPC listeners (http.tls, grpc.tls); \
         browsers connect to the public listener"
            .to_owned(),
    );
    let wsc = &config.wsc;
    for (key, path) in [
        ("wsc.path", &wsc.path),
        ("wsc.sse.path", &wsc.sse.path),
        ("health.path", &config.health.path),
        ("health.ready_path", &config.health.ready_path),
        ("metrics.path", &config.metrics.path),
    ] {
        check(
            path.starts_with('/'),
            key,
            format!("`{path}` must start with `/`"),
        );
    }
    for (key, message) in clashing_paths(config) {
        check(false, key, message);
    }
    for (key, ip) in [
        ("wsc.node_ip", &wsc.node_ip),
        ("http.host", &config.http.host),
        ("grpc.host", &config.grpc.host),
    ] {
        check(
            ip.parse::<IpAddr>().is_ok(),
            key,
            format!("`{ip}` is not an IP address (e.g. 0.0.0.0 or 127.0.0.1)"),
        );
    }
    check(
        !wsc.heartbeat_interval.is_zero(),
        "wsc.heartbeat_interval",
        "must be greater than 0".to_owned(),
    );
    check(
        wsc.client_timeout > wsc.heartbeat_interval,
        "wsc.client_timeout",
        format!(
            "{} must be longer than wsc.heartbeat_interval ({})",
            crate::duration::format(wsc.client_timeout),
            crate::duration::format(wsc.heartbeat_interval)
        ),
    );
    check(
        (1..=MAX_QUEUE_MESSAGES).contains(&wsc.message_buffer_size),
        "wsc.message_buffer_size",
        format!(
            "{} must be at least 1 and at most {MAX_QUEUE_MESSAGES}",
            wsc.message_buffer_size
        ),
    );
    // tungstenite asserts that its maximum write buffer exceeds the write buffer, so an
    // unbounded write buffer can make every connection task panic after the 101. Buffers are
    // a per-connection memory cost that a few KiB already amortise; 1 MiB is a generous cap.
    const MIB: usize = 1024 * 1024;
    let sizes = [
        (
            "wsc.security.max_message_size",
            wsc.security.max_message_size,
            128,
            64 * MIB,
        ),
        (
            "wsc.security.max_outbound_message_size",
            wsc.security.max_outbound_message_size,
            1024,
            64 * MIB,
        ),
        (
            "wsc.performance.read_buffer_size",
            wsc.performance.read_buffer_size,
            256,
            MAX_SOCKET_BUFFER,
        ),
        (
            "wsc.performance.write_buffer_size",
            wsc.performance.write_buffer_size,
            256,
            MAX_SOCKET_BUFFER,
        ),
    ];
    for (key, size, min, max) in sizes {
        check(
            (min..=max).contains(&size),
            key,
            format!(
                "{} must be between {} and {}",
                crate::size::format(size),
                crate::size::format(min),
                crate::size::format(max)
            ),
        );
    }
    check(
        (1024..=MAX_QUEUE_BYTES).contains(&wsc.performance.queue_max_bytes),
        "wsc.performance.queue_max_bytes",
        format!(
            "{} must be between 1KiB and 1GiB",
            crate::size::format(wsc.performance.queue_max_bytes)
        ),
    );
    // Files cannot hold a longer duration (the parser refuses it), but a configuration built
    // in code can; a timer that far away would overflow `Instant` arithmetic.
    for (key, value) in durations(config) {
        check(
            value <= crate::duration::MAX,
            key,
            format!(
                "{} is longer than the maximum of 365 days (8760h)",
                crate::duration::format(value)
            ),
        );
    }
    let token = &wsc.security.token;
    let (needed, present) = match token.algorithm.key_kind() {
        TokenKeyKind::Secret => ("wsc.security.token.secret", !token.secret.is_empty()),
        _ => (
            "wsc.security.token.public_key",
            !token.public_key.trim().is_empty(),
        ),
    };
    check(
        !wsc.security.enable_auth || present,
        "wsc.security.enable_auth",
        format!(
            "is true but {needed} is not set (wsc.security.token.algorithm is {}; the HS* \
             algorithms use wsc.security.token.secret, the others wsc.security.token.public_key)",
            token.algorithm
        ),
    );
    for (key, list) in [
        ("wsc.security.allowed_ips", &wsc.security.allowed_ips),
        ("wsc.security.blocked_ips", &wsc.security.blocked_ips),
    ] {
        for entry in list {
            check(
                valid_ip_or_cidr(entry),
                key,
                format!("`{entry}` is not an IP address or CIDR range (e.g. 10.0.0.0/8)"),
            );
        }
    }
    check(
        !wsc.distributed.enabled || wsc.redis.enabled,
        "wsc.distributed.enabled",
        "multi-node operation needs wsc.redis.enabled: true".to_owned(),
    );
    check(
        wsc.offline.store != OfflineStore::Redis || wsc.redis.enabled,
        "wsc.offline.store",
        "`redis` needs wsc.redis.enabled: true".to_owned(),
    );
    check(
        wsc.offline.max_per_user > 0,
        "wsc.offline.max_per_user",
        "must be at least 1 (turn storage off with wsc.offline.enabled: false)".to_owned(),
    );
    check(
        wsc.offline.max_total >= wsc.offline.max_per_user,
        "wsc.offline.max_total",
        format!(
            "must be at least wsc.offline.max_per_user ({})",
            wsc.offline.max_per_user
        ),
    );
    check(
        !wsc.ack.timeout.is_zero(),
        "wsc.ack.timeout",
        "must be greater than 0".to_owned(),
    );
    check(
        !wsc.redis.enabled
            || wsc.redis.url.starts_with("redis://")
            || wsc.redis.url.starts_with("rediss://"),
        "wsc.redis.url",
        format!(
            "`{}` must start with redis:// or rediss://",
            mask_url(&wsc.redis.url)
        ),
    );
    for url in &wsc.redis.cluster_urls {
        check(
            !wsc.redis.enabled || url.starts_with("redis://") || url.starts_with("rediss://"),
            "wsc.redis.cluster_urls",
            format!("`{}` must start with redis:// or rediss://", mask_url(url)),
        );
    }
    check(
        wsc.redis.pool_size > 0,
        "wsc.redis.pool_size",
        "must be at least 1".to_owned(),
    );
    check(
        !wsc.distributed.key_prefix.is_empty(),
        "wsc.distributed.key_prefix",
        "must not be empty (every key and channel is prefixed)".to_owned(),
    );
    problems
}

/// Most messages an outbound queue may hold (tokio's bounded channel panics far above it).
const MAX_QUEUE_MESSAGES: usize = 1_000_000;
/// Largest WebSocket read or write buffer per connection.
const MAX_SOCKET_BUFFER: usize = 1024 * 1024;
/// Largest outbound queue per connection, in bytes.
const MAX_QUEUE_BYTES: usize = 1024 * 1024 * 1024;

/// Every duration key with its value.
fn durations(config: &GatewayConfig) -> [(&'static str, std::time::Duration); 13] {
    let wsc = &config.wsc;
    [
        ("wsc.heartbeat_interval", wsc.heartbeat_interval),
        ("wsc.client_timeout", wsc.client_timeout),
        ("wsc.ack.timeout", wsc.ack.timeout),
        ("wsc.tickets.timeout", wsc.tickets.timeout),
        ("wsc.offline.ttl", wsc.offline.ttl),
        ("wsc.recovery.history_ttl", wsc.recovery.history_ttl),
        ("wsc.sse.heartbeat", wsc.sse.heartbeat),
        ("wsc.distributed.presence_ttl", wsc.distributed.presence_ttl),
        ("wsc.distributed.node_ttl", wsc.distributed.node_ttl),
        ("wsc.redis.connect_timeout", wsc.redis.connect_timeout),
        (
            "wsc.security.handshake_timeout",
            wsc.security.handshake_timeout,
        ),
        (
            "wsc.performance.write_timeout",
            wsc.performance.write_timeout,
        ),
        (
            "wsc.performance.slow_log_threshold",
            wsc.performance.slow_log_threshold,
        ),
    ]
}

/// A level, or tracing directives (`info,wsc_hub=debug`) that parse as a filter and whose
/// bare words are levels: a bare word that is not a level would silently name a target
/// (`inf` is a typo, not a crate).
fn valid_log_level(level: &str) -> bool {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let bare_words_are_levels = level.split(',').map(str::trim).all(|directive| {
        directive.contains('=') || LEVELS.iter().any(|l| l.eq_ignore_ascii_case(directive))
    });
    bare_words_are_levels
        && tracing_subscriber::EnvFilter::builder()
            .parse(level)
            .is_ok()
}

fn valid_ip_or_cidr(entry: &str) -> bool {
    crate::ip_net(entry).is_some()
}

/// Paths that two routes would share (a server cannot serve both): the WebSocket path,
/// the SSE path and its `/ack` and `/send`, the public `/health`, the health, readiness and
/// metrics paths and the API under `/api/`.
fn clashing_paths(config: &GatewayConfig) -> Vec<(&'static str, String)> {
    let (wsc, sse) = (&config.wsc, &config.wsc.sse);
    let mut routes: Vec<(&'static str, String)> = vec![
        ("health.path", config.health.path.clone()),
        ("health.ready_path", config.health.ready_path.clone()),
        ("metrics.path", config.metrics.path.clone()),
    ];
    if wsc.enabled {
        routes.push(("wsc.path", wsc.path.clone()));
    }
    if sse.enabled {
        routes.push(("wsc.sse.path", sse.path.clone()));
        routes.push(("wsc.sse.path", sse.ack_path()));
        routes.push(("wsc.sse.path", sse.send_path()));
    }
    let mut problems = Vec::new();
    for (i, (key, path)) in routes.iter().enumerate() {
        let earlier = routes[..i].iter().find(|(_, other)| other == path);
        if let Some((other_key, _)) = earlier {
            problems.push((*key, format!("`{path}` is also the route of {other_key}")));
        } else if (key.starts_with("wsc.") && path == "/health") || path.starts_with("/api/") {
            problems.push((
                *key,
                format!("`{path}` is a route the server itself serves"),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_entries_are_addresses_or_ranges() {
        assert!(valid_ip_or_cidr("10.0.0.0/8"));
        assert!(valid_ip_or_cidr("::1"));
        assert!(!valid_ip_or_cidr("10.0.0.0/33"));
        assert!(!valid_ip_or_cidr("example.com"));
    }

    #[test]
    fn log_levels_are_levels_or_directives() {
        for good in [
            "info",
            "DEBUG",
            "off",
            "info,wsc_hub=debug",
            "warn,tower_http=trace",
        ] {
            assert!(valid_log_level(good), "{good}");
        }
        for bad in [
            "",
            "inf",
            "verbose",
            "info,,",
            "wsc_hub=loud",
            "info,wsc_hub",
        ] {
            assert!(!valid_log_level(bad), "{bad}");
        }
    }

    #[test]
    fn two_routes_cannot_share_a_path() {
        let mut config = GatewayConfig::default();
        assert!(clashing_paths(&config).is_empty());
        config.wsc.sse.path = "/ws".to_owned();
        config.metrics.path = "/ws/send".to_owned();
        let keys: Vec<_> = clashing_paths(&config)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        // Each clash is reported at the later route's key, with the earlier one named.
        assert_eq!(keys, ["wsc.sse.path", "wsc.sse.path"]);
        let mut config = GatewayConfig::default();
        config.wsc.path = "/health".to_owned();
        config.wsc.sse.path = "/api/v1/sse".to_owned();
        let keys: Vec<_> = clashing_paths(&config)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            ["wsc.path", "wsc.sse.path", "wsc.sse.path", "wsc.sse.path"]
        );
        config.wsc.sse.enabled = false;
        config.wsc.enabled = false;
        assert!(clashing_paths(&config).is_empty());
    }
}
