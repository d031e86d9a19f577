//! The deterministic simulator as a test suite (`src/sim/`).
//!
//! Goal: the durable core keeps its promises under crashes at any point, torn writes, slow and
//! full disks and flaky SDK connections: every acknowledged invocation finishes exactly once,
//! no `ctx.run` body runs again after its result is durable, object state matches a reference
//! model, deliveries keep emission order, no partition gets stuck, and every store equals the
//! one rebuilt from its log. And the simulator itself must be able to tell: each defect of
//! `ratchet::defect`, put back on purpose, is found within the CI seed budget.
//!
//! Method: each test runs a range of seeds (`Options::for_seed`); a failing seed prints its
//! violations and the one command that replays it. `RATCHET_SIM_SEEDS=n` changes how many
//! seeds each range test runs (the CI default gives 1,024 in all); `RATCHET_SIM_SEED=s` makes
//! `replay_one` run exactly seed `s`.

use ratchet::defect::Defect;
use ratchet::sim::{self, Options, Report};

/// Seeds per range test; four range tests run in CI.
const SEEDS_PER_RANGE: u64 = 256;
/// Seeds a defect may take to be found.
const DEFECT_SEEDS_MAX: u64 = 1024;

fn seeds_per_range() -> u64 {
    std::env::var("RATCHET_SIM_SEEDS").ok().and_then(|v| v.parse().ok()).unwrap_or(SEEDS_PER_RANGE)
}

fn replay_command(seed: u64, defect: Option<Defect>) -> String {
    let d = defect.map(|d| format!(" RATCHET_SIM_DEFECT={d:?}")).unwrap_or_default();
    format!(
        "RATCHET_SIM_SEED={seed}{d} cargo nextest run --features sim --test simulation replay_one --no-capture"
    )
}

fn describe(r: &Report) -> String {
    format!(
        "seed {} failed ({:?}):\n  {}\nreplay with:\n  {}",
        r.options.seed,
        r.options,
        r.violations.join("\n  "),
        replay_command(r.options.seed, r.options.defect)
    )
}

fn range(first: u64) {
    let n = seeds_per_range();
    let mut acked = 0;
    for seed in first..first + n {
        let r = sim::run(Options::for_seed(seed));
        assert!(r.passed(), "{}", describe(&r));
        acked += r.acknowledged;
    }
    // A range in which nothing was ever acknowledged would prove nothing.
    assert!(acked as u64 > n, "only {acked} invocations acknowledged over {n} seeds");
}

#[test]
fn seeds_0() {
    range(0);
}

#[test]
fn seeds_1() {
    range(1_000_000);
}

#[test]
fn seeds_2() {
    range(2_000_000);
}

#[test]
fn seeds_3() {
    range(3_000_000);
}

/// Replays `RATCHET_SIM_SEED` (with `RATCHET_SIM_DEFECT`, if set), or seed 42.
#[test]
fn replay_one() {
    let seed = std::env::var("RATCHET_SIM_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(42);
    let mut o = Options::for_seed(seed);
    if let Ok(d) = std::env::var("RATCHET_SIM_DEFECT") {
        o.defect = Defect::ALL.into_iter().find(|x| format!("{x:?}") == d);
        assert!(o.defect.is_some(), "unknown defect {d}; known: {:?}", Defect::ALL);
    }
    let r = sim::run(o);
    eprintln!(
        "seed {seed}: {} acknowledged, {} ms virtual, trace {:016x}, violations: {:#?}",
        r.acknowledged, r.virtual_ms, r.trace_hash, r.violations
    );
    if std::env::var_os("RATCHET_SIM_TRACE").is_some() {
        eprintln!("{}", r.trace.join("\n"));
    }
    if r.options.defect.is_none() {
        assert!(r.passed(), "{}", describe(&r));
    }
}

#[test]
fn a_seed_replays_identically() {
    for seed in [1, 7, 123, 4242] {
        let a = sim::run(Options::for_seed(seed));
        let b = sim::run(Options::for_seed(seed));
        assert_eq!(a.trace_hash, b.trace_hash, "seed {seed} is not deterministic");
        assert_eq!(a.violations, b.violations, "seed {seed}");
        assert_eq!(a.virtual_ms, b.virtual_ms, "seed {seed}");
    }
}

/// Runs seeds with `defect` put back until one fails; returns that seed.
fn find(defect: Defect) -> u64 {
    for seed in 0..DEFECT_SEEDS_MAX {
        let mut o = Options::for_seed(seed);
        o.defect = Some(defect);
        let r = sim::run(o);
        if !r.passed() {
            eprintln!("{defect:?} found by seed {seed}: {}", r.violations.join(" | "));
            return seed;
        }
    }
    panic!("{defect:?} was not found within {DEFECT_SEEDS_MAX} seeds");
}

#[test]
fn defect_shuffler_drops_a_failed_delivery_is_found() {
    find(Defect::ShufflerDropsFailedDelivery);
}

#[test]
fn defect_shuffler_truncates_first_is_found() {
    find(Defect::ShufflerTruncatesFirst);
}

#[test]
fn defect_shuffler_reorders_is_found() {
    find(Defect::ShufflerReorders);
}

#[test]
fn defect_limit_fails_partition_is_found() {
    find(Defect::LimitFailsPartition);
}

#[test]
fn defect_store_full_stops_partition_is_found() {
    find(Defect::StoreFullStopsPartition);
}

#[test]
fn defect_retry_from_config_is_found() {
    find(Defect::RetryFromConfig);
}

#[test]
fn defect_timers_from_replay_is_found() {
    find(Defect::TimersFromReplay);
}

#[test]
fn defect_timer_firing_dropped_is_found() {
    find(Defect::TimerFiringDropped);
}
