//! Persistence for myrmex: the [`Store`] trait, versioned record types, an in-memory store,
//! a JSON file store, and a conformance suite every backend runs.
//!
//! # The model
//!
//! A **job** ([`JobRecord`]) is a definition (trigger as data, handler name and JSON
//! arguments, policies, dependencies) plus state, chiefly the **watermark**: the earliest
//! fire time not yet turned into a run. Turning fires into runs is
//! [`Store::materialize`]: it inserts one [`RunRecord`] per **occurrence**
//! `(job, scheduled_at, stage)` — the idempotency key, unique in every store — and moves
//! the watermark forward by compare-and-set, in one transaction. A run is executed by
//! **attempts** ([`Store::start_attempt`], [`Store::claim_due`]); the attempt number is a
//! **fencing token**: [`Store::complete`] accepts only the current attempt, and releases
//! dependent runs in the same transaction. A running run holds a **lease**; a process that
//! died leaves runs that [`Store::recover_interrupted`] (single process, at start-up) or
//! [`Store::expire_leases`] (shared store) marks interrupted, to be retried.
//!
//! # Backends
//!
//! * [`MemoryStore`]: maps behind a mutex.
//! * [`JsonFileStore`]: one human-readable JSON file, rewritten atomically on every commit.
//! * `myrmex-sqlite`: the default durable store (WAL, group commit).
//!
//! All run [`conformance`]; single-writer backends share the op semantics in [`engine`].
//!
//! # Example
//!
//! ```
//! use jiff::{SignedDuration, Timestamp};
//! use myrmex_store::*;
//!
//! let store = MemoryStore::new();
//! let t0: Timestamp = "2026-03-01T12:00:00Z".parse()?;
//! let every = SignedDuration::from_secs(60);
//! let def = JobDefinition {
//!     trigger: TriggerSpec::Interval { every, anchor: t0, start: None, end: None },
//!     handler: "report".into(),
//!     args: serde_json::Value::Null,
//!     policies: PolicySpec::default(),
//!     depends_on: vec![],
//! };
//! store.upsert_job(JobRecord::new("report", def, Some(t0), t0))?;
//!
//! // The fire at t0 becomes a run, and the watermark moves to t0 + 60 s.
//! let tick = Materialization::tick("report", Some(t0), Some(t0 + every), vec![NewRun::pending(t0)], t0);
//! let MaterializeOutcome::Committed { inserted, .. } = store.materialize(tick.clone())? else { unreachable!() };
//! // Repeating it is refused by the compare-and-set: no second run.
//! assert!(matches!(store.materialize(tick)?, MaterializeOutcome::WatermarkMoved { .. }));
//!
//! let StartOutcome::Started(claim) = store.start_attempt(inserted[0].id, "node-a", t0, every)? else { unreachable!() };
//! let done = store.complete(inserted[0].id, claim.attempt, Completion::success(), t0)?;
//! assert!(matches!(done, CompleteOutcome::Completed { state: RunState::Succeeded, .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod conformance;
pub mod engine;
mod error;
mod json;
mod memory;
mod ops;
mod record;
mod store;

pub use error::{StoreError, StoreResult};
pub use json::{JSON_FORMAT_VERSION, JsonFileStore};
pub use memory::MemoryStore;
pub use ops::{
    ClaimedRun, CompleteOutcome, Completion, JobPatch, Materialization, MaterializeOutcome, NewDep,
    NewRun, NewRunState, Retention, RunFilter, StartOutcome, UpsertOutcome, WatermarkUpdate,
    WriteOp, WriteOutput,
};
pub use record::*;
pub use store::Store;
