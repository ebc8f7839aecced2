//! The myrmex scheduling state machine: triggers, jobs, runs, policies and the
//! due queue. Pure: it never reads a clock, spawns a thread, locks or does I/O;
//! `now` is always a parameter (a tidy test enforces it).
//!
//! ```
//! use jiff::Timestamp;
//! use myrmex_core::{Action, AttemptResult, Core, CoreConfig, Event, JobId, JobSpec, Trigger, every};
//! use std::time::Duration;
//!
//! let t0: Timestamp = "2026-01-01T00:00:00Z".parse()?;
//! let mut core = Core::new(CoreConfig::default());
//! core.add(t0, JobId(7), JobSpec::new(every(Duration::from_millis(500))).name("tick"), None, "payload")?;
//!
//! // The driver sleeps until `next_wake`, then polls with the time it reads.
//! let wake = core.next_wake().unwrap();
//! let mut actions = Vec::new();
//! core.poll(wake, &mut actions);
//! for action in actions.drain(..).collect::<Vec<_>>() {
//!     if let Action::Start(run) = action {
//!         assert_eq!(run.payload, "payload");
//!         // ... execute the handler, then report the attempt:
//!         core.finish(wake, run.run, run.attempt, AttemptResult::Succeeded, &mut actions)?;
//!     }
//! }
//! assert!(matches!(actions[0], Action::Event(Event::RunSucceeded(_))));
//! assert_eq!(core.snapshot(JobId(7)).unwrap().run_count, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # How the types relate
//!
//! - A [`JobSpec`] (name, [`TriggerSpec`], [`JobPolicies`]) is a job as data; the
//!   [`Core`] resolves it and keeps a compact record plus a payload `P`.
//! - Each fire of a trigger is an **occurrence**, keyed by `(JobId, scheduled_at)`.
//!   An occurrence the policies accept becomes a **run** ([`RunId`] while active),
//!   executed in one or more **attempts** ([`StartRun::attempt`]). The job's
//!   **watermark** ([`JobSnapshot::next_run_at`]) is the next occurrence not yet
//!   turned into a run; stores persist it with every fire.
//! - The core talks to its driver only through [`Action`]s: start an attempt,
//!   cancel one, report an [`Event`].

mod core;
mod deps;
mod job;
mod policy;
mod recurrence;
mod time;
mod trigger;

pub use crate::core::{Action, CancelReason, Core, CoreConfig, CoreError, PreparedJob, StartRun};
pub use crate::deps::{
    DepError, DepGraph, Dependency, DependentKind, EdgeReport, EdgeState, Readiness,
    ReadinessChange, Requirement,
};
pub use crate::job::{
    AttemptResult, Event, JobId, JobSnapshot, JobSpec, JobStatus, Outcome, RestoredState, RunId,
    RunReport, SkipReason,
};
pub use crate::policy::{JobPolicies, MisfirePolicy, OverlapPolicy, RetentionPolicy, RetryPolicy};
pub use crate::recurrence::{Recurrence, RecurrenceUnit, Weekdays};
pub use crate::trigger::{
    CronDstPolicy, DisambiguationPolicy, Trigger, TriggerError, TriggerSpec, at, cron, every,
};
pub use myrmex_cron::Cron;
