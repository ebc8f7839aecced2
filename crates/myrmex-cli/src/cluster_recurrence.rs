//! The database trigger of a config `recurrence = { ... }` in cluster mode.
//!
//! A change of vocabulary only, like [`crate::plan::trigger`] for the in-process
//! scheduler: one [`myrmex_postgres::Recurrence`] rule per time of day, in the
//! job's zone. What the rules leave open is pinned by
//! [`myrmex_postgres::Trigger::recurrence`] (sub-day units on the Unix epoch grid,
//! days and weeks counted from Monday 1970-01-05), so every node and every restart
//! writes the same definition and the watermark survives a restart.

use myrmex_postgres::{Recurrence, RecurrenceUnit as Unit, Trigger};

use crate::config::{RecurrenceSpec, RecurrenceUnit, Zone};

/// The cluster trigger of a recurrence in `zone`.
pub fn trigger(r: &RecurrenceSpec, zone: &Zone) -> Trigger {
    let unit = match r.unit {
        RecurrenceUnit::Second => Unit::Seconds,
        RecurrenceUnit::Minute => Unit::Minutes,
        RecurrenceUnit::Hour => Unit::Hours,
        RecurrenceUnit::Day => Unit::Days,
        RecurrenceUnit::Week => Unit::Weeks,
    };
    let mut base = Recurrence::every(r.interval)
        .unit(unit)
        .in_zone(zone.tz.clone());
    if !r.on.is_empty() {
        base = base.on(&r.on);
    }
    if let Some(until) = r.until {
        base = base.until(until);
    }
    // The config documents "no `at`: midnight" for days and weeks; the pinned start
    // is at midnight, so leaving `at` open gives exactly that.
    if r.at.is_empty() {
        Trigger::recurrence([base])
    } else {
        Trigger::recurrence(r.at.iter().map(|t| base.clone().at(*t)))
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use jiff::civil::{Weekday, date, time};
    use jiff::tz::TimeZone;

    use super::*;

    fn zone(name: &str) -> Zone {
        Zone {
            name: name.to_owned(),
            tz: TimeZone::get(name).unwrap(),
        }
    }

    fn spec(
        interval: u32,
        unit: RecurrenceUnit,
        at: &[(i8, i8)],
        on: &[Weekday],
    ) -> RecurrenceSpec {
        RecurrenceSpec {
            interval,
            unit,
            at: at.iter().map(|(h, m)| time(*h, *m, 0, 0)).collect(),
            on: on.to_vec(),
            until: None,
        }
    }

    fn next(t: &Trigger, from: &str, n: usize) -> Vec<String> {
        t.upcoming("j", from.parse::<Timestamp>().unwrap(), n)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn recurrences_map_to_pinned_cluster_rules() {
        let cases: &[(RecurrenceSpec, &str, &str, &[&str])] = &[
            // Two times a day on weekdays in Berlin (winter: UTC+1).
            (
                spec(
                    1,
                    RecurrenceUnit::Day,
                    &[(9, 0), (17, 30)],
                    &[Weekday::Friday, Weekday::Monday],
                ),
                "Europe/Berlin",
                "2026-01-02T00:00:00Z",
                &[
                    "2026-01-02T08:00:00Z",
                    "2026-01-02T16:30:00Z",
                    "2026-01-05T08:00:00Z",
                ],
            ),
            // No `at`: midnight in the zone.
            (
                spec(1, RecurrenceUnit::Day, &[], &[]),
                "America/New_York",
                "2026-01-02T12:00:00Z",
                &["2026-01-03T05:00:00Z", "2026-01-04T05:00:00Z"],
            ),
            // Elapsed units: the epoch grid, whatever the zone.
            (
                spec(90, RecurrenceUnit::Minute, &[], &[]),
                "Asia/Kathmandu",
                "2026-01-01T00:00:01Z",
                &["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z"],
            ),
            // Every other week, without weekdays: Mondays of the even weeks from
            // 1970-01-05 (2026-01-05 is week 2912).
            (
                spec(2, RecurrenceUnit::Week, &[(6, 0)], &[]),
                "UTC",
                "2026-01-01T00:00:00Z",
                &["2026-01-05T06:00:00Z", "2026-01-19T06:00:00Z"],
            ),
        ];
        for (r, tz, from, want) in cases {
            let t = trigger(r, &zone(tz));
            assert_eq!(next(&t, from, want.len()), *want, "{r:?} in {tz}");
            // Written twice (two nodes, or a restart): the same definition.
            assert_eq!(t, trigger(r, &zone(tz)));
        }
        assert_eq!(
            date(1970, 1, 5).until(date(2026, 1, 5)).unwrap().get_days() / 7 % 2,
            0
        );
    }

    #[test]
    fn until_bounds_the_rule() {
        let mut r = spec(1, RecurrenceUnit::Day, &[(12, 0)], &[]);
        r.until = Some(date(2026, 1, 2));
        let t = trigger(&r, &zone("UTC"));
        assert_eq!(
            next(&t, "2026-01-01T00:00:00Z", 5),
            ["2026-01-01T12:00:00Z", "2026-01-02T12:00:00Z"]
        );
    }
}
