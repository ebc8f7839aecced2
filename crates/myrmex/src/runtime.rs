//! The scheduler thread: owns the core, parks until the next due time or a
//! message, and turns the core's actions into work for the pool.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use myrmex_core::{
    Action, AttemptResult, CancelReason, Core, Event, JobId, JobSnapshot, JobStatus, PreparedJob,
    RestoredState, RunId, RunReport, StartRun, TriggerSpec,
};

use crate::SchedulerError;
use crate::clock::{Clock, ClockWatch};
use crate::context::{Handler, RunContext};
use crate::journal::Journal;
use crate::pool::{Done, Pool, Task};
use crate::token::CancellationToken;

/// How far the wall clock may drift from elapsed time between two wakes before
/// it counts as a jump.
const JUMP_TOLERANCE: SignedDuration = SignedDuration::from_millis(100);

/// How many attempts are handed to the pool at once during a burst.
const DISPATCH_BATCH: usize = 16;

/// How long before a due instant the scheduler thread wakes to dispatch the
/// occurrences due then (see [`Runtime::ahead`]). Long enough that a wake-up
/// delayed by a busy machine (a few milliseconds when both cores run other
/// work) still leaves the thread on a CPU at the instant: measured on a
/// loaded 2-core machine, 0.5 ms left one burst in ten some 3 ms late.
const AHEAD: Duration = Duration::from_millis(2);

/// Only parks at least this long end early to dispatch ahead: the scheduler
/// thread then waits (spinning) for the due instant once the burst is ready,
/// which costs at most `AHEAD` per such park (1 % of a core even when every
/// park is this short; 0.2 % for bursts a second apart).
const AHEAD_MIN_PARK: Duration = Duration::from_millis(200);

/// How many tokens of finished runs are kept for reuse.
const SPARE_TOKENS: usize = 1024;

/// How many due-queue entries are turned into attempts before the scheduler
/// thread looks at its messages again during a burst: attempts that already
/// ended are recorded (and their run slots reused) while the rest of the burst
/// is dispatched, so a burst's working set stays small.
const POLL_CHUNK: usize = 256;

/// A reply channel for a call that waits.
pub(crate) type Reply<T> = Option<SyncSender<Result<T, SchedulerError>>>;

/// An event listener; runs on the scheduler thread.
pub(crate) type Listener = Box<dyn FnMut(&Event) + Send + 'static>;

/// A test hook called while a burst dispatched ahead is held (see
/// `SchedulerBuilder::hold_hook`): the burst stays held while it returns `true`.
pub(crate) type HoldHook = Box<dyn FnMut() -> bool + Send + 'static>;

/// Everything the scheduler thread receives.
pub(crate) enum Msg {
    Add {
        id: JobId,
        job: PreparedJob,
        handler: Handler,
        restored: Option<Box<RestoredState>>,
        at: Timestamp,
        reply: Reply<()>,
    },
    Cancel {
        id: JobId,
        reply: Reply<()>,
    },
    Hold {
        id: JobId,
        op: HoldOp,
        reply: Reply<()>,
    },
    Reschedule {
        id: JobId,
        trigger: TriggerSpec,
        at: Timestamp,
        reply: Reply<()>,
    },
    Release {
        id: JobId,
        scheduled_at: Timestamp,
        reply: Reply<()>,
    },
    RunNow {
        id: JobId,
        reply: SyncSender<Result<RunReport, SchedulerError>>,
    },
    Get {
        id: JobId,
        reply: SyncSender<Option<JobSnapshot>>,
    },
    List {
        filter: Option<JobStatus>,
        reply: SyncSender<Vec<JobSnapshot>>,
    },
    Subscribe(Sender<Event>),
    Listen(Listener),
    /// Workers reported attempt ends (take them with `Pool::take_done`).
    Completed,
    Start {
        reply: Reply<()>,
    },
    Wake,
    Shutdown {
        grace: Duration,
        reply: Reply<()>,
    },
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum HoldOp {
    Pause,
    Resume,
    Block,
    Unblock,
}

struct RunSide {
    run: RunId,
    token: CancellationToken,
}

/// The scheduler thread's state.
pub(crate) struct Runtime {
    pub(crate) core: Core<Handler>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) rx: Receiver<Msg>,
    pub(crate) pool: Arc<Pool>,
    pub(crate) workers: Vec<JoinHandle<()>>,
    pub(crate) journal: Box<dyn Journal>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) subscribers: Vec<Sender<Event>>,
    runs: Vec<Option<RunSide>>,
    waiters: HashMap<RunId, SyncSender<Result<RunReport, SchedulerError>>>,
    executing: usize,
    started: bool,
    last_wall: Timestamp,
    last_mono: Duration,
    /// The latest wall time read; messages are handled at this time.
    now: Timestamp,
    actions: Vec<Action<Handler>>,
    tasks: Vec<Task>,
    /// The buffer attempt ends are swapped into (kept to reuse its capacity).
    done: Vec<Done>,
    /// Tokens of finished runs nobody else holds, reused for new runs.
    spare_tokens: Vec<CancellationToken>,
    /// The clock's change notifications (Msg::Wake), while this thread runs.
    watch: Option<ClockWatch>,
    /// Dispatching ahead: the due instant (wall) whose occurrences are being
    /// dispatched before it comes, and the monotonic instant it corresponds
    /// to. The scheduler thread wakes [`AHEAD`] before a due instant and polls
    /// the core as of that instant; the attempts are held (not handed to the
    /// pool) until that monotonic instant, then handed over at once. A burst
    /// is thus turned into attempts before it is due instead of after.
    ahead: Option<(Timestamp, Instant)>,
    /// Whether the core's actions being applied come from a poll ahead of
    /// time: their attempts go to `held` instead of starting.
    holding: bool,
    /// Attempts polled ahead of their due instant (wall, monotonic): nothing
    /// about them is journaled, reported or handed to the pool before the
    /// instant, and they are withdrawn from the core when their job is
    /// cancelled, paused, blocked or rescheduled (or the scheduler shut down)
    /// before it comes.
    held: Vec<StartRun<Handler>>,
    held_until: Option<(Timestamp, Instant)>,
    /// Test hook: keeps a held burst held (see [`HoldHook`]).
    pub(crate) hold_hook: Option<HoldHook>,
    shutdown: Option<(Instant, Reply<()>)>,
}

fn reply<T>(r: Reply<T>, v: Result<T, SchedulerError>) {
    if let Some(r) = r {
        let _ = r.send(v);
    }
}

impl Runtime {
    #[expect(
        clippy::too_many_arguments,
        reason = "one constructor, called once by the builder"
    )]
    pub(crate) fn new(
        core: Core<Handler>,
        clock: Arc<dyn Clock>,
        rx: Receiver<Msg>,
        pool: Arc<Pool>,
        workers: Vec<JoinHandle<()>>,
        journal: Box<dyn Journal>,
        listeners: Vec<Listener>,
        subscribers: Vec<Sender<Event>>,
        watch: Option<ClockWatch>,
    ) -> Runtime {
        let last_wall = clock.now();
        let last_mono = clock.elapsed();
        Runtime {
            core,
            clock,
            rx,
            pool,
            workers,
            journal,
            listeners,
            subscribers,
            runs: Vec::new(),
            waiters: HashMap::new(),
            executing: 0,
            started: false,
            last_wall,
            last_mono,
            now: last_wall,
            actions: Vec::new(),
            tasks: Vec::new(),
            done: Vec::new(),
            spare_tokens: Vec::new(),
            watch,
            ahead: None,
            holding: false,
            held: Vec::new(),
            held_until: None,
            hold_hook: None,
            shutdown: None,
        }
    }

    /// The scheduler thread's body.
    pub(crate) fn run(mut self) -> Result<(), SchedulerError> {
        let result = loop {
            let now = self.observe_clock();
            if let Some((deadline, _)) = &self.shutdown {
                if self.executing == 0 {
                    break Ok(());
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Results already queued still count: a run whose handler has
                    // returned is finished, not interrupted by the deadline.
                    while let Ok(msg) = self.rx.try_recv() {
                        self.handle(msg);
                    }
                    self.completions(self.now);
                    if self.executing == 0 {
                        break Ok(());
                    }
                    for side in self.runs.iter().flatten() {
                        side.token.cancel();
                    }
                    tracing::warn!(
                        running = self.executing,
                        "shutdown grace period over; runs told to stop"
                    );
                    break Err(SchedulerError::ShutdownTimedOut {
                        running: self.executing,
                    });
                }
                match self.rx.recv_timeout(left) {
                    Ok(msg) => self.handle(msg),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break Ok(()),
                }
                continue;
            }
            if self.started {
                let poll_at = match self.ahead {
                    Some((due, start)) if now < due => {
                        self.held_until = Some((due, start));
                        self.holding = true;
                        due
                    }
                    _ => {
                        self.ahead = None;
                        if self.held_until.is_some() {
                            // The instant came while the burst was polled.
                            self.release_held();
                            continue;
                        }
                        now
                    }
                };
                let more = self
                    .core
                    .poll_bounded(poll_at, &mut self.actions, POLL_CHUNK);
                self.apply(poll_at);
                self.holding = false;
                if more {
                    while let Ok(m) = self.rx.try_recv() {
                        self.handle(m);
                    }
                    continue;
                }
                // A burst dispatched ahead is ready: hand it over at its instant.
                self.release_held();
                if !self.started {
                    // Shut down during the hold.
                    continue;
                }
            }
            let next = if self.started {
                self.core.next_wake()
            } else {
                None
            };
            let msg = match self.clock.park_for(now, next) {
                Some(d) if d.is_zero() => continue,
                // A long park that ends at the next due instant: end it early
                // and dispatch what is due then ahead of time.
                Some(d)
                    if d >= AHEAD_MIN_PARK
                        && next.is_some_and(|n| {
                            Duration::try_from(n.duration_since(now)).is_ok_and(|u| u <= d)
                        }) =>
                {
                    match self.rx.recv_timeout(d - AHEAD) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            let due = next.expect("checked");
                            let left = Duration::try_from(due.duration_since(self.clock.now()))
                                .unwrap_or(Duration::ZERO);
                            self.ahead = Some((due, Instant::now() + left));
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => break Ok(()),
                    }
                }
                Some(d) => match self.rx.recv_timeout(d) {
                    Ok(m) => m,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break Ok(()),
                },
                None => match self.rx.recv() {
                    Ok(m) => m,
                    Err(_) => break Ok(()),
                },
            };
            self.observe_clock();
            self.handle(msg);
            // Drain whatever else is waiting before looking at the queue again, so
            // a burst of completions costs one wake.
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
        };
        let (_, shutdown_reply) = self.shutdown.take().unwrap_or((Instant::now(), None));
        // Stop the clock notifications (the last scheduler stops the watcher).
        drop(self.watch.take());
        self.pool.close();
        let clean = result.is_ok();
        if clean {
            for w in self.workers.drain(..) {
                if let Err(p) = w.join() {
                    tracing::error!(message = %crate::pool::panic_message(&*p), "a worker thread panicked");
                }
            }
        }
        // Runs still executing after a timed-out shutdown keep their workers; the
        // handles are dropped (detached) and the workers exit when they finish.
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(SchedulerError::ShutdownTimedOut { running }) => {
                Err(SchedulerError::ShutdownTimedOut { running: *running })
            }
            Err(_) => Err(SchedulerError::ShutDown),
        };
        reply(shutdown_reply, outcome);
        result
    }

    /// Reads both clocks; tells the core when the wall clock jumped.
    fn observe_clock(&mut self) -> Timestamp {
        // Read elapsed time on both sides of the wall clock, so that being
        // descheduled between the two reads is not mistaken for a clock jump.
        let (wall, mono) = {
            let mut best = None;
            for _ in 0..4 {
                let m1 = self.clock.elapsed();
                let w = self.clock.now();
                let m2 = self.clock.elapsed();
                let spread = m2.saturating_sub(m1);
                let mid = m1 + spread / 2;
                if best.is_none_or(|(_, _, s)| spread < s) {
                    best = Some((w, mid, spread));
                }
                if spread < Duration::from_millis(1) {
                    break;
                }
            }
            let (w, m, _) = best.expect("at least one read");
            (w, m)
        };
        let wall_d = wall.duration_since(self.last_wall);
        let mono_d = SignedDuration::try_from(mono.saturating_sub(self.last_mono))
            .unwrap_or(SignedDuration::MAX);
        let delta = wall_d.checked_sub(mono_d).unwrap_or(SignedDuration::ZERO);
        if delta.abs() > JUMP_TOLERANCE {
            tracing::warn!(
                jump = %delta,
                wall = %wall,
                "wall clock jumped relative to elapsed time; re-planning"
            );
            self.core.clock_jumped(wall, delta);
        }
        self.last_wall = wall;
        self.last_mono = mono;
        self.now = wall;
        wall
    }

    fn handle(&mut self, msg: Msg) {
        let now = self.now;
        let closing = self.shutdown.is_some();
        match msg {
            Msg::Completed => self.completions(now),
            Msg::Add { reply: r, .. }
            | Msg::Cancel { reply: r, .. }
            | Msg::Hold { reply: r, .. }
            | Msg::Reschedule { reply: r, .. }
            | Msg::Release { reply: r, .. }
            | Msg::Start { reply: r }
                if closing =>
            {
                reply(r, Err(SchedulerError::ShutDown));
            }
            Msg::RunNow { reply, .. } if closing => {
                let _ = reply.send(Err(SchedulerError::ShutDown));
            }
            Msg::Add {
                id,
                job,
                handler,
                restored,
                at,
                reply: r,
            } => {
                let is_new = restored.is_none();
                let res = self
                    .core
                    .add_prepared(at, id, job, restored.map(|r| *r), handler)
                    .map_err(SchedulerError::from);
                if let Err(e) = &res {
                    tracing::error!(job = %id, error = %e, "job not added");
                } else if is_new
                    && self.journal.enabled()
                    && let Some(snap) = self.core.snapshot(id)
                    && let Err(e) = self.journal.job_added(&snap)
                {
                    tracing::error!(job = %id, error = %e, "journal: job_added failed");
                }
                reply(r, res);
            }
            Msg::Cancel { id, reply: r } => {
                self.withdraw_held(Some(id));
                let res = self
                    .core
                    .cancel(now, id, &mut self.actions)
                    .map_err(SchedulerError::from);
                self.apply(now);
                reply(r, res);
            }
            Msg::Hold { id, op, reply: r } => {
                if matches!(op, HoldOp::Pause | HoldOp::Block) {
                    self.withdraw_held(Some(id));
                }
                let res = match op {
                    HoldOp::Pause => self.core.pause(id),
                    HoldOp::Resume => self.core.resume(id),
                    HoldOp::Block => self.core.block(id),
                    HoldOp::Unblock => self.core.unblock(id),
                }
                .map_err(SchedulerError::from);
                if res.is_ok() {
                    self.journal_changed(id);
                }
                reply(r, res);
            }
            Msg::Reschedule {
                id,
                trigger,
                at,
                reply: r,
            } => {
                self.withdraw_held(Some(id));
                let res = self
                    .core
                    .reschedule(at, id, trigger, &mut self.actions)
                    .map_err(SchedulerError::from);
                if res.is_ok() {
                    self.journal_changed(id);
                }
                self.apply(now);
                reply(r, res);
            }
            Msg::Release {
                id,
                scheduled_at,
                reply: r,
            } => {
                let res = self
                    .core
                    .release(now, id, scheduled_at, &mut self.actions)
                    .map_err(SchedulerError::from);
                self.apply(now);
                reply(r, res);
            }
            Msg::RunNow { id, reply } => match self.core.run_now(now, id, &mut self.actions) {
                Ok(run) => {
                    self.waiters.insert(run, reply);
                    self.apply(now);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Msg::Get { id, reply } => {
                let _ = reply.send(self.core.snapshot(id));
            }
            Msg::List { filter, reply } => {
                let _ = reply.send(self.core.snapshots(filter));
            }
            Msg::Subscribe(tx) => self.subscribers.push(tx),
            Msg::Listen(l) => self.listeners.push(l),
            Msg::Start { reply: r } => {
                let res = if self.started {
                    Err(SchedulerError::AlreadyStarted)
                } else {
                    self.started = true;
                    Ok(())
                };
                reply(r, res);
            }
            Msg::Wake => {
                // Run what the clock change made due before any later message, so
                // a caller that advances a manual clock and then asks something
                // sees the result.
                let now = self.observe_clock();
                if self.started {
                    self.core.poll(now, &mut self.actions);
                    self.apply(now);
                }
            }
            Msg::Shutdown { grace, reply: r } => {
                // Stop firing: attempts held for an instant to come never start.
                self.withdraw_held(None);
                self.started = false;
                let deadline = Instant::now()
                    .checked_add(grace)
                    .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
                self.shutdown = Some((deadline, r));
            }
        }
    }

    /// Records every attempt end the workers reported so far.
    fn completions(&mut self, now: Timestamp) {
        let mut batch = std::mem::take(&mut self.done);
        self.pool.take_done(&mut batch);
        for Done {
            run,
            attempt,
            result,
        } in batch.drain(..)
        {
            self.executing = self.executing.saturating_sub(1);
            if let Some(slot) = self.runs.get_mut(run.index())
                && slot.as_ref().is_some_and(|s| s.run == run)
                && let Some(RunSide { mut token, .. }) = slot.take()
                && self.spare_tokens.len() < SPARE_TOKENS
                && token.renew_if_unique()
            {
                self.spare_tokens.push(token);
            }
            if let Err(e) = self
                .core
                .finish(now, run, attempt, result, &mut self.actions)
            {
                tracing::debug!(error = %e, "ignored a late attempt report");
            }
            self.apply(now);
        }
        self.done = batch;
    }

    fn journal_changed(&mut self, id: JobId) {
        if let Some(snap) = self.core.snapshot(id)
            && let Err(e) = self.journal.job_changed(&snap)
        {
            tracing::error!(job = %id, error = %e, "journal: job_changed failed");
        }
    }

    /// Carries out the core's actions (and those they cause) and hands the new
    /// attempts to the pool in one batch.
    fn apply(&mut self, now: Timestamp) {
        while !self.actions.is_empty() {
            let actions = std::mem::take(&mut self.actions);
            for a in actions {
                match a {
                    Action::Start(s) if self.holding => self.held.push(s),
                    Action::Start(s) => self.start(now, s),
                    Action::Cancel { run, reason } => {
                        if let Some(Some(side)) = self.runs.get(run.index())
                            && side.run == run
                        {
                            if reason == CancelReason::Timeout {
                                tracing::warn!(%run, "attempt timed out; told to stop");
                            }
                            side.token.cancel();
                        }
                    }
                    Action::Event(e) => self.event(e),
                    _ => {}
                }
            }
        }
        self.flush_tasks();
    }

    fn start(&mut self, now: Timestamp, s: StartRun<Handler>) {
        if s.attempt == 1
            && let Err(e) = self
                .journal
                .occurrence_fired(s.job, s.scheduled_at, s.watermark)
        {
            let msg = format!("journal refused the occurrence: {e}");
            tracing::error!(job = %s.job, scheduled_at = %s.scheduled_at, error = %e, "journal: occurrence_fired failed; attempt not started");
            let _ = self.core.finish(
                now,
                s.run,
                s.attempt,
                AttemptResult::Failed(msg),
                &mut self.actions,
            );
            return;
        }
        if let Err(e) = self
            .journal
            .attempt_started(s.job, s.scheduled_at, s.attempt)
        {
            tracing::error!(job = %s.job, error = %e, "journal: attempt_started failed");
        }
        self.event(Event::RunStarted {
            job: s.job,
            scheduled_at: s.scheduled_at,
            attempt: s.attempt,
        });
        self.prepare(s);
        // Hand work over in small batches so the first handlers of a burst start
        // while the rest is still being dispatched.
        if self.tasks.len() >= DISPATCH_BATCH {
            self.flush_tasks();
        }
    }

    /// Makes an attempt's task (not yet handed to the pool) and records it as
    /// executing.
    fn prepare(&mut self, s: StartRun<Handler>) {
        let token = self.spare_tokens.pop().unwrap_or_default();
        let idx = s.run.index();
        if self.runs.len() <= idx {
            self.runs.resize_with(idx + 1, || None);
        }
        self.runs[idx] = Some(RunSide {
            run: s.run,
            token: token.clone(),
        });
        self.executing += 1;
        let ctx = RunContext {
            job: s.job,
            run: s.run,
            scheduled_at: s.scheduled_at,
            attempt: s.attempt,
            deadline: s.deadline,
            token,
        };
        self.tasks.push(Task::Run {
            handler: s.payload,
            ctx,
        });
    }

    /// Waits (spinning: less than [`AHEAD`]) for the instant attempts are held
    /// until, handling the messages that arrive meanwhile (a cancel, pause or
    /// reschedule withdraws its job's held attempts), then starts the rest.
    fn release_held(&mut self) {
        let Some((_, t)) = self.held_until else {
            return;
        };
        loop {
            while let Ok(m) = self.rx.try_recv() {
                self.handle(m);
            }
            if self.held_until.is_none() {
                // Withdrawn (shutdown).
                return;
            }
            let hooked = self.hold_hook.as_mut().is_some_and(|h| h());
            if !hooked && Instant::now() >= t {
                break;
            }
            std::hint::spin_loop();
        }
        let Some((due, _)) = self.held_until.take() else {
            return;
        };
        let mut held = std::mem::take(&mut self.held);
        if self.journal.enabled() {
            for s in held.drain(..) {
                self.start(due, s);
            }
        } else {
            // Nothing to persist first: hand the whole burst over at once,
            // then report the starts (before any of their ends, which this
            // thread records later).
            let mut started = Vec::with_capacity(held.len());
            for s in held.drain(..) {
                started.push((s.job, s.scheduled_at, s.attempt));
                self.prepare(s);
            }
            self.flush_tasks();
            for (job, scheduled_at, attempt) in started {
                self.event(Event::RunStarted {
                    job,
                    scheduled_at,
                    attempt,
                });
            }
        }
        self.held = held;
        // Attempts whose start failed (a journal refusal) may have caused more.
        self.apply(due);
    }

    /// Withdraws from the core the held attempts of `job` (all of them for
    /// `None`, which also ends the hold), so they never start.
    fn withdraw_held(&mut self, job: Option<JobId>) {
        let Some((due, _)) = self.held_until else {
            return;
        };
        let core = &mut self.core;
        self.held.retain(|s| {
            if job.is_some_and(|j| j != s.job) {
                return true;
            }
            if let Err(e) = core.withdraw(s.run, s.attempt, due) {
                tracing::error!(job = %s.job, error = %e, "could not withdraw a held attempt");
            }
            false
        });
        if job.is_none() {
            self.held_until = None;
        }
    }

    /// Hands the attempts created so far to the pool.
    fn flush_tasks(&mut self) {
        if let Err(rejected) = self.pool.push_all(&mut self.tasks) {
            // The pool only closes after this thread stops; nothing to run them on.
            tracing::error!(
                count = rejected.len(),
                "worker pool closed; attempts dropped"
            );
        }
    }

    fn event(&mut self, e: Event) {
        let j = &mut self.journal;
        let res = match &e {
            Event::RunSucceeded(r)
            | Event::RunFailed(r)
            | Event::RunTimedOut(r)
            | Event::RunCancelled(r) => {
                match r.outcome {
                    myrmex_core::Outcome::Succeeded => {}
                    _ => tracing::error!(
                        job = %r.job,
                        scheduled_at = %r.scheduled_at,
                        attempts = r.attempts,
                        outcome = ?r.outcome,
                        error = r.error.as_deref().unwrap_or(""),
                        "run failed"
                    ),
                }
                if !self.waiters.is_empty()
                    && let Some(w) = self.waiters.remove(&r.run)
                {
                    let _ = w.send(Ok(r.clone()));
                }
                j.run_finished(r)
            }
            Event::RunRetrying {
                job,
                scheduled_at,
                failed_attempt,
                outcome,
                error,
                retry_at,
            } => {
                tracing::warn!(job = %job, scheduled_at = %scheduled_at, attempt = failed_attempt, outcome = ?outcome, error = error.as_deref().unwrap_or(""), retry_at = %retry_at, "attempt failed; will retry");
                j.attempt_failed(
                    *job,
                    *scheduled_at,
                    *failed_attempt,
                    *outcome,
                    error.as_deref(),
                    *retry_at,
                )
            }
            Event::Missed {
                job,
                first,
                last,
                count,
            } => {
                tracing::warn!(job = %job, first = %first, last = %last, count, "occurrences missed");
                j.occurrences_missed(*job, *first, *last, *count)
            }
            Event::Skipped {
                job,
                scheduled_at,
                reason,
            } => {
                tracing::info!(job = %job, scheduled_at = %scheduled_at, reason = ?reason, "occurrence skipped");
                j.occurrence_skipped(*job, *scheduled_at, *reason)
            }
            Event::JobFinished { job, status } => j.job_removed(*job, *status),
            Event::JobCancelled { job } => j.job_removed(*job, JobStatus::Cancelled),
            _ => Ok(()),
        };
        if let Err(err) = res {
            tracing::error!(job = %e.job(), error = %err, "journal call failed");
        }
        for l in &mut self.listeners {
            l(&e);
        }
        if !self.subscribers.is_empty() {
            self.subscribers.retain(|s| s.send(e.clone()).is_ok());
        }
    }
}
