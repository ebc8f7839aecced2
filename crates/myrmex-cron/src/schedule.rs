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
///
/// A job is *fixed-time* when neither its minute nor its hour field begins
/// with `*` ([`Cron::is_fixed_time`]); otherwise it is a *wildcard* job.
/// Whatever the policy, several matching times that land on one instant fire
/// once.
///
/// ```
/// use jiff::Zoned;
/// use myrmex_cron::{Cron, DstPolicy};
///
/// // 2026-11-01 in New York: 01:00-01:59 happens twice (EDT, then EST).
/// let after: Zoned = "2026-11-01T00:45:00-04:00[America/New_York]".parse()?;
/// let hourly: Cron = "30 * * * *".parse()?; // wildcard: both instants
/// let times: Vec<String> = hourly.iter_after(&after).take(3).map(|z| z.to_string()).collect();
/// assert_eq!(times, [
///     "2026-11-01T01:30:00-04:00[America/New_York]",
///     "2026-11-01T01:30:00-05:00[America/New_York]",
///     "2026-11-01T02:30:00-05:00[America/New_York]",
/// ]);
/// let skip = hourly.with_dst_policy(DstPolicy::Skip); // once, the earlier
/// let times: Vec<String> = skip.iter_after(&after).take(2).map(|z| z.to_string()).collect();
/// assert_eq!(times, [
///     "2026-11-01T01:30:00-04:00[America/New_York]",
///     "2026-11-01T02:30:00-05:00[America/New_York]",
/// ]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
///
/// Build it with [`Cron::parse`] or [`str::parse`]; ask it for fire times with
/// [`Cron::next_after`], [`Cron::prev_before`], the iterators, or
/// [`Cron::matches`]. Every value set is a bit set, so matching and searching
/// are bit operations (`trailing_zeros` to jump to the next allowed value).
/// Two expressions that differ only in spelling (`MON` vs `1`, `*/15` vs
/// `0-59/15`) may still compare unequal when their restricted/wildcard flags
/// differ, because those flags change the meaning (Vixie day rule, DST rule).
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

use jiff::{Timestamp, Zoned, tz::TimeZone};

use crate::next::{Cursor, ceil_secs, floor_secs, to_timestamp};

impl Cron {
    /// Parses an expression in the myrmex dialect (5, 6 or 7 fields, or a macro
    /// such as `@daily`). Parsing never allocates unless it fails.
    ///
    /// ```
    /// use myrmex_cron::{Cron, Field};
    ///
    /// let cron = Cron::parse("*/15 9-17 * * MON-FRI")?;
    /// assert!(!cron.is_fixed_time());
    ///
    /// let err = Cron::parse("60 * * * *").unwrap_err();
    /// assert_eq!(err.field(), Some(Field::Minute));
    /// assert_eq!(err.to_string(), r#"invalid minute "60": must be 0-59 (field 1, column 1)"#);
    /// # Ok::<(), myrmex_cron::ParseError>(())
    /// ```
    ///
    /// # Errors
    /// A [`crate::ParseError`] when the text is not a valid expression: a wrong
    /// number of fields, an unknown macro, a value out of range, a malformed
    /// item, a zero step, or an expression that never fires (`0 0 30 2 *`).
    /// The error names the field, quotes the text and gives its column and span.
    pub fn parse(expr: &str) -> Result<Cron, crate::ParseError> {
        crate::parse::parse(expr)
    }

    /// Returns the same schedule with another DST policy.
    #[must_use]
    pub fn with_dst_policy(mut self, policy: DstPolicy) -> Cron {
        self.dst = policy;
        self
    }

    /// The DST policy in force (the default is [`DstPolicy::ShiftGapFixedTime`]).
    #[must_use]
    pub fn dst_policy(&self) -> DstPolicy {
        self.dst
    }

    /// Whether this is a *fixed-time* job: neither its minute nor its hour
    /// field begins with `*`. Fixed-time jobs fire once in a DST fold and are
    /// moved to the end of a DST gap; the others (*wildcard* jobs) fire at both
    /// instants of a fold and skip the missing times of a gap.
    #[must_use]
    pub fn is_fixed_time(&self) -> bool {
        !self.minute_star && !self.hour_star
    }

    /// The first fire time strictly after `after`, in `after`'s zone, or `None`
    /// when there is none before the end of 2199.
    ///
    /// ```
    /// use jiff::Zoned;
    /// use myrmex_cron::Cron;
    ///
    /// let cron: Cron = "30 2 * * *".parse()?;
    /// // 02:30 does not exist on 2026-03-08 in New York: a fixed-time job
    /// // fires at the first instant after the gap.
    /// let after: Zoned = "2026-03-07T12:00:00-05:00[America/New_York]".parse()?;
    /// let next = cron.next_after(&after).unwrap();
    /// assert_eq!(next.to_string(), "2026-03-08T03:00:00-04:00[America/New_York]");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn next_after(&self, after: &Zoned) -> Option<Zoned> {
        let tz = after.time_zone();
        let t = self.next_timestamp_after(after.timestamp(), tz)?;
        Some(t.to_zoned(tz.clone()))
    }

    /// The last fire time strictly before `before`, in `before`'s zone, or
    /// `None` when there is none since the start of 1970.
    #[must_use]
    pub fn prev_before(&self, before: &Zoned) -> Option<Zoned> {
        let tz = before.time_zone();
        let t = self.prev_timestamp_before(before.timestamp(), tz)?;
        Some(t.to_zoned(tz.clone()))
    }

    /// The first fire instant strictly after `after`, evaluated in `tz`.
    #[must_use]
    pub fn next_timestamp_after(&self, after: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let t = floor_secs(after);
        if self.once_in_fold() {
            self.next_once(tz, t)
        } else {
            Cursor::new().next(self, tz, t)
        }
        .and_then(to_timestamp)
    }

    /// The last fire instant strictly before `before`, evaluated in `tz`.
    #[must_use]
    pub fn prev_timestamp_before(&self, before: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let u = ceil_secs(before) - 1;
        if self.once_in_fold() {
            self.prev_once(tz, u)
        } else {
            Cursor::new().prev(self, tz, u)
        }
        .and_then(to_timestamp)
    }

    /// Whether `t` (to the second, in its own zone) is a fire time: exactly one
    /// of the instants [`Cron::next_after`] would produce.
    #[must_use]
    pub fn matches(&self, t: &Zoned) -> bool {
        let s = floor_secs(t.timestamp());
        self.next_timestamp_after(
            Timestamp::from_second(s - 1).ok().unwrap_or(t.timestamp()),
            t.time_zone(),
        )
        .is_some_and(|n| n.as_second() == s)
    }

    /// The fire times strictly after `after`, in increasing order, in
    /// `after`'s zone.
    ///
    /// ```
    /// use jiff::Zoned;
    /// use myrmex_cron::Cron;
    ///
    /// let cron: Cron = "0 0 * * 5L".parse()?; // the last Friday of the month
    /// let after: Zoned = "2025-01-01T00:00:00+00:00[UTC]".parse()?;
    /// let days: Vec<String> = cron.iter_after(&after).take(3).map(|z| z.date().to_string()).collect();
    /// assert_eq!(days, ["2025-01-31", "2025-02-28", "2025-03-28"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn iter_after(&self, after: &Zoned) -> FireTimesAfter {
        FireTimesAfter {
            core: Core::new(*self, floor_secs(after.timestamp())),
            tz: after.time_zone().clone(),
        }
    }

    /// The fire times strictly before `before`, in decreasing order, in
    /// `before`'s zone.
    #[must_use]
    pub fn iter_before(&self, before: &Zoned) -> FireTimesBefore {
        FireTimesBefore {
            core: Core::new(*self, ceil_secs(before.timestamp()) - 1),
            tz: before.time_zone().clone(),
        }
    }

    /// The fire instants strictly after `after`, in increasing order, evaluated
    /// in `tz` (cheaper than [`Cron::iter_after`]: no [`Zoned`] per item).
    #[must_use]
    pub fn timestamps_after<'tz>(
        &self,
        after: Timestamp,
        tz: &'tz TimeZone,
    ) -> TimestampsAfter<'tz> {
        TimestampsAfter {
            core: Core::new(*self, floor_secs(after)),
            tz,
        }
    }

    /// The fire instants strictly before `before`, in decreasing order,
    /// evaluated in `tz`.
    #[must_use]
    pub fn timestamps_before<'tz>(
        &self,
        before: Timestamp,
        tz: &'tz TimeZone,
    ) -> TimestampsBefore<'tz> {
        TimestampsBefore {
            core: Core::new(*self, ceil_secs(before) - 1),
            tz,
        }
    }
}

/// The state shared by the iterators: the schedule, the search cursor and the
/// current position (`None` once exhausted).
#[derive(Clone, Copy, Debug)]
struct Core {
    cron: Cron,
    cursor: Cursor,
    pos: Option<i64>,
}

impl Core {
    fn new(cron: Cron, pos: i64) -> Core {
        Core {
            cron,
            cursor: Cursor::new(),
            pos: Some(pos),
        }
    }

    /// The next instant after `pos` (exclusive).
    #[inline]
    fn forward(&mut self, tz: &TimeZone) -> Option<Timestamp> {
        let next = self.cursor.next(&self.cron, tz, self.pos?);
        self.pos = next;
        next.and_then(to_timestamp)
    }

    /// The previous instant at or before `pos` (inclusive).
    #[inline]
    fn backward(&mut self, tz: &TimeZone) -> Option<Timestamp> {
        let prev = self.cursor.prev(&self.cron, tz, self.pos?);
        self.pos = prev.map(|p| p - 1);
        prev.and_then(to_timestamp)
    }
}

/// Fire instants after a starting point, in increasing order; see
/// [`Cron::timestamps_after`].
#[derive(Clone, Debug)]
pub struct TimestampsAfter<'tz> {
    core: Core,
    tz: &'tz TimeZone,
}

impl Iterator for TimestampsAfter<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        self.core.forward(self.tz)
    }
}

impl std::iter::FusedIterator for TimestampsAfter<'_> {}

/// Fire instants before a starting point, in decreasing order; see
/// [`Cron::timestamps_before`].
#[derive(Clone, Debug)]
pub struct TimestampsBefore<'tz> {
    core: Core,
    tz: &'tz TimeZone,
}

impl Iterator for TimestampsBefore<'_> {
    type Item = Timestamp;

    fn next(&mut self) -> Option<Timestamp> {
        self.core.backward(self.tz)
    }
}

impl std::iter::FusedIterator for TimestampsBefore<'_> {}

/// Fire times after a starting point, in increasing order, as [`Zoned`] values
/// in the starting point's zone; see [`Cron::iter_after`].
#[derive(Clone, Debug)]
pub struct FireTimesAfter {
    core: Core,
    tz: TimeZone,
}

impl Iterator for FireTimesAfter {
    type Item = Zoned;

    fn next(&mut self) -> Option<Zoned> {
        let t = self.core.forward(&self.tz)?;
        Some(t.to_zoned(self.tz.clone()))
    }
}

impl std::iter::FusedIterator for FireTimesAfter {}

/// Fire times before a starting point, in decreasing order, as [`Zoned`]
/// values in the starting point's zone; see [`Cron::iter_before`].
#[derive(Clone, Debug)]
pub struct FireTimesBefore {
    core: Core,
    tz: TimeZone,
}

impl Iterator for FireTimesBefore {
    type Item = Zoned;

    fn next(&mut self) -> Option<Zoned> {
        let t = self.core.backward(&self.tz)?;
        Some(t.to_zoned(self.tz.clone()))
    }
}

impl std::iter::FusedIterator for FireTimesBefore {}

impl std::str::FromStr for Cron {
    type Err = crate::ParseError;

    /// Same as [`Cron::parse`].
    fn from_str(s: &str) -> Result<Cron, crate::ParseError> {
        Cron::parse(s)
    }
}
