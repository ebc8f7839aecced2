//! Calendar recurrences (the seed's `ScheduledRecurrence`): every N seconds,
//! minutes, hours, days or weeks, at a time of day, on chosen weekdays, until a
//! date, in a zone.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::trigger::{DisambiguationPolicy, TriggerError};

/// The unit a [`Recurrence`] counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecurrenceUnit {
    /// Elapsed seconds.
    Seconds,
    /// Elapsed minutes.
    Minutes,
    /// Elapsed hours (absolute: across a DST change "every 2 hours" stays 2 h).
    Hours,
    /// Calendar days, at the same wall-clock time each day.
    Days,
    /// Calendar weeks (Monday to Sunday), on the chosen weekdays.
    Weeks,
}

/// A set of weekdays (bit 0 = Monday … bit 6 = Sunday). Empty means "no
/// restriction" for sub-week units and "the start's weekday" for weeks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weekdays(u8);

impl Weekdays {
    /// The empty set.
    pub const NONE: Weekdays = Weekdays(0);
    /// Monday to Friday.
    pub const WORKDAYS: Weekdays = Weekdays(0b001_1111);

    /// The set holding exactly `days`.
    pub fn of(days: &[Weekday]) -> Weekdays {
        let mut s = Weekdays(0);
        for d in days {
            s = s.with(*d);
        }
        s
    }

    /// This set plus `day`.
    #[must_use]
    pub fn with(self, day: Weekday) -> Weekdays {
        Weekdays(self.0 | 1 << day.to_monday_zero_offset())
    }

    /// Whether `day` is in the set.
    pub fn contains(self, day: Weekday) -> bool {
        self.0 & (1 << day.to_monday_zero_offset()) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// A calendar recurrence in a zone.
///
/// - Seconds, minutes and hours count elapsed time from `start` (like an interval),
///   optionally only on `weekdays` (in the zone).
/// - Days and weeks step the calendar and fire at the wall-clock time `at`
///   (default: `start`'s time of day). A time that a DST change skips or repeats is
///   resolved by `dst` ([`DisambiguationPolicy::Compatible`] by default), so a daily
///   02:30 job runs at 03:30 on the spring-forward day and once on the fall-back day.
/// - Nothing fires before `start` or on a date after `until` (inclusive, in the zone).
///
/// ```
/// use jiff::civil::{Weekday, date, time};
/// use jiff::tz::TimeZone;
/// use myrmex_core::{Recurrence, Trigger, TriggerSpec};
///
/// // Every other week, Monday and Thursday at 09:00 in Berlin, until the end of March.
/// let r = Recurrence::every(2)
///     .weeks()
///     .at(time(9, 0, 0, 0))
///     .on(&[Weekday::Monday, Weekday::Thursday])
///     .starting(date(2026, 3, 2).at(0, 0, 0, 0))
///     .until(date(2026, 3, 31))
///     .in_zone(TimeZone::get("Europe/Berlin").unwrap());
/// let spec = TriggerSpec::Recurrence(r);
/// let mut t: jiff::Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
/// let mut fires = vec![];
/// while let Some(n) = spec.next_after(t) {
///     fires.push(n.to_string());
///     t = n;
/// }
/// assert_eq!(fires, [
///     "2026-03-02T08:00:00Z", "2026-03-05T08:00:00Z",
///     "2026-03-16T08:00:00Z", "2026-03-19T08:00:00Z",
///     // Berlin switches to summer time on 2026-03-29: 09:00 is now 07:00 UTC.
///     "2026-03-30T07:00:00Z",
/// ]);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recurrence {
    /// N: how many units between fires (at least 1).
    pub every: u32,
    /// The unit.
    pub unit: RecurrenceUnit,
    /// The wall-clock time of day for days and weeks (`None`: `start`'s time).
    #[serde(default)]
    pub at: Option<Time>,
    /// The weekdays it may fire on.
    #[serde(default)]
    pub weekdays: Weekdays,
    /// The anchor, in the zone (`None`: when the job is added).
    #[serde(default)]
    pub start: Option<DateTime>,
    /// The last date it may fire on, inclusive.
    #[serde(default)]
    pub until: Option<Date>,
    /// The zone (`None`: the scheduler's zone).
    #[serde(with = "jiff::fmt::serde::tz::optional", default)]
    pub tz: Option<TimeZone>,
    /// How a wall-clock time in a DST gap or fold becomes an instant.
    #[serde(default)]
    pub dst: DisambiguationPolicy,
}

/// Bounds every search loop; far more than any valid recurrence needs.
const MAX_STEPS: usize = 2_000;

impl Recurrence {
    /// Starts a recurrence of every `n` units; pick the unit next
    /// (`.seconds()`, `.minutes()`, `.hours()`, `.days()`, `.weeks()`).
    pub fn every(n: u32) -> Recurrence {
        Recurrence {
            every: n,
            unit: RecurrenceUnit::Days,
            at: None,
            weekdays: Weekdays::NONE,
            start: None,
            until: None,
            tz: None,
            dst: DisambiguationPolicy::default(),
        }
    }

    /// Counts in seconds.
    #[must_use]
    pub fn seconds(self) -> Self {
        self.unit(RecurrenceUnit::Seconds)
    }
    /// Counts in minutes.
    #[must_use]
    pub fn minutes(self) -> Self {
        self.unit(RecurrenceUnit::Minutes)
    }
    /// Counts in hours.
    #[must_use]
    pub fn hours(self) -> Self {
        self.unit(RecurrenceUnit::Hours)
    }
    /// Counts in calendar days.
    #[must_use]
    pub fn days(self) -> Self {
        self.unit(RecurrenceUnit::Days)
    }
    /// Counts in calendar weeks.
    #[must_use]
    pub fn weeks(self) -> Self {
        self.unit(RecurrenceUnit::Weeks)
    }
    /// Sets the unit.
    #[must_use]
    pub fn unit(mut self, unit: RecurrenceUnit) -> Self {
        self.unit = unit;
        self
    }
    /// Fires at this wall-clock time (days and weeks).
    #[must_use]
    pub fn at(mut self, time: Time) -> Self {
        self.at = Some(time);
        self
    }
    /// Fires only on these weekdays.
    #[must_use]
    pub fn on(mut self, days: &[Weekday]) -> Self {
        self.weekdays = Weekdays::of(days);
        self
    }
    /// Anchors the recurrence at this civil time.
    #[must_use]
    pub fn starting(mut self, start: DateTime) -> Self {
        self.start = Some(start);
        self
    }
    /// Never fires on a date after `date`.
    #[must_use]
    pub fn until(mut self, date: Date) -> Self {
        self.until = Some(date);
        self
    }
    /// Evaluates in `tz`.
    #[must_use]
    pub fn in_zone(mut self, tz: TimeZone) -> Self {
        self.tz = Some(tz);
        self
    }
    /// Resolves DST gaps and folds with `dst`.
    #[must_use]
    pub fn dst(mut self, dst: DisambiguationPolicy) -> Self {
        self.dst = dst;
        self
    }

    pub(crate) fn resolve_in_place(
        &mut self,
        now: Timestamp,
        zone: &TimeZone,
    ) -> Result<(), TriggerError> {
        if self.every == 0 {
            return Err(TriggerError::InvalidRecurrence {
                reason: "`every` must be at least 1",
            });
        }
        if self.at.is_some() && self.is_elapsed() {
            return Err(TriggerError::InvalidRecurrence {
                reason: "`at` applies to days and weeks only",
            });
        }
        let tz = self.tz.get_or_insert_with(|| zone.clone()).clone();
        self.start
            .get_or_insert_with(|| now.to_zoned(tz).datetime());
        Ok(())
    }

    pub(crate) fn is_elapsed(&self) -> bool {
        matches!(
            self.unit,
            RecurrenceUnit::Seconds | RecurrenceUnit::Minutes | RecurrenceUnit::Hours
        )
    }

    pub(crate) fn shift_elapsed(&mut self, by: SignedDuration) {
        if self.is_elapsed()
            && let Some(s) = self.start
        {
            self.start = Some(s.saturating_add(by));
        }
    }

    fn step_secs(&self) -> i64 {
        let unit = match self.unit {
            RecurrenceUnit::Seconds => 1,
            RecurrenceUnit::Minutes => 60,
            RecurrenceUnit::Hours => 3600,
            RecurrenceUnit::Days => 86_400,
            RecurrenceUnit::Weeks => 7 * 86_400,
        };
        i64::from(self.every) * unit
    }

    fn day_ok(&self, d: Date) -> bool {
        self.until.is_none_or(|u| d <= u)
    }

    /// The first fire strictly after `after`.
    pub(crate) fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let tz = &self.tz.clone().unwrap_or(TimeZone::UTC);
        let start_dt = self.start?;
        let anchor = DisambiguationPolicy::Compatible.resolve(tz, start_dt)?;
        if self.every == 0 {
            return None;
        }
        if self.is_elapsed() {
            self.next_elapsed(tz, anchor, after)
        } else {
            self.next_calendar(tz, start_dt, anchor, after)
        }
    }

    fn next_elapsed(
        &self,
        tz: &TimeZone,
        anchor: Timestamp,
        after: Timestamp,
    ) -> Option<Timestamp> {
        let step = self.step_secs();
        let mut after = after;
        for _ in 0..MAX_STEPS {
            let cand = if after < anchor {
                anchor
            } else {
                let elapsed = after.duration_since(anchor).as_secs();
                let k = elapsed / step + 1;
                anchor
                    .checked_add(SignedDuration::from_secs(k.checked_mul(step)?))
                    .ok()?
            };
            let local = cand.to_zoned(tz.clone());
            if !self.day_ok(local.date()) {
                return None;
            }
            if self.weekdays.is_empty() || self.weekdays.contains(local.weekday()) {
                return Some(cand);
            }
            // Jump to the end of this local day, so a filtered-out day costs one step.
            let next_day = local.date().tomorrow().ok()?.to_datetime(Time::midnight());
            let day_start = DisambiguationPolicy::Compatible.resolve(tz, next_day)?;
            after = day_start.checked_sub(SignedDuration::from_nanos(1)).ok()?;
        }
        None
    }

    fn next_calendar(
        &self,
        tz: &TimeZone,
        start: DateTime,
        anchor: Timestamp,
        after: Timestamp,
    ) -> Option<Timestamp> {
        let time = self.at.unwrap_or(start.time());
        let d0 = start.date();
        let n = i64::from(self.every);
        // Civil times can resolve up to a day away from their date only in
        // pathological zones; one day of slack on either side is plenty.
        let from = after.to_zoned(tz.clone()).date().yesterday().ok()?.max(d0);
        let weekdays = if self.weekdays.is_empty() && self.unit == RecurrenceUnit::Weeks {
            Weekdays::NONE.with(d0.weekday())
        } else {
            self.weekdays
        };
        let days_between = |a: Date, b: Date| b.duration_since(a).as_secs().div_euclid(86_400);
        let mut d = from;
        if self.unit == RecurrenceUnit::Days {
            let off = days_between(d0, d).rem_euclid(n);
            if off != 0 {
                d = d
                    .checked_add(SignedDuration::from_hours(24 * (n - off)))
                    .ok()?;
            }
        }
        let monday = |x: Date| {
            x.checked_sub(SignedDuration::from_hours(
                24 * i64::from(x.weekday().to_monday_zero_offset()),
            ))
        };
        let w0 = monday(d0).ok()?;
        for _ in 0..MAX_STEPS {
            if !self.day_ok(d) {
                return None;
            }
            let step_days = match self.unit {
                RecurrenceUnit::Weeks => {
                    let weeks = days_between(w0, monday(d).ok()?) / 7;
                    let off = weeks.rem_euclid(n);
                    if off != 0 {
                        // Skip to the Monday of the next week in the cycle.
                        d = monday(d)
                            .ok()?
                            .checked_add(SignedDuration::from_hours(24 * 7 * (n - off)))
                            .ok()?;
                        continue;
                    }
                    1
                }
                _ => n,
            };
            if (weekdays.is_empty() || weekdays.contains(d.weekday()))
                && let Some(t) = self.dst.resolve(tz, d.to_datetime(time))
                && t > after
                && t >= anchor
            {
                return Some(t);
            }
            d = d
                .checked_add(SignedDuration::from_hours(24 * step_days))
                .ok()?;
        }
        None
    }
}
