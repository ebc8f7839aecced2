//! A brute-force reference of `shared/docs/cron-dialect.md`, and property tests
//! comparing the engine with it.
//!
//! The reference does not use the crate's parser: expressions are generated as
//! a structure ([`Spec`]), rendered to text for the crate, and interpreted here
//! directly from the page's rules. It walks every civil minute (every civil
//! second for 6- and 7-field expressions) of a window, asks jiff how each
//! matching civil time maps to instants (unambiguous, gap or fold) and applies
//! the DST rules literally. Slow and obviously right.

use jiff::civil::{Date, DateTime};
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{Timestamp, ToSpan};
use myrmex_cron::{Cron, DstPolicy, ParseErrorKind};
use proptest::prelude::*;

/// One comma-separated item of a field.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    Star,
    Question,
    StarStep(u32),
    Val(u32),
    Range(u32, u32),
    RangeStep(u32, u32, u32),
    ValStep(u32, u32),
    L,
    LMinus(u32),
    LW,
    NearW(u32),
    DowLast(u32),
    Nth(u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Second,
    Minute,
    Hour,
    Dom,
    Month,
    Dow,
    Year,
}

impl Kind {
    /// Smallest value, largest value (for `*`, `a/s` and wrapping).
    fn bounds(self) -> (u32, u32) {
        match self {
            Kind::Second | Kind::Minute => (0, 59),
            Kind::Hour => (0, 23),
            Kind::Dom => (1, 31),
            Kind::Month => (1, 12),
            Kind::Dow => (0, 6),
            Kind::Year => (1970, 2199),
        }
    }
}

/// A generated expression.
#[derive(Clone, Debug)]
pub(crate) struct Spec {
    pub(crate) second: Option<Vec<Item>>,
    pub(crate) minute: Vec<Item>,
    pub(crate) hour: Vec<Item>,
    pub(crate) dom: Vec<Item>,
    pub(crate) month: Vec<Item>,
    pub(crate) dow: Vec<Item>,
    /// Only with `second`.
    pub(crate) year: Option<Vec<Item>>,
    /// Write months and days of the week as names.
    pub(crate) names: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "feb", "Mar", "APR", "MAY", "jun", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "mon", "Tue", "WED", "THU", "FRI", "SAT"];

fn render_value(kind: Kind, v: u32, names: bool) -> String {
    match kind {
        Kind::Month if names => MONTHS[v as usize - 1].to_owned(),
        Kind::Dow if names && v < 7 => DAYS[v as usize].to_owned(),
        _ => v.to_string(),
    }
}

fn render_item(kind: Kind, item: &Item, names: bool) -> String {
    let v = |x: u32| render_value(kind, x, names);
    match *item {
        Item::Star => "*".into(),
        Item::Question => "?".into(),
        Item::StarStep(s) => format!("*/{s}"),
        Item::Val(a) => v(a),
        Item::Range(a, b) => format!("{}-{}", v(a), v(b)),
        Item::RangeStep(a, b, s) => format!("{}-{}/{s}", v(a), v(b)),
        Item::ValStep(a, s) => format!("{}/{s}", v(a)),
        Item::L => "L".into(),
        Item::LMinus(n) => format!("L-{n}"),
        Item::LW => "LW".into(),
        Item::NearW(n) => format!("{n}W"),
        Item::DowLast(d) => format!("{}L", v(d)),
        Item::Nth(d, k) => format!("{}#{k}", v(d)),
    }
}

fn render_field(kind: Kind, items: &[Item], names: bool) -> String {
    items
        .iter()
        .map(|i| render_item(kind, i, names))
        .collect::<Vec<_>>()
        .join(",")
}

impl Spec {
    pub(crate) fn render(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.second {
            parts.push(render_field(Kind::Second, s, false));
        }
        parts.push(render_field(Kind::Minute, &self.minute, false));
        parts.push(render_field(Kind::Hour, &self.hour, false));
        parts.push(render_field(Kind::Dom, &self.dom, false));
        parts.push(render_field(Kind::Month, &self.month, self.names));
        parts.push(render_field(Kind::Dow, &self.dow, self.names));
        if let Some(y) = &self.year {
            parts.push(render_field(Kind::Year, y, false));
        }
        parts.join(" ")
    }

    fn starts_with_star(items: &[Item]) -> bool {
        matches!(items[0], Item::Star | Item::Question | Item::StarStep(_))
    }

    fn fixed_time(&self) -> bool {
        !Self::starts_with_star(&self.minute) && !Self::starts_with_star(&self.hour)
    }
}

/// The plain values of a field (0..=max), from the page's rules.
fn plain_values(kind: Kind, items: &[Item]) -> Vec<bool> {
    let (lo, hi) = kind.bounds();
    let mut set = vec![false; 2200];
    let mut add_seq = |a: u32, b: u32, step: u32| {
        // The sequence a, a+1, ... b, wrapping after `hi` back to `lo`.
        let mut seq = Vec::new();
        if a <= b {
            seq.extend(a..=b);
        } else {
            seq.extend(a..=hi);
            seq.extend(lo..=b);
        }
        for v in seq.into_iter().step_by(step as usize) {
            set[v as usize] = true;
        }
    };
    for item in items {
        match *item {
            Item::Star | Item::Question => add_seq(lo, hi, 1),
            Item::StarStep(s) => add_seq(lo, hi, s),
            Item::Val(a) => add_seq(a, a, 1),
            Item::Range(a, b) => add_seq(a, b, 1),
            Item::RangeStep(a, b, s) => add_seq(a, b, s),
            Item::ValStep(a, s) => add_seq(a, hi, s),
            _ => {}
        }
    }
    if kind == Kind::Dow && set[7] {
        set[0] = true;
    }
    set
}

/// Whether the date matches the day-of-month and day-of-week fields.
fn day_matches(spec: &Spec, date: Date) -> bool {
    let d = date.day() as u32;
    let len = date.days_in_month() as u32;
    let wd_of = |day: u32| -> u32 {
        date.with()
            .day(day as i8)
            .build()
            .unwrap()
            .weekday()
            .to_sunday_zero_offset() as u32
    };
    let wd = wd_of(d);
    let dom_plain = plain_values(Kind::Dom, &spec.dom);
    let mut dom = dom_plain[d as usize];
    for item in &spec.dom {
        dom |= match *item {
            Item::L => d == len,
            Item::LMinus(n) => n < len && d == len - n,
            Item::LW => {
                let mut last = len;
                while matches!(wd_of(last), 0 | 6) {
                    last -= 1;
                }
                d == last
            }
            Item::NearW(n) => {
                n <= len
                    && d == match wd_of(n) {
                        6 if n == 1 => 3,
                        6 => n - 1,
                        0 if n == len => n - 2,
                        0 => n + 1,
                        _ => n,
                    }
            }
            _ => false,
        };
    }
    let dow_plain = plain_values(Kind::Dow, &spec.dow);
    let mut dow = dow_plain[wd as usize];
    for item in &spec.dow {
        dow |= match *item {
            Item::DowLast(x) => x % 7 == wd && d + 7 > len,
            Item::Nth(x, k) => x % 7 == wd && (d - 1) / 7 + 1 == k,
            _ => false,
        };
    }
    let dom_restricted = !Spec::starts_with_star(&spec.dom);
    let dow_restricted = !Spec::starts_with_star(&spec.dow);
    if dom_restricted && dow_restricted {
        dom || dow
    } else {
        dom && dow
    }
}

/// The precomputed value sets of a spec.
struct Sets {
    second: Vec<bool>,
    minute: Vec<bool>,
    hour: Vec<bool>,
    month: Vec<bool>,
    year: Vec<bool>,
}

impl Sets {
    fn new(spec: &Spec) -> Sets {
        let mut second = vec![false; 60];
        second[0] = true;
        let year = match &spec.year {
            Some(y) => plain_values(Kind::Year, y),
            None => plain_values(Kind::Year, &[Item::Star]),
        };
        Sets {
            second: spec
                .second
                .as_ref()
                .map_or(second, |s| plain_values(Kind::Second, s)),
            minute: plain_values(Kind::Minute, &spec.minute),
            hour: plain_values(Kind::Hour, &spec.hour),
            month: plain_values(Kind::Month, &spec.month),
            year,
        }
    }
}

/// All fire instants whose civil time lies in `[from, to]` (civil), sorted.
pub(crate) fn fires(
    spec: &Spec,
    policy: DstPolicy,
    tz: &TimeZone,
    from: DateTime,
    to: DateTime,
) -> Vec<Timestamp> {
    let sets = Sets::new(spec);
    let fixed = spec.fixed_time();
    let mut out = Vec::new();
    let mut date = from.date();
    while date <= to.date() {
        let y = date.year() as usize;
        if (1970..=2199).contains(&y)
            && sets.year[y]
            && sets.month[date.month() as usize]
            && day_matches(spec, date)
        {
            for h in 0..24 {
                if !sets.hour[h] {
                    continue;
                }
                for m in 0..60 {
                    if !sets.minute[m] {
                        continue;
                    }
                    for s in 0..60 {
                        if !sets.second[s] {
                            continue;
                        }
                        let dt = date.at(h as i8, m as i8, s as i8, 0);
                        if dt < from || dt > to {
                            continue;
                        }
                        instants(tz, dt, fixed, policy, &mut out);
                    }
                }
            }
        }
        date = date.tomorrow().unwrap();
    }
    out.sort();
    out.dedup();
    out
}

/// The instants at which a matching civil time `dt` fires, per the DST rules.
fn instants(tz: &TimeZone, dt: DateTime, fixed: bool, policy: DstPolicy, out: &mut Vec<Timestamp>) {
    let amb = tz.to_ambiguous_timestamp(dt);
    let at = |off: jiff::tz::Offset| off.to_timestamp(dt).unwrap();
    match amb.offset() {
        AmbiguousOffset::Unambiguous { offset } => out.push(at(offset)),
        AmbiguousOffset::Fold { before, after } => {
            out.push(at(before));
            if !fixed && policy == DstPolicy::ShiftGapFixedTime {
                out.push(at(after));
            }
        }
        AmbiguousOffset::Gap { after, .. } => {
            if fixed && policy == DstPolicy::ShiftGapFixedTime {
                // The first instant after the gap: the transition itself.
                let before_gap = at(after);
                let transition = tz.following(before_gap).next().unwrap();
                out.push(transition.timestamp());
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------

fn generic_item(kind: Kind) -> BoxedStrategy<Item> {
    let (lo, hi) = kind.bounds();
    let span = hi - lo + 1;
    prop_oneof![
        3 => Just(Item::Star),
        2 => (1..=span / 2).prop_map(Item::StarStep),
        3 => (lo..=hi).prop_map(Item::Val),
        2 => (lo..=hi, lo..=hi).prop_map(|(a, b)| Item::Range(a, b)),
        2 => (lo..=hi, lo..=hi, 1..=span / 2 + 1).prop_map(|(a, b, s)| Item::RangeStep(a, b, s)),
        1 => (lo..=hi, 1..=span / 2 + 1).prop_map(|(a, s)| Item::ValStep(a, s)),
    ]
    .boxed()
}

fn field(kind: Kind) -> BoxedStrategy<Vec<Item>> {
    let extra = match kind {
        Kind::Dom => prop_oneof![
            generic_item(kind),
            Just(Item::Question),
            Just(Item::L),
            (0u32..=5).prop_map(Item::LMinus),
            Just(Item::LW),
            (1u32..=31).prop_map(Item::NearW),
        ]
        .boxed(),
        Kind::Dow => prop_oneof![
            generic_item(kind),
            Just(Item::Question),
            Just(Item::Val(7)),
            (0u32..=6).prop_map(|a| Item::Range(a, 7)),
            (0u32..=7).prop_map(Item::DowLast),
            (0u32..=7, 1u32..=5).prop_map(|(d, k)| Item::Nth(d, k)),
        ]
        .boxed(),
        _ => generic_item(kind),
    };
    prop_oneof![
        3 => Just(vec![Item::Star]),
        2 => proptest::collection::vec(extra, 1..=3),
    ]
    .boxed()
}

/// A spec whose year field (if any) is centred on `year`.
fn spec(year: i32) -> impl Strategy<Value = Spec> {
    let y = year as u32;
    let year_items = prop_oneof![
        Just(Item::Star),
        (0u32..=2).prop_map(move |d| Item::Val(y + d - 1)),
        (0u32..=1, 0u32..=2).prop_map(move |(a, b)| Item::Range(y - a, y + b)),
        (1u32..=3).prop_map(Item::StarStep),
    ];
    (
        prop_oneof![Just(None), Just(None), field(Kind::Second).prop_map(Some)],
        field(Kind::Minute),
        field(Kind::Hour),
        field(Kind::Dom),
        field(Kind::Month),
        field(Kind::Dow),
        proptest::option::of(proptest::collection::vec(year_items, 1..=2)),
        any::<bool>(),
    )
        .prop_map(
            |(second, minute, hour, dom, month, dow, year, names)| Spec {
                year: if second.is_some() { year } else { None },
                second,
                minute,
                hour,
                dom,
                month,
                dow,
                names,
            },
        )
}

pub(crate) const ZONES: [&str; 10] = [
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Pacific/Apia",
    "UTC",
];

/// A zone, and an instant that is often a DST transition of that zone.
fn zone_and_center() -> impl Strategy<Value = (&'static str, Timestamp)> {
    (
        proptest::sample::select(&ZONES[..]),
        1971i64..2190,
        0i64..365 * 86_400,
        0u8..4,
    )
        .prop_map(|(zone, year, secs, mode)| {
            let tz = TimeZone::get(zone).unwrap();
            let base = Date::new(year as i16, 1, 1)
                .unwrap()
                .to_zoned(tz.clone())
                .unwrap()
                .timestamp()
                + secs.seconds();
            let center = match mode {
                0 => base,
                // Apia's skipped day.
                1 if zone == "Pacific/Apia" => "2011-12-30T10:00:00Z".parse().unwrap(),
                _ => tz.following(base).next().map_or(base, |t| t.timestamp()),
            };
            (zone, center)
        })
}

/// Compares the engine with the reference around `center`.
fn compare(spec: &Spec, policy: DstPolicy, zone: &str, center: Timestamp, probes: &[i64]) {
    let text = spec.render();
    let cron = match Cron::parse(&text) {
        Ok(c) => c.with_dst_policy(policy),
        Err(e) if *e.kind() == ParseErrorKind::NeverFires => return,
        Err(e) => panic!("{text:?} should parse: {e}"),
    };
    let tz = TimeZone::get(zone).unwrap();
    let half: i64 = if spec.second.is_some() {
        2 * 3600
    } else {
        30 * 3600
    };
    let (lo, hi) = (center - half.seconds(), center + half.seconds());
    // The civil times that can map into [lo, hi]: bounded by the offsets there.
    let mut offsets = vec![tz.to_offset(lo), tz.to_offset(hi)];
    offsets.extend(
        tz.following(lo)
            .take_while(|t| t.timestamp() <= hi)
            .map(|t| t.offset()),
    );
    let min_off = offsets.iter().min().unwrap().seconds();
    let max_off = offsets.iter().max().unwrap().seconds();
    let civil =
        |t: Timestamp, off: i32| jiff::tz::Offset::from_seconds(off).unwrap().to_datetime(t);
    let from = civil(lo, min_off) - 1.second();
    let to = civil(hi, max_off) + 1.second();
    let all = fires(spec, policy, &tz, from, to);
    // The iterators walk the whole window, both ways.
    let inside: Vec<Timestamp> = all.iter().copied().filter(|&f| f > lo && f <= hi).collect();
    let walked: Vec<Timestamp> = cron
        .timestamps_after(lo, &tz)
        .take_while(|&f| f <= hi)
        .collect();
    assert_eq!(
        walked, inside,
        "walking {text:?} ({policy:?}) in {zone} from {lo}"
    );
    let inside: Vec<Timestamp> = all
        .iter()
        .copied()
        .rev()
        .filter(|&f| f < hi && f >= lo)
        .collect();
    let walked: Vec<Timestamp> = cron
        .timestamps_before(hi, &tz)
        .take_while(|&f| f >= lo)
        .collect();
    assert_eq!(
        walked, inside,
        "walking back {text:?} ({policy:?}) in {zone} from {hi}"
    );
    for &p in probes {
        let q = match p.rem_euclid(4) {
            // Exactly on a fire time, or just before or after one.
            0 if !all.is_empty() => {
                let f = all[(p / 4).unsigned_abs() as usize % all.len()];
                f + ((p / 4).rem_euclid(3) - 1).seconds()
            }
            1 => center + (p % half).seconds() + jiff::SignedDuration::from_millis(500),
            _ => center + (p % half).seconds(),
        };
        if q < lo || q > hi {
            continue;
        }
        let expect_next = all.iter().copied().find(|&f| f > q);
        let got_next = cron.next_timestamp_after(q, &tz);
        match expect_next {
            Some(e) if e <= hi => assert_eq!(
                got_next,
                Some(e),
                "next after {q} of {text:?} ({policy:?}) in {zone}"
            ),
            _ => assert!(
                got_next.is_none_or(|g| g > hi),
                "next after {q} of {text:?} ({policy:?}) in {zone}: got {got_next:?}, reference has none up to {hi}"
            ),
        }
        let expect_prev = all.iter().copied().rev().find(|&f| f < q);
        let got_prev = cron.prev_timestamp_before(q, &tz);
        match expect_prev {
            Some(e) if e >= lo => assert_eq!(
                got_prev,
                Some(e),
                "prev before {q} of {text:?} ({policy:?}) in {zone}"
            ),
            _ => assert!(
                got_prev.is_none_or(|g| g < lo),
                "prev before {q} of {text:?} ({policy:?}) in {zone}: got {got_prev:?}, reference has none from {lo}"
            ),
        }
        // Fire instants probed exactly must match, and `matches` agrees.
        if let Some(e) = expect_next.filter(|&e| e <= hi) {
            let z = e.to_zoned(tz.clone());
            assert!(cron.matches(&z), "{text:?} should match {z}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn engine_agrees_with_reference(
        (zone, center) in zone_and_center(),
        spec in spec(2000),
        skip in any::<bool>(),
        probes in proptest::collection::vec(any::<i64>(), 6),
    ) {
        let policy = if skip { DstPolicy::Skip } else { DstPolicy::ShiftGapFixedTime };
        // Centre the year field (generated around 2000) on the window.
        let year = i64::from(center.to_zoned(TimeZone::get(zone).unwrap()).year());
        let shift = |y: &mut u32| *y = (i64::from(*y) + year - 2000).clamp(1970, 2199) as u32;
        let mut spec = spec;
        for item in spec.year.iter_mut().flatten() {
            match item {
                Item::Val(y) => shift(y),
                Item::Range(a, b) => {
                    shift(a);
                    shift(b);
                }
                _ => {}
            }
        }
        compare(&spec, policy, zone, center, &probes);
    }

    #[test]
    fn random_text_never_panics(s in "\\PC{0,40}") {
        let _ = Cron::parse(&s);
    }

    #[test]
    fn cron_like_text_never_panics(
        parts in proptest::collection::vec("[0-9*?/,LW#@a-zA-Z-]{1,8}", 0..9),
        blanks in proptest::collection::vec("[ \t]{1,2}", 9),
    ) {
        let mut s = String::new();
        for (p, b) in parts.iter().zip(&blanks) {
            s.push_str(p);
            s.push_str(b);
        }
        if let Err(e) = Cron::parse(&s) {
            // The span always points into the text.
            prop_assert!(s.get(e.span()).is_some(), "{s:?}: {e}");
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
