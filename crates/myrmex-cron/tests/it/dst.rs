//! Daylight-saving tests in the zones the dialect names: gaps and folds, for
//! fixed-time and wildcard jobs, under both policies.

use jiff::Zoned;
use myrmex_cron::{Cron, DstPolicy};

use crate::parse::cron;

/// Checks the next fire times after `after` (and, walking back from the last
/// one, the previous fire times) against `expected` (RFC 3339 with offsets).
fn check(expr: &str, policy: DstPolicy, zone: &str, after: &str, expected: &[&str]) {
    let c = cron(expr).with_dst_policy(policy);
    let after: Zoned = format!("{after}[{zone}]").parse().unwrap();
    let got: Vec<String> = c
        .iter_after(&after)
        .take(expected.len())
        .map(|z| z.timestamp().display_with_offset(z.offset()).to_string())
        .collect();
    let expected_owned: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        got, expected_owned,
        "{expr:?} ({policy:?}) in {zone} after {after}"
    );

    // The same instants one by one with next_after, and backwards with prev_before.
    let mut t = after.clone();
    for e in expected {
        t = c.next_after(&t).unwrap();
        assert_eq!(
            &t.timestamp().display_with_offset(t.offset()).to_string(),
            e
        );
        assert!(c.matches(&t), "{expr:?} should match {t}");
    }
    let mut back: Vec<String> = c
        .iter_before(&t)
        .take(expected.len() - 1)
        .map(|z| z.timestamp().display_with_offset(z.offset()).to_string())
        .collect();
    back.reverse();
    assert_eq!(
        back,
        expected_owned[..expected.len() - 1],
        "{expr:?} backwards in {zone}"
    );
}

const DEFAULT: DstPolicy = DstPolicy::ShiftGapFixedTime;
const SKIP: DstPolicy = DstPolicy::Skip;

#[test]
fn new_york_gap() {
    let z = "America/New_York";
    // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
    check(
        "30 2 * * *",
        DEFAULT,
        z,
        "2026-03-07T12:00:00-05:00",
        &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
    );
    check(
        "30 2 * * *",
        SKIP,
        z,
        "2026-03-07T12:00:00-05:00",
        &["2026-03-09T02:30:00-04:00"],
    );
    // Several gap times fire once, together with 03:00 itself.
    check(
        "0,30 2,3 * * *",
        DEFAULT,
        z,
        "2026-03-08T00:00:00-05:00",
        &[
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:30:00-04:00",
            "2026-03-09T02:00:00-04:00",
        ],
    );
    check(
        "*/30 * * * *",
        DEFAULT,
        z,
        "2026-03-08T01:00:00-05:00",
        &[
            "2026-03-08T01:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T03:30:00-04:00",
        ],
    );
    check(
        "0 * * * *",
        DEFAULT,
        z,
        "2026-03-08T00:30:00-05:00",
        &["2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"],
    );
    // 6-field, fixed-time: every second of 02:xx lands on 03:00:00, once.
    check(
        "*/20 30 2 * * *",
        DEFAULT,
        z,
        "2026-03-08T00:00:00-05:00",
        &[
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-09T02:30:20-04:00",
        ],
    );
}

#[test]
fn new_york_fold() {
    let z = "America/New_York";
    // 2026-11-01: 02:00 EDT falls back to 01:00 EST.
    check(
        "30 1 * * *",
        DEFAULT,
        z,
        "2026-10-31T12:00:00-04:00",
        &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    );
    check(
        "30 * * * *",
        DEFAULT,
        z,
        "2026-11-01T00:00:00-04:00",
        &[
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:30:00-05:00",
            "2026-11-01T02:30:00-05:00",
        ],
    );
    check(
        "30 * * * *",
        SKIP,
        z,
        "2026-11-01T00:00:00-04:00",
        &[
            "2026-11-01T00:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T02:30:00-05:00",
        ],
    );
    // Starting inside the fold, in its first and in its second pass.
    check(
        "*/20 * * * *",
        DEFAULT,
        z,
        "2026-11-01T01:50:00-04:00",
        &[
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:20:00-05:00",
            "2026-11-01T01:40:00-05:00",
            "2026-11-01T02:00:00-05:00",
        ],
    );
    check(
        "45 1 * * *",
        DEFAULT,
        z,
        "2026-11-01T01:10:00-05:00",
        &["2026-11-02T01:45:00-05:00"],
    );
    let c = cron("45 1 * * *");
    let t: Zoned = "2026-11-01T01:10:00-05:00[America/New_York]"
        .parse()
        .unwrap();
    let prev = c.prev_before(&t).unwrap();
    assert_eq!(
        prev.to_string(),
        "2026-11-01T01:45:00-04:00[America/New_York]"
    );
}

#[test]
fn europe() {
    check(
        "30 2 * * *",
        DEFAULT,
        "Europe/Berlin",
        "2026-03-28T12:00:00+01:00",
        &["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
    );
    check(
        "30 2 * * *",
        DEFAULT,
        "Europe/Berlin",
        "2026-10-24T12:00:00+02:00",
        &["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
    );
    check(
        "15 1 * * *",
        DEFAULT,
        "Europe/London",
        "2026-03-28T12:00:00+00:00",
        &["2026-03-29T02:00:00+01:00", "2026-03-30T01:15:00+01:00"],
    );
    check(
        "*/30 1 * * *",
        DEFAULT,
        "Europe/London",
        "2026-10-25T00:00:00+01:00",
        &[
            "2026-10-25T01:00:00+01:00",
            "2026-10-25T01:30:00+01:00",
            "2026-10-25T01:00:00+00:00",
            "2026-10-25T01:30:00+00:00",
            "2026-10-26T01:00:00+00:00",
        ],
    );
}

#[test]
fn sydney_and_lord_howe() {
    // Sydney: 2025-10-05 02:00 AEST -> 03:00 AEDT; 2026-04-05 03:00 AEDT -> 02:00 AEST.
    check(
        "30 2 * * *",
        DEFAULT,
        "Australia/Sydney",
        "2025-10-04T12:00:00+10:00",
        &["2025-10-05T03:00:00+11:00", "2025-10-06T02:30:00+11:00"],
    );
    check(
        "30 2 * * *",
        DEFAULT,
        "Australia/Sydney",
        "2026-04-04T12:00:00+11:00",
        &["2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"],
    );
    // Lord Howe: 30-minute shifts. 2025-10-05 02:00 -> 02:30 (+10:30 -> +11).
    let z = "Australia/Lord_Howe";
    check(
        "15 2 * * *",
        DEFAULT,
        z,
        "2025-10-04T12:00:00+10:30",
        &["2025-10-05T02:30:00+11:00", "2025-10-06T02:15:00+11:00"],
    );
    check(
        "*/15 * * * *",
        DEFAULT,
        z,
        "2025-10-05T01:40:00+10:30",
        &[
            "2025-10-05T01:45:00+10:30",
            "2025-10-05T02:30:00+11:00",
            "2025-10-05T02:45:00+11:00",
        ],
    );
    // 2026-04-05 02:00 (+11) -> 01:30 (+10:30): 01:30-01:59 happen twice.
    check(
        "45 1 * * *",
        DEFAULT,
        z,
        "2026-04-04T12:00:00+11:00",
        &["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"],
    );
    check(
        "*/15 * * * *",
        DEFAULT,
        z,
        "2026-04-05T01:20:00+11:00",
        &[
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T01:30:00+10:30",
            "2026-04-05T01:45:00+10:30",
            "2026-04-05T02:00:00+10:30",
        ],
    );
    check(
        "*/15 * * * *",
        SKIP,
        z,
        "2026-04-05T01:20:00+11:00",
        &[
            "2026-04-05T01:30:00+11:00",
            "2026-04-05T01:45:00+11:00",
            "2026-04-05T02:00:00+10:30",
        ],
    );
}

#[test]
fn chatham_and_kolkata() {
    // Chatham: 2025-09-28 02:45 (+12:45) -> 03:45 (+13:45).
    check(
        "0 3 * * *",
        DEFAULT,
        "Pacific/Chatham",
        "2025-09-27T12:00:00+12:45",
        &["2025-09-28T03:45:00+13:45", "2025-09-29T03:00:00+13:45"],
    );
    check(
        "0 * * * *",
        DEFAULT,
        "Pacific/Chatham",
        "2025-09-28T01:30:00+12:45",
        &["2025-09-28T02:00:00+12:45", "2025-09-28T04:00:00+13:45"],
    );
    // 2026-04-05 03:45 (+13:45) -> 02:45 (+12:45).
    check(
        "0 3 * * *",
        DEFAULT,
        "Pacific/Chatham",
        "2026-04-04T12:00:00+13:45",
        &["2026-04-05T03:00:00+13:45", "2026-04-06T03:00:00+12:45"],
    );
    check(
        "0 9 * * MON-FRI",
        DEFAULT,
        "Asia/Kolkata",
        "2026-01-02T10:00:00+05:30",
        &["2026-01-05T09:00:00+05:30", "2026-01-06T09:00:00+05:30"],
    );
}

#[test]
fn sao_paulo_midnight_transitions() {
    let z = "America/Sao_Paulo";
    // 2018-11-04: 00:00 (-03) -> 01:00 (-02); the day starts at 01:00.
    check(
        "0 0 * * *",
        DEFAULT,
        z,
        "2018-11-03T12:00:00-03:00",
        &["2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"],
    );
    check(
        "0 0 * * *",
        SKIP,
        z,
        "2018-11-03T12:00:00-03:00",
        &["2018-11-05T00:00:00-02:00"],
    );
    check(
        "30 * * * *",
        DEFAULT,
        z,
        "2018-11-03T22:00:00-03:00",
        &[
            "2018-11-03T22:30:00-03:00",
            "2018-11-03T23:30:00-03:00",
            "2018-11-04T01:30:00-02:00",
        ],
    );
    // 2019-02-17: 00:00 (-02) -> 2019-02-16 23:00 (-03).
    check(
        "30 23 * * *",
        DEFAULT,
        z,
        "2019-02-16T12:00:00-02:00",
        &["2019-02-16T23:30:00-02:00", "2019-02-17T23:30:00-03:00"],
    );
    check(
        "30 * * * *",
        DEFAULT,
        z,
        "2019-02-16T22:00:00-02:00",
        &[
            "2019-02-16T22:30:00-02:00",
            "2019-02-16T23:30:00-02:00",
            "2019-02-16T23:30:00-03:00",
            "2019-02-17T00:30:00-03:00",
        ],
    );
}

#[test]
fn apia_skipped_day() {
    let z = "Pacific/Apia";
    // 2011-12-29 23:59:59 (-10) is followed by 2011-12-31 00:00 (+14).
    check(
        "30 2 * * *",
        DEFAULT,
        z,
        "2011-12-29T12:00:00-10:00",
        &["2011-12-31T00:00:00+14:00", "2011-12-31T02:30:00+14:00"],
    );
    check(
        "30 2 * * *",
        SKIP,
        z,
        "2011-12-29T12:00:00-10:00",
        &["2011-12-31T02:30:00+14:00"],
    );
    check(
        "0 12 30 12 *",
        DEFAULT,
        z,
        "2011-12-01T00:00:00-10:00",
        &["2011-12-31T00:00:00+14:00", "2012-12-30T12:00:00+14:00"],
    );
    check(
        "0 * * * *",
        DEFAULT,
        z,
        "2011-12-29T22:30:00-10:00",
        &[
            "2011-12-29T23:00:00-10:00",
            "2011-12-31T00:00:00+14:00",
            "2011-12-31T01:00:00+14:00",
        ],
    );
}

#[test]
fn fixed_time_classification() {
    for (expr, fixed) in [
        ("30 2 * * *", true),
        ("0 1-3 * * *", true),
        ("@daily", true),
        ("*/15 * * * *", false),
        ("0 * * * *", false),
        ("@hourly", false),
        ("0 */2 * * *", false),
        ("* 2 * * *", false),
        ("0 30 2 * * *", true),
    ] {
        assert_eq!(cron(expr).is_fixed_time(), fixed, "{expr:?}");
    }
    assert_eq!(
        Cron::parse("@daily").unwrap().dst_policy(),
        DstPolicy::ShiftGapFixedTime
    );
}
