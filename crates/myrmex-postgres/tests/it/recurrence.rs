//! Calendar recurrences (myrmex-core's `Recurrence`) as cluster triggers: the
//! occurrence grid, DST days in a zone, unions of rules, and stable definitions.

use std::time::Duration;

use jiff::civil::{date, time};
use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use myrmex_postgres::{JobSpec, MisfirePolicy, PgStore, Recurrence, RunState, Trigger};

use crate::common::{db, now};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

/// Every occurrence of a bounded recurrence job from `start`, materialized in one
/// pass (all in the past, so `fire_all` runs every one).
fn fire_times(store: &mut PgStore, name: &str, trigger: Trigger, start: &str) -> Vec<Timestamp> {
    let mut spec = JobSpec::new(name, "noop", trigger.clone());
    spec.start = Some(ts(start));
    spec.misfire = MisfirePolicy::FireAll;
    spec.max_catchup = 10_000;
    let job = store.create_job(&spec).unwrap();
    let report = store.materialize(Duration::ZERO).unwrap();
    assert_eq!(report.conflicts + report.cas_failures, 0, "{report:?}");
    assert_eq!(
        store.watermark(job).unwrap(),
        None,
        "an `until` date ends it"
    );
    let got: Vec<Timestamp> = store
        .runs(job)
        .unwrap()
        .into_iter()
        .map(|r| r.scheduled_at)
        .collect();
    // The library's own preview gives the same instants.
    assert_eq!(trigger.upcoming(name, ts(start), 1_000).unwrap(), got);
    got
}

#[test]
fn a_daily_time_in_the_spring_forward_gap_runs_after_the_gap() {
    let Some(t) = db("rec_dst_gap") else { return };
    let mut s = t.store("a");
    // 02:30 does not exist in Berlin on 2026-03-29 (02:00 -> 03:00 CEST): the
    // default policy runs it at 03:30 CEST, which is 01:30Z like the day before.
    let daily = Trigger::recurrence([Recurrence::every(1)
        .days()
        .at(time(2, 30, 0, 0))
        .until(date(2026, 3, 30))
        .in_zone(berlin())]);
    let got = fire_times(&mut s, "gap", daily, "2026-03-27T12:00:00Z");
    assert_eq!(
        got,
        [
            ts("2026-03-28T01:30:00Z"),
            ts("2026-03-29T01:30:00Z"),
            ts("2026-03-30T00:30:00Z"),
        ]
    );
}

#[test]
fn a_daily_time_in_the_fall_back_fold_runs_once() {
    let Some(t) = db("rec_dst_fold") else { return };
    let mut s = t.store("a");
    // 02:30 happens twice in Berlin on 2026-10-25; the earlier instant (CEST) fires.
    let daily = Trigger::recurrence([Recurrence::every(1)
        .days()
        .at(time(2, 30, 0, 0))
        .until(date(2026, 10, 26))
        .in_zone(berlin())]);
    let got = fire_times(&mut s, "fold", daily, "2026-10-24T12:00:00Z");
    assert_eq!(
        got,
        [ts("2026-10-25T00:30:00Z"), ts("2026-10-26T01:30:00Z")]
    );
}

#[test]
fn several_rules_fire_at_their_union_on_the_chosen_weekdays() {
    let Some(t) = db("rec_union") else { return };
    let mut s = t.store("a");
    let base = Recurrence::every(1)
        .weeks()
        .on(&[jiff::civil::Weekday::Monday, jiff::civil::Weekday::Friday])
        .until(date(2026, 3, 9))
        .in_zone(TimeZone::UTC);
    let trigger = Trigger::recurrence([
        base.clone().at(time(18, 0, 0, 0)),
        base.at(time(9, 0, 0, 0)),
    ]);
    // 2026-03-02 is a Monday.
    let got = fire_times(&mut s, "union", trigger, "2026-03-01T00:00:00Z");
    assert_eq!(
        got,
        [
            ts("2026-03-02T09:00:00Z"),
            ts("2026-03-02T18:00:00Z"),
            ts("2026-03-06T09:00:00Z"),
            ts("2026-03-06T18:00:00Z"),
            ts("2026-03-09T09:00:00Z"),
            ts("2026-03-09T18:00:00Z"),
        ]
    );
}

#[test]
fn an_every_n_days_rule_counts_from_the_fixed_calendar_anchor() {
    // No start given: every node pins it to Monday 1970-01-05, so "every 3 days"
    // is the same set of dates wherever and whenever the job is written.
    let trigger = Trigger::recurrence([Recurrence::every(3).days().at(time(6, 0, 0, 0))]);
    let got = trigger
        .upcoming("d3", ts("2026-01-01T00:00:00Z"), 3)
        .unwrap();
    let anchor = date(1970, 1, 5);
    for t in &got {
        let d = t.to_zoned(TimeZone::UTC).date();
        assert_eq!(anchor.until(d).unwrap().get_days() % 3, 0, "{t}");
        assert_eq!(t.to_zoned(TimeZone::UTC).time(), time(6, 0, 0, 0));
    }
    assert_eq!(
        got[1].duration_since(got[0]),
        SignedDuration::from_hours(72)
    );
}

#[test]
fn elapsed_recurrences_are_materialized_once_on_the_epoch_grid() {
    let Some(t) = db("rec_grid") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let start = now(&mut a) - SignedDuration::from_secs(9);
    let mut spec = JobSpec::new(
        "every2s",
        "noop",
        Trigger::recurrence([Recurrence::every(2).seconds().in_zone(berlin())]),
    );
    spec.start = Some(start);
    let job = a.create_job(&spec).unwrap();
    let r1 = a.materialize(Duration::from_secs(2)).unwrap();
    let r2 = b.materialize(Duration::from_secs(2)).unwrap();
    assert!(r1.inserted >= 4, "{r1:?}");
    assert_eq!(
        r1.conflicts + r2.conflicts + r1.cas_failures + r2.cas_failures,
        0
    );
    let runs = a.runs(job).unwrap();
    let wm = a.watermark(job).unwrap().unwrap();
    let start_ceil = start.as_second() + i64::from(start.subsec_nanosecond() > 0);
    let first = (start_ceil + 1).div_euclid(2) * 2;
    let got: Vec<i64> = runs.iter().map(|r| r.scheduled_at.as_second()).collect();
    let want: Vec<i64> = (first..wm.as_second()).step_by(2).collect();
    assert_eq!(got, want, "every even second from the first one, once");
    assert_eq!(wm.as_second() % 2, 0);
    assert!(runs.iter().all(|r| r.state == RunState::Pending));
}

#[test]
fn rewriting_the_same_recurrence_keeps_the_watermark() {
    let Some(t) = db("rec_upsert") else { return };
    let mut a = t.store("a");
    let make = || {
        JobSpec::new(
            "weekly",
            "noop",
            Trigger::recurrence([Recurrence::every(2)
                .weeks()
                .at(time(9, 0, 0, 0))
                .in_zone(berlin())]),
        )
    };
    let (job, created) = a.upsert_job(&make()).unwrap();
    assert!(created);
    let wm = a.watermark(job).unwrap();
    let version = |s: &mut PgStore| -> i64 {
        s.client()
            .query_one("SELECT def_version FROM sched_job WHERE id = $1", &[&job.0])
            .unwrap()
            .get(0)
    };
    // A second node (or a restart) writes the same config: nothing changes.
    let mut b = t.store("b");
    let (again, created) = b.upsert_job(&make()).unwrap();
    assert_eq!((again, created), (job, false));
    assert_eq!(version(&mut b), 1);
    assert_eq!(b.watermark(job).unwrap(), wm);
    // Monday 1970-01-05 starts the two-week cycle: the first fire is a Monday of an
    // even week counted from it.
    let first = wm.unwrap().to_zoned(berlin());
    assert_eq!(first.weekday(), jiff::civil::Weekday::Monday);
    let weeks = date(1970, 1, 5).until(first.date()).unwrap().get_days() / 7;
    assert_eq!(weeks % 2, 0);
}

#[test]
fn an_invalid_recurrence_is_refused_at_creation() {
    let Some(t) = db("rec_invalid") else { return };
    let mut a = t.store("a");
    let bad = JobSpec::new(
        "bad",
        "noop",
        Trigger::recurrence([Recurrence::every(0).days()]),
    );
    let err = a.create_job(&bad).unwrap_err();
    assert!(
        matches!(err, myrmex_postgres::Error::InvalidTrigger { .. }),
        "{err:?}"
    );
    let none = JobSpec::new("none", "noop", Trigger::Recurrence { rules: vec![] });
    assert!(a.create_job(&none).is_err());
}
