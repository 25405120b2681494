//! Handshake guards: IP allow/block lists, the per-client handshake rate limit, and the rate
//! limit of the log of refused handshakes.

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// An IP address or CIDR range of an allow or block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr(IpNet);

impl Cidr {
    /// Parses `10.0.0.0/8`, `::1`, `192.168.1.7` (config validation already checked them,
    /// with the same parser).
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let net = wsc_config::ip_net(text)?;
        // A range written as mapped IPv6 (`::ffff:10.0.0.0/104`) compares as IPv4 too.
        let net = match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
                Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map(IpNet::V4).ok()?,
                None => net,
            },
            _ => net,
        };
        Some(Cidr(net))
    }

    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
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

/// The per-client handshake rate limit: a keyed GCRA limiter (`governor`) that allows a
/// burst of `per_second` handshakes and refills at `per_second` a second.
///
/// A client is its IPv4 address, or the /64 prefix of its IPv6 address: one host usually
/// holds a whole /64, so keying by full IPv6 address would let it rotate addresses past the
/// limit. A handshake costs one map lookup; addresses that are idle again are dropped by
/// [`HandshakeLimiter::sweep`], which the server calls periodically (never per handshake).
pub(crate) struct HandshakeLimiter<C: Clock = DefaultClock> {
    clock: C,
    /// The limiter for the configured rate; rebuilt when a reload changes the rate.
    current: RwLock<Option<Arc<RateLimit<C>>>>,
}

/// A keyed limiter and the rate it was built for.
struct RateLimit<C: Clock> {
    rate: NonZeroU32,
    limiter: KeyedLimiter<C>,
}

type KeyedLimiter<C> =
    RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;

impl Default for HandshakeLimiter {
    fn default() -> Self {
        HandshakeLimiter::with_clock(DefaultClock::default())
    }
}

impl<C: Clock> std::fmt::Debug for HandshakeLimiter<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeLimiter").finish_non_exhaustive()
    }
}

impl<C: Clock + Clone> HandshakeLimiter<C> {
    /// A limiter reading time from `clock` (a fake clock in tests).
    pub(crate) fn with_clock(clock: C) -> Self {
        HandshakeLimiter {
            clock,
            current: RwLock::new(None),
        }
    }

    /// Whether one more handshake from `ip` fits in `per_second` (0 = unlimited).
    pub(crate) fn allow(&self, ip: IpAddr, per_second: u32) -> bool {
        let Some(rate) = NonZeroU32::new(per_second) else {
            return true;
        };
        self.limiter(rate)
            .limiter
            .check_key(&client_key(ip))
            .is_ok()
    }

    /// The limiter for `rate`, built on first use and again when the rate changes.
    fn limiter(&self, rate: NonZeroU32) -> Arc<RateLimit<C>> {
        if let Some(current) = self.current()
            && current.rate == rate
        {
            return current;
        }
        let mut slot = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(current) if current.rate == rate => current.clone(),
            _ => {
                let limiter =
                    RateLimiter::dashmap_with_clock(Quota::per_second(rate), self.clock.clone());
                let fresh = Arc::new(RateLimit { rate, limiter });
                *slot = Some(fresh.clone());
                fresh
            }
        }
    }

    /// The limiter in use, if a limited handshake came yet.
    fn current(&self) -> Option<Arc<RateLimit<C>>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forgets the clients whose allowance is full again (they would be allowed a whole
    /// burst anyway). Linear in the tracked clients, so it runs on a timer.
    pub(crate) fn sweep(&self) {
        if let Some(current) = self.current() {
            current.limiter.retain_recent();
            current.limiter.shrink_to_fit();
        }
    }

    /// How many clients are tracked.
    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.current().map_or(0, |current| current.limiter.len())
    }
}

/// How often the server forgets idle clients of the handshake limiter.
pub(crate) const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// The limiter's key for a client: the IPv4 address (IPv4-mapped IPv6 included), or the
/// IPv6 /64 prefix.
fn client_key(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Lines per second the handshake refusal log writes at most; the rest are counted and the
/// count is reported on the next line written.
pub(crate) const REFUSAL_LINES_PER_SECOND: u32 = 10;

/// Rate limit of the refusal log, so that a flood of refused handshakes cannot fill the log
/// while every refusal is still accounted for.
pub(crate) struct RefusalLog<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>,
    suppressed: AtomicU64,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog::with_clock(REFUSAL_LINES_PER_SECOND, DefaultClock::default())
    }
}

impl<C: Clock> std::fmt::Debug for RefusalLog<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusalLog")
            .field("suppressed", &self.suppressed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<C: Clock> RefusalLog<C> {
    /// At most `per_second` lines a second (a burst of that many), timed by `clock`.
    pub(crate) fn with_clock(per_second: u32, clock: C) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        RefusalLog {
            limiter: RateLimiter::direct_with_clock(Quota::per_second(rate), clock),
            suppressed: AtomicU64::new(0),
        }
    }

    /// Called once per refusal: `Some(n)` when this refusal may be logged, `n` being the
    /// refusals left unlogged since the last line; `None` when it must not be logged (it is
    /// counted for the next line).
    pub(crate) fn admit(&self) -> Option<u64> {
        if self.limiter.check().is_ok() {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

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
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        // A range written as mapped IPv6 matches the IPv4 clients it names.
        let mapped = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
        assert!(!mapped.contains(ip("11.0.0.1")));
    }

    #[test]
    fn api_keys_compare_whole() {
        use crate::api_key::same;
        assert!(same("s3cret", "s3cret"));
        assert!(!same("s3cret", "s3creT"));
        assert!(!same("s3cret", "s3cre"));
        assert!(!same("", "x"));
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

    fn fake_limiter() -> (HandshakeLimiter<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (HandshakeLimiter::with_clock(clock.clone()), clock)
    }

    #[test]
    fn limiter_counts_per_ip_and_refills() {
        let (limiter, clock) = fake_limiter();
        assert!(limiter.allow(ip("1.1.1.1"), 2));
        assert!(limiter.allow(ip("1.1.1.1"), 2));
        assert!(!limiter.allow(ip("1.1.1.1"), 2));
        assert!(limiter.allow(ip("2.2.2.2"), 2));
        assert!(limiter.allow(ip("1.1.1.1"), 0));
        // IPv4-mapped IPv6 is the same client as its IPv4 address.
        assert!(!limiter.allow(ip("::ffff:1.1.1.1"), 2));
        clock.advance(Duration::from_millis(500));
        assert!(limiter.allow(ip("1.1.1.1"), 2));
        assert!(!limiter.allow(ip("1.1.1.1"), 2));
        // A whole second later the full allowance is back: exactly the configured number.
        clock.advance(Duration::from_secs(1));
        let admitted = (0..10).filter(|_| limiter.allow(ip("1.1.1.1"), 2)).count();
        assert_eq!(admitted, 2);
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64_prefix() {
        let (limiter, _clock) = fake_limiter();
        // Rotating addresses inside one /64 does not buy more handshakes.
        assert!(limiter.allow(ip("2001:db8:1:2::1"), 2));
        assert!(limiter.allow(ip("2001:db8:1:2:aaaa::7"), 2));
        assert!(!limiter.allow(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"), 2));
        // Another /64 is another client.
        assert!(limiter.allow(ip("2001:db8:1:3::1"), 2));
        assert_eq!(limiter.tracked(), 2);
    }

    #[test]
    fn sweeping_forgets_idle_clients_only() {
        let (limiter, clock) = fake_limiter();
        for n in 0..1000u32 {
            assert!(limiter.allow(IpAddr::from(n.to_be_bytes()), 5));
        }
        assert_eq!(limiter.tracked(), 1000);
        clock.advance(Duration::from_secs(2));
        // A client still inside its burst is kept; the idle ones go.
        assert!(limiter.allow(ip("9.9.9.9"), 5));
        limiter.sweep();
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn a_changed_rate_applies_to_the_next_handshake() {
        let (limiter, _clock) = fake_limiter();
        assert!(limiter.allow(ip("1.1.1.1"), 1));
        assert!(!limiter.allow(ip("1.1.1.1"), 1));
        assert!(limiter.allow(ip("1.1.1.1"), 3));
    }

    #[test]
    fn refusal_log_is_rate_limited_and_counts_the_suppressed() {
        let clock = FakeRelativeClock::default();
        let log = RefusalLog::with_clock(3, clock.clone());
        // A burst of three lines, nothing suppressed before them.
        assert_eq!(log.admit(), Some(0));
        assert_eq!(log.admit(), Some(0));
        assert_eq!(log.admit(), Some(0));
        // A flood in the same instant writes nothing more...
        for _ in 0..100 {
            assert_eq!(log.admit(), None);
        }
        // ...and the next line that may be written reports it.
        clock.advance(Duration::from_millis(334));
        assert_eq!(log.admit(), Some(100));
        assert_eq!(log.admit(), None);
        clock.advance(Duration::from_secs(1));
        assert_eq!(log.admit(), Some(1));
        assert_eq!(log.admit(), Some(0));
    }
}
