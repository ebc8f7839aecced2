//! Jobs that wait on jobs: the runtime side of [`myrmex_core::DepGraph`].
//!
//! A [`Dag`] is attached to a scheduler once. It listens to the scheduler's
//! events on the scheduler thread (no thread of its own, no polling): every run
//! that ends updates the graph, and every dependent whose readiness changes is
//! acted on at once by message to the scheduler thread:
//!
//! - a **downstream** job (trigger [`TriggerSpec::Manual`]) is released (one run
//!   per fresh satisfaction, subject to its overlap policy and `max_runs`);
//! - a **gated** job (its own trigger) is held ([`JobStatus::Blocked`]) while it
//!   is not ready and unblocked when it becomes ready. A fire that falls due
//!   while it is held waits: on unblocking, it is late, so the job's misfire
//!   policy decides (the default, [`crate::MisfirePolicy::RunOnce`], runs it
//!   once). Each run it starts uses up its dependencies' completions.
//!
//! See [`myrmex_core::DepGraph`] for exactly when an edge is satisfied.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use jiff::Timestamp;
use myrmex_core::{
    DepError, DepGraph, Dependency, DependentKind, EdgeReport, EdgeState, Event, JobId,
    JobSnapshot, JobSpec, JobStatus, Outcome, Readiness, ReadinessChange, RunReport, SkipReason,
    TriggerSpec,
};

use crate::context::{Handler, JobError, RunContext};
use crate::pipeline::{Driver, Host};
use crate::runtime::{HoldOp, Msg};
use crate::{SchedulerError, SchedulerHandle};

/// What a [`Dag`] call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DagError {
    /// The declaration was refused (unknown dependency, cycle).
    #[error(transparent)]
    Dependency(#[from] DepError),
    /// The scheduler refused the call (shut down, invalid trigger, ...).
    #[error(transparent)]
    Scheduler(#[from] SchedulerError),
    /// A dependency names a job neither this layer nor the scheduler knows.
    #[error("unknown dependency {dependency}")]
    UnknownDependency {
        /// The id.
        dependency: JobId,
    },
    /// No job with this id in the scheduler.
    #[error("no job {id}")]
    UnknownJob {
        /// The id.
        id: JobId,
    },
}

/// Dependencies and pipelines on top of a [`crate::Scheduler`]: the seed's
/// `DependencyScheduler`. Cheap to clone (all clones share one graph).
///
/// It listens to the scheduler's events on the scheduler thread (no thread of
/// its own, no polling): every run that ends updates the graph, and every
/// dependent whose readiness changes is acted on at once:
///
/// - a **downstream** job (trigger [`TriggerSpec::Manual`]) is released, one
///   run per fresh satisfaction (its overlap policy and `max_runs` apply);
/// - a **gated** job (its own trigger) is held ([`JobStatus::Blocked`]) while
///   it is not ready and let go when it becomes ready. A fire that falls due
///   while it is held waits; when the job is let go the fire is late, so its
///   misfire policy decides (the default, [`crate::MisfirePolicy::RunOnce`],
///   runs it once). Each run it starts uses up its dependencies' completions.
///
/// When an edge is satisfied is defined on [`myrmex_core::DepGraph`]: each
/// dependency has finished a run since the dependent's last run started
/// (successfully, unless the edge asks only for
/// [`Requirement::Finished`](myrmex_core::Requirement::Finished)).
///
/// ```
/// use myrmex::{Dag, Dependency, Event, ManualClock, Scheduler, TriggerSpec};
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// let scheduler = Scheduler::builder().workers(2).clock(clock).build()?;
/// let dag = Dag::attach(&scheduler);
/// let events = scheduler.subscribe();
/// scheduler.start()?;
///
/// // Two manual sources and a downstream job that runs each time both finished.
/// let extract = dag.schedule(TriggerSpec::Manual, [], |_| Ok(()))?;
/// let audit = dag.schedule(TriggerSpec::Manual, [], |_| Err("audit failed".into()))?;
/// let load = dag.schedule(
///     TriggerSpec::Manual,
///     [extract.into(), Dependency::finished(audit)], // audit only has to finish
///     |_| Ok(()),
/// )?;
/// println!("{}", dag.explain(load)?); // waiting on job-1, job-2
///
/// let now = scheduler.now();
/// scheduler.release(extract, now)?;
/// scheduler.release(audit, now)?;
/// let ran = events.iter().find_map(|e| match e {
///     Event::RunSucceeded(r) if r.job == load => Some(r),
///     _ => None,
/// });
/// assert!(ran.is_some());
/// scheduler.shutdown(std::time::Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Dag {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Dag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dag").finish_non_exhaustive()
    }
}

pub(crate) struct Shared {
    pub(crate) handle: SchedulerHandle,
    state: Mutex<State>,
}

#[derive(Default)]
pub(crate) struct State {
    graph: DepGraph,
    changes: Vec<ReadinessChange>,
    /// The last occurrence the overlap policy skipped, per graph job.
    skips: HashMap<JobId, Timestamp>,
    /// The last occurrence key released, per downstream job (keys increase
    /// strictly, so no two runs of a job share one).
    released: HashMap<JobId, Timestamp>,
    /// Pipeline stage jobs: job -> (pipeline run, index in its stage).
    pub(crate) pipeline_jobs: HashMap<JobId, (u64, u32)>,
    pub(crate) pipelines: HashMap<u64, Box<dyn Driver>>,
    pub(crate) next_pipeline: u64,
}

/// Sends a command to the scheduler thread without waiting for it. Commands
/// sent while holding the [`Dag`] lock are ordered with those its listener
/// sends, which is what keeps holds and releases consistent with the graph.
pub(crate) fn post(handle: &SchedulerHandle, msg: Msg) {
    if let Err(e) = handle.send(msg) {
        tracing::debug!(error = %e, "dependency command not sent");
    }
}

fn hold(handle: &SchedulerHandle, id: JobId, op: HoldOp) {
    post(
        handle,
        Msg::Hold {
            id,
            op,
            reply: None,
        },
    );
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The event listener (runs on the scheduler thread).
    fn on_event(&self, e: &Event) {
        let mut st = self.lock();
        let st = &mut *st;
        match e {
            Event::RunStarted {
                job, attempt: 1, ..
            } => self.run_started(st, *job),
            Event::RunSucceeded(r)
            | Event::RunFailed(r)
            | Event::RunTimedOut(r)
            | Event::RunCancelled(r) => {
                if let Some((run, idx)) = st.pipeline_jobs.get(&r.job).copied() {
                    self.pipeline_job_ended(st, run, idx, r.outcome, Some(r.clone()));
                }
                if st.graph.contains(r.job) {
                    st.graph
                        .run_finished(r.job, r.outcome, r.finished_at, &mut st.changes);
                    self.apply(st, r.finished_at);
                }
            }
            Event::Skipped {
                job,
                scheduled_at,
                reason,
            } => {
                if let Some((run, idx)) = st.pipeline_jobs.get(job).copied() {
                    self.pipeline_job_ended(st, run, idx, Outcome::Cancelled, None);
                }
                if *reason == SkipReason::Overlap && st.graph.contains(*job) {
                    st.skips.insert(*job, *scheduled_at);
                }
            }
            Event::JobCancelled { job } | Event::JobFinished { job, .. }
                if st.graph.contains(*job) =>
            {
                let now = self.handle.now();
                st.graph.remove(*job, now, &mut st.changes);
                st.skips.remove(job);
                st.released.remove(job);
                self.apply(st, now);
            }
            _ => {}
        }
    }

    /// A gated job's run uses up its dependencies' completions.
    fn run_started(&self, st: &mut State, job: JobId) {
        if st.graph.kind(job) == Some(DependentKind::Gated)
            && st.graph.consume(job) != Some(Readiness::Ready)
        {
            hold(&self.handle, job, HoldOp::Block);
        }
    }

    fn pipeline_job_ended(
        &self,
        st: &mut State,
        run: u64,
        idx: u32,
        outcome: Outcome,
        report: Option<RunReport>,
    ) {
        let Some(mut driver) = st.pipelines.remove(&run) else {
            return;
        };
        let mut host = Host {
            handle: &self.handle,
            jobs: &mut st.pipeline_jobs,
            run,
        };
        driver.job_ended(idx, outcome, report, &mut host);
        if !driver.finished() {
            st.pipelines.insert(run, driver);
        }
    }

    /// Acts on readiness changes: releases downstream jobs, holds or lets go
    /// of gated ones.
    fn apply(&self, st: &mut State, at: Timestamp) {
        while !st.changes.is_empty() {
            let changes = std::mem::take(&mut st.changes);
            for c in changes {
                match (c.kind, c.readiness) {
                    (DependentKind::Downstream, Readiness::Ready) => {
                        st.graph.consume(c.job);
                        let key = match st.released.get(&c.job) {
                            Some(last) if *last >= at => last
                                .checked_add(jiff::SignedDuration::from_nanos(1))
                                .unwrap_or(at),
                            _ => at,
                        };
                        st.released.insert(c.job, key);
                        post(
                            &self.handle,
                            Msg::Release {
                                id: c.job,
                                scheduled_at: key,
                                reply: None,
                            },
                        );
                    }
                    (DependentKind::Gated, Readiness::Ready) => {
                        hold(&self.handle, c.job, HoldOp::Unblock);
                    }
                    (DependentKind::Gated, _) => hold(&self.handle, c.job, HoldOp::Block),
                    _ => {}
                }
            }
        }
    }
}

impl Dag {
    /// Attaches a dependency layer to a scheduler (a [`crate::Scheduler`]
    /// derefs to its handle). Attach it before adding jobs through it; events
    /// from before the call are not seen.
    pub fn attach(scheduler: &SchedulerHandle) -> Dag {
        let shared = Arc::new(Shared {
            handle: scheduler.clone(),
            state: Mutex::new(State::default()),
        });
        let listener = Arc::clone(&shared);
        scheduler.on_event(move |e| listener.on_event(e));
        Dag { shared }
    }

    /// The scheduler this layer is attached to.
    pub fn scheduler(&self) -> &SchedulerHandle {
        &self.shared.handle
    }

    /// Adds a job that runs `handler`, with dependencies (may be empty: the job
    /// can then be depended on).
    ///
    /// With [`TriggerSpec::Manual`] the job is **downstream**: it runs each
    /// time its dependencies are satisfied anew. With any other trigger it is
    /// **gated**: its fires run only while its dependencies are satisfied, and
    /// wait otherwise (see [`Dag`]).
    ///
    /// Dependencies may name jobs added through this layer or any job the
    /// scheduler knows (they are tracked from then on).
    ///
    /// # Errors
    /// [`DagError::Dependency`] for an unknown dependency,
    /// [`DagError::Scheduler`] for an invalid trigger or a stopped scheduler.
    pub fn schedule<F>(
        &self,
        job: impl Into<JobSpec>,
        depends_on: impl IntoIterator<Item = Dependency>,
        handler: F,
    ) -> Result<JobId, DagError>
    where
        F: Fn(&RunContext) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.schedule_handler(job, depends_on, Arc::new(handler))
    }

    /// [`Dag::schedule`] with a shared handler.
    ///
    /// # Errors
    /// As [`Dag::schedule`].
    pub fn schedule_handler(
        &self,
        job: impl Into<JobSpec>,
        depends_on: impl IntoIterator<Item = Dependency>,
        handler: Handler,
    ) -> Result<JobId, DagError> {
        let mut spec = job.into();
        let deps: Vec<Dependency> = depends_on.into_iter().collect();
        self.track_existing(deps.iter().map(|d| d.job));
        let handle = &self.shared.handle;
        let now = handle.now();
        let trigger = spec
            .trigger
            .clone()
            .resolve(now, handle.zone())
            .map_err(SchedulerError::from)?;
        let mut st = self.shared.lock();
        if let Some(d) = deps.iter().find(|d| !st.graph.contains(d.job)) {
            return Err(DagError::UnknownDependency { dependency: d.job });
        }
        if deps.is_empty() {
            let id = handle.schedule_handler(spec, handler)?;
            st.graph.add_job(id)?;
            return Ok(id);
        }
        if matches!(trigger, TriggerSpec::Manual) {
            let id = handle.schedule_handler(spec, handler)?;
            st.graph
                .add_dependent(id, DependentKind::Downstream, &deps)?;
            return Ok(id);
        }
        // Added without a trigger, held, then given its trigger: all three are
        // ordered messages, so the job cannot fire before it is held.
        spec.trigger = TriggerSpec::Manual;
        let id = handle.schedule_handler(spec, handler)?;
        st.graph.add_dependent(id, DependentKind::Gated, &deps)?;
        hold(handle, id, HoldOp::Block);
        post(
            handle,
            Msg::Reschedule {
                id,
                trigger,
                at: now,
                reply: None,
            },
        );
        Ok(id)
    }

    /// Starts tracking jobs the scheduler knows but this layer does not, so
    /// they can be depended on.
    fn track_existing(&self, ids: impl Iterator<Item = JobId>) {
        let missing: Vec<JobId> = {
            let st = self.shared.lock();
            ids.filter(|id| !st.graph.contains(*id)).collect()
        };
        for id in missing {
            if self.shared.handle.get_job(id).is_some() {
                let _ = self.shared.lock().graph.add_job(id);
            }
        }
    }

    /// Tracks an existing scheduler job so others can depend on it.
    ///
    /// # Errors
    /// [`DagError::UnknownJob`] when the scheduler does not know it.
    pub fn track(&self, id: JobId) -> Result<(), DagError> {
        if self.shared.handle.get_job(id).is_none() {
            return Err(DagError::UnknownJob { id });
        }
        let _ = self.shared.lock().graph.add_job(id);
        Ok(())
    }

    /// Replaces a job's dependencies. The new edges start waiting (completions
    /// from before this call do not count); an empty list frees the job.
    ///
    /// # Errors
    /// [`DagError::UnknownJob`], or [`DagError::Dependency`] for an unknown
    /// dependency or a cycle (the error names the path, e.g.
    /// `job-1 -> job-2 -> job-1`); the old dependencies are kept then.
    pub fn set_dependencies(
        &self,
        id: JobId,
        depends_on: impl IntoIterator<Item = Dependency>,
    ) -> Result<(), DagError> {
        let deps: Vec<Dependency> = depends_on.into_iter().collect();
        let snap = self
            .shared
            .handle
            .get_job(id)
            .ok_or(DagError::UnknownJob { id })?;
        self.track_existing(deps.iter().map(|d| d.job));
        let kind = if matches!(snap.trigger, TriggerSpec::Manual) {
            DependentKind::Downstream
        } else {
            DependentKind::Gated
        };
        let mut st = self.shared.lock();
        if !st.graph.contains(id) {
            st.graph.add_job(id)?;
        }
        let was_gated = st.graph.kind(id) == Some(DependentKind::Gated);
        let readiness = st.graph.set_dependencies_as(id, Some(kind), &deps)?;
        if kind == DependentKind::Gated || was_gated {
            let op = if readiness == Readiness::Ready {
                HoldOp::Unblock
            } else {
                HoldOp::Block
            };
            hold(&self.shared.handle, id, op);
        }
        Ok(())
    }

    /// Tracks `id`, a job the scheduler does not know (a persisted dependency that was
    /// not restored), so that dependents can name it until [`Dag::mark_gone`].
    pub(crate) fn track_absent(&self, id: JobId) {
        let _ = self.shared.lock().graph.add_job(id);
    }

    /// Marks a job tracked by [`Dag::track_absent`] as gone for good: its
    /// dependents' edges to it block.
    pub(crate) fn mark_gone(&self, id: JobId) {
        let now = self.shared.handle.now();
        let mut st = self.shared.lock();
        let st = &mut *st;
        st.graph.remove(id, now, &mut st.changes);
        self.shared.apply(st, now);
    }

    /// A job's readiness (`None`: not tracked by this layer).
    pub fn readiness(&self, id: JobId) -> Option<Readiness> {
        self.shared.lock().graph.readiness(id)
    }

    /// A job's dependencies and where each stands (`None`: not tracked).
    pub fn dependencies(&self, id: JobId) -> Option<Vec<EdgeReport>> {
        self.shared.lock().graph.dependencies(id)
    }

    /// Why a job is not running now.
    ///
    /// Must not be called from an event listener (it asks the scheduler
    /// thread for the job's state).
    ///
    /// # Errors
    /// [`DagError::UnknownJob`] when the scheduler does not know the job.
    pub fn explain(&self, id: JobId) -> Result<Explanation, DagError> {
        let snap = self
            .shared
            .handle
            .get_job(id)
            .ok_or(DagError::UnknownJob { id })?;
        let now = self.shared.handle.now();
        let st = self.shared.lock();
        Ok(explain(
            &snap,
            now,
            st.graph.dependencies(id).unwrap_or_default(),
            st.skips.get(&id).copied(),
        ))
    }
}

/// One reason a job is not running now.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// It is running (`runs` active runs).
    Running {
        /// How many.
        runs: u16,
    },
    /// It is finished for good.
    Finished {
        /// [`JobStatus::Completed`], [`JobStatus::Failed`] or
        /// [`JobStatus::Cancelled`].
        status: JobStatus,
    },
    /// It is paused.
    Paused,
    /// A required dependency's most recent run did not succeed.
    BlockedBy {
        /// The dependency.
        dependency: JobId,
        /// How its run ended.
        outcome: Outcome,
        /// When.
        at: Timestamp,
    },
    /// A dependency was cancelled or finished for good.
    DependencyGone {
        /// The dependency.
        dependency: JobId,
        /// When.
        at: Timestamp,
    },
    /// These dependencies have not finished (successfully) since its last run.
    WaitingOn {
        /// The dependencies.
        dependencies: Vec<JobId>,
    },
    /// Its fire at this time fell due and waits for the dependencies.
    FireWaiting {
        /// The occurrence.
        scheduled_at: Timestamp,
    },
    /// Its next fire.
    NextFireAt {
        /// When.
        at: Timestamp,
    },
    /// Its overlap policy skipped the occurrence at this time (an earlier run
    /// was still active).
    SkippedByOverlap {
        /// The occurrence.
        scheduled_at: Timestamp,
    },
    /// Its dependencies are satisfied; it is being released.
    Ready,
    /// It has no trigger and no dependencies: it runs only when released or
    /// run by hand.
    ManualOnly,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Running { runs } => write!(f, "running ({runs} active)"),
            Reason::Finished { status } => write!(f, "finished ({status:?})"),
            Reason::Paused => f.write_str("paused"),
            Reason::BlockedBy {
                dependency,
                outcome,
                at,
            } => write!(
                f,
                "blocked: dependency {dependency} ended {outcome:?} at {at}"
            ),
            Reason::DependencyGone { dependency, at } => {
                write!(f, "blocked: dependency {dependency} was removed at {at}")
            }
            Reason::WaitingOn { dependencies } => {
                f.write_str("waiting on ")?;
                for (i, d) in dependencies.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{d}")?;
                }
                Ok(())
            }
            Reason::FireWaiting { scheduled_at } => {
                write!(f, "fire at {scheduled_at} is waiting for its dependencies")
            }
            Reason::NextFireAt { at } => write!(f, "next fire at {at}"),
            Reason::SkippedByOverlap { scheduled_at } => write!(
                f,
                "overlap policy skipped the fire at {scheduled_at} (a run was still active)"
            ),
            Reason::Ready => f.write_str("dependencies satisfied; being released"),
            Reason::ManualOnly => f.write_str("no trigger: runs only when released"),
        }
    }
}

/// Why a job is not running now ([`Dag::explain`]). Its `Display` is one line:
/// `job-3 (blocked): blocked: dependency job-1 ended Failed at …; next fire at …`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation {
    /// The job.
    pub job: JobId,
    /// Its status in the scheduler ([`JobStatus::Blocked`] while its
    /// dependencies hold it, whether waiting or blocked by a failure).
    pub status: JobStatus,
    /// The reasons, most decisive first.
    pub reasons: Vec<Reason>,
    /// Its dependencies and where each stands.
    pub dependencies: Vec<EdgeReport>,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?}): ", self.job, self.status)?;
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

fn explain(
    snap: &JobSnapshot,
    now: Timestamp,
    deps: Vec<EdgeReport>,
    skipped: Option<Timestamp>,
) -> Explanation {
    let mut reasons = Vec::new();
    if snap.running > 0 {
        reasons.push(Reason::Running { runs: snap.running });
    }
    match snap.status {
        s @ (JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled) => {
            reasons.push(Reason::Finished { status: s });
        }
        JobStatus::Paused => reasons.push(Reason::Paused),
        _ => {}
    }
    let mut waiting = Vec::new();
    for e in &deps {
        match e.state {
            EdgeState::Failed { outcome, at } => reasons.push(Reason::BlockedBy {
                dependency: e.dependency,
                outcome,
                at,
            }),
            EdgeState::Gone { at } => reasons.push(Reason::DependencyGone {
                dependency: e.dependency,
                at,
            }),
            EdgeState::Waiting => waiting.push(e.dependency),
            _ => {}
        }
    }
    if !waiting.is_empty() {
        reasons.push(Reason::WaitingOn {
            dependencies: waiting,
        });
    }
    let manual = matches!(snap.trigger, TriggerSpec::Manual);
    let satisfied = deps
        .iter()
        .all(|e| matches!(e.state, EdgeState::Satisfied { .. }));
    if let Some(at) = snap.next_run_at.filter(|_| !manual) {
        if at <= now && !satisfied {
            reasons.push(Reason::FireWaiting { scheduled_at: at });
        } else {
            reasons.push(Reason::NextFireAt { at });
        }
    }
    if let Some(s) = skipped.filter(|s| snap.last_run_at.is_none_or(|l| *s >= l)) {
        reasons.push(Reason::SkippedByOverlap { scheduled_at: s });
    }
    if manual && reasons.is_empty() {
        reasons.push(if deps.is_empty() {
            Reason::ManualOnly
        } else {
            Reason::Ready
        });
    }
    Explanation {
        job: snap.id,
        status: snap.status,
        reasons,
        dependencies: deps,
    }
}
