//! Typed errors of the PostgreSQL backend.

/// Everything that can go wrong talking to the cluster database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement or the connection failed.
    #[error("database error while trying to {op}")]
    Db {
        /// What the backend was doing.
        op: &'static str,
        /// The driver's error.
        #[source]
        source: postgres::Error,
    },
    /// The database was migrated by a newer myrmex; refusing to touch it.
    #[error(
        "database schema {schema:?} has version {found}, newer than the {supported} this myrmex supports: upgrade myrmex"
    )]
    SchemaTooNew {
        /// The PostgreSQL schema (namespace) holding the tables.
        schema: String,
        /// The version recorded in the database.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// A schema name that is not a plain lowercase identifier.
    #[error("invalid schema name {name:?}: use lowercase letters, digits and '_'")]
    InvalidSchemaName {
        /// The rejected name.
        name: String,
    },
    /// A trigger that cannot produce fire times.
    #[error("invalid trigger for job {job:?}: {reason}")]
    InvalidTrigger {
        /// The job's name.
        job: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A cron expression that does not parse.
    #[error("invalid cron expression {expr:?}")]
    Cron {
        /// The expression.
        expr: String,
        /// The parser's error.
        #[source]
        source: myrmex_cron::ParseError,
    },
    /// An IANA time zone name that is not in the bundled database.
    #[error("unknown time zone {tz:?}")]
    TimeZone {
        /// The zone name.
        tz: String,
        /// jiff's error.
        #[source]
        source: jiff::Error,
    },
    /// A pipeline whose stages do not form a DAG.
    #[error("invalid pipeline for job {job:?}: {reason}")]
    InvalidPipeline {
        /// The job's name.
        job: String,
        /// What is wrong.
        reason: String,
    },
    /// No job with this id or name.
    #[error("job {job} not found")]
    JobNotFound {
        /// The id or name looked up.
        job: String,
    },
    /// A stored value that this build cannot interpret.
    #[error("corrupt stored {what}: {detail}")]
    Corrupt {
        /// The column or record.
        what: &'static str,
        /// What was found.
        detail: String,
    },
}

impl Error {
    /// Whether the error is a lost connection or a session killed by the server
    /// (`pg_terminate_backend`, restart): the caller should reconnect and retry.
    #[must_use]
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Db { source, .. } => {
                source.is_closed()
                    || source.code().is_some_and(|c| {
                        let c = c.code();
                        c.starts_with("08") || c.starts_with("57P")
                    })
                    || source.as_db_error().is_none()
            }
            _ => false,
        }
    }

    /// Whether the error is a lock wait that gave up (`lock_timeout`) or a
    /// serialization/deadlock abort: the operation can simply be retried.
    #[must_use]
    pub fn is_contention(&self) -> bool {
        match self {
            Error::Db { source, .. } => source
                .code()
                .is_some_and(|c| matches!(c.code(), "55P03" | "40001" | "40P01" | "57014")),
            _ => false,
        }
    }
}

pub(crate) fn db(op: &'static str) -> impl FnOnce(postgres::Error) -> Error {
    move |source| Error::Db { op, source }
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
