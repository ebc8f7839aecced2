//! The public API: [`Scheduler`], its builder, and [`SchedulerHandle`].

use std::fmt;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use myrmex_core::{
    Core, CoreConfig, Event, JobId, JobSnapshot, JobSpec, JobStatus, PreparedJob, RestoredState,
    RunReport, TriggerSpec,
};

use crate::SchedulerError;
use crate::clock::{Clock, SystemClock};
use crate::context::{Handler, JobError, RunContext};
use crate::journal::{Journal, NoJournal};
use crate::pool::{Pool, Task, error_chain, panic_message, spawn_workers};
use crate::runtime::{HoldOp, Listener, Msg, Runtime};
use crate::token::CancellationToken;

/// Builds a [`Scheduler`].
///
/// Defaults: as many workers as the machine has cores (at least 2), the system's
/// time zone, the [`SystemClock`], no journal, jitter seed 0.
#[must_use]
pub struct SchedulerBuilder {
    workers: Option<usize>,
    zone: Option<TimeZone>,
    clock: Option<Arc<dyn Clock>>,
    journal: Option<Box<dyn Journal>>,
    listeners: Vec<Listener>,
    jitter_seed: u64,
    hold_hook: Option<crate::runtime::HoldHook>,
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("workers", &self.workers)
            .field("zone", &self.zone)
            .field("clock", &self.clock)
            .field("jitter_seed", &self.jitter_seed)
            .finish_non_exhaustive()
    }
}

impl SchedulerBuilder {
    /// The number of worker threads (handlers run there; at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n.max(1));
        self
    }

    /// The zone for triggers that do not name one (`at("09:00")`, cron,
    /// recurrences).
    pub fn zone(mut self, zone: TimeZone) -> Self {
        self.zone = Some(zone);
        self
    }

    /// The clock (a [`crate::ManualClock`] in tests).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The persistence hook.
    pub fn journal(mut self, journal: impl Journal) -> Self {
        self.journal = Some(Box::new(journal));
        self
    }

    /// A listener called on the scheduler thread for every event. Keep it quick;
    /// it must not call the scheduler's waiting methods (they return
    /// [`SchedulerError::OnSchedulerThread`]).
    pub fn on_event(mut self, f: impl FnMut(&Event) + Send + 'static) -> Self {
        self.listeners.push(Box::new(f));
        self
    }

    /// The seed for jitter: the same seed gives the same delays.
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = seed;
        self
    }

    /// Test hook, not part of the API. Called on the scheduler thread, over
    /// and over, while it holds attempts it prepared ahead of their due
    /// instant (the system clock wakes the thread a little before a due
    /// instant that ends a long park); the attempts stay held, and messages
    /// are handled meanwhile, for as long as it returns `true`, even past the
    /// instant. Lets a test see that this path was taken and act during it.
    #[doc(hidden)]
    pub fn hold_hook(mut self, f: impl FnMut() -> bool + Send + 'static) -> Self {
        self.hold_hook = Some(Box::new(f));
        self
    }

    /// Starts the scheduler thread and the workers. Jobs can be added at once;
    /// nothing fires until [`SchedulerHandle::start`].
    ///
    /// # Errors
    /// [`SchedulerError::Spawn`] when a thread cannot be started.
    pub fn build(self) -> Result<Scheduler, SchedulerError> {
        let zone = self.zone.unwrap_or_else(TimeZone::system);
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock::new()));
        let workers = self
            .workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get().max(2)));
        let (tx, rx) = mpsc::channel();
        let waker = || -> crate::clock::Waker {
            let wake_tx = Mutex::new(tx.clone());
            Box::new(move || {
                wake_tx
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .send(Msg::Wake)
                    .is_ok()
            })
        };
        clock.register_waker(waker());
        let watch = clock.watch_changes(waker());
        let pool = Pool::new();
        let worker_handles =
            spawn_workers(&pool, workers, &tx).map_err(|source| SchedulerError::Spawn {
                what: "worker",
                source,
            })?;
        let core = Core::new(CoreConfig {
            zone: zone.clone(),
            jitter_seed: self.jitter_seed,
        });
        let mut runtime = Runtime::new(
            core,
            Arc::clone(&clock),
            rx,
            Arc::clone(&pool),
            worker_handles,
            self.journal.unwrap_or_else(|| Box::new(NoJournal)),
            self.listeners,
            Vec::new(),
            watch,
        );
        runtime.hold_hook = self.hold_hook;
        let thread = std::thread::Builder::new()
            .name("myrmex-scheduler".into())
            .spawn(move || runtime.run())
            .map_err(|source| {
                pool.close();
                SchedulerError::Spawn {
                    what: "scheduler",
                    source,
                }
            })?;
        let scheduler_thread = Arc::new(OnceLock::new());
        let _ = scheduler_thread.set(thread.thread().id());
        Ok(Scheduler {
            handle: SchedulerHandle {
                tx,
                zone,
                clock,
                next_id: Arc::new(AtomicU64::new(1)),
                pool,
                scheduler_thread,
            },
            thread: Mutex::new(Some(thread)),
        })
    }
}

/// A clonable handle to a running scheduler: everything but shutdown. Cheap to
/// clone and `Send + Sync`; usable from event listeners for the calls that do
/// not wait (`schedule`, `cancel`, `release`, …, which then report errors
/// through `tracing` instead of returning them).
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: Sender<Msg>,
    zone: TimeZone,
    clock: Arc<dyn Clock>,
    next_id: Arc<AtomicU64>,
    pool: Arc<Pool>,
    scheduler_thread: Arc<OnceLock<ThreadId>>,
}

impl fmt::Debug for SchedulerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerHandle")
            .field("zone", &self.zone)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

/// A job scheduler: a thread that parks until the next fire and a pool of
/// workers that run the handlers.
///
/// ```
/// use myrmex::{Event, ManualClock, Scheduler, every};
/// use std::time::Duration;
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse()?);
/// let scheduler = Scheduler::builder()
///     .workers(2)
///     .zone(jiff::tz::TimeZone::UTC)
///     .clock(clock.clone())
///     .build()?;
/// let events = scheduler.subscribe();
/// let job = scheduler.schedule(every(Duration::from_secs(5)), |ctx| {
///     println!("tick at {}", ctx.scheduled_at());
///     Ok(())
/// })?;
/// scheduler.start()?;
///
/// clock.advance(Duration::from_secs(5));
/// let done = events.iter().find_map(|e| match e {
///     Event::RunSucceeded(report) => Some(report),
///     _ => None,
/// });
/// assert_eq!(done.unwrap().scheduled_at.to_string(), "2026-01-01T00:00:05Z");
/// assert_eq!(scheduler.get_job(job).unwrap().run_count, 1);
/// scheduler.shutdown(Duration::from_secs(5))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Scheduler {
    handle: SchedulerHandle,
    thread: Mutex<Option<JoinHandle<Result<(), SchedulerError>>>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("handle", &self.handle)
            .finish_non_exhaustive()
    }
}

impl Deref for Scheduler {
    type Target = SchedulerHandle;
    fn deref(&self) -> &SchedulerHandle {
        &self.handle
    }
}

impl Scheduler {
    /// A builder with the defaults.
    pub fn builder() -> SchedulerBuilder {
        SchedulerBuilder {
            workers: None,
            zone: None,
            clock: None,
            journal: None,
            listeners: Vec::new(),
            jitter_seed: 0,
            hold_hook: None,
        }
    }

    /// A clonable handle (for other threads and for event listeners).
    pub fn handle(&self) -> SchedulerHandle {
        self.handle.clone()
    }

    /// Stops firing, waits up to `grace` (real time) for running attempts to
    /// end, then stops the threads. Runs waiting for a retry are abandoned.
    ///
    /// # Errors
    /// [`SchedulerError::ShutdownTimedOut`] when attempts were still running at
    /// the end of the grace period (they are told to stop through their tokens
    /// and their worker threads are detached);
    /// [`SchedulerError::ShutDown`] when called twice;
    /// [`SchedulerError::ThreadPanicked`] on a bug in the scheduler thread.
    pub fn shutdown(&self, grace: Duration) -> Result<(), SchedulerError> {
        let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Err(SchedulerError::ShutDown);
        };
        let _ = self.handle.tx.send(Msg::Shutdown { grace, reply: None });
        match thread.join() {
            Ok(r) => r,
            Err(p) => Err(SchedulerError::ThreadPanicked {
                message: panic_message(&*p),
            }),
        }
    }
}

impl Drop for Scheduler {
    /// Tells the threads to stop without waiting for them (call
    /// [`Scheduler::shutdown`] to wait).
    fn drop(&mut self) {
        if let Some(thread) = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = self.handle.tx.send(Msg::Shutdown {
                grace: Duration::ZERO,
                reply: None,
            });
            drop(thread);
        }
    }
}

impl SchedulerHandle {
    fn on_scheduler_thread(&self) -> bool {
        self.scheduler_thread.get() == Some(&std::thread::current().id())
    }

    pub(crate) fn send(&self, msg: Msg) -> Result<(), SchedulerError> {
        self.tx.send(msg).map_err(|_| SchedulerError::ShutDown)
    }

    /// Sends a command and waits for its answer (or, on the scheduler thread,
    /// sends it without waiting).
    fn call(
        &self,
        make: impl FnOnce(crate::runtime::Reply<()>) -> Msg,
    ) -> Result<(), SchedulerError> {
        if self.on_scheduler_thread() {
            return self.send(make(None));
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(make(Some(tx)))?;
        rx.recv().unwrap_or(Err(SchedulerError::ShutDown))
    }

    /// The zone for triggers that do not name one.
    pub fn zone(&self) -> &TimeZone {
        &self.zone
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The current time on the scheduler's clock.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    /// Starts firing.
    ///
    /// # Errors
    /// [`SchedulerError::AlreadyStarted`] or [`SchedulerError::ShutDown`].
    pub fn start(&self) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Start { reply })
    }

    /// Adds a job; returns its id at once (the job is in the table before any
    /// later call from this thread is handled). Anchors (an interval's start,
    /// `at("HH:MM")`) are taken from the clock at this call.
    ///
    /// # Errors
    /// [`SchedulerError::InvalidTrigger`] or [`SchedulerError::ShutDown`].
    pub fn schedule<F>(&self, job: impl Into<JobSpec>, handler: F) -> Result<JobId, SchedulerError>
    where
        F: Fn(&RunContext) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.schedule_handler(job, Arc::new(handler))
    }

    /// [`SchedulerHandle::schedule`] with a shared handler (a registry can hand
    /// out the same one to many jobs).
    ///
    /// # Errors
    /// [`SchedulerError::InvalidTrigger`] or [`SchedulerError::ShutDown`].
    pub fn schedule_handler(
        &self,
        job: impl Into<JobSpec>,
        handler: Handler,
    ) -> Result<JobId, SchedulerError> {
        let at = self.clock.now();
        let job = PreparedJob::new(job.into(), at, &self.zone)?;
        let id = JobId(self.next_id.fetch_add(1, Ordering::Relaxed));
        self.send(Msg::Add {
            id,
            job,
            handler,
            restored: None,
            at,
            reply: None,
        })?;
        Ok(id)
    }

    /// Adds a job under a known id with restored state (from a store): its
    /// watermark, run count and held status. Not reported to
    /// [`Journal::job_added`]. Later [`SchedulerHandle::schedule`] ids are
    /// above every restored id.
    ///
    /// # Errors
    /// [`SchedulerError::DuplicateJob`], [`SchedulerError::InvalidTrigger`] or
    /// [`SchedulerError::ShutDown`].
    pub fn restore(
        &self,
        id: JobId,
        job: JobSpec,
        state: RestoredState,
        handler: Handler,
    ) -> Result<(), SchedulerError> {
        self.next_id
            .fetch_max(id.0.saturating_add(1), Ordering::Relaxed);
        let at = self.clock.now();
        let job = PreparedJob::new(job, at, &self.zone)?;
        self.call(|reply| Msg::Add {
            id,
            job,
            handler,
            restored: Some(Box::new(state)),
            at,
            reply,
        })
    }

    /// Removes a job: no more fires; its running attempts are told to stop.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn cancel(&self, id: JobId) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Cancel { id, reply })
    }

    /// Holds a job's fires; occurrences due meanwhile are handled by its misfire
    /// policy on [`SchedulerHandle::resume`].
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn pause(&self, id: JobId) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Hold {
            id,
            op: HoldOp::Pause,
            reply,
        })
    }

    /// Releases a paused job.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn resume(&self, id: JobId) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Hold {
            id,
            op: HoldOp::Resume,
            reply,
        })
    }

    /// Holds a job on behalf of a dependency (status [`JobStatus::Blocked`]).
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn block(&self, id: JobId) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Hold {
            id,
            op: HoldOp::Block,
            reply,
        })
    }

    /// Lifts [`SchedulerHandle::block`].
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn unblock(&self, id: JobId) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Hold {
            id,
            op: HoldOp::Unblock,
            reply,
        })
    }

    /// Gives a job a new trigger, anchored at the clock's time of this call.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`], [`SchedulerError::InvalidTrigger`] or
    /// [`SchedulerError::ShutDown`].
    pub fn reschedule(&self, id: JobId, trigger: TriggerSpec) -> Result<(), SchedulerError> {
        let at = self.clock.now();
        let trigger = trigger.resolve(at, &self.zone)?;
        self.call(|reply| Msg::Reschedule {
            id,
            trigger,
            at,
            reply,
        })
    }

    /// Turns an occurrence of a job (usually a [`TriggerSpec::Manual`] one) into
    /// a run now, subject to its overlap policy and `max_runs`. This is how
    /// pipelines start downstream jobs.
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`] or [`SchedulerError::ShutDown`].
    pub fn release(&self, id: JobId, scheduled_at: Timestamp) -> Result<(), SchedulerError> {
        self.call(|reply| Msg::Release {
            id,
            scheduled_at,
            reply,
        })
    }

    /// Runs a job at once, outside its schedule (ignoring its overlap policy),
    /// and waits for the run to end (retries included).
    ///
    /// # Errors
    /// [`SchedulerError::UnknownJob`], [`SchedulerError::ShutDown`], or
    /// [`SchedulerError::OnSchedulerThread`] from an event listener. A failed
    /// run is not an error: look at [`RunReport::outcome`].
    pub fn run_now(&self, id: JobId) -> Result<RunReport, SchedulerError> {
        if self.on_scheduler_thread() {
            return Err(SchedulerError::OnSchedulerThread { call: "run_now" });
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::RunNow { id, reply: tx })?;
        rx.recv().unwrap_or(Err(SchedulerError::ShutDown))
    }

    /// A snapshot of a job (`None` if unknown, finished and removed, or called
    /// from an event listener).
    pub fn get_job(&self, id: JobId) -> Option<JobSnapshot> {
        if self.on_scheduler_thread() {
            return None;
        }
        let (tx, rx) = mpsc::sync_channel(1);
        self.send(Msg::Get { id, reply: tx }).ok()?;
        rx.recv().ok().flatten()
    }

    /// Snapshots of all jobs, or of those with one status, ordered by id (empty
    /// when called from an event listener).
    pub fn list_jobs(&self, filter: Option<JobStatus>) -> Vec<JobSnapshot> {
        if self.on_scheduler_thread() {
            return Vec::new();
        }
        let (tx, rx) = mpsc::sync_channel(1);
        if self.send(Msg::List { filter, reply: tx }).is_err() {
            return Vec::new();
        }
        rx.recv().unwrap_or_default()
    }

    /// A channel that receives every event from now on (unbounded: no event is
    /// dropped; drop the receiver to unsubscribe).
    pub fn subscribe(&self) -> Receiver<Event> {
        let (tx, rx) = mpsc::channel();
        let _ = self.send(Msg::Subscribe(tx));
        rx
    }

    /// Adds a listener called on the scheduler thread for every event.
    pub fn on_event(&self, f: impl FnMut(&Event) + Send + 'static) {
        let _ = self.send(Msg::Listen(Box::new(f)));
    }

    /// Runs a closure on the worker pool (not a job: no trigger, no policies) and
    /// returns a handle to its outcome. A panic is caught and reported as a
    /// failure.
    ///
    /// # Errors
    /// [`SchedulerError::ShutDown`] when the pool is closed.
    ///
    /// ```
    /// # let scheduler = myrmex::Scheduler::builder().workers(1).zone(jiff::tz::TimeZone::UTC).build()?;
    /// let task = scheduler.submit(|_token| Ok(()))?;
    /// assert_eq!(task.wait(), Ok(()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn submit<F>(&self, f: F) -> Result<TaskHandle, SchedulerError>
    where
        F: FnOnce(&CancellationToken) -> Result<(), JobError> + Send + 'static,
    {
        let token = CancellationToken::new();
        let (tx, rx) = mpsc::sync_channel(1);
        let t = token.clone();
        let task = Task::Adhoc(Box::new(move || {
            let r = match catch_unwind(AssertUnwindSafe(|| f(&t))) {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(error_chain(&*e)),
                Err(p) => Err(format!("task panicked: {}", panic_message(&*p))),
            };
            let _ = tx.send(r);
        }));
        self.pool
            .push_all(&mut vec![task])
            .map_err(|_| SchedulerError::ShutDown)?;
        Ok(TaskHandle { rx, token })
    }
}

/// The outcome of a submitted closure.
#[derive(Debug)]
pub struct TaskHandle {
    rx: Receiver<Result<(), String>>,
    token: CancellationToken,
}

impl TaskHandle {
    /// Waits for the closure to end: `Ok`, or the error (or panic) message. A
    /// task dropped unrun (pool closed) reports `Err`.
    pub fn wait(self) -> Result<(), String> {
        self.rx
            .recv()
            .unwrap_or_else(|_| Err("task dropped before it ran".to_owned()))
    }

    /// The outcome if the closure has ended.
    pub fn try_result(&self) -> Option<Result<(), String>> {
        self.rx.try_recv().ok()
    }

    /// Tells the closure to stop (through the token it received).
    pub fn cancel(&self) {
        self.token.cancel();
    }
}
