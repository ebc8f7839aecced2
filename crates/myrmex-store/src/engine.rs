//! The op semantics, written once over a minimal transaction interface ([`Tx`]).
//!
//! Single-writer backends (memory, the JSON file, SQLite) implement [`Tx`] with their own
//! primitives (maps, SQL statements inside a transaction) and call [`execute`] for each op,
//! so that every backend gives exactly the same answers. A backend shared by several
//! processes (PostgreSQL) needs row locks and `SKIP LOCKED` and implements
//! [`Store`](crate::Store) directly; the conformance suite checks it gives the same answers.
//!
//! Every op reads and validates everything it needs before its first write, so an op that
//! fails with a validation error has written nothing even on a backend without rollback.
//! Backend errors in the middle of an op must be rolled back by the backend (SQLite does it
//! with a savepoint per op).

use jiff::{SignedDuration, Timestamp};

use crate::error::{StoreError, StoreResult};
use crate::ops::{
    ClaimedRun, CompleteOutcome, Completion, JobPatch, Materialization, MaterializeOutcome,
    NewRunState, Retention, StartOutcome, UpsertOutcome, WatermarkUpdate, WriteOp, WriteOutput,
};
use crate::record::{
    Attempt, AttemptOutcome, AttemptRecord, DependencyRule, JobId, JobRecord, Lease, OccurrenceKey,
    RunDepRecord, RunId, RunRecord, RunState,
};

/// A query for sets of runs, answered by [`Tx::runs`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunQuery {
    /// Every run in state running.
    Running,
    /// Claimable runs (pending, retry-wait, interrupted) with `available_at <= now`, ordered
    /// by `(available_at, id)`, at most `limit`.
    ClaimableDue {
        /// The time of the claim.
        now: Timestamp,
        /// The most to return.
        limit: usize,
    },
    /// Every run of a job.
    OfJob(JobId),
    /// Every terminal run.
    Terminal,
}

/// The primitives a single-writer backend provides inside one transaction.
pub trait Tx {
    /// A job.
    fn job(&mut self, id: &JobId) -> StoreResult<Option<JobRecord>>;
    /// Inserts or replaces a job.
    fn put_job(&mut self, job: &JobRecord) -> StoreResult<()>;
    /// Applies a patch to a job's state; false if the job does not exist.
    fn patch_job(&mut self, id: &JobId, patch: &JobPatch, now: Timestamp) -> StoreResult<bool>;
    /// Adds `n` to a job's run count (no-op if the job is gone).
    fn add_run_count(&mut self, id: &JobId, n: u64, now: Timestamp) -> StoreResult<()>;
    /// Removes a job record (its runs are removed separately).
    fn remove_job(&mut self, id: &JobId) -> StoreResult<()>;
    /// A run by number.
    fn run(&mut self, id: RunId) -> StoreResult<Option<RunRecord>>;
    /// A run by occurrence key.
    fn run_by_key(&mut self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>>;
    /// Inserts a new run, assigning its number (the `id` field of `run` is ignored).
    fn insert_run(&mut self, run: &RunRecord) -> StoreResult<RunId>;
    /// Replaces an existing run.
    fn put_run(&mut self, run: &RunRecord) -> StoreResult<()>;
    /// Removes a run with its attempts and its dependency edges (both directions).
    fn remove_run(&mut self, id: RunId) -> StoreResult<()>;
    /// Runs answering a query.
    fn runs(&mut self, query: &RunQuery) -> StoreResult<Vec<RunRecord>>;
    /// Inserts a dependency edge.
    fn insert_dep(&mut self, dep: &RunDepRecord) -> StoreResult<()>;
    /// The edges waiting on `upstream`, ordered by waiting run.
    fn waiters(&mut self, upstream: RunId) -> StoreResult<Vec<RunDepRecord>>;
    /// One attempt record.
    fn attempt(&mut self, run: RunId, attempt: Attempt) -> StoreResult<Option<AttemptRecord>>;
    /// Inserts or replaces an attempt record.
    fn put_attempt(&mut self, attempt: &AttemptRecord) -> StoreResult<()>;
}

/// Executes one op against a transaction, with the semantics documented on
/// [`Store`](crate::Store).
///
/// # Errors
///
/// As documented on the corresponding `Store` method, plus the backend's own errors.
pub fn execute<T: Tx + ?Sized>(tx: &mut T, op: WriteOp) -> StoreResult<WriteOutput> {
    Ok(match op {
        WriteOp::UpsertJob(job) => WriteOutput::Upserted(upsert_job(tx, *job)?),
        WriteOp::DeleteJob { job, now } => WriteOutput::Deleted(delete_job(tx, &job, now)?),
        WriteOp::UpdateJob { job, patch, now } => {
            if !tx.patch_job(&job, &patch, now)? {
                return Err(StoreError::JobNotFound { job });
            }
            WriteOutput::Updated
        }
        WriteOp::Materialize(m) => WriteOutput::Materialized(materialize(tx, *m)?),
        WriteOp::StartAttempt {
            run,
            owner,
            now,
            lease_ttl,
        } => {
            let r = tx.run(run)?.ok_or(StoreError::RunNotFound { run })?;
            if r.state.is_claimable() {
                WriteOutput::Started(StartOutcome::Started(Box::new(start(
                    tx, r, &owner, now, lease_ttl,
                )?)))
            } else {
                WriteOutput::Started(StartOutcome::NotClaimable {
                    state: r.state,
                    attempt: r.attempt,
                })
            }
        }
        WriteOp::StartOccurrence {
            key,
            owner,
            now,
            lease_ttl,
        } => {
            let r = tx
                .run_by_key(&key)?
                .ok_or(StoreError::OccurrenceNotFound { key })?;
            if r.state.is_claimable() {
                WriteOutput::Started(StartOutcome::Started(Box::new(start(
                    tx, r, &owner, now, lease_ttl,
                )?)))
            } else {
                WriteOutput::Started(StartOutcome::NotClaimable {
                    state: r.state,
                    attempt: r.attempt,
                })
            }
        }
        WriteOp::ClaimDue {
            owner,
            now,
            lease_ttl,
            limit,
        } => {
            recover(tx, now, true)?;
            let due = tx.runs(&RunQuery::ClaimableDue { now, limit })?;
            let mut claimed = Vec::with_capacity(due.len());
            for r in due {
                claimed.push(start(tx, r, &owner, now, lease_ttl)?);
            }
            WriteOutput::Claimed(claimed)
        }
        WriteOp::RenewLeases {
            owner,
            runs,
            now,
            lease_ttl,
        } => {
            let expires_at = add(now, lease_ttl, "renew_leases")?;
            let mut renewed = Vec::new();
            for (id, attempt) in runs {
                let Some(mut r) = tx.run(id)? else { continue };
                let owned = r.state == RunState::Running
                    && r.attempt == attempt
                    && r.lease.as_ref().is_some_and(|l| l.owner == owner);
                if owned {
                    r.lease = Some(Lease {
                        owner: owner.clone(),
                        expires_at,
                    });
                    tx.put_run(&r)?;
                    renewed.push(id);
                }
            }
            WriteOutput::Renewed(renewed)
        }
        WriteOp::Complete {
            run,
            attempt,
            completion,
            now,
        } => WriteOutput::Completed(complete(tx, run, attempt, completion, now)?),
        WriteOp::CancelRun { run, reason, now } => {
            let mut r = tx.run(run)?.ok_or(StoreError::RunNotFound { run })?;
            if r.state.is_terminal() {
                WriteOutput::Cancelled(false)
            } else {
                cancel(tx, &mut r, &reason, now)?;
                WriteOutput::Cancelled(true)
            }
        }
        WriteOp::RecoverInterrupted { now } => WriteOutput::Recovered(recover(tx, now, false)?),
        WriteOp::ExpireLeases { now } => WriteOutput::Recovered(recover(tx, now, true)?),
        WriteOp::Prune { retention, now } => WriteOutput::Pruned(prune(tx, retention, now)?),
    })
}

fn add(t: Timestamp, d: SignedDuration, op: &'static str) -> StoreResult<Timestamp> {
    t.checked_add(d)
        .map_err(|e| StoreError::invalid(op, format!("{t} + {d} overflows: {e}")))
}

fn upsert_job<T: Tx + ?Sized>(tx: &mut T, mut job: JobRecord) -> StoreResult<UpsertOutcome> {
    match tx.job(&job.id)? {
        Some(old) => {
            job.created_at = old.created_at;
            job.def_version = if old.definition == job.definition {
                old.def_version
            } else {
                old.def_version + 1
            };
            tx.put_job(&job)?;
            Ok(UpsertOutcome::Updated {
                def_version: job.def_version,
            })
        }
        None => {
            job.def_version = 1;
            tx.put_job(&job)?;
            Ok(UpsertOutcome::Inserted)
        }
    }
}

fn delete_job<T: Tx + ?Sized>(tx: &mut T, id: &JobId, now: Timestamp) -> StoreResult<bool> {
    if tx.job(id)?.is_none() {
        return Ok(false);
    }
    let runs = tx.runs(&RunQuery::OfJob(id.clone()))?;
    for mut r in runs.iter().cloned() {
        // Fetch again: resolving an earlier run may have changed this one.
        if let Some(cur) = tx.run(r.id)? {
            r = cur;
        }
        if !r.state.is_terminal() {
            cancel(tx, &mut r, "job deleted", now)?;
        }
    }
    for r in &runs {
        tx.remove_run(r.id)?;
    }
    tx.remove_job(id)?;
    Ok(true)
}

fn materialize<T: Tx + ?Sized>(tx: &mut T, m: Materialization) -> StoreResult<MaterializeOutcome> {
    const OP: &str = "materialize";
    let mut job = tx
        .job(&m.job)?
        .ok_or_else(|| StoreError::JobNotFound { job: m.job.clone() })?;
    if let WatermarkUpdate::Cas { expected, new } = m.watermark {
        if job.state.watermark != expected {
            return Ok(MaterializeOutcome::WatermarkMoved {
                current: job.state.watermark,
            });
        }
        if let (Some(e), Some(n)) = (expected, new)
            && n < e
        {
            return Err(StoreError::invalid(
                OP,
                format!(
                    "watermark of `{}` would move backwards from {e} to {n}",
                    m.job
                ),
            ));
        }
    }
    let keys: Vec<OccurrenceKey> = m
        .runs
        .iter()
        .map(|r| OccurrenceKey {
            job: m.job.clone(),
            scheduled_at: r.scheduled_at,
            stage: r.stage.clone(),
        })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].contains(k) {
            return Err(StoreError::invalid(
                OP,
                format!("occurrence {k} appears twice"),
            ));
        }
    }
    // Which requested occurrences already have a run.
    let mut existing = Vec::new();
    let mut is_new = Vec::with_capacity(keys.len());
    for k in &keys {
        let found = tx.run_by_key(k)?.is_some();
        if found {
            existing.push(k.clone());
        }
        is_new.push(!found);
    }
    // Resolve every edge before writing anything.
    enum Up {
        New(usize),
        Stored(Box<RunRecord>),
    }
    let mut edges: Vec<(usize, Up, DependencyRule)> = Vec::new();
    for d in &m.deps {
        let Some(w) = keys.iter().position(|k| *k == d.run) else {
            return Err(StoreError::invalid(
                OP,
                format!("edge waits from {}, which is not in the request", d.run),
            ));
        };
        if !is_new[w] {
            continue;
        }
        match keys.iter().position(|k| *k == d.upstream) {
            Some(u) if is_new[u] => {
                if u >= w {
                    return Err(StoreError::invalid(
                        OP,
                        format!(
                            "{} must come before its dependent {} in the request",
                            d.upstream, d.run
                        ),
                    ));
                }
                edges.push((w, Up::New(u), d.rule));
            }
            _ => {
                let up =
                    tx.run_by_key(&d.upstream)?
                        .ok_or_else(|| StoreError::OccurrenceNotFound {
                            key: d.upstream.clone(),
                        })?;
                edges.push((w, Up::Stored(Box::new(up)), d.rule));
            }
        }
    }
    // Writes start here.
    let mut inserted: Vec<Option<RunRecord>> = vec![None; keys.len()];
    for (i, nr) in m.runs.iter().enumerate() {
        if !is_new[i] {
            continue;
        }
        let mut pending_deps = 0u32;
        let mut doomed: Option<String> = None;
        for (w, up, rule) in edges.iter().filter(|e| e.0 == i) {
            debug_assert_eq!(*w, i);
            let (state, key) = match up {
                Up::New(u) => {
                    let r = inserted[*u]
                        .as_ref()
                        .expect("upstream inserted before dependent");
                    (r.state, &r.key)
                }
                Up::Stored(r) => (r.state, &r.key),
            };
            if !state.is_terminal() {
                pending_deps += 1;
            } else if state != RunState::Succeeded && *rule == DependencyRule::AllSuccess {
                doomed.get_or_insert_with(|| format!("upstream {key} ended {state}"));
            }
        }
        let (state, note) = match (nr.state, doomed) {
            (NewRunState::Skipped, _) => (RunState::Skipped, nr.note.clone()),
            (_, Some(reason)) => (RunState::Skipped, Some(reason)),
            (_, None) if pending_deps > 0 => (RunState::Blocked, nr.note.clone()),
            _ => (RunState::Pending, nr.note.clone()),
        };
        let mut rec = RunRecord {
            id: RunId(0),
            key: keys[i].clone(),
            origin: nr.origin,
            def_version: job.def_version,
            state,
            available_at: nr.available_at,
            attempt: Attempt(0),
            max_attempts: nr.max_attempts.max(1),
            pending_deps: if state == RunState::Blocked {
                pending_deps
            } else {
                0
            },
            lease: None,
            created_at: m.now,
            started_at: None,
            finished_at: state.is_terminal().then_some(m.now),
            outcome: None,
            error: note,
            result: None,
        };
        rec.id = tx.insert_run(&rec)?;
        inserted[i] = Some(rec);
    }
    for (w, up, rule) in &edges {
        let run = inserted[*w].as_ref().expect("inserted").id;
        let upstream = match up {
            Up::New(u) => inserted[*u].as_ref().expect("inserted").id,
            Up::Stored(r) => r.id,
        };
        tx.insert_dep(&RunDepRecord {
            run,
            upstream,
            rule: *rule,
        })?;
    }
    let inserted: Vec<RunRecord> = inserted.into_iter().flatten().collect();
    let mut job_changed = false;
    if let WatermarkUpdate::Cas { new, .. } = m.watermark {
        job.state.watermark = new;
        job_changed = true;
    }
    if let Some(latest) = inserted.iter().map(|r| r.key.scheduled_at).max()
        && job.state.last_fired_at.is_none_or(|t| t < latest)
    {
        job.state.last_fired_at = Some(latest);
        job_changed = true;
    }
    if job_changed {
        job.updated_at = m.now;
        tx.put_job(&job)?;
    }
    Ok(MaterializeOutcome::Committed { inserted, existing })
}

fn start<T: Tx + ?Sized>(
    tx: &mut T,
    mut r: RunRecord,
    owner: &str,
    now: Timestamp,
    lease_ttl: SignedDuration,
) -> StoreResult<ClaimedRun> {
    let expires_at = add(now, lease_ttl, "start_attempt")?;
    r.attempt = Attempt(r.attempt.0 + 1);
    r.state = RunState::Running;
    r.lease = Some(Lease {
        owner: owner.to_owned(),
        expires_at,
    });
    r.started_at = Some(now);
    r.finished_at = None;
    r.outcome = None;
    r.error = None;
    r.result = None;
    tx.put_run(&r)?;
    tx.put_attempt(&AttemptRecord {
        run: r.id,
        attempt: r.attempt,
        owner: owner.to_owned(),
        started_at: now,
        finished_at: None,
        outcome: None,
        error: None,
    })?;
    let attempt = r.attempt;
    Ok(ClaimedRun { run: r, attempt })
}

fn finish_attempt<T: Tx + ?Sized>(
    tx: &mut T,
    r: &RunRecord,
    outcome: AttemptOutcome,
    error: Option<&str>,
    now: Timestamp,
) -> StoreResult<()> {
    if r.attempt.0 == 0 {
        return Ok(());
    }
    let mut a = tx
        .attempt(r.id, r.attempt)?
        .unwrap_or_else(|| AttemptRecord {
            run: r.id,
            attempt: r.attempt,
            owner: r
                .lease
                .as_ref()
                .map(|l| l.owner.clone())
                .unwrap_or_default(),
            started_at: r.started_at.unwrap_or(now),
            finished_at: None,
            outcome: None,
            error: None,
        });
    if a.outcome.is_some() {
        // Already closed (an interrupted attempt later completed by its slow worker keeps
        // the worker's outcome below).
        if outcome == AttemptOutcome::Interrupted {
            return Ok(());
        }
    }
    a.finished_at = Some(now);
    a.outcome = Some(outcome);
    a.error = error.map(str::to_owned);
    tx.put_attempt(&a)
}

fn complete<T: Tx + ?Sized>(
    tx: &mut T,
    id: RunId,
    attempt: Attempt,
    c: Completion,
    now: Timestamp,
) -> StoreResult<CompleteOutcome> {
    if c.outcome == AttemptOutcome::Interrupted {
        return Err(StoreError::invalid(
            "complete",
            "an attempt is marked interrupted by recovery, not by completion",
        ));
    }
    let mut r = tx.run(id)?.ok_or(StoreError::RunNotFound { run: id })?;
    let live = matches!(r.state, RunState::Running | RunState::Interrupted);
    if r.attempt != attempt || !live || attempt.0 == 0 {
        return Ok(CompleteOutcome::Fenced {
            current: r.attempt,
            state: r.state,
        });
    }
    let state = match c.outcome {
        AttemptOutcome::Succeeded => RunState::Succeeded,
        AttemptOutcome::Cancelled => RunState::Cancelled,
        _ if c.retry_at.is_some() && r.attempt.0 < r.max_attempts => RunState::RetryWait,
        _ => RunState::Failed,
    };
    finish_attempt(tx, &r, c.outcome, c.error.as_deref(), now)?;
    r.state = state;
    r.lease = None;
    r.outcome = Some(c.outcome);
    r.error = c.error;
    r.result = c.result;
    if state == RunState::RetryWait {
        r.available_at = c.retry_at.unwrap_or(now);
        r.finished_at = None;
    } else {
        r.finished_at = Some(now);
    }
    tx.put_run(&r)?;
    let (mut released, mut skipped) = (Vec::new(), Vec::new());
    if state.is_terminal() {
        if matches!(state, RunState::Succeeded | RunState::Failed) {
            tx.add_run_count(&r.key.job, 1, now)?;
        }
        resolve_dependents(
            tx,
            r.id,
            state == RunState::Succeeded,
            now,
            &mut released,
            &mut skipped,
        )?;
    }
    Ok(CompleteOutcome::Completed {
        state,
        released,
        skipped,
    })
}

fn cancel<T: Tx + ?Sized>(
    tx: &mut T,
    r: &mut RunRecord,
    reason: &str,
    now: Timestamp,
) -> StoreResult<()> {
    if r.state == RunState::Running {
        finish_attempt(tx, r, AttemptOutcome::Cancelled, Some(reason), now)?;
    }
    r.state = RunState::Cancelled;
    r.lease = None;
    r.finished_at = Some(now);
    r.error = Some(reason.to_owned());
    r.pending_deps = 0;
    tx.put_run(r)?;
    resolve_dependents(tx, r.id, false, now, &mut Vec::new(), &mut Vec::new())
}

/// Resolves the runs waiting on `upstream`, which just ended (successfully or not),
/// transitively for skips.
fn resolve_dependents<T: Tx + ?Sized>(
    tx: &mut T,
    upstream: RunId,
    succeeded: bool,
    now: Timestamp,
    released: &mut Vec<RunId>,
    skipped: &mut Vec<RunId>,
) -> StoreResult<()> {
    let mut work = vec![(upstream, succeeded)];
    while let Some((up, ok)) = work.pop() {
        for edge in tx.waiters(up)? {
            let Some(mut w) = tx.run(edge.run)? else {
                continue;
            };
            if w.state != RunState::Blocked {
                continue;
            }
            if ok || edge.rule == DependencyRule::AllDone {
                w.pending_deps = w.pending_deps.saturating_sub(1);
                if w.pending_deps == 0 {
                    w.state = RunState::Pending;
                    w.available_at = w.available_at.max(now);
                    released.push(w.id);
                }
            } else {
                w.state = RunState::Skipped;
                w.pending_deps = 0;
                w.finished_at = Some(now);
                w.error = Some(format!("upstream {up} ended without success"));
                skipped.push(w.id);
                work.push((w.id, false));
            }
            tx.put_run(&w)?;
        }
    }
    Ok(())
}

fn recover<T: Tx + ?Sized>(
    tx: &mut T,
    now: Timestamp,
    only_expired: bool,
) -> StoreResult<Vec<RunRecord>> {
    let mut out = Vec::new();
    for mut r in tx.runs(&RunQuery::Running)? {
        let expired = r.lease.as_ref().is_none_or(|l| l.expires_at < now);
        if only_expired && !expired {
            continue;
        }
        let why = if only_expired {
            "lease expired"
        } else {
            "process stopped while the attempt was running"
        };
        finish_attempt(tx, &r, AttemptOutcome::Interrupted, Some(why), now)?;
        r.lease = None;
        r.outcome = Some(AttemptOutcome::Interrupted);
        if r.attempt.0 >= r.max_attempts {
            r.state = RunState::Dead;
            r.finished_at = Some(now);
            r.error = Some(format!("{why} after the final attempt"));
            tx.put_run(&r)?;
            tx.add_run_count(&r.key.job, 1, now)?;
            resolve_dependents(tx, r.id, false, now, &mut Vec::new(), &mut Vec::new())?;
        } else {
            r.state = RunState::Interrupted;
            r.error = Some(why.to_owned());
            tx.put_run(&r)?;
        }
        out.push(r);
    }
    Ok(out)
}

fn prune<T: Tx + ?Sized>(tx: &mut T, retention: Retention, now: Timestamp) -> StoreResult<usize> {
    let cutoff = match retention.max_age {
        Some(age) => Some(
            now.checked_sub(age)
                .map_err(|e| StoreError::invalid("prune", format!("{now} - {age}: {e}")))?,
        ),
        None => None,
    };
    let mut terminal = tx.runs(&RunQuery::Terminal)?;
    let mut doomed: Vec<RunId> = Vec::new();
    if let Some(cutoff) = cutoff {
        doomed.extend(
            terminal
                .iter()
                .filter(|r| r.finished_at.unwrap_or(r.created_at) < cutoff)
                .map(|r| r.id),
        );
    }
    if let Some(keep) = retention.max_per_job {
        // Newest first within each job.
        terminal.sort_by(|a, b| {
            a.key
                .job
                .cmp(&b.key.job)
                .then(b.key.scheduled_at.cmp(&a.key.scheduled_at))
                .then(b.id.cmp(&a.id))
        });
        let mut i = 0;
        while i < terminal.len() {
            let job = &terminal[i].key.job;
            let end = terminal[i..]
                .iter()
                .position(|r| r.key.job != *job)
                .map_or(terminal.len(), |p| i + p);
            doomed.extend(terminal[i..end].iter().skip(keep).map(|r| r.id));
            i = end;
        }
    }
    doomed.sort_unstable();
    doomed.dedup();
    for id in &doomed {
        tx.remove_run(*id)?;
    }
    Ok(doomed.len())
}
