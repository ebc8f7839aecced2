//! Every trigger kind, table-driven through `check`: the fire times after an
//! instant.

use std::time::Duration;

use jiff::SignedDuration;
use jiff::civil::{Weekday, date, time};
use jiff::tz::TimeZone;
use myrmex_core::{DisambiguationPolicy, Recurrence, Trigger, TriggerSpec, at, every};

use crate::harness::t;

fn tz(name: &str) -> TimeZone {
    TimeZone::get(name).expect("bundled zone")
}

/// The first `n` fires strictly after `after`.
fn fires(trigger: &dyn Trigger, after: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = t(after);
    while out.len() < n {
        match trigger.next_after(cur) {
            Some(next) => {
                assert!(next > cur, "{next} is not after {cur}");
                out.push(next.to_string());
                cur = next;
            }
            None => break,
        }
    }
    out
}

/// The first fires are `expected` (the trigger may go on).
fn check(trigger: &dyn Trigger, after: &str, expected: &[&str]) {
    assert_eq!(
        fires(trigger, after, expected.len()),
        expected,
        "{trigger:?}"
    );
}

/// The fires are exactly `expected`, then none.
fn check_exact(trigger: &dyn Trigger, after: &str, expected: &[&str]) {
    assert_eq!(
        fires(trigger, after, expected.len() + 1),
        expected,
        "{trigger:?}"
    );
}

fn resolved(spec: TriggerSpec, now: &str, zone: &TimeZone) -> TriggerSpec {
    spec.resolve(t(now), zone).expect("valid trigger")
}

#[test]
fn once_fires_once_at_its_instant() {
    let once = TriggerSpec::once(t("2026-05-01T10:00:00Z"));
    check_exact(&once, "2026-01-01T00:00:00Z", &["2026-05-01T10:00:00Z"]);
    check_exact(&once, "2026-05-01T10:00:00Z", &[]);
}

#[test]
fn once_local_resolves_dst_gap_and_fold_by_policy() {
    let ny = tz("America/New_York");
    let cases = [
        // 2026-03-08 02:30 does not exist in New York.
        (
            date(2026, 3, 8).at(2, 30, 0, 0),
            DisambiguationPolicy::Compatible,
            Some("2026-03-08T07:30:00Z"),
        ),
        (
            date(2026, 3, 8).at(2, 30, 0, 0),
            DisambiguationPolicy::Earlier,
            Some("2026-03-08T06:30:00Z"),
        ),
        (
            date(2026, 3, 8).at(2, 30, 0, 0),
            DisambiguationPolicy::Skip,
            None,
        ),
        // 2026-11-01 01:30 happens twice.
        (
            date(2026, 11, 1).at(1, 30, 0, 0),
            DisambiguationPolicy::Compatible,
            Some("2026-11-01T05:30:00Z"),
        ),
        (
            date(2026, 11, 1).at(1, 30, 0, 0),
            DisambiguationPolicy::Later,
            Some("2026-11-01T06:30:00Z"),
        ),
        (
            date(2026, 11, 1).at(1, 30, 0, 0),
            DisambiguationPolicy::Skip,
            Some("2026-11-01T05:30:00Z"),
        ),
    ];
    for (datetime, dst, want) in cases {
        let spec = TriggerSpec::OnceLocal {
            datetime,
            tz: Some(ny.clone()),
            dst,
        };
        let got = spec
            .next_after(t("2026-01-01T00:00:00Z"))
            .map(|x| x.to_string());
        assert_eq!(got.as_deref(), want, "{datetime} {dst:?}");
    }
}

#[test]
fn at_is_the_next_such_wall_time_in_the_zone() {
    let paris = tz("Europe/Paris");
    // 06:00 UTC = 08:00 in Paris: 09:30 is still ahead today.
    let spec = resolved(at("09:30").unwrap(), "2026-06-01T06:00:00Z", &paris);
    check(&spec, "2026-06-01T06:00:00Z", &["2026-06-01T07:30:00Z"]);
    // 08:00 UTC = 10:00 in Paris: tomorrow.
    let spec = resolved(at("09:30").unwrap(), "2026-06-01T08:00:00Z", &paris);
    check(&spec, "2026-06-01T08:00:00Z", &["2026-06-02T07:30:00Z"]);
    for bad in ["9:30", "25:00", "09:30:61", "", "09"] {
        assert!(at(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn interval_is_anchored_and_never_drifts() {
    let spec = resolved(
        every(Duration::from_secs(7)),
        "2026-01-01T00:00:00Z",
        &TimeZone::UTC,
    );
    check(
        &spec,
        "2026-01-01T00:00:00Z",
        &["2026-01-01T00:00:07Z", "2026-01-01T00:00:14Z"][..],
    );
    // Asking from any point (a late wake-up) lands back on the grid.
    let late = spec.next_after(t("2026-01-01T01:00:00.123Z")).unwrap();
    assert_eq!(late.to_string(), "2026-01-01T01:00:05Z");
    let k = late.duration_since(t("2026-01-01T00:00:00Z")).as_secs();
    assert_eq!(k % 7, 0);
}

#[test]
fn sub_second_intervals_are_exact() {
    let spec = TriggerSpec::interval(SignedDuration::from_millis(1), t("2026-01-01T00:00:00Z"));
    let mut cur = t("2026-01-01T00:00:00Z");
    for k in 1..=10_000i64 {
        cur = spec.next_after(cur).unwrap();
        assert_eq!(
            cur,
            t("2026-01-01T00:00:00Z") + SignedDuration::from_millis(k)
        );
    }
    let third = TriggerSpec::interval(
        SignedDuration::from_nanos(333_333_333),
        t("2026-01-01T00:00:00Z"),
    );
    check(
        &third,
        "2026-01-01T00:00:00.5Z",
        &[
            "2026-01-01T00:00:00.666666666Z",
            "2026-01-01T00:00:00.999999999Z",
            "2026-01-01T00:00:01.333333332Z",
        ][..],
    );
}

#[test]
fn interval_bounds_start_and_end() {
    let spec = TriggerSpec::Interval {
        every: SignedDuration::from_mins(30),
        start: Some(t("2026-01-01T10:00:00Z")),
        end: Some(t("2026-01-01T11:00:00Z")),
    };
    check_exact(
        &spec,
        "2025-01-01T00:00:00Z",
        &[
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:30:00Z",
            "2026-01-01T11:00:00Z",
        ],
    );
    let bad = TriggerSpec::Interval {
        every: SignedDuration::ZERO,
        start: None,
        end: None,
    };
    assert!(
        bad.resolve(t("2026-01-01T00:00:00Z"), &TimeZone::UTC)
            .is_err()
    );
}

#[test]
fn union_merges_and_dedupes() {
    let a = TriggerSpec::interval(SignedDuration::from_secs(2), t("2026-01-01T00:00:00Z"));
    let b = TriggerSpec::interval(SignedDuration::from_secs(3), t("2026-01-01T00:00:00Z"));
    let u = TriggerSpec::union([a, b, TriggerSpec::once(t("2026-01-01T00:00:05Z"))]);
    check(
        &u,
        "2026-01-01T00:00:00Z",
        &[
            "2026-01-01T00:00:02Z",
            "2026-01-01T00:00:03Z",
            "2026-01-01T00:00:04Z",
            "2026-01-01T00:00:05Z",
            "2026-01-01T00:00:06Z",
            "2026-01-01T00:00:08Z",
        ][..],
    );
}

#[test]
fn daily_recurrence_is_dst_correct() {
    let ny = tz("America/New_York");
    let daily = |hh, mm, dst| {
        TriggerSpec::Recurrence(
            Recurrence::every(1)
                .days()
                .at(time(hh, mm, 0, 0))
                .starting(date(2026, 3, 6).at(0, 0, 0, 0))
                .in_zone(ny.clone())
                .dst(dst),
        )
    };
    // Spring forward on 2026-03-08: 02:30 does not exist.
    check(
        &daily(2, 30, DisambiguationPolicy::Compatible),
        "2026-03-06T12:00:00Z",
        &[
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:30:00Z",
            "2026-03-09T06:30:00Z",
        ][..],
    );
    check(
        &daily(2, 30, DisambiguationPolicy::Skip),
        "2026-03-06T12:00:00Z",
        &["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"][..],
    );
    // Fall back on 2026-11-01: 01:30 happens twice and fires once.
    check(
        &daily(1, 30, DisambiguationPolicy::Compatible),
        "2026-10-31T12:00:00Z",
        &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"][..],
    );
    // 09:00 stays 09:00 local across both changes.
    let nine: Vec<String> = fires(
        &daily(9, 0, DisambiguationPolicy::Compatible),
        "2026-03-07T00:00:00Z",
        3,
    );
    assert_eq!(
        nine,
        [
            "2026-03-07T14:00:00Z",
            "2026-03-08T13:00:00Z",
            "2026-03-09T13:00:00Z"
        ]
    );
}

#[test]
fn hourly_recurrence_counts_elapsed_hours_across_dst() {
    let ny = tz("America/New_York");
    let spec = TriggerSpec::Recurrence(
        Recurrence::every(1)
            .hours()
            .starting(date(2026, 3, 8).at(0, 0, 0, 0))
            .in_zone(ny),
    );
    check(
        &spec,
        "2026-03-08T05:00:00Z",
        &[
            "2026-03-08T06:00:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-08T08:00:00Z",
        ][..],
    );
}

#[test]
fn recurrence_weekdays_every_n_and_until() {
    let utc = TimeZone::UTC;
    // Every 2 days from Thursday 2026-01-01, workdays only, until 2026-01-12.
    let spec = TriggerSpec::Recurrence(
        Recurrence::every(2)
            .days()
            .at(time(8, 0, 0, 0))
            .on(&[
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
            ])
            .starting(date(2026, 1, 1).at(0, 0, 0, 0))
            .until(date(2026, 1, 12))
            .in_zone(utc.clone()),
    );
    check_exact(
        &spec,
        "2025-12-31T00:00:00Z",
        // 01 Thu, 03 Sat (no), 05 Mon, 07 Wed, 09 Fri, 11 Sun (no).
        &[
            "2026-01-01T08:00:00Z",
            "2026-01-05T08:00:00Z",
            "2026-01-07T08:00:00Z",
            "2026-01-09T08:00:00Z",
        ][..],
    );
    // Every 15 minutes, Saturdays only.
    let sat = TriggerSpec::Recurrence(
        Recurrence::every(15)
            .minutes()
            .on(&[Weekday::Saturday])
            .starting(date(2026, 1, 1).at(0, 0, 0, 0))
            .in_zone(utc),
    );
    check(
        &sat,
        "2026-01-02T23:50:00Z",
        &["2026-01-03T00:00:00Z", "2026-01-03T00:15:00Z"][..],
    );
    assert_eq!(
        sat.next_after(t("2026-01-03T23:59:00Z"))
            .unwrap()
            .to_string(),
        "2026-01-10T00:00:00Z"
    );
}

#[test]
fn recurrence_rejects_nonsense() {
    let zero = TriggerSpec::Recurrence(Recurrence::every(0).days());
    assert!(
        zero.resolve(t("2026-01-01T00:00:00Z"), &TimeZone::UTC)
            .is_err()
    );
    let at_hours = TriggerSpec::Recurrence(Recurrence::every(1).hours().at(time(9, 0, 0, 0)));
    assert!(
        at_hours
            .resolve(t("2026-01-01T00:00:00Z"), &TimeZone::UTC)
            .is_err()
    );
}

#[test]
fn specs_round_trip_through_json() {
    let zone = tz("Europe/Berlin");
    let now = "2026-02-01T00:00:00Z";
    let specs = vec![
        TriggerSpec::once(t("2026-05-01T10:00:00Z")),
        resolved(at("07:15").unwrap(), now, &zone),
        resolved(every(Duration::from_millis(1500)), now, &zone),
        resolved(
            TriggerSpec::Recurrence(
                Recurrence::every(1)
                    .weeks()
                    .on(&[Weekday::Friday])
                    .at(time(18, 0, 0, 0)),
            ),
            now,
            &zone,
        ),
        TriggerSpec::Manual,
        resolved(
            TriggerSpec::union([every(Duration::from_secs(60)), at("12:00").unwrap()]),
            now,
            &zone,
        ),
    ];
    for spec in specs {
        let json = serde_json::to_string(&spec).expect("serializable");
        let back: TriggerSpec = serde_json::from_str(&json).expect("deserializable");
        assert_eq!(fires(&back, now, 5), fires(&spec, now, 5), "{json}");
    }
}

#[test]
fn cron_runs_in_the_jobs_zone_and_survives_dst() {
    let ny = tz("America/New_York");
    let now = "2026-03-07T00:00:00Z";
    let fixed = resolved(myrmex_core::cron("30 2 * * *").unwrap(), now, &ny);
    // Spring forward: 02:30 does not exist on 03-08; the fixed-time job runs once,
    // right after the gap (03:00 EDT).
    check(
        &fixed,
        now,
        &[
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
        ],
    );
    let skip = TriggerSpec::Cron {
        expr: myrmex_core::Cron::parse("30 2 * * *").unwrap(),
        tz: Some(ny.clone()),
        dst: myrmex_core::CronDstPolicy::Skip,
    };
    check(
        &skip,
        now,
        &["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z"],
    );
    // Fall back: 01:30 happens twice; a fixed-time job runs once, a wildcard one
    // at both instants.
    let once = resolved(
        myrmex_core::cron("30 1 * * *").unwrap(),
        "2026-10-31T12:00:00Z",
        &ny,
    );
    check(
        &once,
        "2026-10-31T12:00:00Z",
        &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    );
    let wild = resolved(
        myrmex_core::cron("30 * * * *").unwrap(),
        "2026-11-01T04:00:00Z",
        &ny,
    );
    check(
        &wild,
        "2026-11-01T04:00:00Z",
        &[
            "2026-11-01T04:30:00Z",
            "2026-11-01T05:30:00Z",
            "2026-11-01T06:30:00Z",
        ],
    );
    // The scheduler's zone is used when the spec names none; a spec that names
    // one keeps it.
    let utc = resolved(
        myrmex_core::cron("0 12 * * *").unwrap(),
        now,
        &TimeZone::UTC,
    );
    check(&utc, now, &["2026-03-07T12:00:00Z"]);
    let json = serde_json::to_string(&fixed).unwrap();
    assert!(json.contains("America/New_York"), "{json}");
    let back: TriggerSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(fires(&back, now, 4), fires(&fixed, now, 4));
    assert!(myrmex_core::cron("61 * * * *").is_err());
}
