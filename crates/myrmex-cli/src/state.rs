//! The daemon's state store: opening it, recording what the scheduler does (a
//! [`myrmex::Journal`] writing to a [`myrmex_store::Store`]), and reading back the
//! state of unchanged jobs at start-up.
//!
//! Jobs are stored under their config names. A stored job's arguments keep the
//! resolved `myrmex` spec (so an interval keeps its anchor across restarts) and a
//! fingerprint of its config entry: a job whose entry did not change is restored
//! with its watermark, counts and paused flag; a changed one starts afresh (its run
//! history stays).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use jiff::{SignedDuration, Timestamp};
use myrmex::{JobId, JobSnapshot, JobSpec, JobStatus, Journal, JournalError, RunReport};
use myrmex_store::{
    Attempt, AttemptOutcome, CompleteOutcome, Completion, JobDefinition, JobPatch, JobRecord,
    Materialization, MaterializeOutcome, NewRun, OccurrenceKey, RunId, StartOutcome, Store,
    StoreError,
};

use crate::config::{JobConfig, StoreSpec};

/// The handler name stored with every job the daemon runs.
pub const HANDLER: &str = "command";

/// The owner recorded on attempts (one daemon per store).
const OWNER: &str = "myrmex-daemon";

/// A single daemon owns its store, so a lease only has to outlive the longest run.
const LEASE: SignedDuration = SignedDuration::from_hours(24 * 365);

/// A shared, type-erased store.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store named by the config.
///
/// # Errors
/// Whatever the backend reports (a corrupt file, a newer schema, I/O).
pub fn open(spec: &StoreSpec) -> Result<SharedStore, StoreError> {
    match spec {
        StoreSpec::Sqlite(p) => Ok(Arc::new(myrmex_sqlite::SqliteStore::open(p)?)),
        StoreSpec::Json(p) => Ok(Arc::new(myrmex_store::JsonFileStore::open(p)?)),
        StoreSpec::Postgres(_) => Err(StoreError::Invalid {
            op: "open",
            reason: "the daemon does not run on PostgreSQL yet; use an SQLite or JSON store".into(),
        }),
    }
}

/// A fingerprint of a job's config entry: equal entries, equal fingerprints.
pub fn fingerprint(job: &JobConfig) -> String {
    format!("{job:?}")
}

/// What the journal and the handlers share: names of scheduler ids, the config
/// fingerprints of jobs being added, and the output of finished attempts.
#[derive(Clone, Default)]
pub struct Shared {
    inner: Arc<Mutex<SharedInner>>,
}

#[derive(Default)]
struct SharedInner {
    names: BTreeMap<JobId, String>,
    fingerprints: HashMap<String, String>,
    outputs: HashMap<(String, Timestamp), serde_json::Value>,
    attempts: HashMap<(String, Timestamp), u32>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, SharedInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the fingerprint of config job `name`, before it is added.
    pub fn set_fingerprint(&self, name: &str, fingerprint: String) {
        self.lock()
            .fingerprints
            .insert(name.to_string(), fingerprint);
    }

    /// Records that scheduler job `id` is config job `name`.
    pub fn register(&self, id: JobId, name: &str) {
        self.lock().names.insert(id, name.to_string());
    }

    /// The config name of scheduler job `id`.
    pub fn name(&self, id: JobId) -> Option<String> {
        self.lock().names.get(&id).cloned()
    }

    /// Keeps what an attempt produced until the journal records its end (attempts
    /// of one occurrence never overlap).
    pub fn put_output(&self, job: &str, scheduled_at: Timestamp, v: serde_json::Value) {
        self.lock()
            .outputs
            .insert((job.to_string(), scheduled_at), v);
    }

    fn take_output(&self, job: &str, scheduled_at: Timestamp) -> Option<serde_json::Value> {
        self.lock().outputs.remove(&(job.to_string(), scheduled_at))
    }

    /// The attempt number the store gave the attempt of `job` at `scheduled_at` that
    /// is starting (it counts the attempts of earlier daemons too).
    pub fn take_attempt(&self, job: &str, scheduled_at: Timestamp) -> Option<u32> {
        self.lock()
            .attempts
            .remove(&(job.to_string(), scheduled_at))
    }

    fn fingerprint(&self, name: &str) -> Option<String> {
        self.lock().fingerprints.get(name).cloned()
    }
}

/// A job as found in the store, ready to be restored.
pub struct Restorable {
    /// The resolved spec it was stored with.
    pub spec: JobSpec,
    /// Its state.
    pub state: myrmex::RestoredState,
}

/// The stored state of `job` if its config entry is unchanged since it was stored.
pub fn restorable(record: &JobRecord, job: &JobConfig) -> Option<Restorable> {
    let args = &record.definition.args;
    if args.get("fingerprint")?.as_str()? != fingerprint(job) {
        return None;
    }
    let spec: JobSpec = serde_json::from_value(args.get("spec")?.clone()).ok()?;
    let st = &record.state;
    let state = myrmex::RestoredState {
        created_at: record.created_at,
        next_run_at: st.watermark,
        last_run_at: st.last_fired_at,
        run_count: u32::try_from(st.run_count).unwrap_or(u32::MAX),
        status: if st.paused {
            JobStatus::Paused
        } else {
            JobStatus::Pending
        },
        last_outcome: None,
    };
    Some(Restorable { spec, state })
}

/// The [`Journal`] that records the scheduler's changes in the store.
pub struct StoreJournal {
    store: SharedStore,
    shared: Shared,
    /// The watermark last written per job (the compare-and-set's expected value).
    watermarks: HashMap<JobId, Option<Timestamp>>,
    /// The store run of each active occurrence, with its current attempt.
    runs: HashMap<(JobId, Timestamp), (RunId, Attempt)>,
    /// Attempt budgets per job.
    max_attempts: HashMap<JobId, u32>,
}

impl StoreJournal {
    /// A journal writing to `store`.
    pub fn new(store: SharedStore, shared: Shared) -> StoreJournal {
        StoreJournal {
            store,
            shared,
            watermarks: HashMap::new(),
            runs: HashMap::new(),
            max_attempts: HashMap::new(),
        }
    }

    /// Seeds the journal with a restored job's watermark and attempt budget.
    pub fn restored(&mut self, id: JobId, watermark: Option<Timestamp>, spec: &JobSpec) {
        self.watermarks.insert(id, watermark);
        self.max_attempts.insert(id, max_attempts(spec));
    }

    /// The config name of a job the daemon records; `None` for the scheduler's own
    /// helper jobs (a pipeline's stage jobs), which are not stored: their pipeline's
    /// run is.
    fn name(&self, job: JobId) -> Option<String> {
        self.shared.name(job)
    }

    fn complete(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        completion: Completion,
        done: bool,
    ) -> Result<(), JournalError> {
        let Some(&(run, attempt)) = self.runs.get(&(job, scheduled_at)) else {
            return Err(format!("no stored run for job {job} at {scheduled_at}").into());
        };
        if done {
            self.runs.remove(&(job, scheduled_at));
        }
        match self.store.complete(run, attempt, completion, Timestamp::now())? {
            CompleteOutcome::Completed { .. } => Ok(()),
            CompleteOutcome::Fenced { current, state } => Err(format!(
                "the store refused the completion of run {run} attempt {attempt}: it is at attempt {current}, {state}"
            )
            .into()),
            other => Err(format!("unexpected completion outcome {other:?}").into()),
        }
    }
}

fn max_attempts(spec: &JobSpec) -> u32 {
    match spec.policies.retry {
        myrmex::RetryPolicy::Fixed { max_attempts, .. }
        | myrmex::RetryPolicy::Exponential { max_attempts, .. } => max_attempts.max(1),
        _ => 1,
    }
}

/// The store's form of a trigger (for people and tools reading the store; the daemon
/// itself restores from the spec kept in the arguments). Built through the records'
/// JSON form, whose optional fields keep it stable as the record types grow.
fn store_trigger(t: &myrmex::TriggerSpec) -> myrmex_store::TriggerSpec {
    serde_json::from_value(store_trigger_json(t)).unwrap_or(myrmex_store::TriggerSpec::Manual)
}

fn store_trigger_json(t: &myrmex::TriggerSpec) -> serde_json::Value {
    use myrmex::TriggerSpec as T;
    use serde_json::json;
    let zone = |tz: &Option<jiff::tz::TimeZone>| {
        tz.as_ref()
            .and_then(|z| z.iana_name().map(str::to_string))
            .unwrap_or_else(|| "UTC".into())
    };
    match t {
        T::Once { at } => json!({ "kind": "once", "at": at }),
        T::OnceLocal { datetime, tz, dst } => {
            match dst.resolve(tz.as_ref().unwrap_or(&jiff::tz::TimeZone::UTC), *datetime) {
                Some(at) => json!({ "kind": "once", "at": at }),
                None => json!({ "kind": "manual" }),
            }
        }
        T::Interval { every, start, end } => json!({
            "kind": "interval",
            "every": every,
            "anchor": start.unwrap_or(Timestamp::UNIX_EPOCH),
            "end": end,
        }),
        T::Cron { expr, tz, .. } => json!({
            "kind": "cron",
            "expr": expr.to_string(),
            "zone": zone(tz),
        }),
        T::Recurrence(r) => {
            let days = [
                (jiff::civil::Weekday::Monday, "MON"),
                (jiff::civil::Weekday::Tuesday, "TUE"),
                (jiff::civil::Weekday::Wednesday, "WED"),
                (jiff::civil::Weekday::Thursday, "THU"),
                (jiff::civil::Weekday::Friday, "FRI"),
                (jiff::civil::Weekday::Saturday, "SAT"),
                (jiff::civil::Weekday::Sunday, "SUN"),
            ];
            let weekdays: Vec<&str> = days
                .iter()
                .filter(|(d, _)| r.weekdays.contains(*d))
                .map(|(_, n)| *n)
                .collect();
            json!({
                "kind": "recurrence",
                "every": r.every,
                "unit": serde_json::to_value(r.unit).unwrap_or_default(),
                "at": r.at.map(|t| t.strftime("%H:%M:%S").to_string()),
                "weekdays": weekdays,
                "until": r.until.map(|d| d.to_string()),
                "zone": zone(&r.tz),
            })
        }
        T::Union { members } => json!({
            "kind": "union",
            "triggers": members.iter().map(store_trigger_json).collect::<Vec<_>>(),
        }),
        _ => json!({ "kind": "manual" }),
    }
}

/// The store's form of a job's policies, built like [`store_trigger`].
fn store_policies(p: &myrmex::JobPolicies) -> myrmex_store::PolicySpec {
    use serde_json::json;
    let retry = match p.retry {
        myrmex::RetryPolicy::Fixed {
            max_attempts,
            delay,
            ..
        } => {
            json!({ "max_attempts": max_attempts, "backoff": { "kind": "fixed", "delay": delay } })
        }
        myrmex::RetryPolicy::Exponential {
            max_attempts,
            initial,
            max_delay,
            ..
        } => json!({
            "max_attempts": max_attempts,
            "backoff": { "kind": "exponential", "base": initial, "max": max_delay },
        }),
        _ => {
            json!({ "max_attempts": 1, "backoff": { "kind": "fixed", "delay": SignedDuration::from_secs(1) } })
        }
    };
    let misfire = match p.misfire {
        myrmex::MisfirePolicy::RunAll => {
            json!({ "kind": "run_all", "max_catchup": myrmex::MisfirePolicy::RUN_ALL_LIMIT })
        }
        myrmex::MisfirePolicy::Skip => json!({ "kind": "skip" }),
        _ => json!({ "kind": "run_once" }),
    };
    let overlap = match p.overlap {
        myrmex::OverlapPolicy::QueueOne => json!({ "kind": "queue_one" }),
        myrmex::OverlapPolicy::Allow(n) => json!({ "kind": "allow", "max_concurrent": n }),
        _ => json!({ "kind": "skip" }),
    };
    let v = json!({
        "misfire": { "grace": p.misfire_grace, "action": misfire },
        "overlap": overlap,
        "retry": retry,
        "timeout": p.timeout,
        "jitter": p.jitter,
        "max_runs": p.max_runs,
    });
    serde_json::from_value(v).unwrap_or_default()
}

fn attempt_outcome(o: myrmex::Outcome) -> AttemptOutcome {
    match o {
        myrmex::Outcome::Succeeded => AttemptOutcome::Succeeded,
        myrmex::Outcome::TimedOut => AttemptOutcome::TimedOut,
        myrmex::Outcome::Cancelled => AttemptOutcome::Cancelled,
        _ => AttemptOutcome::Failed,
    }
}

impl Journal for StoreJournal {
    fn job_added(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        // The daemon names every job it adds; the name is known here before any fire.
        let Some(name) = job.name.clone() else {
            return Ok(());
        };
        if self.shared.fingerprint(&name).is_none() {
            return Ok(());
        }
        self.shared.register(job.id, &name);
        let spec = job.spec();
        let def = JobDefinition {
            trigger: store_trigger(&spec.trigger),
            handler: HANDLER.into(),
            args: serde_json::json!({
                "fingerprint": self.shared.fingerprint(&name),
                "spec": serde_json::to_value(&spec)?,
            }),
            policies: store_policies(&spec.policies),
            depends_on: Vec::new(),
        };
        self.max_attempts.insert(job.id, max_attempts(&spec));
        self.watermarks.insert(job.id, job.next_run_at);
        let mut record = JobRecord::new(name, def, job.next_run_at, job.created_at);
        record.state.paused = job.status == JobStatus::Paused;
        self.store.upsert_job(record)?;
        Ok(())
    }

    fn job_changed(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        let Some(name) = self.name(job.id) else {
            return Ok(());
        };
        let paused = job.status == JobStatus::Paused;
        let patch = JobPatch {
            paused: Some(paused),
            status: Some(if paused {
                myrmex_store::JobStatus::Paused
            } else {
                myrmex_store::JobStatus::Pending
            }),
        };
        self.store
            .update_job(&myrmex_store::JobId(name), patch, Timestamp::now())?;
        Ok(())
    }

    fn job_removed(&mut self, job: JobId, status: JobStatus) -> Result<(), JournalError> {
        let Some(name) = self.name(job) else {
            return Ok(());
        };
        self.watermarks.remove(&job);
        let status = match status {
            JobStatus::Completed => myrmex_store::JobStatus::Completed,
            JobStatus::Failed => myrmex_store::JobStatus::Failed,
            _ => myrmex_store::JobStatus::Cancelled,
        };
        let patch = JobPatch {
            paused: None,
            status: Some(status),
        };
        match self
            .store
            .update_job(&myrmex_store::JobId(name), patch, Timestamp::now())
        {
            Ok(()) | Err(StoreError::JobNotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn occurrence_fired(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        watermark: Option<Timestamp>,
    ) -> Result<(), JournalError> {
        let Some(name) = self.name(job) else {
            return Ok(());
        };
        let expected = self.watermarks.get(&job).copied().flatten();
        // A watermark never moves back; a manual release leaves it where it is.
        let new = match (expected, watermark) {
            (Some(e), Some(w)) if w < e => Some(e),
            (Some(e), None) if scheduled_at < e => Some(e),
            (_, w) => w,
        };
        let budget = self.max_attempts.get(&job).copied().unwrap_or(1);
        let run = NewRun::pending(scheduled_at).with_max_attempts(budget);
        let now = Timestamp::now();
        let m = Materialization::tick(name.clone(), expected, new, vec![run], now);
        let (inserted, existing) = match self.store.materialize(m)? {
            MaterializeOutcome::Committed { inserted, existing } => (inserted, existing),
            MaterializeOutcome::WatermarkMoved { current } => {
                // The store knows better (a run recorded by an earlier process); go on
                // from its watermark.
                let new = match (current, new) {
                    (Some(c), Some(n)) => Some(c.max(n)),
                    (c, None) => c,
                    (None, n) => n,
                };
                let m = Materialization::tick(
                    name.clone(),
                    current,
                    new,
                    vec![NewRun::pending(scheduled_at).with_max_attempts(budget)],
                    now,
                );
                match self.store.materialize(m)? {
                    MaterializeOutcome::Committed { inserted, existing } => (inserted, existing),
                    other => {
                        return Err(format!("the store's watermark keeps moving: {other:?}").into());
                    }
                }
            }
            other => return Err(format!("unexpected materialization outcome {other:?}").into()),
        };
        self.watermarks.insert(job, new);
        if let Some(run) = inserted.first() {
            self.runs.insert((job, scheduled_at), (run.id, run.attempt));
            return Ok(());
        }
        if existing.is_empty() {
            return Err("the store inserted no run".into());
        }
        // The occurrence already has a run: only a run left claimable (interrupted by a
        // previous daemon) may go on; anything else would be a second fire.
        let key = OccurrenceKey::new(name, scheduled_at);
        match self.store.find_run(&key)? {
            Some(r) if r.state.is_claimable() => {
                self.runs.insert((job, scheduled_at), (r.id, r.attempt));
                Ok(())
            }
            Some(r) => Err(format!("occurrence {key} already ran ({})", r.state).into()),
            None => Err(format!("occurrence {key} vanished").into()),
        }
    }

    fn occurrence_skipped(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        reason: myrmex::SkipReason,
    ) -> Result<(), JournalError> {
        let Some(name) = self.name(job) else {
            return Ok(());
        };
        let m = Materialization {
            job: myrmex_store::JobId(name),
            watermark: myrmex_store::WatermarkUpdate::Keep,
            runs: vec![NewRun::skipped(
                scheduled_at,
                format!("{reason:?}").to_lowercase(),
            )],
            deps: Vec::new(),
            now: Timestamp::now(),
        };
        let _ = self.store.materialize(m)?;
        Ok(())
    }

    fn attempt_started(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        attempt: u32,
    ) -> Result<(), JournalError> {
        if self.name(job).is_none() {
            return Ok(());
        }
        let Some(&(run, _)) = self.runs.get(&(job, scheduled_at)) else {
            return Err(format!(
                "no stored run for job {job} at {scheduled_at} (attempt {attempt})"
            )
            .into());
        };
        match self
            .store
            .start_attempt(run, OWNER, Timestamp::now(), LEASE)?
        {
            StartOutcome::Started(claim) => {
                self.runs.insert((job, scheduled_at), (run, claim.attempt));
                if let Some(name) = self.name(job) {
                    self.shared
                        .lock()
                        .attempts
                        .insert((name, scheduled_at), claim.attempt.0);
                }
                Ok(())
            }
            StartOutcome::NotClaimable { state, .. } => {
                Err(format!("stored run {run} cannot start: it is {state}").into())
            }
            other => Err(format!("unexpected start outcome {other:?}").into()),
        }
    }

    fn attempt_failed(
        &mut self,
        job: JobId,
        scheduled_at: Timestamp,
        _attempt: u32,
        outcome: myrmex::Outcome,
        error: Option<&str>,
        retry_at: Timestamp,
    ) -> Result<(), JournalError> {
        let Some(name) = self.name(job) else {
            return Ok(());
        };
        let mut c = Completion::failure(
            attempt_outcome(outcome),
            error.unwrap_or("failed"),
            Some(retry_at),
        );
        if let Some(out) = self.shared.take_output(&name, scheduled_at) {
            c = c.with_result(out);
        }
        self.complete(job, scheduled_at, c, false)
    }

    fn run_finished(&mut self, report: &RunReport) -> Result<(), JournalError> {
        let Some(name) = self.name(report.job) else {
            return Ok(());
        };
        let mut c = match report.outcome {
            myrmex::Outcome::Succeeded => Completion::success(),
            o => Completion::failure(
                attempt_outcome(o),
                report.error.as_deref().unwrap_or("failed"),
                None,
            ),
        };
        if let Some(out) = self.shared.take_output(&name, report.scheduled_at) {
            c = c.with_result(out);
        }
        self.complete(report.job, report.scheduled_at, c, true)
    }
}
