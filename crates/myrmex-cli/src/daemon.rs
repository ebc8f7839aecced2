//! `myrmex run`: the daemon.
//!
//! One thread (this one) owns the [`myrmex::Scheduler`] and waits on a single channel
//! for signals (forwarded by signal-hook's self-pipe thread) and control requests
//! (from the control socket's thread). It never polls: every wake-up is a message.
//! Each job's handler runs its command through [`crate::runner`] on a scheduler
//! worker.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use myrmex::{
    Dag, DagError, Event, Handler, JobId, Pipeline, PipelineJob, RunContext, Scheduler,
    SchedulerError, Stage, StageFailurePolicy,
};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::{Config, ConfigError, JobConfig, PipelineConfig, PipelineFailure, Requirement};
use crate::control::{ControlError, ControlServer, Request, Response};
use crate::runner::{self, Outcome};
use crate::state::{self, Shared, SharedStore, StoreJournal};
use crate::{exit_codes, plan};

/// What wakes the daemon's main thread.
enum Msg {
    Signal(i32),
    Control(Request, SyncSender<Response>),
}

/// Runs the daemon with the config at `path` until SIGTERM or SIGINT; returns the
/// exit code.
pub fn run(path: &Path) -> u8 {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.render());
            return exit_codes::INVALID_INPUT;
        }
    };
    if let crate::config::StoreSpec::Postgres(url) = &config.scheduler.store {
        let url = url.clone();
        return crate::cluster::run(config, &url);
    }
    let (tx, rx) = mpsc::channel();

    // The control socket comes first: it refuses a second daemon on the same state
    // before anything else is touched.
    let control = {
        let tx = tx.clone();
        ControlServer::start(&config.control_dir(), move |req| {
            let (reply, answer) = mpsc::sync_channel(1);
            if tx.send(Msg::Control(req, reply)).is_err() {
                return Response::refused("the daemon is shutting down");
            }
            answer
                .recv()
                .unwrap_or_else(|_| Response::refused("the daemon is shutting down"))
        })
    };
    let control = match control {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "cannot start");
            return match e {
                ControlError::AlreadyRunning { .. } => exit_codes::ALREADY_RUNNING,
                _ => exit_codes::FAILURE,
            };
        }
    };

    let signals = match Signals::start(&tx) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            control.stop();
            return exit_codes::FAILURE;
        }
    };
    drop(tx);

    let code = match Daemon::start(config) {
        Ok(mut daemon) => {
            daemon.serve(&rx);
            control.stop();
            daemon.shutdown()
        }
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "cannot start");
            control.stop();
            match e {
                StartError::Store { .. } => exit_codes::STORE,
                StartError::Scheduler(_) | StartError::Dag(_) => exit_codes::FAILURE,
            }
        }
    };
    signals.stop();
    code
}

/// How often a running daemon prunes its history (when `history_retention` is set).
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// The signal-forwarding thread.
struct Signals {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl Signals {
    fn start(tx: &Sender<Msg>) -> std::io::Result<Signals> {
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("myrmex-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Signals { handle, thread })
    }

    fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Counts the commands running right now, so that shutdown can wait for the ones
/// it had to stop.
#[derive(Default)]
struct Active {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Active {
    fn enter(self: &Arc<Self>) -> ActiveGuard {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        ActiveGuard(Arc::clone(self))
    }

    /// Waits until no command runs, or `limit` passes; returns how many still run.
    fn wait_idle(&self, limit: Duration) -> usize {
        let guard = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .zero
            .wait_timeout_while(guard, limit, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

struct ActiveGuard(Arc<Active>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut n = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *n -= 1;
        if *n == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// A job or pipeline the scheduler knows, with the fingerprint of the config it
/// was added from and the ids its dependencies had then.
struct Registered {
    id: JobId,
    fingerprint: String,
    deps: Vec<JobId>,
}

/// A job or a pipeline of the config.
#[derive(Clone)]
enum Item {
    Job(JobConfig),
    Pipeline(PipelineConfig),
}

impl Item {
    fn name(&self) -> &str {
        match self {
            Item::Job(j) => &j.name,
            Item::Pipeline(p) => &p.name,
        }
    }
}

struct Daemon {
    config: Config,
    scheduler: Scheduler,
    dag: Dag,
    store: SharedStore,
    jobs: BTreeMap<String, Registered>,
    shared: Shared,
    active: Arc<Active>,
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error("cannot open the state store {store}")]
    Store {
        store: String,
        #[source]
        source: myrmex_store::StoreError,
    },
    #[error("cannot start the scheduler")]
    Scheduler(#[from] SchedulerError),
    #[error("cannot add a job")]
    Dag(#[from] DagError),
}

impl Daemon {
    fn start(config: Config) -> Result<Daemon, StartError> {
        let store_error = |source| StartError::Store {
            store: config.scheduler.store.to_string(),
            source,
        };
        let store = state::open(&config.scheduler.store).map_err(store_error)?;
        let now = jiff::Timestamp::now();
        // Runs left running by a daemon that died become interrupted (or dead when no
        // attempt is left); interrupted runs, from then or from a shutdown that had
        // to stop them, are run again below.
        for r in store.recover_interrupted(now).map_err(store_error)? {
            if !r.state.is_claimable() {
                tracing::warn!(job = %r.key.job, scheduled_at = %r.key.scheduled_at, state = %r.state, "run interrupted by the previous daemon; no attempt left");
            }
        }
        let interrupted = store
            .list_runs(
                &myrmex_store::RunFilter::all().in_states([myrmex_store::RunState::Interrupted]),
            )
            .map_err(store_error)?;
        let stored: BTreeMap<String, myrmex_store::JobRecord> = store
            .list_jobs()
            .map_err(store_error)?
            .into_iter()
            .map(|r| (r.id.0.clone(), r))
            .collect();
        let shared = Shared::default();
        let mut journal = StoreJournal::new(Arc::clone(&store), shared.clone());
        // Unchanged jobs get their stored state back under ids chosen here; the others
        // are added afresh after them.
        let mut restores = Vec::new();
        for p in &config.pipelines {
            shared.set_fingerprint(&p.name, pipeline_fingerprint(&config, p));
        }
        for job in &config.jobs {
            shared.set_fingerprint(&job.name, state::fingerprint(job));
            if let Some(r) = stored
                .get(&job.name)
                .and_then(|rec| state::restorable(rec, job))
            {
                let id = JobId(restores.len() as u64 + 1);
                shared.register(id, &job.name);
                journal.restored(id, r.state.next_run_at, &r.spec);
                restores.push((id, job.clone(), r));
            }
        }
        let scheduler = Scheduler::builder()
            .workers(config.scheduler.workers)
            .zone(config.scheduler.zone.tz.clone())
            .journal(journal)
            .on_event({
                let shared = shared.clone();
                move |e| log_event(&shared, e)
            })
            .build()?;
        let dag = Dag::attach(&scheduler);
        let mut daemon = Daemon {
            config,
            scheduler,
            dag,
            store,
            jobs: BTreeMap::new(),
            shared,
            active: Arc::default(),
        };
        let mut restores: BTreeMap<String, _> = restores
            .into_iter()
            .map(|(id, job, r)| (job.name.clone(), (id, r)))
            .collect();
        for item in daemon.items_in_order() {
            let restored = match &item {
                Item::Job(job) => restores.remove(&job.name).map(|r| (job, r)),
                Item::Pipeline(_) => None,
            };
            match restored {
                Some((job, (id, r))) => {
                    let next_fire = r.state.next_run_at;
                    daemon
                        .scheduler
                        .restore(id, r.spec, r.state, daemon.handler(job, true))?;
                    daemon.dag.track(id)?;
                    let deps = daemon.dependencies(job);
                    if !deps.is_empty() {
                        daemon.dag.set_dependencies(id, deps.clone())?;
                    }
                    tracing::info!(job = %job.name, next_fire = ?next_fire, "job restored from the state store");
                    daemon.jobs.insert(
                        job.name.clone(),
                        Registered {
                            id,
                            fingerprint: state::fingerprint(job),
                            deps: deps.iter().map(|d| d.job).collect(),
                        },
                    );
                }
                None => daemon.add(&item)?,
            }
        }
        let known = |n: &str| {
            daemon.config.job(n).is_some() || daemon.config.pipelines.iter().any(|p| p.name == n)
        };
        for name in stored.keys().filter(|n| !known(n)) {
            let patch = myrmex_store::JobPatch {
                paused: None,
                status: Some(myrmex_store::JobStatus::Cancelled),
            };
            if let Err(e) = daemon
                .store
                .update_job(&myrmex_store::JobId(name.clone()), patch, now)
            {
                tracing::warn!(job = %name, error = %e, "cannot mark a job removed from the config");
            }
        }
        if !daemon.config.pipelines.is_empty() && daemon.config.scheduler.workers < 2 {
            tracing::warn!(
                "a running pipeline holds a worker while its stages run: give the scheduler at least 2 workers"
            );
        }
        daemon.prune(now);
        daemon.scheduler.start()?;
        for run in interrupted {
            let Some(reg) = daemon.jobs.get(&run.key.job.0) else {
                continue;
            };
            tracing::info!(job = %run.key.job, scheduled_at = %run.key.scheduled_at, "run interrupted by the previous daemon; running it again");
            if let Err(e) = daemon.scheduler.release(reg.id, run.key.scheduled_at) {
                tracing::error!(job = %run.key.job, error = %e, "cannot run an interrupted run again");
            }
        }
        tracing::info!(
            config = %daemon.config.path.display(),
            store = %daemon.config.scheduler.store,
            jobs = daemon.jobs.len(),
            zone = %daemon.config.scheduler.zone.name,
            workers = daemon.config.scheduler.workers,
            "daemon started"
        );
        Ok(daemon)
    }

    /// Deletes finished runs older than the history retention.
    fn prune(&self, now: jiff::Timestamp) {
        let Some(max_age) = self.config.scheduler.history_retention else {
            return;
        };
        let retention = myrmex_store::Retention {
            max_age: Some(max_age),
            max_per_job: None,
        };
        match self.store.prune(retention, now) {
            Ok(0) => {}
            Ok(n) => tracing::info!(runs = n, "old runs pruned from the history"),
            Err(e) => tracing::error!(error = %e, "pruning the history failed"),
        }
    }

    /// The jobs and pipelines of the config, each after what it depends on
    /// (pipelines first: they depend on nothing, jobs may depend on them).
    fn items_in_order(&self) -> Vec<Item> {
        fn visit(
            job: &JobConfig,
            config: &Config,
            seen: &mut std::collections::HashSet<String>,
            out: &mut Vec<Item>,
        ) {
            if !seen.insert(job.name.clone()) {
                return;
            }
            for d in &job.depends_on {
                if let Some(up) = config.job(&d.name) {
                    visit(up, config, seen, out);
                }
            }
            out.push(Item::Job(job.clone()));
        }
        let mut out: Vec<Item> = self
            .config
            .pipelines
            .iter()
            .cloned()
            .map(Item::Pipeline)
            .collect();
        let mut seen = std::collections::HashSet::new();
        for job in &self.config.jobs {
            visit(job, &self.config, &mut seen, &mut out);
        }
        out
    }

    /// `job`'s dependencies as scheduler ids (every one is registered: the config
    /// was checked and items are added in dependency order).
    fn dependencies(&self, job: &JobConfig) -> Vec<myrmex::Dependency> {
        job.depends_on
            .iter()
            .filter_map(|d| {
                let id = self.jobs.get(&d.name)?.id;
                Some(match d.require {
                    Requirement::Success => myrmex::Dependency::succeeded(id),
                    Requirement::Completion => myrmex::Dependency::finished(id),
                })
            })
            .collect()
    }

    fn add(&mut self, item: &Item) -> Result<(), DagError> {
        let now = self.scheduler.now();
        let (id, fingerprint, deps) = match item {
            Item::Job(job) => {
                let fingerprint = state::fingerprint(job);
                self.shared.set_fingerprint(&job.name, fingerprint.clone());
                let spec = plan::job_spec(&self.config, job, now);
                let deps = self.dependencies(job);
                let id = self
                    .dag
                    .schedule_handler(spec, deps.clone(), self.handler(job, true))?;
                (id, fingerprint, deps.iter().map(|d| d.job).collect())
            }
            Item::Pipeline(p) => {
                let fingerprint = pipeline_fingerprint(&self.config, p);
                self.shared.set_fingerprint(&p.name, fingerprint.clone());
                let zone = self.config.zone_of(p.zone.as_ref());
                let spec = myrmex::JobSpec::new(plan::trigger(p.schedule.as_ref(), zone, now))
                    .name(p.name.clone());
                let id = self.dag.schedule_pipeline(spec, [], self.pipeline(p))?;
                (id, fingerprint, Vec::new())
            }
        };
        self.shared.register(id, item.name());
        self.jobs.insert(
            item.name().to_string(),
            Registered {
                id,
                fingerprint,
                deps,
            },
        );
        Ok(())
    }

    /// The `myrmex` pipeline for `p`: each stage job runs its config job's command.
    fn pipeline(&self, p: &PipelineConfig) -> Pipeline<serde_json::Value> {
        let mut pipeline = Pipeline::new(p.name.clone()).failure_policy(match p.on_failure {
            PipelineFailure::Stop => StageFailurePolicy::Stop,
            PipelineFailure::Continue => StageFailurePolicy::Continue,
        });
        for (i, names) in p.stages.iter().enumerate() {
            let mut stage = Stage::new(format!("{}/stage-{}", p.name, i + 1));
            for name in names {
                let Some(job) = self.config.job(name) else {
                    continue;
                };
                let handler = self.handler(job, false);
                let policies = plan::policies(&self.config, job);
                let mut pj = PipelineJob::new(
                    format!("{}/{}", p.name, job.name),
                    move |ctx: &myrmex::StageContext<'_, serde_json::Value>| {
                        handler(ctx.run()).map(|()| serde_json::Value::Null)
                    },
                )
                .retry(policies.retry);
                if let Some(t) = policies.timeout {
                    pj = pj.timeout(t);
                }
                stage = stage.with(pj);
            }
            pipeline = pipeline.stage(stage);
        }
        pipeline
    }

    fn remove(&mut self, name: &str) {
        if let Some(r) = self.jobs.remove(name)
            && let Err(e) = self.scheduler.cancel(r.id)
        {
            tracing::debug!(job = name, error = %e, "cancel on removal");
        }
    }

    /// The handler that runs `job`'s command.
    fn handler(&self, job: &JobConfig, record_output: bool) -> Handler {
        let base = runner::RunRequest {
            job: job.name.clone(),
            argv: job.command.argv(),
            working_dir: job.working_dir.clone(),
            env: job.env.clone(),
            scheduled_at: jiff::Timestamp::UNIX_EPOCH,
            attempt: 0,
            // The scheduler owns timeouts: it cancels the attempt's token.
            timeout: None,
            kill_grace: self.config.scheduler.kill_grace.unsigned_abs(),
            tail_bytes: self.config.scheduler.output_tail_bytes,
            run_id: None,
        };
        let active = Arc::clone(&self.active);
        let shared = self.shared.clone();
        Arc::new(move |ctx: &RunContext| {
            let _running = active.enter();
            let attempt = shared
                .take_attempt(&base.job, ctx.scheduled_at())
                .unwrap_or(ctx.attempt());
            let req = runner::RunRequest {
                scheduled_at: ctx.scheduled_at(),
                attempt,
                ..base.clone()
            };
            let run_id = runner::run_id(&req.job, req.scheduled_at);
            tracing::info!(job = %req.job, run_id = %run_id, attempt = req.attempt, "run started");
            let out = run_with_token(&req, ctx);
            let timed_out = ctx.deadline().is_some_and(|d| jiff::Timestamp::now() >= d);
            let outcome = match out.outcome {
                Outcome::Interrupted if timed_out => Outcome::TimedOut,
                o => o,
            };
            if record_output {
                shared.put_output(
                    &req.job,
                    req.scheduled_at,
                    serde_json::json!({
                        "outcome": outcome.to_string(),
                        "duration_s": out.duration.as_secs_f64(),
                        "stdout_tail": out.stdout_tail,
                        "stderr_tail": out.stderr_tail,
                    }),
                );
            }
            let fields = (
                req.job.as_str(),
                run_id.as_str(),
                req.attempt,
                out.duration.as_secs_f64(),
            );
            if outcome.is_success() {
                tracing::info!(job = fields.0, run_id = fields.1, attempt = fields.2, duration_s = fields.3, outcome = %outcome, "run finished");
                Ok(())
            } else {
                tracing::warn!(job = fields.0, run_id = fields.1, attempt = fields.2, duration_s = fields.3, outcome = %outcome, stderr_tail = %last_lines(&out.stderr_tail, 5), "run finished");
                let mut msg = outcome.to_string();
                let tail = last_lines(&out.stderr_tail, 5);
                if !tail.is_empty() {
                    msg.push_str("; stderr: ");
                    msg.push_str(&tail);
                }
                Err(msg.into())
            }
        })
    }

    /// Handles messages until SIGTERM or SIGINT.
    fn serve(&mut self, rx: &Receiver<Msg>) {
        // With a history retention, old runs are also pruned once per
        // `PRUNE_EVERY` while the daemon runs (not only at start and on SIGHUP).
        let mut next_prune = std::time::Instant::now() + PRUNE_EVERY;
        loop {
            let msg = if self.config.scheduler.history_retention.is_some() {
                let wait = next_prune.saturating_duration_since(std::time::Instant::now());
                match rx.recv_timeout(wait) {
                    Ok(msg) => msg,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.prune(jiff::Timestamp::now());
                        next_prune = std::time::Instant::now() + PRUNE_EVERY;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return,
                }
            } else {
                match rx.recv() {
                    Ok(msg) => msg,
                    Err(_) => return,
                }
            };
            match msg {
                Msg::Signal(SIGHUP) => self.reload(),
                Msg::Signal(sig) => {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    tracing::info!(signal = name, "shutting down");
                    return;
                }
                Msg::Control(req, reply) => {
                    let _ = reply.send(self.control(req));
                }
            }
        }
    }

    fn control(&mut self, req: Request) -> Response {
        let job = match &req {
            Request::Ping => return Response::ok("pong"),
            Request::Trigger { job } | Request::Pause { job } | Request::Resume { job } => job,
        };
        let Some(id) = self.jobs.get(job).map(|r| r.id) else {
            return Response::refused(format!("unknown job `{job}`"));
        };
        let result = match &req {
            Request::Trigger { .. } => {
                let now = self.scheduler.now();
                self.scheduler
                    .release(id, now)
                    .map(|()| format!("triggered `{job}` (run {})", runner::run_id(job, now)))
            }
            Request::Pause { .. } => self.scheduler.pause(id).map(|()| format!("paused `{job}`")),
            Request::Resume { .. } => self
                .scheduler
                .resume(id)
                .map(|()| format!("resumed `{job}`")),
            Request::Ping => unreachable!("answered above"),
        };
        match result {
            Ok(message) => {
                tracing::info!(job = %job, request = ?req, "control request done");
                Response::ok(message)
            }
            Err(e) => Response::refused(crate::error_chain(&e)),
        }
    }

    /// SIGHUP: reads the config again. A broken config is refused and the running
    /// one stays; otherwise unchanged jobs keep their state, changed ones are
    /// replaced, and the others are added or removed.
    fn reload(&mut self) {
        tracing::info!(config = %self.config.path.display(), "SIGHUP: reloading the config");
        let new = match Config::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => {
                let detail = match &e {
                    ConfigError::Invalid { .. } => e.render(),
                    ConfigError::Read { .. } => crate::error_chain(&e),
                };
                tracing::error!(problems = %detail.trim_end(), "config refused; the running config stays");
                return;
            }
        };
        let mut new = new;
        let old = &self.config.scheduler;
        if new.scheduler.zone != old.zone
            || new.scheduler.workers != old.workers
            || new.scheduler.store != old.store
        {
            tracing::warn!(
                "changes to [scheduler] zone, workers or store take effect at the next restart"
            );
            new.scheduler.zone = old.zone.clone();
            new.scheduler.workers = old.workers;
            new.scheduler.store = old.store.clone();
        }
        // Handlers capture these; a change means every job gets a new handler.
        let handlers_changed = new.scheduler.kill_grace != old.kill_grace
            || new.scheduler.output_tail_bytes != old.output_tail_bytes;
        self.config = new;
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        let items = self.items_in_order();
        let gone: Vec<String> = self
            .jobs
            .keys()
            .filter(|n| !items.iter().any(|i| i.name() == n.as_str()))
            .cloned()
            .collect();
        for name in gone {
            self.remove(&name);
            tracing::info!(job = %name, "job removed");
            removed += 1;
        }
        for item in items {
            let fingerprint = match &item {
                Item::Job(j) => state::fingerprint(j),
                Item::Pipeline(p) => pipeline_fingerprint(&self.config, p),
            };
            let existing = self
                .jobs
                .get(item.name())
                .map(|r| r.fingerprint == fingerprint);
            if existing == Some(true) && !handlers_changed {
                continue;
            }
            if existing.is_some() {
                self.remove(item.name());
            }
            match self.add(&item) {
                Ok(()) if existing.is_some() => {
                    tracing::info!(job = %item.name(), "job changed");
                    changed += 1;
                }
                Ok(()) => {
                    tracing::info!(job = %item.name(), "job added");
                    added += 1;
                }
                Err(e) => {
                    tracing::error!(job = %item.name(), error = %crate::error_chain(&e), "cannot add job");
                }
            }
        }
        // Unchanged jobs that depend on a re-added one follow it to its new id.
        for job in self.config.jobs.clone() {
            if job.depends_on.is_empty() {
                continue;
            }
            let deps = self.dependencies(&job);
            let ids: Vec<JobId> = deps.iter().map(|d| d.job).collect();
            let Some(reg) = self.jobs.get(&job.name) else {
                continue;
            };
            if reg.deps != ids {
                let id = reg.id;
                match self.dag.set_dependencies(id, deps) {
                    Ok(()) => {
                        if let Some(reg) = self.jobs.get_mut(&job.name) {
                            reg.deps = ids;
                        }
                    }
                    Err(e) => {
                        tracing::error!(job = %job.name, error = %crate::error_chain(&e), "cannot update dependencies");
                    }
                }
            }
        }
        self.prune(jiff::Timestamp::now());
        tracing::info!(
            added,
            removed,
            changed,
            jobs = self.jobs.len(),
            "config reloaded"
        );
    }

    /// Stops firing, waits for running commands up to the grace period, then stops
    /// the rest (TERM, then KILL after `kill_grace`) and records them as interrupted.
    fn shutdown(self) -> u8 {
        let grace = self.config.scheduler.shutdown_grace.unsigned_abs();
        let started = Instant::now();
        let result = self.scheduler.shutdown(grace);
        match result {
            Ok(()) => {}
            Err(SchedulerError::ShutdownTimedOut { running }) => {
                tracing::warn!(
                    running,
                    "shutdown grace period over; stopping the remaining commands"
                );
                let limit =
                    self.config.scheduler.kill_grace.unsigned_abs() + Duration::from_secs(5);
                let left = self.active.wait_idle(limit);
                if left > 0 {
                    tracing::error!(left, "commands still running after SIGKILL");
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "scheduler shutdown failed");
                return exit_codes::FAILURE;
            }
        }
        let mut code = exit_codes::OK;
        // Runs whose commands had to be stopped are still "running" in the store.
        match self.store.recover_interrupted(jiff::Timestamp::now()) {
            Ok(runs) => {
                for r in runs {
                    tracing::warn!(job = %r.key.job, scheduled_at = %r.key.scheduled_at, state = %r.state, "run recorded as interrupted");
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record interrupted runs");
                code = exit_codes::STORE;
            }
        }
        if let Err(e) = self.store.close() {
            tracing::error!(error = %e, "closing the state store failed");
            code = exit_codes::STORE;
        }
        tracing::info!(took_s = started.elapsed().as_secs_f64(), "daemon stopped");
        code
    }
}

/// Runs `req`, stopping its process group when the attempt's cancellation token is
/// cancelled (timeout, job removed, shutdown past its grace period).
fn run_with_token(req: &runner::RunRequest, ctx: &RunContext) -> runner::RunOutput {
    let cancel = runner::Cancel::new();
    let token = ctx.cancellation().clone();
    let bridge = {
        let cancel = cancel.clone();
        let token = token.clone();
        std::thread::Builder::new()
            .name("myrmex-cancel".into())
            .spawn(move || {
                token.wait();
                cancel.cancel();
            })
    };
    let out = runner::run(req, &cancel);
    // The attempt is over, so its token has no other reader any more: cancelling it
    // releases the forwarding thread.
    token.cancel();
    if let Ok(b) = bridge {
        let _ = b.join();
    }
    out
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Logs the scheduler's events that handlers do not see, with job names.
fn log_event(shared: &Shared, e: &Event) {
    let name = |id: JobId| shared.name(id).unwrap_or_else(|| id.to_string());
    match e {
        Event::Skipped {
            job,
            scheduled_at,
            reason,
        } => {
            tracing::info!(job = %name(*job), scheduled_at = %scheduled_at, reason = ?reason, "fire skipped");
        }
        Event::Missed {
            job,
            first,
            last,
            count,
        } => {
            tracing::warn!(job = %name(*job), first = %first, last = %last, count, "fires missed");
        }
        Event::RunRetrying {
            job,
            scheduled_at,
            failed_attempt,
            retry_at,
            ..
        } => {
            tracing::info!(job = %name(*job), run_id = %runner::run_id(&name(*job), *scheduled_at), failed_attempt, retry_at = %retry_at, "retry scheduled");
        }
        _ => {}
    }
}

/// A fingerprint of a pipeline: its entry and those of its stage jobs.
fn pipeline_fingerprint(config: &Config, p: &PipelineConfig) -> String {
    let jobs: Vec<Option<&JobConfig>> = p.stages.iter().flatten().map(|n| config.job(n)).collect();
    format!("{p:?} {jobs:?}")
}
