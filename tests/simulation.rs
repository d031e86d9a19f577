//! The deterministic simulator as a test suite (`src/sim/`).
//!
//! Goal: the durable core keeps its promises under crashes at any point, torn writes, slow and
//! full disks and flaky SDK connections: every acknowledged invocation finishes exactly once,
//! no `ctx.run` body runs again after its result is durable, object state matches a reference
//! model, deliveries keep emission order, no partition gets stuck, and every store equals the
//! one rebuilt from its log. And the simulator itself must be able to tell: each defect of
//! `ratchet::defect`, put back on purpose, is found within the CI seed budget, by the check
//! meant for it.
//!
//! Method: the four range tests run seeds 0..1,024 between them (`Options::for_seed`); a
//! failing seed prints its violations and the one command that replays it. The defect tests
//! search the same seeds, so without the defect each of them passes and a failure is the
//! defect's doing. `RATCHET_SIM_SEEDS=n` makes each range test run `n` seeds (the four then
//! cover 0..4n); `RATCHET_SIM_SEED=s` makes `replay_one` run exactly seed `s`.

use ratchet::defect::Defect;
use ratchet::sim::{self, Options, Report};

/// Seeds per range test; four range tests run in CI.
const SEEDS_PER_RANGE: u64 = 256;
/// Seeds a defect may take to be found: the seeds the four range tests run without defects.
const DEFECT_SEEDS_MAX: u64 = 4 * SEEDS_PER_RANGE;

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
    let mut trimmed = 0;
    let mut skipped = Vec::new();
    for seed in first..first + n {
        let r = sim::run(Options::for_seed(seed));
        assert!(r.passed(), "{}", describe(&r));
        acked += r.acknowledged;
        trimmed += r.trimmed;
        skipped.extend(r.skipped.iter().map(|s| format!("seed {seed}: {s}")));
    }
    eprintln!(
        "{n} seeds from {first}: {acked} acknowledged, {trimmed} partitions ended with a trimmed log, {} checks skipped",
        skipped.len()
    );
    for s in &skipped {
        eprintln!("  {s}");
    }
    // A range in which nothing was ever acknowledged would prove nothing.
    assert!(acked as u64 > n, "only {acked} invocations acknowledged over {n} seeds");
    // Nor one in which no log was trimmed, or in which trimming hid the whole-log checks.
    assert!(trimmed as u64 > n / 16, "only {trimmed} trimmed logs over {n} seeds");
    assert!(skipped.len() * 10 <= trimmed, "whole-log checks skipped too often: {skipped:#?}");
}

#[test]
fn seeds_0() {
    range(0);
}

#[test]
fn seeds_1() {
    range(seeds_per_range());
}

#[test]
fn seeds_2() {
    range(2 * seeds_per_range());
}

#[test]
fn seeds_3() {
    range(3 * seeds_per_range());
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

/// A task that panics is a violation naming it and where it panicked; the run goes on and
/// reports, instead of losing the task or taking the test binary down without the seed.
#[test]
fn a_panicking_task_is_reported() {
    let mut o = Options::for_seed(3);
    o.panicking_handler = true;
    let r = sim::run(o);
    let panics: Vec<&String> = r.violations.iter().filter(|v| v.contains("panicked")).collect();
    assert!(!panics.is_empty(), "no panic reported: {:#?}", r.violations);
    for v in &panics {
        assert!(
            v.contains("the SDK of Flaky/panic panicked at src/sim/handlers.rs")
                && v.contains("Flaky.panic panics in its first attempt"),
            "{v}"
        );
    }
    // The panic is all that went wrong: the next attempt succeeds and the checks pass.
    assert_eq!(panics.len(), r.violations.len(), "{:#?}", r.violations);
}

/// A record the state machine cannot apply is skipped by the processor; the rebuild reports
/// it with its LSN, since nothing the node writes may be one.
#[test]
fn an_invalid_record_is_reported_with_its_lsn() {
    let mut o = Options::for_seed(5);
    o.lives = 1;
    o.invalid_record = true;
    let r = sim::run(o);
    let invalid: Vec<&String> =
        r.violations.iter().filter(|v| v.contains("cannot be applied")).collect();
    assert_eq!(invalid.len(), 1, "{:#?}", r.violations);
    assert!(
        invalid[0].starts_with("partition 0: the record at LSN ")
            && invalid[0].ends_with("cannot be applied: empty record"),
        "{}",
        invalid[0]
    );
    // It is the only thing wrong: the processor went on past it.
    assert_eq!(r.violations.len(), 1, "{:#?}", r.violations);
}

/// What a defect must cause to count as found: a violation containing every substring of one
/// of these entries. Anything else it causes may be a consequence, but a seed that shows only
/// that was not caught by the check meant for the defect (or hit a real bug).
fn expected(defect: Defect) -> &'static [&'static [&'static str]] {
    match defect {
        // A lost delivery: a send's item, a call, or a call's response never arrives.
        Defect::ShufflerDropsFailedDelivery | Defect::ShufflerTruncatesFirst => {
            &[&["sender", "delivered"], &["Counter/", "the model says"], &["is stuck in"]]
        }
        // The receiver drops the older sequence numbers that arrive after newer ones.
        Defect::ShufflerReorders => &[&["sender", "delivered"], &["Counter/", "the model says"]],
        Defect::LimitFailsPartition => &[&["stopped", "over the limit"]],
        Defect::StoreFullStopsPartition => &[&["stopped", "No space left on device"]],
        Defect::RetryFromConfig => &[&["the store rebuilt from the log differs"]],
        Defect::TimersFromReplay => &[&["timer", "fired", "times"]],
        Defect::TimerFiringDropped => &[&["rows left in Timers"]],
        Defect::AppendsNotSplit => &[&["RA1005", "over the log's limit"]],
        Defect::SignalTakenTwice => &[&["sent signal", "a second time"], &["Awk/wait", "expected"]],
        // The new life takes the old one's timer (its sleep ends early), its call's answer
        // (its output is wrong), or its attempt's effects (its journal is not its own: a
        // journal mismatch pauses it, or it ended with the old attempt's end).
        Defect::LifeIgnored => &[
            &["before its wake-up time"],
            &["never asked for"],
            &["/run) expected", "b|b"],
            &["/run) is stuck in Paused"],
        ],
        // The live store lost the members of earlier batches; one rebuilt in one batch has
        // them.
        Defect::RetainedBlockOverwritten => &[&["is in no retained block"]],
        // A stale edit's count lands in the state.
        Defect::StateEditIgnoresVersion => &[&["Counter/", "count is"]],
        // Purged invocations leave index rows behind.
        Defect::CreatedIndexLeftBehind => &[&["the creation index", "rows without one"]],
    }
}

fn matches(defect: Defect, violations: &[String]) -> bool {
    expected(defect).iter().any(|all| violations.iter().any(|v| all.iter().all(|s| v.contains(s))))
}

/// Runs seeds with `defect` put back until one fails with a violation the defect is expected
/// to cause; returns that seed. The range is the one the range tests run without defects, so
/// a failure here is the defect's doing.
fn find(defect: Defect) -> u64 {
    let mut other = 0;
    for seed in 0..DEFECT_SEEDS_MAX {
        let mut o = Options::for_seed(seed);
        o.defect = Some(defect);
        let r = sim::run(o);
        if r.passed() {
            continue;
        }
        if matches(defect, &r.violations) {
            eprintln!(
                "{defect:?} found by seed {seed} (after {other} seeds that failed otherwise):\n  {}",
                r.violations.join("\n  ")
            );
            return seed;
        }
        other += 1;
        eprintln!(
            "{defect:?}: seed {seed} failed without the expected violation {:?}:\n  {}",
            expected(defect),
            r.violations.join("\n  ")
        );
    }
    panic!("{defect:?} was not found within {DEFECT_SEEDS_MAX} seeds ({other} failed otherwise)");
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
fn defect_appends_not_split_is_found() {
    find(Defect::AppendsNotSplit);
}

#[test]
fn defect_timer_firing_dropped_is_found() {
    find(Defect::TimerFiringDropped);
}

#[test]
fn defect_signal_taken_twice_is_found() {
    find(Defect::SignalTakenTwice);
}

#[test]
fn defect_life_ignored_is_found() {
    find(Defect::LifeIgnored);
}

#[test]
fn defect_retained_block_overwritten_is_found() {
    find(Defect::RetainedBlockOverwritten);
}

#[test]
fn defect_state_edit_ignores_version_is_found() {
    find(Defect::StateEditIgnoresVersion);
}

#[test]
fn defect_created_index_left_behind_is_found() {
    find(Defect::CreatedIndexLeftBehind);
}
