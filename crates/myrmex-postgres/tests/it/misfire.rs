//! Misfire policies after an outage: the watermark is ten minutes behind.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use myrmex_postgres::{JobSpec, MisfirePolicy, Origin, PgStore, RunInfo, RunState, Trigger};

use crate::common::{db, now};

const EVERY: i64 = 10;
const GRACE: i64 = 60;

/// Creates a 10 s interval job whose watermark is ten minutes in the past, as if
/// every node had been down, materializes once, and returns the runs, the database
/// time of the pass and the grid start.
fn outage(
    test: &str,
    policy: MisfirePolicy,
    max_catchup: u32,
) -> Option<(Vec<RunInfo>, Timestamp, i64)> {
    let t = db(test)?;
    let mut a: PgStore = t.store("a");
    let start = now(&mut a) - SignedDuration::from_secs(600);
    let mut spec = JobSpec::new(
        "m",
        "noop",
        Trigger::every(SignedDuration::from_secs(EVERY)),
    );
    spec.start = Some(start);
    spec.misfire = policy;
    spec.misfire_grace = SignedDuration::from_secs(GRACE);
    spec.max_catchup = max_catchup;
    let job = a.create_job(&spec).unwrap();
    let report = a.materialize(Duration::ZERO).unwrap();
    let db_now = report.db_now.unwrap();
    let runs = a.runs(job).unwrap();
    // The first grid point at or after `start`, which has a fraction of a second: a
    // start at 12:00:00.3 fires first at 12:00:10, not at 12:00:00.
    let start_ceil = start.as_second() + i64::from(start.subsec_nanosecond() > 0);
    let first = (start_ceil + EVERY - 1).div_euclid(EVERY) * EVERY;
    // The watermark is the first grid point after now.
    let wm = a.watermark(job).unwrap().unwrap();
    assert!(wm > db_now && wm.as_second() - EVERY <= db_now.as_second());
    Some((runs, db_now, first))
}

/// Grid points in `[first, db_now]`, split at the misfire cut-off.
fn grid(first: i64, db_now: Timestamp) -> (Vec<i64>, Vec<i64>) {
    let cut = db_now - SignedDuration::from_secs(GRACE);
    let all: Vec<i64> = (0..)
        .map(|k| first + k * EVERY)
        .take_while(|s| Timestamp::from_second(*s).unwrap() <= db_now)
        .collect();
    all.iter()
        .partition(|s| Timestamp::from_second(**s).unwrap() < cut)
}

fn split(runs: &[RunInfo]) -> (Vec<i64>, Vec<i64>, Vec<i64>) {
    let secs = |f: &dyn Fn(&RunInfo) -> bool| -> Vec<i64> {
        runs.iter()
            .filter(|r| f(r))
            .map(|r| r.scheduled_at.as_second())
            .collect()
    };
    (
        secs(&|r| r.origin == Origin::Misfire && r.state == RunState::Pending),
        secs(&|r| r.state == RunState::Skipped),
        secs(&|r| r.origin == Origin::Schedule && r.state == RunState::Pending),
    )
}

#[test]
fn fire_all_is_capped_at_max_catchup_and_records_the_rest() {
    let Some((runs, db_now, first)) = outage("misfire_fire_all", MisfirePolicy::FireAll, 5) else {
        return;
    };
    let (missed, on_time) = grid(first, db_now);
    let (fired, skipped, scheduled) = split(&runs);
    assert_eq!(fired, missed[..5].to_vec(), "oldest first");
    assert_eq!(skipped, missed[5..].to_vec());
    assert_eq!(scheduled, on_time);
}

#[test]
fn fire_once_runs_only_the_newest_missed_occurrence() {
    let Some((runs, db_now, first)) = outage("misfire_fire_once", MisfirePolicy::FireOnce, 100)
    else {
        return;
    };
    let (missed, on_time) = grid(first, db_now);
    let (fired, skipped, scheduled) = split(&runs);
    assert_eq!(fired, vec![*missed.last().unwrap()]);
    assert_eq!(skipped, missed[..missed.len() - 1].to_vec());
    assert_eq!(scheduled, on_time);
}

#[test]
fn skip_records_every_missed_occurrence_as_skipped() {
    let Some((runs, db_now, first)) = outage("misfire_skip", MisfirePolicy::Skip, 100) else {
        return;
    };
    let (missed, on_time) = grid(first, db_now);
    let (fired, skipped, scheduled) = split(&runs);
    assert!(fired.is_empty());
    assert_eq!(skipped, missed);
    assert_eq!(scheduled, on_time);
}

/// A 10 ms job whose watermark is 250 s behind (19 000 missed occurrences): a
/// backlog longer than one pass
/// materializes (10 000 occurrences per job per pass). Returns the runs after
/// every pass it took and the number of passes.
fn long_backlog(
    test: &str,
    policy: MisfirePolicy,
    max_catchup: u32,
) -> Option<(Vec<RunInfo>, usize)> {
    let t = db(test)?;
    let mut a: PgStore = t.store("a");
    let start = now(&mut a) - SignedDuration::from_secs(250);
    let mut spec = JobSpec::new(
        "fast",
        "noop",
        Trigger::every(SignedDuration::from_millis(10)),
    );
    spec.start = Some(start);
    spec.misfire = policy;
    spec.misfire_grace = SignedDuration::from_secs(GRACE);
    spec.max_catchup = max_catchup;
    let job = a.create_job(&spec).unwrap();
    let mut passes = 0;
    loop {
        let report = a.materialize(Duration::ZERO).unwrap();
        assert_eq!(report.conflicts + report.cas_failures, 0, "{report:?}");
        passes += 1;
        // Caught up once the watermark is past the pass's now.
        if a.watermark(job).unwrap().unwrap() > report.db_now.unwrap() {
            assert_eq!(report.truncated, 0);
            break;
        }
        assert_eq!(report.truncated, 1, "{report:?}");
        assert!(passes < 10, "the backlog does not shrink");
    }
    let runs = a.runs(job).unwrap();
    // One row per grid point from the first to the last, whatever the passes.
    let ms: Vec<i64> = runs
        .iter()
        .map(|r| r.scheduled_at.as_millisecond())
        .collect();
    assert!(
        ms.windows(2).all(|w| w[1] - w[0] == 10),
        "a gap or a repeat"
    );
    Some((runs, passes))
}

fn fired_misfires(runs: &[RunInfo]) -> usize {
    runs.iter()
        .filter(|r| r.origin == Origin::Misfire && r.state == RunState::Pending)
        .count()
}

#[test]
fn a_backlog_longer_than_one_pass_fires_all_up_to_the_cap_once() {
    let Some((runs, passes)) = long_backlog("backlog_fire_all", MisfirePolicy::FireAll, 12_000)
    else {
        return;
    };
    assert!(passes >= 2, "{passes}");
    // The cap counts across passes: exactly the 12 000 oldest missed fire.
    assert_eq!(fired_misfires(&runs), 12_000);
    let first_skipped = runs
        .iter()
        .position(|r| r.state == RunState::Skipped)
        .unwrap();
    assert_eq!(first_skipped, 12_000);
}

#[test]
fn a_backlog_longer_than_one_pass_fires_once() {
    let Some((runs, passes)) = long_backlog("backlog_fire_once", MisfirePolicy::FireOnce, 100)
    else {
        return;
    };
    assert!(passes >= 2, "{passes}");
    assert_eq!(
        fired_misfires(&runs),
        1,
        "only the newest missed occurrence"
    );
    let missed: Vec<&RunInfo> = runs
        .iter()
        .filter(|r| r.origin == Origin::Misfire)
        .collect();
    assert_eq!(missed.last().unwrap().state, RunState::Pending);
}

#[test]
fn a_backlog_longer_than_one_pass_is_skipped_entirely() {
    let Some((runs, _)) = long_backlog("backlog_skip", MisfirePolicy::Skip, 100) else {
        return;
    };
    assert_eq!(fired_misfires(&runs), 0);
}
