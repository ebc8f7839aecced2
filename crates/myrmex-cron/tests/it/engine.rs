//! Engine table tests (UTC, so only the calendar matters), iterators, symmetry
//! between next and prev, and the 1970-2199 bounds.

use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use proptest::prelude::*;

use crate::parse::cron;

/// The next `expected.len()` fire times after `after` (UTC), and back again.
fn check(expr: &str, after: &str, expected: &[&str]) {
    let c = cron(expr);
    let after: Timestamp = after.parse().unwrap();
    let got: Vec<String> = c
        .timestamps_after(after, &TimeZone::UTC)
        .take(expected.len())
        .map(|t| t.to_string())
        .collect();
    assert_eq!(got, expected, "{expr:?} after {after}");
    if let Some(last) = expected.last() {
        let last: Timestamp = last.parse().unwrap();
        let mut back: Vec<String> = c
            .timestamps_before(last, &TimeZone::UTC)
            .take_while(|&t| t > after)
            .map(|t| t.to_string())
            .collect();
        back.reverse();
        assert_eq!(back, expected[..expected.len() - 1], "{expr:?} backwards");
    }
}

#[test]
fn constructs() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "* * * * *",
            "2026-01-01T00:00:30Z",
            &["2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"],
        ),
        (
            "*/5 * * * *",
            "2026-01-01T00:03:00Z",
            &["2026-01-01T00:05:00Z", "2026-01-01T00:10:00Z"],
        ),
        (
            "0 0 * * *",
            "2026-01-01T00:00:00Z",
            &["2026-01-02T00:00:00Z"],
        ),
        (
            "0 22-2/2 * * *",
            "2026-01-01T21:00:00Z",
            &[
                "2026-01-01T22:00:00Z",
                "2026-01-02T00:00:00Z",
                "2026-01-02T02:00:00Z",
                "2026-01-02T22:00:00Z",
            ],
        ),
        (
            "0 0 * NOV-FEB *",
            "2026-02-28T12:00:00Z",
            &["2026-11-01T00:00:00Z"],
        ),
        // Vixie OR: the 1st, the 15th and Mondays.
        (
            "0 0 1,15 * MON",
            "2026-06-01T00:00:00Z",
            &[
                "2026-06-08T00:00:00Z",
                "2026-06-15T00:00:00Z",
                "2026-06-22T00:00:00Z",
                "2026-06-29T00:00:00Z",
                "2026-07-01T00:00:00Z",
            ],
        ),
        // `*/2` begins with `*`: AND, so only a 1st on Sun/Tue/Thu/Sat.
        (
            "0 0 1 * */2",
            "2026-01-01T00:00:00Z",
            &[
                "2026-02-01T00:00:00Z",
                "2026-03-01T00:00:00Z",
                "2026-08-01T00:00:00Z",
            ],
        ),
        (
            "0 0 L * *",
            "2026-01-31T00:00:00Z",
            &["2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z"],
        ),
        (
            "0 0 L * *",
            "2028-02-01T00:00:00Z",
            &["2028-02-29T00:00:00Z"],
        ),
        (
            "0 0 L-2 * *",
            "2026-02-01T00:00:00Z",
            &["2026-02-26T00:00:00Z", "2026-03-29T00:00:00Z"],
        ),
        // 2026-05-31 is a Sunday, 2026-10-31 a Saturday.
        (
            "0 0 LW * *",
            "2026-05-01T00:00:00Z",
            &["2026-05-29T00:00:00Z", "2026-06-30T00:00:00Z"],
        ),
        (
            "0 0 LW 10 *",
            "2026-01-01T00:00:00Z",
            &["2026-10-30T00:00:00Z"],
        ),
        // nW: 2026-08-01 is a Saturday -> Monday 3rd; 2026-05-31 Sunday -> Friday 29th;
        // 2026-02-15 is a Sunday -> Monday 16th; 2026-03-14 Saturday -> Friday 13th.
        (
            "0 0 1W 8 *",
            "2026-01-01T00:00:00Z",
            &["2026-08-03T00:00:00Z"],
        ),
        (
            "0 0 31W 5 *",
            "2026-01-01T00:00:00Z",
            &["2026-05-29T00:00:00Z"],
        ),
        (
            "0 0 15W 2 *",
            "2026-01-01T00:00:00Z",
            &["2026-02-16T00:00:00Z"],
        ),
        (
            "0 0 14W 3 *",
            "2026-01-01T00:00:00Z",
            &["2026-03-13T00:00:00Z"],
        ),
        (
            "0 0 * * 5L",
            "2026-01-01T00:00:00Z",
            &["2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"],
        ),
        (
            "0 0 * * SUN#1",
            "2026-01-01T00:00:00Z",
            &["2026-01-04T00:00:00Z", "2026-02-01T00:00:00Z"],
        ),
        (
            "0 0 * * MON#5",
            "2026-01-01T00:00:00Z",
            &["2026-03-30T00:00:00Z", "2026-06-29T00:00:00Z"],
        ),
        (
            "0 0 29 2 *",
            "2025-03-01T00:00:00Z",
            &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
        ),
        (
            "0 0 29 2 *",
            "2096-03-01T00:00:00Z",
            &["2104-02-29T00:00:00Z"],
        ),
        (
            "*/10 * * * * *",
            "2026-01-01T00:00:05Z",
            &["2026-01-01T00:00:10Z", "2026-01-01T00:00:20Z"],
        ),
        (
            "0 0 0 1 1 * 2030,2040",
            "2026-01-01T00:00:00Z",
            &["2030-01-01T00:00:00Z", "2040-01-01T00:00:00Z"],
        ),
        (
            "0 0 0 1 1 * 2198-1972/3",
            "1970-06-01T00:00:00Z",
            &["1971-01-01T00:00:00Z", "2198-01-01T00:00:00Z"],
        ),
        ("@yearly", "2026-01-01T00:00:00Z", &["2027-01-01T00:00:00Z"]),
        ("@weekly", "2026-01-01T00:00:00Z", &["2026-01-04T00:00:00Z"]),
    ];
    for &(expr, after, expected) in table {
        check(expr, after, expected);
    }
}

#[test]
fn bounds_1970_to_2199() {
    let c = cron("0 0 1 1 *");
    let utc = TimeZone::UTC;
    let last: Timestamp = "2199-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        c.next_timestamp_after("2198-06-01T00:00:00Z".parse().unwrap(), &utc),
        Some(last)
    );
    assert_eq!(c.next_timestamp_after(last, &utc), None);
    assert_eq!(
        c.next_timestamp_after("9000-01-01T00:00:00Z".parse().unwrap(), &utc),
        None
    );
    let first: Timestamp = "1970-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        c.prev_timestamp_before("1970-06-01T00:00:00Z".parse().unwrap(), &utc),
        Some(first)
    );
    assert_eq!(c.prev_timestamp_before(first, &utc), None);
    assert_eq!(
        c.prev_timestamp_before("1900-01-01T00:00:00Z".parse().unwrap(), &utc),
        None
    );
    assert_eq!(
        c.next_timestamp_after("1900-01-01T00:00:00Z".parse().unwrap(), &utc),
        Some(first)
    );
    let years = cron("0 0 0 1 1 * 2030");
    let z: Zoned = "2026-01-01T00:00:00+00:00[UTC]".parse().unwrap();
    assert_eq!(years.iter_after(&z).count(), 1);
    assert_eq!(years.iter_before(&z).count(), 0);
}

#[test]
fn strictly_after_and_before() {
    let c = cron("0 * * * *");
    let z: Zoned = "2026-05-05T10:00:00+00:00[UTC]".parse().unwrap();
    assert_eq!(
        c.next_after(&z).unwrap().to_string(),
        "2026-05-05T11:00:00+00:00[UTC]"
    );
    assert_eq!(
        c.prev_before(&z).unwrap().to_string(),
        "2026-05-05T09:00:00+00:00[UTC]"
    );
    let z: Zoned = "2026-05-05T10:00:00.5+00:00[UTC]".parse().unwrap();
    assert_eq!(
        c.next_after(&z).unwrap().to_string(),
        "2026-05-05T11:00:00+00:00[UTC]"
    );
    assert_eq!(
        c.prev_before(&z).unwrap().to_string(),
        "2026-05-05T10:00:00+00:00[UTC]"
    );
    assert!(c.matches(&z));
    let z: Zoned = "2026-05-05T10:00:01+00:00[UTC]".parse().unwrap();
    assert!(!c.matches(&z));
}

#[test]
fn zoned_results_keep_the_input_zone() {
    let c = cron("0 9 * * *");
    let z: Zoned = "2026-05-05T10:00:00+09:00[Asia/Tokyo]".parse().unwrap();
    let next = c.next_after(&z).unwrap();
    assert_eq!(next.time_zone().iana_name(), Some("Asia/Tokyo"));
    assert_eq!(next.to_string(), "2026-05-06T09:00:00+09:00[Asia/Tokyo]");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// prev(next(t)) <= t < next(t), next(prev(next(t))) == next(t), and the
    /// iterators agree with repeated next/prev calls.
    #[test]
    fn next_prev_symmetry(
        expr in proptest::sample::select(&[
            "* * * * *", "*/7 * * * *", "30 2 * * *", "0 0 1,15 * MON", "0 */3 * * 1-5",
            "15,45 1 * * *", "0 0 L * *", "0 0 * * 5L", "*/13 */3 * * * *", "0 0 29 2 *",
            "0 30 1 * * * 2026-2030", "0 0 LW * *", "0 0 15W * *", "0 12 * * SUN#2",
        ][..]),
        zone in proptest::sample::select(&crate::reference::ZONES[..]),
        secs in 0i64..6_000_000_000,
    ) {
        let c = cron(expr);
        let tz = TimeZone::get(zone).unwrap();
        let t = Timestamp::from_second(secs).unwrap();
        let fwd: Vec<Timestamp> = c.timestamps_after(t, &tz).take(5).collect();
        let mut cur = t;
        for f in &fwd {
            let n = c.next_timestamp_after(cur, &tz).unwrap();
            prop_assert_eq!(n, *f);
            prop_assert!(n > cur);
            let p = c.prev_timestamp_before(n, &tz);
            if cur != t {
                prop_assert_eq!(p, Some(cur));
            }
            if let Some(p) = p {
                prop_assert!(p <= cur);
                prop_assert_eq!(c.next_timestamp_after(p, &tz), Some(n));
            }
            cur = n;
        }
        if let Some(&last) = fwd.last() {
            let mut back: Vec<Timestamp> = c.timestamps_before(last, &tz).take(fwd.len() - 1).collect();
            back.reverse();
            prop_assert_eq!(&back[..], &fwd[..fwd.len() - 1]);
        }
        let z = t.to_zoned(tz.clone());
        let zoned: Vec<Timestamp> = c.iter_after(&z).take(5).map(|z| z.timestamp()).collect();
        prop_assert_eq!(zoned, fwd);
    }
}
