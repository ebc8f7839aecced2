//! The [`Store`] trait.

use jiff::{SignedDuration, Timestamp};

use crate::error::{StoreError, StoreResult};
use crate::ops::{
    ClaimedRun, CompleteOutcome, Completion, JobPatch, Materialization, MaterializeOutcome,
    Retention, RunFilter, StartOutcome, UpsertOutcome, WriteOp, WriteOutput,
};
use crate::record::{
    Attempt, AttemptRecord, JobId, JobRecord, OccurrenceKey, RunDepRecord, RunId, RunRecord,
};

/// Durable (or in-memory) storage of jobs, runs and attempts, shaped on the persistence
/// model: a job carries a **watermark** (the earliest fire not yet materialized); each
/// occurrence `(job, scheduled_at, stage)` becomes exactly one run; every execution is an
/// **attempt** whose number is a **fencing token**; a running run carries a **lease**.
///
/// # Writes and transactions
///
/// Every write goes through [`Store::apply`]: the ops of one call are committed together
/// (one transaction, one fsync), each op atomically on its own (a failing op leaves no
/// trace and does not affect the others). The single-op methods are shorthands for a
/// one-op `apply`. Backends may additionally group concurrent callers' ops into one commit
/// (SQLite does); the guarantees are the same.
///
/// When a write returns `Ok`, it is durable to the backend's promise (`synchronous=FULL`
/// for SQLite, fsync+rename for the JSON file, nothing for memory).
///
/// # Time
///
/// Every write takes `now` from the caller: the store never reads a clock, so tests run on
/// a manual clock. A store with its own authoritative clock (PostgreSQL's `now()`) may use
/// that instead for lease and due comparisons, as the cluster design requires.
///
/// # Errors
///
/// Missing jobs/runs, invalid requests and I/O or backend failures are [`StoreError`]s.
/// The races the model expects — a watermark that moved, a stale attempt — are typed
/// outcomes ([`MaterializeOutcome::WatermarkMoved`], [`CompleteOutcome::Fenced`],
/// [`StartOutcome::NotClaimable`]), never errors.
pub trait Store: Send + Sync {
    /// Applies `ops` in one transaction and returns one result per op, in order.
    ///
    /// Each op is atomic: on `Err` for an op, nothing of that op was written, and the other
    /// ops are unaffected. The outer `Err` means the whole batch failed (nothing of it was
    /// written, e.g. the commit or fsync failed, or the store is closed).
    fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>>;

    /// One job, if stored.
    fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>>;

    /// Every job, ordered by id.
    fn list_jobs(&self) -> StoreResult<Vec<JobRecord>>;

    /// One run by number, if stored.
    fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>>;

    /// The run of an occurrence, if materialized.
    fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>>;

    /// Runs matching `filter`, ordered by `(scheduled_at, stage, id)`.
    fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>>;

    /// The attempt history of a run, oldest first.
    fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>>;

    /// The dependency edges on which `run` waits (it is their `run`).
    fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>>;

    /// Flushes and releases the store's resources (joins a writer thread). Later calls fail
    /// with [`StoreError::Closed`]. Closing twice is not an error.
    ///
    /// # Errors
    ///
    /// If pending writes could not be committed or a thread could not be joined.
    fn close(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Inserts or replaces a job (definition and state, as given).
    ///
    /// Guarantee: on update the store keeps `created_at`, and bumps `def_version` iff the
    /// definition differs from the stored one (the given `def_version` is ignored). Existing
    /// runs are not touched.
    fn upsert_job(&self, job: JobRecord) -> StoreResult<UpsertOutcome> {
        match one(self, WriteOp::UpsertJob(Box::new(job)))? {
            WriteOutput::Upserted(o) => Ok(o),
            other => Err(mismatch("upsert_job", &other)),
        }
    }

    /// Deletes a job with its runs, their attempts and dependency edges. Runs of other jobs
    /// waiting on its unfinished runs are resolved as if those were cancelled. Returns
    /// whether the job existed.
    fn delete_job(&self, job: &JobId, now: Timestamp) -> StoreResult<bool> {
        match one(
            self,
            WriteOp::DeleteJob {
                job: job.clone(),
                now,
            },
        )? {
            WriteOutput::Deleted(b) => Ok(b),
            other => Err(mismatch("delete_job", &other)),
        }
    }

    /// Changes a job's paused flag and/or status.
    ///
    /// # Errors
    ///
    /// [`StoreError::JobNotFound`].
    fn update_job(&self, job: &JobId, patch: JobPatch, now: Timestamp) -> StoreResult<()> {
        match one(
            self,
            WriteOp::UpdateJob {
                job: job.clone(),
                patch,
                now,
            },
        )? {
            WriteOutput::Updated => Ok(()),
            other => Err(mismatch("update_job", &other)),
        }
    }

    /// Turns fires into runs and moves the watermark, in one transaction.
    ///
    /// Guarantees:
    /// * With [`WatermarkUpdate::Cas`](crate::WatermarkUpdate::Cas), nothing is written unless
    ///   the stored watermark equals `expected`; otherwise the outcome is
    ///   [`MaterializeOutcome::WatermarkMoved`].
    /// * Each occurrence key holds at most one run: an occurrence that already has a run is
    ///   left alone and reported in `existing` (so repeating a materialization is harmless).
    /// * A run with unfinished dependencies starts blocked with `pending_deps` set; one whose
    ///   `AllSuccess` upstream already ended without success starts skipped; one whose
    ///   dependencies are all met starts pending.
    ///
    /// # Errors
    ///
    /// [`StoreError::JobNotFound`]; [`StoreError::OccurrenceNotFound`] for a dependency on an
    /// occurrence that has no run; [`StoreError::Invalid`] for a watermark moving backwards,
    /// a duplicated key in the request, or an edge whose `run` is not in the request.
    fn materialize(&self, m: Materialization) -> StoreResult<MaterializeOutcome> {
        match one(self, WriteOp::Materialize(Box::new(m)))? {
            WriteOutput::Materialized(o) => Ok(o),
            other => Err(mismatch("materialize", &other)),
        }
    }

    /// Starts a new attempt of a claimable run (pending, retry-wait or interrupted),
    /// whatever its `available_at` (the caller decided it is time).
    ///
    /// Guarantee: the attempt number is incremented (the new fencing token), the run becomes
    /// running with a lease `owner` until `now + lease_ttl`, and an attempt record is
    /// appended — all in one transaction. A run that is not claimable is left alone and the
    /// outcome is [`StartOutcome::NotClaimable`], so two starters never both win.
    ///
    /// # Errors
    ///
    /// [`StoreError::RunNotFound`].
    fn start_attempt(
        &self,
        run: RunId,
        owner: &str,
        now: Timestamp,
        lease_ttl: SignedDuration,
    ) -> StoreResult<StartOutcome> {
        match one(
            self,
            WriteOp::StartAttempt {
                run,
                owner: owner.to_owned(),
                now,
                lease_ttl,
            },
        )? {
            WriteOutput::Started(o) => Ok(o),
            other => Err(mismatch("start_attempt", &other)),
        }
    }

    /// [`Store::start_attempt`] for the run of an occurrence. Useful in the same
    /// [`Store::apply`] batch as the [`Store::materialize`] that creates the run, so that
    /// firing and starting cost one commit.
    ///
    /// # Errors
    ///
    /// [`StoreError::OccurrenceNotFound`].
    fn start_occurrence(
        &self,
        key: &OccurrenceKey,
        owner: &str,
        now: Timestamp,
        lease_ttl: SignedDuration,
    ) -> StoreResult<StartOutcome> {
        match one(
            self,
            WriteOp::StartOccurrence {
                key: key.clone(),
                owner: owner.to_owned(),
                now,
                lease_ttl,
            },
        )? {
            WriteOutput::Started(o) => Ok(o),
            other => Err(mismatch("start_occurrence", &other)),
        }
    }

    /// Claims up to `limit` due runs for `owner`: first expires lapsed leases (as
    /// [`Store::expire_leases`]), then takes claimable runs with `available_at <= now`,
    /// oldest `available_at` first (interrupted runs included, so rescue is never starved).
    /// Each claimed run is started as by [`Store::start_attempt`].
    fn claim_due(
        &self,
        owner: &str,
        now: Timestamp,
        lease_ttl: SignedDuration,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedRun>> {
        match one(
            self,
            WriteOp::ClaimDue {
                owner: owner.to_owned(),
                now,
                lease_ttl,
                limit,
            },
        )? {
            WriteOutput::Claimed(c) => Ok(c),
            other => Err(mismatch("claim_due", &other)),
        }
    }

    /// Extends the leases of `runs` held by `owner` to `now + lease_ttl`.
    ///
    /// Guarantee: only a run that is running under exactly that attempt and owner is
    /// renewed; the returned ids are the renewed ones. A run missing from the answer was lost
    /// (reclaimed or cancelled): its worker must stop and must not expect its completion to
    /// be accepted.
    fn renew_leases(
        &self,
        owner: &str,
        runs: &[(RunId, Attempt)],
        now: Timestamp,
        lease_ttl: SignedDuration,
    ) -> StoreResult<Vec<RunId>> {
        match one(
            self,
            WriteOp::RenewLeases {
                owner: owner.to_owned(),
                runs: runs.to_vec(),
                now,
                lease_ttl,
            },
        )? {
            WriteOutput::Renewed(r) => Ok(r),
            other => Err(mismatch("renew_leases", &other)),
        }
    }

    /// Records the end of an attempt.
    ///
    /// Guarantees:
    /// * **Fencing**: accepted only if `attempt` is the run's current attempt and the run is
    ///   running (or was marked interrupted with that same attempt, i.e. nobody reclaimed it
    ///   since). Otherwise nothing is written and the outcome is [`CompleteOutcome::Fenced`].
    ///   An expired lease alone does not refuse a completion; only a newer attempt does.
    /// * The attempt record, the run's new state (succeeded; retry-wait if `retry_at` is set
    ///   and attempts remain; failed; cancelled), the job's run count, and the release of
    ///   dependent runs (pending when their last dependency is met; skipped, transitively,
    ///   when an `AllSuccess` upstream ended without success) are written in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::RunNotFound`]; [`StoreError::Invalid`] for an `Interrupted` outcome
    /// (that is [`Store::recover_interrupted`]'s job).
    fn complete(
        &self,
        run: RunId,
        attempt: Attempt,
        completion: Completion,
        now: Timestamp,
    ) -> StoreResult<CompleteOutcome> {
        match one(
            self,
            WriteOp::Complete {
                run,
                attempt,
                completion,
                now,
            },
        )? {
            WriteOutput::Completed(o) => Ok(o),
            other => Err(mismatch("complete", &other)),
        }
    }

    /// Cancels a run that has not ended (its dependents resolve as for a failure). Returns
    /// false, writing nothing, if it already ended.
    ///
    /// # Errors
    ///
    /// [`StoreError::RunNotFound`].
    fn cancel_run(&self, run: RunId, reason: &str, now: Timestamp) -> StoreResult<bool> {
        match one(
            self,
            WriteOp::CancelRun {
                run,
                reason: reason.to_owned(),
                now,
            },
        )? {
            WriteOutput::Cancelled(b) => Ok(b),
            other => Err(mismatch("cancel_run", &other)),
        }
    }

    /// Start-up recovery for a single-process store: every run still marked running belongs
    /// to a dead process. Each becomes interrupted (claimable again, same attempt number) —
    /// or dead, with its dependents resolved, if its attempts are exhausted — and its
    /// attempt record gets the outcome interrupted. Returns those runs as they are now.
    ///
    /// Call it only when no other process uses the store; a shared store uses
    /// [`Store::expire_leases`].
    fn recover_interrupted(&self, now: Timestamp) -> StoreResult<Vec<RunRecord>> {
        match one(self, WriteOp::RecoverInterrupted { now })? {
            WriteOutput::Recovered(r) => Ok(r),
            other => Err(mismatch("recover_interrupted", &other)),
        }
    }

    /// Like [`Store::recover_interrupted`], but only for running runs whose lease expired
    /// before `now` (the worker is presumed gone).
    fn expire_leases(&self, now: Timestamp) -> StoreResult<Vec<RunRecord>> {
        match one(self, WriteOp::ExpireLeases { now })? {
            WriteOutput::Recovered(r) => Ok(r),
            other => Err(mismatch("expire_leases", &other)),
        }
    }

    /// Deletes terminal runs (with their attempts and edges) beyond `retention`. Runs that
    /// have not ended are never pruned. Returns how many runs were deleted.
    fn prune(&self, retention: Retention, now: Timestamp) -> StoreResult<usize> {
        match one(self, WriteOp::Prune { retention, now })? {
            WriteOutput::Pruned(n) => Ok(n),
            other => Err(mismatch("prune", &other)),
        }
    }
}

fn one<S: Store + ?Sized>(store: &S, op: WriteOp) -> StoreResult<WriteOutput> {
    let name = op.name();
    let mut results = store.apply(vec![op])?;
    match results.pop() {
        Some(r) if results.is_empty() => r,
        _ => Err(StoreError::Backend {
            backend: "store",
            op: name,
            message: "apply returned a result count different from the op count".into(),
            source: None,
        }),
    }
}

fn mismatch(op: &'static str, got: &WriteOutput) -> StoreError {
    StoreError::Backend {
        backend: "store",
        op,
        message: format!("apply returned a mismatched output: {got:?}"),
        source: None,
    }
}

/// Forwards every [`Store`] method through a smart pointer, so an `Arc<S>` or a
/// `Box<dyn Store>` is a store too.
macro_rules! forward_store {
    ($($ptr:ty),+) => {$(
        impl<S: Store + ?Sized> Store for $ptr {
            fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>> {
                (**self).apply(ops)
            }
            fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>> {
                (**self).get_job(job)
            }
            fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
                (**self).list_jobs()
            }
            fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>> {
                (**self).get_run(run)
            }
            fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
                (**self).find_run(key)
            }
            fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
                (**self).list_runs(filter)
            }
            fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
                (**self).attempts(run)
            }
            fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
                (**self).upstream_deps(run)
            }
            fn close(&self) -> StoreResult<()> {
                (**self).close()
            }
        }
    )+};
}

forward_store!(std::sync::Arc<S>, Box<S>);
