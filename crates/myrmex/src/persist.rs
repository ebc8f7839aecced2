//! Persistence: a [`Scheduler`] whose jobs and runs live in a [`Store`], so that they
//! survive restarts and crashes.
//!
//! [`PersistentScheduler`] wires three things together:
//!
//! * a [`Registry`] of handlers by name — a stored job names its handler and carries JSON
//!   arguments;
//! * a journal (the scheduler's [`Journal`] hook) that writes every change to the store
//!   synchronously on the scheduler thread: jobs when added or changed, each occurrence as
//!   a run **before** its handler starts (keyed by `(job, scheduled_at)`, with the job's
//!   watermark moved in the same transaction), attempts as they start, runs as they end,
//!   and the occurrences the misfire and overlap policies drop, as skipped runs;
//! * reload on start: every stored job whose handler is registered resumes from its stored
//!   watermark (fires missed while down go through its misfire policy), runs left running
//!   by a dead process are marked interrupted and started again while the run's attempt
//!   budget lasts, and jobs whose handler is not registered are reported by name and left
//!   in the store untouched.
//!
//! It is meant for a store used by one process at a time (memory, JSON file, SQLite):
//! start-up recovery treats every run still marked running as interrupted.
//!
//! Job ids ([`JobId`]) are handed out afresh on each start; the stable identity of a
//! persisted job is its **name**.
//!
//! Dependencies between persisted jobs are declared by name
//! ([`PersistentScheduler::schedule_with_deps`], [`JobDependency`]), stored in the job's
//! record (`depends_on`) and, on start, declared again through the scheduler's [`Dag`]
//! once every job is restored. What each edge had seen before the restart (a dependency's
//! completion not yet used by its dependent) is not stored: after a restart every edge
//! waits for a fresh completion.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use myrmex_core::{
    CronDstPolicy, DepError, Dependency, DisambiguationPolicy, JobPolicies, JobSnapshot, JobSpec,
    JobStatus, MisfirePolicy, Outcome, OverlapPolicy, Recurrence, RecurrenceUnit, Requirement,
    RestoredState, RetentionPolicy, RetryPolicy, RunReport, SkipReason, Trigger, TriggerSpec,
    Weekdays,
};
use myrmex_store as store;
use myrmex_store::{
    Attempt, AttemptOutcome, Completion, DependencyRule, DependencySpec, JobDefinition, JobRecord,
    Materialization, MaterializeOutcome, NewRun, OccurrenceKey, RunFilter, RunOrigin, RunState,
    StartOutcome, Store, StoreError, WatermarkUpdate, WriteOp, WriteOutput,
};
use serde::{Deserialize, Serialize};

use crate::deps::{Dag, DagError, Explanation};
use crate::journal::{Journal, JournalError};
use crate::registry::Registry;
use crate::scheduler::{Scheduler, SchedulerBuilder, SchedulerHandle};
use crate::{JobId, SchedulerError};

/// An error of the persistence layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PersistError {
    /// The store failed.
    #[error("store error")]
    Store(#[from] StoreError),
    /// The scheduler refused a call.
    #[error("scheduler error")]
    Scheduler(#[from] SchedulerError),
    /// No handler is registered under this name.
    #[error("no handler registered as `{handler}`")]
    UnknownHandler {
        /// The handler name.
        handler: String,
    },
    /// A job of this name already exists (live, finished, or stored with an unregistered
    /// handler).
    #[error("a job named `{name}` already exists")]
    JobExists {
        /// The job name.
        name: String,
    },
    /// No live persisted job has this name.
    #[error("no job named `{name}`")]
    UnknownJob {
        /// The job name.
        name: String,
    },
    /// A dependency names no live persisted job.
    #[error("job `{job}` depends on unknown job `{dependency}`")]
    UnknownDependency {
        /// The dependent.
        job: String,
        /// The unknown dependency.
        dependency: String,
    },
    /// The dependencies would close a cycle; `path` starts and ends with the same job and
    /// reads "depends on" left to right.
    #[error("dependency cycle: {}", .path.join(" -> "))]
    DependencyCycle {
        /// The cycle, by job name, first job repeated at the end.
        path: Vec<String>,
    },
    /// The dependency layer refused the call.
    #[error("dependency error")]
    Dependency(#[from] DagError),
    /// The job cannot be stored (a custom trigger) or a stored job cannot be rebuilt.
    #[error("job `{name}` cannot be persisted: {reason}")]
    Unpersistable {
        /// The job name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// What [`PersistentScheduler::open`] found in the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadReport {
    /// Jobs resumed, with the id they run under in this process.
    pub restored: Vec<(String, JobId)>,
    /// Jobs whose handler is not registered: `(job, handler)`. They stay in the store,
    /// untouched, and are not scheduled.
    pub unregistered: Vec<(String, String)>,
    /// Jobs that had already ended (completed, failed or cancelled); kept in the store.
    pub finished: Vec<String>,
    /// Jobs that could not be rebuilt, with the reason; kept in the store.
    pub invalid: Vec<(String, String)>,
    /// Runs that were running when the previous process stopped, now marked interrupted.
    pub interrupted: Vec<OccurrenceKey>,
    /// Runs that were running with no attempt left, now marked dead.
    pub dead: Vec<OccurrenceKey>,
    /// Runs fired but not finished (interrupted, waiting for a retry, or never started)
    /// of restored jobs: [`PersistentScheduler::start`] starts them again.
    pub resumed: Vec<OccurrenceKey>,
    /// Restored jobs whose stored dependency is not in the store at all:
    /// `(job, dependency)`. The job is kept and restored, but blocked on that edge (the
    /// dependency counts as gone; [`PersistentScheduler::explain`] says so). A dependency
    /// that is in the store but not restored (finished, unregistered, invalid) blocks its
    /// dependents the same way, without an entry here.
    pub missing_dependencies: Vec<(String, String)>,
    /// Restored jobs whose stored dependencies were refused (a cycle in an edited store):
    /// `(job, reason)`. The job is kept, restored, and blocked.
    pub dependency_errors: Vec<(String, String)>,
}

/// A dependency of a persisted job on another, by name: the job must have succeeded
/// (the default) or merely finished since the dependent last ran (see [`Dag`]).
///
/// ```
/// use myrmex::{JobDependency, Requirement};
///
/// let d: JobDependency = "extract".into();
/// assert_eq!(d.requirement, Requirement::Succeeded);
/// assert_eq!(JobDependency::finished("audit").requirement, Requirement::Finished);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct JobDependency {
    /// The name of the job depended on.
    pub job: String,
    /// What its run must have done.
    pub requirement: Requirement,
}

impl JobDependency {
    /// An edge that needs a success (the default).
    pub fn succeeded(job: impl Into<String>) -> JobDependency {
        JobDependency {
            job: job.into(),
            requirement: Requirement::Succeeded,
        }
    }

    /// An edge that needs any end of a run.
    pub fn finished(job: impl Into<String>) -> JobDependency {
        JobDependency {
            job: job.into(),
            requirement: Requirement::Finished,
        }
    }
}

impl From<&str> for JobDependency {
    fn from(job: &str) -> JobDependency {
        JobDependency::succeeded(job)
    }
}

impl From<String> for JobDependency {
    fn from(job: String) -> JobDependency {
        JobDependency::succeeded(job)
    }
}

fn to_rule(r: Requirement) -> DependencyRule {
    match r {
        Requirement::Finished => DependencyRule::AllDone,
        _ => DependencyRule::AllSuccess,
    }
}

fn to_requirement(r: DependencyRule) -> Requirement {
    match r {
        DependencyRule::AllDone => Requirement::Finished,
        _ => Requirement::Succeeded,
    }
}

/// How long a lease lasts: this layer serves single-process stores, where leases are not
/// used to detect dead workers (start-up recovery is), so it only needs to outlast the
/// attempt.
fn lease_for(policies: &JobPolicies) -> SignedDuration {
    match policies.timeout {
        Some(t) => t.saturating_add(SignedDuration::from_secs(60)),
        None => SignedDuration::from_hours(24),
    }
}

/// The most skipped runs recorded for one batch of missed occurrences; more are logged.
const MAX_MISSED_RECORDED: usize = 1_000;

struct Persisted {
    key: store::JobId,
    trigger: TriggerSpec,
    max_attempts: u32,
    lease: SignedDuration,
    /// The watermark as last written to the store.
    watermark: Option<Timestamp>,
    /// Its dependencies as stored (the journal keeps them when it rewrites the job).
    depends_on: Vec<DependencySpec>,
}

#[derive(Default)]
struct Shared {
    jobs: HashMap<JobId, Persisted>,
    by_name: HashMap<String, JobId>,
    /// Jobs being added through [`PersistentScheduler::schedule`]: name → (handler, args,
    /// dependencies).
    pending: HashMap<String, (String, serde_json::Value, Vec<DependencySpec>)>,
    /// Names of the stored dependencies that were not restored, under the placeholder
    /// ids the [`Dag`] knows them by.
    absent: HashMap<JobId, String>,
    /// Errors from persisting jobs being added, by name.
    add_errors: HashMap<String, String>,
    /// The store run and current attempt of each active occurrence.
    runs: HashMap<(JobId, Timestamp), (store::RunId, Attempt)>,
    /// Occurrences whose first attempt was started together with the fire.
    prestarted: HashSet<(JobId, Timestamp)>,
    handle: Option<SchedulerHandle>,
    owner: String,
}

/// What [`StoreJournal::materialize`] wrote.
struct Materialized {
    out: MaterializeOutcome,
    started: Option<StartOutcome>,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A [`Scheduler`] that keeps its jobs and runs in a [`Store`].
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use myrmex::{ManualClock, PersistentScheduler, Registry, Scheduler, every, JobSpec};
/// use myrmex_store::{MemoryStore, Store};
///
/// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
/// let mut registry = Registry::new();
/// registry.register("report", |_ctx, args| {
///     assert_eq!(args["to"], "ops");
///     Ok(())
/// });
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
///
/// let builder = Scheduler::builder().clock(clock.clone()).zone(jiff::tz::TimeZone::UTC);
/// let (ps, report) = PersistentScheduler::open(builder, store.clone(), registry.clone())?;
/// assert!(report.restored.is_empty());
/// ps.schedule("daily-report", JobSpec::new(every(Duration::from_secs(60))), "report",
///             serde_json::json!({ "to": "ops" }))?;
/// ps.start()?;
/// ps.shutdown(Duration::from_secs(5))?;
///
/// // A new process: the job comes back from the store, under its name.
/// let builder = Scheduler::builder().clock(clock).zone(jiff::tz::TimeZone::UTC);
/// let (ps, report) = PersistentScheduler::open(builder, store, registry)?;
/// assert_eq!(report.restored[0].0, "daily-report");
/// ps.shutdown(Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct PersistentScheduler {
    scheduler: Scheduler,
    store: Arc<dyn Store>,
    registry: Registry,
    shared: Arc<Mutex<Shared>>,
    resume: Mutex<Vec<(JobId, Timestamp)>>,
    dag: Dag,
}

impl std::fmt::Debug for PersistentScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PersistentScheduler")
            .field("scheduler", &self.scheduler)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl PersistentScheduler {
    /// Builds the scheduler from `builder` (its journal is replaced by the store's),
    /// recovers the store after a crash and restores its jobs. The scheduler is not
    /// started: call [`PersistentScheduler::start`].
    ///
    /// # Errors
    ///
    /// [`PersistError::Store`] if the store cannot be read or recovered;
    /// [`PersistError::Scheduler`] if the scheduler cannot be built. Jobs that cannot be
    /// restored are not errors: they are listed in the [`LoadReport`].
    pub fn open(
        builder: SchedulerBuilder,
        store: Arc<dyn Store>,
        registry: Registry,
    ) -> Result<(Self, LoadReport), PersistError> {
        let shared = Arc::new(Mutex::new(Shared {
            owner: format!("myrmex-{}", std::process::id()),
            ..Shared::default()
        }));
        let journal = StoreJournal {
            store: Arc::clone(&store),
            shared: Arc::clone(&shared),
        };
        let scheduler = builder.journal(journal).build()?;
        lock(&shared).handle = Some(scheduler.handle());
        // Attached before any job is restored, so it sees every event of theirs.
        let dag = Dag::attach(&scheduler);
        let now = scheduler.now();
        let zone = scheduler.zone().clone();
        let mut report = LoadReport::default();

        for r in store.recover_interrupted(now)? {
            tracing::warn!(run = %r.key, state = %r.state, "run was running when the previous process stopped");
            if r.state == RunState::Dead {
                report.dead.push(r.key);
            } else {
                report.interrupted.push(r.key);
            }
        }

        let mut next_id = 1u64;
        let mut stored_names = HashSet::new();
        let mut with_deps = Vec::new();
        for rec in store.list_jobs()? {
            let name = rec.id.0.clone();
            stored_names.insert(name.clone());
            let status = rec.state.status;
            if matches!(
                status,
                store::JobStatus::Completed
                    | store::JobStatus::Failed
                    | store::JobStatus::Cancelled
            ) {
                report.finished.push(name);
                continue;
            }
            let handler_name = rec.definition.handler.clone();
            let Some(handler) = registry.bind(&handler_name, rec.definition.args.clone()) else {
                tracing::warn!(job = %name, handler = %handler_name, "stored job's handler is not registered; job kept in the store, not scheduled");
                report.unregistered.push((name, handler_name));
                continue;
            };
            let spec = match to_core_spec(&rec, now, &zone) {
                Ok(spec) => spec,
                Err(reason) => {
                    tracing::error!(job = %name, %reason, "stored job cannot be rebuilt; kept in the store");
                    report.invalid.push((name, reason));
                    continue;
                }
            };
            let id = JobId(next_id);
            next_id += 1;
            let state = RestoredState {
                created_at: rec.created_at,
                next_run_at: rec.state.watermark,
                last_run_at: rec.state.last_fired_at,
                run_count: u32::try_from(rec.state.run_count).unwrap_or(u32::MAX),
                status: if rec.state.paused {
                    JobStatus::Paused
                } else {
                    JobStatus::Pending
                },
                last_outcome: None,
            };
            {
                let mut sh = lock(&shared);
                sh.jobs.insert(
                    id,
                    Persisted {
                        key: rec.id.clone(),
                        trigger: spec.trigger.clone(),
                        max_attempts: max_attempts(&spec.policies.retry),
                        lease: lease_for(&spec.policies),
                        watermark: rec.state.watermark,
                        depends_on: rec.definition.depends_on.clone(),
                    },
                );
                sh.by_name.insert(name.clone(), id);
            }
            match scheduler.restore(id, spec, state, handler) {
                Ok(()) => {
                    if !rec.definition.depends_on.is_empty() {
                        with_deps.push((name.clone(), id, rec.definition.depends_on.clone()));
                    }
                    report.restored.push((name, id));
                }
                Err(e) => {
                    let mut sh = lock(&shared);
                    sh.jobs.remove(&id);
                    sh.by_name.remove(&name);
                    tracing::error!(job = %name, error = %e, "stored job could not be restored; kept in the store");
                    report.invalid.push((name, e.to_string()));
                }
            }
        }

        restore_dependencies(&dag, &shared, &stored_names, with_deps, &mut report);

        let open_runs = store.list_runs(&RunFilter::all().in_states([
            RunState::Pending,
            RunState::RetryWait,
            RunState::Interrupted,
        ]))?;
        let mut resume = Vec::new();
        {
            let sh = lock(&shared);
            for r in open_runs {
                if let Some(&id) = sh.by_name.get(&r.key.job.0)
                    && r.key.stage.is_empty()
                {
                    resume.push((id, r.key.scheduled_at));
                    report.resumed.push(r.key);
                }
            }
        }
        Ok((
            Self {
                scheduler,
                store,
                registry,
                shared,
                resume: Mutex::new(resume),
                dag,
            },
            report,
        ))
    }

    /// Starts firing, then starts again the runs listed in [`LoadReport::resumed`].
    ///
    /// # Errors
    ///
    /// As [`Scheduler::start`](crate::SchedulerHandle::start).
    pub fn start(&self) -> Result<(), PersistError> {
        self.scheduler.start()?;
        let resume =
            std::mem::take(&mut *self.resume.lock().unwrap_or_else(PoisonError::into_inner));
        for (id, scheduled_at) in resume {
            if let Err(e) = self.scheduler.release(id, scheduled_at) {
                tracing::error!(job = %id, %scheduled_at, error = %e, "could not resume a run");
            }
        }
        Ok(())
    }

    /// Adds a persisted job named `name` (unique) that runs the handler registered as
    /// `handler` with `args`. Returns once the job is in the store.
    ///
    /// # Errors
    ///
    /// [`PersistError::UnknownHandler`], [`PersistError::JobExists`] (also for a stored job
    /// that is not live), [`PersistError::Unpersistable`] for a custom trigger or a store
    /// failure, [`PersistError::Scheduler`] for an invalid trigger.
    pub fn schedule(
        &self,
        name: &str,
        spec: JobSpec,
        handler: &str,
        args: serde_json::Value,
    ) -> Result<JobId, PersistError> {
        self.schedule_with_deps(name, spec, handler, args, [])
    }

    /// [`PersistentScheduler::schedule`] for a job that waits on other live persisted jobs,
    /// named in `deps` (see [`Dag`] for when an edge is satisfied). With
    /// [`TriggerSpec::Manual`] the job is downstream: it runs each time its dependencies
    /// are satisfied anew; with another trigger it is gated: its fires wait until they
    /// are. The dependencies are stored with the job and declared again on every start.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use myrmex::{JobDependency, JobSpec, ManualClock, PersistentScheduler, Registry,
    ///              Scheduler, TriggerSpec};
    /// use myrmex_store::{MemoryStore, Store};
    ///
    /// let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    /// let mut registry = Registry::new();
    /// registry.register("noop", |_ctx, _args| Ok(()));
    /// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
    /// let builder = Scheduler::builder().clock(clock).zone(jiff::tz::TimeZone::UTC);
    /// let (ps, _) = PersistentScheduler::open(builder, store.clone(), registry)?;
    /// ps.schedule("extract", JobSpec::new(TriggerSpec::Manual), "noop", serde_json::Value::Null)?;
    /// ps.schedule_with_deps("load", JobSpec::new(TriggerSpec::Manual), "noop",
    ///                       serde_json::Value::Null, [JobDependency::succeeded("extract")])?;
    /// let stored = store.get_job(&"load".into())?.unwrap();
    /// assert_eq!(stored.definition.depends_on[0].job.0, "extract");
    /// println!("{}", ps.explain("load")?); // waiting on extract
    /// ps.shutdown(std::time::Duration::from_secs(5))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`PersistentScheduler::schedule`], and, before anything is written:
    /// [`PersistError::UnknownDependency`] for a name that is no live persisted job,
    /// [`PersistError::DependencyCycle`] for a job that depends on itself.
    pub fn schedule_with_deps(
        &self,
        name: &str,
        spec: JobSpec,
        handler: &str,
        args: serde_json::Value,
        deps: impl IntoIterator<Item = JobDependency>,
    ) -> Result<JobId, PersistError> {
        let deps: Vec<JobDependency> = deps.into_iter().collect();
        let bound = self.registry.bind(handler, args.clone()).ok_or_else(|| {
            PersistError::UnknownHandler {
                handler: handler.to_owned(),
            }
        })?;
        if matches!(spec.trigger, TriggerSpec::Custom(_)) {
            return Err(PersistError::Unpersistable {
                name: name.to_owned(),
                reason: "a custom trigger cannot be stored".into(),
            });
        }
        let core_deps = {
            let mut sh = lock(&self.shared);
            if sh.by_name.contains_key(name) || sh.pending.contains_key(name) {
                return Err(PersistError::JobExists {
                    name: name.to_owned(),
                });
            }
            let core_deps = resolve_deps(&sh, name, &deps)?;
            sh.pending.insert(
                name.to_owned(),
                (handler.to_owned(), args, store_deps(&deps)),
            );
            core_deps
        };
        let cleanup = || {
            lock(&self.shared).pending.remove(name);
        };
        match self.store.get_job(&store::JobId::new(name)) {
            Ok(None) => {}
            Ok(Some(_)) => {
                cleanup();
                return Err(PersistError::JobExists {
                    name: name.to_owned(),
                });
            }
            Err(e) => {
                cleanup();
                return Err(e.into());
            }
        }
        let added = if core_deps.is_empty() {
            self.scheduler
                .schedule_handler(spec.name(name), bound)
                .map_err(PersistError::from)
        } else {
            self.dag
                .schedule_handler(spec.name(name), core_deps, bound)
                .map_err(|e| dag_error(&self.shared, e))
        };
        let id = match added {
            Ok(id) => id,
            Err(e) => {
                cleanup();
                return Err(e);
            }
        };
        // A round trip through the scheduler thread: the job has been added and the
        // journal has written it (or failed to) when this returns.
        let _ = self.scheduler.get_job(id);
        let failed = {
            let mut sh = lock(&self.shared);
            sh.pending.remove(name);
            sh.add_errors.remove(name)
        };
        if let Some(reason) = failed {
            let _ = self.scheduler.cancel(id);
            return Err(PersistError::Unpersistable {
                name: name.to_owned(),
                reason,
            });
        }
        Ok(id)
    }

    /// Replaces the dependencies of the live persisted job `name` (an empty list frees
    /// it), in the dependency graph and in the store. The new edges start waiting.
    ///
    /// # Errors
    ///
    /// [`PersistError::UnknownJob`], [`PersistError::UnknownDependency`], or
    /// [`PersistError::DependencyCycle`] naming the path the new edges would close;
    /// nothing is changed or written then. [`PersistError::Store`] if the store write
    /// fails (the previous dependencies are declared again).
    pub fn set_dependencies(
        &self,
        name: &str,
        deps: impl IntoIterator<Item = JobDependency>,
    ) -> Result<(), PersistError> {
        let deps: Vec<JobDependency> = deps.into_iter().collect();
        let (id, core_deps, old) = {
            let sh = lock(&self.shared);
            let id = *sh
                .by_name
                .get(name)
                .ok_or_else(|| PersistError::UnknownJob {
                    name: name.to_owned(),
                })?;
            let old = sh
                .jobs
                .get(&id)
                .map(|p| p.depends_on.clone())
                .unwrap_or_default();
            (id, resolve_deps(&sh, name, &deps)?, old)
        };
        self.dag
            .set_dependencies(id, core_deps)
            .map_err(|e| dag_error(&self.shared, e))?;
        let specs = store_deps(&deps);
        let written = {
            let mut sh = lock(&self.shared);
            let now = self.scheduler.now();
            let key = store::JobId::new(name);
            let result = self.store.get_job(&key).and_then(|rec| match rec {
                Some(mut rec) => {
                    rec.definition.depends_on.clone_from(&specs);
                    rec.updated_at = now;
                    self.store.upsert_job(rec).map(|_| ())
                }
                None => Ok(()),
            });
            if result.is_ok()
                && let Some(p) = sh.jobs.get_mut(&id)
            {
                p.depends_on = specs;
            }
            result
        };
        if let Err(e) = written {
            let back: Vec<Dependency> = {
                let sh = lock(&self.shared);
                old.iter()
                    .filter_map(|d| {
                        sh.by_name.get(&d.job.0).map(|&job| Dependency {
                            job,
                            requirement: to_requirement(d.rule),
                        })
                    })
                    .collect()
            };
            if let Err(e) = self.dag.set_dependencies(id, back) {
                tracing::error!(job = %name, error = %e, "previous dependencies could not be declared again");
            }
            return Err(e.into());
        }
        Ok(())
    }

    /// The dependency layer: readiness and edges of persisted jobs, by [`JobId`].
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// Why the live persisted job `name` is not running now (its status, and where each
    /// of its dependencies stands). Dependencies are shown by id: see
    /// [`PersistentScheduler::job_name`].
    ///
    /// # Errors
    ///
    /// [`PersistError::UnknownJob`], or [`PersistError::Dependency`] when the scheduler
    /// no longer knows the job.
    pub fn explain(&self, name: &str) -> Result<Explanation, PersistError> {
        let id = self.job_id(name).ok_or_else(|| PersistError::UnknownJob {
            name: name.to_owned(),
        })?;
        Ok(self.dag.explain(id)?)
    }

    /// The name of a persisted job by id: a live job, or a stored dependency that was not
    /// restored (its placeholder id in the [`Dag`]).
    pub fn job_name(&self, id: JobId) -> Option<String> {
        let sh = lock(&self.shared);
        sh.jobs
            .get(&id)
            .map(|p| p.key.0.clone())
            .or_else(|| sh.absent.get(&id).cloned())
    }

    /// The id a live persisted job runs under in this process.
    pub fn job_id(&self, name: &str) -> Option<JobId> {
        lock(&self.shared).by_name.get(name).copied()
    }

    /// Cancels a live persisted job; it stays in the store, marked cancelled.
    ///
    /// # Errors
    ///
    /// [`PersistError::UnknownJob`] or a scheduler error.
    pub fn cancel(&self, name: &str) -> Result<(), PersistError> {
        let id = self.job_id(name).ok_or_else(|| PersistError::UnknownJob {
            name: name.to_owned(),
        })?;
        self.scheduler.cancel(id)?;
        Ok(())
    }

    /// Deletes finished runs beyond `retention` from the store (see
    /// [`Store::prune`]; runs that have not ended are never pruned). Returns how many runs
    /// were deleted. Call it periodically, e.g. from a scheduled job.
    ///
    /// # Errors
    ///
    /// [`PersistError::Store`].
    pub fn prune(&self, retention: store::Retention) -> Result<usize, PersistError> {
        Ok(self.store.prune(retention, self.scheduler.now())?)
    }

    /// The scheduler (for events, snapshots, pause/resume, `run_now`).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Shuts the scheduler down (see [`Scheduler::shutdown`]). The store is not closed: it
    /// may be shared; close it when done.
    ///
    /// # Errors
    ///
    /// As [`Scheduler::shutdown`].
    pub fn shutdown(&self, grace: Duration) -> Result<(), PersistError> {
        let r = self.scheduler.shutdown(grace);
        lock(&self.shared).handle = None;
        Ok(r?)
    }
}

impl Drop for PersistentScheduler {
    fn drop(&mut self) {
        lock(&self.shared).handle = None;
    }
}

/// The name of `id` for messages (its id when it has none).
fn name_of(sh: &Shared, id: JobId) -> String {
    sh.jobs
        .get(&id)
        .map(|p| p.key.0.clone())
        .or_else(|| sh.absent.get(&id).cloned())
        .unwrap_or_else(|| id.to_string())
}

/// Dependency errors by name.
fn dag_error(shared: &Mutex<Shared>, e: DagError) -> PersistError {
    match e {
        DagError::Dependency(DepError::Cycle { path, .. }) => {
            let sh = lock(shared);
            PersistError::DependencyCycle {
                path: path.iter().map(|&id| name_of(&sh, id)).collect(),
            }
        }
        other => PersistError::Dependency(other),
    }
}

/// Checks dependencies by name against the live jobs: each must be live and not the job
/// itself (a new job cannot otherwise close a cycle; [`Dag`] checks existing ones).
fn resolve_deps(
    sh: &Shared,
    name: &str,
    deps: &[JobDependency],
) -> Result<Vec<Dependency>, PersistError> {
    deps.iter()
        .map(|d| {
            if d.job == name {
                return Err(PersistError::DependencyCycle {
                    path: vec![name.to_owned(), name.to_owned()],
                });
            }
            let job = *sh
                .by_name
                .get(&d.job)
                .ok_or_else(|| PersistError::UnknownDependency {
                    job: name.to_owned(),
                    dependency: d.job.clone(),
                })?;
            Ok(Dependency {
                job,
                requirement: d.requirement,
            })
        })
        .collect()
}

fn store_deps(deps: &[JobDependency]) -> Vec<DependencySpec> {
    deps.iter()
        .map(|d| DependencySpec {
            job: store::JobId::new(d.job.clone()),
            rule: to_rule(d.requirement),
        })
        .collect()
}

/// Declares the stored dependencies of restored jobs through `dag`, once every job is
/// restored. A dependency that is not live (not in the store, finished, unregistered,
/// invalid) is tracked under a placeholder id and then marked gone, so its dependents
/// block on it, as they would have had it ended while they were running.
fn restore_dependencies(
    dag: &Dag,
    shared: &Mutex<Shared>,
    stored: &HashSet<String>,
    jobs: Vec<(String, JobId, Vec<DependencySpec>)>,
    report: &mut LoadReport,
) {
    let mut placeholders: HashMap<String, JobId> = HashMap::new();
    let mut placeholder = |name: String| -> JobId {
        let next = JobId(u64::MAX - placeholders.len() as u64);
        *placeholders.entry(name).or_insert_with_key(|name| {
            dag.track_absent(next);
            lock(shared).absent.insert(next, name.clone());
            next
        })
    };
    for (name, id, specs) in jobs {
        let mut deps = Vec::with_capacity(specs.len());
        for d in &specs {
            let live = lock(shared).by_name.get(&d.job.0).copied();
            let job = match live {
                Some(job) => job,
                None => {
                    if !stored.contains(&d.job.0) {
                        tracing::warn!(job = %name, dependency = %d.job, "stored dependency is missing from the store; the job is blocked on it");
                        report
                            .missing_dependencies
                            .push((name.clone(), d.job.0.clone()));
                    }
                    placeholder(d.job.0.clone())
                }
            };
            deps.push(Dependency {
                job,
                requirement: to_requirement(d.rule),
            });
        }
        if let Err(e) = dag.set_dependencies(id, deps) {
            let reason = match dag_error(shared, e) {
                PersistError::Dependency(e) => e.to_string(),
                other => other.to_string(),
            };
            tracing::error!(job = %name, %reason, "stored dependencies refused; the job is blocked");
            report.dependency_errors.push((name.clone(), reason));
            let blocker = placeholder(format!("<refused dependencies of {name}>"));
            if let Err(e) = dag.set_dependencies(id, [Dependency::succeeded(blocker)]) {
                tracing::error!(job = %name, error = %e, "job could not be blocked");
            }
        }
    }
    for id in placeholders.into_values() {
        dag.mark_gone(id);
    }
}

/// The journal writing to the store.
struct StoreJournal {
    store: Arc<dyn Store>,
    shared: Arc<Mutex<Shared>>,
}

fn now_of(sh: &Shared) -> Timestamp {
    sh.handle
        .as_ref()
        .map_or_else(Timestamp::now, SchedulerHandle::now)
}

fn jerr(msg: String) -> JournalError {
    msg.into()
}

impl StoreJournal {
    /// Inserts the given runs (and moves the watermark when `advance` says so).
    /// Inserts the given runs (and moves the watermark when `advance` says so). With
    /// `start`, the run of that occurrence is also started, in the same commit.
    fn materialize(
        &self,
        sh: &mut Shared,
        job: JobId,
        runs: Vec<NewRun>,
        advance: Option<Option<Timestamp>>,
        start: Option<Timestamp>,
    ) -> Result<Option<Materialized>, JournalError> {
        let now = now_of(sh);
        let owner = sh.owner.clone();
        let Some(p) = sh.jobs.get_mut(&job) else {
            return Ok(None);
        };
        let watermark = match advance {
            Some(new) if new != p.watermark => WatermarkUpdate::Cas {
                expected: p.watermark,
                new,
            },
            _ => WatermarkUpdate::Keep,
        };
        let mut ops = vec![WriteOp::Materialize(Box::new(Materialization {
            job: p.key.clone(),
            watermark,
            runs,
            deps: Vec::new(),
            now,
        }))];
        if let Some(scheduled_at) = start {
            ops.push(WriteOp::StartOccurrence {
                key: OccurrenceKey {
                    job: p.key.clone(),
                    scheduled_at,
                    stage: String::new(),
                },
                owner,
                now,
                lease_ttl: p.lease,
            });
        }
        let mut results = self.store.apply(ops)?.into_iter();
        let out = match results.next() {
            Some(Ok(WriteOutput::Materialized(o))) => o,
            Some(Err(e)) => return Err(e.into()),
            other => return Err(jerr(format!("materialize answered {other:?}"))),
        };
        let started = match results.next() {
            None => None,
            Some(Ok(WriteOutput::Started(s))) => Some(s),
            Some(Err(e)) => return Err(e.into()),
            other => return Err(jerr(format!("start answered {other:?}"))),
        };
        match (&out, watermark) {
            (MaterializeOutcome::Committed { .. }, WatermarkUpdate::Cas { new, .. }) => {
                p.watermark = new;
            }
            (MaterializeOutcome::WatermarkMoved { current }, _) => {
                let msg = format!(
                    "watermark of `{}` is {current:?} in the store, expected {:?}",
                    p.key, p.watermark
                );
                p.watermark = *current;
                return Err(jerr(msg));
            }
            _ => {}
        }
        Ok(Some(Materialized { out, started }))
    }

    fn run_of(
        &self,
        sh: &Shared,
        job: JobId,
        scheduled_at: Timestamp,
    ) -> Result<Option<(store::RunId, Attempt)>, JournalError> {
        if let Some(r) = sh.runs.get(&(job, scheduled_at)) {
            return Ok(Some(*r));
        }
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(None);
        };
        Ok(self
            .store
            .find_run(&OccurrenceKey {
                job: p.key.clone(),
                scheduled_at,
                stage: String::new(),
            })?
            .map(|r| (r.id, r.attempt)))
    }

    fn complete(
        &self,
        job: JobId,
        scheduled_at: Timestamp,
        completion: Completion,
        last: bool,
    ) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        let now = now_of(&sh);
        let Some((run, attempt)) = self.run_of(&sh, job, scheduled_at)? else {
            return Ok(());
        };
        if last {
            sh.runs.remove(&(job, scheduled_at));
        }
        match self.store.complete(run, attempt, completion, now)? {
            store::CompleteOutcome::Fenced { current, state } => Err(jerr(format!(
                "completion of {run} {attempt} refused: the run is {state} at {current}"
            ))),
            _ => Ok(()),
        }
    }
}

impl Journal for StoreJournal {
    fn job_added(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        let Some(name) = job.name.clone() else {
            return Ok(());
        };
        let mut sh = lock(&self.shared);
        let Some((handler, args, deps)) = sh.pending.get(&name).cloned() else {
            return Ok(());
        };
        let zone = sh
            .handle
            .as_ref()
            .map_or(TimeZone::UTC, |h| h.zone().clone());
        let spec = job.spec();
        let result = to_definition(&spec, &handler, args, &zone)
            .map_err(jerr)
            .and_then(|mut def| {
                def.depends_on.clone_from(&deps);
                let mut rec = JobRecord::new(name.clone(), def, job.next_run_at, job.created_at);
                rec.state.paused = job.status == JobStatus::Paused;
                rec.state.status = store_status(job.status);
                self.store.upsert_job(rec).map_err(JournalError::from)
            });
        match result {
            Ok(_) => {
                sh.jobs.insert(
                    job.id,
                    Persisted {
                        key: store::JobId::new(name.clone()),
                        trigger: spec.trigger.clone(),
                        max_attempts: max_attempts(&spec.policies.retry),
                        lease: lease_for(&spec.policies),
                        watermark: job.next_run_at,
                        depends_on: deps,
                    },
                );
                sh.by_name.insert(name, job.id);
                Ok(())
            }
            Err(e) => {
                sh.add_errors.insert(name, e.to_string());
                Err(e)
            }
        }
    }

    fn job_changed(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        let now = now_of(&sh);
        let zone = sh
            .handle
            .as_ref()
            .map_or(TimeZone::UTC, |h| h.zone().clone());
        let Some(p) = sh.jobs.get_mut(&job.id) else {
            return Ok(());
        };
        let Some(mut rec) = self.store.get_job(&p.key)? else {
            return Err(jerr(format!("job `{}` is missing from the store", p.key)));
        };
        let spec = job.spec();
        let mut def = to_definition(
            &spec,
            &rec.definition.handler,
            rec.definition.args.clone(),
            &zone,
        )
        .map_err(jerr)?;
        def.depends_on.clone_from(&p.depends_on);
        rec.definition = def;
        rec.state.paused = job.status == JobStatus::Paused;
        rec.state.status = store_status(job.status);
        rec.state.watermark = job.next_run_at;
        rec.updated_at = now;
        self.store.upsert_job(rec)?;
        p.trigger = spec.trigger.clone();
        p.max_attempts = max_attempts(&spec.policies.retry);
        p.lease = lease_for(&spec.policies);
        p.watermark = job.next_run_at;
        Ok(())
    }

    fn job_removed(&mut self, job: JobId, status: JobStatus) -> Result<(), JournalError> {
        let sh = lock(&self.shared);
        let now = now_of(&sh);
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(());
        };
        self.store.update_job(
            &p.key,
            store::JobPatch {
                paused: None,
                status: Some(store_status(status)),
            },
            now,
        )?;
        Ok(())
    }

    fn occurrence_fired(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        watermark: Option<Timestamp>,
    ) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(());
        };
        // A fire that moves the watermark is the schedule's; one that does not is a
        // release or `run_now` (or a resumed run, which already exists).
        let moves = watermark != p.watermark
            && !matches!((p.watermark, watermark), (Some(e), Some(n)) if n < e);
        let run = NewRun::pending(scheduled_at)
            .with_max_attempts(p.max_attempts)
            .with_origin(if moves {
                RunOrigin::Schedule
            } else {
                RunOrigin::Manual
            });
        let advance = moves.then_some(watermark);
        // The scheduler starts attempt 1 right after this call: the run is started in the
        // same commit, and `attempt_started` then has nothing left to write.
        let Some(m) = self.materialize(&mut sh, job, vec![run], advance, Some(scheduled_at))?
        else {
            return Ok(());
        };
        match m.started {
            Some(StartOutcome::Started(c)) => {
                sh.runs.insert((job, scheduled_at), (c.run.id, c.attempt));
                sh.prestarted.insert((job, scheduled_at));
                Ok(())
            }
            Some(StartOutcome::NotClaimable { state, attempt }) => Err(jerr(format!(
                "occurrence {job} at {scheduled_at} already has a run that is {state} at {attempt}; not started again"
            ))),
            _ => Err(jerr(format!(
                "occurrence {job} at {scheduled_at} was not started"
            ))),
        }
    }

    fn occurrences_missed(
        &mut self,
        job: JobId,
        first: Timestamp,
        last: Timestamp,
        count: u64,
    ) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(());
        };
        let mut times = Vec::new();
        let mut t = Some(first);
        while let Some(at) = t {
            if at > last || times.len() >= MAX_MISSED_RECORDED {
                break;
            }
            times.push(at);
            t = p.trigger.next_after(at);
        }
        if (times.len() as u64) < count {
            tracing::warn!(job = %p.key, count, recorded = times.len(), "missed occurrences beyond the cap are not recorded one by one");
        }
        let note = format!(
            "missed: {count} occurrence(s) from {first} to {last}, dropped by the misfire policy"
        );
        let advance = (p.watermark == Some(first)).then(|| p.trigger.next_after(last));
        let runs = times
            .into_iter()
            .map(|at| NewRun::skipped(at, note.clone()).with_origin(RunOrigin::Misfire))
            .collect();
        self.materialize(&mut sh, job, runs, advance, None)?;
        Ok(())
    }

    fn occurrence_skipped(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        reason: SkipReason,
    ) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        let now = now_of(&sh);
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(());
        };
        let why = match reason {
            SkipReason::Overlap => "skipped by the overlap policy",
            SkipReason::MaxRuns => "skipped: the job reached max_runs",
            _ => "skipped",
        };
        let advance =
            (p.watermark == Some(scheduled_at)).then(|| p.trigger.next_after(scheduled_at));
        let out = self.materialize(
            &mut sh,
            job,
            vec![NewRun::skipped(scheduled_at, why)],
            advance,
            None,
        )?;
        // A resumed run that the overlap policy now refuses: record the decision on it.
        if let Some(Materialized {
            out: MaterializeOutcome::Committed { existing, .. },
            ..
        }) = out
        {
            for key in existing {
                if let Some(r) = self.store.find_run(&key)?
                    && !r.state.is_terminal()
                    && r.state != RunState::Running
                {
                    self.store.cancel_run(r.id, why, now)?;
                }
            }
        }
        Ok(())
    }

    fn attempt_started(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        attempt: u32,
    ) -> Result<(), JournalError> {
        let mut sh = lock(&self.shared);
        if attempt == 1 && sh.prestarted.remove(&(job, scheduled_at)) {
            return Ok(());
        }
        let now = now_of(&sh);
        let Some(p) = sh.jobs.get(&job) else {
            return Ok(());
        };
        let (owner, lease) = (sh.owner.clone(), p.lease);
        let Some((run, _)) = self.run_of(&sh, job, scheduled_at)? else {
            return Err(jerr(format!(
                "attempt {attempt} of {job} at {scheduled_at} has no run in the store"
            )));
        };
        match self.store.start_attempt(run, &owner, now, lease)? {
            StartOutcome::Started(c) => {
                sh.runs.insert((job, scheduled_at), (run, c.attempt));
                Ok(())
            }
            StartOutcome::NotClaimable { state, attempt: a } => Err(jerr(format!(
                "{run} cannot start attempt {attempt}: it is {state} at {a}"
            ))),
            _ => Ok(()),
        }
    }

    fn attempt_failed(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        _attempt: u32,
        outcome: Outcome,
        error: Option<&str>,
        retry_at: Timestamp,
    ) -> Result<(), JournalError> {
        let c = Completion::failure(
            attempt_outcome(outcome),
            error.unwrap_or("failed"),
            Some(retry_at),
        );
        self.complete(job, scheduled_at, c, false)
    }

    fn run_finished(&mut self, report: &RunReport) -> Result<(), JournalError> {
        let c = match report.outcome {
            Outcome::Succeeded => Completion::success(),
            Outcome::Cancelled => Completion {
                outcome: AttemptOutcome::Cancelled,
                error: report.error.as_deref().map(str::to_owned),
                result: None,
                retry_at: None,
            },
            other => Completion::failure(
                attempt_outcome(other),
                report.error.as_deref().unwrap_or("failed"),
                None,
            ),
        };
        self.complete(report.job, report.scheduled_at, c, true)
    }
}

fn attempt_outcome(o: Outcome) -> AttemptOutcome {
    match o {
        Outcome::Succeeded => AttemptOutcome::Succeeded,
        Outcome::TimedOut => AttemptOutcome::TimedOut,
        Outcome::Cancelled => AttemptOutcome::Cancelled,
        _ => AttemptOutcome::Failed,
    }
}

fn store_status(s: JobStatus) -> store::JobStatus {
    match s {
        JobStatus::Running => store::JobStatus::Running,
        JobStatus::Completed => store::JobStatus::Completed,
        JobStatus::Failed => store::JobStatus::Failed,
        JobStatus::Cancelled => store::JobStatus::Cancelled,
        JobStatus::Paused => store::JobStatus::Paused,
        _ => store::JobStatus::Pending,
    }
}

fn max_attempts(retry: &RetryPolicy) -> u32 {
    match *retry {
        RetryPolicy::Fixed { max_attempts, .. } | RetryPolicy::Exponential { max_attempts, .. } => {
            max_attempts.max(1)
        }
        _ => 1,
    }
}

// ---- Conversions between the scheduler's types and the store's records. ----

#[derive(Serialize, Deserialize)]
struct Tz(#[serde(with = "jiff::fmt::serde::tz::required")] TimeZone);

fn zone_name(tz: Option<&TimeZone>, default: &TimeZone) -> Result<String, String> {
    let tz = tz.unwrap_or(default).clone();
    match serde_json::to_value(Tz(tz)) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("zone serialized as {other}")),
        Err(e) => Err(format!("zone cannot be stored: {e}")),
    }
}

fn parse_zone(name: &str) -> Result<TimeZone, String> {
    serde_json::from_value::<Tz>(serde_json::Value::String(name.to_owned()))
        .map(|t| t.0)
        .map_err(|e| format!("zone `{name}`: {e}"))
}

fn policy_name<T: Serialize>(p: &T) -> Result<String, String> {
    match serde_json::to_value(p) {
        Ok(serde_json::Value::String(s)) => Ok(s),
        Ok(other) => Err(format!("policy serialized as {other}")),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_policy<T: for<'de> Deserialize<'de> + Default>(
    name: Option<&String>,
) -> Result<T, String> {
    match name {
        None => Ok(T::default()),
        Some(n) => serde_json::from_value(serde_json::Value::String(n.clone()))
            .map_err(|e| format!("policy `{n}`: {e}")),
    }
}

const WEEKDAYS: [(Weekday, &str); 7] = [
    (Weekday::Monday, "MON"),
    (Weekday::Tuesday, "TUE"),
    (Weekday::Wednesday, "WED"),
    (Weekday::Thursday, "THU"),
    (Weekday::Friday, "FRI"),
    (Weekday::Saturday, "SAT"),
    (Weekday::Sunday, "SUN"),
];

fn to_store_trigger(t: &TriggerSpec, zone: &TimeZone) -> Result<store::TriggerSpec, String> {
    Ok(match t {
        TriggerSpec::Once { at } => store::TriggerSpec::Once { at: *at },
        TriggerSpec::OnceLocal { datetime, tz, dst } => store::TriggerSpec::OnceLocal {
            datetime: datetime.to_string(),
            zone: zone_name(tz.as_ref(), zone)?,
            dst: Some(policy_name(dst)?),
        },
        TriggerSpec::Interval { every, start, end } => store::TriggerSpec::Interval {
            every: *every,
            anchor: start.ok_or("an interval without a start was not resolved")?,
            start: None,
            end: *end,
        },
        TriggerSpec::Cron { expr, tz, dst } => store::TriggerSpec::Cron {
            expr: expr.to_string(),
            zone: zone_name(tz.as_ref(), zone)?,
            dst: Some(policy_name(dst)?),
        },
        TriggerSpec::Recurrence(r) => store::TriggerSpec::Recurrence {
            every: r.every,
            unit: match r.unit {
                RecurrenceUnit::Seconds => store::RecurrenceUnit::Seconds,
                RecurrenceUnit::Minutes => store::RecurrenceUnit::Minutes,
                RecurrenceUnit::Hours => store::RecurrenceUnit::Hours,
                RecurrenceUnit::Days => store::RecurrenceUnit::Days,
                RecurrenceUnit::Weeks => store::RecurrenceUnit::Weeks,
                other => return Err(format!("recurrence unit {other:?} cannot be stored")),
            },
            at: r.at.map(|t| t.to_string()),
            weekdays: WEEKDAYS
                .iter()
                .filter(|(d, _)| r.weekdays.contains(*d))
                .map(|(_, n)| (*n).to_owned())
                .collect(),
            start: r.start.map(|d| d.to_string()),
            until: r.until.map(|d| d.to_string()),
            zone: zone_name(r.tz.as_ref(), zone)?,
            dst: Some(policy_name(&r.dst)?),
        },
        TriggerSpec::Union { members } => store::TriggerSpec::Union {
            triggers: members
                .iter()
                .map(|m| to_store_trigger(m, zone))
                .collect::<Result<_, _>>()?,
        },
        TriggerSpec::Manual => store::TriggerSpec::Manual,
        TriggerSpec::Custom(_) => return Err("a custom trigger cannot be stored".into()),
        other => {
            return Err(format!(
                "trigger {other:?} cannot be stored (resolve it first)"
            ));
        }
    })
}

fn to_core_trigger(t: &store::TriggerSpec) -> Result<TriggerSpec, String> {
    let civil = |s: &str| s.parse::<DateTime>().map_err(|e| format!("`{s}`: {e}"));
    Ok(match t {
        store::TriggerSpec::Once { at } => TriggerSpec::Once { at: *at },
        store::TriggerSpec::OnceLocal {
            datetime,
            zone,
            dst,
        } => TriggerSpec::OnceLocal {
            datetime: civil(datetime)?,
            tz: Some(parse_zone(zone)?),
            dst: parse_policy::<DisambiguationPolicy>(dst.as_ref())?,
        },
        store::TriggerSpec::Interval {
            every,
            anchor,
            start,
            end,
        } => {
            if start.is_some_and(|s| s != *anchor) {
                return Err("an interval whose start differs from its anchor".into());
            }
            TriggerSpec::Interval {
                every: *every,
                start: Some(*anchor),
                end: *end,
            }
        }
        store::TriggerSpec::Cron { expr, zone, dst } => {
            let mut c = crate::cron(expr).map_err(|e| e.to_string())?;
            if let TriggerSpec::Cron { tz, dst: d, .. } = &mut c {
                *tz = Some(parse_zone(zone)?);
                *d = parse_policy::<CronDstPolicy>(dst.as_ref())?;
            }
            c
        }
        store::TriggerSpec::Recurrence {
            every,
            unit,
            at,
            weekdays,
            start,
            until,
            zone,
            dst,
        } => {
            let unit = match unit {
                store::RecurrenceUnit::Seconds => RecurrenceUnit::Seconds,
                store::RecurrenceUnit::Minutes => RecurrenceUnit::Minutes,
                store::RecurrenceUnit::Hours => RecurrenceUnit::Hours,
                store::RecurrenceUnit::Days => RecurrenceUnit::Days,
                store::RecurrenceUnit::Weeks => RecurrenceUnit::Weeks,
                other => return Err(format!("recurrence unit {other:?} is not supported")),
            };
            let mut r = Recurrence::every(*every)
                .unit(unit)
                .in_zone(parse_zone(zone)?)
                .dst(parse_policy::<DisambiguationPolicy>(dst.as_ref())?);
            if let Some(at) = at {
                r = r.at(at.parse::<Time>().map_err(|e| format!("`{at}`: {e}"))?);
            }
            if !weekdays.is_empty() {
                let mut days = Vec::new();
                for w in weekdays {
                    let (d, _) = WEEKDAYS
                        .iter()
                        .find(|(_, n)| n.eq_ignore_ascii_case(w))
                        .ok_or_else(|| format!("weekday `{w}`"))?;
                    days.push(*d);
                }
                r = r.on(&days);
            }
            if let Some(s) = start {
                r = r.starting(civil(s)?);
            }
            if let Some(u) = until {
                r = r.until(u.parse::<Date>().map_err(|e| format!("`{u}`: {e}"))?);
            }
            debug_assert!(r.weekdays != Weekdays::NONE || weekdays.is_empty());
            TriggerSpec::Recurrence(r)
        }
        store::TriggerSpec::Union { triggers } => TriggerSpec::Union {
            members: triggers
                .iter()
                .map(to_core_trigger)
                .collect::<Result<_, _>>()?,
        },
        store::TriggerSpec::Manual => TriggerSpec::Manual,
        other => return Err(format!("trigger {other:?} is not supported")),
    })
}

fn to_store_policies(p: &JobPolicies) -> store::PolicySpec {
    let (max_attempts, backoff, jitter) = match p.retry {
        RetryPolicy::Fixed {
            max_attempts,
            delay,
            jitter,
        } => (max_attempts, store::BackoffSpec::Fixed { delay }, jitter),
        RetryPolicy::Exponential {
            max_attempts,
            initial,
            max_delay,
            jitter,
        } => (
            max_attempts,
            store::BackoffSpec::Exponential {
                base: initial,
                max: max_delay,
            },
            jitter,
        ),
        _ => (
            1,
            store::BackoffSpec::Fixed {
                delay: SignedDuration::ZERO,
            },
            SignedDuration::ZERO,
        ),
    };
    store::PolicySpec {
        misfire: store::MisfireSpec {
            grace: p.misfire_grace,
            action: match p.misfire {
                MisfirePolicy::RunAll => store::MisfireAction::RunAll {
                    max_catchup: MisfirePolicy::RUN_ALL_LIMIT,
                },
                MisfirePolicy::Skip => store::MisfireAction::Skip,
                _ => store::MisfireAction::RunOnce,
            },
        },
        overlap: match p.overlap {
            OverlapPolicy::QueueOne => store::OverlapSpec::QueueOne,
            OverlapPolicy::Allow(n) => store::OverlapSpec::Allow {
                max_concurrent: u32::from(n),
            },
            _ => store::OverlapSpec::Skip,
        },
        retry: store::RetrySpec {
            max_attempts,
            backoff,
            jitter,
        },
        timeout: p.timeout,
        jitter: p.jitter,
        max_runs: p.max_runs.map(u64::from),
        history: Some(u32::from(p.history)),
        keep_finished: p.retention == RetentionPolicy::Keep,
    }
}

fn to_core_policies(p: &store::PolicySpec) -> Result<JobPolicies, String> {
    let mut out = JobPolicies {
        misfire_grace: p.misfire.grace,
        timeout: p.timeout,
        jitter: p.jitter,
        max_runs: p.max_runs.map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        ..JobPolicies::default()
    };
    out.misfire = match p.misfire.action {
        store::MisfireAction::RunAll { .. } => MisfirePolicy::RunAll,
        store::MisfireAction::Skip => MisfirePolicy::Skip,
        _ => MisfirePolicy::RunOnce,
    };
    out.overlap = match p.overlap {
        store::OverlapSpec::QueueOne => OverlapPolicy::QueueOne,
        store::OverlapSpec::Allow { max_concurrent } => {
            OverlapPolicy::Allow(u16::try_from(max_concurrent).unwrap_or(u16::MAX))
        }
        _ => OverlapPolicy::Skip,
    };
    let r = &p.retry;
    out.retry = if r.max_attempts <= 1 {
        RetryPolicy::Never
    } else {
        match r.backoff {
            store::BackoffSpec::Fixed { delay } => RetryPolicy::Fixed {
                max_attempts: r.max_attempts,
                delay,
                jitter: r.jitter,
            },
            store::BackoffSpec::Exponential { base, max } => RetryPolicy::Exponential {
                max_attempts: r.max_attempts,
                initial: base,
                max_delay: max,
                jitter: r.jitter,
            },
            ref other => return Err(format!("backoff {other:?} is not supported")),
        }
    };
    if let Some(h) = p.history {
        out.history = u16::try_from(h).unwrap_or(u16::MAX);
    }
    out.retention = if p.keep_finished {
        RetentionPolicy::Keep
    } else {
        RetentionPolicy::Remove
    };
    Ok(out)
}

fn to_definition(
    spec: &JobSpec,
    handler: &str,
    args: serde_json::Value,
    zone: &TimeZone,
) -> Result<JobDefinition, String> {
    Ok(JobDefinition {
        trigger: to_store_trigger(&spec.trigger, zone)?,
        handler: handler.to_owned(),
        args,
        policies: to_store_policies(&spec.policies),
        depends_on: Vec::new(),
    })
}

fn to_core_spec(rec: &JobRecord, now: Timestamp, zone: &TimeZone) -> Result<JobSpec, String> {
    let trigger = to_core_trigger(&rec.definition.trigger)?
        .resolve(now, zone)
        .map_err(|e| e.to_string())?;
    Ok(JobSpec {
        name: Some(rec.id.0.clone()),
        trigger,
        policies: to_core_policies(&rec.definition.policies)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every trigger and policy shape survives a round trip through the store's records.
    #[test]
    fn specs_round_trip_through_records() {
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let paris = TimeZone::get("Europe/Paris").unwrap();
        let triggers = vec![
            TriggerSpec::Once { at: t0 },
            TriggerSpec::OnceLocal {
                datetime: "2026-03-29T02:30:00".parse().unwrap(),
                tz: Some(paris.clone()),
                dst: DisambiguationPolicy::Later,
            },
            TriggerSpec::interval(SignedDuration::from_millis(1500), t0),
            crate::cron("*/5 9-17 * * MON-FRI").unwrap(),
            TriggerSpec::Recurrence(
                Recurrence::every(2)
                    .weeks()
                    .at("09:30".parse().unwrap())
                    .on(&[Weekday::Monday, Weekday::Thursday])
                    .until("2027-01-01".parse().unwrap())
                    .in_zone(paris.clone()),
            ),
            TriggerSpec::Union {
                members: vec![TriggerSpec::Once { at: t0 }, TriggerSpec::Manual],
            },
            TriggerSpec::Manual,
        ];
        let policies = vec![
            JobPolicies::default(),
            JobPolicies {
                misfire: MisfirePolicy::RunAll,
                misfire_grace: SignedDuration::from_secs(30),
                overlap: OverlapPolicy::Allow(3),
                retry: RetryPolicy::Exponential {
                    max_attempts: 4,
                    initial: SignedDuration::from_secs(1),
                    max_delay: SignedDuration::from_secs(60),
                    jitter: SignedDuration::from_millis(250),
                },
                timeout: Some(SignedDuration::from_secs(10)),
                jitter: Some(SignedDuration::from_secs(2)),
                max_runs: Some(7),
                history: 3,
                retention: RetentionPolicy::Keep,
            },
            JobPolicies {
                misfire: MisfirePolicy::Skip,
                overlap: OverlapPolicy::QueueOne,
                retry: RetryPolicy::Fixed {
                    max_attempts: 2,
                    delay: SignedDuration::from_secs(5),
                    jitter: SignedDuration::ZERO,
                },
                ..JobPolicies::default()
            },
        ];
        for trigger in triggers {
            for p in &policies {
                let spec = JobSpec::new(trigger.clone().resolve(t0, &paris).unwrap())
                    .name("j")
                    .policies(p.clone());
                let def = to_definition(&spec, "h", serde_json::json!([1]), &paris).unwrap();
                let rec = JobRecord::new("j", def.clone(), Some(t0), t0);
                // Through JSON too, as a store keeps it.
                let rec: JobRecord =
                    serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
                let back = to_core_spec(&rec, t0, &TimeZone::UTC).unwrap();
                assert_eq!(
                    serde_json::to_value(&back).unwrap(),
                    serde_json::to_value(&spec).unwrap(),
                    "{trigger:?} with {p:?}"
                );
                let again = to_definition(&back, "h", serde_json::json!([1]), &paris).unwrap();
                assert_eq!(again, def);
            }
        }
        let custom = JobSpec::new(TriggerSpec::Custom(Arc::new(TriggerSpec::Manual)));
        assert!(to_definition(&custom, "h", serde_json::Value::Null, &paris).is_err());
    }
}
