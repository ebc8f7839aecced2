//! `myrmex status` and `myrmex history [JOB]` on a PostgreSQL store: the nodes of
//! the cluster (alive or stale), which node runs what, each job's next fire and
//! last run, and the attempts recorded by every node, including runs moved to the
//! history table by the retention (read-only queries on the cluster's tables); and
//! `trigger`, `pause` and `resume`, which act on the database, not on one daemon.

use anyhow::Context;
use jiff::Timestamp;
use myrmex_postgres::PgStore;
use serde::Serialize;

use crate::config::Config;
use crate::exit_codes;
use crate::status::Format;

/// A node as `status` shows it.
#[derive(Debug, Serialize)]
struct NodeRow {
    node_id: String,
    hostname: String,
    pid: i32,
    version: String,
    started_at: Timestamp,
    heartbeat_at: Timestamp,
    /// Seconds since the last heartbeat, on the database's clock.
    heartbeat_age_s: f64,
    /// `alive`, or `stale` when the last heartbeat is older than the node's
    /// `stale_after_s` (three heartbeat periods): the process is gone or frozen.
    /// Stale rows without leases are deleted by the other nodes after a day.
    state: &'static str,
    /// How long the node may go without a heartbeat before it is stale.
    stale_after_s: f64,
    running: Vec<RunningRow>,
}

/// A run a node holds a lease on.
#[derive(Debug, Serialize)]
struct RunningRow {
    job: String,
    run_id: String,
    scheduled_at: Timestamp,
    attempt: i32,
}

/// A job as `status` shows it.
#[derive(Debug, Serialize)]
struct JobRow {
    name: String,
    trigger: serde_json::Value,
    paused: bool,
    /// The earliest occurrence not started yet (materialized or not).
    next_fire: Option<Timestamp>,
    last_run: Option<LastRun>,
}

/// The most recent occurrence of a job that started or ended.
#[derive(Debug, Serialize)]
struct LastRun {
    scheduled_at: Timestamp,
    state: String,
    attempt: i32,
    finished_at: Option<Timestamp>,
    node: Option<String>,
}

/// One attempt in `history`.
#[derive(Debug, Serialize)]
struct AttemptRow {
    job: String,
    run_id: String,
    scheduled_at: Timestamp,
    attempt: i32,
    node: String,
    started_at: Timestamp,
    finished_at: Option<Timestamp>,
    outcome: Option<String>,
    error: Option<String>,
    run_state: String,
}

fn connect(config: &Config, url: &str) -> Result<PgStore, u8> {
    PgStore::connect(&crate::cluster::options(config, url)).map_err(|e| {
        eprintln!(
            "error: cannot open the PostgreSQL store: {}",
            crate::error_chain(&e)
        );
        exit_codes::STORE
    })
}

fn db_error(e: &dyn std::error::Error) -> u8 {
    eprintln!(
        "error: reading the PostgreSQL store failed: {}",
        crate::error_chain(e)
    );
    exit_codes::STORE
}

fn ts(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "-".to_owned(), |t| t.to_string())
}

/// `myrmex status` on a PostgreSQL store.
pub fn status(config: &Config, url: &str, format: Format) -> u8 {
    let mut store = match connect(config, url) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let (nodes, jobs) = match read_status(&mut store) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: reading the PostgreSQL store failed: {e:#}");
            return exit_codes::STORE;
        }
    };
    match format {
        Format::Json => {
            let doc = serde_json::json!({ "nodes": nodes, "jobs": jobs });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Table => {
            println!(
                "NODE                                  HOST            PID      STATE  HEARTBEAT                       AGE     RUNNING"
            );
            for n in &nodes {
                let running: Vec<String> = n.running.iter().map(|r| r.run_id.clone()).collect();
                println!(
                    "{:<37} {:<15} {:<8} {:<6} {:<31} {:<7} {}",
                    n.node_id,
                    n.hostname,
                    n.pid,
                    n.state,
                    n.heartbeat_at.to_string(),
                    format!("{:.1}s", n.heartbeat_age_s),
                    if running.is_empty() {
                        "-".to_owned()
                    } else {
                        running.join(", ")
                    }
                );
            }
            println!();
            println!("JOB                  STATE    NEXT FIRE                       LAST RUN");
            for j in &jobs {
                let last = j.last_run.as_ref().map_or_else(
                    || "-".to_owned(),
                    |l| format!("{} {} (attempt {})", l.scheduled_at, l.state, l.attempt),
                );
                println!(
                    "{:<20} {:<8} {:<31} {}",
                    j.name,
                    if j.paused { "paused" } else { "active" },
                    ts(j.next_fire),
                    last
                );
            }
        }
    }
    exit_codes::OK
}

fn read_status(store: &mut PgStore) -> anyhow::Result<(Vec<NodeRow>, Vec<JobRow>)> {
    let now = store.db_now()?;
    let infos = store.nodes()?;
    let running = store.running()?;
    let client = store.client();
    let names: std::collections::HashMap<i64, String> = client
        .query("SELECT id, name FROM sched_job", &[])
        .context("read the cluster's status")?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let nodes = infos
        .into_iter()
        .map(|n| NodeRow {
            running: running
                .iter()
                .filter(|r| r.lease_owner.as_deref() == Some(n.node_id.as_str()))
                .map(|r| RunningRow {
                    job: names.get(&r.job.0).cloned().unwrap_or_default(),
                    run_id: myrmex_postgres::run_key(r.job, r.scheduled_at, &r.stage),
                    scheduled_at: r.scheduled_at,
                    attempt: r.attempt,
                })
                .collect(),
            heartbeat_age_s: now.duration_since(n.heartbeat_at).as_secs_f64(),
            state: if n.stale { "stale" } else { "alive" },
            stale_after_s: n.stale_after.as_secs_f64(),
            node_id: n.node_id,
            hostname: n.hostname,
            pid: n.pid,
            version: n.version,
            started_at: n.started_at,
            heartbeat_at: n.heartbeat_at,
        })
        .collect();
    let rows = client
        .query(
            "SELECT j.name, j.trigger_spec, j.paused,
                    CASE WHEN j.paused THEN NULL ELSE least(j.next_fire_at,
                      (SELECT min(r.scheduled_at) FROM sched_run r
                       WHERE r.job_id = j.id AND r.state IN ('pending','blocked') AND r.attempt = 0)) END,
                    l.scheduled_at, l.state, l.attempt, l.finished_at, a.node_id
             FROM sched_job j
             LEFT JOIN LATERAL (SELECT * FROM (
                                  SELECT r.id, r.scheduled_at, r.state, r.attempt, r.finished_at FROM sched_run r
                                  WHERE r.job_id = j.id AND (r.attempt > 0 OR r.finished_at IS NOT NULL)
                                  ORDER BY r.scheduled_at DESC, r.id DESC LIMIT 1) hot
                                UNION ALL
                                SELECT * FROM (
                                  SELECT h.id, h.scheduled_at, h.state, h.attempt, h.finished_at
                                  FROM sched_run_history h WHERE h.job_id = j.id
                                  ORDER BY h.scheduled_at DESC, h.id DESC LIMIT 1) old
                                ORDER BY scheduled_at DESC, id DESC LIMIT 1) l ON true
             LEFT JOIN sched_attempt a ON a.run_id = l.id AND a.attempt = l.attempt
             ORDER BY j.name",
            &[],
        )
        .context("read the cluster's status")?;
    let jobs = rows
        .iter()
        .map(|r| JobRow {
            name: r.get(0),
            trigger: r.get(1),
            paused: r.get(2),
            next_fire: r.get(3),
            last_run: r
                .get::<_, Option<Timestamp>>(4)
                .map(|scheduled_at| LastRun {
                    scheduled_at,
                    state: r.get(5),
                    attempt: r.get(6),
                    finished_at: r.get(7),
                    node: r.get(8),
                }),
        })
        .collect();
    Ok((nodes, jobs))
}

/// `myrmex history [JOB]` on a PostgreSQL store: the last `limit` attempts, oldest
/// first.
pub fn history(config: &Config, url: &str, job: Option<&str>, limit: usize, format: Format) -> u8 {
    let mut store = match connect(config, url) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let rows = store.client().query(
        "SELECT * FROM (
           SELECT j.name, j.id, r.scheduled_at, r.stage, a.attempt, a.node_id, a.started_at, a.finished_at,
                  a.outcome, a.error, r.state
           FROM sched_attempt a
           JOIN (SELECT id, job_id, scheduled_at, stage, state FROM sched_run
                 UNION ALL SELECT id, job_id, scheduled_at, stage, state FROM sched_run_history) r
             ON r.id = a.run_id
           JOIN sched_job j ON j.id = r.job_id
           WHERE $1::text IS NULL OR j.name = $1
           ORDER BY a.started_at DESC, a.run_id DESC, a.attempt DESC LIMIT $2) h
         ORDER BY started_at, scheduled_at, attempt",
        &[&job, &(i64::try_from(limit).unwrap_or(i64::MAX))],
    );
    let rows = match rows {
        Ok(r) => r,
        Err(e) => return db_error(&e),
    };
    let attempts: Vec<AttemptRow> = rows
        .iter()
        .map(|r| {
            let scheduled_at: Timestamp = r.get(2);
            let stage: String = r.get(3);
            AttemptRow {
                job: r.get(0),
                run_id: myrmex_postgres::run_key(
                    myrmex_postgres::JobId(r.get(1)),
                    scheduled_at,
                    &stage,
                ),
                scheduled_at,
                attempt: r.get(4),
                node: r.get(5),
                started_at: r.get(6),
                finished_at: r.get(7),
                outcome: r.get(8),
                error: r.get(9),
                run_state: r.get(10),
            }
        })
        .collect();
    if let Some(j) = job
        && attempts.is_empty()
    {
        eprintln!("error: no runs recorded for job `{j}`");
        return exit_codes::INVALID_INPUT;
    }
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&attempts).unwrap_or_default()
        ),
        Format::Table => {
            println!(
                "JOB                  SCHEDULED AT                    ATTEMPT  NODE                                  OUTCOME"
            );
            for a in &attempts {
                println!(
                    "{:<20} {:<31} {:<8} {:<37} {}",
                    a.job,
                    a.scheduled_at.to_string(),
                    a.attempt,
                    a.node,
                    a.outcome.as_deref().unwrap_or(if a.finished_at.is_none() {
                        "running"
                    } else {
                        "-"
                    })
                );
            }
        }
    }
    exit_codes::OK
}

/// `myrmex trigger|pause|resume JOB` on a PostgreSQL store: a manual run at the
/// database's `now()` (any node takes it), or the job's paused flag. A node that
/// starts later applies its config's `paused` again.
pub fn control(config: &Config, url: &str, req: &crate::control::Request) -> u8 {
    use crate::control::Request;
    let mut store = match connect(config, url) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let job = match req {
        Request::Trigger { job } | Request::Pause { job } | Request::Resume { job } => job,
        _ => {
            eprintln!("error: this request is not supported with a PostgreSQL store");
            return exit_codes::REFUSED;
        }
    };
    let result = store.job_id(job).and_then(|id| match req {
        Request::Trigger { .. } => store.trigger_now(id, None).map(|run| match run {
            Some(run) => format!("job `{job}` triggered (run {run})"),
            None => format!("job `{job}` triggered"),
        }),
        Request::Pause { .. } => store
            .set_paused(id, true)
            .map(|()| format!("job `{job}` paused")),
        _ => store
            .set_paused(id, false)
            .map(|()| format!("job `{job}` resumed")),
    });
    match result {
        Ok(msg) => {
            println!("{msg}");
            exit_codes::OK
        }
        Err(myrmex_postgres::Error::JobNotFound { .. }) => {
            eprintln!("error: no job named `{job}` in the PostgreSQL store");
            exit_codes::REFUSED
        }
        Err(e) => {
            eprintln!("error: {}", crate::error_chain(&e));
            exit_codes::STORE
        }
    }
}
