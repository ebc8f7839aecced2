//! What a handler receives and returns.

use std::sync::Arc;

use jiff::Timestamp;
use myrmex_core::{JobId, RunId};

use crate::token::CancellationToken;

/// The error a handler returns: any error type converts with `?`.
pub type JobError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A job's code. Any `Fn(&RunContext) -> Result<(), JobError> + Send + Sync`
/// closure is one.
pub type Handler = Arc<dyn Fn(&RunContext) -> Result<(), JobError> + Send + Sync + 'static>;

/// What a handler knows about the attempt it runs.
#[derive(Clone, Debug)]
pub struct RunContext {
    pub(crate) job: JobId,
    pub(crate) run: RunId,
    pub(crate) scheduled_at: Timestamp,
    pub(crate) attempt: u32,
    pub(crate) deadline: Option<Timestamp>,
    pub(crate) token: CancellationToken,
}

impl RunContext {
    /// The job.
    pub fn job(&self) -> JobId {
        self.job
    }

    /// The active run (valid until it ends).
    pub fn run(&self) -> RunId {
        self.run
    }

    /// The occurrence key: the nominal fire time. Stable across retries and
    /// restarts, so it makes a good idempotency key for the work the job does.
    pub fn scheduled_at(&self) -> Timestamp {
        self.scheduled_at
    }

    /// The attempt number, 1 for the first.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// When this attempt times out, if it can.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.deadline
    }

    /// The token that says the attempt must stop.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.token
    }

    /// Shorthand for `self.cancellation().is_cancelled()`.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}
