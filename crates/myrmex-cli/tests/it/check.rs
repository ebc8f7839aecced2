//! `myrmex check` and the refusal of broken configs.

use crate::util::{Dir, stderr, stdout};

#[test]
fn a_valid_config_is_listed() {
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
zone = "America/New_York"

[[job]]
name = "tick"
command = "echo tick"
every = "15m"
"#,
    );
    let out = d.run(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("ok, 1 job, 0 pipelines; zone America/New_York"),
        "{text}"
    );
    assert!(
        text.contains("job tick\n  command: echo tick\n  schedule: every 15m"),
        "{text}"
    );
    // Three next fire times by default, 15 minutes apart, with the zone's offset.
    let next: Vec<jiff::Timestamp> = text
        .lines()
        .skip_while(|l| *l != "  next:")
        .skip(1)
        .map(|l| l.trim().split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(next.len(), 3, "{text}");
    assert_eq!(
        next[1].duration_since(next[0]),
        jiff::SignedDuration::from_mins(15)
    );
}

#[test]
fn a_broken_config_is_refused_with_every_problem_located() {
    let d = Dir::new();
    d.write_config(
        r#"[[job]]
name = "a"
command = "true"
every = "5 parsecs"

[[job]]
name = "b"
command = "true"
depends_on = ["c"]
colour = "red"
"#,
    );
    let out = d.run(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.contains(
            "error: invalid duration `5 parsecs` for `every` of job `a`\n --> myrmex.toml:4:9\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("error: job `b` depends on unknown job `c`\n --> myrmex.toml:9:15\n"),
        "{err}"
    );
    assert!(
        err.contains("error: unknown key `colour` in job `b`\n  --> myrmex.toml:10:1\n"),
        "{err}"
    );
    assert!(
        err.ends_with("error: 3 problems in config file myrmex.toml\n"),
        "{err}"
    );
}

#[test]
fn a_missing_config_is_invalid_input() {
    let d = Dir::new();
    let out = d.run(&["check", "nope.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with("error: cannot read config file nope.toml: "),
        "{}",
        stderr(&out)
    );
}

#[test]
fn trigger_without_a_daemon_is_unreachable() {
    let d = Dir::new();
    d.write_config("[[job]]\nname = \"a\"\ncommand = \"true\"\n");
    let out = d.run(&["trigger", "a"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no daemon is running on"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn help_documents_the_exit_codes() {
    let out = crate::util::myrmex().arg("--help").output().unwrap();
    let text = stdout(&out);
    assert!(text.contains("Exit codes:"), "{text}");
    assert!(text.contains("4  no daemon reachable"), "{text}");
}

/// The `next:` times `check` printed for the job named `job`.
fn next_times(text: &str, job: &str) -> Vec<jiff::Timestamp> {
    text.lines()
        .skip_while(|l| *l != format!("job {job}"))
        .skip_while(|l| *l != "  next:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn with_a_postgres_store_check_prints_the_cluster_grid() {
    let d = Dir::new();
    // No database is contacted: `check` only computes.
    d.write_config(
        r#"
[scheduler]
store = "postgres://nobody@127.0.0.1:1/none"
zone = "Europe/Berlin"

[[job]]
name = "seven"
command = "true"
every = "7s"

[[job]]
name = "twice"
command = "true"
recurrence = { every = "2 days", at = ["09:00"] }
"#,
    );
    let out = d.run(&["check", "--count", "4"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // Intervals are on the Unix epoch grid in cluster mode (not "one period after
    // the daemon starts", as in process).
    let seven = next_times(&text, "seven");
    assert_eq!(seven.len(), 4, "{text}");
    for t in &seven {
        assert_eq!(t.as_second() % 7, 0, "{t} is not on the epoch grid: {text}");
        assert_eq!(t.subsec_nanosecond(), 0);
    }
    // A two-day recurrence counts days from Monday 1970-01-05, at 09:00 in Berlin.
    let twice = next_times(&text, "twice");
    assert_eq!(twice.len(), 4, "{text}");
    let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    for t in &twice {
        let z = t.to_zoned(berlin.clone());
        assert_eq!((z.hour(), z.minute()), (9, 0), "{text}");
        let days = jiff::civil::date(1970, 1, 5)
            .until(z.date())
            .unwrap()
            .get_days();
        assert_eq!(days % 2, 0, "{text}");
    }
}
