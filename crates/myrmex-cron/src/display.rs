//! Canonical `Display`: a text that parses back to the same schedule.
//!
//! Every field is compressed into `*`, `*/s`, a progression `a-b/s` (or `a/s` when
//! it runs to the end of the field), ranges `a-b` (wrapped `22-2` for the cyclic
//! fields second, minute, hour, month and day-of-week) and single values, always
//! numeric. The flags that change meaning survive the trip: a minute or hour field
//! begins with `*` exactly when the source's did (fixed-time vs wildcard), and a
//! day-of-month or day-of-week field begins with `*` exactly when the source's began
//! with `*` or `?` (the day OR rule), so hour `0-23` never becomes `*` and
//! day-of-week `*/2` keeps its leading `*`. The DST policy is not part of the text.

use std::fmt::{self, Write as _};

use crate::Cron;
use crate::describe::fields::ValueSet;
use crate::describe::shape::{progression, run_len, runs};

impl fmt::Display for Cron {
    /// Writes the canonical form, e.g. `0 0 * * 5L` or `*/15 9-17 * * 1-5`.
    ///
    /// ```
    /// use myrmex_cron::Cron;
    ///
    /// let cron: Cron = "0 9-17 ? JAN,FEB,MAR,DEC mon-fri".parse()?;
    /// assert_eq!(cron.to_string(), "0 9-17 * 12-3 1-5");
    /// assert_eq!(cron.to_string().parse::<Cron>()?, cron);
    /// # Ok::<(), myrmex_cron::ParseError>(())
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fl = self.fields();
        let mut parts: Vec<String> = Vec::with_capacity(7);
        if self.field_count >= 6 {
            parts.push(plain_field(&fl.seconds, true, true));
        }
        parts.push(flagged_field(&fl.minutes, fl.minute_star, true, Vec::new()));
        parts.push(flagged_field(&fl.hours, fl.hour_star, true, Vec::new()));

        let mut dom_extra = Vec::new();
        for n in fl.last_day_offsets.iter() {
            dom_extra.push(if n == 0 {
                "L".to_owned()
            } else {
                format!("L-{n}")
            });
        }
        if fl.last_weekday {
            dom_extra.push("LW".to_owned());
        }
        for n in fl.nearest_weekdays.iter() {
            dom_extra.push(format!("{n}W"));
        }
        parts.push(flagged_field(
            &fl.days_of_month,
            !fl.day_of_month_restricted,
            false,
            dom_extra,
        ));

        parts.push(plain_field(&fl.months, true, true));

        let mut dow_extra = Vec::new();
        for d in fl.last_days_of_week.iter() {
            dow_extra.push(format!("{d}L"));
        }
        for (d, k) in fl.nth_days_of_week.iter() {
            dow_extra.push(format!("{d}#{k}"));
        }
        parts.push(flagged_field(
            &fl.days_of_week,
            !fl.day_of_week_restricted,
            true,
            dow_extra,
        ));

        if self.field_count >= 7 {
            parts.push(match &fl.years {
                None => "*".to_owned(),
                Some(years) => plain_field(years, false, false),
            });
        }
        let mut first = true;
        for p in parts {
            if !first {
                f.write_char(' ')?;
            }
            first = false;
            f.write_str(&p)?;
        }
        Ok(())
    }
}

/// A field without a meaning-carrying flag: `*` when full (if `star_if_full`).
fn plain_field(set: &ValueSet, star_if_full: bool, wrap: bool) -> String {
    if star_if_full && set.is_full() {
        return "*".to_owned();
    }
    // Without a flag a leading `*` changes nothing, so `*/s` is the plainest spelling.
    if let Some(p) =
        progression(set, 2).filter(|p| p.start == set.domain_min() && p.reaches_end(set))
    {
        return format!("*/{}", p.step);
    }
    let mut items = Vec::new();
    set_items(set, wrap, &mut items);
    items.join(",")
}

/// A field whose text must begin with `*` exactly when `star` is set, followed by
/// `extra` items (`L`, `5L`, `MON#2`, ...).
fn flagged_field(set: &ValueSet, star: bool, wrap: bool, extra: Vec<String>) -> String {
    let mut items = Vec::new();
    let min = set.domain_min();
    if star && set.contains(min) {
        let span = set.domain_max() - min;
        // The smallest step whose progression from the minimum lies in the set
        // covers the most values; `*/(span + 1)` stands for the minimum alone.
        let step = (1..=span)
            .find(|&s| {
                (min..=set.domain_max())
                    .step_by(usize::from(s))
                    .all(|v| set.contains(v))
            })
            .unwrap_or(span + 1);
        let mut rest = ValueSet::empty(min, set.domain_max());
        for v in set.iter() {
            if !(v - min).is_multiple_of(step) {
                rest.insert(v);
            }
        }
        items.push(if step == 1 {
            "*".to_owned()
        } else {
            format!("*/{step}")
        });
        set_items(&rest, wrap, &mut items);
    } else {
        set_items(set, wrap, &mut items);
    }
    items.extend(extra);
    items.join(",")
}

/// Appends the items that spell `set`: one progression, or runs and single values.
fn set_items(set: &ValueSet, wrap: bool, items: &mut Vec<String>) {
    if set.is_empty() {
        return;
    }
    if let Some(p) = progression(set, 3) {
        items.push(if p.reaches_end(set) {
            format!("{}/{}", p.start, p.step)
        } else {
            format!("{}-{}/{}", p.start, p.last, p.step)
        });
        return;
    }
    for (a, b) in runs(set, wrap.then_some(3)) {
        let len = run_len(set, (a, b));
        if len >= 3 {
            items.push(format!("{a}-{b}"));
        } else if a <= b {
            for v in a..=b {
                items.push(v.to_string());
            }
        } else {
            items.push(a.to_string());
            items.push(b.to_string());
        }
    }
}
