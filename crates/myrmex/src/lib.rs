//! myrmex: a job scheduler that fires on time, costs nothing while idle and
//! survives stalls, suspends and clock changes.
//!
//! ```
//! use myrmex::{Event, JobSpec, ManualClock, OverlapPolicy, RetryPolicy, Scheduler, at, cron, every};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new("2026-03-02T08:00:00Z".parse()?);
//! let scheduler = Scheduler::builder()
//!     .workers(4)
//!     .zone(jiff::tz::TimeZone::get("Europe/Paris")?)
//!     .clock(clock.clone()) // leave out for the system clock
//!     .build()?;
//!
//! // Every 30 s, never two at once, retried twice on failure.
//! scheduler.schedule(
//!     JobSpec::new(every(Duration::from_secs(30)))
//!         .name("poll")
//!         .overlap(OverlapPolicy::Skip)
//!         .retry(RetryPolicy::Fixed {
//!             max_attempts: 3,
//!             delay: jiff::SignedDuration::from_secs(5),
//!             jitter: jiff::SignedDuration::ZERO,
//!         }),
//!     |ctx| {
//!         // ctx.scheduled_at() is the occurrence key; ctx.cancellation() says stop.
//!         Ok(())
//!     },
//! )?;
//! // Once, at the next 09:30 in Paris (08:30 UTC).
//! let report = scheduler.schedule(at("09:30")?, |_| Ok(()))?;
//! let events = scheduler.subscribe();
//! scheduler.start()?;
//!
//! clock.advance(Duration::from_secs(30 * 60));
//! let finished = events.iter().find_map(|e| match e {
//!     Event::RunSucceeded(r) if r.job == report => Some(r),
//!     _ => None,
//! });
//! assert_eq!(finished.unwrap().scheduled_at.to_string(), "2026-03-02T08:30:00Z");
//! scheduler.shutdown(Duration::from_secs(10))?;
//! # let _ = cron;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the pieces fit
//!
//! - [`Scheduler`] owns one scheduler thread and a pool of workers. The thread
//!   owns a [`myrmex_core::Core`] (the pure state machine: job table, due
//!   queue, policies); it parks until the next due time or a message, never on a
//!   fixed polling sleep, and re-reads the [`Clock`] on every wake.
//! - Calls on the [`Scheduler`] (or a [`SchedulerHandle`]) are messages to that
//!   thread; workers report attempt ends by message too. Nothing is shared under
//!   a lock except the worker queue.
//! - A job is a [`JobSpec`] (data: name, [`TriggerSpec`], [`JobPolicies`]) plus
//!   a handler closure. Each fire is an **occurrence** keyed by
//!   `(JobId, scheduled_at)`, which becomes a **run** of one or more
//!   **attempts**; handlers see it through their [`RunContext`].
//! - [`Event`]s reach listeners ([`SchedulerHandle::on_event`]) and channels
//!   ([`SchedulerHandle::subscribe`]); a [`Journal`] receives every change a
//!   store needs, before the handler starts.
//! - [`ManualClock`] makes all of it deterministic in tests: advancing it wakes
//!   the scheduler.

mod clock;
#[cfg(target_os = "linux")]
mod clock_watch;
mod context;
mod deps;
mod error;
mod journal;
mod persist;
mod pipeline;
mod pool;
mod registry;
mod runtime;
mod scheduler;
mod token;

pub use crate::clock::{Clock, ClockWatch, ManualClock, SystemClock, Waker};
pub use crate::context::{Handler, JobError, RunContext};
pub use crate::deps::{Dag, DagError, Explanation, Reason};
pub use crate::error::SchedulerError;
pub use crate::journal::{Journal, JournalError, NoJournal};
pub use crate::persist::{JobDependency, LoadReport, PersistError, PersistentScheduler};
pub use crate::pipeline::{
    Pipeline, PipelineHandle, PipelineJob, PipelineOutcome, PipelineReport, Stage, StageContext,
    StageFailurePolicy, StageFn, StageJobReport, StageReport, StageStatus,
};
pub use crate::registry::{NamedHandler, Registry};
pub use crate::scheduler::{Scheduler, SchedulerBuilder, SchedulerHandle, TaskHandle};
pub use crate::token::CancellationToken;
pub use myrmex_core::{
    AttemptResult, CronDstPolicy, DisambiguationPolicy, Event, JobId, JobPolicies, JobSnapshot,
    JobSpec, JobStatus, MisfirePolicy, Outcome, OverlapPolicy, Recurrence, RecurrenceUnit,
    RestoredState, RetentionPolicy, RetryPolicy, RunId, RunReport, SkipReason, Trigger,
    TriggerError, TriggerSpec, Weekdays, at, cron, every,
};
pub use myrmex_core::{
    DepError, DepGraph, Dependency, DependentKind, EdgeReport, EdgeState, Readiness, Requirement,
};
