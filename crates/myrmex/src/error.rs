//! Scheduler errors.

use myrmex_core::{CoreError, JobId, TriggerError};

/// What a scheduler call can fail with. A job that fails is not an error here:
/// it is an outcome recorded on its run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchedulerError {
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
    /// The trigger cannot be used.
    #[error("invalid trigger")]
    InvalidTrigger(#[from] TriggerError),
    /// The scheduler has shut down (or is shutting down).
    #[error("the scheduler is shut down")]
    ShutDown,
    /// `start` was called twice.
    #[error("the scheduler is already started")]
    AlreadyStarted,
    /// Shutdown waited its whole grace period and some runs were still going;
    /// they were told to stop and their worker threads were detached.
    #[error("{running} runs still active after the shutdown grace period")]
    ShutdownTimedOut {
        /// How many runs were still active.
        running: usize,
    },
    /// A scheduler thread panicked (a bug in myrmex, not in a handler).
    #[error("the scheduler thread panicked: {message}")]
    ThreadPanicked {
        /// The panic message.
        message: String,
    },
    /// A blocking call was made from the scheduler thread itself (from an event
    /// listener); it would wait forever.
    #[error("{call} cannot be called from an event listener")]
    OnSchedulerThread {
        /// The call.
        call: &'static str,
    },
    /// Any other refusal from the core.
    #[error(transparent)]
    Core(CoreError),
    /// The OS refused to start a thread.
    #[error("could not spawn the {what} thread")]
    Spawn {
        /// Which thread.
        what: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl From<CoreError> for SchedulerError {
    fn from(e: CoreError) -> Self {
        match e {
            CoreError::UnknownJob { id } => SchedulerError::UnknownJob { id },
            CoreError::DuplicateJob { id } => SchedulerError::DuplicateJob { id },
            CoreError::Trigger { source, .. } => SchedulerError::InvalidTrigger(*source),
            other => SchedulerError::Core(other),
        }
    }
}
