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
