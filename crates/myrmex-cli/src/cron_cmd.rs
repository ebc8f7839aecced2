//! `myrmex cron next|prev|explain`: fire times and explanations of a cron
//! expression. Glue over `myrmex-cron`; every rule lives in the library.
//!
//! Output contract (see `shared/docs/cron-dialect.md`): `next` and `prev` print one
//! RFC 3339 time per line with the zone's offset at that instant and seconds always
//! shown, nothing else on stdout. Invalid input prints nothing on stdout, the error
//! on stderr (with a caret under the offending part of the expression) and exits
//! with [`exit_codes::INVALID_INPUT`].

use std::io::{self, Write};

use clap::{Args, Subcommand};
use jiff::{Timestamp, tz::TimeZone};
use myrmex_cron::{Cron, ParseError};
use serde_json::{Value, json};

use crate::exit_codes;

/// `myrmex cron` subcommands.
#[derive(Debug, Subcommand)]
pub enum CronCommand {
    /// Print the next fire times of an expression, one RFC 3339 time per line.
    Next {
        #[command(flatten)]
        common: Common,
        /// Start instant, RFC 3339 with an offset or `Z` (default: now); results are
        /// strictly after it.
        #[arg(long, value_name = "INSTANT")]
        after: Option<String>,
    },
    /// Print the previous fire times of an expression, latest first.
    Prev {
        #[command(flatten)]
        common: Common,
        /// Start instant, RFC 3339 with an offset or `Z` (default: now); results are
        /// strictly before it.
        #[arg(long, value_name = "INSTANT")]
        before: Option<String>,
    },
    /// Describe an expression in English, with its next fire times and warnings.
    Explain {
        #[command(flatten)]
        common: Common,
        /// Start instant, RFC 3339 with an offset or `Z` (default: now).
        #[arg(long, value_name = "INSTANT")]
        after: Option<String>,
        /// How many years ahead to look for daylight-saving gaps and folds.
        #[arg(long, default_value_t = 1, value_name = "N")]
        years: u32,
    },
}

/// Arguments shared by every `myrmex cron` subcommand.
#[derive(Debug, Args)]
pub struct Common {
    /// The cron expression (quote it), e.g. "30 2 * * *" or @daily.
    #[arg(value_name = "EXPR", allow_hyphen_values = true)]
    expr: String,
    /// IANA time zone name, e.g. America/New_York or UTC (default: the system's zone).
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    /// How many fire times to print.
    #[arg(long, default_value_t = 5, value_name = "N")]
    count: usize,
    /// Print one JSON object instead of text (shape documented in the README).
    #[arg(long)]
    json: bool,
}

/// Invalid input, already formatted for stderr.
struct InputError(String);

/// Runs a `myrmex cron` subcommand and returns the exit code.
pub fn run(cmd: CronCommand) -> u8 {
    let stdout = io::stdout();
    let stderr = io::stderr();
    execute(
        cmd,
        Timestamp::now(),
        &TimeZone::system(),
        &mut stdout.lock(),
        &mut stderr.lock(),
    )
}

/// [`run`] with the clock, the system zone and the streams passed in.
fn execute(
    cmd: CronCommand,
    now: Timestamp,
    system_tz: &TimeZone,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> u8 {
    let text = match render(cmd, now, system_tz) {
        Ok(text) => text,
        Err(InputError(msg)) => {
            // A closed stderr leaves nothing better to do than exit with the code.
            let _ = err.write_all(msg.as_bytes());
            return exit_codes::INVALID_INPUT;
        }
    };
    // Output is built whole first, so an error never leaves half an answer on stdout.
    // A closed pipe (`| head -1`) is not a failure of the command.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    exit_codes::OK
}

fn render(cmd: CronCommand, now: Timestamp, system_tz: &TimeZone) -> Result<String, InputError> {
    match cmd {
        CronCommand::Next { common, after } => {
            let (cron, tz) = inputs(&common, system_tz)?;
            let start = instant(after.as_deref(), "--after", now)?;
            let times = fire_times(&cron, &tz, start, common.count, Direction::Forward);
            Ok(times_output(&common, &cron, &tz, "after", start, &times))
        }
        CronCommand::Prev { common, before } => {
            let (cron, tz) = inputs(&common, system_tz)?;
            let start = instant(before.as_deref(), "--before", now)?;
            let times = fire_times(&cron, &tz, start, common.count, Direction::Backward);
            Ok(times_output(&common, &cron, &tz, "before", start, &times))
        }
        CronCommand::Explain {
            common,
            after,
            years,
        } => {
            let (cron, tz) = inputs(&common, system_tz)?;
            let start = instant(after.as_deref(), "--after", now)?;
            Ok(explain(&common, &cron, &tz, start, years))
        }
    }
}

fn inputs(common: &Common, system_tz: &TimeZone) -> Result<(Cron, TimeZone), InputError> {
    let cron = Cron::parse(&common.expr).map_err(|e| InputError(parse_error(&common.expr, &e)))?;
    let tz = match &common.tz {
        None => system_tz.clone(),
        Some(name) => TimeZone::get(name).map_err(|e| {
            InputError(format!(
                "error: unknown time zone {name:?}: {e}\n  expected an IANA name such as America/New_York, or UTC\n"
            ))
        })?,
    };
    Ok((cron, tz))
}

fn instant(text: Option<&str>, flag: &str, now: Timestamp) -> Result<Timestamp, InputError> {
    match text {
        None => Ok(now),
        Some(t) => t.parse().map_err(|e| {
            InputError(format!(
                "error: invalid instant {t:?} for {flag}: {e}\n  expected RFC 3339 with an offset or Z, e.g. 2026-03-07T00:00:00Z\n"
            ))
        }),
    }
}

/// The parse error followed by the expression with a caret under the offending text.
fn parse_error(expr: &str, e: &ParseError) -> String {
    let span = e.span();
    let start = span.start.min(expr.len());
    let end = span.end.clamp(start, expr.len());
    // Keep tabs in the caret line so the caret lines up under tab-separated fields.
    let pad: String = expr
        .get(..start)
        .unwrap_or("")
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    let width = expr.get(start..end).map_or(0, |s| s.chars().count()).max(1);
    format!("error: {e}\n  {expr}\n  {pad}{}\n", "^".repeat(width))
}

#[derive(Clone, Copy)]
enum Direction {
    Forward,
    Backward,
}

fn fire_times(
    cron: &Cron,
    tz: &TimeZone,
    start: Timestamp,
    count: usize,
    dir: Direction,
) -> Vec<Timestamp> {
    let mut times = Vec::with_capacity(count.min(1024));
    let mut t = start;
    while times.len() < count {
        let next = match dir {
            Direction::Forward => cron.next_timestamp_after(t, tz),
            Direction::Backward => cron.prev_timestamp_before(t, tz),
        };
        match next {
            Some(n) => {
                times.push(n);
                t = n;
            }
            None => break,
        }
    }
    times
}

/// RFC 3339 with the zone's offset at that instant and seconds always shown.
fn rfc3339(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn zone_name(tz: &TimeZone) -> Option<&str> {
    tz.iana_name()
}

fn times_output(
    common: &Common,
    cron: &Cron,
    tz: &TimeZone,
    key: &str,
    start: Timestamp,
    times: &[Timestamp],
) -> String {
    let lines: Vec<String> = times.iter().map(|&t| rfc3339(t, tz)).collect();
    if common.json {
        let mut doc = json!({
            "expression": common.expr,
            "canonical": cron.to_string(),
            "timezone": zone_name(tz),
        });
        doc[key] = Value::from(rfc3339(start, tz));
        doc["times"] = Value::from(lines);
        return format!("{doc:#}\n");
    }
    let mut s = String::new();
    for l in lines {
        s.push_str(&l);
        s.push('\n');
    }
    s
}

fn explain(common: &Common, cron: &Cron, tz: &TimeZone, start: Timestamp, years: u32) -> String {
    let times: Vec<String> = fire_times(cron, tz, start, common.count, Direction::Forward)
        .into_iter()
        .map(|t| rfc3339(t, tz))
        .collect();
    let warnings = cron.warnings(tz, start, years);
    let description = cron.describe();
    let zone = zone_name(tz).map_or_else(|| "the system zone".to_owned(), str::to_owned);
    if common.json {
        let f = cron.fields();
        let list = |s: &myrmex_cron::ValueSet| s.iter().collect::<Vec<u16>>();
        let doc = json!({
            "expression": common.expr,
            "canonical": cron.to_string(),
            "description": description,
            "timezone": zone_name(tz),
            "after": rfc3339(start, tz),
            "next": times,
            "warnings": warnings.iter().map(|w| json!({"code": w.code(), "message": w.to_string()})).collect::<Vec<_>>(),
            "fields": {
                "field_count": f.field_count,
                "seconds": list(&f.seconds),
                "minutes": list(&f.minutes),
                "hours": list(&f.hours),
                "days_of_month": list(&f.days_of_month),
                "last_day_offsets": list(&f.last_day_offsets),
                "last_weekday": f.last_weekday,
                "nearest_weekdays": list(&f.nearest_weekdays),
                "months": list(&f.months),
                "days_of_week": list(&f.days_of_week),
                "last_days_of_week": list(&f.last_days_of_week),
                "nth_days_of_week": f.nth_days_of_week.iter().map(|(d, k)| json!([d, k])).collect::<Vec<_>>(),
                "years": f.years.as_ref().map(list),
                "day_of_month_restricted": f.day_of_month_restricted,
                "day_of_week_restricted": f.day_of_week_restricted,
                "days_use_or_rule": f.days_use_or_rule(),
                "fixed_time": f.is_fixed_time(),
            },
        });
        return format!("{doc:#}\n");
    }
    let mut s = String::new();
    s.push_str(&format!("{description}\n\n"));
    s.push_str(&format!("expression  {}\n", common.expr));
    s.push_str(&format!("canonical   {cron}\n"));
    s.push_str(&format!("time zone   {zone}\n"));
    s.push_str(&format!("after       {}\n", rfc3339(start, tz)));
    if times.is_empty() {
        s.push_str("next        (no more fire times)\n");
    }
    for (i, t) in times.iter().enumerate() {
        s.push_str(if i == 0 {
            "next        "
        } else {
            "            "
        });
        s.push_str(t);
        s.push('\n');
    }
    if !warnings.is_empty() {
        s.push_str("\nwarnings:\n");
        for w in &warnings {
            s.push_str(&format!("  - {w}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_under_the_offending_text() {
        let expr = "0 60 * * *";
        let e = Cron::parse(expr).unwrap_err();
        let msg = parse_error(expr, &e);
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines[1], "  0 60 * * *");
        assert_eq!(lines[2], "    ^^");
    }

    fn run_args(args: &[&str], now: &str, system_tz: &str) -> (u8, String, String) {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            cmd: CronCommand,
        }
        let cli = Cli::try_parse_from(std::iter::once("cron").chain(args.iter().copied())).unwrap();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let tz = TimeZone::get(system_tz).unwrap();
        let code = execute(cli.cmd, now.parse().unwrap(), &tz, &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn defaults_are_now_and_the_system_zone() {
        let (code, out, err) = run_args(
            &["next", "0 0 * * *", "--count", "2"],
            "2026-01-01T12:00:00Z",
            "Asia/Kolkata",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(
            out,
            "2026-01-02T00:00:00+05:30\n2026-01-03T00:00:00+05:30\n"
        );
        let (code, out, _) = run_args(
            &["prev", "0 0 * * *", "--count", "1", "--tz", "UTC"],
            "2026-01-01T12:00:00Z",
            "Asia/Kolkata",
        );
        assert_eq!((code, out.as_str()), (0, "2026-01-01T00:00:00+00:00\n"));
    }

    #[test]
    fn explain_lists_dst_warnings_as_json() {
        let (code, out, err) = run_args(
            &[
                "explain",
                "*/30 1-2 * * *",
                "--tz",
                "America/New_York",
                "--count",
                "1",
                "--json",
            ],
            "2026-01-01T00:00:00Z",
            "UTC",
        );
        assert_eq!((code, err.as_str()), (0, ""));
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["next"], json!(["2026-01-01T01:00:00-05:00"]));
        let codes: Vec<&str> = v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["dst-gap", "dst-fold"]);
        assert_eq!(
            v["warnings"][0]["message"],
            "on 2026-03-08 in America/New_York clocks skip forward from 02:00 to 03:00: 02:00 and 02:30 do not exist and will not fire"
        );
        assert_eq!(v["fields"]["fixed_time"], false);
    }

    #[test]
    fn caret_keeps_tabs() {
        let expr = "0\t60 * * *";
        let e = Cron::parse(expr).unwrap_err();
        let msg = parse_error(expr, &e);
        assert_eq!(msg.lines().nth(2), Some("   \t^^"));
    }
}
