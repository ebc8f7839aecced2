//! The persistence hook: what the scheduler tells a store, and when.

use jiff::Timestamp;
use myrmex_core::{JobId, JobSnapshot, JobStatus, Outcome, RunReport, SkipReason};

/// The error a journal returns.
pub type JournalError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Receives every state change the persistence model needs, synchronously, on
/// the scheduler thread, in order. Every method defaults to doing nothing.
///
/// The words are those of the persistence model: an **occurrence** is
/// `(job, scheduled_at)`; it becomes a **run**, executed in **attempts**; a job's
/// **watermark** is its next occurrence not yet turned into a run.
///
/// Guarantees:
/// - [`Journal::occurrence_fired`] is called before the first attempt's handler
///   starts. If it fails, the attempt does not start and is recorded as failed
///   (the job's retry policy applies), and the error is logged.
/// - Failures of the other methods are logged with `tracing` and do not stop the
///   scheduler.
/// - Jobs added with `Scheduler::restore` are not reported to
///   [`Journal::job_added`] (the store already has them).
///
/// Keep the methods fast (group writes, e.g. a writer thread): the scheduler
/// waits for them.
pub trait Journal: Send + 'static {
    /// Whether this journal records anything. The scheduler skips building the
    /// snapshots it would pass when this is `false`. Default: `true`.
    fn enabled(&self) -> bool {
        true
    }

    /// A job was added (its trigger resolved: zones and anchors filled in).
    ///
    /// # Errors
    /// Any store error.
    fn job_added(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        let _ = job;
        Ok(())
    }

    /// A job's definition or held state changed (paused, resumed, blocked,
    /// unblocked, rescheduled).
    ///
    /// # Errors
    /// Any store error.
    fn job_changed(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        let _ = job;
        Ok(())
    }

    /// A job ended: cancelled ([`JobStatus::Cancelled`]) or finished
    /// ([`JobStatus::Completed`] / [`JobStatus::Failed`]).
    ///
    /// # Errors
    /// Any store error.
    fn job_removed(&mut self, job: JobId, status: JobStatus) -> Result<(), JournalError> {
        let _ = (job, status);
        Ok(())
    }

    /// An occurrence became a run; the job's watermark moves to `watermark`.
    /// Called before the handler starts.
    ///
    /// # Errors
    /// Any store error (the attempt is then not started).
    fn occurrence_fired(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        watermark: Option<Timestamp>,
    ) -> Result<(), JournalError> {
        let _ = (job, scheduled_at, watermark);
        Ok(())
    }

    /// The misfire policy dropped `count` occurrences from `first` to `last`.
    ///
    /// # Errors
    /// Any store error.
    fn occurrences_missed(
        &mut self,
        job: JobId,
        first: Timestamp,
        last: Timestamp,
        count: u64,
    ) -> Result<(), JournalError> {
        let _ = (job, first, last, count);
        Ok(())
    }

    /// An occurrence was due but not run (overlap policy, `max_runs`).
    ///
    /// # Errors
    /// Any store error.
    fn occurrence_skipped(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        reason: SkipReason,
    ) -> Result<(), JournalError> {
        let _ = (job, scheduled_at, reason);
        Ok(())
    }

    /// An attempt is about to start (`attempt` is the fencing token).
    ///
    /// # Errors
    /// Any store error.
    fn attempt_started(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        attempt: u32,
    ) -> Result<(), JournalError> {
        let _ = (job, scheduled_at, attempt);
        Ok(())
    }

    /// An attempt failed or timed out and the run waits for a retry at `retry_at`.
    ///
    /// # Errors
    /// Any store error.
    fn attempt_failed(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        attempt: u32,
        outcome: Outcome,
        error: Option<&str>,
        retry_at: Timestamp,
    ) -> Result<(), JournalError> {
        let _ = (job, scheduled_at, attempt, outcome, error, retry_at);
        Ok(())
    }

    /// A run ended for good.
    ///
    /// # Errors
    /// Any store error.
    fn run_finished(&mut self, report: &RunReport) -> Result<(), JournalError> {
        let _ = report;
        Ok(())
    }
}

/// The default journal: records nothing.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoJournal;

impl Journal for NoJournal {
    fn enabled(&self) -> bool {
        false
    }
}
