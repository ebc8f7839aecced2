//! The scheduling state machine: a job table, a run table and a due queue.
//!
//! [`Core`] is driven from outside: every method that depends on time takes
//! `now`; [`Core::poll`] turns due work into [`Action`]s; [`Core::next_wake`] says
//! when to call it again. It never reads a clock, spawns, locks or does I/O.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::job::{
    AttemptResult, Event, JobId, JobSnapshot, JobSpec, JobStatus, Outcome, RestoredState, RunId,
    RunReport, SkipReason,
};
use crate::policy::{JobPolicies, MisfirePolicy, OverlapPolicy, RetentionPolicy};
use crate::time::{NEVER, dur_ns, jitter, ns, opt_ts, ts};
use crate::trigger::{Compiled, TriggerError, TriggerSpec};

/// How many missed occurrences a catch-up enumerates one by one; beyond that the
/// count in [`Event::Missed`] is a lower bound.
const MISFIRE_SCAN_LIMIT: u64 = 100_000;

const KIND_SHIFT: u32 = 30;
const GEN_MASK: u32 = (1 << KIND_SHIFT) - 1;
const KIND_FIRE: u32 = 0;
const KIND_RETRY: u32 = 1;
const KIND_TIMEOUT: u32 = 2;

const F_PAUSED: u8 = 1;
const F_BLOCKED: u8 = 2;
const F_QUEUED: u8 = 4;

const R_TIMED_OUT: u8 = 1;
const R_CANCELLED: u8 = 2;
const R_WAITING: u8 = 4;

/// A queue entry. Ordered by time, then slot, so the heap is deterministic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    at: i64,
    slot: u32,
    /// Kind in the top two bits, the slot's generation below: an entry whose
    /// generation no longer matches is stale and dropped when popped (lazy
    /// deletion keeps cancel and reschedule O(1)).
    key: u32,
}

/// A heap at least this big is checked for a burst (most of it due at once).
const BULK_MIN: usize = 1024;
/// After how many due entries in one poll the heap is checked for a burst.
const BULK_AFTER: usize = 32;
/// How many of the heap's leaves are sampled to recognise a burst.
const BULK_SAMPLES: usize = 8;

/// The due queue: a binary heap, and a sorted run of due entries taken out of
/// it at once during a burst.
///
/// Popping one entry from a big heap walks its whole height (a cache miss per
/// level). When most of the heap is due (100,000 one-shots due now), the due
/// entries are moved out in one pass, sorted, and then handed out from the
/// sorted run; the rest is re-heapified in linear time. Entries are always
/// handed out in exactly the heap's order (the smaller of the two heads), so
/// the burst path changes nothing but the cost.
#[derive(Debug, Default)]
struct DueQueue {
    heap: BinaryHeap<Reverse<Due>>,
    /// Due entries taken out of the heap, sorted descending (the next is last).
    staged: Vec<Due>,
}

impl DueQueue {
    fn push(&mut self, e: Due) {
        self.heap.push(Reverse(e));
    }

    fn peek(&self) -> Option<Due> {
        let h = self.heap.peek().map(|r| r.0);
        match (h, self.staged.last().copied()) {
            (Some(h), Some(s)) => Some(h.min(s)),
            (h, s) => h.or(s),
        }
    }

    fn pop(&mut self) -> Option<Due> {
        match (self.heap.peek(), self.staged.last()) {
            (Some(Reverse(h)), Some(s)) if s < h => self.staged.pop(),
            (Some(_), _) => self.heap.pop().map(|r| r.0),
            (None, _) => self.staged.pop(),
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.heap.reserve(additional);
    }

    /// If the heap is big and most of it looks due at `now` (evenly spaced
    /// leaves, the latest entries of their paths, are all due), moves every
    /// entry due at `now` into the sorted run.
    fn stage_burst(&mut self, now: i64) {
        if !self.staged.is_empty() || self.heap.len() < BULK_MIN {
            return;
        }
        let v = self.heap.as_slice();
        let leaves = &v[v.len() / 2..];
        let step = leaves.len() / BULK_SAMPLES;
        if !(0..BULK_SAMPLES).all(|k| leaves[k * step].0.at <= now) {
            return;
        }
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        let mut due = std::mem::take(&mut self.staged);
        entries.retain(|Reverse(e)| {
            let is_due = e.at <= now;
            if is_due {
                due.push(*e);
            }
            !is_due
        });
        self.heap = BinaryHeap::from(entries);
        due.sort_unstable_by(|a, b| b.cmp(a));
        self.staged = due;
    }

    /// Applies `f` to every entry (the order is restored afterwards).
    fn update_all(&mut self, mut f: impl FnMut(&mut Due)) {
        let mut entries = std::mem::take(&mut self.heap).into_vec();
        entries.extend(self.staged.drain(..).map(Reverse));
        for Reverse(e) in &mut entries {
            f(e);
        }
        self.heap = BinaryHeap::from(entries);
    }
}

/// What the driver of a [`Core`] must do.
#[derive(Debug)]
#[non_exhaustive]
pub enum Action<P> {
    /// Start an attempt of a run (hand the payload to an executor). When
    /// `attempt == 1` this is a new occurrence: persist it before starting.
    Start(StartRun<P>),
    /// Tell a running attempt to stop (through its cancellation token).
    Cancel {
        /// The run.
        run: RunId,
        /// Why.
        reason: CancelReason,
    },
    /// Report something that happened.
    Event(Event),
}

/// One attempt to start.
#[derive(Debug)]
pub struct StartRun<P> {
    /// The run, to report the attempt's end with [`Core::finish`].
    pub run: RunId,
    /// The job.
    pub job: JobId,
    /// The occurrence key.
    pub scheduled_at: Timestamp,
    /// 1 for the first attempt.
    pub attempt: u32,
    /// When the attempt times out, if it can.
    pub deadline: Option<Timestamp>,
    /// The job's watermark after this fire: the next occurrence not yet turned
    /// into a run (`None`: exhausted). Persist it with the occurrence.
    pub watermark: Option<Timestamp>,
    /// The job's payload (its handler, for the runtime).
    pub payload: P,
}

/// Why a running attempt is told to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CancelReason {
    /// It ran past its timeout.
    Timeout,
    /// Its job was cancelled.
    JobCancelled,
}

/// A request the core refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// No job with this id.
    #[error("no job {id}")]
    UnknownJob {
        /// The id.
        id: JobId,
    },
    /// A job with this id already exists.
    #[error("job {id} already exists")]
    DuplicateJob {
        /// The id.
        id: JobId,
    },
    /// The job's trigger cannot be used.
    #[error("job {id} has an invalid trigger")]
    Trigger {
        /// The job.
        id: JobId,
        /// Why.
        #[source]
        source: Box<TriggerError>,
    },
    /// No active run with this id, or the attempt is not the current one (a late
    /// report from an older attempt is refused).
    #[error("{run} attempt {attempt} is not the current attempt of an active run")]
    StaleAttempt {
        /// The run.
        run: RunId,
        /// The attempt reported.
        attempt: u32,
    },
}

fn key_of<P>(jobs: &[Option<JobRec<P>>], slot: u32) -> JobId {
    jobs[slot as usize]
        .as_ref()
        .map_or(JobId(u64::MAX), |r| r.id)
}

/// Maps job ids to slots: an open-addressing table of slot numbers (4 bytes a
/// bucket); the id of a bucket is read from the job record itself. A parallel
/// byte per bucket holds its entry's distance from its home bucket, so that a
/// removal (which knows the slot) never reads a job record: it finds the
/// bucket by slot number and shifts the entries after it by their distances.
#[derive(Debug, Default)]
struct SlotIndex {
    table: Vec<u32>,
    /// Distance of each bucket's entry from its home; `FAR` when too far to
    /// say in a byte (then it is computed from the job's id).
    dist: Vec<u8>,
    len: usize,
}

const EMPTY: u32 = u32::MAX;
const FAR: u8 = u8::MAX;

impl SlotIndex {
    fn home(&self, id: JobId) -> usize {
        let h = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (h >> 32) as usize & (self.table.len() - 1)
    }

    fn get(&self, id: JobId, key: impl Fn(u32) -> JobId) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut i = self.home(id);
        loop {
            let s = self.table[i];
            if s == EMPTY {
                return None;
            }
            if key(s) == id {
                return Some(s);
            }
            i = (i + 1) & mask;
        }
    }

    fn reserve(&mut self, additional: usize, key: impl Fn(u32) -> JobId) {
        let need = self.len + additional;
        if need * 8 > self.table.len() * 7 {
            let cap = (need * 8 / 7 + 1).next_power_of_two().max(16);
            self.rehash(cap, key);
        }
    }

    /// Puts `slot` in the first free bucket from `id`'s home.
    fn place(&mut self, slot: u32, id: JobId) {
        let mask = self.table.len() - 1;
        let home = self.home(id);
        let mut i = home;
        while self.table[i] != EMPTY {
            i = (i + 1) & mask;
        }
        self.table[i] = slot;
        // A distance of exactly `FAR` is stored as "far" too: it is then
        // computed from the id, which is always right.
        self.dist[i] = u8::try_from(i.wrapping_sub(home) & mask).unwrap_or(FAR);
    }

    fn rehash(&mut self, cap: usize, key: impl Fn(u32) -> JobId) {
        let old = std::mem::replace(&mut self.table, vec![EMPTY; cap]);
        self.dist = vec![0; cap];
        for s in old.into_iter().filter(|s| *s != EMPTY) {
            self.place(s, key(s));
        }
    }

    fn insert(&mut self, slot: u32, id: JobId, key: impl Fn(u32) -> JobId) {
        self.reserve(1, &key);
        self.place(slot, id);
        self.len += 1;
    }

    /// Removes `id`, which maps to `slot` (linear probing with backward-shift
    /// deletion: no tombstones). Reads a job record only for an entry more than
    /// `FAR` buckets from its home.
    fn remove(&mut self, id: JobId, slot: u32, key: impl Fn(u32) -> JobId) {
        if self.table.is_empty() {
            return;
        }
        let mask = self.table.len() - 1;
        let mut i = self.home(id);
        loop {
            let s = self.table[i];
            if s == EMPTY {
                return;
            }
            if s == slot {
                break;
            }
            i = (i + 1) & mask;
        }
        self.len -= 1;
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let s = self.table[j];
            if s == EMPTY {
                break;
            }
            let d = match self.dist[j] {
                FAR => j.wrapping_sub(self.home(key(s))) & mask,
                d => usize::from(d),
            };
            // Move `s` into the hole unless its home lies cyclically in
            // (hole, j], i.e. unless it sits closer to home than the hole.
            let gap = j.wrapping_sub(hole) & mask;
            if d >= gap {
                self.table[hole] = s;
                self.dist[hole] = u8::try_from(d - gap).unwrap_or(FAR);
                hole = j;
            }
        }
        self.table[hole] = EMPTY;
        self.dist[hole] = 0;
    }
}

/// A job definition resolved (zones, anchors) and compiled to the compact form
/// the core stores. Preparing is most of the work of adding a job and needs no
/// access to the core, so a runtime can do it on the caller's thread.
#[derive(Debug)]
pub struct PreparedJob {
    trigger: Compiled,
    policies: Option<Box<JobPolicies>>,
    name: Option<String>,
}

impl PreparedJob {
    /// Resolves `spec` against `now` and `zone` ([`TriggerSpec::resolve`]).
    ///
    /// # Errors
    /// A [`TriggerError`] when the trigger cannot be used.
    pub fn new(
        spec: JobSpec,
        now: Timestamp,
        zone: &TimeZone,
    ) -> Result<PreparedJob, TriggerError> {
        let trigger = Compiled::new(spec.trigger.resolve(now, zone)?);
        let policies = (spec.policies != JobPolicies::default()).then(|| Box::new(spec.policies));
        Ok(PreparedJob {
            trigger,
            policies,
            name: spec.name,
        })
    }

    /// The resolved trigger.
    pub fn trigger(&self) -> TriggerSpec {
        self.trigger.to_spec()
    }
}

/// Configuration of a [`Core`].
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The zone for triggers that do not name one.
    pub zone: TimeZone,
    /// The seed for jitter (same seed, same delays).
    pub jitter_seed: u64,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            zone: TimeZone::UTC,
            jitter_seed: 0,
        }
    }
}

/// Rarely needed per-job data, allocated only when first needed (a name,
/// non-default policies, an error or history to keep, a queued occurrence).
#[derive(Debug, Default)]
struct Extra {
    name: Option<String>,
    /// `None` for the default policies (boxed so that a named job with default
    /// policies pays 8 bytes for them, not a whole `JobPolicies`).
    policies: Option<Box<JobPolicies>>,
    last_error: Option<Arc<str>>,
    history: VecDeque<RunReport>,
    queued_at: i64,
}

#[derive(Debug)]
struct JobRec<P> {
    id: JobId,
    trigger: Compiled,
    /// The watermark: the next occurrence not yet turned into a run.
    next: i64,
    created: i64,
    last_run: i64,
    run_count: u32,
    /// Bumped whenever the job's queue entry is replaced, so older entries are
    /// recognised as stale.
    generation: u32,
    running: u16,
    flags: u8,
    /// `None` until a run ends, then the last outcome; a terminal status once the
    /// job is finished.
    last_outcome: Option<Outcome>,
    terminal: Option<JobStatus>,
    extra: Option<Box<Extra>>,
    payload: P,
}

static DEFAULT_POLICIES: std::sync::LazyLock<JobPolicies> =
    std::sync::LazyLock::new(JobPolicies::default);

impl<P> JobRec<P> {
    fn policies(&self) -> &JobPolicies {
        self.extra
            .as_deref()
            .and_then(|x| x.policies.as_deref())
            .unwrap_or(&DEFAULT_POLICIES)
    }
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }
    fn is_manual(&self) -> bool {
        self.trigger.is_manual()
    }
    fn status(&self) -> JobStatus {
        if let Some(t) = self.terminal {
            t
        } else if self.flags & F_PAUSED != 0 {
            JobStatus::Paused
        } else if self.flags & F_BLOCKED != 0 {
            JobStatus::Blocked
        } else if self.running > 0 {
            JobStatus::Running
        } else {
            JobStatus::Pending
        }
    }
}

#[derive(Debug)]
struct RunRec {
    job: JobId,
    job_slot: u32,
    scheduled_at: i64,
    started: i64,
    attempt: u32,
    flags: u8,
    last_error: Option<Arc<str>>,
}

#[derive(Debug)]
struct RunSlot {
    generation: u32,
    /// Bumped on every attempt start and end, so a stale timeout entry is ignored.
    tgen: u32,
    rec: Option<RunRec>,
}

/// The scheduling state machine. `P` is the per-job payload handed back in
/// [`StartRun`] (the runtime stores the handler there; tests use `()`).
///
/// ```
/// use jiff::Timestamp;
/// use myrmex_core::{Action, AttemptResult, Core, CoreConfig, JobId, JobSpec, every};
/// use std::time::Duration;
///
/// let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
/// let mut core = Core::new(CoreConfig::default());
/// core.add(t0, JobId(1), JobSpec::new(every(Duration::from_secs(10))), None, ()).unwrap();
/// assert_eq!(core.next_wake(), Some("2026-01-01T00:00:10Z".parse().unwrap()));
///
/// let mut out = Vec::new();
/// let now = "2026-01-01T00:00:10Z".parse().unwrap();
/// core.poll(now, &mut out);
/// let Some(Action::Start(start)) = out.pop() else { panic!("expected a start") };
/// assert_eq!(start.scheduled_at, now);
/// core.finish(now, start.run, start.attempt, AttemptResult::Succeeded, &mut out).unwrap();
/// assert_eq!(core.next_wake(), Some("2026-01-01T00:00:20Z".parse().unwrap()));
/// ```
#[derive(Debug)]
pub struct Core<P> {
    config: CoreConfig,
    jobs: Vec<Option<JobRec<P>>>,
    /// Free slots with the generation they had, so a reused slot never matches
    /// a stale queue entry.
    free_jobs: Vec<(u32, u32)>,
    index: SlotIndex,
    runs: Vec<RunSlot>,
    free_runs: Vec<u32>,
    active_runs: usize,
    queue: DueQueue,
}

impl<P: Clone> Core<P> {
    /// An empty core.
    pub fn new(config: CoreConfig) -> Core<P> {
        Core {
            config,
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            index: SlotIndex::default(),
            runs: Vec::new(),
            free_runs: Vec::new(),
            active_runs: 0,
            queue: DueQueue::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    /// How many jobs the table holds.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// How many runs are active (running or waiting for a retry).
    pub fn active_runs(&self) -> usize {
        self.active_runs
    }

    /// Reserves room for `additional` more jobs.
    pub fn reserve(&mut self, additional: usize) {
        self.jobs.reserve(additional);
        let jobs = &self.jobs;
        self.index.reserve(additional, |s| key_of(jobs, s));
        self.queue.reserve(additional);
    }

    /// Whether a job with this id is in the table.
    pub fn contains(&self, id: JobId) -> bool {
        self.lookup(id).is_some()
    }

    /// Adds a job. Its trigger is resolved against `now` and the configured zone
    /// ([`TriggerSpec::resolve`]). With `restored`, the job continues from saved
    /// state: its watermark, run count and held status.
    ///
    /// A new one-shot whose instant is already past fires at once (late, so the
    /// misfire policy decides); a new recurring job's first fire is its first
    /// occurrence at or after `now`.
    ///
    /// # Errors
    /// [`CoreError::DuplicateJob`], or [`CoreError::Trigger`] when the trigger
    /// cannot be resolved.
    pub fn add(
        &mut self,
        now: Timestamp,
        id: JobId,
        spec: JobSpec,
        restored: Option<RestoredState>,
        payload: P,
    ) -> Result<(), CoreError> {
        let prepared = PreparedJob::new(spec, now, &self.config.zone).map_err(|source| {
            CoreError::Trigger {
                id,
                source: Box::new(source),
            }
        })?;
        self.add_prepared(now, id, prepared, restored, payload)
    }

    /// [`Core::add`] for a job prepared beforehand (possibly on another thread).
    ///
    /// # Errors
    /// [`CoreError::DuplicateJob`].
    pub fn add_prepared(
        &mut self,
        now: Timestamp,
        id: JobId,
        prepared: PreparedJob,
        restored: Option<RestoredState>,
        payload: P,
    ) -> Result<(), CoreError> {
        if self.lookup(id).is_some() {
            return Err(CoreError::DuplicateJob { id });
        }
        let PreparedJob {
            trigger,
            policies,
            name,
        } = prepared;
        let now_ns = ns(now);
        let extra = (name.is_some() || policies.is_some()).then(|| {
            Box::new(Extra {
                name,
                policies,
                ..Extra::default()
            })
        });
        let mut rec = JobRec {
            id,
            next: NEVER,
            created: now_ns,
            last_run: NEVER,
            run_count: 0,
            running: 0,
            generation: 0,
            flags: 0,
            last_outcome: None,
            terminal: None,
            extra,
            payload,
            trigger,
        };
        match restored {
            Some(r) => {
                rec.created = ns(r.created_at);
                rec.next = r.next_run_at.map_or(NEVER, ns);
                rec.last_run = r.last_run_at.map_or(NEVER, ns);
                rec.run_count = r.run_count;
                rec.last_outcome = r.last_outcome;
                rec.flags = match r.status {
                    JobStatus::Paused => F_PAUSED,
                    JobStatus::Blocked => F_BLOCKED,
                    _ => 0,
                };
            }
            None => rec.next = initial_next(&rec.trigger, now_ns),
        }
        let slot = match self.free_jobs.pop() {
            Some((s, generation)) => {
                rec.generation = generation.wrapping_add(1);
                self.jobs[s as usize] = Some(rec);
                s
            }
            None => {
                let s = u32::try_from(self.jobs.len()).expect("fewer than 2^32 jobs");
                self.jobs.push(Some(rec));
                s
            }
        };
        let jobs = &self.jobs;
        self.index.insert(slot, id, |s| key_of(jobs, s));
        self.arm(slot);
        Ok(())
    }

    /// Removes a job (user cancellation): no further fires; its active runs are
    /// told to stop (runs waiting for a retry end at once as cancelled).
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn cancel(
        &mut self,
        now: Timestamp,
        id: JobId,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), CoreError> {
        let slot = self.slot_of(id)?;
        for rs in 0..self.runs.len() {
            let run_id = RunId(u64::from(self.runs[rs].generation) << 32 | rs as u64);
            let Some(run) = &mut self.runs[rs].rec else {
                continue;
            };
            if run.job != id {
                continue;
            }
            run.flags |= R_CANCELLED;
            if run.flags & R_WAITING != 0 {
                self.end_run(
                    ns(now),
                    rs as u32,
                    Outcome::Cancelled,
                    run_last_error(&self.runs[rs]),
                    out,
                );
            } else {
                out.push(Action::Cancel {
                    run: run_id,
                    reason: CancelReason::JobCancelled,
                });
            }
        }
        out.push(Action::Event(Event::JobCancelled { job: id }));
        let rec = self.jobs[slot as usize]
            .as_mut()
            .expect("indexed slot is live");
        rec.generation = rec.generation.wrapping_add(1);
        match rec.policies().retention {
            RetentionPolicy::Keep => rec.terminal = Some(JobStatus::Cancelled),
            _ => self.free_job(slot),
        }
        Ok(())
    }

    /// Holds a job's fires until [`Core::resume`]. Runs already active go on.
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn pause(&mut self, id: JobId) -> Result<(), CoreError> {
        self.set_flag(id, F_PAUSED, true)
    }

    /// Releases a paused job. Occurrences that fell due while it was paused are
    /// late, so its misfire policy decides what happens to them.
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn resume(&mut self, id: JobId) -> Result<(), CoreError> {
        self.set_flag(id, F_PAUSED, false)
    }

    /// Holds a job's fires on behalf of a dependency (status
    /// [`JobStatus::Blocked`]) until [`Core::unblock`].
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn block(&mut self, id: JobId) -> Result<(), CoreError> {
        self.set_flag(id, F_BLOCKED, true)
    }

    /// Lifts [`Core::block`].
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn unblock(&mut self, id: JobId) -> Result<(), CoreError> {
        self.set_flag(id, F_BLOCKED, false)
    }

    fn set_flag(&mut self, id: JobId, flag: u8, on: bool) -> Result<(), CoreError> {
        let slot = self.slot_of(id)?;
        let rec = self.jobs[slot as usize]
            .as_mut()
            .expect("indexed slot is live");
        if on {
            rec.flags |= flag;
        } else {
            rec.flags &= !flag;
        }
        self.arm(slot);
        Ok(())
    }

    /// Replaces a job's trigger; the next fire is the new trigger's first
    /// occurrence at or after `now`.
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`] or [`CoreError::Trigger`].
    pub fn reschedule(
        &mut self,
        now: Timestamp,
        id: JobId,
        trigger: TriggerSpec,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), CoreError> {
        let slot = self.slot_of(id)?;
        let trigger =
            trigger
                .resolve(now, &self.config.zone)
                .map_err(|source| CoreError::Trigger {
                    id,
                    source: Box::new(source),
                })?;
        let rec = self.jobs[slot as usize]
            .as_mut()
            .expect("indexed slot is live");
        rec.trigger = Compiled::new(trigger);
        rec.next = initial_next(&rec.trigger, ns(now));
        rec.terminal = None;
        self.arm(slot);
        self.maybe_finish(slot, out);
        Ok(())
    }

    /// Turns an occurrence of a job into a run now, as if its trigger had fired
    /// at `scheduled_at` (for manual and downstream jobs: pipelines release them).
    /// The overlap policy and `max_runs` apply; the job's own schedule is
    /// unchanged.
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn release(
        &mut self,
        now: Timestamp,
        id: JobId,
        scheduled_at: Timestamp,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), CoreError> {
        let slot = self.slot_of(id)?;
        let watermark = self.jobs[slot as usize].as_ref().map_or(NEVER, |r| r.next);
        self.fire(slot, ns(scheduled_at), watermark, ns(now), out);
        Ok(())
    }

    /// Starts a run of a job at once, outside its schedule (ignoring the overlap
    /// policy and `max_runs`). Its occurrence key is `now`.
    ///
    /// # Errors
    /// [`CoreError::UnknownJob`].
    pub fn run_now(
        &mut self,
        now: Timestamp,
        id: JobId,
        out: &mut Vec<Action<P>>,
    ) -> Result<RunId, CoreError> {
        let slot = self.slot_of(id)?;
        let watermark = self.jobs[slot as usize].as_ref().map_or(NEVER, |r| r.next);
        let now_ns = ns(now);
        Ok(self.start_run(slot, now_ns, watermark, now_ns, out))
    }

    /// Turns everything due at or before `now` into actions.
    pub fn poll(&mut self, now: Timestamp, out: &mut Vec<Action<P>>) {
        self.poll_bounded(now, out, usize::MAX);
    }

    /// [`Core::poll`] for at most `max` entries of the due queue (fires,
    /// retries, timeouts; stale ones included); returns whether more are due.
    /// A driver that dispatches a burst in such chunks can hand the first
    /// attempts over, and take in the ends of those that finished, before the
    /// whole burst has been turned into actions. Entries are taken in the same
    /// order either way.
    pub fn poll_bounded(&mut self, now: Timestamp, out: &mut Vec<Action<P>>, max: usize) -> bool {
        let now_ns = ns(now);
        let mut n = 0;
        while let Some(top) = self.queue.peek() {
            if top.at > now_ns {
                return false;
            }
            if n == max {
                return true;
            }
            n += 1;
            if n == BULK_AFTER {
                self.queue.stage_burst(now_ns);
            }
            self.queue.pop();
            match top.key >> KIND_SHIFT {
                KIND_FIRE => self.due_fire(top, now_ns, out),
                KIND_RETRY => self.due_retry(top, now_ns, out),
                _ => self.due_timeout(top, out),
            }
        }
        false
    }

    /// When [`Core::poll`] next has something to do (`None`: nothing scheduled).
    pub fn next_wake(&mut self) -> Option<Timestamp> {
        while let Some(top) = self.queue.peek() {
            if self.is_live(top) {
                return Some(ts(top.at));
            }
            self.queue.pop();
        }
        None
    }

    /// Records the end of an attempt. A failed or timed-out attempt is retried
    /// if the retry policy allows; otherwise the run ends and is reported.
    ///
    /// # Errors
    /// [`CoreError::StaleAttempt`] when `run` is not active or `attempt` is not
    /// its current attempt (the report is ignored).
    pub fn finish(
        &mut self,
        now: Timestamp,
        run: RunId,
        attempt: u32,
        result: AttemptResult,
        out: &mut Vec<Action<P>>,
    ) -> Result<(), CoreError> {
        let stale = CoreError::StaleAttempt { run, attempt };
        let rs = run.index();
        let now_ns = ns(now);
        let seed = self.config.jitter_seed;
        let Some(slot) = self.runs.get_mut(rs) else {
            return Err(stale);
        };
        if u64::from(slot.generation) != run.0 >> 32 {
            return Err(stale);
        }
        let Some(rec) = slot.rec.as_mut() else {
            return Err(stale);
        };
        if rec.attempt != attempt || rec.flags & R_WAITING != 0 {
            return Err(stale);
        }
        slot.tgen = slot.tgen.wrapping_add(1);
        let (outcome, error) = match result {
            _ if rec.flags & R_TIMED_OUT != 0 => {
                (Outcome::TimedOut, Some(Arc::from("attempt timed out")))
            }
            AttemptResult::Succeeded => (Outcome::Succeeded, None),
            AttemptResult::Failed(_) if rec.flags & R_CANCELLED != 0 => (Outcome::Cancelled, None),
            AttemptResult::Failed(m) => (Outcome::Failed, Some(Arc::from(m))),
        };
        let job = rec.job;
        let scheduled_at = rec.scheduled_at;
        let retryable =
            matches!(outcome, Outcome::Failed | Outcome::TimedOut) && rec.flags & R_CANCELLED == 0;
        let job_slot = rec.job_slot;
        if retryable && let Some(j) = self.jobs.get(job_slot as usize).and_then(Option::as_ref) {
            let retry = j.policies().retry;
            if j.id == job
                && let Some(delay) = retry.delay(attempt)
            {
                let extra = jitter(
                    seed,
                    job.0,
                    scheduled_at,
                    u64::from(attempt),
                    retry.jitter(),
                );
                let at = now_ns.saturating_add(dur_ns(delay)).saturating_add(extra);
                let run_slot = &mut self.runs[rs];
                let rec = run_slot.rec.as_mut().expect("checked above");
                rec.flags = (rec.flags & !R_TIMED_OUT) | R_WAITING;
                rec.last_error = error.clone();
                let key = KIND_RETRY << KIND_SHIFT | (run_slot.generation & GEN_MASK);
                self.queue.push(Due {
                    at,
                    slot: rs as u32,
                    key,
                });
                out.push(Action::Event(Event::RunRetrying {
                    job,
                    scheduled_at: ts(scheduled_at),
                    failed_attempt: attempt,
                    outcome,
                    error,
                    retry_at: ts(at),
                }));
                return Ok(());
            }
        }
        self.end_run(now_ns, rs as u32, outcome, error, out);
        Ok(())
    }

    /// Takes back an attempt that an [`Action::Start`] from [`Core::poll`]
    /// asked for but that never began executing, as if its due-queue entry had
    /// not been taken yet. For a driver that polls ahead of a due instant (to
    /// have a burst ready when it comes) and holds the attempts until then: a
    /// cancel, pause or reschedule of their job arriving before the instant is
    /// applied after withdrawing them, so they never start.
    ///
    /// A first attempt is undone: the run is dropped without a report and its
    /// job's run count and watermark go back, so the occurrence is due again
    /// (and fires unless the job is then paused, cancelled or rescheduled). A
    /// retry goes back to waiting, due again at `due` (the instant the driver
    /// polled as of). The job's last-run time is not restored.
    ///
    /// # Errors
    /// [`CoreError::StaleAttempt`] when `run` is not active or `attempt` is not
    /// its current, executing attempt.
    pub fn withdraw(&mut self, run: RunId, attempt: u32, due: Timestamp) -> Result<(), CoreError> {
        let stale = CoreError::StaleAttempt { run, attempt };
        let rs = run.index();
        let Some(slot) = self.runs.get_mut(rs) else {
            return Err(stale);
        };
        if u64::from(slot.generation) != run.0 >> 32 {
            return Err(stale);
        }
        let Some(rec) = slot.rec.as_mut() else {
            return Err(stale);
        };
        if rec.attempt != attempt || rec.flags & R_WAITING != 0 {
            return Err(stale);
        }
        // Any timeout armed for the attempt is now stale.
        slot.tgen = slot.tgen.wrapping_add(1);
        if attempt > 1 {
            rec.attempt -= 1;
            rec.flags = (rec.flags & !R_TIMED_OUT) | R_WAITING;
            let key = KIND_RETRY << KIND_SHIFT | (slot.generation & GEN_MASK);
            self.queue.push(Due {
                at: ns(due),
                slot: rs as u32,
                key,
            });
            return Ok(());
        }
        let rec = slot.rec.take().expect("checked above");
        slot.generation = slot.generation.wrapping_add(1);
        self.free_runs.push(rs as u32);
        self.active_runs -= 1;
        let job_slot = rec.job_slot;
        if let Some(j) = self.jobs[job_slot as usize]
            .as_mut()
            .filter(|j| j.id == rec.job)
        {
            j.running = j.running.saturating_sub(1);
            j.run_count = j.run_count.saturating_sub(1);
            if rec.scheduled_at < j.next {
                j.next = rec.scheduled_at;
            }
            self.arm(job_slot);
        }
        Ok(())
    }

    /// Tells the core the wall clock moved by `delta` more than elapsed time
    /// did (negative: set back). Retry and timeout deadlines move with it (they
    /// measure elapsed time). When the clock was set back, elapsed-time triggers
    /// (intervals, sub-day recurrences) are re-anchored by `delta`, so they keep
    /// firing at their period instead of waiting for the wall clock to catch up;
    /// wall-clock triggers (cron, calendar recurrences, one-shots) keep their
    /// watermark, so no occurrence fires twice. A jump forward is left to the
    /// misfire policy.
    pub fn clock_jumped(&mut self, now: Timestamp, delta: SignedDuration) {
        let d = dur_ns(delta);
        if d == 0 {
            return;
        }
        self.queue.update_all(|e| {
            if e.key >> KIND_SHIFT != KIND_FIRE {
                e.at = e.at.saturating_add(d);
            }
        });
        if d > 0 {
            return;
        }
        let now_ns = ns(now);
        for slot in 0..self.jobs.len() {
            let Some(rec) = self.jobs[slot].as_mut() else {
                continue;
            };
            if rec.next == NEVER || !rec.trigger.is_elapsed() {
                continue;
            }
            rec.trigger.shift_elapsed(d);
            let shifted = rec.next.saturating_add(d).min(now_ns);
            rec.next = rec.trigger.next_after(shifted.saturating_sub(1));
            self.arm(slot as u32);
        }
    }

    /// A snapshot of one job.
    pub fn snapshot(&self, id: JobId) -> Option<JobSnapshot> {
        let slot = self.lookup(id)?;
        self.jobs[slot as usize].as_ref().map(snapshot)
    }

    /// Snapshots of all jobs (with `filter`, only those with that status), by id.
    pub fn snapshots(&self, filter: Option<JobStatus>) -> Vec<JobSnapshot> {
        let mut v: Vec<JobSnapshot> = self
            .jobs
            .iter()
            .filter_map(Option::as_ref)
            .filter(|r| filter.is_none_or(|f| r.status() == f))
            .map(snapshot)
            .collect();
        v.sort_by_key(|s| s.id);
        v
    }

    /// A job's status.
    pub fn status(&self, id: JobId) -> Option<JobStatus> {
        let slot = self.lookup(id)?;
        self.jobs[slot as usize].as_ref().map(JobRec::status)
    }

    /// A job's payload.
    pub fn payload(&self, id: JobId) -> Option<&P> {
        let slot = self.lookup(id)?;
        self.jobs[slot as usize].as_ref().map(|r| &r.payload)
    }

    // ---- internals -------------------------------------------------------

    fn lookup(&self, id: JobId) -> Option<u32> {
        let jobs = &self.jobs;
        self.index.get(id, |s| key_of(jobs, s))
    }

    fn slot_of(&self, id: JobId) -> Result<u32, CoreError> {
        self.lookup(id).ok_or(CoreError::UnknownJob { id })
    }

    fn is_live(&self, e: Due) -> bool {
        let g = e.key & GEN_MASK;
        match e.key >> KIND_SHIFT {
            KIND_FIRE => self.jobs[e.slot as usize]
                .as_ref()
                .is_some_and(|r| r.generation & GEN_MASK == g),
            KIND_RETRY => {
                let s = &self.runs[e.slot as usize];
                s.generation & GEN_MASK == g
                    && s.rec.as_ref().is_some_and(|r| r.flags & R_WAITING != 0)
            }
            _ => {
                let s = &self.runs[e.slot as usize];
                s.tgen & GEN_MASK == g && s.rec.is_some()
            }
        }
    }

    /// Puts the job's next fire in the queue (or takes it out when held,
    /// exhausted or finished), invalidating any older entry.
    fn arm(&mut self, slot: u32) {
        let seed = self.config.jitter_seed;
        let Some(rec) = self.jobs[slot as usize].as_mut() else {
            return;
        };
        rec.generation = rec.generation.wrapping_add(1);
        if rec.next == NEVER || rec.flags & (F_PAUSED | F_BLOCKED) != 0 || rec.terminal.is_some() {
            return;
        }
        let at = match rec.policies().jitter {
            Some(j) => rec
                .next
                .saturating_add(jitter(seed, rec.id.0, rec.next, 0, j)),
            None => rec.next,
        };
        let key = KIND_FIRE << KIND_SHIFT | (rec.generation & GEN_MASK);
        self.queue.push(Due { at, slot, key });
    }

    fn due_fire(&mut self, e: Due, now: i64, out: &mut Vec<Action<P>>) {
        if !self.is_live(e) {
            return;
        }
        let slot = e.slot;
        let rec = self.jobs[slot as usize].as_ref().expect("live");
        let s = rec.next;
        let job = rec.id;
        let pol = rec.policies();
        let late = now.saturating_sub(e.at);
        if late <= dur_ns(pol.misfire_grace) {
            let n = rec.trigger.next_after(s);
            self.jobs[slot as usize].as_mut().expect("live").next = n;
            self.fire(slot, s, n, now, out);
        } else {
            let misfire = pol.misfire;
            let mut fires: Vec<i64> = Vec::new();
            let (mut prev, mut last, mut count) = (NEVER, s, 1u64);
            if misfire == MisfirePolicy::RunAll {
                fires.push(s);
            }
            let mut n = rec.trigger.next_after(s);
            while n <= now && count < MISFIRE_SCAN_LIMIT {
                prev = last;
                last = n;
                count += 1;
                if misfire == MisfirePolicy::RunAll
                    && fires.len() < MisfirePolicy::RUN_ALL_LIMIT as usize
                {
                    fires.push(n);
                }
                n = rec.trigger.next_after(n);
            }
            if n <= now {
                n = rec.trigger.next_after(now);
            }
            self.jobs[slot as usize].as_mut().expect("live").next = n;
            let missed = |first: i64, last: i64, count: u64| {
                Action::Event(Event::Missed {
                    job,
                    first: ts(first),
                    last: ts(last),
                    count,
                })
            };
            match misfire {
                MisfirePolicy::Skip => out.push(missed(s, last, count)),
                MisfirePolicy::RunAll => {
                    let ran = fires.len() as u64;
                    let last_fire = *fires.last().expect("at least one");
                    for (i, f) in fires.iter().enumerate() {
                        let wm = fires.get(i + 1).copied().unwrap_or(n);
                        self.fire(slot, *f, wm, now, out);
                    }
                    if count > ran {
                        let after = self.jobs[slot as usize]
                            .as_ref()
                            .map_or(NEVER, |r| r.trigger.next_after(last_fire));
                        out.push(missed(after, last, count - ran));
                    }
                }
                _ => {
                    if count > 1 {
                        out.push(missed(s, prev, count - 1));
                    }
                    self.fire(slot, last, n, now, out);
                }
            }
        }
        if let Some(rec) = self.jobs[slot as usize].as_mut()
            && rec.policies().max_runs.is_some_and(|m| rec.run_count >= m)
        {
            rec.next = NEVER;
        }
        self.arm(slot);
        self.maybe_finish(slot, out);
    }

    /// One occurrence is due: start it, queue it or skip it.
    fn fire(&mut self, slot: u32, s: i64, watermark: i64, now: i64, out: &mut Vec<Action<P>>) {
        let Some(rec) = self.jobs[slot as usize].as_mut() else {
            return;
        };
        let job = rec.id;
        let pol = rec.policies();
        let skipped = |reason| {
            Action::Event(Event::Skipped {
                job,
                scheduled_at: ts(s),
                reason,
            })
        };
        if pol.max_runs.is_some_and(|m| rec.run_count >= m) {
            out.push(skipped(SkipReason::MaxRuns));
            return;
        }
        if rec.running >= pol.overlap.limit() {
            if pol.overlap == OverlapPolicy::QueueOne && rec.flags & F_QUEUED == 0 {
                rec.flags |= F_QUEUED;
                rec.extra().queued_at = s;
            } else {
                out.push(skipped(SkipReason::Overlap));
            }
            return;
        }
        self.start_run(slot, s, watermark, now, out);
    }

    fn start_run(
        &mut self,
        slot: u32,
        s: i64,
        watermark: i64,
        now: i64,
        out: &mut Vec<Action<P>>,
    ) -> RunId {
        let rec = self.jobs[slot as usize].as_mut().expect("live job");
        rec.running = rec.running.saturating_add(1);
        rec.run_count = rec.run_count.saturating_add(1);
        rec.last_run = now;
        let job = rec.id;
        let timeout = rec.policies().timeout;
        let payload = rec.payload.clone();
        let run_rec = RunRec {
            job,
            job_slot: slot,
            scheduled_at: s,
            started: now,
            attempt: 1,
            flags: 0,
            last_error: None,
        };
        let rs = match self.free_runs.pop() {
            Some(rs) => {
                self.runs[rs as usize].rec = Some(run_rec);
                rs
            }
            None => {
                let rs = u32::try_from(self.runs.len()).expect("fewer than 2^32 runs");
                self.runs.push(RunSlot {
                    generation: 0,
                    tgen: 0,
                    rec: Some(run_rec),
                });
                rs
            }
        };
        self.active_runs += 1;
        let run = RunId(u64::from(self.runs[rs as usize].generation) << 32 | u64::from(rs));
        let deadline = self.arm_timeout(rs, now, timeout);
        out.push(Action::Start(StartRun {
            run,
            job,
            scheduled_at: ts(s),
            attempt: 1,
            deadline,
            watermark: opt_ts(watermark),
            payload,
        }));
        run
    }

    fn arm_timeout(
        &mut self,
        rs: u32,
        now: i64,
        timeout: Option<SignedDuration>,
    ) -> Option<Timestamp> {
        let slot = &mut self.runs[rs as usize];
        slot.tgen = slot.tgen.wrapping_add(1);
        let t = timeout?;
        let at = now.saturating_add(dur_ns(t));
        let key = KIND_TIMEOUT << KIND_SHIFT | (slot.tgen & GEN_MASK);
        self.queue.push(Due { at, slot: rs, key });
        Some(ts(at))
    }

    fn due_retry(&mut self, e: Due, now: i64, out: &mut Vec<Action<P>>) {
        if !self.is_live(e) {
            return;
        }
        let rs = e.slot;
        let rec = self.runs[rs as usize].rec.as_mut().expect("live");
        rec.flags &= !R_WAITING;
        rec.attempt += 1;
        let (job, job_slot, s, attempt) = (rec.job, rec.job_slot, rec.scheduled_at, rec.attempt);
        let run = RunId(u64::from(self.runs[rs as usize].generation) << 32 | u64::from(rs));
        let Some(j) = self.jobs[job_slot as usize]
            .as_ref()
            .filter(|j| j.id == job)
        else {
            self.end_run(now, rs, Outcome::Cancelled, None, out);
            return;
        };
        let timeout = j.policies().timeout;
        let payload = j.payload.clone();
        let watermark = opt_ts(j.next);
        let deadline = self.arm_timeout(rs, now, timeout);
        out.push(Action::Start(StartRun {
            run,
            job,
            scheduled_at: ts(s),
            attempt,
            deadline,
            watermark,
            payload,
        }));
    }

    fn due_timeout(&mut self, e: Due, out: &mut Vec<Action<P>>) {
        if !self.is_live(e) {
            return;
        }
        let rs = e.slot as usize;
        let rec = self.runs[rs].rec.as_mut().expect("live");
        if rec.flags & R_WAITING != 0 {
            return;
        }
        rec.flags |= R_TIMED_OUT;
        out.push(Action::Cancel {
            run: RunId(u64::from(self.runs[rs].generation) << 32 | rs as u64),
            reason: CancelReason::Timeout,
        });
    }

    /// Ends a run for good: frees it, reports it, updates its job.
    fn end_run(
        &mut self,
        now: i64,
        rs: u32,
        outcome: Outcome,
        error: Option<Arc<str>>,
        out: &mut Vec<Action<P>>,
    ) {
        let slot = &mut self.runs[rs as usize];
        let run = slot.rec.take().expect("live run");
        let run_id = RunId(u64::from(slot.generation) << 32 | u64::from(rs));
        slot.generation = slot.generation.wrapping_add(1);
        slot.tgen = slot.tgen.wrapping_add(1);
        self.free_runs.push(rs);
        self.active_runs -= 1;
        let report = RunReport {
            run: run_id,
            job: run.job,
            scheduled_at: ts(run.scheduled_at),
            started_at: ts(run.started),
            finished_at: ts(now),
            attempts: run.attempt,
            outcome,
            error: error.or(run.last_error),
        };
        let job_slot = run.job_slot;
        if let Some(j) = self.jobs[job_slot as usize]
            .as_mut()
            .filter(|j| j.id == run.job)
        {
            j.running = j.running.saturating_sub(1);
            j.last_outcome = Some(outcome);
            // A job that is about to be dropped (its last run of an exhausted
            // trigger) keeps no history: nobody can read it, and skipping it saves
            // two allocations per one-shot.
            let dropped_next = j.next == NEVER
                && j.running == 0
                && j.flags & F_QUEUED == 0
                && j.terminal.is_none()
                && !j.is_manual()
                && j.policies().retention == RetentionPolicy::Remove;
            let keep = j.policies().history as usize;
            if !dropped_next && (keep > 0 || report.error.is_some() || j.extra.is_some()) {
                let x = j.extra();
                x.last_error = report.error.clone();
                if keep > 0 {
                    if x.history.len() >= keep {
                        x.history.pop_front();
                    }
                    x.history.push_back(report.clone());
                }
            }
            if j.flags & F_QUEUED != 0 && j.terminal.is_none() {
                j.flags &= !F_QUEUED;
                let queued = j.extra().queued_at;
                let wm = j.next;
                self.fire(job_slot, queued, wm, now, out);
            }
        }
        out.push(Action::Event(match outcome {
            Outcome::Succeeded => Event::RunSucceeded(report),
            Outcome::Failed => Event::RunFailed(report),
            Outcome::TimedOut => Event::RunTimedOut(report),
            Outcome::Cancelled => Event::RunCancelled(report),
        }));
        if self.jobs[job_slot as usize]
            .as_ref()
            .is_some_and(|j| j.id == run.job)
        {
            self.maybe_finish(job_slot, out);
        }
    }

    /// Ends the job if its trigger is exhausted and no run is active.
    fn maybe_finish(&mut self, slot: u32, out: &mut Vec<Action<P>>) {
        let Some(rec) = self.jobs[slot as usize].as_mut() else {
            return;
        };
        if rec.next != NEVER || rec.running > 0 || rec.is_manual() || rec.terminal.is_some() {
            return;
        }
        let status = match rec.last_outcome {
            None | Some(Outcome::Succeeded) => JobStatus::Completed,
            _ => JobStatus::Failed,
        };
        out.push(Action::Event(Event::JobFinished {
            job: rec.id,
            status,
        }));
        match rec.policies().retention {
            RetentionPolicy::Keep => rec.terminal = Some(status),
            _ => self.free_job(slot),
        }
    }

    fn free_job(&mut self, slot: u32) {
        let Some(id) = self.jobs[slot as usize].as_ref().map(|r| r.id) else {
            return;
        };
        let jobs = &self.jobs;
        self.index.remove(id, slot, |s| key_of(jobs, s));
        if let Some(rec) = self.jobs[slot as usize].take() {
            self.free_jobs.push((slot, rec.generation));
        }
    }
}

fn run_last_error(slot: &RunSlot) -> Option<Arc<str>> {
    slot.rec.as_ref().and_then(|r| r.last_error.clone())
}

/// A new job's first occurrence: one-shots fire even when already past (late,
/// so the misfire policy decides); everything else starts at `now`.
fn initial_next(trigger: &Compiled, now: i64) -> i64 {
    trigger
        .once_at()
        .unwrap_or_else(|| trigger.next_after(now.saturating_sub(1)))
}

fn snapshot<P>(rec: &JobRec<P>) -> JobSnapshot {
    let extra = rec.extra.as_deref();
    JobSnapshot {
        id: rec.id,
        name: extra.and_then(|x| x.name.clone()),
        trigger: rec.trigger.to_spec(),
        policies: rec.policies().clone(),
        status: rec.status(),
        created_at: ts(rec.created),
        last_run_at: opt_ts(rec.last_run),
        next_run_at: opt_ts(rec.next),
        run_count: rec.run_count,
        running: rec.running,
        last_outcome: rec.last_outcome,
        last_error: extra.and_then(|x| x.last_error.clone()),
        history: extra
            .map(|x| x.history.iter().cloned().collect())
            .unwrap_or_default(),
    }
}

impl<P> Core<P> {
    /// The size in bytes of one job record and one queue entry (for the
    /// footprint benchmark and a test that keeps them small).
    pub fn record_sizes() -> (usize, usize) {
        (size_of::<Option<JobRec<P>>>(), size_of::<Reverse<Due>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_stays_small() {
        let (job, due) = Core::<std::sync::Arc<dyn Fn() + Send + Sync>>::record_sizes();
        assert!(job <= 96, "job slot is {job} bytes");
        assert_eq!(due, 16);
    }

    /// A burst (most of a big heap due) is handed out through the sorted run in
    /// exactly the order of the heap: by time, then slot, also when jobs due
    /// in between are added while it drains, and when polled in chunks.
    #[test]
    fn a_burst_comes_out_in_heap_order() {
        use std::collections::BTreeSet;
        let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now = t0 + SignedDuration::from_secs(10_000);
        let mut core: Core<()> = Core::new(CoreConfig::default());
        let mut pending = BTreeSet::new();
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next_secs = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Mostly due (0..9000 s after t0), some not (up to 11000 s).
            (seed % 11_000) as i64
        };
        let mut add = |core: &mut Core<()>, pending: &mut BTreeSet<(i64, u64)>, id: u64| {
            let at = t0 + SignedDuration::from_secs(next_secs());
            let spec = JobSpec::new(TriggerSpec::once(at));
            core.add(now, JobId(id), spec, None, ()).unwrap();
            pending.insert((ns(at), id - 1));
        };
        for id in 1..=3000 {
            add(&mut core, &mut pending, id);
        }
        let mut out = Vec::new();
        let mut next_id = 3001;
        let mut staged_seen = false;
        loop {
            out.clear();
            let more = core.poll_bounded(now, &mut out, 100);
            staged_seen |= !core.queue.staged.is_empty();
            let got: Vec<(i64, u64)> = out
                .iter()
                .filter_map(|a| match a {
                    Action::Start(s) => Some((ns(s.scheduled_at), s.job.0 - 1)),
                    _ => None,
                })
                .collect();
            let want: Vec<(i64, u64)> = pending
                .iter()
                .copied()
                .filter(|(at, _)| *at <= ns(now))
                .take(100)
                .collect();
            assert_eq!(got, want);
            for w in &want {
                pending.remove(w);
            }
            if !more {
                break;
            }
            // Jobs added meanwhile (mostly due) merge into the order.
            for _ in 0..3 {
                add(&mut core, &mut pending, next_id);
                next_id += 1;
            }
        }
        assert!(staged_seen, "the burst path was not taken");
        assert!(pending.iter().all(|(at, _)| *at > ns(now)));
        assert_eq!(core.next_wake().map(ns), pending.first().map(|p| p.0));
    }

    /// Entries more than `FAR` buckets from home (300 ids with one home bucket)
    /// are found and removed as well, in any order.
    #[test]
    fn slot_index_handles_long_clusters() {
        let mut probe = SlotIndex::default();
        probe.rehash(512, |_| JobId(0));
        let target = probe.home(JobId(0));
        let ids: Vec<JobId> = (0u64..)
            .map(JobId)
            .filter(|id| probe.home(*id) == target)
            .take(300)
            .collect();
        for order in [0usize, 1, 7] {
            let mut index = SlotIndex::default();
            for (slot, id) in ids.iter().enumerate() {
                index.insert(slot as u32, *id, |s| ids[s as usize]);
            }
            let mut live: Vec<usize> = (0..ids.len()).collect();
            let mut k = 0;
            while !live.is_empty() {
                k = (k + order) % live.len();
                let slot = live.remove(k);
                index.remove(ids[slot], slot as u32, |s| ids[s as usize]);
                assert_eq!(index.get(ids[slot], |s| ids[s as usize]), None);
                for &other in &live {
                    assert_eq!(
                        index.get(ids[other], |s| ids[s as usize]),
                        Some(other as u32)
                    );
                }
            }
            assert_eq!(index.len, 0);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The slot index agrees with a `HashMap` under random inserts and removes.
        #[test]
        fn slot_index_matches_a_hash_map(ops in proptest::collection::vec((0u64..64, proptest::bool::ANY), 0..400)) {
            let mut keys: Vec<JobId> = Vec::new();
            let mut free: Vec<u32> = Vec::new();
            let mut index = SlotIndex::default();
            let mut reference = std::collections::HashMap::new();
            for (k, insert) in ops {
                let id = JobId(k.wrapping_mul(0x1000_0000_0000_0001));
                let present = reference.contains_key(&id);
                if insert && !present {
                    let slot = free.pop().unwrap_or_else(|| { keys.push(JobId(u64::MAX)); keys.len() as u32 - 1 });
                    keys[slot as usize] = id;
                    let k2 = keys.clone();
                    index.insert(slot, id, |s| k2[s as usize]);
                    reference.insert(id, slot);
                } else if !insert && present {
                    let k2 = keys.clone();
                    let slot = reference.remove(&id).unwrap();
                    index.remove(id, slot, |s| k2[s as usize]);
                    keys[slot as usize] = JobId(u64::MAX);
                    free.push(slot);
                }
                for probe in 0..64u64 {
                    let pid = JobId(probe.wrapping_mul(0x1000_0000_0000_0001));
                    proptest::prop_assert_eq!(index.get(pid, |s| keys[s as usize]), reference.get(&pid).copied());
                }
                proptest::prop_assert_eq!(index.len, reference.len());
            }
        }
    }
}
