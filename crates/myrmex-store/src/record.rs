//! Record types: what a store keeps, as plain serde data.
//!
//! These types are deliberately separate from the scheduler's own types (`myrmex-core`):
//! a store must be able to read what an older (or newer, within a format version) build
//! wrote, so the persisted shape changes only together with [`RECORD_FORMAT_VERSION`].
//! Glue code in the `myrmex` crate converts between the two.

use std::fmt;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// The version of the record shapes in this module.
///
/// Persisted formats (the JSON file's `format_version`, the SQLite schema version) are
/// bumped when these shapes change incompatibly; readers refuse versions they do not know.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// The identity of a job: its unique, user-chosen name.
///
/// A name (rather than a number handed out by the store) is stable across stores,
/// restarts and nodes, and is what the occurrence key is built from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub String);

impl JobId {
    /// Creates a job id from a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The job's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for JobId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// The store-assigned number of a run (a surrogate key; the natural key is the
/// [`OccurrenceKey`]). Numbers increase in insertion order and are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "run#{}", self.0)
    }
}

/// An attempt number: 1 for the first execution of a run, +1 on every claim.
///
/// It is the **fencing token**: a store accepts a completion or lease renewal only from the
/// run's current attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Attempt(pub u32);

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "attempt {}", self.0)
    }
}

/// The idempotency key of an occurrence: `(job, scheduled_at, stage)`.
///
/// `scheduled_at` is the nominal UTC instant computed from the trigger (not the time the
/// run actually started). `stage` is empty for plain jobs and names the stage for
/// pipeline runs. A store holds at most one run per key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct OccurrenceKey {
    /// The job this occurrence belongs to.
    pub job: JobId,
    /// The nominal instant of the occurrence.
    pub scheduled_at: Timestamp,
    /// The pipeline stage, or `""` for a plain job.
    #[serde(default)]
    pub stage: String,
}

impl OccurrenceKey {
    /// The key of a plain (non-pipeline) occurrence.
    pub fn new(job: impl Into<JobId>, scheduled_at: Timestamp) -> Self {
        Self {
            job: job.into(),
            scheduled_at,
            stage: String::new(),
        }
    }

    /// The key of one stage of a pipeline occurrence.
    pub fn with_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = stage.into();
        self
    }
}

impl From<String> for JobId {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl fmt::Display for OccurrenceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.stage.is_empty() {
            write!(f, "{}@{}", self.job, self.scheduled_at)
        } else {
            write!(f, "{}@{}/{}", self.job, self.scheduled_at, self.stage)
        }
    }
}

/// A trigger, as data: enough to rebuild the scheduler's trigger after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum TriggerSpec {
    /// Fires once at an instant.
    Once {
        /// The instant.
        at: Timestamp,
    },
    /// Fires once at a civil date and time in a zone.
    OnceLocal {
        /// The wall-clock date and time (`"2026-03-29T02:30:00"`).
        datetime: String,
        /// The zone (an IANA name such as `"Europe/Berlin"`, or a fixed offset).
        zone: String,
        /// The DST disambiguation policy's name (`None`: the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst: Option<String>,
    },
    /// Fires every `every`, on the grid `anchor + k·every` (never drifting).
    Interval {
        /// The period.
        every: SignedDuration,
        /// The grid's origin; the first fire is the first grid point at or after `start`.
        anchor: Timestamp,
        /// No fire before this instant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<Timestamp>,
        /// No fire after this instant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<Timestamp>,
    },
    /// Fires on a cron expression evaluated in a time zone.
    Cron {
        /// The cron expression, as written.
        expr: String,
        /// The IANA zone name (`"UTC"`, `"Europe/Berlin"`).
        zone: String,
        /// The DST policy's name (`None`: the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst: Option<String>,
    },
    /// A calendar recurrence in a zone ("every 2 weeks on MON,THU at 09:30 until 2027-01-01").
    Recurrence {
        /// How many units between fires.
        every: u32,
        /// The unit.
        unit: RecurrenceUnit,
        /// The wall-clock time of day (`"HH:MM"` or `"HH:MM:SS"`), if fixed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<String>,
        /// The weekdays it is limited to (`"MON"`..`"SUN"`); empty means any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        weekdays: Vec<String>,
        /// The recurrence's start, as a civil date and time in the zone
        /// (`"2026-01-05T09:30:00"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        /// The last civil date on which it may fire (`"YYYY-MM-DD"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// The IANA zone name.
        zone: String,
        /// The DST disambiguation policy's name (`None`: the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst: Option<String>,
    },
    /// Fires whenever any of its triggers fires.
    Union {
        /// The triggers.
        triggers: Vec<TriggerSpec>,
    },
    /// Never fires on its own; runs only when asked (or when its dependencies release it).
    Manual,
}

/// The unit of a [`TriggerSpec::Recurrence`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecurrenceUnit {
    /// Seconds.
    Seconds,
    /// Minutes.
    Minutes,
    /// Hours.
    Hours,
    /// Calendar days in the zone.
    Days,
    /// Calendar weeks in the zone.
    Weeks,
}

/// What to do with fires missed by more than the grace period (a stall, a suspend, a
/// process that was down).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MisfireSpec {
    /// How late a fire may start and still count as on time.
    pub grace: SignedDuration,
    /// What happens to fires later than that.
    pub action: MisfireAction,
}

impl Default for MisfireSpec {
    fn default() -> Self {
        Self {
            grace: SignedDuration::from_secs(60),
            action: MisfireAction::RunOnce,
        }
    }
}

/// The behaviour of a misfire policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MisfireAction {
    /// Run the newest missed fire once; the others are recorded as skipped.
    RunOnce,
    /// Run every missed fire, oldest first, up to `max_catchup`; the rest are skipped.
    RunAll {
        /// The cap on catch-up runs.
        max_catchup: u32,
    },
    /// Run none of the missed fires; they are recorded as skipped.
    Skip,
}

/// What to do when a fire comes while an earlier run of the same job is still active.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverlapSpec {
    /// Skip the new fire (recorded as skipped). The default.
    #[default]
    Skip,
    /// Keep at most one waiting fire; further ones are skipped.
    QueueOne,
    /// Allow up to `max_concurrent` runs at once.
    Allow {
        /// The concurrency cap.
        max_concurrent: u32,
    },
}

/// How failed attempts are retried.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrySpec {
    /// The maximum number of attempts, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The delay before each retry.
    pub backoff: BackoffSpec,
    /// The bound of a random delay added to each retry delay (zero: none).
    #[serde(default, skip_serializing_if = "SignedDuration::is_zero")]
    pub jitter: SignedDuration,
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            max_attempts: 1,
            backoff: BackoffSpec::Fixed {
                delay: SignedDuration::from_secs(1),
            },
            jitter: SignedDuration::ZERO,
        }
    }
}

/// A backoff between retries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum BackoffSpec {
    /// The same delay before every retry.
    Fixed {
        /// The delay.
        delay: SignedDuration,
    },
    /// `base · 2^(attempt-1)`, capped at `max`.
    Exponential {
        /// The first delay.
        base: SignedDuration,
        /// The cap.
        max: SignedDuration,
    },
}

/// A job's policies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySpec {
    /// The misfire policy.
    #[serde(default)]
    pub misfire: MisfireSpec,
    /// The overlap policy.
    #[serde(default)]
    pub overlap: OverlapSpec,
    /// The retry policy.
    #[serde(default)]
    pub retry: RetrySpec,
    /// The per-attempt time limit, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<SignedDuration>,
    /// The bound of a random delay added to each fire, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<SignedDuration>,
    /// The most runs the job may ever make, if bounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runs: Option<u64>,
    /// How many finished runs the scheduler keeps in memory for the job (`None`: its
    /// default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<u32>,
    /// Whether the scheduler keeps the job listed after it finished (its trigger is
    /// exhausted) instead of removing it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_finished: bool,
}

/// What a dependency edge requires of its upstream run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DependencyRule {
    /// The upstream must have succeeded; if it ends otherwise, the waiting run is skipped.
    #[default]
    AllSuccess,
    /// The upstream must merely have finished, whatever its outcome.
    AllDone,
}

/// A job-level dependency: this job waits on another job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencySpec {
    /// The upstream job.
    pub job: JobId,
    /// What is required of it.
    #[serde(default)]
    pub rule: DependencyRule,
}

/// A job's definition: everything the user declared.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobDefinition {
    /// When it fires.
    pub trigger: TriggerSpec,
    /// The name under which its handler is registered.
    pub handler: String,
    /// The handler's arguments.
    #[serde(default)]
    pub args: serde_json::Value,
    /// Its policies.
    #[serde(default)]
    pub policies: PolicySpec,
    /// The jobs it waits on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<DependencySpec>,
}

/// The lifecycle status of a job as the scheduler last reported it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobStatus {
    /// Scheduled, waiting for its next fire.
    #[default]
    Pending,
    /// A run is executing.
    Running,
    /// No fire is left (a finished one-shot or bounded job).
    Completed,
    /// Its last run failed.
    Failed,
    /// Cancelled by the user.
    Cancelled,
    /// Paused by the user.
    Paused,
}

impl JobStatus {
    /// The status's stable lowercase name (as persisted).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Paused => "paused",
        }
    }

    /// Parses [`JobStatus::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            "paused" => Self::Paused,
            _ => return None,
        })
    }
}

/// A job's mutable state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// The **watermark**: the earliest fire time not yet turned into a run (`None` when the
    /// trigger has no fire left). It only moves forward, by compare-and-set in
    /// [`Store::materialize`](crate::Store::materialize).
    pub watermark: Option<Timestamp>,
    /// The latest occurrence materialized, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_fired_at: Option<Timestamp>,
    /// How many runs of this job finished after executing (succeeded, failed or dead).
    #[serde(default)]
    pub run_count: u64,
    /// The status last reported by the scheduler.
    #[serde(default)]
    pub status: JobStatus,
    /// Whether the job is paused (it does not fire while paused).
    #[serde(default)]
    pub paused: bool,
}

/// A stored job: definition, state and bookkeeping.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Its identity (name).
    pub id: JobId,
    /// What the user declared.
    pub definition: JobDefinition,
    /// Its state.
    pub state: JobState,
    /// Bumped by the store whenever the definition changes (starts at 1).
    #[serde(default = "one")]
    pub def_version: u64,
    /// When it was first stored.
    pub created_at: Timestamp,
    /// When it was last written.
    pub updated_at: Timestamp,
}

fn one() -> u64 {
    1
}

impl JobRecord {
    /// A new record with a fresh state: the watermark is `first_fire`, nothing has run.
    pub fn new(
        id: impl Into<JobId>,
        definition: JobDefinition,
        first_fire: Option<Timestamp>,
        now: Timestamp,
    ) -> Self {
        Self {
            id: id.into(),
            definition,
            state: JobState {
                watermark: first_fire,
                ..JobState::default()
            },
            def_version: 1,
            created_at: now,
            updated_at: now,
        }
    }
}

/// The state of a run. See the persistence model for the transitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunState {
    /// Waiting on dependencies (or on an overlap policy's predecessor).
    Blocked,
    /// Ready to be claimed once `available_at` is reached.
    Pending,
    /// Claimed: an attempt is executing under a lease.
    Running,
    /// The last attempt failed; it may be claimed again from `available_at`.
    RetryWait,
    /// Finished successfully (terminal).
    Succeeded,
    /// The final attempt failed (terminal).
    Failed,
    /// Attempts exhausted by crashes or expired leases (terminal).
    Dead,
    /// Not executed by decision of a misfire/overlap policy or a failed dependency (terminal).
    Skipped,
    /// Cancelled (terminal).
    Cancelled,
    /// Its attempt's process died (or its lease expired); it may be claimed again.
    Interrupted,
}

impl RunState {
    /// All states, for tables and tests.
    pub const ALL: [RunState; 10] = [
        Self::Blocked,
        Self::Pending,
        Self::Running,
        Self::RetryWait,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
        Self::Skipped,
        Self::Cancelled,
        Self::Interrupted,
    ];

    /// Whether the run has ended for good.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Succeeded | Self::Failed | Self::Dead | Self::Skipped | Self::Cancelled
        )
    }

    /// Whether a new attempt may be started from this state.
    pub fn is_claimable(self) -> bool {
        matches!(self, Self::Pending | Self::RetryWait | Self::Interrupted)
    }

    /// The state's stable snake_case name (as persisted).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Blocked => "blocked",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::RetryWait => "retry_wait",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Parses [`RunState::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run exists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RunOrigin {
    /// A regular fire of the trigger.
    #[default]
    Schedule,
    /// A late fire let through by the misfire policy.
    Misfire,
    /// Filled in on request for past times.
    Backfill,
    /// Started by a user (`run_now`, API).
    Manual,
    /// Released by an upstream job's completion.
    After,
}

impl RunOrigin {
    /// The origin's stable snake_case name (as persisted).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Misfire => "misfire",
            Self::Backfill => "backfill",
            Self::Manual => "manual",
            Self::After => "after",
        }
    }

    /// Parses [`RunOrigin::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "schedule" => Self::Schedule,
            "misfire" => Self::Misfire,
            "backfill" => Self::Backfill,
            "manual" => Self::Manual,
            "after" => Self::After,
            _ => return None,
        })
    }
}

/// A lease on a running run: who executes it and until when the claim holds without renewal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The worker/process identity holding it.
    pub owner: String,
    /// When it lapses unless renewed.
    pub expires_at: Timestamp,
}

/// A stored run: one occurrence and its execution state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The store-assigned number.
    pub id: RunId,
    /// The occurrence it records.
    pub key: OccurrenceKey,
    /// Why it exists.
    pub origin: RunOrigin,
    /// The job definition version it was materialized from.
    pub def_version: u64,
    /// Its state.
    pub state: RunState,
    /// Not claimable before this instant (the fire time, or a retry's backoff).
    pub available_at: Timestamp,
    /// The current attempt (0 before the first claim): the fencing token.
    pub attempt: Attempt,
    /// The attempt budget.
    pub max_attempts: u32,
    /// How many upstream runs it still waits on (while [`RunState::Blocked`]).
    pub pending_deps: u32,
    /// The lease, while running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// When it was materialized.
    pub created_at: Timestamp,
    /// When its current (latest) attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    /// When it reached its current end state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// The last attempt's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// The last error message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The handler's result, if it returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
}

/// How one attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The handler returned success.
    Succeeded,
    /// The handler returned an error.
    Failed,
    /// The handler panicked.
    Panicked,
    /// The attempt exceeded its timeout.
    TimedOut,
    /// The attempt was cancelled.
    Cancelled,
    /// The process died (or the lease expired) during the attempt.
    Interrupted,
}

impl AttemptOutcome {
    /// The outcome's stable snake_case name (as persisted).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Panicked => "panicked",
            Self::TimedOut => "timed_out",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// Parses [`AttemptOutcome::as_str`]'s output.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "panicked" => Self::Panicked,
            "timed_out" => Self::TimedOut,
            "cancelled" => Self::Cancelled,
            "interrupted" => Self::Interrupted,
            _ => return None,
        })
    }
}

/// One attempt of a run (append-only history).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptRecord {
    /// The run.
    pub run: RunId,
    /// The attempt number.
    pub attempt: Attempt,
    /// The lease owner that executed it.
    pub owner: String,
    /// When it started.
    pub started_at: Timestamp,
    /// When it ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// How it ended, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    /// Its error message, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A dependency edge between runs: `run` waits on `upstream`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDepRecord {
    /// The waiting run.
    pub run: RunId,
    /// The run it waits on.
    pub upstream: RunId,
    /// What it requires of the upstream.
    pub rule: DependencyRule,
}
