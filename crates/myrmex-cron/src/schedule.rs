//! The parsed form of an expression: fixed-size bit sets, no heap.

/// Years 1970..=2199 as a bit set (bit `y - 1970`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct YearSet(pub(crate) [u64; 4]);

impl YearSet {
    /// The first year a year field can name.
    pub const MIN: i32 = 1970;
    /// The last year a year field can name (and the last year any expression fires).
    pub const MAX: i32 = 2199;

    /// Whether year `y` is in the set.
    #[must_use]
    pub fn contains(&self, y: i32) -> bool {
        if !(Self::MIN..=Self::MAX).contains(&y) {
            return false;
        }
        let i = (y - Self::MIN) as usize;
        self.0[i / 64] >> (i % 64) & 1 == 1
    }

    /// The years in the set, in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        (Self::MIN..=Self::MAX).filter(|&y| self.contains(y))
    }

    /// The smallest year in the set that is `>= y`.
    #[allow(dead_code, reason = "the engine lands next")]
    pub(crate) fn next_from(&self, y: i32) -> Option<i32> {
        let mut i = (y.max(Self::MIN) - Self::MIN) as usize;
        while i < 256 {
            let w = self.0[i / 64] >> (i % 64);
            if w != 0 {
                let y = Self::MIN + (i + w.trailing_zeros() as usize) as i32;
                return (y <= Self::MAX).then_some(y);
            }
            i = (i / 64 + 1) * 64;
        }
        None
    }

    /// The largest year in the set that is `<= y`.
    #[allow(dead_code, reason = "the engine lands next")]
    pub(crate) fn prev_from(&self, y: i32) -> Option<i32> {
        if y < Self::MIN {
            return None;
        }
        let mut i = (y.min(Self::MAX) - Self::MIN) as isize;
        while i >= 0 {
            let bit = (i % 64) as u32;
            let w = self.0[i as usize / 64] << (63 - bit);
            if w != 0 {
                return Some(Self::MIN + (i - w.leading_zeros() as isize) as i32);
            }
            i = (i / 64) * 64 - 1;
        }
        None
    }
}

/// How fire times that fall into a daylight-saving gap or fold are treated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DstPolicy {
    /// The dialect's default: in a gap a fixed-time job fires once at the first
    /// instant after the gap and a wildcard job skips the missing times; in a fold
    /// a fixed-time job fires once (earlier instant), a wildcard job at both.
    #[default]
    ShiftGapFixedTime,
    /// A time in a gap never fires; a time in a fold fires once, at the earlier instant.
    Skip,
}

/// A parsed cron expression. `Copy`, no heap allocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cron {
    /// Bit `s` for second `s` (0..60). A 5-field expression has only bit 0.
    pub(crate) seconds: u64,
    /// Bit `m` for minute `m` (0..60).
    pub(crate) minutes: u64,
    /// Bit `h` for hour `h` (0..24).
    pub(crate) hours: u32,
    /// Bit `d` for plain day-of-month values `d` (1..=31).
    pub(crate) days_of_month: u32,
    /// Bit `n` for `L-n` (`L` is bit 0), n in 0..=30.
    pub(crate) dom_last_offsets: u32,
    /// `LW`: the last weekday (Mon-Fri) of the month.
    pub(crate) dom_last_weekday: bool,
    /// Bit `n` for `nW`, n in 1..=31.
    pub(crate) dom_nearest_weekday: u32,
    /// Bit `m` for month `m` (1..=12).
    pub(crate) months: u16,
    /// Bit `d` for plain day-of-week `d` (0..7, 0 = Sunday; 7 is folded to 0).
    pub(crate) days_of_week: u8,
    /// Bit `d` for `dL` (last weekday `d` of the month).
    pub(crate) dow_last: u8,
    /// Bit `d * 5 + (k - 1)` for `d#k`, d in 0..7, k in 1..=5.
    pub(crate) dow_nth: u64,
    /// `None` when there is no year field or it is `*`.
    pub(crate) years: Option<YearSet>,
    /// The day-of-month text does not begin with `*` or `?`.
    pub(crate) dom_restricted: bool,
    /// The day-of-week text does not begin with `*` or `?`.
    pub(crate) dow_restricted: bool,
    /// The minute text begins with `*` (decides fixed-time vs wildcard).
    pub(crate) minute_star: bool,
    /// The hour text begins with `*` (decides fixed-time vs wildcard).
    pub(crate) hour_star: bool,
    /// 5, 6 or 7: how many fields the source had (for `Display`).
    pub(crate) field_count: u8,
    /// How DST gaps and folds are treated.
    pub(crate) dst: DstPolicy,
}

// ---------------------------------------------------------------------------
// API CONTRACT (stubs). The engine owner replaces these bodies; other crates
// (myrmex-core, myrmex-cli) compile against these exact signatures.
// ---------------------------------------------------------------------------

use jiff::{Timestamp, Zoned, tz::TimeZone};

impl Cron {
    /// Parses an expression in the myrmex dialect.
    ///
    /// # Errors
    /// A [`crate::ParseError`] naming the field, quoting the text and giving its column.
    pub fn parse(expr: &str) -> Result<Cron, crate::ParseError> {
        crate::parse::parse(expr)
    }

    /// Returns the same schedule with another DST policy.
    #[must_use]
    pub fn with_dst_policy(mut self, policy: DstPolicy) -> Cron {
        self.dst = policy;
        self
    }

    /// The first fire time strictly after `after`, in `after`'s zone.
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let _ = after;
        todo!("engine")
    }

    /// The last fire time strictly before `before`, in `before`'s zone.
    pub fn prev_before(&self, before: &Zoned) -> Option<Zoned> {
        let _ = before;
        todo!("engine")
    }

    /// The first fire instant strictly after `after`, evaluated in `tz`.
    pub fn next_timestamp_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let _ = (after, tz);
        todo!("engine")
    }

    /// The last fire instant strictly before `before`, evaluated in `tz`.
    pub fn prev_timestamp_before(&self, before: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let _ = (before, tz);
        todo!("engine")
    }

    /// Whether `t` (to the second, in its own zone) is a fire time.
    pub fn matches(&self, t: &Zoned) -> bool {
        let _ = t;
        todo!("engine")
    }
}

impl std::str::FromStr for Cron {
    type Err = crate::ParseError;

    /// Same as [`Cron::parse`].
    fn from_str(s: &str) -> Result<Cron, crate::ParseError> {
        Cron::parse(s)
    }
}
