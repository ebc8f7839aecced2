//! Write operations and their outcomes: the vocabulary of [`Store::apply`](crate::Store::apply).

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::record::{
    Attempt, AttemptOutcome, DependencyRule, JobId, JobRecord, JobStatus, OccurrenceKey, RunId,
    RunOrigin, RunRecord, RunState,
};

/// One write. A store applies each op atomically (all of it or none of it); a batch of ops
/// passed to [`Store::apply`](crate::Store::apply) is committed together (one fsync).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WriteOp {
    /// See [`Store::upsert_job`](crate::Store::upsert_job).
    UpsertJob(Box<JobRecord>),
    /// See [`Store::delete_job`](crate::Store::delete_job).
    DeleteJob {
        /// The job.
        job: JobId,
        /// The time of the deletion.
        now: Timestamp,
    },
    /// See [`Store::update_job`](crate::Store::update_job).
    UpdateJob {
        /// The job.
        job: JobId,
        /// What changes.
        patch: JobPatch,
        /// The time of the update.
        now: Timestamp,
    },
    /// See [`Store::materialize`](crate::Store::materialize).
    Materialize(Box<Materialization>),
    /// See [`Store::start_attempt`](crate::Store::start_attempt).
    StartAttempt {
        /// The run.
        run: RunId,
        /// The lease owner.
        owner: String,
        /// The time of the start.
        now: Timestamp,
        /// How long the lease holds without renewal.
        lease_ttl: SignedDuration,
    },
    /// See [`Store::start_occurrence`](crate::Store::start_occurrence).
    StartOccurrence {
        /// The occurrence whose run starts.
        key: OccurrenceKey,
        /// The lease owner.
        owner: String,
        /// The time of the start.
        now: Timestamp,
        /// How long the lease holds without renewal.
        lease_ttl: SignedDuration,
    },
    /// See [`Store::claim_due`](crate::Store::claim_due).
    ClaimDue {
        /// The lease owner.
        owner: String,
        /// The time of the claim.
        now: Timestamp,
        /// How long the leases hold without renewal.
        lease_ttl: SignedDuration,
        /// The most runs to claim.
        limit: usize,
    },
    /// See [`Store::renew_leases`](crate::Store::renew_leases).
    RenewLeases {
        /// The lease owner.
        owner: String,
        /// The runs and the attempts the owner believes it holds.
        runs: Vec<(RunId, Attempt)>,
        /// The time of the renewal.
        now: Timestamp,
        /// The new lease length from `now`.
        lease_ttl: SignedDuration,
    },
    /// See [`Store::complete`](crate::Store::complete).
    Complete {
        /// The run.
        run: RunId,
        /// The attempt reporting (the fencing token).
        attempt: Attempt,
        /// How the attempt ended.
        completion: Completion,
        /// The time of the completion.
        now: Timestamp,
    },
    /// See [`Store::cancel_run`](crate::Store::cancel_run).
    CancelRun {
        /// The run.
        run: RunId,
        /// Why, recorded as the run's error.
        reason: String,
        /// The time of the cancellation.
        now: Timestamp,
    },
    /// See [`Store::recover_interrupted`](crate::Store::recover_interrupted).
    RecoverInterrupted {
        /// The time of the recovery.
        now: Timestamp,
    },
    /// See [`Store::expire_leases`](crate::Store::expire_leases).
    ExpireLeases {
        /// The time of the check.
        now: Timestamp,
    },
    /// See [`Store::prune`](crate::Store::prune).
    Prune {
        /// What to keep.
        retention: Retention,
        /// The time of the pruning.
        now: Timestamp,
    },
}

impl WriteOp {
    /// The op's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::UpsertJob(_) => "upsert_job",
            Self::DeleteJob { .. } => "delete_job",
            Self::UpdateJob { .. } => "update_job",
            Self::Materialize(_) => "materialize",
            Self::StartAttempt { .. } => "start_attempt",
            Self::StartOccurrence { .. } => "start_occurrence",
            Self::ClaimDue { .. } => "claim_due",
            Self::RenewLeases { .. } => "renew_leases",
            Self::Complete { .. } => "complete",
            Self::CancelRun { .. } => "cancel_run",
            Self::RecoverInterrupted { .. } => "recover_interrupted",
            Self::ExpireLeases { .. } => "expire_leases",
            Self::Prune { .. } => "prune",
        }
    }
}

/// What a successful [`WriteOp`] produced (one variant per op).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum WriteOutput {
    /// From [`WriteOp::UpsertJob`].
    Upserted(UpsertOutcome),
    /// From [`WriteOp::DeleteJob`]: whether the job existed.
    Deleted(bool),
    /// From [`WriteOp::UpdateJob`].
    Updated,
    /// From [`WriteOp::Materialize`].
    Materialized(MaterializeOutcome),
    /// From [`WriteOp::StartAttempt`] and [`WriteOp::StartOccurrence`].
    Started(StartOutcome),
    /// From [`WriteOp::ClaimDue`].
    Claimed(Vec<ClaimedRun>),
    /// From [`WriteOp::RenewLeases`]: the runs whose lease was renewed.
    Renewed(Vec<RunId>),
    /// From [`WriteOp::Complete`].
    Completed(CompleteOutcome),
    /// From [`WriteOp::CancelRun`]: whether the run was cancelled (false if already terminal).
    Cancelled(bool),
    /// From [`WriteOp::RecoverInterrupted`] and [`WriteOp::ExpireLeases`]: the runs marked
    /// interrupted (or dead), as they are now.
    Recovered(Vec<RunRecord>),
    /// From [`WriteOp::Prune`]: how many runs were deleted.
    Pruned(usize),
}

/// How an upsert went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UpsertOutcome {
    /// The job is new.
    Inserted,
    /// The job existed; `def_version` is its definition version now (bumped if the
    /// definition changed).
    Updated {
        /// The current definition version.
        def_version: u64,
    },
}

/// A change to a job's state. `None` fields are left as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobPatch {
    /// Pause or resume.
    pub paused: Option<bool>,
    /// The status to record.
    pub status: Option<JobStatus>,
}

/// How the watermark moves in a materialization.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatermarkUpdate {
    /// Leave it (manual or backfill runs that are not part of the schedule).
    Keep,
    /// Compare-and-set: succeed only if the stored watermark equals `expected`.
    Cas {
        /// The watermark the caller computed the occurrences from.
        expected: Option<Timestamp>,
        /// The new watermark (must not be before `expected`; `None` = no fire left).
        new: Option<Timestamp>,
    },
}

/// A request to turn fires into runs: insert the runs and move the watermark, atomically.
#[derive(Clone, Debug, PartialEq)]
pub struct Materialization {
    /// The job.
    pub job: JobId,
    /// The watermark move.
    pub watermark: WatermarkUpdate,
    /// The runs to insert (keys `(job, scheduled_at, stage)`).
    pub runs: Vec<NewRun>,
    /// Dependency edges; each `run` must be one of `runs`, each `upstream` an existing run or
    /// one of `runs`.
    pub deps: Vec<NewDep>,
    /// The time of the materialization.
    pub now: Timestamp,
}

impl Materialization {
    /// A plain schedule tick: insert `runs` (all pending at their fire time) and move the
    /// watermark from `expected` to `new`.
    pub fn tick(
        job: impl Into<JobId>,
        expected: Option<Timestamp>,
        new: Option<Timestamp>,
        runs: Vec<NewRun>,
        now: Timestamp,
    ) -> Self {
        Self {
            job: job.into(),
            watermark: WatermarkUpdate::Cas { expected, new },
            runs,
            deps: Vec::new(),
            now,
        }
    }
}

/// The initial state of a materialized run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NewRunState {
    /// Claimable from `available_at` (becomes blocked if it has unfinished dependencies).
    Pending,
    /// Waiting on its dependency edges (becomes pending if they are all already met).
    Blocked,
    /// Recorded as not executed (misfire/overlap policy).
    Skipped,
}

/// One run to materialize.
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    /// The nominal fire time.
    pub scheduled_at: Timestamp,
    /// The stage (`""` for plain jobs).
    pub stage: String,
    /// Why it exists.
    pub origin: RunOrigin,
    /// Its initial state.
    pub state: NewRunState,
    /// Not claimable before this.
    pub available_at: Timestamp,
    /// The attempt budget.
    pub max_attempts: u32,
    /// A note (for skipped runs: why).
    pub note: Option<String>,
}

impl NewRun {
    /// A pending scheduled run available at its fire time, with one attempt.
    pub fn pending(scheduled_at: Timestamp) -> Self {
        Self {
            scheduled_at,
            stage: String::new(),
            origin: RunOrigin::Schedule,
            state: NewRunState::Pending,
            available_at: scheduled_at,
            max_attempts: 1,
            note: None,
        }
    }

    /// A run recorded as skipped, with the reason.
    pub fn skipped(scheduled_at: Timestamp, reason: impl Into<String>) -> Self {
        Self {
            state: NewRunState::Skipped,
            note: Some(reason.into()),
            ..Self::pending(scheduled_at)
        }
    }

    /// Sets the attempt budget.
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the origin.
    pub fn with_origin(mut self, origin: RunOrigin) -> Self {
        self.origin = origin;
        self
    }

    /// Sets the stage.
    pub fn with_stage(mut self, stage: impl Into<String>) -> Self {
        self.stage = stage.into();
        self
    }
}

/// A dependency edge between occurrences.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDep {
    /// The waiting occurrence (one of the materialization's runs).
    pub run: OccurrenceKey,
    /// The occurrence it waits on.
    pub upstream: OccurrenceKey,
    /// What it requires.
    pub rule: DependencyRule,
}

/// The outcome of a materialization.
#[derive(Clone, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum MaterializeOutcome {
    /// Committed: the watermark moved and the new runs were inserted.
    Committed {
        /// The runs inserted, as stored.
        inserted: Vec<RunRecord>,
        /// Occurrences that already had a run and were left alone (a repeated
        /// materialization; normally empty).
        existing: Vec<OccurrenceKey>,
    },
    /// The compare-and-set failed: the stored watermark is not the expected one (another
    /// process materialized first, or the job was edited). Nothing was written.
    WatermarkMoved {
        /// The watermark as stored.
        current: Option<Timestamp>,
    },
}

/// A run claimed for execution.
#[derive(Clone, Debug, PartialEq)]
pub struct ClaimedRun {
    /// The run as stored after the claim (state running, the new attempt, the lease).
    pub run: RunRecord,
    /// The attempt now owned: pass it back to [`Store::complete`](crate::Store::complete).
    pub attempt: Attempt,
}

/// The outcome of [`Store::start_attempt`](crate::Store::start_attempt).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum StartOutcome {
    /// The attempt started.
    Started(Box<ClaimedRun>),
    /// The run is not in a claimable state (already running, finished, blocked).
    NotClaimable {
        /// Its state.
        state: RunState,
        /// Its current attempt.
        attempt: Attempt,
    },
}

/// How an attempt ended, as reported to [`Store::complete`](crate::Store::complete).
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The outcome.
    pub outcome: AttemptOutcome,
    /// The error message, if it failed.
    pub error: Option<String>,
    /// The handler's result, if it returned one.
    pub result: Option<serde_json::Value>,
    /// For failures: when to retry, if the retry policy wants another attempt. The run goes
    /// to retry-wait only if attempts remain; otherwise it fails.
    pub retry_at: Option<Timestamp>,
}

impl Completion {
    /// A success.
    pub fn success() -> Self {
        Self {
            outcome: AttemptOutcome::Succeeded,
            error: None,
            result: None,
            retry_at: None,
        }
    }

    /// A failure (`outcome` is failed, panicked or timed out), retried at `retry_at` if set
    /// and attempts remain.
    pub fn failure(
        outcome: AttemptOutcome,
        error: impl Into<String>,
        retry_at: Option<Timestamp>,
    ) -> Self {
        Self {
            outcome,
            error: Some(error.into()),
            result: None,
            retry_at,
        }
    }

    /// Attaches a result.
    pub fn with_result(mut self, result: serde_json::Value) -> Self {
        self.result = Some(result);
        self
    }
}

/// The outcome of [`Store::complete`](crate::Store::complete).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
#[non_exhaustive]
pub enum CompleteOutcome {
    /// Recorded.
    Completed {
        /// The run's state now (succeeded, failed, retry-wait, cancelled).
        state: RunState,
        /// Dependent runs that became pending in the same transaction.
        released: Vec<RunId>,
        /// Dependent runs skipped because this run ended without success.
        skipped: Vec<RunId>,
    },
    /// Refused: the attempt is not the run's current one (a newer attempt claimed it), or
    /// the run is no longer running. Nothing was written.
    Fenced {
        /// The run's current attempt.
        current: Attempt,
        /// The run's state.
        state: RunState,
    },
}

/// What [`Store::prune`](crate::Store::prune) keeps. Only terminal runs are ever pruned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// Delete terminal runs that finished longer ago than this.
    pub max_age: Option<SignedDuration>,
    /// Keep at most this many terminal runs per job (the newest by scheduled time).
    pub max_per_job: Option<usize>,
}

/// A filter for [`Store::list_runs`](crate::Store::list_runs). Runs come back ordered by
/// `(scheduled_at, stage, id)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    /// Only this job's runs.
    pub job: Option<JobId>,
    /// Only runs in these states (empty = any).
    pub states: Vec<RunState>,
    /// Only runs scheduled at or after this.
    pub scheduled_from: Option<Timestamp>,
    /// Only runs scheduled before this.
    pub scheduled_before: Option<Timestamp>,
    /// At most this many (the earliest).
    pub limit: Option<usize>,
}

impl RunFilter {
    /// Every run.
    pub fn all() -> Self {
        Self::default()
    }

    /// One job's runs.
    pub fn job(job: impl Into<JobId>) -> Self {
        Self {
            job: Some(job.into()),
            ..Self::default()
        }
    }

    /// Restricts to states.
    pub fn in_states(mut self, states: impl IntoIterator<Item = RunState>) -> Self {
        self.states = states.into_iter().collect();
        self
    }

    /// Whether a run passes the filter (ignoring `limit`).
    pub fn matches(&self, run: &RunRecord) -> bool {
        self.job.as_ref().is_none_or(|j| *j == run.key.job)
            && (self.states.is_empty() || self.states.contains(&run.state))
            && self
                .scheduled_from
                .is_none_or(|t| run.key.scheduled_at >= t)
            && self
                .scheduled_before
                .is_none_or(|t| run.key.scheduled_at < t)
    }
}
