//! A public, structured view of a parsed expression: the values of each field.
//!
//! This is what the seed project's `parse_cron` returned ("fields as a structure");
//! in myrmex it is [`Cron::fields`].

use crate::Cron;

/// The values of one field as a small `Copy` bit set.
///
/// Values are plain numbers in the field's unit (seconds, hours, years, ...).
/// Day-of-week values are 0..=6 with 0 = Sunday (a `7` in the source is Sunday).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueSet {
    /// Bit `v - base` for value `v`.
    bits: [u64; 4],
    base: u16,
    min: u16,
    max: u16,
}

impl ValueSet {
    /// An empty set over the domain `min..=max` (at most 256 values).
    pub(crate) fn empty(min: u16, max: u16) -> ValueSet {
        debug_assert!(max >= min && max - min < 256);
        ValueSet {
            bits: [0; 4],
            base: min,
            min,
            max,
        }
    }

    /// A set over `min..=max` from a bit mask where bit `v` stands for value `v`.
    pub(crate) fn from_mask(mask: u64, min: u16, max: u16) -> ValueSet {
        let mut set = ValueSet::empty(min, max);
        for v in min..=max {
            if v < 64 && mask & (1u64 << v) != 0 {
                set.insert(v);
            }
        }
        set
    }

    /// A set over `min..=max` from raw words where bit `i` stands for value `min + i`.
    pub(crate) fn from_words(words: [u64; 4], min: u16, max: u16) -> ValueSet {
        let mut set = ValueSet::empty(min, max);
        for v in min..=max {
            let i = usize::from(v - min);
            if words[i / 64] & (1u64 << (i % 64)) != 0 {
                set.insert(v);
            }
        }
        set
    }

    pub(crate) fn insert(&mut self, v: u16) {
        debug_assert!(v >= self.min && v <= self.max);
        let i = usize::from(v - self.base);
        self.bits[i / 64] |= 1u64 << (i % 64);
    }

    /// The smallest value the field allows (e.g. 1 for day-of-month, 1970 for year).
    pub fn domain_min(&self) -> u16 {
        self.min
    }

    /// The largest value the field allows (e.g. 59 for minute, 6 for day-of-week).
    pub fn domain_max(&self) -> u16 {
        self.max
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u16) -> bool {
        if v < self.min || v > self.max {
            return false;
        }
        let i = usize::from(v - self.base);
        self.bits[i / 64] & (1u64 << (i % 64)) != 0
    }

    /// How many values the set holds.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set holds no value.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&w| w == 0)
    }

    /// Whether the set holds every value of the field's domain.
    pub fn is_full(&self) -> bool {
        self.len() == usize::from(self.max - self.min) + 1
    }

    /// The smallest value in the set.
    pub fn first(&self) -> Option<u16> {
        self.iter().next()
    }

    /// The largest value in the set.
    pub fn last(&self) -> Option<u16> {
        self.iter().next_back()
    }

    /// The values in increasing order.
    pub fn iter(&self) -> ValueSetIter {
        ValueSetIter {
            set: *self,
            front: self.min,
            back: self.max,
            done: false,
        }
    }
}

impl std::fmt::Debug for ValueSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl IntoIterator for &ValueSet {
    type Item = u16;
    type IntoIter = ValueSetIter;
    fn into_iter(self) -> ValueSetIter {
        self.iter()
    }
}

/// Iterator over the values of a [`ValueSet`], in increasing order.
#[derive(Clone, Debug)]
pub struct ValueSetIter {
    set: ValueSet,
    front: u16,
    back: u16,
    done: bool,
}

impl Iterator for ValueSetIter {
    type Item = u16;
    fn next(&mut self) -> Option<u16> {
        while !self.done {
            let v = self.front;
            if self.front == self.back {
                self.done = true;
            } else {
                self.front += 1;
            }
            if self.set.contains(v) {
                return Some(v);
            }
        }
        None
    }
}

impl DoubleEndedIterator for ValueSetIter {
    fn next_back(&mut self) -> Option<u16> {
        while !self.done {
            let v = self.back;
            if self.front == self.back {
                self.done = true;
            } else {
                self.back -= 1;
            }
            if self.set.contains(v) {
                return Some(v);
            }
        }
        None
    }
}

/// The `d#k` items of a day-of-week field: "the k-th weekday d of the month".
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct NthWeekdays(pub(crate) u64);

impl NthWeekdays {
    /// Whether `d#k` is present (d in 0..=6, 0 = Sunday; k in 1..=5).
    pub fn contains(&self, weekday: u8, k: u8) -> bool {
        weekday < 7 && (1..=5).contains(&k) && self.0 & (1u64 << (weekday * 5 + k - 1)) != 0
    }

    /// Whether there is no `d#k` item.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The `(weekday, k)` pairs, by weekday then k.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u8)> + '_ {
        (0..7u8).flat_map(move |d| {
            (1..=5u8)
                .filter(move |&k| self.contains(d, k))
                .map(move |k| (d, k))
        })
    }
}

impl std::fmt::Debug for NthWeekdays {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Every field of a parsed expression as plain value sets (see [`Cron::fields`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct CronFields {
    /// How many fields the source had: 5, 6 or 7 (macros count as 5).
    pub field_count: u8,
    /// Seconds, 0..=59 (just 0 for a 5-field expression).
    pub seconds: ValueSet,
    /// Minutes, 0..=59.
    pub minutes: ValueSet,
    /// Hours, 0..=23.
    pub hours: ValueSet,
    /// Plain day-of-month values, 1..=31.
    pub days_of_month: ValueSet,
    /// `L-n` items as `n` (0 stands for `L`, the last day of the month), 0..=30.
    pub last_day_offsets: ValueSet,
    /// `LW`: the last weekday (Mon-Fri) of the month.
    pub last_weekday: bool,
    /// `nW` items as `n`: the weekday nearest day `n`, 1..=31.
    pub nearest_weekdays: ValueSet,
    /// Months, 1..=12.
    pub months: ValueSet,
    /// Plain day-of-week values, 0..=6 (0 = Sunday).
    pub days_of_week: ValueSet,
    /// `dL` items as `d`: the last weekday `d` of the month, 0..=6.
    pub last_days_of_week: ValueSet,
    /// `d#k` items.
    pub nth_days_of_week: NthWeekdays,
    /// Years, 1970..=2199; `None` when there is no year field or it is `*`.
    pub years: Option<ValueSet>,
    /// The day-of-month text does not begin with `*` or `?`.
    pub day_of_month_restricted: bool,
    /// The day-of-week text does not begin with `*` or `?`.
    pub day_of_week_restricted: bool,
    /// The minute text begins with `*`.
    pub minute_star: bool,
    /// The hour text begins with `*`.
    pub hour_star: bool,
}

impl CronFields {
    /// Whether a day that satisfies either day field fires (both fields restricted,
    /// the Vixie OR rule) rather than only days that satisfy both.
    pub fn days_use_or_rule(&self) -> bool {
        self.day_of_month_restricted && self.day_of_week_restricted
    }

    /// A fixed-time job (neither minute nor hour begins with `*`); see the dialect's
    /// daylight-saving rules.
    pub fn is_fixed_time(&self) -> bool {
        !self.minute_star && !self.hour_star
    }
}

impl Cron {
    /// The values of every field as a structure (the seed's `parse_cron`).
    ///
    /// ```
    /// use myrmex_cron::Cron;
    ///
    /// let cron: Cron = "*/15 9-17 * * MON-FRI".parse()?;
    /// let f = cron.fields();
    /// assert_eq!(f.minutes.iter().collect::<Vec<_>>(), [0, 15, 30, 45]);
    /// assert_eq!(f.hours.first(), Some(9));
    /// assert_eq!(f.days_of_week.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
    /// assert!(f.days_of_month.is_full());
    /// # Ok::<(), myrmex_cron::ParseError>(())
    /// ```
    pub fn fields(&self) -> CronFields {
        CronFields {
            field_count: self.field_count,
            seconds: ValueSet::from_mask(self.seconds, 0, 59),
            minutes: ValueSet::from_mask(self.minutes, 0, 59),
            hours: ValueSet::from_mask(u64::from(self.hours), 0, 23),
            days_of_month: ValueSet::from_mask(u64::from(self.days_of_month), 1, 31),
            last_day_offsets: ValueSet::from_mask(u64::from(self.dom_last_offsets), 0, 30),
            last_weekday: self.dom_last_weekday,
            nearest_weekdays: ValueSet::from_mask(u64::from(self.dom_nearest_weekday), 1, 31),
            months: ValueSet::from_mask(u64::from(self.months), 1, 12),
            days_of_week: ValueSet::from_mask(u64::from(self.days_of_week), 0, 6),
            last_days_of_week: ValueSet::from_mask(u64::from(self.dow_last), 0, 6),
            nth_days_of_week: NthWeekdays(self.dow_nth),
            years: self.years.map(|y| ValueSet::from_words(y.0, 1970, 2199)),
            day_of_month_restricted: self.dom_restricted,
            day_of_week_restricted: self.dow_restricted,
            minute_star: self.minute_star,
            hour_star: self.hour_star,
        }
    }
}
