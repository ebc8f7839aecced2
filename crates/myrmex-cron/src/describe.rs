//! English descriptions ([`Cron::describe`]), the structured field view
//! ([`Cron::fields`]) and warnings ([`Cron::warnings`]).
//!
//! Descriptions are derived from the parsed bit sets alone: each field is analysed
//! into a full set, an arithmetic progression or runs of consecutive values
//! (wrapped around the end of the cyclic fields), and phrased from that shape.
//! There is no generic fallback: every valid expression gets a sentence that states
//! exactly when it fires.

pub(crate) mod fields;
pub(crate) mod shape;
mod warnings;

pub use fields::{CronFields, NthWeekdays, ValueSet, ValueSetIter};
pub use warnings::{DstChange, DstOutcome, Warning};

use crate::Cron;
use fields::ValueSet as Set;
use shape::{progression, run_len, runs};

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

const ORDINALS: [&str; 5] = ["first", "second", "third", "fourth", "fifth"];

impl Cron {
    /// A clear English sentence saying when the expression fires.
    ///
    /// ```
    /// use myrmex_cron::Cron;
    ///
    /// let d = |e: &str| e.parse::<Cron>().unwrap().describe();
    /// assert_eq!(d("30 2 * * *"), "At 02:30, every day");
    /// assert_eq!(
    ///     d("*/15 9-17 * * MON-FRI"),
    ///     "Every 15 minutes, between 09:00 and 17:59, Monday through Friday"
    /// );
    /// assert_eq!(d("0 0 * * 5L"), "At 00:00 on the last Friday of the month");
    /// assert_eq!(d("0 0 1,15 * 1"), "At 00:00 on day 1 and 15 of the month, and on Monday");
    /// ```
    pub fn describe(&self) -> String {
        let f = self.fields();
        let mut s = Sentence::default();
        let at_form = time_parts(&f, &mut s);
        day_parts(&f, at_form, &mut s);
        if !f.months.is_full() {
            let names = set_phrase(&f.months, true, "and", |m| {
                MONTHS[usize::from(m) - 1].to_owned()
            });
            s.comma(format!("in {names}"));
        }
        if let Some(years) = f.years.filter(|y| !y.is_full()) {
            s.comma(year_phrase(&years));
        }
        s.finish()
    }
}

/// Clauses joined by ", " (or by a space for "on ..." clauses), capitalised.
#[derive(Default)]
struct Sentence {
    text: String,
}

impl Sentence {
    fn comma(&mut self, clause: String) {
        if !self.text.is_empty() {
            self.text.push_str(", ");
        }
        self.text.push_str(&clause);
    }

    fn space(&mut self, clause: String) {
        if !self.text.is_empty() {
            self.text.push(' ');
        }
        self.text.push_str(&clause);
    }

    fn finish(self) -> String {
        let mut chars = self.text.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    }
}

/// `a`, `a and b`, `a, b and c` (with `conj` for "and").
fn join(items: &[String], conj: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => format!("{} {conj} {last}", rest.join(", ")),
    }
}

/// The values of `set` as runs: `1 through 5, 8 and 10` (wrapping if `wrap`).
fn set_phrase(set: &Set, wrap: bool, conj: &str, name: impl Fn(u16) -> String) -> String {
    let mut items = Vec::new();
    for (a, b) in runs(set, wrap.then_some(2)) {
        let len = run_len(set, (a, b));
        if len >= 3 {
            items.push(format!("{} through {}", name(a), name(b)));
        } else {
            items.push(name(a));
            if len == 2 {
                items.push(name(b));
            }
        }
    }
    join(&items, conj)
}

fn plural(n: u16, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

fn ordinal(n: u16) -> String {
    let suffix = match (n % 10, n % 100) {
        (_, 11..=13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

fn hhmm(h: u16, m: u16) -> String {
    format!("{h:02}:{m:02}")
}

/// Phrases the second, minute and hour fields. Returns whether the result is an
/// "At <clock times>" clause (which then takes ", every day" when no day is
/// restricted).
fn time_parts(f: &CronFields, s: &mut Sentence) -> bool {
    let (secs, mins, hours) = (&f.seconds, &f.minutes, &f.hours);
    let (ns, nm, nh) = (secs.len(), mins.len(), hours.len());
    let sec0 = ns == 1 && secs.contains(0);
    let hour_cycle = progression(hours, 2).filter(|p| p.is_even_cycle(hours));

    let hour_has_range = runs(hours, Some(2)).iter().any(|&r| run_len(hours, r) >= 3);
    if ns * nm * nh <= 4
        || (ns == 1 && nm == 1 && nh <= 6 && hour_cycle.is_none() && !hour_has_range)
    {
        let mut times = Vec::new();
        for h in hours {
            for m in mins {
                for sec in secs {
                    times.push(if sec0 {
                        hhmm(h, m)
                    } else {
                        format!("{}:{sec:02}", hhmm(h, m))
                    });
                }
            }
        }
        s.comma(format!("at {}", join(&times, "and")));
        return true;
    }
    if ns > 1 && nm * nh <= 4 {
        let mut times = Vec::new();
        for h in hours {
            for m in mins {
                times.push(hhmm(h, m));
            }
        }
        s.comma(unit_phrase(secs, Unit::Second, false));
        let word = if times.len() == 1 {
            "minute"
        } else {
            "minutes"
        };
        s.comma(format!("during {word} {}", join(&times, "and")));
        return false;
    }

    // One instant per hour: its position within the hour.
    let once_per_hour = ns == 1 && nm == 1;
    if !sec0 {
        if once_per_hour {
            let (m, sec) = (mins.first().unwrap_or(0), secs.first().unwrap_or(0));
            s.comma(if m == 0 {
                format!("at {} past the hour", plural(sec, "second"))
            } else {
                format!(
                    "at {} and {} past the hour",
                    plural(m, "minute"),
                    plural(sec, "second")
                )
            });
        } else {
            s.comma(unit_phrase(secs, Unit::Second, false));
        }
    }
    let mut hours_done = false;
    if sec0 {
        if mins.is_full() {
            s.comma("every minute".to_owned());
        } else if nm == 1 && mins.contains(0) {
            if progression(hours, 2).is_some_and(|p| p.count >= 3 || p.is_even_cycle(hours)) {
                s.comma(hour_phrase(hours, true));
                hours_done = true;
            } else {
                s.comma("every hour".to_owned());
            }
        } else {
            s.comma(unit_phrase(mins, Unit::Minute, false));
        }
    } else if !once_per_hour && !mins.is_full() {
        s.comma(unit_phrase(mins, Unit::Minute, ns > 1));
    }
    if !hours_done && !hours.is_full() {
        s.comma(hour_phrase(hours, once_per_hour));
    }
    false
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Second,
    Minute,
}

/// Seconds within the minute or minutes within the hour. `during` phrases a
/// minute set that contains several fire times per minute.
fn unit_phrase(set: &Set, unit: Unit, during: bool) -> String {
    let (word, within) = match unit {
        Unit::Second => ("second", "past the minute"),
        Unit::Minute => ("minute", "past the hour"),
    };
    if set.is_full() {
        return format!("every {word}");
    }
    if let Some(p) = progression(set, 2).filter(|p| p.is_even_cycle(set)) {
        let mut clause = if during {
            format!("during every {} {word}", ordinal(p.step))
        } else {
            format!("every {} {word}s", p.step)
        };
        if p.start != 0 {
            clause.push_str(&format!(", starting at {} {within}", plural(p.start, word)));
        }
        return clause;
    }
    if let Some(p) = progression(set, 3) {
        return if during {
            format!(
                "during every {} {word} from {} through {} {within}",
                ordinal(p.step),
                p.start,
                p.last
            )
        } else {
            format!(
                "every {} {word}s from {} through {} {within}",
                p.step, p.start, p.last
            )
        };
    }
    let lead = if during { "during" } else { "at" };
    if set.len() == 1 {
        let v = set.first().unwrap_or(0);
        return if during {
            format!("during {word} {v} {within}")
        } else {
            format!("at {} {within}", plural(v, word))
        };
    }
    format!(
        "{lead} {word}s {} {within}",
        set_phrase(set, false, "and", |v| v.to_string())
    )
}

/// The hours during which the lower fields fire. `once_per_hour` when the lower
/// fields give a single instant per hour.
fn hour_phrase(hours: &Set, once_per_hour: bool) -> String {
    if let Some(p) = progression(hours, 2).filter(|p| p.is_even_cycle(hours)) {
        let mut clause = if once_per_hour {
            format!("every {} hours", p.step)
        } else {
            format!("during every {} hour", ordinal(p.step))
        };
        if p.start != 0 {
            clause.push_str(&format!(", starting at {}", hhmm(p.start, 0)));
        }
        return clause;
    }
    if let Some(p) = progression(hours, 3) {
        let range = format!("from {} through {}", hhmm(p.start, 0), hhmm(p.last, 59));
        return if once_per_hour {
            format!("every {} hours {range}", p.step)
        } else {
            format!("during every {} hour {range}", ordinal(p.step))
        };
    }
    let windows: Vec<String> = runs(hours, Some(2))
        .into_iter()
        .map(|(a, b)| format!("between {} and {}", hhmm(a, 0), hhmm(b, 59)))
        .collect();
    join(&windows, "and")
}

/// Noun phrases for the day-of-month items (without "on").
fn dom_items(f: &CronFields) -> Vec<String> {
    let mut items = Vec::new();
    let days = &f.days_of_month;
    if !days.is_empty() {
        if let Some(p) = progression(days, 3) {
            items.push(format!(
                "every {} day of the month from day {} through {}",
                ordinal(p.step),
                p.start,
                p.last
            ));
        } else {
            let list = set_phrase(days, false, "and", |d| d.to_string());
            items.push(format!("day {list} of the month"));
        }
    }
    for n in f.last_day_offsets.iter() {
        items.push(if n == 0 {
            "the last day of the month".to_owned()
        } else {
            format!("{} before the last day of the month", plural(n, "day"))
        });
    }
    if f.last_weekday {
        items.push("the last weekday of the month".to_owned());
    }
    let nearest = &f.nearest_weekdays;
    if !nearest.is_empty() {
        let list = join(
            &nearest.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "and",
        );
        let noun = if nearest.len() == 1 {
            "weekday"
        } else {
            "weekdays"
        };
        items.push(format!("the {noun} nearest day {list} of the month"));
    }
    items
}

/// Noun phrases for the day-of-week items (without "on"); `conj` joins weekday lists.
fn dow_items(f: &CronFields, conj: &str) -> Vec<String> {
    let mut items = Vec::new();
    if !f.days_of_week.is_empty() {
        items.push(set_phrase(&f.days_of_week, true, conj, |d| {
            WEEKDAYS[usize::from(d)].to_owned()
        }));
    }
    for d in f.last_days_of_week.iter() {
        items.push(format!(
            "the last {} of the month",
            WEEKDAYS[usize::from(d)]
        ));
    }
    for d in 0..7u8 {
        let ks: Vec<String> = (1..=5u8)
            .filter(|&k| f.nth_days_of_week.contains(d, k))
            .map(|k| ORDINALS[usize::from(k) - 1].to_owned())
            .collect();
        if !ks.is_empty() {
            items.push(format!(
                "the {} {} of the month",
                join(&ks, "and"),
                WEEKDAYS[usize::from(d)]
            ));
        }
    }
    items
}

/// Whether the day-of-week field is nothing but one range of three or more days
/// ("Monday through Friday"), which reads best as its own clause.
fn dow_is_one_range(f: &CronFields) -> bool {
    f.last_days_of_week.is_empty() && f.nth_days_of_week.is_empty() && {
        let r = runs(&f.days_of_week, Some(2));
        r.len() == 1 && run_len(&f.days_of_week, r[0]) >= 3
    }
}

fn day_parts(f: &CronFields, at_form: bool, s: &mut Sentence) {
    let dom_all = f.days_of_month.is_full();
    let dow_all = f.days_of_week.is_full();
    if f.days_use_or_rule() {
        if dom_all || dow_all {
            if at_form {
                s.comma("every day".to_owned());
            }
            return;
        }
        let dom = join(&dom_items(f), "and");
        let dow = join(&dow_items(f, "and"), "and");
        s.space(format!("on {dom}, and on {dow}"));
        return;
    }
    match (dom_all, dow_all) {
        (true, true) => {
            if at_form {
                s.comma("every day".to_owned());
            }
        }
        (false, true) => s.space(format!("on {}", join(&dom_items(f), "and"))),
        (true, false) => {
            let dow = join(&dow_items(f, "and"), "and");
            if dow_is_one_range(f) {
                s.comma(dow);
            } else {
                s.space(format!("on {dow}"));
            }
        }
        (false, false) => {
            let dom = join(&dom_items(f), "and");
            let dow = join(&dow_items(f, "or"), "or");
            s.space(format!("on {dom}, only if it is {dow}"));
        }
    }
}

fn year_phrase(years: &Set) -> String {
    if let Some(p) = progression(years, 3) {
        return format!(
            "in every {} year from {} through {}",
            ordinal(p.step),
            p.start,
            p.last
        );
    }
    format!("in {}", set_phrase(years, false, "and", |y| y.to_string()))
}
