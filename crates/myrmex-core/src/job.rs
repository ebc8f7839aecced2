//! Jobs, runs and their states, as data.

use std::fmt;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::policy::JobPolicies;
use crate::trigger::TriggerSpec;

/// A job's identity: stable for its lifetime and across restarts (stores key
/// on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

/// One active run (an occurrence being executed, possibly across several
/// attempts). Only meaningful while the run is active; reused afterwards.
/// The default value names no run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RunId(pub(crate) u64);

impl Default for RunId {
    fn default() -> Self {
        RunId(u64::MAX)
    }
}

impl RunId {
    /// A dense index (`< 2^32`), reused after the run ends: handy for side tables.
    pub fn index(self) -> usize {
        (self.0 & 0xFFFF_FFFF) as usize
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run-{}.{}", self.0 & 0xFFFF_FFFF, self.0 >> 32)
    }
}

/// A job definition as data: what a store saves (the handler is referred to by
/// the application, e.g. by name, never serialized).
///
/// ```
/// use myrmex_core::{JobSpec, OverlapPolicy, every};
/// use std::time::Duration;
///
/// let spec = JobSpec::new(every(Duration::from_secs(60)))
///     .name("refresh")
///     .overlap(OverlapPolicy::QueueOne);
/// assert_eq!(spec.name.as_deref(), Some("refresh"));
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobSpec {
    /// A human name (optional; not unique).
    #[serde(default)]
    pub name: Option<String>,
    /// When it fires.
    pub trigger: TriggerSpec,
    /// How it behaves.
    #[serde(default)]
    pub policies: JobPolicies,
}

impl JobSpec {
    /// A job with default policies.
    pub fn new(trigger: TriggerSpec) -> JobSpec {
        JobSpec {
            name: None,
            trigger,
            policies: JobPolicies::default(),
        }
    }
    /// Sets the name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    /// Sets all policies.
    #[must_use]
    pub fn policies(mut self, policies: JobPolicies) -> Self {
        self.policies = policies;
        self
    }
    /// Sets the misfire policy.
    #[must_use]
    pub fn misfire(mut self, p: crate::MisfirePolicy) -> Self {
        self.policies.misfire = p;
        self
    }
    /// Sets the misfire grace period.
    #[must_use]
    pub fn misfire_grace(mut self, grace: SignedDuration) -> Self {
        self.policies.misfire_grace = grace;
        self
    }
    /// Sets the overlap policy.
    #[must_use]
    pub fn overlap(mut self, p: crate::OverlapPolicy) -> Self {
        self.policies.overlap = p;
        self
    }
    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, p: crate::RetryPolicy) -> Self {
        self.policies.retry = p;
        self
    }
    /// Sets the per-attempt timeout.
    #[must_use]
    pub fn timeout(mut self, t: SignedDuration) -> Self {
        self.policies.timeout = Some(t);
        self
    }
    /// Sets the per-fire jitter bound.
    #[must_use]
    pub fn jitter(mut self, max: SignedDuration) -> Self {
        self.policies.jitter = Some(max);
        self
    }
    /// Ends the job after `n` runs.
    #[must_use]
    pub fn max_runs(mut self, n: u32) -> Self {
        self.policies.max_runs = Some(n);
        self
    }
    /// Sets the retention policy.
    #[must_use]
    pub fn retention(mut self, p: crate::RetentionPolicy) -> Self {
        self.policies.retention = p;
        self
    }
}

impl From<TriggerSpec> for JobSpec {
    fn from(t: TriggerSpec) -> JobSpec {
        JobSpec::new(t)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting for its next fire (or, for a manual job, to be released).
    Pending,
    /// At least one run is active.
    Running,
    /// Finished: the trigger is exhausted and the last run succeeded.
    Completed,
    /// Finished: the trigger is exhausted and the last run did not succeed.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Paused: fires are held until it is resumed.
    Paused,
    /// Held by a dependency (pipelines): fires wait until it is unblocked.
    Blocked,
}

/// How an attempt or a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned an error or panicked.
    Failed,
    /// The attempt ran past its timeout.
    TimedOut,
    /// The run was cancelled (job cancelled or scheduler shut down) and the
    /// handler stopped.
    Cancelled,
}

/// What the executor reports for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptResult {
    /// The handler returned `Ok`.
    Succeeded,
    /// The handler returned an error or panicked; the message.
    Failed(String),
}

/// The final record of a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunReport {
    /// The run while it was active (not persisted; reused after the run ends).
    #[serde(skip)]
    pub run: RunId,
    /// The job.
    pub job: JobId,
    /// The occurrence key: the nominal fire time (for `run_now`, the time it was
    /// requested).
    pub scheduled_at: Timestamp,
    /// When the first attempt started.
    pub started_at: Timestamp,
    /// When the last attempt ended.
    pub finished_at: Timestamp,
    /// How many attempts were made.
    pub attempts: u32,
    /// How it ended.
    pub outcome: Outcome,
    /// The last attempt's error message, if any.
    pub error: Option<Arc<str>>,
}

/// A job's state at one moment (returned by value: later changes do not show).
#[derive(Clone, Debug)]
pub struct JobSnapshot {
    /// Its id.
    pub id: JobId,
    /// Its name.
    pub name: Option<String>,
    /// Its (resolved) trigger.
    pub trigger: TriggerSpec,
    /// Its policies.
    pub policies: JobPolicies,
    /// Its status.
    pub status: JobStatus,
    /// When it was added.
    pub created_at: Timestamp,
    /// When its last run started.
    pub last_run_at: Option<Timestamp>,
    /// The next occurrence not yet turned into a run (the watermark).
    pub next_run_at: Option<Timestamp>,
    /// How many runs it has started.
    pub run_count: u32,
    /// How many runs are active.
    pub running: u16,
    /// How the last finished run ended.
    pub last_outcome: Option<Outcome>,
    /// The last finished run's error, if it failed.
    pub last_error: Option<Arc<str>>,
    /// The most recent finished runs, oldest first.
    pub history: Vec<RunReport>,
}

impl JobSnapshot {
    /// The job's definition as data.
    pub fn spec(&self) -> JobSpec {
        JobSpec {
            name: self.name.clone(),
            trigger: self.trigger.clone(),
            policies: self.policies.clone(),
        }
    }
}

/// State to restore when re-adding a job from a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredState {
    /// When the job was first added.
    pub created_at: Timestamp,
    /// The watermark: the earliest occurrence not yet turned into a run (`None`:
    /// the trigger is exhausted). Occurrences before it never fire again; if it is
    /// in the past, the misfire policy decides.
    pub next_run_at: Option<Timestamp>,
    /// When the last run started.
    pub last_run_at: Option<Timestamp>,
    /// Runs started so far (counts toward `max_runs`).
    pub run_count: u32,
    /// [`JobStatus::Paused`] or [`JobStatus::Blocked`] to restore a held job;
    /// anything else restores it as pending.
    pub status: JobStatus,
    /// How the last finished run ended.
    pub last_outcome: Option<Outcome>,
}

/// Why an occurrence did not become a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SkipReason {
    /// The overlap policy refused it.
    Overlap,
    /// The job reached `max_runs`.
    MaxRuns,
}

/// Something that happened, for listeners, subscribers and journals.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// An attempt started.
    RunStarted {
        /// The job.
        job: JobId,
        /// The occurrence.
        scheduled_at: Timestamp,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A run succeeded.
    RunSucceeded(RunReport),
    /// A run failed (its last attempt failed and no retry follows).
    RunFailed(RunReport),
    /// A run timed out (its last attempt did and no retry follows).
    RunTimedOut(RunReport),
    /// A run was cancelled.
    RunCancelled(RunReport),
    /// An attempt failed or timed out and another will follow.
    RunRetrying {
        /// The job.
        job: JobId,
        /// The occurrence.
        scheduled_at: Timestamp,
        /// The attempt that failed.
        failed_attempt: u32,
        /// How it ended.
        outcome: Outcome,
        /// Its error.
        error: Option<Arc<str>>,
        /// When the next attempt starts.
        retry_at: Timestamp,
    },
    /// Occurrences the misfire policy did not run.
    Missed {
        /// The job.
        job: JobId,
        /// The first missed occurrence.
        first: Timestamp,
        /// The last missed occurrence.
        last: Timestamp,
        /// How many (at least; very long gaps are counted up to a bound).
        count: u64,
    },
    /// An occurrence that was due but not run.
    Skipped {
        /// The job.
        job: JobId,
        /// The occurrence.
        scheduled_at: Timestamp,
        /// Why.
        reason: SkipReason,
    },
    /// A job ended (trigger exhausted or `max_runs` reached) with this status.
    JobFinished {
        /// The job.
        job: JobId,
        /// [`JobStatus::Completed`] or [`JobStatus::Failed`].
        status: JobStatus,
    },
    /// A job was cancelled.
    JobCancelled {
        /// The job.
        job: JobId,
    },
}

impl Event {
    /// The job the event is about.
    pub fn job(&self) -> JobId {
        match self {
            Event::RunStarted { job, .. }
            | Event::RunRetrying { job, .. }
            | Event::Missed { job, .. }
            | Event::Skipped { job, .. }
            | Event::JobFinished { job, .. }
            | Event::JobCancelled { job } => *job,
            Event::RunSucceeded(r)
            | Event::RunFailed(r)
            | Event::RunTimedOut(r)
            | Event::RunCancelled(r) => r.job,
        }
    }

    /// The final report, for the four run-end events.
    pub fn report(&self) -> Option<&RunReport> {
        match self {
            Event::RunSucceeded(r)
            | Event::RunFailed(r)
            | Event::RunTimedOut(r)
            | Event::RunCancelled(r) => Some(r),
            _ => None,
        }
    }
}
