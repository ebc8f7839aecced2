//! Pipelines: ordered stages of jobs run in parallel on the scheduler's
//! workers, each stage's outputs handed to the next (the seed's `JobPipeline`).
//!
//! Every job of a stage becomes a scheduler job (trigger
//! [`TriggerSpec::Manual`], the job's own retry and timeout policies) released
//! when its stage starts and removed when it ends. The pipeline advances from
//! the [`Dag`]'s event listener when the last job of a stage reports its end:
//! no thread of its own, no polling. [`PipelineHandle::wait`] blocks on a
//! condition variable.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

use jiff::SignedDuration;
use myrmex_core::{
    Dependency, JobId, JobPolicies, JobSpec, Outcome, RetryPolicy, RunReport, TriggerSpec,
};

use crate::context::{Handler, JobError, RunContext};
use crate::deps::{Dag, DagError, post};
use crate::runtime::Msg;
use crate::{CancellationToken, SchedulerHandle};

/// A stage job's code: takes the previous stage's outputs, returns its own.
pub type StageFn<T> = Arc<dyn Fn(&StageContext<'_, T>) -> Result<T, JobError> + Send + Sync>;

/// What a stage job sees: its attempt and the previous stage's outputs.
pub struct StageContext<'a, T> {
    run: &'a RunContext,
    stage: usize,
    inputs: &'a [Option<T>],
}

impl<T> fmt::Debug for StageContext<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageContext")
            .field("run", &self.run)
            .field("stage", &self.stage)
            .field("inputs", &self.inputs.len())
            .finish()
    }
}

impl<T> StageContext<'_, T> {
    /// The attempt (job id, attempt number, cancellation token).
    pub fn run(&self) -> &RunContext {
        self.run
    }

    /// The stage's index (0 for the first).
    pub fn stage(&self) -> usize {
        self.stage
    }

    /// The previous stage's outputs, one per job in declaration order (`None`
    /// for a job that did not succeed, under [`StageFailurePolicy::Continue`]).
    /// Empty for the first stage.
    pub fn inputs(&self) -> &[Option<T>] {
        self.inputs
    }

    /// The outputs of the previous stage's jobs that succeeded.
    pub fn outputs_before(&self) -> impl Iterator<Item = &T> {
        self.inputs.iter().flatten()
    }
}

/// One job of a stage.
pub struct PipelineJob<T> {
    name: String,
    policies: JobPolicies,
    f: StageFn<T>,
}

impl<T> Clone for PipelineJob<T> {
    fn clone(&self) -> Self {
        PipelineJob {
            name: self.name.clone(),
            policies: self.policies.clone(),
            f: Arc::clone(&self.f),
        }
    }
}

impl<T> fmt::Debug for PipelineJob<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineJob")
            .field("name", &self.name)
            .field("policies", &self.policies)
            .finish_non_exhaustive()
    }
}

impl<T> PipelineJob<T> {
    /// A job with default policies (no retry, no timeout).
    pub fn new<F>(name: impl Into<String>, f: F) -> PipelineJob<T>
    where
        F: Fn(&StageContext<'_, T>) -> Result<T, JobError> + Send + Sync + 'static,
    {
        PipelineJob {
            name: name.into(),
            policies: JobPolicies::default(),
            f: Arc::new(f),
        }
    }

    /// Sets the retry policy (the scheduler's, per job).
    #[must_use]
    pub fn retry(mut self, p: RetryPolicy) -> Self {
        self.policies.retry = p;
        self
    }

    /// Sets the per-attempt timeout (the scheduler's, per job).
    #[must_use]
    pub fn timeout(mut self, t: SignedDuration) -> Self {
        self.policies.timeout = Some(t);
        self
    }
}

/// A set of jobs run in parallel.
pub struct Stage<T> {
    name: String,
    jobs: Vec<PipelineJob<T>>,
}

impl<T> Clone for Stage<T> {
    fn clone(&self) -> Self {
        Stage {
            name: self.name.clone(),
            jobs: self.jobs.clone(),
        }
    }
}

impl<T> fmt::Debug for Stage<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .field("jobs", &self.jobs)
            .finish()
    }
}

impl<T> Stage<T> {
    /// An empty stage.
    pub fn new(name: impl Into<String>) -> Stage<T> {
        Stage {
            name: name.into(),
            jobs: Vec::new(),
        }
    }

    /// Adds a job with default policies.
    #[must_use]
    pub fn job<F>(self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(&StageContext<'_, T>) -> Result<T, JobError> + Send + Sync + 'static,
    {
        self.with(PipelineJob::new(name, f))
    }

    /// Adds a job.
    #[must_use]
    pub fn with(mut self, job: PipelineJob<T>) -> Self {
        self.jobs.push(job);
        self
    }
}

/// What a pipeline does when a job of a stage does not succeed (after its
/// retries).
///
/// Default: [`StageFailurePolicy::Stop`].
///
/// ```
/// use myrmex::StageFailurePolicy;
/// assert_eq!(StageFailurePolicy::default(), StageFailurePolicy::Stop);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StageFailurePolicy {
    /// Finish the failing stage, then stop: the remaining stages are recorded
    /// as cancelled and the pipeline failed.
    #[default]
    Stop,
    /// Go on with the next stage (the failed job's input is `None`); the
    /// pipeline is still reported failed.
    Continue,
}

/// An ordered list of stages (the seed's `JobPipeline`). `T` is the value
/// every job returns and the next stage receives; use [`serde_json::Value`]
/// (the default) when stages hand over different shapes.
///
/// ```
/// use myrmex::{Dag, Pipeline, PipelineOutcome, Scheduler, Stage};
///
/// let scheduler = Scheduler::builder().workers(3).build()?;
/// let dag = Dag::attach(&scheduler);
/// scheduler.start()?;
///
/// let pipeline = Pipeline::<u64>::new("sum")
///     .stage(Stage::new("numbers").job("two", |_| Ok(2)).job("three", |_| Ok(3)))
///     .stage(Stage::new("total").job("add", |ctx| Ok(ctx.outputs_before().sum())));
/// let report = pipeline.run(&dag)?;
/// assert_eq!(report.outcome, PipelineOutcome::Succeeded);
/// assert_eq!(report.output(), Some(&[Some(5)][..]));
/// scheduler.shutdown(std::time::Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Pipeline<T = serde_json::Value> {
    name: String,
    stages: Vec<Stage<T>>,
    failure: StageFailurePolicy,
}

impl<T> Clone for Pipeline<T> {
    fn clone(&self) -> Self {
        Pipeline {
            name: self.name.clone(),
            stages: self.stages.clone(),
            failure: self.failure,
        }
    }
}

impl<T> fmt::Debug for Pipeline<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("name", &self.name)
            .field("stages", &self.stages)
            .field("failure", &self.failure)
            .finish()
    }
}

/// How a stage ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StageStatus {
    /// Every job succeeded.
    Succeeded,
    /// Some job did not succeed.
    Failed,
    /// The pipeline was cancelled during or before this stage.
    Cancelled,
}

/// How a pipeline ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PipelineOutcome {
    /// Every stage succeeded.
    Succeeded,
    /// Some stage failed.
    Failed,
    /// It was cancelled.
    Cancelled,
}

/// One stage job's end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageJobReport {
    /// The job's name in its stage.
    pub name: String,
    /// The scheduler job it ran as (`None`: never started).
    pub job: Option<JobId>,
    /// How it ended ([`Outcome::Cancelled`] when it never started).
    pub outcome: Outcome,
    /// The run's report (`None`: never started).
    pub report: Option<RunReport>,
}

/// One stage's end.
#[derive(Clone, Debug)]
pub struct StageReport<T> {
    /// The stage's name.
    pub name: String,
    /// How it ended.
    pub status: StageStatus,
    /// Its jobs, in declaration order.
    pub jobs: Vec<StageJobReport>,
    outputs: Arc<Vec<Option<T>>>,
}

impl<T> StageReport<T> {
    /// Its jobs' outputs, in declaration order (`None`: did not succeed).
    pub fn outputs(&self) -> &[Option<T>] {
        &self.outputs
    }
}

/// Every stage's outcome.
#[derive(Clone, Debug)]
pub struct PipelineReport<T> {
    /// The pipeline's name.
    pub name: String,
    /// How it ended.
    pub outcome: PipelineOutcome,
    /// Every stage, in order (those not run are [`StageStatus::Cancelled`]).
    pub stages: Vec<StageReport<T>>,
}

impl<T> PipelineReport<T> {
    /// The last stage's outputs, if it ran.
    pub fn output(&self) -> Option<&[Option<T>]> {
        self.stages
            .last()
            .filter(|s| s.status != StageStatus::Cancelled)
            .map(StageReport::outputs)
    }
}

impl<T: Send + Sync + 'static> Pipeline<T> {
    /// An empty pipeline that stops at the first failing stage.
    pub fn new(name: impl Into<String>) -> Pipeline<T> {
        Pipeline {
            name: name.into(),
            stages: Vec::new(),
            failure: StageFailurePolicy::Stop,
        }
    }

    /// Appends a stage.
    #[must_use]
    pub fn stage(mut self, stage: Stage<T>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Sets the failure policy.
    #[must_use]
    pub fn failure_policy(mut self, p: StageFailurePolicy) -> Self {
        self.failure = p;
        self
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts the pipeline on the scheduler's workers and returns at once.
    ///
    /// # Errors
    /// [`DagError::Scheduler`] when the scheduler is shut down.
    pub fn submit(&self, dag: &Dag) -> Result<PipelineHandle<T>, DagError> {
        let done = Arc::new(Completion {
            report: Mutex::new(None),
            watcher: Mutex::new(None),
            cv: Condvar::new(),
            stage: AtomicUsize::new(0),
        });
        let shared = &dag.shared;
        let mut st = shared.lock();
        let st = &mut *st;
        let run = st.next_pipeline;
        st.next_pipeline += 1;
        let mut state = RunState {
            name: self.name.clone(),
            stages: Arc::new(self.stages.clone()),
            failure: self.failure,
            stage: 0,
            ids: Vec::new(),
            ended: Vec::new(),
            pending: 0,
            slots: Arc::new(Vec::new()),
            inputs: Arc::new(Vec::new()),
            reports: Vec::new(),
            cancelled: false,
            failed: false,
            done: Arc::clone(&done),
            finished: false,
        };
        let mut host = Host {
            handle: &shared.handle,
            jobs: &mut st.pipeline_jobs,
            run,
        };
        state.start_stage(&mut host)?;
        if !state.finished {
            st.pipelines.insert(run, Box::new(state));
        }
        Ok(PipelineHandle {
            dag: dag.clone(),
            run,
            done,
        })
    }

    /// Runs the pipeline and waits for it to end. Must not be called from an
    /// event listener (the scheduler thread advances the pipeline).
    ///
    /// # Errors
    /// [`DagError::Scheduler`] when the scheduler is shut down.
    pub fn run(&self, dag: &Dag) -> Result<PipelineReport<T>, DagError> {
        Ok(self.submit(dag)?.wait())
    }
}

impl Dag {
    /// Schedules a pipeline as a job with any trigger (and dependencies): each
    /// fire runs the whole pipeline; the job's run succeeds when the pipeline
    /// does, so other jobs can depend on it. The job's own policies (overlap,
    /// misfire, retry, timeout) apply to whole pipeline runs; retries and
    /// timeouts of the stage jobs apply per stage job.
    ///
    /// The job's timeout bounds the whole pipeline run, and cancelling the job
    /// cancels its running pipeline.
    ///
    /// While it runs, the pipeline job occupies one worker waiting for its
    /// stages, which run on the others: give the scheduler at least one worker
    /// more than the pipelines that may run at once.
    ///
    /// # Errors
    /// As [`Dag::schedule`].
    pub fn schedule_pipeline<T: Send + Sync + 'static>(
        &self,
        job: impl Into<JobSpec>,
        depends_on: impl IntoIterator<Item = Dependency>,
        pipeline: Pipeline<T>,
    ) -> Result<JobId, DagError> {
        let dag = self.clone();
        let mut spec = job.into();
        if spec.name.is_none() {
            spec.name = Some(pipeline.name.clone());
        }
        self.schedule(spec, depends_on, move |ctx| {
            let handle = pipeline.submit(&dag)?;
            // Wait on the job's own token: the pipeline's end cancels it, and
            // so do the job's timeout and its cancellation (which then cancel
            // the pipeline). The run's outcome is decided by the scheduler,
            // not by who cancelled the token.
            let token = ctx.cancellation();
            handle.notify(token.clone());
            token.wait();
            if !handle.is_finished() {
                handle.cancel();
            }
            let report = handle.wait();
            match report.outcome {
                PipelineOutcome::Succeeded => Ok(()),
                other => {
                    let stage = report
                        .stages
                        .iter()
                        .find(|s| s.status != StageStatus::Succeeded)
                        .map_or("", |s| s.name.as_str());
                    Err(format!("pipeline {} {other:?} at stage {stage:?}", report.name).into())
                }
            }
        })
    }
}

struct Completion<T> {
    report: Mutex<Option<PipelineReport<T>>>,
    /// Cancelled when the report is ready.
    watcher: Mutex<Option<CancellationToken>>,
    cv: Condvar,
    stage: AtomicUsize,
}

/// A running pipeline: wait for it, look at it, or cancel it.
pub struct PipelineHandle<T> {
    dag: Dag,
    run: u64,
    done: Arc<Completion<T>>,
}

impl<T> fmt::Debug for PipelineHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineHandle")
            .field("run", &self.run)
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

impl<T> PipelineHandle<T> {
    /// Blocks until the pipeline ends and returns every stage's outcome.
    pub fn wait(self) -> PipelineReport<T> {
        let mut g = self
            .done
            .report
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(r) = g.take() {
                return r;
            }
            g = self.done.cv.wait(g).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Cancels `token` when the pipeline ends (at once if it has), so a
    /// thread can wait for the pipeline and something else with one token.
    pub fn notify(&self, token: CancellationToken) {
        *self
            .done
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(token.clone());
        if self.is_finished() {
            token.cancel();
        }
    }

    /// Whether it has ended.
    pub fn is_finished(&self) -> bool {
        self.done
            .report
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The stage running now (or the number of stages once it ended).
    pub fn current_stage(&self) -> usize {
        self.done.stage.load(Ordering::Acquire)
    }

    /// Cancels it: the running stage's jobs are told to stop (through their
    /// cancellation tokens) and the remaining stages are recorded as
    /// cancelled. [`PipelineHandle::wait`] returns once the running jobs have
    /// ended.
    pub fn cancel(&self) {
        let shared = &self.dag.shared;
        let mut st = shared.lock();
        let st = &mut *st;
        if let Some(mut driver) = st.pipelines.remove(&self.run) {
            let mut host = Host {
                handle: &shared.handle,
                jobs: &mut st.pipeline_jobs,
                run: self.run,
            };
            driver.cancel(&mut host);
            if !driver.finished() {
                st.pipelines.insert(self.run, driver);
            }
        }
    }
}

/// What the [`Dag`] listener needs to advance a pipeline run.
pub(crate) struct Host<'a> {
    pub(crate) handle: &'a SchedulerHandle,
    pub(crate) jobs: &'a mut std::collections::HashMap<JobId, (u64, u32)>,
    pub(crate) run: u64,
}

/// A pipeline run, with its value type erased.
pub(crate) trait Driver: Send {
    /// A job of the current stage ended (`report` `None`: it never ran).
    fn job_ended(
        &mut self,
        idx: u32,
        outcome: Outcome,
        report: Option<RunReport>,
        host: &mut Host<'_>,
    );
    /// The user cancelled the run.
    fn cancel(&mut self, host: &mut Host<'_>);
    /// Whether the run has ended (and its report was handed over).
    fn finished(&self) -> bool;
}

struct RunState<T> {
    name: String,
    stages: Arc<Vec<Stage<T>>>,
    failure: StageFailurePolicy,
    stage: usize,
    /// The current stage's scheduler jobs (`None` once removed).
    ids: Vec<Option<JobId>>,
    ended: Vec<Option<StageJobReport>>,
    pending: usize,
    slots: Arc<Vec<Mutex<Option<T>>>>,
    inputs: Arc<Vec<Option<T>>>,
    reports: Vec<StageReport<T>>,
    cancelled: bool,
    failed: bool,
    done: Arc<Completion<T>>,
    finished: bool,
}

impl<T: Send + Sync + 'static> RunState<T> {
    /// Starts the current stage (skipping empty ones), or finishes.
    fn start_stage(&mut self, host: &mut Host<'_>) -> Result<(), DagError> {
        while self.stage < self.stages.len() && self.stages[self.stage].jobs.is_empty() {
            self.reports.push(StageReport {
                name: self.stages[self.stage].name.clone(),
                status: StageStatus::Succeeded,
                jobs: Vec::new(),
                outputs: Arc::new(Vec::new()),
            });
            self.inputs = Arc::new(Vec::new());
            self.stage += 1;
        }
        self.done.stage.store(self.stage, Ordering::Release);
        if self.stage == self.stages.len() {
            self.finish();
            return Ok(());
        }
        let stages = Arc::clone(&self.stages);
        let stage = &stages[self.stage];
        let n = stage.jobs.len();
        let slots: Arc<Vec<Mutex<Option<T>>>> =
            Arc::new((0..n).map(|_| Mutex::new(None)).collect());
        self.slots = Arc::clone(&slots);
        self.ids = Vec::with_capacity(n);
        self.ended = vec![None; n];
        self.pending = n;
        let now = host.handle.now();
        for (i, job) in stage.jobs.iter().enumerate() {
            let f = Arc::clone(&job.f);
            let inputs = Arc::clone(&self.inputs);
            let slots = Arc::clone(&slots);
            let k = self.stage;
            let handler: Handler = Arc::new(move |ctx: &RunContext| {
                if ctx.is_cancelled() {
                    return Err("pipeline cancelled before the job started".into());
                }
                let out = f(&StageContext {
                    run: ctx,
                    stage: k,
                    inputs: &inputs,
                })?;
                *slots[i].lock().unwrap_or_else(PoisonError::into_inner) = Some(out);
                Ok(())
            });
            let spec = JobSpec::new(TriggerSpec::Manual)
                .policies(job.policies.clone())
                .name(format!("{}/{}/{}", self.name, stage.name, job.name));
            let id = match host.handle.schedule_handler(spec, handler) {
                Ok(id) => id,
                Err(e) => {
                    // Only a stopped scheduler refuses a manual job: end here.
                    for _ in i..n {
                        self.ids.push(None);
                    }
                    self.cancelled = true;
                    self.pending = 0;
                    self.cancel_running(host);
                    self.complete_stage(host);
                    return Err(e.into());
                }
            };
            host.jobs.insert(id, (host.run, i as u32));
            self.ids.push(Some(id));
            post(
                host.handle,
                Msg::Release {
                    id,
                    scheduled_at: now,
                    reply: None,
                },
            );
        }
        Ok(())
    }

    fn remove_job(&mut self, i: usize, host: &mut Host<'_>) {
        if let Some(id) = self.ids[i].take() {
            host.jobs.remove(&id);
            post(host.handle, Msg::Cancel { id, reply: None });
        }
    }

    fn cancel_running(&mut self, host: &mut Host<'_>) {
        for i in 0..self.ids.len() {
            if self.ended[i].is_none()
                && let Some(id) = self.ids[i]
            {
                // Removing the job tells its attempt to stop; its end still
                // arrives as an event and is recorded.
                post(host.handle, Msg::Cancel { id, reply: None });
            }
        }
    }

    fn complete_stage(&mut self, host: &mut Host<'_>) {
        let stages = Arc::clone(&self.stages);
        let stage = &stages[self.stage];
        let jobs: Vec<StageJobReport> = self
            .ended
            .iter_mut()
            .zip(&stage.jobs)
            .map(|(e, j)| {
                e.take().unwrap_or_else(|| StageJobReport {
                    name: j.name.clone(),
                    job: None,
                    outcome: Outcome::Cancelled,
                    report: None,
                })
            })
            .collect();
        let outputs: Arc<Vec<Option<T>>> = Arc::new(
            self.slots
                .iter()
                .map(|m| m.lock().unwrap_or_else(PoisonError::into_inner).take())
                .collect(),
        );
        let ok = jobs.iter().all(|j| j.outcome == Outcome::Succeeded);
        let status = if self.cancelled {
            StageStatus::Cancelled
        } else if ok {
            StageStatus::Succeeded
        } else {
            StageStatus::Failed
        };
        self.failed |= !ok;
        self.reports.push(StageReport {
            name: stage.name.clone(),
            status,
            jobs,
            outputs: Arc::clone(&outputs),
        });
        self.inputs = outputs;
        self.stage += 1;
        if self.cancelled || (!ok && self.failure == StageFailurePolicy::Stop) {
            self.finish();
        } else if let Err(e) = self.start_stage(host) {
            tracing::warn!(pipeline = %self.name, error = %e, "pipeline stopped");
        }
    }

    /// Records the stages not run as cancelled and hands the report over.
    fn finish(&mut self) {
        if self.finished {
            return;
        }
        let stages = Arc::clone(&self.stages);
        for s in &stages[self.reports.len()..] {
            self.reports.push(StageReport {
                name: s.name.clone(),
                status: StageStatus::Cancelled,
                jobs: s
                    .jobs
                    .iter()
                    .map(|j| StageJobReport {
                        name: j.name.clone(),
                        job: None,
                        outcome: Outcome::Cancelled,
                        report: None,
                    })
                    .collect(),
                outputs: Arc::new(Vec::new()),
            });
        }
        let outcome = if self.cancelled {
            PipelineOutcome::Cancelled
        } else if self.failed {
            PipelineOutcome::Failed
        } else {
            PipelineOutcome::Succeeded
        };
        self.finished = true;
        self.done.stage.store(self.stages.len(), Ordering::Release);
        let report = PipelineReport {
            name: self.name.clone(),
            outcome,
            stages: std::mem::take(&mut self.reports),
        };
        *self
            .done
            .report
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(report);
        self.done.cv.notify_all();
        if let Some(t) = self
            .done
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            t.cancel();
        }
    }
}

impl<T: Send + Sync + 'static> Driver for RunState<T> {
    fn job_ended(
        &mut self,
        idx: u32,
        outcome: Outcome,
        report: Option<RunReport>,
        host: &mut Host<'_>,
    ) {
        let i = idx as usize;
        if self.finished || i >= self.ended.len() || self.ended[i].is_some() {
            return;
        }
        let job = self.ids[i];
        self.ended[i] = Some(StageJobReport {
            name: self.stages[self.stage].jobs[i].name.clone(),
            job,
            outcome,
            report,
        });
        self.remove_job(i, host);
        self.pending -= 1;
        if self.pending == 0 {
            self.complete_stage(host);
        }
    }

    fn cancel(&mut self, host: &mut Host<'_>) {
        if self.finished || self.cancelled {
            return;
        }
        self.cancelled = true;
        self.cancel_running(host);
        if self.pending == 0 {
            self.complete_stage(host);
        }
    }

    fn finished(&self) -> bool {
        self.finished
    }
}
