//! Property-based fuzzing for a bounded time, on the stable toolchain: [`run_for`] feeds
//! inputs from a `proptest` strategy to a property until the time is up (`WSC_FUZZ_SECONDS`,
//! default 2 s per target; `cargo xtask fuzz --seconds N` sets it) and fails with the
//! smallest input proptest shrinks a failure to. A panic in the code under test is a
//! failure too. Inputs that once failed are kept in each target's regression list and run
//! first, every time.

use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// How long each target runs: `WSC_FUZZ_SECONDS`, else 2 s.
pub fn budget() -> Duration {
    let seconds = std::env::var("WSC_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

/// Runs `property` on inputs of `strategy` for [`budget`]; panics with the shrunk input on
/// the first failure. Returns how many inputs were tried.
pub fn run_for<S, F>(target: &str, strategy: S, property: F) -> u64
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError>,
{
    let deadline = Instant::now() + budget();
    let mut tried = 0u64;
    let mut round = 0u64;
    while Instant::now() < deadline {
        // Each round is a fresh, deterministic-per-round sequence: a failure names its round
        // so it can be replayed.
        let config = Config {
            cases: 256,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(round),
            ..Config::default()
        };
        let mut runner = TestRunner::new(config);
        if let Err(failure) = runner.run(&strategy, &property) {
            panic!("{target}: round {round} failed: {failure}");
        }
        tried += 256;
        round += 1;
    }
    assert!(tried > 0, "{target}: no input tried within {:?}", budget());
    eprintln!("{target}: {tried} inputs in {:?}, no failure", budget());
    tried
}
