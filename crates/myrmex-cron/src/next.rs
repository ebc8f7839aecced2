//! The engine: next and previous fire instants in a time zone.
//!
//! # How the search works
//!
//! Civil times are plain integers ("civil seconds", see `calendar.rs`). The
//! next matching civil time is found field by field (year, month, day, hour,
//! minute, second) with `trailing_zeros`/`leading_zeros` on the bit sets: no
//! minute-by-minute scan. What remains is mapping civil times to instants
//! under the dialect's DST rules, and two cases make that cheap:
//!
//! * **Jobs that fire once in a fold** (fixed-time jobs, and every job under
//!   [`DstPolicy::Skip`]). Each matching civil time `c` fires at most once, at
//!   the first instant whose local time reaches `c`: the only instant, the
//!   earlier one of a fold, or the end of a gap (when the policy shifts gap
//!   times). That instant grows with `c`, so the next fire time after `t` is
//!   given by the first matching civil time after `t`'s local time whose
//!   instant is after `t` ([`Cron::next_once`]): one offset look-up for `t` and
//!   one ambiguity look-up per candidate, nothing else.
//! * **Wildcard jobs under the default policy.** An instant fires exactly when
//!   its local time matches: gap times never exist, fold times exist twice.
//!   The time line is cut into *segments* by the zone's transitions; inside one
//!   the offset is constant and civil time maps to instants by subtraction. The
//!   search finds the first match in the current segment's civil range, else
//!   moves to the next segment (whose civil range may restart inside a fold).
//!
//! Several civil times landing on one instant yield that instant once, since
//! searches return instants and always move strictly past them.
//!
//! Iterators keep a [`Cursor`]: the current segment and the last civil
//! search, so consecutive occurrences inside one segment need no look-up in
//! the zone at all. When the next match is days beyond the current segment,
//! the search re-synchronises two days before it instead of walking every
//! transition in between: nothing can fire in the skipped span because no
//! civil time in it matches, and offsets differ by at most 26 hours.

use jiff::Timestamp;
use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};

use crate::calendar::{Civil, DAY};
use crate::schedule::{Cron, DstPolicy};

/// First civil second searched: 1970-01-01T00:00:00.
const CIVIL_MIN: i64 = 0;
/// Last civil second searched: 2199-12-31T23:59:59.
const CIVIL_MAX: i64 = 7_289_567_999;
/// Instants further than this outside the civil bounds cannot reach a fire time.
const MARGIN: i64 = 2 * DAY;
/// Iterators of fixed-time jobs cache the zone segment when occurrences are
/// closer together than this.
const CACHE_SEGMENT_BELOW: i64 = 45 * DAY;
/// When a match lies further than this past the segment, re-synchronise.
const RESYNC: i64 = 4 * DAY;

/// A span of instants `[start, end)` with one UTC offset.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Seg {
    /// First instant (Unix seconds), `i64::MIN` when there is no earlier transition.
    start: i64,
    /// First instant after the segment, `i64::MAX` when there is no later transition.
    end: i64,
    /// Offset (seconds) in the segment.
    off: i64,
    /// Offset after `end` (equal to `off` when there is none).
    next_off: i64,
    /// Offset before `start`, when already known.
    prev_off: Option<i64>,
}

fn ts(secs: i64) -> Timestamp {
    // The callers keep `secs` within a few days of 1970..=2199.
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl Seg {
    /// The segment containing instant `t` (whole seconds).
    pub(crate) fn at(tz: &TimeZone, t: i64) -> Seg {
        let (start, off) = match tz.preceding(ts(t + 1)).next() {
            Some(tr) => (tr.timestamp().as_second(), i64::from(tr.offset().seconds())),
            None => (i64::MIN, i64::from(tz.to_offset(ts(t)).seconds())),
        };
        let (end, next_off) = match tz.following(ts(t)).next() {
            Some(tr) => (tr.timestamp().as_second(), i64::from(tr.offset().seconds())),
            None => (i64::MAX, off),
        };
        Seg {
            start,
            end,
            off,
            next_off,
            prev_off: None,
        }
    }

    /// A segment starting at `t` (not at a transition): enough for a forward
    /// search that never looks before `t`. One look-up fewer than [`Seg::at`].
    fn forward_at(tz: &TimeZone, t: i64) -> Seg {
        let off = i64::from(tz.to_offset(ts(t)).seconds());
        let (end, next_off) = match tz.following(ts(t)).next() {
            Some(tr) => (tr.timestamp().as_second(), i64::from(tr.offset().seconds())),
            None => (i64::MAX, off),
        };
        Seg {
            start: t,
            end,
            off,
            next_off,
            prev_off: None,
        }
    }

    /// A segment ending just after `u` (not at a transition): enough for a
    /// backward search that never looks after `u`.
    fn backward_at(tz: &TimeZone, u: i64) -> Seg {
        let (start, off) = match tz.preceding(ts(u + 1)).next() {
            Some(tr) => (tr.timestamp().as_second(), i64::from(tr.offset().seconds())),
            None => (i64::MIN, i64::from(tz.to_offset(ts(u)).seconds())),
        };
        Seg {
            start,
            end: u + 1,
            off,
            next_off: off,
            prev_off: None,
        }
    }

    /// The offset before `start`, if there is an earlier segment.
    fn prev_off(&mut self, tz: &TimeZone) -> Option<i64> {
        if self.start == i64::MIN {
            return None;
        }
        if self.prev_off.is_none() {
            self.prev_off = Some(i64::from(tz.to_offset(ts(self.start - 1)).seconds()));
        }
        self.prev_off
    }

    /// The segment after this one (`end` must be finite).
    fn following(&self, tz: &TimeZone) -> Seg {
        let (end, next_off) = match tz.following(ts(self.end)).next() {
            Some(tr) => (tr.timestamp().as_second(), i64::from(tr.offset().seconds())),
            None => (i64::MAX, self.next_off),
        };
        Seg {
            start: self.end,
            end,
            off: self.next_off,
            next_off,
            prev_off: Some(self.off),
        }
    }

    /// The segment before this one (`start` must be finite).
    fn preceding(&mut self, tz: &TimeZone) -> Seg {
        let prev_off = self.prev_off(tz).unwrap_or(self.off);
        let start = match tz.preceding(ts(self.start)).next() {
            Some(tr) => tr.timestamp().as_second(),
            None => i64::MIN,
        };
        Seg {
            start,
            end: self.start,
            off: prev_off,
            next_off: self.off,
            prev_off: None,
        }
    }
}

/// The matching days of the last month looked at: consecutive searches of an
/// iterator usually start in the month where the previous one ended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MonthMask {
    year: i32,
    month: u32,
    mask: u64,
}

impl MonthMask {
    pub(crate) const fn new() -> MonthMask {
        MonthMask {
            year: 0,
            month: 0,
            mask: 0,
        }
    }

    #[inline]
    fn get(&mut self, cron: &Cron, year: i32, month: u32) -> u64 {
        if self.year != year || self.month != month {
            *self = MonthMask {
                year,
                month,
                mask: cron.month_mask(year, month),
            };
        }
        self.mask
    }
}

/// Remembers the last civil search so that a repeated query inside the known
/// match-free span costs nothing.
#[derive(Clone, Copy, Debug)]
struct Memo {
    /// Queries in `[from, to]` (next) or `[to, from]` (prev) answer `result`.
    from: i64,
    to: i64,
    result: Option<i64>,
}

/// Bits of `bits` at positions `<= v` (`v` may be negative).
#[inline]
fn bits_le(bits: u64, v: i64) -> u64 {
    if v < 0 {
        0
    } else if v >= 63 {
        bits
    } else {
        bits & ((2u64 << v) - 1)
    }
}

impl Cron {
    /// Civil times inside a gap fire at the end of the gap.
    #[inline]
    pub(crate) fn shifts_gap(&self) -> bool {
        self.dst == DstPolicy::ShiftGapFixedTime && self.is_fixed_time()
    }

    /// Civil times inside a fold fire only at their first instant.
    #[inline]
    pub(crate) fn once_in_fold(&self) -> bool {
        self.dst == DstPolicy::Skip || self.is_fixed_time()
    }

    /// The first matching civil second `>= lo` (years 1970..=2199).
    #[inline]
    pub(crate) fn civil_next(&self, lo: i64, masks: &mut MonthMask) -> Option<i64> {
        self.civil_next_parts(lo, masks).map(Civil::to_secs)
    }

    /// The last matching civil second `<= hi` (years 1970..=2199).
    #[inline]
    pub(crate) fn civil_prev(&self, hi: i64, masks: &mut MonthMask) -> Option<i64> {
        self.civil_prev_parts(hi, masks).map(Civil::to_secs)
    }

    /// [`Cron::civil_next`], split into parts.
    pub(crate) fn civil_next_parts(&self, lo: i64, masks: &mut MonthMask) -> Option<Civil> {
        if lo > CIVIL_MAX {
            return None;
        }
        let c = Civil::from_secs(lo.max(CIVIL_MIN));
        let (mut y, mut mo, mut d) = (c.year, c.month, c.day);
        let (mut h, mut mi, mut s) = (c.hour, c.minute, c.second);
        loop {
            if y > 2199 {
                return None;
            }
            if let Some(years) = self.years
                && !years.contains(y)
            {
                y = years.next_from(y)?;
                (mo, d, h, mi, s) = (1, 1, 0, 0, 0);
            }
            let months = u32::from(self.months) >> mo;
            if months == 0 {
                y += 1;
                (mo, d, h, mi, s) = (1, 1, 0, 0, 0);
                continue;
            }
            let m = mo + months.trailing_zeros();
            if m != mo {
                (mo, d, h, mi, s) = (m, 1, 0, 0, 0);
            }
            let days = masks.get(self, y, mo) >> d;
            if days == 0 {
                mo += 1;
                (d, h, mi, s) = (1, 0, 0, 0);
                continue;
            }
            let nd = d + days.trailing_zeros();
            if nd != d {
                (d, h, mi, s) = (nd, 0, 0, 0);
            }
            let hours = u64::from(self.hours) >> h;
            if hours == 0 {
                d += 1;
                (h, mi, s) = (0, 0, 0);
                continue;
            }
            let nh = h + hours.trailing_zeros();
            if nh != h {
                (h, mi, s) = (nh, 0, 0);
            }
            let minutes = self.minutes >> mi;
            if minutes == 0 {
                h += 1;
                (mi, s) = (0, 0);
                continue;
            }
            let nmi = mi + minutes.trailing_zeros();
            if nmi != mi {
                (mi, s) = (nmi, 0);
            }
            let seconds = self.seconds >> s;
            if seconds == 0 {
                mi += 1;
                s = 0;
                continue;
            }
            s += seconds.trailing_zeros();
            return Some(Civil {
                year: y,
                month: mo,
                day: d,
                hour: h,
                minute: mi,
                second: s,
            });
        }
    }

    /// [`Cron::civil_prev`], split into parts.
    pub(crate) fn civil_prev_parts(&self, hi: i64, masks: &mut MonthMask) -> Option<Civil> {
        if hi < CIVIL_MIN {
            return None;
        }
        let c = Civil::from_secs(hi.min(CIVIL_MAX));
        let (mut y, mut mo, mut d) = (c.year, i64::from(c.month), i64::from(c.day));
        let (mut h, mut mi, mut s) = (i64::from(c.hour), i64::from(c.minute), i64::from(c.second));
        loop {
            if y < 1970 {
                return None;
            }
            if let Some(years) = self.years
                && !years.contains(y)
            {
                y = years.prev_from(y)?;
                (mo, d, h, mi, s) = (12, 31, 23, 59, 59);
            }
            let months = bits_le(u64::from(self.months), mo);
            if months == 0 {
                y -= 1;
                (mo, d, h, mi, s) = (12, 31, 23, 59, 59);
                continue;
            }
            let m = 63 - i64::from(months.leading_zeros());
            if m != mo {
                (mo, d, h, mi, s) = (m, 31, 23, 59, 59);
            }
            let days = bits_le(masks.get(self, y, mo as u32), d);
            if days == 0 {
                mo -= 1;
                (d, h, mi, s) = (31, 23, 59, 59);
                continue;
            }
            let nd = 63 - i64::from(days.leading_zeros());
            if nd != d {
                (d, h, mi, s) = (nd, 23, 59, 59);
            }
            let hours = bits_le(u64::from(self.hours), h);
            if hours == 0 {
                d -= 1;
                (h, mi, s) = (23, 59, 59);
                continue;
            }
            let nh = 63 - i64::from(hours.leading_zeros());
            if nh != h {
                (h, mi, s) = (nh, 59, 59);
            }
            let minutes = bits_le(self.minutes, mi);
            if minutes == 0 {
                h -= 1;
                (mi, s) = (59, 59);
                continue;
            }
            let nmi = 63 - i64::from(minutes.leading_zeros());
            if nmi != mi {
                (mi, s) = (nmi, 59);
            }
            let seconds = bits_le(self.seconds, s);
            if seconds == 0 {
                mi -= 1;
                s = 59;
                continue;
            }
            s = 63 - i64::from(seconds.leading_zeros());
            return Some(Civil {
                year: y,
                month: mo as u32,
                day: d as u32,
                hour: h as u32,
                minute: mi as u32,
                second: s as u32,
            });
        }
    }
}

/// A search position: the segment and the last civil searches, reusable by
/// iterators so that consecutive occurrences need no transition look-up.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cursor {
    seg: Option<Seg>,
    masks: MonthMask,
    memo_next: Option<Memo>,
    memo_prev: Option<Memo>,
}

impl Cursor {
    pub(crate) const fn new() -> Cursor {
        Cursor {
            seg: None,
            masks: MonthMask::new(),
            memo_next: None,
            memo_prev: None,
        }
    }

    fn civil_next(&mut self, cron: &Cron, lo: i64) -> Option<i64> {
        if let Some(m) = self.memo_next
            && m.from <= lo
            && lo <= m.to
        {
            return m.result;
        }
        let result = cron.civil_next(lo, &mut self.masks);
        self.memo_next = Some(Memo {
            from: lo,
            to: result.unwrap_or(i64::MAX),
            result,
        });
        result
    }

    fn civil_prev(&mut self, cron: &Cron, hi: i64) -> Option<i64> {
        if let Some(m) = self.memo_prev
            && m.from >= hi
            && hi >= m.to
        {
            return m.result;
        }
        let result = cron.civil_prev(hi, &mut self.masks);
        self.memo_prev = Some(Memo {
            from: hi,
            to: result.unwrap_or(i64::MIN),
            result,
        });
        result
    }

    /// The first fire instant (Unix seconds) strictly after instant `t`.
    ///
    /// Jobs that fire once in a fold go through [`Cursor::next_once`]. For the
    /// others (wildcard jobs under the default policy) an instant fires exactly
    /// when its local time matches, so the search walks the zone's segments:
    /// the first match in the current segment's civil range, else the next
    /// segment (which may begin with a fold repeating earlier civil times).
    pub(crate) fn next(&mut self, cron: &Cron, tz: &TimeZone, t: i64) -> Option<i64> {
        if cron.once_in_fold() {
            return self.next_once(cron, tz, t);
        }
        if t > CIVIL_MAX + MARGIN {
            return None;
        }
        let t = t.max(CIVIL_MIN - MARGIN);
        let mut seg = match self.seg {
            Some(s) if s.start <= t && t < s.end => s,
            _ => Seg::forward_at(tz, t),
        };
        let mut lo = t + 1 + seg.off;
        // Until the search has stepped into a segment from its start, civil
        // times before `lo` may still fire in the second half of a fold at the
        // end of this segment, so it must step rather than jump.
        let mut from_start = seg.next_off >= seg.off;
        let result = loop {
            let Some(c) = self.civil_next(cron, lo) else {
                break None;
            };
            let hi = seg.end.saturating_add(seg.off);
            if c < hi {
                break Some(c - seg.off);
            }
            if from_start && c - hi > RESYNC {
                // Nothing matches between here and `c`: jump close to it.
                let t2 = c - seg.off - MARGIN;
                seg = Seg::forward_at(tz, t2);
                lo = t2 + 1 + seg.off;
                continue;
            }
            seg = seg.following(tz);
            lo = seg.start + seg.off;
            from_start = true;
        };
        self.seg = Some(seg);
        result
    }

    /// [`Cursor::next`] for a job that fires once in a fold: inside the cached
    /// segment (and past any fold at its start) the next match needs no
    /// look-up; otherwise the monotonic search of [`Cron::next_once`] answers,
    /// and the segment around the answer is cached when the schedule is
    /// frequent enough for it to pay off.
    fn next_once(&mut self, cron: &Cron, tz: &TimeZone, t: i64) -> Option<i64> {
        if let Some(mut seg) = self.seg
            && seg.start <= t
            && t < seg.end
        {
            let lo = t + 1 + seg.off;
            let clear_of_fold = match seg.prev_off(tz) {
                Some(prev) => prev <= seg.off || lo >= seg.start + prev,
                None => true,
            };
            self.seg = Some(seg);
            if clear_of_fold && let Some(c) = self.civil_next(cron, lo) {
                if c < seg.end.saturating_add(seg.off) {
                    return Some(c - seg.off);
                }
                // Past this segment: when `c` lies in the next one, clear of
                // the gap or fold at its start, it maps by that offset alone.
                if seg.end != i64::MAX {
                    let next = seg.following(tz);
                    if c >= next.start + next.off.max(seg.off)
                        && c < next.end.saturating_add(next.off)
                    {
                        self.seg = Some(next);
                        return Some(c - next.off);
                    }
                }
            }
        }
        let r = cron.next_once(tz, t)?;
        // Segments last months in practice: caching one (two look-ups) pays
        // off when several occurrences are likely to fall inside it.
        self.seg = (r - t < CACHE_SEGMENT_BELOW).then(|| Seg::at(tz, r));
        Some(r)
    }

    /// The last fire instant (Unix seconds) at or before instant `u`.
    pub(crate) fn prev(&mut self, cron: &Cron, tz: &TimeZone, u: i64) -> Option<i64> {
        if u < CIVIL_MIN - MARGIN {
            return None;
        }
        let u = u.min(CIVIL_MAX + MARGIN);
        let mut seg = match self.seg {
            Some(s) if s.start <= u && u < s.end => s,
            _ => Seg::backward_at(tz, u),
        };
        let mut hi = u + seg.off;
        // Until the search has stepped into a segment from its end, civil times
        // after `hi` may still fire in the first half of a fold at the start of
        // this segment, so it must step rather than jump.
        let mut from_end = false;
        let result = loop {
            let mut lo = seg.start.saturating_add(seg.off);
            let mut fold_start = false;
            if seg.start != i64::MIN
                && hi < seg.start.saturating_add(RESYNC)
                && let Some(prev) = seg.prev_off(tz)
                && prev > seg.off
            {
                fold_start = true;
                if cron.once_in_fold() {
                    lo = lo.max(seg.start + prev);
                }
            }
            let found = self.civil_prev(cron, hi);
            if let Some(c) = found
                && c >= lo
            {
                break Some(c - seg.off);
            }
            if seg.start == i64::MIN {
                break None;
            }
            if (from_end || !fold_start)
                && let Some(c) = found
                && lo - c > RESYNC
            {
                // Nothing matches between `c` and here: jump close to it.
                let t2 = c - seg.off + MARGIN;
                seg = Seg::at(tz, t2);
                hi = t2 + seg.off;
                from_end = true;
                continue;
            }
            if found.is_none() && !fold_start {
                break None;
            }
            let prev = seg.preceding(tz);
            if seg.off > prev.off
                && cron.shifts_gap()
                && self
                    .civil_prev(cron, seg.start + seg.off - 1)
                    .is_some_and(|g| g >= seg.start + prev.off)
            {
                let at = seg.start;
                self.seg = Some(seg);
                return Some(at);
            }
            seg = prev;
            hi = seg.end + seg.off - 1;
            from_end = true;
        };
        self.seg = Some(seg);
        result
    }
}

/// The jiff civil datetime of `c`.
fn jiff_civil(c: Civil) -> Option<DateTime> {
    DateTime::new(
        c.year as i16,
        c.month as i8,
        c.day as i8,
        c.hour as i8,
        c.minute as i8,
        c.second as i8,
        0,
    )
    .ok()
}

/// The first transition strictly after instant `t`: (instant, new offset).
fn transition_after(tz: &TimeZone, t: i64) -> Option<(i64, i64)> {
    let tr = tz.following(ts(t)).next()?;
    Some((tr.timestamp().as_second(), i64::from(tr.offset().seconds())))
}

impl Cron {
    /// The first fire instant strictly after `t`, for a job that fires once in
    /// a fold (fixed-time, or any job under [`DstPolicy::Skip`]).
    ///
    /// Such a job fires each matching civil time `c` at most once, at the first
    /// instant whose local time reaches `c` (the earlier instant of a fold, the
    /// end of a gap), so fire instants grow with `c`: the answer is the first
    /// matching civil time after the local time of `t` whose instant is after
    /// `t`. No segment bookkeeping is needed, only the offset of `t` and the
    /// ambiguity of the candidate.
    pub(crate) fn next_once(&self, tz: &TimeZone, t: i64) -> Option<i64> {
        if t > CIVIL_MAX + MARGIN {
            return None;
        }
        let t = t.max(CIVIL_MIN - MARGIN);
        let mut lo = t + 1 + i64::from(tz.to_offset(ts(t)).seconds());
        let mut masks = MonthMask::new();
        loop {
            let parts = self.civil_next_parts(lo, &mut masks)?;
            let c = parts.to_secs();
            match tz.to_ambiguous_timestamp(jiff_civil(parts)?).offset() {
                AmbiguousOffset::Unambiguous { offset } => {
                    let at = c - i64::from(offset.seconds());
                    if at > t {
                        return Some(at);
                    }
                    lo = c + 1;
                }
                AmbiguousOffset::Fold { before, after: _ } => {
                    let at = c - i64::from(before.seconds());
                    if at > t {
                        return Some(at);
                    }
                    // `t` is in the second half of this fold, whose civil times
                    // already fired: resume at the end of the fold.
                    let (t0, _) = transition_after(tz, at)?;
                    lo = (t0 + i64::from(before.seconds())).max(c + 1);
                }
                AmbiguousOffset::Gap { before: _, after } => {
                    let (t0, new_off) = transition_after(tz, c - i64::from(after.seconds()))?;
                    if self.shifts_gap() && t0 > t {
                        return Some(t0);
                    }
                    lo = (t0 + new_off).max(c + 1);
                }
            }
        }
    }

    /// The last fire instant at or before `u`, for a job that fires once in a
    /// fold (see [`Cron::next_once`]).
    pub(crate) fn prev_once(&self, tz: &TimeZone, u: i64) -> Option<i64> {
        if u < CIVIL_MIN - MARGIN {
            return None;
        }
        let u = u.min(CIVIL_MAX + MARGIN);
        let off = i64::from(tz.to_offset(ts(u)).seconds());
        let mut hi = u + off;
        // In the second half of a fold, the civil times up to the end of the
        // fold already fired (at their first instant, before `u`).
        if let AmbiguousOffset::Fold { before, after } = tz
            .to_ambiguous_timestamp(jiff_civil(Civil::from_secs(hi))?)
            .offset()
            && i64::from(after.seconds()) == off
            && let Some(tr) = tz.preceding(ts(u + 1)).next()
        {
            hi = hi.max(tr.timestamp().as_second() + i64::from(before.seconds()) - 1);
        }
        let mut masks = MonthMask::new();
        loop {
            let parts = self.civil_prev_parts(hi, &mut masks)?;
            let c = parts.to_secs();
            match tz.to_ambiguous_timestamp(jiff_civil(parts)?).offset() {
                AmbiguousOffset::Unambiguous { offset } => {
                    let at = c - i64::from(offset.seconds());
                    if at <= u {
                        return Some(at);
                    }
                    hi = c - 1;
                }
                AmbiguousOffset::Fold { before, after: _ } => {
                    let at = c - i64::from(before.seconds());
                    if at <= u {
                        return Some(at);
                    }
                    hi = c - 1;
                }
                AmbiguousOffset::Gap { before, after } => {
                    let (t0, _) = transition_after(tz, c - i64::from(after.seconds()))?;
                    if self.shifts_gap() && t0 <= u {
                        return Some(t0);
                    }
                    hi = (t0 + i64::from(before.seconds()) - 1).min(c - 1);
                }
            }
        }
    }
}

/// Whole seconds of `t`, rounded down.
pub(crate) fn floor_secs(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() < 0 { s - 1 } else { s }
}

/// Whole seconds of `t`, rounded up.
pub(crate) fn ceil_secs(t: Timestamp) -> i64 {
    let s = t.as_second();
    if t.subsec_nanosecond() > 0 { s + 1 } else { s }
}

/// Converts engine seconds back to a timestamp.
pub(crate) fn to_timestamp(secs: i64) -> Option<Timestamp> {
    Timestamp::from_second(secs).ok()
}
