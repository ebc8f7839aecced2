//! `myrmex cron next|prev|explain`: the real binary, asserting stdout, stderr and
//! the exit status.

use std::process::{Command, Output};

/// Runs `myrmex cron ARGS` with `TZ` set, so the "system zone" is known.
fn cron(tz_env: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_myrmex"))
        .arg("cron")
        .args(args)
        .env("TZ", tz_env)
        .output()
        .expect("the myrmex binary runs")
}

fn stdout(o: &Output) -> &str {
    std::str::from_utf8(&o.stdout).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> &str {
    std::str::from_utf8(&o.stderr).expect("utf-8 stderr")
}

/// Asserts success, an empty stderr and exactly these stdout lines.
#[track_caller]
fn check_ok(args: &[&str], want: &[&str]) {
    let o = cron("UTC", args);
    assert_eq!(stderr(&o), "", "stderr of {args:?}");
    assert_eq!(o.status.code(), Some(0), "status of {args:?}");
    let want: String = want.iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(stdout(&o), want, "stdout of {args:?}");
}

/// Asserts exit status 2, nothing on stdout and exactly this stderr.
#[track_caller]
fn check_err(args: &[&str], want_stderr: &str) {
    let o = cron("UTC", args);
    assert_eq!(stdout(&o), "", "stdout of {args:?}");
    assert_eq!(o.status.code(), Some(2), "status of {args:?}");
    assert_eq!(stderr(&o), want_stderr, "stderr of {args:?}");
}

#[test]
fn next_new_york_spring_forward_fixed_time() {
    check_ok(
        &[
            "next",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T03:00:00-05:00",
            "--count",
            "3",
        ],
        &[
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
        ],
    );
}

#[test]
fn next_new_york_fall_back() {
    // Fixed-time: once, at the earlier instant.
    check_ok(
        &[
            "next",
            "30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-10-31T12:00:00Z",
            "--count",
            "2",
        ],
        &["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"],
    );
    // Wildcard: at both instants.
    check_ok(
        &[
            "next",
            "*/30 1 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-11-01T00:00:00-04:00",
            "--count",
            "4",
        ],
        &[
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-01T01:00:00-05:00",
            "2026-11-01T01:30:00-05:00",
        ],
    );
}

#[test]
fn next_defaults_count_five_and_strictly_after() {
    check_ok(
        &[
            "next",
            "@daily",
            "--tz",
            "UTC",
            "--after",
            "2026-01-01T00:00:00Z",
        ],
        &[
            "2026-01-02T00:00:00+00:00",
            "2026-01-03T00:00:00+00:00",
            "2026-01-04T00:00:00+00:00",
            "2026-01-05T00:00:00+00:00",
            "2026-01-06T00:00:00+00:00",
        ],
    );
}

#[test]
fn next_odd_offsets_and_seconds() {
    check_ok(
        &[
            "next",
            "0 0 * * *",
            "--tz",
            "Asia/Kolkata",
            "--after",
            "2026-01-01T00:00:00Z",
            "--count",
            "1",
        ],
        &["2026-01-02T00:00:00+05:30"],
    );
    check_ok(
        &[
            "next",
            "0 0 * * *",
            "--tz",
            "Pacific/Chatham",
            "--after",
            "2026-01-01T00:00:00Z",
            "--count",
            "1",
        ],
        &["2026-01-02T00:00:00+13:45"],
    );
    check_ok(
        &[
            "next",
            "*/20 * * * * *",
            "--tz",
            "UTC",
            "--after",
            "2026-01-01T00:00:00Z",
            "--count",
            "3",
        ],
        &[
            "2026-01-01T00:00:20+00:00",
            "2026-01-01T00:00:40+00:00",
            "2026-01-01T00:01:00+00:00",
        ],
    );
}

#[test]
fn next_uses_the_system_zone_by_default() {
    let o = cron(
        "America/New_York",
        &[
            "next",
            "30 2 * * *",
            "--after",
            "2026-03-07T03:00:00-05:00",
            "--count",
            "1",
        ],
    );
    assert_eq!(
        (stdout(&o), stderr(&o), o.status.code()),
        ("2026-03-08T03:00:00-04:00\n", "", Some(0))
    );
}

#[test]
fn next_defaults_to_now() {
    let o = cron("UTC", &["next", "* * * * *"]);
    assert_eq!((stderr(&o), o.status.code()), ("", Some(0)));
    let lines: Vec<&str> = stdout(&o).lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.len() == 25 && l.ends_with(":00+00:00")),
        "{lines:?}"
    );
}

#[test]
fn fewer_lines_only_when_the_schedule_ends() {
    check_ok(
        &[
            "next",
            "0 0 0 1 1 * 2026-2027",
            "--tz",
            "UTC",
            "--after",
            "2025-06-01T00:00:00Z",
        ],
        &["2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"],
    );
    check_ok(
        &[
            "next",
            "0 0 0 1 1 * 2026",
            "--tz",
            "UTC",
            "--after",
            "2026-06-01T00:00:00Z",
        ],
        &[],
    );
}

#[test]
fn prev_goes_backwards_strictly_before() {
    check_ok(
        &[
            "prev",
            "0 0 * * *",
            "--tz",
            "UTC",
            "--before",
            "2026-01-01T00:00:00Z",
            "--count",
            "2",
        ],
        &["2025-12-31T00:00:00+00:00", "2025-12-30T00:00:00+00:00"],
    );
    check_ok(
        &[
            "prev",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--before",
            "2026-03-08T12:00:00-04:00",
            "--count",
            "2",
        ],
        &["2026-03-08T03:00:00-04:00", "2026-03-07T02:30:00-05:00"],
    );
}

#[test]
fn invalid_expression_points_at_the_field() {
    check_err(
        &["next", "0 60 * * *", "--tz", "UTC"],
        "error: invalid hour \"60\": must be 0-23 (field 2, column 3)\n  0 60 * * *\n    ^^\n",
    );
    // An expression that starts like a flag is still an expression.
    let o = cron("UTC", &["next", "-5 * * * *", "--tz", "UTC"]);
    assert_eq!((stdout(&o), o.status.code()), ("", Some(2)));
    let err: Vec<&str> = stderr(&o).lines().collect();
    assert!(
        err[0].starts_with("error: invalid minute \"-5\""),
        "{err:?}"
    );
    assert_eq!(err[1..], ["  -5 * * * *", "  ^^"]);
    // Blanks around the expression are kept so the caret stays under the text.
    let o = cron("UTC", &["next", "  0 0 1 * MON#6 "]);
    let err: Vec<&str> = stderr(&o).lines().collect();
    assert!(
        err[0].starts_with("error: invalid day-of-week \"MON#6\""),
        "{err:?}"
    );
    assert_eq!(err[1..], ["    0 0 1 * MON#6 ", "            ^^^^^"]);
    let o = cron("UTC", &["explain", "0 0 30 2 *", "--json"]);
    assert_eq!((stdout(&o), o.status.code()), ("", Some(2)));
    assert!(stderr(&o).contains("never"), "{}", stderr(&o));
    let o = cron("UTC", &["prev", "* * *"]);
    assert_eq!((stdout(&o), o.status.code()), ("", Some(2)));
    assert!(
        stderr(&o).starts_with("error: expected 5, 6 or 7 fields"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_zone_and_instant() {
    let o = cron("UTC", &["next", "* * * * *", "--tz", "Mars/Olympus"]);
    assert_eq!((stdout(&o), o.status.code()), ("", Some(2)));
    assert!(
        stderr(&o).starts_with("error: unknown time zone \"Mars/Olympus\""),
        "{}",
        stderr(&o)
    );
    for bad in ["2026-03-07", "2026-03-07T00:00:00", "yesterday"] {
        let o = cron("UTC", &["next", "* * * * *", "--after", bad]);
        assert_eq!((stdout(&o), o.status.code()), ("", Some(2)), "{bad}");
        assert!(
            stderr(&o).starts_with(&format!("error: invalid instant {bad:?} for --after")),
            "{}",
            stderr(&o)
        );
    }
    let o = cron("UTC", &["prev", "* * * * *", "--before", "nope"]);
    assert_eq!((stdout(&o), o.status.code()), ("", Some(2)));
    assert!(stderr(&o).starts_with("error: invalid instant \"nope\" for --before"));
}

#[test]
fn next_json() {
    let o = cron(
        "UTC",
        &[
            "next",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T03:00:00-05:00",
            "--count",
            "2",
            "--json",
        ],
    );
    assert_eq!((stderr(&o), o.status.code()), ("", Some(0)));
    let v: serde_json::Value = serde_json::from_str(stdout(&o)).expect("valid JSON");
    assert_eq!(
        v,
        serde_json::json!({
            "expression": "30 2 * * *",
            "canonical": "30 2 * * *",
            "timezone": "America/New_York",
            "after": "2026-03-07T03:00:00-05:00",
            "times": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
        })
    );
    let o = cron(
        "UTC",
        &[
            "prev",
            "@hourly",
            "--tz",
            "UTC",
            "--before",
            "2026-01-01T00:00:00Z",
            "--count",
            "1",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(stdout(&o)).expect("valid JSON");
    assert_eq!(v["before"], "2026-01-01T00:00:00+00:00");
    assert_eq!(v["times"], serde_json::json!(["2025-12-31T23:00:00+00:00"]));
}

#[test]
fn explain_text() {
    check_ok(
        &[
            "explain",
            "30 2 * * *",
            "--tz",
            "America/New_York",
            "--after",
            "2026-03-07T03:00:00-05:00",
            "--count",
            "2",
        ],
        &[
            "At 02:30, every day",
            "",
            "expression  30 2 * * *",
            "canonical   30 2 * * *",
            "time zone   America/New_York",
            "after       2026-03-07T03:00:00-05:00",
            "next        2026-03-08T03:00:00-04:00",
            "            2026-03-09T02:30:00-04:00",
            "",
            "warnings:",
            "  - on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: 02:30 does not exist and fires once at 03:00 instead",
        ],
    );
}

#[test]
fn explain_json() {
    let o = cron(
        "UTC",
        &[
            "explain",
            "0 0 1,15 * MON",
            "--tz",
            "UTC",
            "--after",
            "2026-01-01T00:00:00Z",
            "--count",
            "3",
            "--json",
        ],
    );
    assert_eq!((stderr(&o), o.status.code()), ("", Some(0)));
    let v: serde_json::Value = serde_json::from_str(stdout(&o)).expect("valid JSON");
    assert_eq!(
        v["description"],
        "At 00:00 on day 1 and 15 of the month, and on Monday"
    );
    assert_eq!(v["canonical"], "0 0 1,15 * 1");
    assert_eq!(
        v["next"],
        serde_json::json!([
            "2026-01-05T00:00:00+00:00",
            "2026-01-12T00:00:00+00:00",
            "2026-01-15T00:00:00+00:00"
        ])
    );
    assert_eq!(v["warnings"][0]["code"], "day-or-rule");
    assert_eq!(v["fields"]["days_of_month"], serde_json::json!([1, 15]));
    assert_eq!(v["fields"]["days_of_week"], serde_json::json!([1]));
    assert_eq!(v["fields"]["days_use_or_rule"], true);
    assert_eq!(v["fields"]["fixed_time"], true);
    assert_eq!(v["fields"]["years"], serde_json::Value::Null);
}
