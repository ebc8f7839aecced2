//! [`MemoryStore`]: everything in maps behind a mutex. Also the state the JSON file store
//! keeps in memory between writes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use jiff::Timestamp;

use crate::engine::{self, RunQuery, Tx};
use crate::error::{StoreError, StoreResult};
use crate::ops::{JobPatch, RunFilter, WriteOp, WriteOutput};
use crate::record::{
    Attempt, AttemptRecord, JobId, JobRecord, OccurrenceKey, RunDepRecord, RunId, RunRecord,
    RunState,
};
use crate::store::Store;

/// The whole content of a store, in maps.
#[derive(Clone, Debug, Default)]
pub(crate) struct MemState {
    pub(crate) next_run_id: u64,
    pub(crate) jobs: BTreeMap<JobId, JobRecord>,
    pub(crate) runs: BTreeMap<RunId, RunRecord>,
    pub(crate) by_key: HashMap<OccurrenceKey, RunId>,
    /// Edges keyed by `(upstream, run)`.
    pub(crate) deps: BTreeMap<(RunId, RunId), RunDepRecord>,
    /// Reverse index: `(run, upstream)`.
    pub(crate) deps_rev: BTreeSet<(RunId, RunId)>,
    pub(crate) attempts: BTreeMap<(RunId, Attempt), AttemptRecord>,
}

impl MemState {
    pub(crate) fn from_parts(
        next_run_id: u64,
        jobs: Vec<JobRecord>,
        runs: Vec<RunRecord>,
        deps: Vec<RunDepRecord>,
        attempts: Vec<AttemptRecord>,
    ) -> Self {
        let mut s = Self {
            next_run_id,
            ..Self::default()
        };
        for j in jobs {
            s.jobs.insert(j.id.clone(), j);
        }
        for r in runs {
            s.next_run_id = s.next_run_id.max(r.id.0);
            s.by_key.insert(r.key.clone(), r.id);
            s.runs.insert(r.id, r);
        }
        for d in deps {
            s.deps_rev.insert((d.run, d.upstream));
            s.deps.insert((d.upstream, d.run), d);
        }
        for a in attempts {
            s.attempts.insert((a.run, a.attempt), a);
        }
        s
    }

    pub(crate) fn apply(&mut self, ops: Vec<WriteOp>) -> Vec<StoreResult<WriteOutput>> {
        ops.into_iter()
            .map(|op| engine::execute(self, op))
            .collect()
    }

    pub(crate) fn list_runs(&self, filter: &RunFilter) -> Vec<RunRecord> {
        let mut out: Vec<RunRecord> = self
            .runs
            .values()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            (a.key.scheduled_at, &a.key.stage, a.id).cmp(&(b.key.scheduled_at, &b.key.stage, b.id))
        });
        if let Some(limit) = filter.limit {
            out.truncate(limit);
        }
        out
    }

    pub(crate) fn attempts_of(&self, run: RunId) -> Vec<AttemptRecord> {
        self.attempts
            .range((run, Attempt(0))..=(run, Attempt(u32::MAX)))
            .map(|(_, a)| a.clone())
            .collect()
    }

    pub(crate) fn upstream_deps(&self, run: RunId) -> Vec<RunDepRecord> {
        self.deps_rev
            .range((run, RunId(0))..=(run, RunId(u64::MAX)))
            .filter_map(|(r, u)| self.deps.get(&(*u, *r)).cloned())
            .collect()
    }
}

impl Tx for MemState {
    fn job(&mut self, id: &JobId) -> StoreResult<Option<JobRecord>> {
        Ok(self.jobs.get(id).cloned())
    }

    fn put_job(&mut self, job: &JobRecord) -> StoreResult<()> {
        self.jobs.insert(job.id.clone(), job.clone());
        Ok(())
    }

    fn patch_job(&mut self, id: &JobId, patch: &JobPatch, now: Timestamp) -> StoreResult<bool> {
        let Some(j) = self.jobs.get_mut(id) else {
            return Ok(false);
        };
        if let Some(p) = patch.paused {
            j.state.paused = p;
        }
        if let Some(s) = patch.status {
            j.state.status = s;
        }
        j.updated_at = now;
        Ok(true)
    }

    fn add_run_count(&mut self, id: &JobId, n: u64, now: Timestamp) -> StoreResult<()> {
        if let Some(j) = self.jobs.get_mut(id) {
            j.state.run_count += n;
            j.updated_at = now;
        }
        Ok(())
    }

    fn remove_job(&mut self, id: &JobId) -> StoreResult<()> {
        self.jobs.remove(id);
        Ok(())
    }

    fn run(&mut self, id: RunId) -> StoreResult<Option<RunRecord>> {
        Ok(self.runs.get(&id).cloned())
    }

    fn run_by_key(&mut self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .by_key
            .get(key)
            .and_then(|id| self.runs.get(id))
            .cloned())
    }

    fn insert_run(&mut self, run: &RunRecord) -> StoreResult<RunId> {
        if self.by_key.contains_key(&run.key) {
            return Err(StoreError::invalid(
                "insert_run",
                format!("occurrence {} already has a run", run.key),
            ));
        }
        self.next_run_id += 1;
        let id = RunId(self.next_run_id);
        let mut r = run.clone();
        r.id = id;
        self.by_key.insert(r.key.clone(), id);
        self.runs.insert(id, r);
        Ok(id)
    }

    fn put_run(&mut self, run: &RunRecord) -> StoreResult<()> {
        match self.runs.get_mut(&run.id) {
            Some(r) => {
                *r = run.clone();
                Ok(())
            }
            None => Err(StoreError::RunNotFound { run: run.id }),
        }
    }

    fn remove_run(&mut self, id: RunId) -> StoreResult<()> {
        if let Some(r) = self.runs.remove(&id) {
            self.by_key.remove(&r.key);
        }
        let attempts: Vec<_> = self
            .attempts
            .range((id, Attempt(0))..=(id, Attempt(u32::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for k in attempts {
            self.attempts.remove(&k);
        }
        let down: Vec<_> = self
            .deps
            .range((id, RunId(0))..=(id, RunId(u64::MAX)))
            .map(|(k, _)| *k)
            .collect();
        for (u, r) in down {
            self.deps.remove(&(u, r));
            self.deps_rev.remove(&(r, u));
        }
        let up: Vec<_> = self
            .deps_rev
            .range((id, RunId(0))..=(id, RunId(u64::MAX)))
            .copied()
            .collect();
        for (r, u) in up {
            self.deps_rev.remove(&(r, u));
            self.deps.remove(&(u, r));
        }
        Ok(())
    }

    fn runs(&mut self, query: &RunQuery) -> StoreResult<Vec<RunRecord>> {
        let pick = |f: &dyn Fn(&RunRecord) -> bool| -> Vec<RunRecord> {
            self.runs.values().filter(|r| f(r)).cloned().collect()
        };
        Ok(match query {
            RunQuery::Running => pick(&|r| r.state == RunState::Running),
            RunQuery::OfJob(job) => pick(&|r| r.key.job == *job),
            RunQuery::Terminal => pick(&|r| r.state.is_terminal()),
            RunQuery::ClaimableDue { now, limit } => {
                let mut due = pick(&|r| r.state.is_claimable() && r.available_at <= *now);
                due.sort_by_key(|r| (r.available_at, r.id));
                due.truncate(*limit);
                due
            }
        })
    }

    fn insert_dep(&mut self, dep: &RunDepRecord) -> StoreResult<()> {
        self.deps_rev.insert((dep.run, dep.upstream));
        self.deps.insert((dep.upstream, dep.run), dep.clone());
        Ok(())
    }

    fn waiters(&mut self, upstream: RunId) -> StoreResult<Vec<RunDepRecord>> {
        Ok(self
            .deps
            .range((upstream, RunId(0))..=(upstream, RunId(u64::MAX)))
            .map(|(_, d)| d.clone())
            .collect())
    }

    fn attempt(&mut self, run: RunId, attempt: Attempt) -> StoreResult<Option<AttemptRecord>> {
        Ok(self.attempts.get(&(run, attempt)).cloned())
    }

    fn put_attempt(&mut self, attempt: &AttemptRecord) -> StoreResult<()> {
        self.attempts
            .insert((attempt.run, attempt.attempt), attempt.clone());
        Ok(())
    }
}

/// A [`Store`] in memory: nothing survives the process. For tests and for schedulers that
/// want the run bookkeeping without durability.
///
/// ```
/// use jiff::Timestamp;
/// use myrmex_store::{
///     Completion, JobDefinition, JobRecord, MaterializeOutcome, Materialization, MemoryStore,
///     NewRun, RunState, Store, TriggerSpec,
/// };
///
/// let store = MemoryStore::new();
/// let t0: Timestamp = "2026-01-01T00:00:00Z".parse()?;
/// let def = JobDefinition {
///     trigger: TriggerSpec::Manual,
///     handler: "backup".into(),
///     args: serde_json::json!({"path": "/srv"}),
///     policies: Default::default(),
///     depends_on: vec![],
/// };
/// store.upsert_job(JobRecord::new("backup", def, Some(t0), t0))?;
/// let next = t0 + jiff::SignedDuration::from_secs(60);
/// let MaterializeOutcome::Committed { inserted, .. } =
///     store.materialize(Materialization::tick("backup", Some(t0), Some(next), vec![NewRun::pending(t0)], t0))?
/// else { unreachable!() };
/// let run = inserted[0].id;
/// let started = store.start_attempt(run, "me", t0, jiff::SignedDuration::from_secs(30))?;
/// let myrmex_store::StartOutcome::Started(claim) = started else { unreachable!() };
/// let _ = store.complete(run, claim.attempt, Completion::success(), t0)?;
/// assert_eq!(store.get_run(run)?.unwrap().state, RunState::Succeeded);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<Option<MemState>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(Some(MemState::default())),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemState) -> R) -> StoreResult<R> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(s) => Ok(f(s)),
            None => Err(StoreError::Closed),
        }
    }
}

impl Store for MemoryStore {
    fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>> {
        self.with(|s| s.apply(ops))
    }

    fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>> {
        self.with(|s| s.jobs.get(job).cloned())
    }

    fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        self.with(|s| s.jobs.values().cloned().collect())
    }

    fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>> {
        self.with(|s| s.runs.get(&run).cloned())
    }

    fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        self.with(|s| s.by_key.get(key).and_then(|id| s.runs.get(id)).cloned())
    }

    fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        self.with(|s| s.list_runs(filter))
    }

    fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
        self.with(|s| s.attempts_of(run))
    }

    fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.with(|s| s.upstream_deps(run))
    }

    fn close(&self) -> StoreResult<()> {
        let mut g = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *g = None;
        Ok(())
    }
}
