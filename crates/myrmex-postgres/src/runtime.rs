//! [`Node`]: one process's protocol loop — materializer, claimer, heartbeat and a
//! worker pool — on top of [`PgStore`].

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use postgres::Transaction;
use serde_json::Value;

use crate::error::Result;
use crate::store::{ClaimedRun, Completion, ConnectOptions, PgStore};
use crate::types::RunId;

/// A job handler: gets the run's context, returns a small JSON result or an error
/// message (a failure, retried per the job's policy). A panic counts as a failure.
pub type Handler = Arc<dyn Fn(&mut RunContext) -> Result<Option<Value>, String> + Send + Sync>;

type Effect = Box<dyn FnMut(&mut Transaction<'_>) -> Result<(), postgres::Error> + Send>;

/// Timings and sizes of a [`Node`]. Defaults follow the cluster design.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Where and how to connect.
    pub options: ConnectOptions,
    /// Worker threads (runs executed at once).
    pub workers: usize,
    /// Materializer period (± 20 % jitter).
    pub tick: Duration,
    /// How far ahead occurrences are materialized (`available_at = scheduled_at`).
    pub lookahead: Duration,
    /// Longest idle wait between claims (NOTIFY usually wakes the node earlier).
    pub poll: Duration,
    /// Upper bound of the heartbeat period; it is also kept at or below a third of
    /// the shortest lease held.
    pub heartbeat: Duration,
    /// Local trust margin: `still_owned()` turns false this long (at most a quarter
    /// of the lease) before the lease would end, measured on the monotonic clock.
    pub trust_margin: Duration,
    /// Whether to LISTEN for the wake-up hint (turning it off leaves polling and
    /// the timers only; for comparisons).
    pub listen: bool,
    /// Host name recorded in `sched_node`.
    pub hostname: String,
    /// Version recorded in `sched_node`.
    pub version: String,
    /// How long a handler may run on after its job's `timeout` before the attempt
    /// is recorded as timed out without it. At the timeout the handler's
    /// [`RunContext::still_owned`] turns false and [`RunContext::timed_out`] true;
    /// a handler that returns within the grace has its attempt recorded as timed
    /// out then; one that does not keeps its worker busy, but its attempt is
    /// recorded as timed out (and retried per the job's policy) at the end of
    /// the grace, and whatever it returns later is dropped.
    pub timeout_grace: Duration,
    /// How often the node does its maintenance: archiving old terminal runs and
    /// forgetting long-gone nodes (± 20 % jitter; every node does it, `SKIP
    /// LOCKED` keeps them apart).
    pub maintenance_every: Duration,
    /// Terminal runs that ended longer ago than this (database clock) move from
    /// `sched_run` to `sched_run_history` once every run waiting on them has
    /// ended ([`PgStore::archive_runs`]). Default 7 days.
    pub retention: Duration,
    /// The most runs one archive statement moves; a maintenance pass runs up to
    /// ten of them.
    pub retention_batch: usize,
    /// Rows of nodes whose last heartbeat is older than this (database clock) and
    /// that hold no lease are deleted from `sched_node` ([`PgStore::forget_nodes`]).
    /// Default 24 hours. Until then, `status` shows them as stale.
    pub forget_nodes_after: Duration,
}

impl NodeConfig {
    /// How long this node may go without a heartbeat before it counts as stale:
    /// three heartbeat periods.
    #[must_use]
    pub fn stale_after(&self) -> Duration {
        self.heartbeat * 3
    }
}

impl NodeConfig {
    /// The design's defaults for `options`.
    #[must_use]
    pub fn new(options: ConnectOptions) -> NodeConfig {
        NodeConfig {
            options,
            workers: 8,
            tick: Duration::from_secs(1),
            lookahead: Duration::from_secs(2),
            poll: Duration::from_secs(1),
            heartbeat: Duration::from_secs(10),
            trust_margin: Duration::from_secs(2),
            listen: true,
            hostname: hostname(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            timeout_grace: Duration::from_secs(5),
            maintenance_every: Duration::from_secs(60),
            retention: Duration::from_secs(7 * 24 * 3600),
            retention_batch: 1000,
            forget_nodes_after: Duration::from_secs(24 * 3600),
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// The local view of a lease: the monotonic instant until which this node trusts
/// it still owns the run, and whether a heartbeat reported it lost.
#[derive(Debug)]
struct Lease {
    trusted_until: Mutex<Instant>,
    /// When the last renewal (or the claim) was sent.
    renewed_at: Mutex<Instant>,
    lost: AtomicBool,
    /// The job's timeout: when the attempt must stop, and its length.
    deadline: Option<(Instant, Duration)>,
    /// Set by whoever records the attempt's end first (its worker, or the
    /// heartbeat thread at the timeout's grace): the other one writes nothing.
    settled: AtomicBool,
}

impl Lease {
    fn new(run: &ClaimedRun, margin: Duration) -> Lease {
        Lease {
            trusted_until: Mutex::new(run.claimed_at + run.lease_ttl - margin),
            renewed_at: Mutex::new(run.claimed_at),
            lost: AtomicBool::new(false),
            deadline: run.timeout.map(|t| (run.claimed_at + t, t)),
            settled: AtomicBool::new(false),
        }
    }

    fn timed_out(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|(d, _)| now >= d)
    }
}

/// The error recorded for an attempt that ran past its job's timeout.
fn timeout_error(timeout: Duration, handler: Option<&str>) -> String {
    let mut msg = format!(
        "timed out after {:#}",
        jiff::SignedDuration::try_from(timeout).unwrap_or_default()
    );
    if let Some(h) = handler {
        msg.push_str(": ");
        msg.push_str(h);
    }
    msg
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a handler sees of its run.
pub struct RunContext {
    run: ClaimedRun,
    lease: Arc<Lease>,
    node_id: String,
    effects: Vec<Effect>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// The claimed run (ids, occurrence, attempt, payload).
    #[must_use]
    pub fn run(&self) -> &ClaimedRun {
        &self.run
    }

    /// The idempotency key (`job/scheduled_at[/stage]`), the same on every attempt
    /// and node: use it to make external effects idempotent.
    #[must_use]
    pub fn run_key(&self) -> String {
        self.run.run_key()
    }

    /// This node's id.
    #[must_use]
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Whether this attempt may still assume it owns the run: false once a heartbeat
    /// reported it lost, or once the local trust deadline (last successful renewal +
    /// lease − margin, monotonic clock) passed, even if the database is unreachable.
    /// Call it just before an irreversible external step.
    #[must_use]
    pub fn still_owned(&self) -> bool {
        let now = Instant::now();
        !self.lease.lost.load(Ordering::SeqCst)
            && now < *lock(&self.lease.trusted_until)
            && !self.lease.timed_out(now)
    }

    /// Whether the job's `timeout` has passed for this attempt (measured on the
    /// monotonic clock from just before the claim): stop and return. The attempt
    /// is recorded as failed ("timed out after …") and retried per the job's
    /// policy, whatever the handler returns.
    #[must_use]
    pub fn timed_out(&self) -> bool {
        self.lease.timed_out(Instant::now())
    }

    /// The monotonic instant at which this attempt times out, if its job has a
    /// timeout.
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.lease.deadline.map(|(d, _)| d)
    }

    /// Registers a write to run inside the completion transaction, after the fence
    /// check: it commits if and only if this attempt's success commits. It may run
    /// more than once if the completion is retried after a lost connection (each
    /// try is its own transaction, so at most one commits).
    pub fn commit_with<F>(&mut self, f: F)
    where
        F: FnMut(&mut Transaction<'_>) -> Result<(), postgres::Error> + Send + 'static,
    {
        self.effects.push(Box::new(f));
    }
}

enum Event {
    /// A NOTIFY arrived; the payload may carry the instant work becomes due.
    Notified(Option<Timestamp>),
    /// A worker finished a run.
    WorkerFree,
}

/// The runs a node executes: attempt, lease duration and local lease view.
type Inflight = HashMap<RunId, (i32, Duration, Arc<Lease>)>;

struct Shared {
    config: NodeConfig,
    node_id: String,
    stop: AtomicBool,
    inflight: Mutex<Inflight>,
    fenced: AtomicU64,
    completed: AtomicU64,
}

/// Counters of a running [`Node`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NodeStats {
    /// Completions (success or failure) that committed.
    pub completed: u64,
    /// Completions refused by the fence.
    pub fenced: u64,
}

/// One scheduler process in the cluster: a materializer/claimer thread, a NOTIFY
/// listener, a heartbeat thread and `workers` worker threads, each with its own
/// session. No leader: start as many as you like on one database.
pub struct Node {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("node_id", &self.shared.node_id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Connects (migrating the schema), registers the node and starts its threads.
    ///
    /// ```
    /// use std::collections::HashMap;
    /// use std::sync::{Arc, Mutex, mpsc};
    /// use std::time::Duration;
    ///
    /// use myrmex_postgres::{ConnectOptions, Handler, JobSpec, Node, NodeConfig, PgStore, Trigger};
    ///
    /// // Runs against the database named by MYRMEX_TEST_POSTGRES_URL (CI sets it).
    /// let Ok(url) = std::env::var("MYRMEX_TEST_POSTGRES_URL") else {
    ///     return Ok(());
    /// };
    /// let options = ConnectOptions::new(&url).schema("doc_node_start");
    /// # options.open_session()?.batch_execute("DROP SCHEMA IF EXISTS doc_node_start CASCADE")?;
    /// let (done, ran) = mpsc::channel();
    /// let done = Mutex::new(done);
    /// let greet: Handler = Arc::new(move |ctx| {
    ///     let key = ctx.run_key();
    ///     done.lock().unwrap().send(key).unwrap();
    ///     Ok(None)
    /// });
    /// let node = Node::start(
    ///     NodeConfig::new(options.clone()),
    ///     HashMap::from([("greet".to_owned(), greet)]),
    /// )?;
    /// // Any process may define and trigger jobs; one of the nodes runs each run once.
    /// let mut store = PgStore::connect(&options)?;
    /// let job = store.create_job(&JobSpec::new("hello", "greet", Trigger::Manual))?;
    /// store.trigger_now(job, None)?;
    /// let key = ran.recv_timeout(Duration::from_secs(60))?;
    /// assert!(key.starts_with(&format!("{job}/")));
    /// node.shutdown()?;
    /// # store.client().batch_execute("DROP SCHEMA doc_node_start CASCADE")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// Connection, migration or registration errors of the first session.
    pub fn start(config: NodeConfig, handlers: HashMap<String, Handler>) -> Result<Node> {
        let mut store = PgStore::connect(&config.options)?;
        store.register_node_with(
            &config.hostname,
            std::process::id(),
            &config.version,
            config.stale_after(),
        )?;
        let node_id = store.node_id().to_owned();
        let mut options = config.options.clone();
        options.node_id = Some(node_id.clone());
        let config = NodeConfig { options, ..config };
        let shared = Arc::new(Shared {
            config,
            node_id,
            stop: AtomicBool::new(false),
            inflight: Mutex::new(HashMap::new()),
            fenced: AtomicU64::new(0),
            completed: AtomicU64::new(0),
        });
        let (ev_tx, ev_rx) = mpsc::channel::<Event>();
        let (work_tx, work_rx) = mpsc::channel::<(ClaimedRun, Arc<Lease>)>();
        let work_rx = Arc::new(Mutex::new(work_rx));
        let handlers = Arc::new(handlers);
        let mut threads = Vec::new();
        let spawn = |name: String, f: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name)
                .spawn(f)
                .expect("spawning a thread")
        };
        for i in 0..shared.config.workers {
            let (s, rx, tx, h) = (
                shared.clone(),
                work_rx.clone(),
                ev_tx.clone(),
                handlers.clone(),
            );
            threads.push(spawn(
                format!("myrmex-worker-{i}"),
                Box::new(move || worker_loop(&s, &rx, &tx, &h)),
            ));
        }
        if shared.config.listen {
            let (s, tx) = (shared.clone(), ev_tx.clone());
            threads.push(spawn(
                "myrmex-listen".into(),
                Box::new(move || listen_loop(&s, &tx)),
            ));
        }
        {
            let s = shared.clone();
            threads.push(spawn(
                "myrmex-heartbeat".into(),
                Box::new(move || heartbeat_loop(&s)),
            ));
        }
        {
            let s = shared.clone();
            threads.push(spawn(
                "myrmex-scheduler".into(),
                Box::new(move || scheduler_loop(&s, store, &ev_rx, work_tx)),
            ));
        }
        drop(ev_tx);
        Ok(Node { shared, threads })
    }

    /// This node's id (as in `sched_node` and `lease_owner`).
    #[must_use]
    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    /// Counters so far.
    #[must_use]
    pub fn stats(&self) -> NodeStats {
        NodeStats {
            completed: self.shared.completed.load(Ordering::SeqCst),
            fenced: self.shared.fenced.load(Ordering::SeqCst),
        }
    }

    /// Stops claiming, lets the workers finish their current runs, and joins every
    /// thread.
    ///
    /// # Errors
    /// None today; the `Result` leaves room for reporting a thread that panicked.
    pub fn shutdown(mut self) -> Result<()> {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a node thread panicked");
            }
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Never block in drop: the threads see the flag and exit on their own.
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// A session that reconnects after errors that lost it.
struct Session<'a> {
    shared: &'a Shared,
    store: Option<PgStore>,
}

impl Session<'_> {
    fn get(&mut self) -> Option<&mut PgStore> {
        if self.store.as_ref().is_some_and(PgStore::is_closed) {
            self.store = None;
        }
        if self.store.is_none() {
            match PgStore::connect(&self.shared.config.options) {
                Ok(s) => self.store = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot connect; retrying");
                    std::thread::sleep(Duration::from_millis(200));
                    return None;
                }
            }
        }
        self.store.as_mut()
    }

    fn failed(&mut self, what: &str, e: &crate::Error) {
        tracing::warn!(error = %e, "{what} failed");
        if e.is_connection_lost() {
            self.store = None;
        }
    }
}

fn jitter(d: Duration, seed: &mut u64) -> Duration {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    let f = 0.8 + (*seed % 1000) as f64 / 1000.0 * 0.4;
    d.mul_f64(f)
}

/// Maps a database instant to the local monotonic clock through the last
/// `(Instant, db now)` pair observed.
fn local_instant(at: Timestamp, base: (Instant, Timestamp)) -> Instant {
    let ahead = at.duration_since(base.1);
    if ahead.is_negative() {
        base.0
    } else {
        base.0 + Duration::try_from(ahead).unwrap_or_default()
    }
}

fn scheduler_loop(
    shared: &Shared,
    store: PgStore,
    events: &Receiver<Event>,
    work: Sender<(ClaimedRun, Arc<Lease>)>,
) {
    let cfg = &shared.config;
    let mut session = Session {
        shared,
        store: Some(store),
    };
    let mut seed = u64::from(std::process::id()) << 20 | 0x9e37_79b9;
    let mut next_materialize = Instant::now();
    let mut next_maintenance = Instant::now() + jitter(cfg.maintenance_every, &mut seed);
    let mut base = (Instant::now(), Timestamp::now());
    while !shared.stop.load(Ordering::SeqCst) {
        let Some(store) = session.get() else { continue };
        let now = Instant::now();
        if now >= next_maintenance {
            next_maintenance = now + jitter(cfg.maintenance_every, &mut seed);
            if let Err(e) = maintain(store, cfg) {
                session.failed("maintenance", &e);
                continue;
            }
        }
        let Some(store) = session.get() else { continue };
        if now >= next_materialize {
            match store.materialize(cfg.lookahead) {
                // A full batch means more jobs are due, and a truncated job has
                // more occurrences due: go again right away.
                Ok(r) if r.jobs >= crate::store::MATERIALIZE_BATCH || r.truncated > 0 => {}
                Ok(_) => next_materialize = now + jitter(cfg.tick, &mut seed),
                Err(e) => {
                    session.failed("materialize", &e);
                    continue;
                }
            }
        }
        let Some(store) = session.get() else { continue };
        let free = cfg.workers.saturating_sub(lock(&shared.inflight).len());
        let mut busy = false;
        if free > 0 {
            match store.claim(free) {
                Ok(runs) => {
                    busy = runs.len() == free;
                    for run in runs {
                        let margin = cfg.trust_margin.min(run.lease_ttl / 4);
                        let lease = Arc::new(Lease::new(&run, margin));
                        lock(&shared.inflight)
                            .insert(run.run, (run.attempt, run.lease_ttl, lease.clone()));
                        if work.send((run, lease)).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    session.failed("claim", &e);
                    continue;
                }
            }
        }
        let Some(store) = session.get() else { continue };
        let mut wake = (Instant::now() + jitter(cfg.poll, &mut seed)).min(next_materialize);
        match store.next_due() {
            Ok((due, db_now)) => {
                base = (Instant::now(), db_now);
                // Node clocks decide nothing, but a large skew shifts sleeps: say so.
                let skew = Timestamp::now().duration_since(db_now);
                if skew.abs() > jiff::SignedDuration::from_secs(1) {
                    tracing::warn!(skew = %skew, "local clock differs from the database's");
                }
                if let Some(due) = due {
                    wake = wake.min(local_instant(due, base));
                }
            }
            Err(e) => session.failed("next_due", &e),
        }
        if busy {
            // Every worker is busy: only a finished run makes claiming useful.
            wake = Instant::now() + cfg.poll;
        }
        loop {
            let left = wake.saturating_duration_since(Instant::now());
            if left.is_zero() || shared.stop.load(Ordering::SeqCst) {
                break;
            }
            match events.recv_timeout(left.min(Duration::from_millis(250))) {
                Ok(Event::WorkerFree) => break,
                Ok(Event::Notified(at)) => {
                    if busy {
                        continue;
                    }
                    match at {
                        Some(t) => wake = wake.min(local_instant(t, base)),
                        None => break,
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
    }
}

/// The periodic housekeeping of a node: terminal runs past the retention move to
/// the history table (a bounded number of batches per pass, the rest next time),
/// and long-gone nodes without leases are forgotten.
fn maintain(store: &mut PgStore, cfg: &NodeConfig) -> Result<()> {
    let mut moved = 0;
    for _ in 0..10 {
        let n = store.archive_runs(cfg.retention, cfg.retention_batch)?;
        moved += n;
        if n < cfg.retention_batch as u64 {
            break;
        }
    }
    let forgotten = store.forget_nodes(cfg.forget_nodes_after)?;
    if moved > 0 || forgotten > 0 {
        tracing::info!(archived = moved, forgotten_nodes = forgotten, "maintenance");
    }
    Ok(())
}

fn listen_loop(shared: &Shared, events: &Sender<Event>) {
    let channel = shared.config.options.channel();
    while !shared.stop.load(Ordering::SeqCst) {
        let mut client = match shared.config.options.open_session() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "listener cannot connect; retrying");
                std::thread::sleep(Duration::from_millis(200));
                continue;
            }
        };
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")) {
            tracing::warn!(error = %e, "LISTEN failed");
            continue;
        }
        'session: while !shared.stop.load(Ordering::SeqCst) {
            {
                let mut n = client.notifications();
                let mut it = n.timeout_iter(Duration::from_millis(250));
                loop {
                    match postgres::fallible_iterator::FallibleIterator::next(&mut it) {
                        Ok(Some(note)) => {
                            let at = note
                                .payload()
                                .parse::<i64>()
                                .ok()
                                .and_then(|ms| Timestamp::from_millisecond(ms).ok());
                            if events.send(Event::Notified(at)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "listener lost its session");
                            break 'session;
                        }
                    }
                }
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

fn heartbeat_loop(shared: &Shared) {
    let cfg = &shared.config;
    let mut session = Session {
        shared,
        store: None,
    };
    let mut registered = true;
    let mut workers_gone_at: Option<Instant> = None;
    loop {
        let snapshot: Vec<(RunId, i32, Duration, Arc<Lease>)> = lock(&shared.inflight)
            .iter()
            .map(|(r, (a, ttl, l))| (*r, *a, *ttl, l.clone()))
            .collect();
        if shared.stop.load(Ordering::SeqCst) && snapshot.is_empty() {
            // Workers have finished (or there were none).
            if workers_gone_at.is_some_and(|t| t.elapsed() > Duration::from_millis(100)) {
                return;
            }
            workers_gone_at.get_or_insert_with(Instant::now);
        }
        let started = Instant::now();
        let overdue: Vec<(RunId, i32, Duration)> = snapshot
            .iter()
            .filter_map(|(run, attempt, _, lease)| {
                let (deadline, timeout) = lease.deadline?;
                (started >= deadline + cfg.timeout_grace && !lease.settled.load(Ordering::SeqCst))
                    .then_some((*run, *attempt, timeout))
            })
            .collect();
        for (run, attempt, timeout) in overdue {
            let Some((_, _, _, lease)) = snapshot.iter().find(|(r, ..)| *r == run) else {
                continue;
            };
            let Some(store) = session.get() else { break };
            if lease.settled.swap(true, Ordering::SeqCst) {
                continue;
            }
            let msg = format!(
                "{}; the handler did not stop within the {:#} grace",
                timeout_error(timeout, None),
                jiff::SignedDuration::try_from(cfg.timeout_grace).unwrap_or_default()
            );
            lease.lost.store(true, Ordering::SeqCst);
            match store.fail(run, attempt, &msg) {
                Ok(Completion::Committed) => {
                    tracing::warn!(run = run.0, attempt, "{msg}");
                    shared.completed.fetch_add(1, Ordering::SeqCst);
                }
                Ok(Completion::Fenced) => {
                    shared.fenced.fetch_add(1, Ordering::SeqCst);
                }
                Err(e) => {
                    // Let the next round try again.
                    lease.settled.store(false, Ordering::SeqCst);
                    session.failed("recording a timeout", &e);
                }
            }
        }
        if let Some(store) = session.get() {
            if !registered {
                registered = store
                    .register_node_with(
                        &cfg.hostname,
                        std::process::id(),
                        &cfg.version,
                        cfg.stale_after(),
                    )
                    .is_ok();
            }
            let pairs: Vec<(RunId, i32)> = snapshot.iter().map(|(r, a, _, _)| (*r, *a)).collect();
            match store.renew(&pairs) {
                Ok(owned) => {
                    for (run, _, ttl, lease) in &snapshot {
                        if owned.contains(run) {
                            let margin = cfg.trust_margin.min(*ttl / 4);
                            *lock(&lease.trusted_until) = started + *ttl - margin;
                            *lock(&lease.renewed_at) = started;
                        } else if !lease.lost.swap(true, Ordering::SeqCst) {
                            tracing::info!(
                                run = run.0,
                                "lease lost; the run will not be completed here"
                            );
                        }
                    }
                }
                Err(e) => {
                    registered = false;
                    session.failed("heartbeat", &e);
                }
            }
        }
        // Sleep until the node heartbeat is due or any run (including ones claimed
        // meanwhile) reaches a third of its lease since its last renewal.
        let node_due = started + cfg.heartbeat;
        loop {
            let runs_due = lock(&shared.inflight)
                .values()
                .flat_map(|(_, ttl, lease)| {
                    let timeout = lease
                        .deadline
                        .filter(|_| !lease.settled.load(Ordering::SeqCst))
                        .map(|(d, _)| d + cfg.timeout_grace);
                    std::iter::once(*lock(&lease.renewed_at) + *ttl / 3).chain(timeout)
                })
                .min();
            let due = runs_due.map_or(node_due, |d| d.min(node_due));
            let now = Instant::now();
            if now >= due
                || (shared.stop.load(Ordering::SeqCst) && lock(&shared.inflight).is_empty())
            {
                break;
            }
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
        }
    }
}

fn worker_loop(
    shared: &Shared,
    rx: &Mutex<Receiver<(ClaimedRun, Arc<Lease>)>>,
    events: &Sender<Event>,
    handlers: &HashMap<String, Handler>,
) {
    let mut session = Session {
        shared,
        store: None,
    };
    loop {
        let next = lock(rx).recv_timeout(Duration::from_millis(100));
        let (run, lease) = match next {
            Ok(x) => x,
            Err(RecvTimeoutError::Timeout) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let id = run.run;
        execute(shared, &mut session, run, lease, handlers);
        lock(&shared.inflight).remove(&id);
        let _ = events.send(Event::WorkerFree);
    }
}

fn execute(
    shared: &Shared,
    session: &mut Session<'_>,
    run: ClaimedRun,
    lease: Arc<Lease>,
    handlers: &HashMap<String, Handler>,
) {
    let (id, attempt) = (run.run, run.attempt);
    let lease_view = lease.clone();
    let mut ctx = RunContext {
        run,
        lease,
        node_id: shared.node_id.clone(),
        effects: Vec::new(),
    };
    let outcome = match handlers.get(&ctx.run.handler) {
        None => Err(format!(
            "no handler named {:?} on this node",
            ctx.run.handler
        )),
        Some(h) => match std::panic::catch_unwind(AssertUnwindSafe(|| h(&mut ctx))) {
            Ok(r) => r,
            Err(p) => Err(match p.downcast_ref::<&str>() {
                Some(s) => format!("panicked: {s}"),
                None => match p.downcast_ref::<String>() {
                    Some(s) => format!("panicked: {s}"),
                    None => "panicked".to_owned(),
                },
            }),
        },
    };
    if lease_view.settled.swap(true, Ordering::SeqCst) {
        // The heartbeat thread already recorded this attempt as timed out.
        return;
    }
    let outcome = match (lease_view.deadline, outcome) {
        (Some((deadline, timeout)), outcome) if Instant::now() >= deadline => Err(timeout_error(
            timeout,
            outcome.as_ref().err().map(String::as_str),
        )),
        (_, outcome) => outcome,
    };
    // Retry the fenced write across lost sessions: the work is done, and the fence
    // decides whether it still counts.
    for _ in 0..50 {
        let Some(store) = session.get() else { continue };
        let r = match &outcome {
            Ok(result) => {
                let effects = &mut ctx.effects;
                store.complete(id, attempt, result.as_ref(), &mut |tx| {
                    for f in effects.iter_mut() {
                        f(tx)?;
                    }
                    Ok(())
                })
            }
            Err(e) => store.fail(id, attempt, e),
        };
        match r {
            Ok(Completion::Committed) => {
                shared.completed.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Ok(Completion::Fenced) => {
                shared.fenced.fetch_add(1, Ordering::SeqCst);
                return;
            }
            Err(e) => {
                session.failed("completion", &e);
                if !(e.is_connection_lost() || e.is_contention()) {
                    // An effect failed: record the attempt as failed instead.
                    if let (Ok(_), Some(store)) = (&outcome, session.get()) {
                        let _ = store.fail(id, attempt, &format!("effects failed: {e}"));
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    tracing::error!(
        run = id.0,
        attempt,
        "gave up recording a result; the lease will expire"
    );
}
