//! Handshake guards: IP allow/block lists and the per-IP handshake rate limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// An IP address or CIDR range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1`, `192.168.1.7` (config validation already checked them).
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (ip, bits) = match text.split_once('/') {
            Some((ip, bits)) => (ip.parse().ok()?, bits.parse().ok()?),
            None => {
                let ip: IpAddr = text.parse().ok()?;
                (ip, if ip.is_ipv4() { 32 } else { 128 })
            }
        };
        Some(Cidr {
            network: canonical(ip),
            bits: if ip.is_ipv4() {
                bits.min(32)
            } else {
                bits.min(128)
            },
        })
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The allow and block lists.
#[derive(Debug, Clone, Default)]
pub(crate) struct IpRules {
    allowed: Vec<Cidr>,
    blocked: Vec<Cidr>,
}

impl IpRules {
    pub(crate) fn new(allowed: &[String], blocked: &[String]) -> Self {
        IpRules {
            allowed: allowed.iter().filter_map(|c| Cidr::parse(c)).collect(),
            blocked: blocked.iter().filter_map(|c| Cidr::parse(c)).collect(),
        }
    }

    /// `Err((code, message))` when the address may not connect. The block list wins.
    pub(crate) fn check(&self, ip: IpAddr) -> Result<(), (&'static str, String)> {
        if self.blocked.iter().any(|c| c.contains(ip)) {
            return Err(("ip_blocked", format!("{ip} is blocked")));
        }
        if !self.allowed.is_empty() && !self.allowed.iter().any(|c| c.contains(ip)) {
            return Err(("ip_not_allowed", format!("{ip} is not in the allow list")));
        }
        Ok(())
    }
}

/// Counts handshakes per client IP in one-second windows.
#[derive(Debug, Default)]
pub(crate) struct HandshakeLimiter {
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Above this many tracked addresses, windows older than a second are swept out.
const SWEEP_AT: usize = 10_000;

impl HandshakeLimiter {
    /// Whether one more handshake from `ip` fits in `per_second` (0 = unlimited).
    pub(crate) fn allow(&self, ip: IpAddr, per_second: u32) -> bool {
        if per_second == 0 {
            return true;
        }
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return true;
        };
        if windows.len() >= SWEEP_AT {
            windows.retain(|_, (start, _)| now.duration_since(*start).as_secs() < 1);
        }
        let (start, count) = windows.entry(canonical(ip)).or_insert((now, 0));
        if now.duration_since(*start).as_secs() >= 1 {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= per_second
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.2.3.4")));
        assert!(!net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(Cidr::parse("nope").is_none());
    }

    #[test]
    fn block_list_wins_and_allow_list_restricts() {
        let rules = IpRules::new(&["10.0.0.0/8".into()], &["10.0.0.9".into()]);
        assert!(rules.check(ip("10.0.0.1")).is_ok());
        assert_eq!(rules.check(ip("10.0.0.9")).unwrap_err().0, "ip_blocked");
        assert_eq!(
            rules.check(ip("192.168.0.1")).unwrap_err().0,
            "ip_not_allowed"
        );
        assert!(IpRules::default().check(ip("1.2.3.4")).is_ok());
    }

    #[test]
    fn limiter_counts_per_ip() {
        let limiter = HandshakeLimiter::default();
        assert!(limiter.allow(ip("1.1.1.1"), 2));
        assert!(limiter.allow(ip("1.1.1.1"), 2));
        assert!(!limiter.allow(ip("1.1.1.1"), 2));
        assert!(limiter.allow(ip("2.2.2.2"), 2));
        assert!(limiter.allow(ip("1.1.1.1"), 0));
    }
}
