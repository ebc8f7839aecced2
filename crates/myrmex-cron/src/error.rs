//! Parse errors (skeleton; the parser owner fills this in).

/// A field of a cron expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// Seconds, 0-59 (6- and 7-field forms only).
    Second,
    /// Minutes, 0-59.
    Minute,
    /// Hours, 0-23.
    Hour,
    /// Day of the month, 1-31.
    DayOfMonth,
    /// Month, 1-12 or JAN-DEC.
    Month,
    /// Day of the week, 0-7 or SUN-SAT (0 and 7 are Sunday).
    DayOfWeek,
    /// Year, 1970-2199 (7-field form only).
    Year,
}

/// What is wrong with an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// Placeholder until the parser lands.
    Invalid,
}

/// An expression that was rejected, with where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid cron expression")]
pub struct ParseError {
    pub(crate) kind: ParseErrorKind,
}
