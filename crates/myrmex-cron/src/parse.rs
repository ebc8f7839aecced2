//! The parser: text to [`Cron`], without heap allocation on success.

use crate::error::{Field, ParseError, ParseErrorKind};
use crate::schedule::{Cron, DstPolicy, YearSet};

const MONTHS: [&[u8; 3]; 12] = [
    b"JAN", b"FEB", b"MAR", b"APR", b"MAY", b"JUN", b"JUL", b"AUG", b"SEP", b"OCT", b"NOV", b"DEC",
];
const DAYS: [&[u8; 3]; 7] = [b"SUN", b"MON", b"TUE", b"WED", b"THU", b"FRI", b"SAT"];

const GENERIC_FORMS: &str =
    "a number, a range a-b, a step */s or a-b/s, *, or a comma-separated list of these";
const DOM_FORMS: &str = "a number, a range a-b, a step */s or a-b/s, *, ?, L, L-n, LW, nW, or a comma-separated list of these";
const DOW_FORMS: &str = "a number or name, a range a-b, a step */s or a-b/s, *, ?, nL, n#k, or a comma-separated list of these";

fn forms(field: Field) -> &'static str {
    match field {
        Field::DayOfMonth => DOM_FORMS,
        Field::DayOfWeek => DOW_FORMS,
        Field::Month => {
            "a number or name, a range a-b, a step */s or a-b/s, *, or a comma-separated list of these"
        }
        _ => GENERIC_FORMS,
    }
}

/// The value range of a field, as used for ranges and steps.
const fn bounds(field: Field) -> (u32, u32) {
    match field {
        Field::Second | Field::Minute => (0, 59),
        Field::Hour => (0, 23),
        Field::DayOfMonth => (1, 31),
        Field::Month => (1, 12),
        Field::DayOfWeek => (0, 7),
        Field::Year => (1970, 2199),
    }
}

/// Where a field sits in the source, for error reporting.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    expr: &'a str,
    field: Field,
    number: usize,
}

impl Ctx<'_> {
    fn err(&self, kind: ParseErrorKind, start: usize, end: usize) -> ParseError {
        ParseError::new(self.expr, kind, Some((self.field, self.number)), start..end)
    }
}

/// The bits one field contributes. Plain values land in `bits` (years in
/// `years`); the special forms in their own sets.
#[derive(Default)]
struct FieldBits {
    bits: u64,
    years: [u64; 4],
    last_offsets: u32,
    last_weekday: bool,
    nearest: u32,
    dow_last: u8,
    dow_nth: u64,
}

impl FieldBits {
    /// Adds every s-th value of the range `a-b` (wrapping when `a > b`).
    #[inline]
    fn add_range(&mut self, field: Field, a: u32, b: u32, step: u32) {
        if field == Field::Year {
            range(field, a, b, step, |v| {
                let i = (v - 1970) as usize;
                self.years[i / 64] |= 1 << (i % 64);
            });
        } else if a <= b && step == 1 {
            // Bits a..=b (b <= 59).
            self.bits |= ((2u64 << b) - 1) & !((1u64 << a) - 1);
        } else {
            let mut bits = 0u64;
            range(field, a, b, step, |v| bits |= 1 << v);
            self.bits |= bits;
        }
    }
}

/// Parses an unsigned decimal number; `None` if `s` is empty or not all digits.
/// Large values saturate (they are out of range for every field anyway).
#[inline]
fn number(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut n: u32 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u32::from(b - b'0'));
    }
    Some(n)
}

/// Parses a value token (number or, for month and day-of-week, a name).
/// `start` is the token's byte offset in the expression.
fn value(ctx: &Ctx<'_>, s: &[u8], start: usize) -> Result<u32, ParseError> {
    let end = start + s.len();
    if let Some(n) = number(s) {
        let (lo, hi) = bounds(ctx.field);
        if n < lo || n > hi {
            return Err(ctx.err(ParseErrorKind::OutOfRange, start, end));
        }
        return Ok(n);
    }
    let names: &[&[u8; 3]] = match ctx.field {
        Field::Month => &MONTHS,
        Field::DayOfWeek => &DAYS,
        _ => &[],
    };
    if s.len() == 3 {
        for (i, name) in names.iter().enumerate() {
            if s.eq_ignore_ascii_case(&name[..]) {
                let i = i as u32;
                return Ok(if ctx.field == Field::Month { i + 1 } else { i });
            }
        }
    }
    let kind = if !names.is_empty() && s.iter().all(u8::is_ascii_alphabetic) {
        ParseErrorKind::OutOfRange
    } else {
        ParseErrorKind::Syntax {
            expected: forms(ctx.field),
        }
    };
    Err(ctx.err(kind, start, end))
}

/// Calls `f` for every s-th value of the range `a-b`, wrapping past the end of
/// the field when `a > b`.
#[inline]
fn range(field: Field, mut a: u32, b: u32, step: u32, mut f: impl FnMut(u32)) {
    let (lo, mut hi) = bounds(field);
    if field == Field::DayOfWeek {
        // 7 is Sunday: `7-3` is `0-3`, and a wrapped range cycles through 0-6.
        if a == 7 && b < 7 {
            a = 0;
        }
        hi = 6;
    }
    if a <= b {
        let mut v = a;
        while v <= b {
            f(v);
            v += step;
        }
    } else {
        let len = hi - lo + 1;
        let count = (hi - a + 1) + (b - lo + 1);
        let mut i = 0;
        while i < count {
            let v = a + i;
            f(if v > hi { v - len } else { v });
            i += step;
        }
    }
}

/// Splits `s` at the first `c`.
#[inline]
fn split_at_byte(s: &[u8], c: u8) -> Option<(&[u8], &[u8])> {
    let i = s.iter().position(|&b| b == c)?;
    Some((&s[..i], &s[i + 1..]))
}

/// Parses one comma-separated item of a field into `out`.
fn item(ctx: &Ctx<'_>, s: &[u8], start: usize, out: &mut FieldBits) -> Result<(), ParseError> {
    let end = start + s.len();
    let field = ctx.field;
    if s.is_empty() {
        return Err(ctx.err(
            ParseErrorKind::Syntax {
                expected: forms(field),
            },
            start,
            end,
        ));
    }
    if field == Field::DayOfMonth && (s[0] == b'L' || s[0] == b'l') {
        let rest = &s[1..];
        if rest.is_empty() {
            out.last_offsets |= 1;
            return Ok(());
        }
        if rest.eq_ignore_ascii_case(b"W") {
            out.last_weekday = true;
            return Ok(());
        }
        if rest[0] == b'-' {
            return match number(&rest[1..]) {
                Some(n) if n <= 30 => {
                    out.last_offsets |= 1 << n;
                    Ok(())
                }
                Some(_) => Err(ctx.err(
                    ParseErrorKind::InvalidSpecial {
                        allowed: "the offset in L-n must be 0-30",
                    },
                    start,
                    end,
                )),
                None => Err(ctx.err(
                    ParseErrorKind::Syntax {
                        expected: forms(field),
                    },
                    start,
                    end,
                )),
            };
        }
        return Err(ctx.err(
            ParseErrorKind::Syntax {
                expected: forms(field),
            },
            start,
            end,
        ));
    }
    let last = s[s.len() - 1];
    if field == Field::DayOfMonth && (last == b'W' || last == b'w') {
        let n = &s[..s.len() - 1];
        return match number(n) {
            Some(n) if (1..=31).contains(&n) => {
                out.nearest |= 1 << n;
                Ok(())
            }
            Some(_) => Err(ctx.err(
                ParseErrorKind::InvalidSpecial {
                    allowed: "the day in nW must be 1-31",
                },
                start,
                end,
            )),
            None => Err(ctx.err(
                ParseErrorKind::Syntax {
                    expected: forms(field),
                },
                start,
                end,
            )),
        };
    }
    if field == Field::DayOfWeek {
        if (last == b'L' || last == b'l') && s.len() > 1 {
            let d = value(ctx, &s[..s.len() - 1], start)?;
            out.dow_last |= 1 << (d % 7);
            return Ok(());
        }
        if let Some((d, k)) = split_at_byte(s, b'#') {
            let d = value(ctx, d, start)?;
            return match number(k) {
                Some(k) if (1..=5).contains(&k) => {
                    out.dow_nth |= 1 << ((d % 7) * 5 + k - 1);
                    Ok(())
                }
                _ => Err(ctx.err(
                    ParseErrorKind::InvalidSpecial {
                        allowed: "the occurrence after # must be 1-5",
                    },
                    start,
                    end,
                )),
            };
        }
    }
    let (base, step) = match split_at_byte(s, b'/') {
        Some((base, step_text)) => {
            let step_start = start + base.len() + 1;
            match number(step_text) {
                Some(n) if n >= 1 => (base, Some(n)),
                _ => {
                    return Err(ctx.err(ParseErrorKind::InvalidStep, step_start, end));
                }
            }
        }
        None => (s, None),
    };
    let (lo, hi) = bounds(field);
    let max = if field == Field::DayOfWeek { 6 } else { hi };
    if base == b"*" || base == b"?" {
        if base == b"?" && field != Field::DayOfMonth && field != Field::DayOfWeek {
            return Err(ctx.err(
                ParseErrorKind::Syntax {
                    expected: forms(field),
                },
                start,
                start + 1,
            ));
        }
        out.add_range(field, lo, max, step.unwrap_or(1));
        return Ok(());
    }
    if base.is_empty() {
        return Err(ctx.err(
            ParseErrorKind::Syntax {
                expected: forms(field),
            },
            start,
            end,
        ));
    }
    let (a, b) = match split_at_byte(base, b'-') {
        Some((a_text, b_text)) => {
            if a_text.is_empty() || b_text.is_empty() {
                return Err(ctx.err(
                    ParseErrorKind::Syntax {
                        expected: forms(field),
                    },
                    start,
                    start + base.len(),
                ));
            }
            let a = value(ctx, a_text, start)?;
            let b = value(ctx, b_text, start + a_text.len() + 1)?;
            (a, b)
        }
        None => {
            let a = value(ctx, base, start)?;
            match step {
                // `a/s` is `a-max/s`; Sunday written as 7 counts as 0 here.
                Some(_) => (
                    if field == Field::DayOfWeek && a == 7 {
                        0
                    } else {
                        a
                    },
                    max,
                ),
                None => (a, a),
            }
        }
    };
    out.add_range(field, a, b, step.unwrap_or(1));
    Ok(())
}

/// Parses one field's text (`start` is its byte offset in the expression).
fn field(ctx: &Ctx<'_>, text: &[u8], start: usize) -> Result<FieldBits, ParseError> {
    let mut out = FieldBits::default();
    let mut pos = 0;
    loop {
        let rest = &text[pos..];
        let len = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        item(ctx, &rest[..len], start + pos, &mut out)?;
        pos += len + 1;
        if pos > text.len() {
            break;
        }
    }
    if ctx.field == Field::DayOfWeek {
        // 7 is Sunday.
        out.bits = (out.bits | out.bits >> 7) & 0x7f;
    }
    Ok(out)
}

#[inline]
fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

const FIELDS_5: [Field; 5] = [
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
];
const FIELDS_6: [Field; 6] = [
    Field::Second,
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
];
const FIELDS_7: [Field; 7] = [
    Field::Second,
    Field::Minute,
    Field::Hour,
    Field::DayOfMonth,
    Field::Month,
    Field::DayOfWeek,
    Field::Year,
];

/// The expansion of a macro.
fn macro_fields(name: &[u8]) -> Option<&'static str> {
    const TABLE: [(&[u8], &str); 7] = [
        (b"@yearly", "0 0 1 1 *"),
        (b"@annually", "0 0 1 1 *"),
        (b"@monthly", "0 0 1 * *"),
        (b"@weekly", "0 0 * * 0"),
        (b"@daily", "0 0 * * *"),
        (b"@midnight", "0 0 * * *"),
        (b"@hourly", "0 * * * *"),
    ];
    TABLE
        .iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, e)| *e)
}

pub(crate) fn parse(expr: &str) -> Result<Cron, ParseError> {
    let bytes = expr.as_bytes();
    let mut spans = [(0usize, 0usize); 7];
    let mut count = 0;
    let mut i = 0;
    while i < bytes.len() {
        if is_blank(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_blank(bytes[i]) {
            i += 1;
        }
        if count < 7 {
            spans[count] = (start, i);
        }
        count += 1;
    }
    if count > 0 && bytes[spans[0].0] == b'@' {
        let (s, e) = spans[0];
        if count == 1
            && let Some(expansion) = macro_fields(&bytes[s..e])
        {
            return parse(expansion);
        }
        let end = if count == 1 {
            e
        } else {
            expr.trim_end_matches([' ', '\t']).len()
        };
        return Err(ParseError::new(
            expr,
            ParseErrorKind::UnknownMacro,
            None,
            s..end,
        ));
    }
    let fields: &[Field] = match count {
        5 => &FIELDS_5,
        6 => &FIELDS_6,
        7 => &FIELDS_7,
        _ => {
            let trimmed = expr.trim_start_matches([' ', '\t']);
            let start = expr.len() - trimmed.len();
            let end = start + trimmed.trim_end_matches([' ', '\t']).len();
            return Err(ParseError::new(
                expr,
                ParseErrorKind::FieldCount { found: count },
                None,
                start..end,
            ));
        }
    };
    let mut cron = Cron {
        seconds: 1,
        minutes: 0,
        hours: 0,
        days_of_month: 0,
        dom_last_offsets: 0,
        dom_last_weekday: false,
        dom_nearest_weekday: 0,
        months: 0,
        days_of_week: 0,
        dow_last: 0,
        dow_nth: 0,
        years: None,
        dom_restricted: false,
        dow_restricted: false,
        minute_star: false,
        hour_star: false,
        field_count: count as u8,
        dst: DstPolicy::default(),
    };
    for (n, (&f, &(s, e))) in fields.iter().zip(spans.iter()).enumerate() {
        let text = &bytes[s..e];
        let ctx = Ctx {
            expr,
            field: f,
            number: n + 1,
        };
        let bits = field(&ctx, text, s)?;
        let star = text[0] == b'*' || text[0] == b'?';
        match f {
            Field::Second => cron.seconds = bits.bits,
            Field::Minute => {
                cron.minutes = bits.bits;
                cron.minute_star = star;
            }
            Field::Hour => {
                cron.hours = bits.bits as u32;
                cron.hour_star = star;
            }
            Field::DayOfMonth => {
                cron.days_of_month = bits.bits as u32;
                cron.dom_last_offsets = bits.last_offsets;
                cron.dom_last_weekday = bits.last_weekday;
                cron.dom_nearest_weekday = bits.nearest;
                cron.dom_restricted = !star;
            }
            Field::Month => cron.months = bits.bits as u16,
            Field::DayOfWeek => {
                cron.days_of_week = bits.bits as u8;
                cron.dow_last = bits.dow_last;
                cron.dow_nth = bits.dow_nth;
                cron.dow_restricted = !star;
            }
            Field::Year => {
                if text != b"*" {
                    cron.years = Some(YearSet(bits.years));
                }
            }
        }
    }
    if !cron.ever_fires() {
        let (s, _) = spans[0];
        let (_, e) = spans[count - 1];
        return Err(ParseError::new(
            expr,
            ParseErrorKind::NeverFires,
            None,
            s..e,
        ));
    }
    Ok(cron)
}
