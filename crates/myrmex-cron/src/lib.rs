//! The myrmex cron language: parse an expression, ask when it fires next (or
//! fired last) in any time zone, check a time against it, describe it in English.
//!
//! The dialect is specified in `shared/docs/cron-dialect.md`: 5, 6 or 7 fields
//! (optional seconds and years), names, `?`, lists, ranges that wrap when
//! reversed, steps, `L`, `L-n`, `LW`, `nW`, `nL`, `n#k`, macros, the Vixie
//! day-of-month/day-of-week OR rule, and daylight-saving rules for gaps and
//! folds. This crate is pure: it never reads a clock, a file or the
//! environment; every question takes the time explicitly.
//!
//! # Example
//!
//! ```
//! use jiff::Zoned;
//! use myrmex_cron::{Cron, DstPolicy};
//!
//! let cron: Cron = "30 2 * * *".parse()?;
//! let after: Zoned = "2026-03-07T12:00:00-05:00[America/New_York]".parse()?;
//!
//! // 02:30 does not exist on 2026-03-08 in New York (clocks jump from 02:00
//! // to 03:00): a fixed-time job fires at the first instant after the gap.
//! let times: Vec<String> = cron.iter_after(&after).take(2).map(|z| z.to_string()).collect();
//! assert_eq!(times, [
//!     "2026-03-08T03:00:00-04:00[America/New_York]",
//!     "2026-03-09T02:30:00-04:00[America/New_York]",
//! ]);
//!
//! // Under the "skip" policy the time in the gap does not fire at all.
//! let skip = cron.with_dst_policy(DstPolicy::Skip);
//! assert_eq!(skip.next_after(&after).unwrap().to_string(),
//!            "2026-03-09T02:30:00-04:00[America/New_York]");
//!
//! // Errors name the field, quote the text and say where it is.
//! let err = Cron::parse("0 25 * * *").unwrap_err();
//! assert_eq!(err.to_string(), r#"invalid hour "25": must be 0-23 (field 2, column 3)"#);
//! assert_eq!(err.span(), 2..4);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the types relate
//!
//! * [`Cron`] is a parsed expression: fixed-size bit sets, `Copy`, no heap.
//!   [`Cron::parse`] (or [`str::parse`]) builds it, or fails with a
//!   [`ParseError`] carrying a [`ParseErrorKind`], the [`Field`] at fault and
//!   the byte span of the offending text. `Display` prints a canonical form.
//! * [`Cron::next_after`] / [`Cron::prev_before`] take and return
//!   [`jiff::Zoned`] (the result is in the input's zone);
//!   [`Cron::next_timestamp_after`] / [`Cron::prev_timestamp_before`] take a
//!   [`jiff::Timestamp`] and a [`jiff::tz::TimeZone`] and avoid building a
//!   `Zoned`. [`Cron::matches`] tells whether a time is a fire time.
//! * Iterators: [`FireTimesAfter`] / [`FireTimesBefore`] (from
//!   [`Cron::iter_after`] / [`Cron::iter_before`]) yield `Zoned`;
//!   [`TimestampsAfter`] / [`TimestampsBefore`] (from [`Cron::timestamps_after`]
//!   / [`Cron::timestamps_before`]) yield `Timestamp` and borrow the zone.
//!   They keep the current zone segment between items, so walking many
//!   occurrences costs little more than the calendar arithmetic.
//! * [`DstPolicy`] chooses what happens to times in a DST gap or fold;
//!   [`YearSet`] is the optional year field.
//! * `describe()`, `fields()` ([`CronFields`]) and `warnings()` ([`Warning`])
//!   explain an expression in English and flag surprising ones.
//!
//! Fire times exist only between 1970-01-01 and 2199-12-31 (civil time);
//! searches beyond return `None`. Expressions that can never fire in that
//! range (`0 0 30 2 *`) are rejected by the parser.

mod calendar;
mod describe;
mod display;
mod error;
mod next;
mod parse;
mod schedule;

pub use describe::{
    CronFields, DstChange, DstOutcome, NthWeekdays, ValueSet, ValueSetIter, Warning,
};
pub use error::{Field, ParseError, ParseErrorKind};
pub use schedule::{
    Cron, DstPolicy, FireTimesAfter, FireTimesBefore, TimestampsAfter, TimestampsBefore, YearSet,
};
