//! Error tests: which field, which text, which column, what message.

use myrmex_cron::{Cron, Field, ParseErrorKind};

/// Asserts that `expr` is rejected for `field` at `column` with `message`.
fn check(expr: &str, field: Option<Field>, column: usize, message: &str) {
    let err = match Cron::parse(expr) {
        Ok(c) => panic!("{expr:?} should be rejected, got {c:?}"),
        Err(e) => e,
    };
    assert_eq!(err.field(), field, "{expr:?}: {err}");
    assert_eq!(err.column(), column, "{expr:?}: {err}");
    assert_eq!(err.to_string(), message, "{expr:?}");
    let span = err.span();
    assert_eq!(&expr[span], err.text(), "{expr:?}");
    assert_eq!(expr[..err.span().start].chars().count() + 1, column);
}

#[test]
fn messages() {
    use Field::*;
    let table: &[(&str, Option<Field>, usize, &str)] = &[
        (
            "60 * * * *",
            Some(Minute),
            1,
            r#"invalid minute "60": must be 0-59 (field 1, column 1)"#,
        ),
        (
            "* 60 * * *",
            Some(Hour),
            3,
            r#"invalid hour "60": must be 0-23 (field 2, column 3)"#,
        ),
        (
            "0 0 32 * *",
            Some(DayOfMonth),
            5,
            r#"invalid day-of-month "32": must be 1-31 (field 3, column 5)"#,
        ),
        (
            "0 0 0 * *",
            Some(DayOfMonth),
            5,
            r#"invalid day-of-month "0": must be 1-31 (field 3, column 5)"#,
        ),
        (
            "0 0 * 13 *",
            Some(Month),
            7,
            r#"invalid month "13": must be 1-12 or JAN-DEC (field 4, column 7)"#,
        ),
        (
            "0 0 * FOO *",
            Some(Month),
            7,
            r#"invalid month "FOO": must be 1-12 or JAN-DEC (field 4, column 7)"#,
        ),
        (
            "0 0 * * 8",
            Some(DayOfWeek),
            9,
            r#"invalid day-of-week "8": must be 0-7 or SUN-SAT (field 5, column 9)"#,
        ),
        (
            "60 0 0 * * *",
            Some(Second),
            1,
            r#"invalid second "60": must be 0-59 (field 1, column 1)"#,
        ),
        (
            "0 0 0 * * * 1969",
            Some(Year),
            13,
            r#"invalid year "1969": must be 1970-2199 (field 7, column 13)"#,
        ),
        (
            "1-70 * * * *",
            Some(Minute),
            3,
            r#"invalid minute "70": must be 0-59 (field 1, column 3)"#,
        ),
        (
            "*/0 * * * *",
            Some(Minute),
            3,
            r#"invalid minute step "0": must be a number of at least 1 (field 1, column 3)"#,
        ),
        (
            "0 0 * * MON#6",
            Some(DayOfWeek),
            9,
            r#"invalid day-of-week "MON#6": the occurrence after # must be 1-5 (field 5, column 9)"#,
        ),
        (
            "0 0 L-31 * *",
            Some(DayOfMonth),
            5,
            r#"invalid day-of-month "L-31": the offset in L-n must be 0-30 (field 3, column 5)"#,
        ),
        (
            "0 0 32W * *",
            Some(DayOfMonth),
            5,
            r#"invalid day-of-month "32W": the day in nW must be 1-31 (field 3, column 5)"#,
        ),
        (
            "? * * * *",
            Some(Minute),
            1,
            r#"invalid minute "?": expected a number, a range a-b, a step */s or a-b/s, *, or a comma-separated list of these (field 1, column 1)"#,
        ),
        (
            "1,,2 * * * *",
            Some(Minute),
            3,
            r#"invalid minute "": expected a number, a range a-b, a step */s or a-b/s, *, or a comma-separated list of these (field 1, column 3)"#,
        ),
        (
            "* * * *",
            None,
            1,
            "expected 5, 6 or 7 fields (or a macro such as @daily), found 4 (column 1)",
        ),
        (
            "",
            None,
            1,
            "expected 5, 6 or 7 fields (or a macro such as @daily), found 0 (column 1)",
        ),
        (
            "  * * * * * * * *",
            None,
            3,
            "expected 5, 6 or 7 fields (or a macro such as @daily), found 8 (column 3)",
        ),
        (
            "@often",
            None,
            1,
            r#"unknown macro "@often": expected one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, alone (column 1)"#,
        ),
        (
            "0 0 30 2 *",
            None,
            1,
            r#"expression "0 0 30 2 *" never fires: no date between 1970 and 2199 matches its day-of-month, month, day-of-week and year fields (column 1)"#,
        ),
    ];
    for &(expr, field, column, message) in table {
        check(expr, field, column, message);
    }
}

#[test]
fn never_fires() {
    for expr in [
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
        "0 0 0 29 2 * 2027",
        "0 0 0 29 2 * 2100",
        "0 0 0 31 2 * *",
        "0 0 30,31 FEB *",
        "0 0 0 29 2 * 2025-2027",
        "0 0 0 * 2 MON#5 2027",
        "0 0 31W 4 *",
    ] {
        let err = Cron::parse(expr).expect_err(expr);
        assert_eq!(err.kind(), &ParseErrorKind::NeverFires, "{expr:?}: {err}");
    }
    for expr in [
        "0 0 29 2 *",
        "0 0 0 29 2 * 2028",
        "0 0 * 2 MON#5",
        "0 0 30 2 MON",
        "0 0 31 4 *",
    ] {
        let ok = Cron::parse(expr);
        assert!(ok.is_ok() != expr.contains("31 4 *"), "{expr:?}: {ok:?}");
    }
}

#[test]
fn kinds() {
    let table: &[(&str, ParseErrorKind)] = &[
        (
            "a * * * *",
            ParseErrorKind::Syntax {
                expected: "a number, a range a-b, a step */s or a-b/s, *, or a comma-separated list of these",
            },
        ),
        ("* * * * * * * *", ParseErrorKind::FieldCount { found: 8 }),
        ("@daily 5", ParseErrorKind::UnknownMacro),
        ("1/x * * * *", ParseErrorKind::InvalidStep),
        ("61 * * * *", ParseErrorKind::OutOfRange),
    ];
    for (expr, kind) in table {
        let err = Cron::parse(expr).expect_err(expr);
        assert_eq!(err.kind(), kind, "{expr:?}: {err}");
    }
}

#[test]
fn non_ascii_spans_are_in_bytes_and_columns_in_chars() {
    let expr = "0 0 * * é";
    let err = Cron::parse(expr).expect_err(expr);
    assert_eq!(err.field(), Some(Field::DayOfWeek));
    assert_eq!(err.span(), 8..10);
    assert_eq!(err.column(), 9);
    assert_eq!(err.text(), "é");
}
