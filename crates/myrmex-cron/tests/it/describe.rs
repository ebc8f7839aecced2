//! `Cron::describe`, `Cron::fields` and `Cron::warnings`: exact expected strings.

use jiff::{Timestamp, tz::TimeZone};
use myrmex_cron::{Cron, DstChange, DstOutcome, Warning};

fn cron(expr: &str) -> Cron {
    Cron::parse(expr).unwrap_or_else(|e| panic!("{expr:?} should parse: {e}"))
}

#[track_caller]
fn check(table: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for &(expr, want) in table {
        let got = cron(expr).describe();
        if got != want {
            failures.push(format!("{expr:?}\n   got: {got:?}\n  want: {want:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn issue_examples() {
    check(&[
        ("30 2 * * *", "At 02:30, every day"),
        (
            "*/15 9-17 * * 1-5",
            "Every 15 minutes, between 09:00 and 17:59, Monday through Friday",
        ),
        ("0 0 * * 5L", "At 00:00 on the last Friday of the month"),
        ("* * * * *", "Every minute"),
        (
            "0 0 1,15 * 1",
            "At 00:00 on day 1 and 15 of the month, and on Monday",
        ),
    ]);
}

#[test]
fn times_of_day() {
    check(&[
        ("0 0 * * *", "At 00:00, every day"),
        ("@daily", "At 00:00, every day"),
        ("@midnight", "At 00:00, every day"),
        ("0 9,17 * * *", "At 09:00 and 17:00, every day"),
        ("0,30 9 * * *", "At 09:00 and 09:30, every day"),
        (
            "15 1,2,4,5,7,8 * * *",
            "At 01:15, 02:15, 04:15, 05:15, 07:15 and 08:15, every day",
        ),
        ("0 */6 * * *", "At 00:00, 06:00, 12:00 and 18:00, every day"),
        ("0 */4 * * *", "Every 4 hours"),
        ("0 1/4 * * *", "Every 4 hours, starting at 01:00"),
        ("30 */2 * * *", "At 30 minutes past the hour, every 2 hours"),
        ("0 * * * *", "Every hour"),
        ("@hourly", "Every hour"),
        ("30 * * * *", "At 30 minutes past the hour"),
        ("1 * * * *", "At 1 minute past the hour"),
        ("0 9-17 * * *", "Every hour, between 09:00 and 17:59"),
        (
            "0 9-17/2 * * *",
            "At 09:00, 11:00, 13:00, 15:00 and 17:00, every day",
        ),
        (
            "0 1-20/4 * * *",
            "At 01:00, 05:00, 09:00, 13:00 and 17:00, every day",
        ),
        ("0 1-21/4 * * *", "Every 4 hours, starting at 01:00"),
        ("0 1-22/3 * * *", "Every 3 hours, starting at 01:00"),
        ("0 1-20/3 * * *", "Every 3 hours from 01:00 through 19:59"),
        (
            "30 2-20/3 * * *",
            "At 30 minutes past the hour, every 3 hours from 02:00 through 20:59",
        ),
        (
            "30 8-20/3 * * *",
            "At 08:30, 11:30, 14:30, 17:30 and 20:30, every day",
        ),
        (
            "30 2-23/3 * * *",
            "At 30 minutes past the hour, every 3 hours, starting at 02:00",
        ),
        (
            "0 1,2,4,5,7,8,10 * * *",
            "Every hour, between 01:00 and 02:59, between 04:00 and 05:59, between 07:00 and 08:59 and between 10:00 and 10:59",
        ),
        (
            "45 22-2 * * *",
            "At 45 minutes past the hour, between 22:00 and 02:59",
        ),
        ("0 0-23 * * *", "Every hour"),
        (
            "*/20 23,0 * * *",
            "Every 20 minutes, between 23:00 and 00:59",
        ),
        (
            "*/30 0,5,23 * * *",
            "Every 30 minutes, between 05:00 and 05:59 and between 23:00 and 00:59",
        ),
    ]);
}

#[test]
fn minutes() {
    check(&[
        ("*/5 * * * *", "Every 5 minutes"),
        (
            "*/7 * * * *",
            "Every 7 minutes from 0 through 56 past the hour",
        ),
        (
            "5/15 * * * *",
            "Every 15 minutes, starting at 5 minutes past the hour",
        ),
        ("10-20 * * * *", "At minutes 10 through 20 past the hour"),
        ("0,10,45 * * * *", "At minutes 0, 10 and 45 past the hour"),
        (
            "0-10,30,50-59 * * * *",
            "At minutes 0 through 10, 30 and 50 through 59 past the hour",
        ),
        ("* 9 * * *", "Every minute, between 09:00 and 09:59"),
        ("* 22-2 * * *", "Every minute, between 22:00 and 02:59"),
        ("*/30 * * * *", "Every 30 minutes"),
        ("*/10 */2 * * *", "Every 10 minutes, during every 2nd hour"),
        (
            "*/10 9-17/2 * * *",
            "Every 10 minutes, during every 2nd hour from 09:00 through 17:59",
        ),
        (
            "0,20 9-17 * * *",
            "At minutes 0 and 20 past the hour, between 09:00 and 17:59",
        ),
        (
            "0,30 9-17 * * *",
            "Every 30 minutes, between 09:00 and 17:59",
        ),
    ]);
}

#[test]
fn seconds() {
    check(&[
        ("* * * * * *", "Every second"),
        ("*/10 * * * * *", "Every 10 seconds"),
        ("0 * * * * *", "Every minute"),
        ("30 * * * * *", "At 30 seconds past the minute"),
        ("0 */5 * * * *", "Every 5 minutes"),
        (
            "30 */5 * * * *",
            "At 30 seconds past the minute, every 5 minutes",
        ),
        (
            "15,45 * * * * *",
            "Every 30 seconds, starting at 15 seconds past the minute",
        ),
        ("15,40 * * * * *", "At seconds 15 and 40 past the minute"),
        ("30 5 * * * *", "At 5 minutes and 30 seconds past the hour"),
        ("30 0 * * * *", "At 30 seconds past the hour"),
        ("15 30 2 * * *", "At 02:30:15, every day"),
        ("0,30 30 2 * * *", "At 02:30:00 and 02:30:30, every day"),
        ("* 30 9 * * *", "Every second, during minute 09:30"),
        (
            "*/10 0 9,17 * * *",
            "Every 10 seconds, during minutes 09:00 and 17:00",
        ),
        ("* 5 * * * *", "Every second, during minute 5 past the hour"),
        (
            "*/5 */10 * * * *",
            "Every 5 seconds, during every 10th minute",
        ),
        ("*/3 * * * * *", "Every 3 seconds"),
        (
            "*/7 * * * * *",
            "Every 7 seconds from 0 through 56 past the minute",
        ),
    ]);
}

#[test]
fn days_of_month() {
    check(&[
        ("0 0 1 * *", "At 00:00 on day 1 of the month"),
        ("@monthly", "At 00:00 on day 1 of the month"),
        ("0 0 1-7 * *", "At 00:00 on day 1 through 7 of the month"),
        (
            "0 0 */2 * *",
            "At 00:00 on every 2nd day of the month from day 1 through 31",
        ),
        ("0 0 L * *", "At 00:00 on the last day of the month"),
        (
            "0 0 L-1 * *",
            "At 00:00 on 1 day before the last day of the month",
        ),
        (
            "0 0 L-3 * *",
            "At 00:00 on 3 days before the last day of the month",
        ),
        ("0 0 LW * *", "At 00:00 on the last weekday of the month"),
        (
            "0 0 15W * *",
            "At 00:00 on the weekday nearest day 15 of the month",
        ),
        (
            "0 0 1W,15W * *",
            "At 00:00 on the weekdays nearest day 1 and 15 of the month",
        ),
        (
            "0 0 1,L * *",
            "At 00:00 on day 1 of the month and the last day of the month",
        ),
        ("0 0 ? * *", "At 00:00, every day"),
        ("0 0 1-31 * *", "At 00:00, every day"),
    ]);
}

#[test]
fn days_of_week() {
    check(&[
        ("0 0 * * 1", "At 00:00 on Monday"),
        ("@weekly", "At 00:00 on Sunday"),
        ("0 0 * * 7", "At 00:00 on Sunday"),
        ("0 0 * * 1,3,5", "At 00:00 on Monday, Wednesday and Friday"),
        ("0 0 * * MON-FRI", "At 00:00, Monday through Friday"),
        ("0 0 * * FRI-MON", "At 00:00, Friday through Monday"),
        ("0 0 * * 6-7", "At 00:00 on Saturday and Sunday"),
        (
            "0 0 * * 1-3,5",
            "At 00:00 on Monday through Wednesday and Friday",
        ),
        ("0 0 * * 5L", "At 00:00 on the last Friday of the month"),
        (
            "0 0 * * MON#2",
            "At 00:00 on the second Monday of the month",
        ),
        (
            "0 0 * * 1#1,1#3",
            "At 00:00 on the first and third Monday of the month",
        ),
        (
            "0 0 * * 1#1,5L",
            "At 00:00 on the last Friday of the month and the first Monday of the month",
        ),
        (
            "0 0 * * */2",
            "At 00:00 on Tuesday, Thursday, Saturday and Sunday",
        ),
        ("0 0 * * 0-6", "At 00:00, every day"),
        ("0 0 * * 0,1", "At 00:00 on Sunday and Monday"),
        (
            "0 0 * * 0,3,6",
            "At 00:00 on Wednesday, Saturday and Sunday",
        ),
        ("0 0 * * SAT-SUN", "At 00:00 on Saturday and Sunday"),
    ]);
}

#[test]
fn day_fields_together() {
    check(&[
        (
            "0 0 1,15 * MON",
            "At 00:00 on day 1 and 15 of the month, and on Monday",
        ),
        (
            "0 0 L * 5L",
            "At 00:00 on the last day of the month, and on the last Friday of the month",
        ),
        (
            "0 0 13 * 5",
            "At 00:00 on day 13 of the month, and on Friday",
        ),
        (
            "0 0 1 * */2",
            "At 00:00 on day 1 of the month, only if it is Tuesday, Thursday, Saturday or Sunday",
        ),
        (
            "0 0 */2 * MON",
            "At 00:00 on every 2nd day of the month from day 1 through 31, only if it is Monday",
        ),
        ("0 0 1 * 0-6", "At 00:00, every day"),
        ("0 0 1 * *", "At 00:00 on day 1 of the month"),
        ("0 0 ? * MON", "At 00:00 on Monday"),
    ]);
}

#[test]
fn months_and_years() {
    check(&[
        ("0 0 1 1 *", "At 00:00 on day 1 of the month, in January"),
        ("@yearly", "At 00:00 on day 1 of the month, in January"),
        (
            "0 0 * JAN-MAR *",
            "At 00:00, every day, in January through March",
        ),
        (
            "0 0 * NOV-FEB *",
            "At 00:00, every day, in November through February",
        ),
        (
            "0 0 * 1,12 *",
            "At 00:00, every day, in December and January",
        ),
        (
            "0 0 1 */3 *",
            "At 00:00 on day 1 of the month, in January, April, July and October",
        ),
        ("0 0 29 2 *", "At 00:00 on day 29 of the month, in February"),
        (
            "0 0 0 1 1 * 2030",
            "At 00:00 on day 1 of the month, in January, in 2030",
        ),
        (
            "0 0 0 1 1 * 2026-2030",
            "At 00:00 on day 1 of the month, in January, in 2026 through 2030",
        ),
        (
            "0 0 0 * * * 2026,2028",
            "At 00:00, every day, in 2026 and 2028",
        ),
        (
            "0 0 0 * * * 2026/2",
            "At 00:00, every day, in every 2nd year from 2026 through 2198",
        ),
        ("0 0 0 * * * *", "At 00:00, every day"),
        (
            "0 0 0 29 2 * 2028",
            "At 00:00 on day 29 of the month, in February, in 2028",
        ),
    ]);
}

#[test]
fn fields_is_the_structured_view() {
    let f = cron("0 */15 9-17 1,L,15W * MON#2,5L 2026").fields();
    assert_eq!(f.field_count, 7);
    assert_eq!(f.seconds.iter().collect::<Vec<_>>(), [0]);
    assert_eq!(f.minutes.iter().collect::<Vec<_>>(), [0, 15, 30, 45]);
    assert_eq!(
        f.hours.iter().collect::<Vec<_>>(),
        (9..=17).collect::<Vec<_>>()
    );
    assert_eq!(f.days_of_month.iter().collect::<Vec<_>>(), [1]);
    assert_eq!(f.last_day_offsets.iter().collect::<Vec<_>>(), [0]);
    assert_eq!(f.nearest_weekdays.iter().collect::<Vec<_>>(), [15]);
    assert!(!f.last_weekday);
    assert!(f.months.is_full());
    assert!(f.days_of_week.is_empty());
    assert_eq!(f.last_days_of_week.iter().collect::<Vec<_>>(), [5]);
    assert_eq!(f.nth_days_of_week.iter().collect::<Vec<_>>(), [(1, 2)]);
    assert_eq!(
        f.years.map(|y| y.iter().collect::<Vec<_>>()),
        Some(vec![2026])
    );
    assert!(f.days_use_or_rule());
    assert!(f.minute_star && !f.hour_star && !f.is_fixed_time());
    assert_eq!(f.hours.last(), Some(17));
    assert_eq!(f.hours.len(), 9);
    assert!(!f.hours.contains(8) && f.hours.contains(9));
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

fn warnings(expr: &str, tz: &str, from: &str, years: u32) -> Vec<String> {
    cron(expr)
        .warnings(&zone(tz), ts(from), years)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn warning_day_or_rule() {
    let w = cron("0 0 1 * MON").warnings(&TimeZone::UTC, ts("2026-01-01T00:00:00Z"), 5);
    assert_eq!(w, [Warning::DayFieldsOr]);
    assert_eq!(w[0].code(), "day-or-rule");
    assert_eq!(
        w[0].to_string(),
        "day-of-month and day-of-week are both restricted, so a day fires when either matches \
         (Vixie cron rule); start one of them with * to require both"
    );
    assert!(
        cron("0 0 1 * *")
            .warnings(&TimeZone::UTC, ts("2026-01-01T00:00:00Z"), 5)
            .is_empty()
    );
    assert!(
        cron("0 0 ? * MON")
            .warnings(&TimeZone::UTC, ts("2026-01-01T00:00:00Z"), 5)
            .is_empty()
    );
}

#[test]
fn warning_dst_new_york() {
    assert_eq!(
        warnings("30 2 * * *", "America/New_York", "2026-01-01T00:00:00Z", 1),
        [
            "on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: 02:30 does not exist and fires once at 03:00 instead"
        ]
    );
    assert_eq!(
        warnings("30 1 * * *", "America/New_York", "2026-01-01T00:00:00Z", 1),
        [
            "on 2026-11-01 in America/New_York clocks go back from 02:00 to 01:00: 01:30 happens twice but fires once, at the earlier instant"
        ]
    );
    assert_eq!(
        warnings(
            "*/15 * * * *",
            "America/New_York",
            "2026-01-01T00:00:00Z",
            1
        ),
        [
            "on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: 02:00, 02:15, 02:30 and 1 more do not exist and will not fire",
            "on 2026-11-01 in America/New_York clocks go back from 02:00 to 01:00: 01:00, 01:15, 01:30 and 1 more happen twice and fire at both instants",
        ]
    );
    assert!(warnings("0 12 * * *", "America/New_York", "2026-01-01T00:00:00Z", 10).is_empty());
    // Two years: one warning per spring-forward day, each naming its date.
    let w = cron("30 2 * * *").warnings(&zone("America/New_York"), ts("2026-01-01T00:00:00Z"), 2);
    let dates: Vec<String> = w
        .iter()
        .filter_map(|w| match w {
            Warning::Dst {
                change: DstChange::Gap,
                date,
                outcome,
                count,
                ..
            } => {
                assert_eq!((*outcome, *count), (DstOutcome::FiresAfterGap, 1));
                Some(date.to_string())
            }
            _ => None,
        })
        .collect();
    assert_eq!(dates, ["2026-03-08", "2027-03-14"]);
}

#[test]
fn warning_dst_skip_policy_and_other_zones() {
    let c = cron("30 2 * * *").with_dst_policy(myrmex_cron::DstPolicy::Skip);
    let w = c.warnings(&zone("America/New_York"), ts("2026-01-01T00:00:00Z"), 1);
    assert_eq!(
        w[0].to_string(),
        "on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: 02:30 does not exist and will not fire"
    );
    // Lord Howe moves by 30 minutes.
    assert_eq!(
        warnings(
            "15 2 * * *",
            "Australia/Lord_Howe",
            "2026-01-01T00:00:00Z",
            1
        ),
        [
            "on 2026-10-04 in Australia/Lord_Howe clocks skip forward from 02:00 to 02:30: 02:15 does not exist and fires once at 02:30 instead"
        ]
    );
    assert_eq!(
        warnings(
            "45 1 * * *",
            "Australia/Lord_Howe",
            "2026-01-01T00:00:00Z",
            1
        ),
        [
            "on 2026-04-05 in Australia/Lord_Howe clocks go back from 02:00 to 01:30: 01:45 happens twice but fires once, at the earlier instant"
        ]
    );
    // Apia skipped the whole of 2011-12-30.
    assert_eq!(
        warnings("0 12 * * *", "Pacific/Apia", "2011-06-01T00:00:00Z", 1),
        [
            "on 2011-12-30 in Pacific/Apia clocks skip forward from 00:00 to 2011-12-31 00:00: 12:00 does not exist and fires once at 2011-12-31 00:00 instead"
        ]
    );
}

/// Equal descriptions must mean equal schedules: expressions built from small
/// vocabularies are grouped by description, and every group must agree on its
/// fire times (compared over the next `n` fire times from a few instants, in UTC).
#[track_caller]
fn check_unambiguous(exprs: &[String], n: usize) {
    use std::collections::BTreeMap;
    let mut groups: BTreeMap<String, Vec<(&str, Cron)>> = BTreeMap::new();
    for e in exprs {
        if let Ok(c) = Cron::parse(e) {
            groups.entry(c.describe()).or_default().push((e, c));
        }
    }
    let starts = [ts("2026-01-01T00:00:00Z"), ts("2027-06-15T13:07:00Z")];
    let fire_times = |c: &Cron| -> Vec<Timestamp> {
        let mut out = Vec::new();
        for &s in &starts {
            let mut t = s;
            for _ in 0..n {
                match c.next_timestamp_after(t, &TimeZone::UTC) {
                    Some(next) => {
                        out.push(next);
                        t = next;
                    }
                    None => break,
                }
            }
        }
        out
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for (description, members) in &groups {
        let (first_expr, first) = &members[0];
        let want = fire_times(first);
        for (expr, c) in &members[1..] {
            compared += usize::from(c != first);
            if c != first && fire_times(c) != want {
                failures.push(format!(
                    "{first_expr:?} and {expr:?} are both {description:?}"
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} ambiguous:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared > 0,
        "no two distinct schedules shared a description"
    );
}

#[test]
fn descriptions_are_unambiguous_time_fields() {
    let secs = ["0", "30", "*/20", "0,30", "*", "10-12"];
    let mins = [
        "0", "30", "*/15", "0,30", "*/30", "5/15", "0-10", "*", "*/7", "1,2,4",
    ];
    let hours = [
        "0",
        "12",
        "*/6",
        "0,12",
        "9-17",
        "22-2",
        "*",
        "0-23",
        "*/2",
        "1/2",
        "9-17/2",
        "1,2,4,5,7,8",
    ];
    let mut exprs = Vec::new();
    for s in secs {
        for m in mins {
            for h in hours {
                exprs.push(format!("{s} {m} {h} * * *"));
            }
        }
    }
    check_unambiguous(&exprs, 40);
}

#[test]
fn descriptions_are_unambiguous_day_fields() {
    let doms = [
        "*", "1", "L", "1,15", "*/2", "15W", "LW", "L-1", "?", "1-7", "31", "1W",
    ];
    let months = ["*", "1", "JAN-MAR", "*/3", "NOV-FEB", "2"];
    let dows = [
        "*", "1", "1-5", "5L", "MON#2", "*/2", "0,6", "?", "0-6", "FRI-MON", "1#1,1#3",
    ];
    let mut exprs = Vec::new();
    for d in doms {
        for m in months {
            for w in dows {
                exprs.push(format!("0 0 {d} {m} {w}"));
            }
        }
    }
    check_unambiguous(&exprs, 30);
}
