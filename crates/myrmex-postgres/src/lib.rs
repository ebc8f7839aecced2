//! PostgreSQL backend of myrmex for several scheduler processes sharing one
//! database, with no leader (see `shared/docs/cluster-design.md`).
//!
//! * [`PgStore`] is the protocol on one session: jobs and triggers,
//!   [`PgStore::materialize`] (row lock `FOR NO KEY UPDATE SKIP LOCKED`, unique
//!   occurrence key, watermark compare-and-set, misfire and overlap policies),
//!   [`PgStore::claim`] (dead runs buried, expired leases rescued first, then due
//!   work; the attempt is the fencing token), [`PgStore::renew`] (heartbeat),
//!   [`PgStore::complete`] / [`PgStore::fail`] / [`PgStore::cancel`] (fenced,
//!   releasing dependents in the same transaction).
//! * [`Trigger`]s: `once`, `interval` (anchored grid), `cron` in a zone, calendar
//!   [`Trigger::recurrence`]s (myrmex-core's [`Recurrence`], pinned to fixed
//!   anchors so every node computes the same occurrences), `manual` and `after`;
//!   [`Trigger::upcoming`] previews the instants exactly as they materialize.
//! * [`Node`] runs the protocol loop of one process with a worker pool; handlers get
//!   a [`RunContext`] with [`RunContext::still_owned`] (false once the lease is lost
//!   or the job's timeout passed: the attempt is then recorded as timed out) and
//!   [`RunContext::commit_with`] for transactional effects. Its periodic
//!   maintenance moves terminal runs past [`NodeConfig::retention`] to
//!   `sched_run_history` ([`PgStore::archive_runs`]) and forgets nodes gone for
//!   [`NodeConfig::forget_nodes_after`] ([`PgStore::forget_nodes`]);
//!   [`PgStore::nodes`] marks nodes without a recent heartbeat as stale.
//! * Every correctness decision uses the database's `now()`; LISTEN/NOTIFY is only a
//!   wake-up hint, polling is the guarantee.
//!
//! ```no_run
//! use myrmex_postgres::{ConnectOptions, JobSpec, PgStore, Trigger};
//! use jiff::SignedDuration;
//!
//! # fn main() -> Result<(), myrmex_postgres::Error> {
//! let options = ConnectOptions::new("postgres://postgres@127.0.0.1/myrmex").schema("myrmex");
//! let mut store = PgStore::connect(&options)?;
//! let job = store.create_job(&JobSpec::new("report", "build_report",
//!     Trigger::every(SignedDuration::from_secs(60))))?;
//! store.materialize(std::time::Duration::from_secs(2))?;
//! for run in store.claim(8)? {
//!     // ... do the work, then record it, fenced on the attempt:
//!     store.complete(run.run, run.attempt, None, &mut |_tx| Ok(()))?;
//! }
//! # let _ = job;
//! # Ok(())
//! # }
//! ```

mod error;
mod record_store;
mod runtime;
mod schema;
mod store;
mod types;

pub use error::{Error, Result};
pub use record_store::PgRecordStore;
pub use runtime::{Handler, Node, NodeConfig, NodeStats, RunContext};
pub use schema::SCHEMA_VERSION;
pub use store::{
    ClaimedRun, Completion, ConnectOptions, EditOutcome, EffectFn, MaterializeReport, PgStore,
    run_key,
};
pub use types::{
    DependencyRule, JobId, JobSpec, MisfirePolicy, NodeInfo, Origin, OverlapPolicy,
    RECURRENCE_CALENDAR_ANCHOR, RetryBackoff, RunId, RunInfo, RunState, StageSpec, Trigger,
};

/// Re-exports of myrmex-core's calendar recurrence, for [`Trigger::recurrence`].
pub use myrmex_core::{DisambiguationPolicy, Recurrence, RecurrenceUnit, Weekdays};

/// Re-export of the driver, for [`RunContext::commit_with`] closures.
pub use postgres;
