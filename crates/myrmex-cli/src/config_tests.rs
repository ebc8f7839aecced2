//! Tests of config validation: each problem with its line and column, all at once.

use std::path::Path;

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(Path::new("/etc/myrmex/myrmex.toml"), text)
}

/// The problems found in `text` as `line:col message` strings.
fn problems(text: &str) -> Vec<String> {
    match parse(text) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid {
            diagnostics,
            source_text,
            ..
        }) => diagnostics
            .iter()
            .map(|d| {
                let (l, c) = d.line_col(&source_text).unwrap_or((0, 0));
                format!("{l}:{c} {}", d.message)
            })
            .collect(),
        Err(e) => vec![e.to_string()],
    }
}

#[test]
fn a_full_config_is_read() {
    let c = parse(
        r#"
[scheduler]
zone = "Europe/Paris"
workers = 2
store = "json:state/myrmex.json"
shutdown_grace = "5s"
history_retention = "7 days"

[[job]]
name = "tick"
command = ["echo", "tick"]
every = "1m"
env = { GREETING = "hello" }
working_dir = "work"

[[job]]
name = "report"
command = "echo report > /tmp/report"
at = "09:30"
timeout = "1h"
retries = 3
retry_backoff = "fixed"
retry_delay = "30s"
overlap = "allow"
max_concurrent = 2
misfire = "skip"
depends_on = ["tick", { job = "weekly", require = "completion" }]

[[job]]
name = "weekly"
command = "true"
recurrence = { every = "2 weeks", on = ["mon", "fri"], at = ["08:00", "18:30"], until = "2027-06-30" }

[[pipeline]]
name = "etl"
stages = [["tick", "weekly"], "report"]
every = "1h"
"#,
    )
    .unwrap();
    assert_eq!(c.scheduler.zone.name, "Europe/Paris");
    assert_eq!(c.scheduler.workers, 2);
    assert_eq!(
        c.scheduler.store,
        StoreSpec::Json("/etc/myrmex/state/myrmex.json".into())
    );
    assert_eq!(c.scheduler.shutdown_grace, SignedDuration::from_secs(5));
    assert_eq!(
        c.scheduler.history_retention,
        Some(SignedDuration::from_hours(7 * 24))
    );
    let tick = c.job("tick").unwrap();
    assert_eq!(
        tick.command,
        CommandSpec::Argv(vec!["echo".into(), "tick".into()])
    );
    assert_eq!(
        tick.schedule,
        Some(ScheduleSpec::Every(SignedDuration::from_mins(1)))
    );
    assert_eq!(tick.working_dir, Some("/etc/myrmex/work".into()));
    assert_eq!(tick.env.get("GREETING").map(String::as_str), Some("hello"));
    let report = c.job("report").unwrap();
    assert_eq!(
        report.schedule,
        Some(ScheduleSpec::At(AtSpec::Daily(jiff::civil::time(
            9, 30, 0, 0
        ))))
    );
    assert_eq!(report.retry.retries, 3);
    assert_eq!(report.retry.backoff, BackoffKind::Fixed);
    assert_eq!(report.overlap, OverlapSpec::Allow(2));
    assert_eq!(report.misfire.policy, Some(MisfireKind::Skip));
    assert_eq!(
        report.depends_on,
        vec![
            Dependency {
                name: "tick".into(),
                require: Requirement::Success
            },
            Dependency {
                name: "weekly".into(),
                require: Requirement::Completion
            },
        ]
    );
    let weekly = c.job("weekly").unwrap();
    let Some(ScheduleSpec::Recurrence(r)) = &weekly.schedule else {
        panic!("{:?}", weekly.schedule)
    };
    assert_eq!((r.interval, r.unit), (2, RecurrenceUnit::Week));
    assert_eq!(r.on, vec![Weekday::Monday, Weekday::Friday]);
    assert_eq!(r.at.len(), 2);
    assert_eq!(
        c.pipelines[0].stages,
        vec![
            vec!["tick".to_string(), "weekly".to_string()],
            vec!["report".to_string()]
        ]
    );
}

#[test]
fn defaults_apply_to_an_empty_file() {
    let c = parse("").unwrap();
    assert_eq!(c.scheduler.zone.name, "UTC");
    assert_eq!(
        c.scheduler.store,
        StoreSpec::Sqlite("/etc/myrmex/myrmex.sqlite".into())
    );
    assert!(c.jobs.is_empty());
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = r#"[scheduler]
zone = "Mars/Olympus"
workers = "four"
colour = "blue"

[[job]]
name = "a"
command = "true"
every = "fortnight"
depends_on = ["b"]

[[job]]
name = "b"
comand = "true"
depends_on = ["a"]

[[job]]
name = "a"
command = 42
timeout = 30
depends_on = ["nobody"]
"#;
    assert_eq!(
        problems(text),
        vec![
            "2:8 unknown time zone `Mars/Olympus` in `scheduler.zone`",
            "3:11 `scheduler.workers` must be an integer, found a string",
            "4:1 unknown key `colour` in `[scheduler]`",
            "9:9 invalid duration `fortnight` for `every` of job `a`",
            "13:8 job `b` has no `command`",
            "14:1 unknown key `comand` in job `b`",
            "15:15 dependency cycle: a -> b -> a",
            "18:8 duplicate name `a`",
            "19:11 `command` of job `a` must be a string or an array of strings, found an integer",
            "20:11 `timeout` of job `a` must be a duration string, found an integer",
            "21:15 job `a` depends on unknown job `nobody`",
        ]
    );
}

#[test]
fn cycles_are_named_with_their_path() {
    let text = r#"
[[job]]
name = "a"
command = "true"
depends_on = ["b"]

[[job]]
name = "b"
command = "true"
depends_on = ["c"]

[[job]]
name = "c"
command = "true"
depends_on = ["a"]

[[job]]
name = "d"
command = "true"
depends_on = ["d"]
"#;
    assert_eq!(
        problems(text),
        vec![
            "15:15 dependency cycle: a -> b -> c -> a",
            "20:15 job `d` depends on itself",
        ]
    );
}

#[test]
fn pipelines_are_checked() {
    let text = r#"
[[job]]
name = "x"
command = "true"
depends_on = ["p"]

[[pipeline]]
name = "p"
stages = [["x"], ["y"]]
cron = "0 * * * *"
every = "1h"

[[pipeline]]
name = "q"
"#;
    assert_eq!(
        problems(text),
        vec![
            "5:15 dependency cycle: p -> x -> p",
            "9:19 pipeline `p` has unknown job `y` in a stage",
            "11:1 pipeline `p` has more than one schedule (`cron`, `every`)",
            "14:8 pipeline `q` has no `stages`",
        ]
    );
}

#[test]
fn bad_values_get_hints() {
    let text = r#"
[[job]]
name = "bad name"
command = "true"

[[job]]
name = "ok"
command = []
overlap = "skipp"
max_concurrent = 3
at = "tomorrow"
env = { MYRMEX_JOB = "x" }
"#;
    let err = parse(text).unwrap_err();
    let rendered = err.render();
    assert_eq!(
        problems(text),
        vec![
            "3:8 invalid job name `bad name`",
            "8:11 `command` of job `ok` has no program",
            "9:11 unknown value `skipp` for `overlap` of job `ok`",
            "10:18 `max_concurrent` of job `ok` needs `overlap = \"allow\"`",
            "11:6 invalid time in `at` of job `ok`: `tomorrow`",
            "12:9 `MYRMEX_JOB` is reserved for myrmex",
        ]
    );
    assert!(
        rendered.contains("help: did you mean `\"skip\"`?"),
        "{rendered}"
    );
    assert!(
        rendered.contains("--> /etc/myrmex/myrmex.toml:9:11"),
        "{rendered}"
    );
    assert!(rendered.ends_with("error: 6 problems in config file /etc/myrmex/myrmex.toml\n"));
}

#[test]
fn toml_syntax_errors_are_located() {
    let got = problems("[[job]]\nname = \"a\"\ncommand = \"true\n");
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].starts_with("3:") && got[0].contains("invalid TOML"),
        "{got:?}"
    );
}

#[test]
fn unknown_top_level_tables_are_reported() {
    assert_eq!(
        problems("[[jobs]]\nname = \"a\"\n"),
        vec!["1:3 unknown key `jobs` in the config file"]
    );
}

#[test]
fn cron_errors_point_inside_the_expression() {
    let text = r#"
[[job]]
name = "a"
command = "true"
cron = "*/5 61 * * *"
"#;
    let err = parse(text).unwrap_err();
    assert_eq!(
        problems(text),
        vec![
            r#"5:13 invalid cron expression in job `a`: invalid hour "61": must be 0-23 (field 2, column 5)"#
        ]
    );
    assert!(
        err.render()
            .contains("5 | cron = \"*/5 61 * * *\"\n  |             ^^ invalid here"),
        "{}",
        err.render()
    );
}

#[test]
fn settings_a_postgres_store_would_ignore_are_refused_where_written() {
    let text = r#"
[scheduler]
store = "postgres://db/myrmex"
history_retention = "7 days"

[[job]]
name = "a"
command = "true"
every = "1m"
"#;
    let err = parse(text).unwrap_err();
    assert_eq!(
        problems(text),
        vec!["4:1 `scheduler.history_retention` is not supported with a PostgreSQL store"]
    );
    let rendered = err.render();
    assert!(
        rendered.contains("help: with a `postgres://` store"),
        "{rendered}"
    );
    // What the cluster does anyway is accepted, and other stores keep the setting.
    for ok in [
        "[scheduler]\nstore = \"postgres://db/myrmex\"\nhistory_retention = \"forever\"\n",
        "[scheduler]\nstore = \"sqlite:state.db\"\nhistory_retention = \"7 days\"\n",
        "[scheduler]\nhistory_retention = \"7 days\"\n",
    ] {
        assert_eq!(problems(ok), Vec::<String>::new(), "{ok}");
    }
}
