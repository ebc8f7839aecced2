//! `myrmex run` on a PostgreSQL store: this process becomes one node of a cluster.
//!
//! Glue only: the config's jobs are written to the database as job definitions
//! ([`myrmex_postgres::PgStore::upsert_job`]), jobs no longer in the config are
//! paused, and a [`myrmex_postgres::Node`] does everything else (materializing
//! occurrences exactly once, claiming under a lease, retries, rescue of a dead
//! node's runs, pipeline stages in order on any node). Its one handler runs the
//! claimed job's (or stage's) command from this node's config through [`crate::runner`], with `MYRMEX_RUN_ID` set to the occurrence key.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use jiff::SignedDuration;
use myrmex_postgres::{
    ConnectOptions, DependencyRule, Handler, JobId, JobSpec, MisfirePolicy, Node, NodeConfig,
    OverlapPolicy, PgStore, RunContext, StageSpec, Trigger,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::{
    AtSpec, Config, JobConfig, MisfireKind, OverlapSpec, PipelineConfig, PipelineFailure,
    ScheduleSpec,
};
use crate::exit_codes;
use crate::runner::{self, Cancel};

/// The handler name of every job the daemon writes.
pub const HANDLER: &str = "myrmex-command";

/// Connection options for the config's store.
pub fn options(config: &Config, url: &str) -> ConnectOptions {
    ConnectOptions::new(url).schema(&config.scheduler.schema)
}

/// Why a job of the config cannot be written as a cluster job definition.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// A civil time that does not exist or is ambiguous in the zone.
    #[error("job `{job}`: cannot place `at` in its zone")]
    Civil {
        /// The job's name.
        job: String,
        /// What jiff said.
        #[source]
        source: jiff::Error,
    },
}

/// The database trigger of a job's schedule. Intervals are anchored at the Unix
/// epoch, so every node and every restart computes the same grid. A job without a
/// schedule that depends on one job (the only form the config check lets through)
/// runs after each of its successes: `upstream` is that job's id.
fn trigger(
    config: &Config,
    name: &str,
    schedule: Option<&ScheduleSpec>,
    zone: Option<&crate::config::Zone>,
    upstream: Option<JobId>,
) -> Result<Trigger, ClusterError> {
    let zone = config.zone_of(zone);
    Ok(match schedule {
        None => upstream.map_or(Trigger::Manual, |job| Trigger::After { job }),
        Some(ScheduleSpec::Cron { expr, .. }) => Trigger::cron(expr, &zone.name),
        Some(ScheduleSpec::Every(every)) => Trigger::every(*every),
        Some(ScheduleSpec::At(AtSpec::Instant(at))) => Trigger::Once { at: *at },
        Some(ScheduleSpec::At(AtSpec::Civil(dt))) => Trigger::Once {
            at: zone
                .tz
                .to_ambiguous_zoned(*dt)
                .compatible()
                .map_err(|source| ClusterError::Civil {
                    job: name.to_owned(),
                    source,
                })?
                .timestamp(),
        },
        Some(ScheduleSpec::At(AtSpec::Daily(t))) => Trigger::cron(
            &format!("{} {} {} * * *", t.second(), t.minute(), t.hour()),
            &zone.name,
        ),
        Some(ScheduleSpec::Recurrence(r)) => crate::cluster_recurrence::trigger(r, zone),
    })
}

/// The job definition written to the database for a job of the config.
///
/// # Errors
/// A schedule the database cannot express.
pub fn job_spec(
    config: &Config,
    job: &JobConfig,
    upstream: Option<JobId>,
) -> Result<JobSpec, ClusterError> {
    let trigger = trigger(
        config,
        &job.name,
        job.schedule.as_ref(),
        job.zone.as_ref(),
        upstream,
    )?;
    let mut spec = JobSpec::new(&job.name, HANDLER, trigger);
    if let Some(kind) = job.misfire.policy {
        spec.misfire = match kind {
            MisfireKind::RunOnce => MisfirePolicy::FireOnce,
            MisfireKind::RunAll => MisfirePolicy::FireAll,
            MisfireKind::Skip => MisfirePolicy::Skip,
        };
    }
    if let Some(grace) = job.misfire.grace {
        spec.misfire_grace = grace;
    }
    spec.overlap = match job.overlap {
        OverlapSpec::Skip | OverlapSpec::Allow(1) => OverlapPolicy::Skip,
        OverlapSpec::Queue => OverlapPolicy::BufferOne,
        OverlapSpec::Allow(_) => OverlapPolicy::Allow,
    };
    spec.max_attempts = job.retry.retries.saturating_add(1);
    spec.retry_backoff = job.retry.delay;
    spec.lease_ttl = config.scheduler.lease;
    spec.timeout = job.timeout;
    spec.paused = job.paused;
    Ok(spec)
}

/// The definition of a pipeline: one stage per job, each waiting for every job of
/// the previous stage (to succeed, or only to end with `on_failure = "continue"`).
/// Each stage runs its job's command with its job's timeout; the pipeline's runs
/// get as many attempts as its most retried job allows.
///
/// # Errors
/// A schedule the database cannot express.
pub fn pipeline_spec(config: &Config, p: &PipelineConfig) -> Result<JobSpec, ClusterError> {
    let trigger = trigger(config, &p.name, p.schedule.as_ref(), p.zone.as_ref(), None)?;
    let mut spec = JobSpec::new(&p.name, HANDLER, trigger);
    let rule = match p.on_failure {
        PipelineFailure::Stop => DependencyRule::AllSuccess,
        PipelineFailure::Continue => DependencyRule::AllDone,
    };
    let mut previous: &[String] = &[];
    for stage in &p.stages {
        for job in stage {
            spec.pipeline.push(StageSpec {
                name: job.clone(),
                handler: HANDLER.to_owned(),
                depends_on: previous.iter().map(|d| (d.clone(), rule)).collect(),
            });
        }
        previous = stage;
    }
    let jobs = p.stages.iter().flatten().filter_map(|j| config.job(j));
    spec.max_attempts = jobs
        .map(|j| j.retry.retries.saturating_add(1))
        .max()
        .unwrap_or(1);
    spec.lease_ttl = config.scheduler.lease;
    spec.paused = p.paused;
    Ok(spec)
}

/// The handler: runs the claimed job's command as this node's config describes it.
fn handler(config: &Arc<Config>, cancel: &Cancel) -> Handler {
    let (config, cancel) = (Arc::clone(config), cancel.clone());
    Arc::new(move |ctx: &mut RunContext| {
        let run = ctx.run();
        // A pipeline's stage is named after the job it runs.
        let name = if run.stage.is_empty() {
            &run.job_name
        } else {
            &run.stage
        };
        let Some(job) = config.job(name) else {
            return Err(format!(
                "job `{name}` is not in this node's config ({})",
                config.path.display()
            ));
        };
        let req = runner::RunRequest {
            job: job.name.clone(),
            argv: job.command.argv(),
            working_dir: job.working_dir.clone(),
            env: job.env.clone(),
            scheduled_at: run.scheduled_at,
            attempt: u32::try_from(run.attempt).unwrap_or(1),
            timeout: if run.stage.is_empty() {
                run.timeout
            } else {
                job.timeout.map(SignedDuration::unsigned_abs)
            },
            kill_grace: config.scheduler.kill_grace.unsigned_abs(),
            tail_bytes: config.scheduler.output_tail_bytes,
            run_id: Some(ctx.run_key()),
        };
        tracing::info!(job = %req.job, run_id = %ctx.run_key(), attempt = req.attempt, "run started");
        let out = runner::run(&req, &cancel);
        let secs = out.duration.as_secs_f64();
        tracing::info!(job = %req.job, run_id = %ctx.run_key(), attempt = req.attempt, duration_s = secs, outcome = %out.outcome, "run finished");
        if out.outcome.is_success() {
            Ok(Some(serde_json::json!({
                "outcome": out.outcome.to_string(),
                "duration_s": secs,
                "stdout_tail": out.stdout_tail,
                "stderr_tail": out.stderr_tail,
            })))
        } else {
            let mut msg = out.outcome.to_string();
            let err = out.stderr_tail.trim_end();
            if !err.is_empty() {
                msg.push_str(": ");
                msg.push_str(err);
            }
            Err(msg)
        }
    })
}

/// Writes the config's jobs to the database and pauses the jobs it no longer has.
fn sync_jobs(store: &mut PgStore, config: &Config) -> Result<(), anyhow::Error> {
    // Upstream jobs first: an `after` trigger names its upstream's id. The config
    // check refused cycles, so every round writes at least one job.
    let mut ids: HashMap<&str, JobId> = HashMap::new();
    while ids.len() < config.jobs.len() {
        let before = ids.len();
        for job in &config.jobs {
            if ids.contains_key(job.name.as_str()) {
                continue;
            }
            let upstream = match job.depends_on.first() {
                None => None,
                Some(d) => match ids.get(d.name.as_str()) {
                    Some(id) => Some(*id),
                    None => continue,
                },
            };
            let spec = job_spec(config, job, upstream)?;
            let (id, created) = store.upsert_job(&spec)?;
            tracing::info!(job = %spec.name, id = %id, created, "job definition written");
            ids.insert(&job.name, id);
        }
        anyhow::ensure!(ids.len() > before, "the jobs' dependencies form a cycle");
    }
    for p in &config.pipelines {
        let (id, created) = store.upsert_job(&pipeline_spec(config, p)?)?;
        tracing::info!(pipeline = %p.name, id = %id, created, "pipeline definition written");
    }
    let names: BTreeSet<&str> = config
        .jobs
        .iter()
        .map(|j| j.name.as_str())
        .chain(config.pipelines.iter().map(|p| p.name.as_str()))
        .collect();
    for (name, paused) in store.job_names()? {
        if !paused && !names.contains(name.as_str()) {
            let id = store.job_id(&name)?;
            store.set_paused(id, true)?;
            tracing::info!(job = %name, "job no longer in the config: paused");
        }
    }
    Ok(())
}

/// How many times the start-up steps (writing the jobs, starting the node) are
/// tried when the database was reachable but a step met a lock held too long (say,
/// by a node frozen in a transaction) or lost its session.
const START_TRIES: u32 = 8;

/// Whether a start-up error is worth retrying: lock contention, or a session lost
/// after the database was reached once (an unreachable database fails at once).
fn transient(e: &anyhow::Error, reached: bool) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<myrmex_postgres::Error>()
            .is_some_and(|e| e.is_contention() || (reached && e.is_connection_lost()))
    })
}

/// Runs `step` until it succeeds, fails for good, or [`START_TRIES`] tries passed,
/// waiting longer after each transient failure. A SIGTERM or SIGINT during a wait
/// ends the retries with the last error; `reached` says whether the database has
/// answered yet (`step` sets it).
fn retry_start<T>(
    what: &str,
    signals: &mut signal_hook::iterator::Signals,
    reached: &mut bool,
    mut step: impl FnMut(&mut bool) -> Result<T, anyhow::Error>,
) -> Result<T, anyhow::Error> {
    let mut wait = Duration::from_millis(100);
    let mut tries = 1;
    loop {
        let e = match step(reached) {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        if tries >= START_TRIES || !transient(&e, *reached) {
            return Err(e);
        }
        tracing::warn!(error = %format!("{e:#}"), tries, "{what} failed; retrying");
        let until = std::time::Instant::now() + wait;
        while std::time::Instant::now() < until {
            if signals.pending().any(|s| s == SIGTERM || s == SIGINT) {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        wait = (wait * 2).min(Duration::from_secs(2));
        tries += 1;
    }
}

/// Runs this process as a cluster node until SIGTERM or SIGINT; returns the exit
/// code.
pub fn run(config: Config, url: &str) -> u8 {
    let config = Arc::new(config);
    let options = options(&config, url);
    let mut signals = match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            return exit_codes::FAILURE;
        }
    };
    // Several nodes start at once, or one starts while another holds a job's row
    // lock or the database drops sessions: busy-database errors are retried.
    let mut reached = false;
    let synced = retry_start(
        "writing the jobs to the PostgreSQL store",
        &mut signals,
        &mut reached,
        |reached| {
            let mut store = PgStore::connect(&options)
                .map_err(|e| anyhow::Error::new(e).context("cannot open the PostgreSQL store"))?;
            *reached = true;
            sync_jobs(&mut store, &config)
                .map_err(|e| e.context("cannot write the jobs to the PostgreSQL store"))
        },
    );
    if let Err(e) = synced {
        tracing::error!(error = %format!("{e:#}"), "cannot start the cluster node");
        return if e.chain().any(|c| c.is::<ClusterError>()) {
            exit_codes::INVALID_INPUT
        } else {
            exit_codes::STORE
        };
    }
    let cancel = Cancel::new();
    let mut node_config = NodeConfig::new(options);
    crate::cluster_node::configure(&config, &mut node_config);
    node_config.workers = config.scheduler.workers;
    let handlers = HashMap::from([(HANDLER.to_owned(), handler(&config, &cancel))]);
    let started = retry_start(
        "starting the cluster node",
        &mut signals,
        &mut reached,
        |_| Ok(Node::start(node_config.clone(), handlers.clone())?),
    );
    let node = match started {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "cannot start the cluster node");
            return exit_codes::STORE;
        }
    };
    tracing::info!(
        config = %config.path.display(),
        node = node.node_id(),
        jobs = config.jobs.len(),
        workers = config.scheduler.workers,
        "daemon started"
    );
    for sig in signals.forever() {
        if sig == SIGHUP {
            tracing::warn!("SIGHUP: reloading is not supported in cluster mode; restart the node");
            continue;
        }
        let name = if sig == SIGTERM { "SIGTERM" } else { "SIGINT" };
        tracing::info!(signal = name, "shutting down");
        break;
    }
    // Stop claiming and let running commands finish within the grace period; then
    // stop their process groups (their runs fail and are retried per policy).
    let (done_tx, done_rx) = mpsc::channel();
    let stopper = std::thread::spawn(move || {
        let r = node.shutdown();
        let _ = done_tx.send(());
        r
    });
    let grace = config.scheduler.shutdown_grace.unsigned_abs();
    if done_rx
        .recv_timeout(grace.max(Duration::from_millis(1)))
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed: stopping the running commands");
        cancel.cancel();
    }
    match stopper.join() {
        Ok(Ok(())) => {
            tracing::info!("daemon stopped");
            exit_codes::OK
        }
        Ok(Err(e)) => {
            tracing::error!(error = %crate::error_chain(&e), "node shutdown failed");
            exit_codes::FAILURE
        }
        Err(_) => exit_codes::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jiff::{SignedDuration, Timestamp};
    use myrmex_postgres::{MisfirePolicy, OverlapPolicy, Trigger};

    use super::{ClusterError, job_spec};
    use crate::config::Config;

    fn spec(job: &str) -> Result<myrmex_postgres::JobSpec, ClusterError> {
        let text = format!(
            "[scheduler]\nstore = \"postgres://x@127.0.0.1/db\"\nzone = \"Europe/Paris\"\nlease = \"7s\"\n\n\
             [[job]]\nname = \"j\"\ncommand = \"true\"\n{job}\n"
        );
        let config = Config::parse(Path::new("myrmex.toml"), &text)
            .unwrap_or_else(|e| panic!("{}", e.render()));
        job_spec(&config, &config.jobs[0], None)
    }

    #[test]
    fn schedules_map_to_database_triggers() {
        let check = |job: &str, want: Trigger| {
            assert_eq!(spec(job).unwrap().trigger, want, "{job}");
        };
        check(
            r#"every = "15m""#,
            Trigger::Interval {
                every: SignedDuration::from_mins(15),
                anchor: Timestamp::UNIX_EPOCH,
            },
        );
        check(
            r#"cron = "0 9 * * 1-5""#,
            Trigger::cron("0 9 * * 1-5", "Europe/Paris"),
        );
        check(
            r#"cron = "0 9 * * *"
zone = "America/New_York""#,
            Trigger::cron("0 9 * * *", "America/New_York"),
        );
        check(
            r#"at = "09:30""#,
            Trigger::cron("0 30 9 * * *", "Europe/Paris"),
        );
        check(
            r#"at = "2026-12-24T18:00:00Z""#,
            Trigger::Once {
                at: "2026-12-24T18:00:00Z".parse().unwrap(),
            },
        );
        check(
            r#"at = "2026-12-24T18:00:00""#,
            Trigger::Once {
                at: "2026-12-24T17:00:00Z".parse().unwrap(),
            },
        );
        check("", Trigger::Manual);
        assert!(matches!(
            spec(r#"recurrence = { every = "2 days" }"#),
            Ok(myrmex_postgres::JobSpec {
                trigger: Trigger::Recurrence { .. },
                ..
            })
        ));
    }

    #[test]
    fn policies_map_to_the_job_definition() {
        let s = spec(
            "every = \"1m\"\nretries = 2\noverlap = \"queue\"\ntimeout = \"5s\"\nmisfire = \"skip\"\nmisfire_grace = \"30s\"",
        )
        .unwrap();
        assert_eq!(s.max_attempts, 3);
        assert_eq!(s.overlap, OverlapPolicy::BufferOne);
        assert_eq!(s.timeout, Some(SignedDuration::from_secs(5)));
        assert_eq!(s.misfire, MisfirePolicy::Skip);
        assert_eq!(s.misfire_grace, SignedDuration::from_secs(30));
        assert_eq!(s.lease_ttl, SignedDuration::from_secs(7));
        assert_eq!(spec("every = \"1m\"").unwrap().overlap, OverlapPolicy::Skip);
        assert_eq!(
            spec("every = \"1m\"\noverlap = \"allow\"").unwrap().overlap,
            OverlapPolicy::Allow
        );
    }
}
