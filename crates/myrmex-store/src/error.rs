//! The store's error type.

use std::path::PathBuf;

use crate::record::{JobId, OccurrenceKey, RunId};

/// An error from a [`Store`](crate::Store).
///
/// Expected races of the persistence model are *not* errors: a watermark that moved
/// ([`MaterializeOutcome::WatermarkMoved`](crate::MaterializeOutcome::WatermarkMoved)) and a
/// stale attempt ([`CompleteOutcome::Fenced`](crate::CompleteOutcome::Fenced)) are typed
/// outcomes. Errors are for missing records, invalid requests and I/O or backend failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The job does not exist.
    #[error("job `{job}` not found")]
    JobNotFound {
        /// The job.
        job: JobId,
    },
    /// The run does not exist.
    #[error("{run} not found")]
    RunNotFound {
        /// The run.
        run: RunId,
    },
    /// A dependency named an occurrence that has no run.
    #[error("no run for occurrence {key}")]
    OccurrenceNotFound {
        /// The occurrence.
        key: OccurrenceKey,
    },
    /// The request contradicts itself or the model (the reason says how).
    #[error("invalid {op} request: {reason}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The store was closed; no further operation is accepted.
    #[error("the store is closed")]
    Closed,
    /// A file operation failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done (`"read"`, `"write"`, `"rename"`, `"sync"`).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A state file is not valid: truncated, not JSON, or not the expected shape. The file
    /// was not modified.
    #[error("{path} is corrupt at line {line}, column {column}: {message}")]
    CorruptFile {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the problem (0 if unknown).
        line: usize,
        /// The 1-based column of the problem (0 if unknown).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A stored record could not be decoded (a database row, a JSON column).
    #[error("corrupt record in {location}: {message}")]
    CorruptRecord {
        /// Where (table and key, or file).
        location: String,
        /// What is wrong.
        message: String,
    },
    /// The file or database was written by a newer format/schema version than this build
    /// understands. It was not modified.
    #[error(
        "{path} has {what} version {found}, newer than {supported} (the newest this build reads)"
    )]
    UnsupportedVersion {
        /// The file or database.
        path: PathBuf,
        /// `"format"` or `"schema"`.
        what: &'static str,
        /// The version found.
        found: u64,
        /// The newest version this build supports.
        supported: u64,
    },
    /// A timestamp does not fit the backend's representation.
    #[error("timestamp {value} is outside the range the {backend} store can hold")]
    TimestampOutOfRange {
        /// The backend.
        backend: &'static str,
        /// The value, printed.
        value: String,
    },
    /// The backend (database driver, writer thread) failed.
    #[error("{backend} store failed during {op}: {message}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// The operation.
        op: &'static str,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl StoreError {
    /// Shorthand for [`StoreError::Invalid`].
    pub fn invalid(op: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            op,
            reason: reason.into(),
        }
    }
}

/// The result type of store operations.
pub type StoreResult<T> = Result<T, StoreError>;
