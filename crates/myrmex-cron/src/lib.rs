//! The myrmex cron language (see `shared/docs/cron-dialect.md`): parse, match,
//! next/previous fire times and English descriptions. Pure: no clock, no I/O.
//!
//! SKELETON: the `Cron` representation below is the contract shared by the
//! parser/engine (`parse.rs`, `next.rs`) and the describer/printer
//! (`describe.rs`, `display.rs`). Fill in, do not reshape without checking both.

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
