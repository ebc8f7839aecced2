//! `myrmex run` on a PostgreSQL store: several real daemons on one database, one
//! of them killed with SIGKILL, checked in SQL. Needs `MYRMEX_TEST_POSTGRES_URL`
//! (CI sets it through `.ci/postgres.sh`); each test uses a schema of its own.

use std::time::SystemTime;

use crate::util::{Daemon, Dir, stderr, stdout, wait_until};

/// The database URL, or `None` after printing why the test is skipped.
fn database_url(test: &str) -> Option<String> {
    match std::env::var("MYRMEX_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped {test}: MYRMEX_TEST_POSTGRES_URL is not set (CI sets it via .ci/postgres.sh; \
                 locally: `source .ci/postgres.sh`)"
            );
            None
        }
    }
}

/// A fresh schema name for one test run.
fn fresh_schema(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}

/// A session on the test database with `schema` on the search path.
fn sql(url: &str, schema: &str) -> postgres::Client {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    c.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    c
}

fn count(
    c: &mut postgres::Client,
    query: &str,
    params: &[&(dyn postgres::types::ToSql + Sync)],
) -> i64 {
    c.query_one(query, params).unwrap().get(0)
}

fn config(url: &str, schema: &str) -> String {
    format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
lease = "2s"
workers = 4
shutdown_grace = "5s"

[[job]]
name = "tick"
every = "1s"
command = "sleep 0.3; echo $MYRMEX_RUN_ID"
"#
    )
}

fn start_node(url: &str, schema: &str) -> (Dir, Daemon) {
    let d = Dir::new();
    d.write_config(&config(url, schema));
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    (d, daemon)
}

#[test]
fn three_daemons_survive_a_sigkill_without_duplicates_or_gaps() {
    let Some(url) = database_url("three_daemons_survive_a_sigkill_without_duplicates_or_gaps")
    else {
        return;
    };
    let schema = fresh_schema("clitest_kill");
    let mut db = sql(&url, "public");
    let mut nodes: Vec<(Dir, Daemon)> = (0..3).map(|_| start_node(&url, &schema)).collect();
    db.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();

    // Every node ran at least one occurrence... or at least the cluster ran several.
    wait_until("four successful runs", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run WHERE state = 'succeeded'",
            &[],
        ) >= 4
    });

    let out = nodes[0].0.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let listed: Vec<i64> = status["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["pid"].as_i64().unwrap())
        .collect();
    for (_, daemon) in &nodes {
        assert!(
            listed.contains(&i64::from(daemon.child.id())),
            "node {} missing from status: {status}",
            daemon.child.id()
        );
    }
    assert_eq!(status["jobs"][0]["name"], "tick", "{status}");

    // SIGKILL the first node; note the database's time.
    let (killed_dir, mut killed) = nodes.remove(0);
    let killed_pid = i32::try_from(killed.child.id()).unwrap();
    killed.child.kill().unwrap();
    killed.child.wait().unwrap();
    let killed_node: String = db
        .query_one(
            "SELECT node_id FROM sched_node WHERE pid = $1",
            &[&killed_pid],
        )
        .unwrap()
        .get(0);
    let killed_at: f64 = db
        .query_one("SELECT extract(epoch FROM now())::float8", &[])
        .unwrap()
        .get(0);

    // Runs continue on the survivors, and every occurrence due before the kill
    // (including one the killed node may have held) ends.
    wait_until("three runs by the survivors after the kill", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_attempt a JOIN sched_run r ON r.id = a.run_id
             WHERE r.state = 'succeeded' AND a.node_id <> $1 AND a.attempt = r.attempt
               AND a.started_at > to_timestamp($2)",
            &[&killed_node, &killed_at],
        ) >= 3
    });
    wait_until("every occurrence due before the kill to end", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run WHERE scheduled_at <= to_timestamp($1)
               AND state NOT IN ('succeeded','failed','dead','skipped','cancelled')",
            &[&killed_at],
        ) == 0
    });

    for (_, daemon) in &mut nodes {
        daemon.signal("TERM");
    }
    for (_, daemon) in &mut nodes {
        assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    }

    // No occurrence twice, none missing on the grid between the first and last
    // materialized, and every run on the grid.
    let dup = count(
        &mut db,
        "SELECT count(*) FROM (SELECT scheduled_at FROM sched_run GROUP BY job_id, scheduled_at, stage
                               HAVING count(*) > 1) d",
        &[],
    );
    assert_eq!(dup, 0, "duplicated occurrences");
    let missing = count(
        &mut db,
        "SELECT count(*) FROM (
           SELECT generate_series(min(scheduled_at), max(scheduled_at), interval '1 second') AS t FROM sched_run
           EXCEPT SELECT scheduled_at FROM sched_run) m",
        &[],
    );
    assert_eq!(missing, 0, "occurrences missing from the 1 s grid");
    let off_grid = count(
        &mut db,
        "SELECT count(*) FROM sched_run WHERE extract(microseconds FROM scheduled_at)::bigint % 1000000 <> 0",
        &[],
    );
    assert_eq!(off_grid, 0, "occurrences off the 1 s grid");
    let total = count(&mut db, "SELECT count(*) FROM sched_run", &[]);
    assert!(total >= 7, "only {total} occurrences materialized");

    // History reads the attempts of every node: every node that has an attempt in
    // the database now is shown (later attempts may add more).
    let nodes_in_db: std::collections::BTreeSet<String> = db
        .query("SELECT DISTINCT node_id FROM sched_attempt", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let out = killed_dir.run(&["history", "tick", "--json", "-n", "1000"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let history: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let by_nodes: std::collections::BTreeSet<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["node"].as_str().unwrap())
        .collect();
    for node in &nodes_in_db {
        assert!(
            by_nodes.contains(node.as_str()),
            "history misses node {node}: {history}"
        );
    }
    assert!(
        by_nodes.iter().any(|n| *n != killed_node),
        "history shows no surviving node: {history}"
    );

    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn removed_jobs_are_paused_and_env_carries_the_occurrence_key() {
    let Some(url) = database_url("removed_jobs_are_paused_and_env_carries_the_occurrence_key")
    else {
        return;
    };
    let schema = fresh_schema("clitest_pause");
    let d = Dir::new();
    let out_file = d.path().join("env.txt");
    d.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
lease = "2s"

[[job]]
name = "old"
every = "1h"
command = "true"

[[job]]
name = "env"
every = "1s"
command = "echo \"$MYRMEX_JOB $MYRMEX_RUN_ID $MYRMEX_SCHEDULED_AT $MYRMEX_ATTEMPT\" >> {}"
"#,
        out_file.display()
    ));
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    wait_until("a line from the job", || {
        std::fs::read_to_string(&out_file).is_ok_and(|s| s.lines().next().is_some())
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());

    let mut db = sql(&url, &schema);
    let line = std::fs::read_to_string(&out_file).unwrap();
    let first: Vec<&str> = line.lines().next().unwrap().split(' ').collect();
    let (job_id, scheduled): (i64, String) = {
        let r = db
            .query_one(
                "SELECT j.id, to_char(min(r.scheduled_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
                 FROM sched_job j JOIN sched_run r ON r.job_id = j.id AND r.attempt > 0
                 WHERE j.name = 'env' GROUP BY j.id",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(first[0], "env");
    assert_eq!(
        first[1],
        format!("{job_id}/{scheduled}"),
        "MYRMEX_RUN_ID is the occurrence key"
    );
    assert_eq!(first[2], scheduled);
    assert_eq!(first[3], "1");

    // The same schema with `old` removed from the config: it is paused, not deleted.
    d.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"

[[job]]
name = "env"
every = "1s"
command = "true"
"#
    ));
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    let paused: bool = db
        .query_one("SELECT paused FROM sched_job WHERE name = 'old'", &[])
        .unwrap()
        .get(0);
    assert!(paused, "a job removed from the config is paused");
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn depends_on_other_than_after_one_job_is_refused_in_cluster_mode() {
    // Needs no database: the config is refused before anything connects.
    let d = Dir::new();
    d.write_config(
        r#"
[scheduler]
store = "postgres://nobody@127.0.0.1:1/none"

[[job]]
name = "a"
every = "1m"
command = "true"

[[job]]
name = "b"
every = "1m"
command = "true"
depends_on = ["a"]
"#,
    );
    let out = d.run(&["check", "myrmex.toml"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("this `depends_on` is not supported with a PostgreSQL store"),
        "{err}"
    );
    assert!(err.contains("myrmex.toml:"), "located: {err}");
}

#[test]
fn after_trigger_and_manual_trigger_in_cluster_mode() {
    let Some(url) = database_url("after_trigger_and_manual_trigger_in_cluster_mode") else {
        return;
    };
    let schema = fresh_schema("clitest_after");
    let d = Dir::new();
    d.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
lease = "2s"

[[job]]
name = "up"
every = "1s"
command = "true"

[[job]]
name = "down"
command = "true"
depends_on = ["up"]

[[job]]
name = "by-hand"
command = "true"
"#
    ));
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    let mut db = sql(&url, &schema);
    // `trigger` goes to the database: any node runs it.
    let out = d.run(&["trigger", "by-hand"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = d.run(&["pause", "no-such-job"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    wait_until("the manual run", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id
             WHERE j.name = 'by-hand' AND r.origin = 'manual' AND r.state = 'succeeded'",
            &[],
        ) == 1
    });
    wait_until("two runs of `down`", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id
             WHERE j.name = 'down' AND r.state = 'succeeded'",
            &[],
        ) >= 2
    });
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    // Every run of `down` has the nominal time of a successful run of `up`.
    let orphans = count(
        &mut db,
        "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id
         WHERE j.name = 'down' AND (r.origin <> 'after' OR NOT EXISTS (
           SELECT 1 FROM sched_run u JOIN sched_job uj ON uj.id = u.job_id
           WHERE uj.name = 'up' AND u.state = 'succeeded' AND u.scheduled_at = r.scheduled_at))",
        &[],
    );
    assert_eq!(orphans, 0, "runs of `down` not after a success of `up`");
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

#[test]
fn a_pipeline_runs_its_stages_in_order_across_two_daemons() {
    let Some(url) = database_url("a_pipeline_runs_its_stages_in_order_across_two_daemons") else {
        return;
    };
    let schema = fresh_schema("clitest_pipe");
    let text = format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
lease = "2s"

[[job]]
name = "a"
command = "sleep 0.1"

[[job]]
name = "b"
command = "sleep 0.2"

[[job]]
name = "c"
command = "true"

[[job]]
name = "d"
command = "true"

[[pipeline]]
name = "p"
every = "1s"
stages = [["a"], ["b", "c"], ["d"]]
"#
    );
    let dirs = [Dir::new(), Dir::new()];
    let mut daemons: Vec<Daemon> = dirs
        .iter()
        .map(|d| {
            d.write_config(&text);
            let mut daemon = d.start();
            daemon.wait_for("start", |v| v["message"] == "daemon started");
            daemon
        })
        .collect();
    let mut db = sql(&url, &schema);
    wait_until("three complete pipeline instances", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run WHERE stage = 'd' AND state = 'succeeded'",
            &[],
        ) >= 3
    });
    for daemon in &mut daemons {
        daemon.signal("TERM");
    }
    for daemon in &mut daemons {
        assert_eq!(daemon.wait_exit(), 0, "{}", daemon.log());
    }
    // No stage attempt started before every stage of the previous step finished.
    let violations = count(
        &mut db,
        "SELECT count(*) FROM sched_run r JOIN sched_attempt a ON a.run_id = r.id
         JOIN sched_run p ON p.job_id = r.job_id AND p.scheduled_at = r.scheduled_at
         WHERE (r.stage IN ('b','c') AND p.stage = 'a' OR r.stage = 'd' AND p.stage IN ('b','c'))
           AND (p.finished_at IS NULL OR a.started_at < p.finished_at)",
        &[],
    );
    assert_eq!(
        violations, 0,
        "stages started before their parents finished"
    );
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

/// The `next:` times `myrmex check` printed for `job`.
fn check_times(text: &str, job: &str) -> Vec<jiff::Timestamp> {
    text.lines()
        .skip_while(|l| *l != format!("job {job}"))
        .skip_while(|l| *l != "  next:")
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .map(|l| l.trim().split(' ').next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn check_prints_the_times_the_cluster_fires_at() {
    let Some(url) = database_url("check_prints_the_times_the_cluster_fires_at") else {
        return;
    };
    let schema = fresh_schema("clitest_check");
    let d = Dir::new();
    // Paused jobs keep the watermark they were created with: the first occurrence
    // the cluster will fire.
    d.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
zone = "America/New_York"

[[job]]
name = "seven"
every = "7s"
command = "true"
paused = true

[[job]]
name = "five"
cron = "*/5 * * * * *"
command = "true"
paused = true
"#
    ));
    let out = d.run(&["check", "--count", "10"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let mut daemon = d.start();
    daemon.wait_for("start", |v| v["message"] == "daemon started");
    let mut db = sql(&url, &schema);
    for job in ["seven", "five"] {
        let printed = check_times(&text, job);
        assert_eq!(printed.len(), 10, "{text}");
        let watermark: jiff::Timestamp = db
            .query_one(
                "SELECT next_fire_at FROM sched_job WHERE name = $1",
                &[&job],
            )
            .unwrap()
            .get(0);
        assert!(
            printed.contains(&watermark),
            "{job}: the cluster's first occurrence {watermark} is not among the times check printed: {text}"
        );
    }
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0);
}

#[test]
fn status_marks_stale_nodes_and_history_reads_archived_runs() {
    let Some(url) = database_url("status_marks_stale_nodes_and_history_reads_archived_runs") else {
        return;
    };
    let schema = fresh_schema("clitest_stale");
    let (dir, mut daemon) = start_node(&url, &schema);
    let mut db = sql(&url, &schema);
    wait_until("two successful runs", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run WHERE state = 'succeeded'",
            &[],
        ) >= 2
    });
    // A node gone an hour ago (its row is kept for a day), and the succeeded runs
    // moved to the history table as the retention would (terminal runs nothing
    // waits for, all behind the watermark).
    db.batch_execute(
        "INSERT INTO sched_node (node_id, hostname, pid, version, heartbeat_at, stale_after_ms)
         VALUES ('ghost', 'elsewhere', 1, 'old', now() - interval '1 hour', 30000);
         WITH gone AS (DELETE FROM sched_run WHERE state = 'succeeded' RETURNING *)
         INSERT INTO sched_run_history SELECT gone.*, now() FROM gone;",
    )
    .unwrap();
    let archived = count(&mut db, "SELECT count(*) FROM sched_run_history", &[]);
    assert!(archived >= 2);

    let out = dir.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let nodes = status["nodes"].as_array().unwrap();
    let ghost = nodes.iter().find(|n| n["node_id"] == "ghost").unwrap();
    assert_eq!(ghost["state"], "stale", "{status}");
    assert_eq!(ghost["stale_after_s"], 30.0, "{status}");
    let me = nodes
        .iter()
        .find(|n| n["pid"] == i64::from(daemon.child.id()))
        .unwrap();
    assert_eq!(me["state"], "alive", "{status}");
    assert!(
        status["jobs"][0]["last_run"]["state"].is_string(),
        "the last run is found among archived runs too: {status}"
    );
    let table = stdout(&dir.run(&["status"]));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ghost") && l.contains(" stale ")),
        "{table}"
    );

    let out = dir.run(&["history", "tick", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let attempts: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let succeeded = attempts
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["run_state"] == "succeeded")
        .count();
    assert!(
        succeeded as i64 >= archived,
        "history lists the archived runs' attempts: {attempts}"
    );
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0);
}

#[test]
fn recurrences_run_in_cluster_mode_on_the_pinned_grid() {
    let Some(url) = database_url("recurrences_run_in_cluster_mode_on_the_pinned_grid") else {
        return;
    };
    let schema = fresh_schema("clitest_rec");
    let d = Dir::new();
    d.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
lease = "2s"
zone = "Europe/Berlin"

[[job]]
name = "pulse"
recurrence = {{ every = "2 seconds" }}
command = "echo $MYRMEX_RUN_ID"

[[job]]
name = "morning"
recurrence = {{ every = "1 day", at = ["09:00"], on = ["mon", "wed"] }}
command = "true"
"#
    ));
    let mut daemon = d.start();
    daemon.wait_for("daemon started", |v| v["message"] == "daemon started");
    let mut db = sql(&url, &schema);
    wait_until("three successful runs of pulse", || {
        count(
            &mut db,
            "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id
             WHERE j.name = 'pulse' AND r.state = 'succeeded'",
            &[],
        ) >= 3
    });
    // Every 2 s on the Unix epoch grid, whichever node wrote the job.
    let off_grid = count(
        &mut db,
        "SELECT count(*) FROM sched_run WHERE (extract(epoch FROM scheduled_at) * 1000)::bigint % 2000 <> 0",
        &[],
    );
    assert_eq!(off_grid, 0);
    let morning: jiff::Timestamp = db
        .query_one(
            "SELECT next_fire_at FROM sched_job WHERE name = 'morning'",
            &[],
        )
        .unwrap()
        .get(0);
    let local = morning.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap());
    assert_eq!((local.hour(), local.minute()), (9, 0));
    assert!(matches!(
        local.weekday(),
        jiff::civil::Weekday::Monday | jiff::civil::Weekday::Wednesday
    ));
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(), 0);
}
