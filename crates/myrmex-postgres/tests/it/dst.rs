//! Cron triggers across daylight-saving changes, and a job moving to another zone.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use myrmex_postgres::{JobSpec, MisfirePolicy, PgStore, Trigger};

use crate::common::{db, now};

/// All occurrences of a cron job from `start`, materialized in one pass (they are
/// in the past, so the misfire policy fires all of them).
fn fire_times(
    store: &mut PgStore,
    name: &str,
    expr: &str,
    tz: &str,
    start: &str,
) -> Vec<Timestamp> {
    let mut spec = JobSpec::new(name, "noop", Trigger::cron(expr, tz));
    spec.start = Some(start.parse().unwrap());
    spec.misfire = MisfirePolicy::FireAll;
    spec.max_catchup = 10_000;
    let job = store.create_job(&spec).unwrap();
    store.materialize(Duration::ZERO).unwrap();
    assert_eq!(
        store.watermark(job).unwrap(),
        None,
        "a year-bounded job ends"
    );
    store
        .runs(job)
        .unwrap()
        .into_iter()
        .map(|r| r.scheduled_at)
        .collect()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

#[test]
fn spring_forward_gap_fires_a_fixed_time_once_after_the_gap() {
    let Some(t) = db("dst_gap") else { return };
    let mut s = t.store("a");
    // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00 CEST).
    let got = fire_times(
        &mut s,
        "gap",
        "0 30 2 29 3 * 2026",
        "Europe/Berlin",
        "2026-03-28T00:00:00Z",
    );
    assert_eq!(got, [ts("2026-03-29T01:00:00Z")]);
}

#[test]
fn fall_back_fold_gives_distinct_instants() {
    let Some(t) = db("dst_fold") else { return };
    let mut s = t.store("a");
    // Berlin on 2026-10-25 has 25 hours; 02:30 happens at 00:30Z (CEST) and 01:30Z (CET).
    let all = fire_times(
        &mut s,
        "fold",
        "0 */30 * 25 10 * 2026",
        "Europe/Berlin",
        "2026-10-24T00:00:00Z",
    );
    assert_eq!(all.len(), 50);
    assert!(all.contains(&ts("2026-10-25T00:30:00Z")));
    assert!(all.contains(&ts("2026-10-25T01:30:00Z")));
    let fixed = fire_times(
        &mut s,
        "fixed",
        "0 30 2 25 10 * 2026",
        "Europe/Berlin",
        "2026-10-24T00:00:00Z",
    );
    assert_eq!(
        fixed,
        [ts("2026-10-25T00:30:00Z")],
        "a fixed time fires once, at the earlier instant"
    );
}

#[test]
fn moving_a_job_to_another_zone_recomputes_its_watermark() {
    let Some(t) = db("dst_zone_change") else {
        return;
    };
    let mut s = t.store("a");
    let job = s
        .create_job(&JobSpec::new(
            "noon",
            "noop",
            Trigger::cron("0 0 12 * * *", "Europe/Berlin"),
        ))
        .unwrap();
    let berlin = s.watermark(job).unwrap().unwrap();
    assert_eq!(
        berlin
            .to_zoned(TimeZone::get("Europe/Berlin").unwrap())
            .hour(),
        12
    );
    s.edit_trigger(job, &Trigger::cron("0 0 12 * * *", "America/New_York"))
        .unwrap();
    let ny = s.watermark(job).unwrap().unwrap();
    let db_now = now(&mut s);
    let local = ny.to_zoned(TimeZone::get("America/New_York").unwrap());
    assert_eq!((local.hour(), local.minute(), local.second()), (12, 0, 0));
    assert!(
        ny > db_now - SignedDuration::from_secs(5) && ny <= db_now + SignedDuration::from_hours(24)
    );
}
