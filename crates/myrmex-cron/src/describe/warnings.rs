//! Warnings an expression deserves: the day OR rule, and fire times that fall into
//! a daylight-saving gap or fold of a given zone.

use std::fmt;

use jiff::civil::{Date, DateTime, Time};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan as _};

use crate::{Cron, DstPolicy};

/// Whether a clock change skips local times (a gap) or repeats them (a fold).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DstChange {
    /// Local times from `from` up to `to` do not exist (clocks jump forward).
    Gap,
    /// Local times from `to` up to `from` happen twice (clocks go back).
    Fold,
}

/// Something about an expression that deserves the user's attention; see
/// [`Cron::warnings`]. `Display` gives a lowercase sentence fragment.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Warning {
    /// Both day-of-month and day-of-week are restricted, so a day fires when it
    /// matches either of them (the Vixie cron OR rule), not both.
    DayFieldsOr,
    /// Fire times fall on local times that a clock change skips or repeats.
    Dst {
        /// Gap or fold.
        change: DstChange,
        /// The zone's name (IANA name when known).
        zone: String,
        /// The local date of the change.
        date: Date,
        /// The local clock reading at which the clock is changed (`02:00` on
        /// 2026-03-08 for New York in March).
        from: DateTime,
        /// The local clock reading it is changed to (`03:00` the same day).
        to: DateTime,
        /// The matching local times inside the skipped or repeated span (at most
        /// the first [`Warning::MAX_TIMES`]).
        times: Vec<DateTime>,
        /// How many matching local times the span holds in all.
        count: u32,
        /// What happens to them under the expression's DST policy.
        outcome: DstOutcome,
    },
}

/// What happens to fire times caught in a gap or a fold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DstOutcome {
    /// Gap, fixed-time job, default policy: fires once at the first instant after the gap.
    FiresAfterGap,
    /// Gap: the missing times do not fire.
    Skipped,
    /// Fold: fires once, at the earlier of the two instants.
    FiresOnceEarlier,
    /// Fold, wildcard job, default policy: fires at both instants.
    FiresTwice,
}

impl Warning {
    /// How many matching local times a DST warning lists.
    pub const MAX_TIMES: usize = 3;

    /// A short stable identifier: `day-or-rule`, `dst-gap` or `dst-fold`.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::DayFieldsOr => "day-or-rule",
            Warning::Dst {
                change: DstChange::Gap,
                ..
            } => "dst-gap",
            Warning::Dst {
                change: DstChange::Fold,
                ..
            } => "dst-fold",
        }
    }
}

/// `HH:MM` (with `:SS` when not zero), preceded by the date when it is not `day`.
fn clock(dt: DateTime, day: Date) -> String {
    let t = hm(dt.time());
    if dt.date() == day {
        t
    } else {
        format!("{} {t}", dt.date())
    }
}

fn hm(t: Time) -> String {
    if t.second() == 0 {
        format!("{:02}:{:02}", t.hour(), t.minute())
    } else {
        format!("{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::DayFieldsOr => f.write_str(
                "day-of-month and day-of-week are both restricted, so a day fires when \
                 either matches (Vixie cron rule); start one of them with * to require both",
            ),
            Warning::Dst {
                change,
                zone,
                date,
                from,
                to,
                times,
                count,
                outcome,
            } => {
                let mut listed: Vec<String> = times.iter().map(|&t| clock(t, *date)).collect();
                if (*count as usize) > times.len() {
                    listed.push(format!("{} more", *count as usize - times.len()));
                }
                let list = match listed.as_slice() {
                    [one] => one.clone(),
                    [rest @ .., last] => format!("{} and {last}", rest.join(", ")),
                    [] => String::new(),
                };
                let (what, verb) = match change {
                    DstChange::Gap => (
                        "skip forward",
                        if *count == 1 {
                            "does not exist"
                        } else {
                            "do not exist"
                        },
                    ),
                    DstChange::Fold => (
                        "go back",
                        if *count == 1 {
                            "happens twice"
                        } else {
                            "happen twice"
                        },
                    ),
                };
                write!(
                    f,
                    "on {date} in {zone} clocks {what} from {} to {}: {list} {verb}",
                    clock(*from, *date),
                    clock(*to, *date)
                )?;
                let one = *count == 1;
                match outcome {
                    DstOutcome::FiresAfterGap => {
                        let verb = if one { "fires" } else { "fire" };
                        write!(f, " and {verb} once at {} instead", clock(*to, *date))
                    }
                    DstOutcome::Skipped => f.write_str(" and will not fire"),
                    DstOutcome::FiresOnceEarlier => f.write_str(if one {
                        " but fires once, at the earlier instant"
                    } else {
                        " but fire once each, at the earlier instant"
                    }),
                    DstOutcome::FiresTwice => f.write_str(if one {
                        " and fires at both instants"
                    } else {
                        " and fire at both instants"
                    }),
                }
            }
        }
    }
}

impl Cron {
    /// The warnings this expression deserves when run in `tz` for `years` years from
    /// `from`: [`Warning::DayFieldsOr`] when both day fields are restricted, and one
    /// [`Warning::Dst`] per clock change whose skipped or repeated local times hold
    /// fire times, naming the date. The crate reads no clock: pass the start instant.
    ///
    /// ```
    /// use jiff::{Timestamp, tz::TimeZone};
    /// use myrmex_cron::{Cron, Warning};
    ///
    /// let cron: Cron = "30 2 * * *".parse()?;
    /// let tz = TimeZone::get("America/New_York").unwrap();
    /// let from: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    /// let w = cron.warnings(&tz, from, 1);
    /// assert_eq!(
    ///     w[0].to_string(),
    ///     "on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: \
    ///      02:30 does not exist and fires once at 03:00 instead"
    /// );
    /// # Ok::<(), myrmex_cron::ParseError>(())
    /// ```
    pub fn warnings(&self, tz: &TimeZone, from: Timestamp, years: u32) -> Vec<Warning> {
        let mut out = Vec::new();
        if self.dom_restricted && self.dow_restricted {
            out.push(Warning::DayFieldsOr);
        }
        let years = i64::from(years.min(300));
        let until = from
            .to_zoned(tz.clone())
            .checked_add(Span::new().years(years))
            .map_or(Timestamp::MAX, |z| z.timestamp());
        let zone = tz.iana_name().unwrap_or("the zone").to_owned();
        let fixed = !self.minute_star && !self.hour_star;
        for transition in tz.following(from) {
            let at = transition.timestamp();
            if at >= until {
                break;
            }
            let after = transition.offset();
            let before = tz.to_offset(at - 1.nanosecond());
            if after == before {
                continue;
            }
            let old_local = before.to_datetime(at);
            let new_local = after.to_datetime(at);
            let (change, start, end) = if after > before {
                (DstChange::Gap, old_local, new_local)
            } else {
                (DstChange::Fold, new_local, old_local)
            };
            let (times, count) = self.local_fire_times(start, end);
            if count == 0 {
                continue;
            }
            let outcome = match (change, self.dst, fixed) {
                (DstChange::Gap, DstPolicy::ShiftGapFixedTime, true) => DstOutcome::FiresAfterGap,
                (DstChange::Gap, _, _) => DstOutcome::Skipped,
                (DstChange::Fold, DstPolicy::ShiftGapFixedTime, false) => DstOutcome::FiresTwice,
                (DstChange::Fold, _, _) => DstOutcome::FiresOnceEarlier,
            };
            out.push(Warning::Dst {
                change,
                zone: zone.clone(),
                date: old_local.date(),
                from: old_local,
                to: new_local,
                times,
                count,
                outcome,
            });
        }
        out
    }

    /// The matching local times in `[start, end)` (the first few, and how many).
    fn local_fire_times(&self, start: DateTime, end: DateTime) -> (Vec<DateTime>, u32) {
        let mut times = Vec::new();
        let mut count = 0u32;
        let mut t = start;
        while t < end {
            let step = if !self.civil_day_matches(t.date()) {
                next_boundary(t, Boundary::Day)
            } else if self.hours & (1 << t.hour()) == 0 {
                next_boundary(t, Boundary::Hour)
            } else if self.minutes & (1 << t.minute()) == 0 {
                next_boundary(t, Boundary::Minute)
            } else {
                if self.seconds & (1 << t.second()) != 0 {
                    count += 1;
                    if times.len() < Warning::MAX_TIMES {
                        times.push(t);
                    }
                }
                t.checked_add(1.second()).ok()
            };
            match step {
                Some(next) => t = next,
                None => break,
            }
        }
        (times, count)
    }

    /// Whether the local date matches the day, month and year fields (the
    /// engine's own day rules: `L`, `W`, `#` and the OR rule).
    fn civil_day_matches(&self, date: Date) -> bool {
        let (y, m, d) = (
            i32::from(date.year()),
            u32::from(date.month().unsigned_abs()),
            date.day(),
        );
        self.months & (1 << m) != 0
            && self.years.is_none_or(|years| years.contains(y))
            && self.month_mask(y, m) & (1u64 << d) != 0
    }
}

enum Boundary {
    Day,
    Hour,
    Minute,
}

fn next_boundary(t: DateTime, b: Boundary) -> Option<DateTime> {
    let floor = match b {
        Boundary::Day => t.date().to_datetime(Time::midnight()).checked_add(1.day()),
        Boundary::Hour => t
            .with()
            .minute(0)
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.hour()),
        Boundary::Minute => t
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute()),
    };
    floor.ok()
}
