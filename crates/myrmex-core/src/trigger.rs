//! Triggers: when a job fires.
//!
//! [`Trigger`] is the one operation every kind answers: the first fire time
//! strictly after an instant. [`TriggerSpec`] is the data form of the built-in
//! kinds (serializable, so a store can save and reload a job), and is itself a
//! `Trigger`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use jiff::civil::{DateTime, Time};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use myrmex_cron::Cron;
use serde::{Deserialize, Serialize};

use crate::recurrence::Recurrence;
use crate::time::{NEVER, dur_ns, ns, ts};

/// Anything that can say when a job fires next.
///
/// Implementations must be pure: the answer depends only on `after` and the
/// trigger's own data, never on the current time.
///
/// ```
/// use jiff::{SignedDuration, Timestamp};
/// use myrmex_core::Trigger;
///
/// /// Fires at the top of every hour.
/// #[derive(Debug)]
/// struct Hourly;
///
/// impl Trigger for Hourly {
///     fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
///         let s = after.as_second().div_euclid(3600) * 3600 + 3600;
///         Timestamp::from_second(s).ok()
///     }
/// }
///
/// let t: Timestamp = "2026-01-01T10:15:00Z".parse().unwrap();
/// assert_eq!(Hourly.next_after(t), Some("2026-01-01T11:00:00Z".parse().unwrap()));
/// ```
pub trait Trigger: fmt::Debug + Send + Sync {
    /// The first fire time strictly after `after`, or `None` when the trigger
    /// never fires again.
    fn next_after(&self, after: Timestamp) -> Option<Timestamp>;
}

/// How a civil (wall-clock) time that does not exist or exists twice in its zone
/// becomes an instant.
///
/// Default: [`DisambiguationPolicy::Compatible`].
///
/// ```
/// use jiff::civil::date;
/// use jiff::tz::TimeZone;
/// use myrmex_core::DisambiguationPolicy;
///
/// let ny = TimeZone::get("America/New_York").unwrap();
/// // 02:30 does not exist on 2026-03-08 in New York (clocks jump 02:00 -> 03:00).
/// let gap = date(2026, 3, 8).at(2, 30, 0, 0);
/// let t = DisambiguationPolicy::Compatible.resolve(&ny, gap).unwrap();
/// assert_eq!(t.to_zoned(ny.clone()).time(), jiff::civil::time(3, 30, 0, 0));
/// assert_eq!(DisambiguationPolicy::Skip.resolve(&ny, gap), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisambiguationPolicy {
    /// In a gap, the time after the gap (shifted forward by the gap's length); in a
    /// fold, the earlier instant. This is what most people expect ("02:30 on the
    /// spring-forward day runs at 03:30; 01:30 on the fall-back day runs once").
    #[default]
    Compatible,
    /// The earlier of the two candidate instants, in a gap and in a fold.
    Earlier,
    /// The later of the two candidate instants, in a gap and in a fold.
    Later,
    /// A time in a gap does not fire at all; a time in a fold fires once, at the
    /// earlier instant.
    Skip,
}

impl DisambiguationPolicy {
    /// The instant for `dt` in `tz`, or `None` when the policy drops it.
    pub fn resolve(self, tz: &TimeZone, dt: DateTime) -> Option<Timestamp> {
        let amb = tz.to_ambiguous_timestamp(dt);
        let r = match self {
            Self::Compatible => amb.compatible(),
            Self::Earlier => amb.earlier(),
            Self::Later => amb.later(),
            Self::Skip => match amb.offset() {
                AmbiguousOffset::Gap { .. } => return None,
                _ => amb.earlier(),
            },
        };
        r.ok()
    }
}

/// How a cron trigger treats fire times in a DST gap or fold (mirrors
/// [`myrmex_cron::DstPolicy`] in a serializable form).
///
/// Default: [`CronDstPolicy::ShiftGapFixedTime`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CronDstPolicy {
    /// In a gap a fixed-time job fires once right after the gap and a wildcard job
    /// skips the missing times; in a fold a fixed-time job fires once, a wildcard
    /// job at both instants.
    #[default]
    ShiftGapFixedTime,
    /// A time in a gap never fires; a time in a fold fires once, at the earlier
    /// instant.
    Skip,
}

impl CronDstPolicy {
    fn to_cron(self) -> myrmex_cron::DstPolicy {
        match self {
            Self::ShiftGapFixedTime => myrmex_cron::DstPolicy::ShiftGapFixedTime,
            Self::Skip => myrmex_cron::DstPolicy::Skip,
        }
    }
}

/// The built-in triggers as data: what a store saves and reloads.
///
/// Fields left as `None` (a zone, an interval's start, a recurrence's start) are
/// filled in when the job is added, from the scheduler's zone and the time of
/// adding; the job then keeps the resolved spec, so a reloaded job fires on the
/// same grid ([`TriggerSpec::resolve`]).
///
/// ```
/// use myrmex_core::{Trigger, TriggerSpec, every};
/// use std::time::Duration;
///
/// let spec = every(Duration::from_millis(250))
///     .resolve("2026-01-01T00:00:00Z".parse().unwrap(), &jiff::tz::TimeZone::UTC)
///     .unwrap();
/// let json = serde_json::to_string(&spec).unwrap();
/// let back: TriggerSpec = serde_json::from_str(&json).unwrap();
/// let t0 = "2026-01-01T00:00:01Z".parse().unwrap();
/// assert_eq!(back.next_after(t0), spec.next_after(t0));
/// assert_eq!(back.next_after(t0), Some("2026-01-01T00:00:01.25Z".parse().unwrap()));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TriggerSpec {
    /// Fires once at an instant.
    Once {
        /// The instant.
        at: Timestamp,
    },
    /// Fires once at a civil time in a zone.
    OnceLocal {
        /// The wall-clock date and time.
        datetime: DateTime,
        /// The zone (`None`: the scheduler's zone).
        #[serde(with = "jiff::fmt::serde::tz::optional", default)]
        tz: Option<TimeZone>,
        /// What to do when `datetime` falls in a DST gap or fold.
        #[serde(default)]
        dst: DisambiguationPolicy,
    },
    /// Fires once at the next occurrence of a wall-clock time of day after the job
    /// is added (the `at("HH:MM")` helper). Resolved to [`TriggerSpec::OnceLocal`].
    NextTimeOfDay {
        /// The time of day.
        time: Time,
        /// The zone (`None`: the scheduler's zone).
        #[serde(with = "jiff::fmt::serde::tz::optional", default)]
        tz: Option<TimeZone>,
        /// What to do when the time falls in a DST gap or fold.
        #[serde(default)]
        dst: DisambiguationPolicy,
    },
    /// Fires at `start + k·every` for `k = 0, 1, 2, …`, never after `end`.
    ///
    /// The grid is anchored at `start`, so fires never drift, however long each
    /// run takes.
    Interval {
        /// The period (absolute elapsed time, positive).
        every: SignedDuration,
        /// The first fire (`None`: one period after the job is added).
        #[serde(default)]
        start: Option<Timestamp>,
        /// The last possible fire (inclusive).
        #[serde(default)]
        end: Option<Timestamp>,
    },
    /// A cron expression evaluated in a zone.
    Cron {
        /// The expression.
        #[serde(with = "cron_text")]
        expr: Cron,
        /// The zone (`None`: the scheduler's zone).
        #[serde(with = "jiff::fmt::serde::tz::optional", default)]
        tz: Option<TimeZone>,
        /// How fire times in a DST gap or fold are treated.
        #[serde(default)]
        dst: CronDstPolicy,
    },
    /// A calendar recurrence (every N units, at a time, on weekdays, until a date).
    Recurrence(Recurrence),
    /// Fires whenever any member fires (one fire per distinct instant).
    Union {
        /// The member triggers.
        members: Vec<TriggerSpec>,
    },
    /// Never fires by itself: the job runs only when it is released (dependencies,
    /// pipelines) or run by hand.
    Manual,
    /// A user-defined trigger. Not serializable: a store cannot save such a job.
    #[serde(skip)]
    Custom(Arc<dyn Trigger>),
}

mod cron_text {
    use myrmex_cron::Cron;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(c: &Cron, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(c)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Cron, D::Error> {
        let text = String::deserialize(d)?;
        Cron::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A trigger spec that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TriggerError {
    /// An interval or recurrence step that is zero, negative or too large.
    #[error("invalid period {period:?}: must be positive and under 292 years")]
    InvalidPeriod {
        /// The period as given.
        period: SignedDuration,
    },
    /// A time-of-day text that is not `HH:MM` or `HH:MM:SS`.
    #[error("invalid time of day {text:?}: expected HH:MM or HH:MM:SS")]
    InvalidTimeOfDay {
        /// The text as given.
        text: String,
    },
    /// A cron expression that does not parse.
    #[error("invalid cron expression {expr:?}")]
    Cron {
        /// The expression as given.
        expr: String,
        /// Why it was rejected.
        #[source]
        source: myrmex_cron::ParseError,
    },
    /// An interval whose end is before its start.
    #[error("interval ends ({end}) before it starts ({start})")]
    EndBeforeStart {
        /// The first fire.
        start: Timestamp,
        /// The bound.
        end: Timestamp,
    },
    /// A recurrence field that cannot be honoured.
    #[error("invalid recurrence: {reason}")]
    InvalidRecurrence {
        /// What is wrong.
        reason: &'static str,
    },
    /// A union with no members.
    #[error("a union trigger needs at least one member")]
    EmptyUnion,
}

/// An interval trigger: `every(Duration::from_secs(5))` fires every five seconds,
/// the first one period after the job is added.
///
/// ```
/// use myrmex_core::{Trigger, every};
/// use std::time::Duration;
///
/// let t = every(Duration::from_secs(5))
///     .resolve("2026-01-01T00:00:00Z".parse().unwrap(), &jiff::tz::TimeZone::UTC)
///     .unwrap();
/// let first = t.next_after("2025-12-31T00:00:00Z".parse().unwrap());
/// assert_eq!(first, Some("2026-01-01T00:00:05Z".parse().unwrap()));
/// ```
pub fn every(period: Duration) -> TriggerSpec {
    TriggerSpec::Interval {
        every: SignedDuration::try_from(period).unwrap_or(SignedDuration::MAX),
        start: None,
        end: None,
    }
}

/// A one-shot trigger at the next `HH:MM` (or `HH:MM:SS`) wall-clock time in the
/// scheduler's zone, counted from when the job is added.
///
/// # Errors
/// [`TriggerError::InvalidTimeOfDay`] when the text is not a time of day.
///
/// ```
/// use myrmex_core::{Trigger, at};
/// use jiff::tz::TimeZone;
///
/// let paris = TimeZone::get("Europe/Paris").unwrap();
/// let t = at("09:30")?.resolve("2026-06-01T12:00:00Z".parse().unwrap(), &paris)?;
/// // 12:00 UTC is 14:00 in Paris, so the next 09:30 is tomorrow, 07:30 UTC.
/// assert_eq!(
///     t.next_after("2026-06-01T12:00:00Z".parse().unwrap()),
///     Some("2026-06-02T07:30:00Z".parse().unwrap()),
/// );
/// # Ok::<(), myrmex_core::TriggerError>(())
/// ```
pub fn at(time_of_day: &str) -> Result<TriggerSpec, TriggerError> {
    let bad = || TriggerError::InvalidTimeOfDay {
        text: time_of_day.to_owned(),
    };
    let parts: Vec<&str> = time_of_day.split(':').collect();
    if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| p.len() != 2) {
        return Err(bad());
    }
    let num = |p: &str| p.parse::<i8>().map_err(|_| bad());
    let h = num(parts[0])?;
    let m = num(parts[1])?;
    let s = if parts.len() == 3 { num(parts[2])? } else { 0 };
    let time = Time::new(h, m, s, 0).map_err(|_| bad())?;
    Ok(TriggerSpec::NextTimeOfDay {
        time,
        tz: None,
        dst: DisambiguationPolicy::default(),
    })
}

/// A cron trigger in the scheduler's zone.
///
/// # Errors
/// [`TriggerError::Cron`] when the expression does not parse.
pub fn cron(expr: &str) -> Result<TriggerSpec, TriggerError> {
    let c = Cron::parse(expr).map_err(|source| TriggerError::Cron {
        expr: expr.to_owned(),
        source,
    })?;
    Ok(TriggerSpec::Cron {
        expr: c,
        tz: None,
        dst: CronDstPolicy::default(),
    })
}

impl TriggerSpec {
    /// A one-shot trigger at an instant.
    pub fn once(at: Timestamp) -> TriggerSpec {
        TriggerSpec::Once { at }
    }

    /// An interval trigger anchored at `start`.
    pub fn interval(every: SignedDuration, start: Timestamp) -> TriggerSpec {
        TriggerSpec::Interval {
            every,
            start: Some(start),
            end: None,
        }
    }

    /// A union of triggers.
    pub fn union(members: impl IntoIterator<Item = TriggerSpec>) -> TriggerSpec {
        TriggerSpec::Union {
            members: members.into_iter().collect(),
        }
    }

    /// Fills in what was left open (zones, an interval's start, a recurrence's
    /// start, `NextTimeOfDay`) from the time the job is added and the scheduler's
    /// zone, and checks the spec.
    ///
    /// # Errors
    /// A [`TriggerError`] naming the field that cannot be used.
    pub fn resolve(mut self, now: Timestamp, zone: &TimeZone) -> Result<TriggerSpec, TriggerError> {
        self.resolve_in_place(now, zone)?;
        Ok(self)
    }

    fn resolve_in_place(&mut self, now: Timestamp, zone: &TimeZone) -> Result<(), TriggerError> {
        match self {
            TriggerSpec::Once { .. } | TriggerSpec::Manual | TriggerSpec::Custom(_) => {}
            TriggerSpec::OnceLocal { tz, .. } | TriggerSpec::Cron { tz, .. } => {
                tz.get_or_insert_with(|| zone.clone());
            }
            TriggerSpec::NextTimeOfDay { time, tz, dst } => {
                let tz = tz.clone().unwrap_or_else(|| zone.clone());
                let local = now.to_zoned(tz.clone()).datetime();
                let mut day = local.date();
                // Two days always suffice except when the policy drops the time on
                // both (impossible: gaps are at most a few hours and never on
                // consecutive days), but a few more cost nothing.
                let mut found = None;
                for _ in 0..4 {
                    let dt = day.to_datetime(*time);
                    if let Some(t) = dst.resolve(&tz, dt)
                        && t >= now
                    {
                        found = Some(dt);
                        break;
                    }
                    day = day.tomorrow().map_err(|_| TriggerError::InvalidTimeOfDay {
                        text: time.to_string(),
                    })?;
                }
                let datetime = found.unwrap_or_else(|| day.to_datetime(*time));
                *self = TriggerSpec::OnceLocal {
                    datetime,
                    tz: Some(tz),
                    dst: *dst,
                };
            }
            TriggerSpec::Interval { every, start, end } => {
                let p = dur_ns(*every);
                if p <= 0 || p == i64::MAX {
                    return Err(TriggerError::InvalidPeriod { period: *every });
                }
                let s = *start.get_or_insert_with(|| now.saturating_add(*every).unwrap_or(now));
                if let Some(e) = *end
                    && e < s
                {
                    return Err(TriggerError::EndBeforeStart { start: s, end: e });
                }
            }
            TriggerSpec::Recurrence(r) => r.resolve_in_place(now, zone)?,
            TriggerSpec::Union { members } => {
                if members.is_empty() {
                    return Err(TriggerError::EmptyUnion);
                }
                for m in members {
                    m.resolve_in_place(now, zone)?;
                }
            }
        }
        Ok(())
    }

    /// Whether this trigger counts elapsed time (intervals, sub-day recurrences)
    /// rather than wall-clock time; such triggers are re-anchored when the wall
    /// clock is set back, see [`TriggerSpec::shift_elapsed`].
    pub fn is_elapsed(&self) -> bool {
        match self {
            TriggerSpec::Interval { .. } => true,
            TriggerSpec::Recurrence(r) => r.is_elapsed(),
            TriggerSpec::Union { members } => members.iter().any(TriggerSpec::is_elapsed),
            _ => false,
        }
    }

    /// Moves the anchor of elapsed-time triggers by `by` (used when the wall clock
    /// is set back, so "every minute" keeps firing every minute of real time).
    pub fn shift_elapsed(&mut self, by: SignedDuration) {
        match self {
            TriggerSpec::Interval { start: Some(s), .. } => {
                *s = s.saturating_add(by).unwrap_or(*s);
            }
            TriggerSpec::Recurrence(r) => r.shift_elapsed(by),
            TriggerSpec::Union { members } => {
                for m in members {
                    m.shift_elapsed(by);
                }
            }
            _ => {}
        }
    }
}

fn interval_next(start: i64, every: i64, end: i64, after: i64) -> i64 {
    let n = if after < start {
        start
    } else {
        let k = (after - start) / every + 1;
        match k.checked_mul(every).and_then(|d| start.checked_add(d)) {
            Some(n) => n,
            None => return NEVER,
        }
    };
    if n > end { NEVER } else { n }
}

impl Trigger for TriggerSpec {
    fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        match self {
            TriggerSpec::Once { at } => (*at > after).then_some(*at),
            TriggerSpec::OnceLocal { datetime, tz, dst } => {
                let tz = &tz.clone().unwrap_or(TimeZone::UTC);
                dst.resolve(tz, *datetime).filter(|t| *t > after)
            }
            TriggerSpec::NextTimeOfDay { .. } => {
                // Unresolved: only meaningful relative to "now"; resolve first.
                None
            }
            TriggerSpec::Interval { every, start, end } => {
                let start = (*start)?;
                let every = dur_ns(*every);
                if every <= 0 {
                    return None;
                }
                let end = end.map_or(NEVER, ns);
                let n = interval_next(ns(start), every, end, ns(after));
                (n != NEVER).then(|| ts(n))
            }
            TriggerSpec::Cron { expr, tz, dst } => {
                let tz = &tz.clone().unwrap_or(TimeZone::UTC);
                expr.with_dst_policy(dst.to_cron())
                    .next_timestamp_after(after, tz)
            }
            TriggerSpec::Recurrence(r) => r.next_after(after),
            TriggerSpec::Union { members } => {
                members.iter().filter_map(|m| m.next_after(after)).min()
            }
            TriggerSpec::Manual => None,
            TriggerSpec::Custom(t) => t.next_after(after),
        }
    }
}

/// The compact in-record form of a resolved trigger (24 bytes): an unbounded
/// interval grid, a one-shot or a manual trigger inline as nanoseconds;
/// everything else (cron, recurrences, unions, bounded intervals, custom)
/// boxed in `other`.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    /// The grid's first fire, or the one-shot's instant.
    start: i64,
    /// The grid's period (> 0); [`ONCE`]; or [`MANUAL`].
    every: i64,
    other: Option<Box<TriggerSpec>>,
}

const ONCE: i64 = 0;
const MANUAL: i64 = -1;

impl Compiled {
    pub(crate) fn new(spec: TriggerSpec) -> Compiled {
        let inline = |start, every| Compiled {
            start,
            every,
            other: None,
        };
        match spec {
            TriggerSpec::Interval {
                every,
                start: Some(start),
                end: None,
            } if dur_ns(every) > 0 => inline(ns(start), dur_ns(every)),
            TriggerSpec::Once { at } => inline(ns(at), ONCE),
            TriggerSpec::Manual => inline(NEVER, MANUAL),
            other => Compiled {
                start: NEVER,
                every: MANUAL,
                other: Some(Box::new(other)),
            },
        }
    }

    pub(crate) fn to_spec(&self) -> TriggerSpec {
        if let Some(s) = &self.other {
            return (**s).clone();
        }
        match self.every {
            ONCE => TriggerSpec::Once { at: ts(self.start) },
            MANUAL => TriggerSpec::Manual,
            every => TriggerSpec::Interval {
                every: SignedDuration::from_nanos(every),
                start: Some(ts(self.start)),
                end: None,
            },
        }
    }

    /// The instant of a one-shot.
    pub(crate) fn once_at(&self) -> Option<i64> {
        (self.other.is_none() && self.every == ONCE).then_some(self.start)
    }

    /// Whether the trigger never fires by itself.
    pub(crate) fn is_manual(&self) -> bool {
        self.other.is_none() && self.every == MANUAL
    }

    /// The next fire strictly after `after` (nanoseconds), [`NEVER`] for none.
    pub(crate) fn next_after(&self, after: i64) -> i64 {
        if let Some(s) = &self.other {
            return s.next_after(ts(after)).map_or(NEVER, ns);
        }
        match self.every {
            ONCE => {
                if self.start > after {
                    self.start
                } else {
                    NEVER
                }
            }
            MANUAL => NEVER,
            every => interval_next(self.start, every, NEVER, after),
        }
    }

    pub(crate) fn is_elapsed(&self) -> bool {
        match &self.other {
            Some(s) => s.is_elapsed(),
            None => self.every > 0,
        }
    }

    pub(crate) fn shift_elapsed(&mut self, by: i64) {
        match &mut self.other {
            Some(s) => s.shift_elapsed(SignedDuration::from_nanos(by)),
            None if self.every > 0 => self.start = self.start.saturating_add(by),
            None => {}
        }
    }
}
