//! Proleptic Gregorian calendar arithmetic on plain integers, and the
//! per-month day masks that decide which days of a month match.
//!
//! Civil times are handled as "civil seconds": seconds since 1970-01-01T00:00:00
//! on the wall clock, with no zone attached. This keeps the search loops free of
//! any jiff type.

use crate::schedule::Cron;

/// Seconds in a civil day.
pub(crate) const DAY: i64 = 86_400;

/// Whether `y` is a leap year.
#[inline]
pub(crate) const fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// Days in month `m` (1..=12) of year `y`.
#[inline]
pub(crate) const fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the civil date `y-m-d` (Howard Hinnant's algorithm).
#[inline]
pub(crate) const fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date `(y, m, d)` of a day count since 1970-01-01.
#[inline]
pub(crate) const fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

/// Day of the week (0 = Sunday) of a day count since 1970-01-01 (a Thursday).
#[inline]
pub(crate) const fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

/// A civil time split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Civil {
    pub(crate) year: i32,
    pub(crate) month: u32,
    pub(crate) day: u32,
    pub(crate) hour: u32,
    pub(crate) minute: u32,
    pub(crate) second: u32,
}

impl Civil {
    #[inline]
    pub(crate) const fn from_secs(secs: i64) -> Civil {
        let days = secs.div_euclid(DAY);
        let sod = secs.rem_euclid(DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
        }
    }

    #[inline]
    pub(crate) const fn to_secs(self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * DAY
            + (self.hour * 3600 + self.minute * 60 + self.second) as i64
    }
}

/// Bits `1..=len` set.
#[inline]
pub(crate) const fn month_days(len: u32) -> u64 {
    (1u64 << (len + 1)) - 2
}

impl Cron {
    /// Whether the day-of-month field uses `L`, `L-n`, `LW` or `nW`.
    #[inline]
    pub(crate) fn dom_special(&self) -> bool {
        self.dom_last_offsets != 0 || self.dom_last_weekday || self.dom_nearest_weekday != 0
    }

    /// Whether every day of every month matches (`* * *`-like day fields).
    #[inline]
    pub(crate) fn every_day(&self) -> bool {
        self.days_of_month == 0xffff_fffe
            && self.days_of_week & 0x7f == 0x7f
            && !self.dom_special()
            && !self.dow_special()
    }

    /// Whether the day-of-week field uses `nL` or `n#k`.
    #[inline]
    pub(crate) fn dow_special(&self) -> bool {
        self.dow_last != 0 || self.dow_nth != 0
    }

    /// The days (bits 1..=31) of a month of `len` days whose 1st is weekday
    /// `first` that match the day-of-month and day-of-week fields, combined with
    /// the Vixie rule (OR when both are restricted, else AND).
    pub(crate) fn day_mask(&self, len: u32, first: u32) -> u64 {
        let all = month_days(len);
        let mut dom = u64::from(self.days_of_month);
        if self.dom_special() {
            // Bit n of `dom_last_offsets` is day `len - n`.
            let rev = u64::from(self.dom_last_offsets.reverse_bits());
            dom |= (rev << 1) >> (32 - len);
            let last_wd = (first + len - 1) % 7;
            if self.dom_last_weekday {
                dom |= 1
                    << match last_wd {
                        6 => len - 1,
                        0 => len - 2,
                        _ => len,
                    };
            }
            let mut near = u64::from(self.dom_nearest_weekday) & all;
            while near != 0 {
                let n = near.trailing_zeros();
                near &= near - 1;
                let day = match (first + n - 1) % 7 {
                    6 if n == 1 => 3,
                    6 => n - 1,
                    0 if n == len => n - 2,
                    0 => n + 1,
                    _ => n,
                };
                dom |= 1 << day;
            }
        }
        dom &= all;
        let mut dow = {
            // Rotate the 7 weekday bits so that bit i is the weekday of day i + 1.
            let w = u64::from(self.days_of_week & 0x7f);
            let r = ((w >> first) | (w << (7 - first))) & 0x7f;
            (r | r << 7 | r << 14 | r << 21 | r << 28) << 1
        };
        if self.dow_special() {
            let last_wd = (first + len - 1) % 7;
            let mut last = u64::from(self.dow_last & 0x7f);
            while last != 0 {
                let d = last.trailing_zeros();
                last &= last - 1;
                dow |= 1 << (len - (last_wd + 7 - d) % 7);
            }
            let mut nth = self.dow_nth;
            while nth != 0 {
                let bit = nth.trailing_zeros();
                nth &= nth - 1;
                let (d, k) = (bit / 5, bit % 5);
                let day = 1 + (d + 7 - first) % 7 + 7 * k;
                if day <= len {
                    dow |= 1 << day;
                }
            }
        }
        dow &= all;
        if self.dom_restricted && self.dow_restricted {
            dom | dow
        } else {
            dom & dow
        }
    }

    /// The matching days of month `m` of year `y`.
    #[inline]
    pub(crate) fn month_mask(&self, y: i32, m: u32) -> u64 {
        if self.every_day() {
            return month_days(days_in_month(y, m));
        }
        let first = weekday(days_from_civil(y, m, 1));
        self.day_mask(days_in_month(y, m), first)
    }

    /// Whether the expression matches at least one date in 1970..=2199.
    pub(crate) fn ever_fires(&self) -> bool {
        if let Some(years) = self.years {
            return years.iter().any(|y| {
                let mut months = self.months;
                while months != 0 {
                    let m = months.trailing_zeros();
                    months &= months - 1;
                    if self.month_mask(y, m) != 0 {
                        return true;
                    }
                }
                false
            });
        }
        // Without a year field every (month length, weekday of the 1st)
        // combination occurs between 1970 and 2199, so checking those is exact.
        let mut lens = 0u32;
        if self.months & (1 << 1 | 1 << 3 | 1 << 5 | 1 << 7 | 1 << 8 | 1 << 10 | 1 << 12) != 0 {
            lens |= 1 << 31;
        }
        if self.months & (1 << 4 | 1 << 6 | 1 << 9 | 1 << 11) != 0 {
            lens |= 1 << 30;
        }
        if self.months & 0b100 != 0 {
            lens |= 1 << 28 | 1 << 29;
        }
        if !self.dom_special() && !self.dow_special() {
            if self.dom_restricted && self.dow_restricted {
                return true;
            }
            if self.days_of_week & 0x7f == 0x7f {
                // Day-of-week matches every day: the smallest day must exist.
                let min_day = self.days_of_month.trailing_zeros();
                return min_day <= 31 - lens.leading_zeros();
            }
            if self.days_of_month == 0xffff_fffe {
                return true;
            }
        }
        while lens != 0 {
            let len = lens.trailing_zeros();
            lens &= lens - 1;
            for first in 0..7 {
                if self.day_mask(len, first) != 0 {
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        for days in -800_000..800_000i64 {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(weekday(0), 4);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
