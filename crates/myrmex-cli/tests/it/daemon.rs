//! `myrmex run` end to end: the real binary on the system clock, synchronized on
//! its JSON log lines (never on a fixed sleep).

use std::collections::BTreeSet;

use crate::util::{Dir, stderr, stdout};

fn is_run_finished(v: &serde_json::Value, job: &str) -> bool {
    v["message"] == "run finished" && v["job"] == job
}

#[test]
fn jobs_every_second_run_with_their_environment() {
    let d = Dir::new();
    d.write_config(
        r#"
[[job]]
name = "tick"
command = 'echo "$MYRMEX_JOB $MYRMEX_RUN_ID $MYRMEX_SCHEDULED_AT $MYRMEX_ATTEMPT $GREETING" >> ticks.txt'
every = "1s"
env = { GREETING = "hello" }
"#,
    );
    let mut daemon = d.start();
    for _ in 0..3 {
        let v = daemon.wait_for("a tick", |v| is_run_finished(v, "tick"));
        assert_eq!(v["outcome"], "exited with status 0", "{}", daemon.log());
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let ticks = std::fs::read_to_string(d.path().join("ticks.txt")).unwrap();
    let lines: Vec<&str> = ticks.lines().collect();
    assert!(lines.len() >= 3, "{ticks}");
    let mut ids = BTreeSet::new();
    for line in &lines {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 5, "{line}");
        assert_eq!(f[0], "tick");
        // The run id is the job and the nominal fire time, which is whole-second
        // RFC 3339 in UTC.
        assert_eq!(f[1], format!("tick@{}", f[2]), "{line}");
        assert!(f[2].parse::<jiff::Timestamp>().is_ok(), "{line}");
        assert!(f[2].ends_with(":00Z") || f[2].len() == 20, "{line}");
        assert_eq!(f[3], "1");
        assert_eq!(f[4], "hello");
        ids.insert(f[1].to_string());
    }
    assert_eq!(ids.len(), lines.len(), "run ids repeat: {ticks}");
}

#[test]
fn sigterm_waits_for_running_commands_then_stops_the_rest() {
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
shutdown_grace = "3s"
kill_grace = "5s"

[[job]]
name = "short"
command = "sleep 0.5; echo done > short.txt"
every = "1s"

[[job]]
name = "long"
# The background sleep is in the same process group: it must die too.
command = "sleep 300 & echo $! > long.pid; echo ready; wait"
every = "1s"
timeout = "1h"
retries = 1
"#,
    );
    // Within the grace period the short job finishes; the long one is stopped.
    let mut daemon = d.start();
    // Both start at the same second, in either order; the long one has written its
    // pid file once it prints "ready". The signal goes out while a run of `short` is
    // running by the log (started and not finished): on a slow machine one run of
    // `short` can end before `long` is ready, and the wait below must then see the
    // next one end, not one already read.
    let (mut short_running, mut long_ready) = (0i32, false);
    daemon.wait_for("both jobs started", |v| {
        if v["job"] == "short" && v["message"] == "run started" {
            short_running += 1;
        }
        if is_run_finished(v, "short") {
            short_running -= 1;
        }
        if v["message"] == "ready" && v["job"] == "long" {
            long_ready = true;
        }
        short_running > 0 && long_ready
    });
    daemon.signal("TERM");
    let v = daemon.wait_for("short finished", |v| is_run_finished(v, "short"));
    assert_eq!(v["outcome"], "exited with status 0", "{}", daemon.log());
    let v = daemon.wait_for("long stopped", |v| is_run_finished(v, "long"));
    assert_eq!(v["outcome"], "interrupted by shutdown", "{}", daemon.log());
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    assert_eq!(
        std::fs::read_to_string(d.path().join("short.txt")).unwrap(),
        "done\n"
    );
    // The whole process group was stopped, the background sleep included (signals
    // are delivered asynchronously, and init reaps the orphan when it gets to it).
    let pid = std::fs::read_to_string(d.path().join("long.pid")).unwrap();
    crate::util::wait_until(
        "the background sleep to die",
        || match std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())) {
            Err(_) => true,
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        },
    );
}

#[test]
fn sighup_reload_adds_and_removes_jobs_and_refuses_a_broken_config() {
    let d = Dir::new();
    let config = |jobs: &str| format!("[scheduler]\nshutdown_grace = \"5s\"\n{jobs}");
    d.write_config(&config(
        "[[job]]\nname = \"a\"\ncommand = \"true\"\nevery = \"1s\"\n\n[[job]]\nname = \"keep\"\ncommand = \"true\"\nevery = \"1s\"\n",
    ));
    let mut daemon = d.start();
    daemon.wait_for("a run of a", |v| is_run_finished(v, "a"));
    d.write_config(&config(
        "[[job]]\nname = \"b\"\ncommand = \"true\"\nevery = \"1s\"\n\n[[job]]\nname = \"keep\"\ncommand = \"true\"\nevery = \"1s\"\n",
    ));
    daemon.signal("HUP");
    let v = daemon.wait_for("reloaded", |v| v["message"] == "config reloaded");
    assert_eq!(
        (&v["added"], &v["removed"], &v["changed"]),
        (&1.into(), &1.into(), &0.into()),
        "{v}"
    );
    daemon.wait_for("a run of b", |v| is_run_finished(v, "b"));
    let started_after_reload = daemon.seen.len();

    // A broken config is refused with its location; the running one stays.
    d.write_config(&config(
        "[[job]]\nname = \"c\"\ncommand = \"true\"\nevery = \"often\"\n",
    ));
    daemon.signal("HUP");
    let v = daemon.wait_for("refusal", |v| {
        v["message"] == "config refused; the running config stays"
    });
    let problems = v["problems"].as_str().unwrap();
    assert!(problems.contains("myrmex.toml:6:9"), "{problems}");
    daemon.wait_for("b still runs", |v| is_run_finished(v, "b"));
    daemon.wait_for("keep still runs", |v| is_run_finished(v, "keep"));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let a_after = daemon.seen[started_after_reload..]
        .iter()
        .filter(|v| v["message"] == "run started" && v["job"] == "a")
        .count();
    assert_eq!(a_after, 0, "a removed job ran again:\n{}", daemon.log());
}

#[test]
fn trigger_pause_and_resume_act_on_the_running_daemon() {
    let d = Dir::new();
    d.write_config(
        r#"
[[job]]
name = "manual"
command = "echo manual $MYRMEX_RUN_ID"

[[job]]
name = "tick"
command = "true"
every = "1h"
"#,
    );
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");

    let out = d.run(&["trigger", "manual"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("triggered `manual` (run manual@"),
        "{}",
        stdout(&out)
    );
    let v = daemon.wait_for("the triggered run", |v| is_run_finished(v, "manual"));
    assert_eq!(v["outcome"], "exited with status 0");

    let out = d.run(&["pause", "tick"]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), "paused `tick`\n".into())
    );
    let out = d.run(&["resume", "tick"]);
    assert_eq!(
        (out.status.code(), stdout(&out)),
        (Some(0), "resumed `tick`\n".into())
    );

    let out = d.run(&["trigger", "nope"]);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(stderr(&out), "error: unknown job `nope`\n");

    // Only one daemon per state store.
    let second = d.run(&["run"]);
    assert_eq!(second.status.code(), Some(6), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("a daemon is already running"),
        "{}",
        stderr(&second)
    );

    daemon.signal("INT");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
}

#[test]
fn run_refuses_a_broken_config_and_touches_nothing() {
    let d = Dir::new();
    d.write_config(
        r#"[scheduler]
zone = "Europe/Pariss"

[[job]]
name = "x"
command = "true"
cron = "0 25 * * *"
"#,
    );
    let out = d.run(&["run"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("error: unknown time zone `Europe/Pariss`"),
        "{err}"
    );
    assert!(err.contains(" --> myrmex.toml:2:8\n"), "{err}");
    assert!(err.contains(" --> myrmex.toml:7:11\n"), "{err}");
    assert!(err.contains("help: use an IANA name"), "{err}");
    let entries: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, vec!["myrmex.toml"], "state was created");
}

#[test]
fn a_restart_continues_from_the_stored_state_without_double_fires() {
    let d = Dir::new();
    d.write_config(
        r#"
[[job]]
name = "tick"
command = 'echo "$MYRMEX_RUN_ID" >> ticks.txt'
every = "1s"
misfire = "skip"

[[job]]
name = "paused-one"
command = "echo should-not-run >> paused.txt"
every = "1s"
"#,
    );
    let mut first = d.start();
    for _ in 0..2 {
        first.wait_for("a tick", |v| is_run_finished(v, "tick"));
    }
    let out = d.run(&["pause", "paused-one"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    first.signal("TERM");
    assert_eq!(first.wait_exit(), 0, "{}", first.log());
    let before = std::fs::read_to_string(d.path().join("ticks.txt")).unwrap();
    let paused_runs = std::fs::read_to_string(d.path().join("paused.txt")).unwrap_or_default();

    let mut second = d.start();
    let v = second.wait_for("tick restored", |v| {
        v["message"] == "job restored from the state store" && v["job"] == "tick"
    });
    assert!(v["next_fire"].as_str().is_some(), "{v}");
    second.wait_for("paused-one restored", |v| {
        v["message"] == "job restored from the state store" && v["job"] == "paused-one"
    });
    for _ in 0..2 {
        second.wait_for("a tick after the restart", |v| is_run_finished(v, "tick"));
    }
    second.signal("TERM");
    assert_eq!(second.wait_exit(), 0, "{}", second.log());

    // Every occurrence ran once: no run id twice, and the second daemon went on from
    // where the first stopped (its ticks are all later).
    let after = std::fs::read_to_string(d.path().join("ticks.txt")).unwrap();
    let ids: Vec<&str> = after.lines().collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "double fire:\n{after}");
    let last_before = before.lines().last().unwrap();
    let new: Vec<&str> = ids[before.lines().count()..].to_vec();
    assert!(new.len() >= 2, "{after}");
    assert!(new.iter().all(|id| *id > last_before), "{after}");
    // The paused job stayed paused across the restart.
    assert_eq!(
        std::fs::read_to_string(d.path().join("paused.txt")).unwrap_or_default(),
        paused_runs
    );

    // The store has every run, and `status` shows the jobs.
    let out = d.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let tick = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "tick")
        .unwrap();
    assert_eq!(tick["state"], "scheduled", "{jobs:#}");
    assert_eq!(tick["last_outcome"], "succeeded", "{jobs:#}");
    let paused = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "paused-one")
        .unwrap();
    assert_eq!(paused["state"], "paused", "{jobs:#}");
    let out = d.run(&["history", "tick", "--json", "-n", "1000"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let succeeded: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "succeeded")
        .map(|r| format!("tick@{}", r["key"]["scheduled_at"].as_str().unwrap()))
        .collect();
    assert_eq!(succeeded, ids, "the store and the commands disagree");
    let table = d.run(&["status"]);
    assert!(stdout(&table).starts_with("JOB "), "{}", stdout(&table));
}

#[test]
fn dependencies_and_pipelines_run_in_order() {
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
workers = 4

[[job]]
name = "upstream"
command = "echo upstream >> order.txt"
every = "1s"

[[job]]
name = "downstream"
command = "echo downstream $MYRMEX_RUN_ID >> order.txt"
depends_on = ["upstream"]

[[job]]
name = "extract-a"
command = "echo extract-a >> stages.txt"

[[job]]
name = "extract-b"
command = "echo extract-b >> stages.txt"

[[job]]
name = "load"
command = "echo load >> stages.txt"

[[pipeline]]
name = "etl"
stages = [["extract-a", "extract-b"], "load"]
"#,
    );
    let mut daemon = d.start();
    daemon.wait_for("downstream after upstream", |v| {
        is_run_finished(v, "downstream")
    });

    let out = d.run(&["trigger", "etl"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = daemon.wait_for("the pipeline run", |v| is_run_finished(v, "load"));
    assert_eq!(v["outcome"], "exited with status 0", "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());

    let order = std::fs::read_to_string(d.path().join("order.txt")).unwrap();
    let first = order.lines().next().unwrap();
    assert_eq!(first, "upstream", "{order}");
    assert!(
        order
            .lines()
            .any(|l| l.starts_with("downstream downstream@")),
        "{order}"
    );
    let stages = std::fs::read_to_string(d.path().join("stages.txt")).unwrap();
    let lines: Vec<&str> = stages.lines().collect();
    assert_eq!(lines.len(), 3, "{stages}");
    assert_eq!(
        lines[2], "load",
        "the last stage ran before the first finished: {stages}"
    );

    // The pipeline's run is recorded under its name.
    let out = d.run(&["history", "etl", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#}");
    let out = d.run(&["status", "--json"]);
    let jobs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let etl = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "etl")
        .unwrap();
    assert_eq!(etl["state"], "scheduled", "{jobs:#}");
}

#[test]
fn a_timeout_stops_the_command_and_is_recorded() {
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
kill_grace = "1s"

# The timeout counts from the spawn: long enough that the shell has printed
# "started" even on a loaded machine (the stdout tail is asserted below).
[[job]]
name = "stuck"
command = "echo started; sleep 30"
timeout = "5s"
"#,
    );
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    let out = d.run(&["trigger", "stuck"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v = daemon.wait_for("the timeout", |v| is_run_finished(v, "stuck"));
    assert_eq!(v["outcome"], "timed out", "{}", daemon.log());
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let out = d.run(&["history", "stuck", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs[0]["state"], "failed", "{runs:#}");
    assert_eq!(runs[0]["outcome"], "timed_out", "{runs:#}");
    assert_eq!(runs[0]["result"]["stdout_tail"], "started\n", "{runs:#}");
}

#[test]
fn an_interrupted_run_is_run_again_at_the_next_start() {
    let d = Dir::new();
    let config = |shutdown_grace: &str| {
        format!(
            r#"
[scheduler]
shutdown_grace = "{shutdown_grace}"
kill_grace = "2s"

[[job]]
name = "long"
command = 'echo "$MYRMEX_ATTEMPT $MYRMEX_RUN_ID" >> long.txt; echo ready; [ -e done ] || exec sleep 30'
every = "1h"
retries = 2
"#
        )
    };
    // The first daemon stops the run at once.
    d.write_config(&config("0s"));
    let mut first = d.start();
    first.wait_for("start", |v| v["message"] == "daemon started");
    assert_eq!(d.run(&["trigger", "long"]).status.code(), Some(0));
    // "ready" is printed after the attempt has written its line.
    first.wait_for("long started", |v| {
        v["message"] == "ready" && v["job"] == "long"
    });
    first.signal("TERM");
    assert_eq!(first.wait_exit(), 0, "{}", first.log());

    std::fs::write(d.path().join("done"), "").unwrap();
    // "run finished" is logged when the command ends, before the scheduler records
    // the attempt in the store: the second daemon's shutdown must wait for that
    // record (a zero grace would record the run as interrupted again).
    d.write_config(&config("30s"));
    let mut second = d.start();
    let v = second.wait_for("the second attempt", |v| is_run_finished(v, "long"));
    assert_eq!(v["outcome"], "exited with status 0", "{}", second.log());
    second.signal("TERM");
    assert_eq!(second.wait_exit(), 0, "{}", second.log());

    // The same occurrence (same run id), its second attempt.
    let lines = std::fs::read_to_string(d.path().join("long.txt")).unwrap();
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let id = lines[0].strip_prefix("1 ").unwrap();
    assert_eq!(lines[1], format!("2 {id}"));
    let out = d.run(&["history", "long", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs:#}");
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#}");
    assert_eq!(runs[0]["attempt"], 2, "{runs:#}");
}

#[test]
fn the_json_store_keeps_the_history_too() {
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
store = "json:state/myrmex.json"

[[job]]
name = "tick"
command = "echo tick"
every = "1s"
"#,
    );
    std::fs::create_dir(d.path().join("state")).unwrap();
    let mut daemon = d.start();
    for _ in 0..2 {
        daemon.wait_for("a tick", |v| is_run_finished(v, "tick"));
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let out = d.run(&["history", "tick", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ok = runs
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["state"] == "succeeded" && r["result"]["stdout_tail"] == "tick\n")
        .count();
    assert!(ok >= 2, "{runs:#}");
    // The control socket lived beside the store.
    assert!(d.path().join("state/myrmex.json.control").is_dir());
}
