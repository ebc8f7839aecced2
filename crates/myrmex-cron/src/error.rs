//! Parse errors: what is wrong, in which field, and where in the source text.

use std::fmt;
use std::ops::Range;

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

impl Field {
    /// The field's name as used in messages: `second`, `minute`, `hour`,
    /// `day-of-month`, `month`, `day-of-week` or `year`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Field::Second => "second",
            Field::Minute => "minute",
            Field::Hour => "hour",
            Field::DayOfMonth => "day-of-month",
            Field::Month => "month",
            Field::DayOfWeek => "day-of-week",
            Field::Year => "year",
        }
    }

    /// The values the field accepts, as written in messages (`0-59`,
    /// `1-12 or JAN-DEC`, ...).
    #[must_use]
    pub fn allowed(self) -> &'static str {
        match self {
            Field::Second | Field::Minute => "0-59",
            Field::Hour => "0-23",
            Field::DayOfMonth => "1-31",
            Field::Month => "1-12 or JAN-DEC",
            Field::DayOfWeek => "0-7 or SUN-SAT",
            Field::Year => "1970-2199",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What is wrong with an expression.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The expression does not have 5, 6 or 7 fields (or is not a single macro).
    FieldCount {
        /// How many blank-separated fields were found.
        found: usize,
    },
    /// A word starting with `@` that is not one of the known macros, or a
    /// macro followed by more text.
    UnknownMacro,
    /// A number or name outside the field's range (`60` in the minute field).
    OutOfRange,
    /// Text that is not a valid item for the field; `expected` describes the
    /// accepted forms.
    Syntax {
        /// The accepted forms, e.g. `a number, a range a-b, a step a-b/s or *`.
        expected: &'static str,
    },
    /// A step (`/s`) that is zero or not a number.
    InvalidStep,
    /// A special form (`L`, `W`, `#`) with an argument outside its range
    /// (`MON#6`, `L-31`, `32W`); `allowed` describes the accepted values.
    InvalidSpecial {
        /// The accepted values, e.g. `the occurrence after # must be 1-5`.
        allowed: &'static str,
    },
    /// The expression is well formed but matches no time between 1970 and 2199.
    NeverFires,
}

/// An expression that was rejected, with where and why.
///
/// The message is a lowercase fragment that names the field, quotes the
/// offending text, says what is allowed and where it is, e.g.
/// `invalid minute "60": must be 0-59 (field 1, column 3)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub(crate) kind: ParseErrorKind,
    pub(crate) field: Option<Field>,
    /// 1-based position of the field in the expression, when one field is at fault.
    pub(crate) field_number: Option<usize>,
    /// The offending text.
    pub(crate) text: String,
    /// Byte range of `text` in the original expression.
    pub(crate) span: Range<usize>,
    /// 1-based column (in characters) of the start of `span`.
    pub(crate) column: usize,
}

impl ParseError {
    pub(crate) fn new(
        expr: &str,
        kind: ParseErrorKind,
        field: Option<(Field, usize)>,
        span: Range<usize>,
    ) -> ParseError {
        let text = expr.get(span.clone()).unwrap_or("").to_owned();
        let column = expr.get(..span.start).map_or(1, |p| p.chars().count() + 1);
        ParseError {
            kind,
            field: field.map(|f| f.0),
            field_number: field.map(|f| f.1),
            text,
            span,
            column,
        }
    }

    /// What is wrong.
    #[must_use]
    pub fn kind(&self) -> &ParseErrorKind {
        &self.kind
    }

    /// The field at fault, when the error is about a single field.
    #[must_use]
    pub fn field(&self) -> Option<Field> {
        self.field
    }

    /// The 1-based position of the faulty field in the expression (`1` is the
    /// first field written), when the error is about a single field.
    #[must_use]
    pub fn field_number(&self) -> Option<usize> {
        self.field_number
    }

    /// The offending text, as it appears in the expression.
    #[must_use]
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The byte range of the offending text in the original expression (for a
    /// caret under it).
    #[must_use]
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The 1-based column, counted in characters, where the offending text starts.
    #[must_use]
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = self.field.map_or("expression", Field::name);
        match &self.kind {
            ParseErrorKind::FieldCount { found } => write!(
                f,
                "expected 5, 6 or 7 fields (or a macro such as @daily), found {found}"
            )?,
            ParseErrorKind::UnknownMacro => write!(
                f,
                "unknown macro {:?}: expected one of @yearly, @annually, @monthly, \
                 @weekly, @daily, @midnight, @hourly, alone",
                self.text
            )?,
            ParseErrorKind::OutOfRange => {
                let field = self.field.unwrap_or(Field::Minute);
                write!(
                    f,
                    "invalid {what} {:?}: must be {}",
                    self.text,
                    field.allowed()
                )?;
            }
            ParseErrorKind::Syntax { expected } => {
                write!(f, "invalid {what} {:?}: expected {expected}", self.text)?;
            }
            ParseErrorKind::InvalidStep => write!(
                f,
                "invalid {what} step {:?}: must be a number of at least 1",
                self.text
            )?,
            ParseErrorKind::InvalidSpecial { allowed } => {
                write!(f, "invalid {what} {:?}: {allowed}", self.text)?;
            }
            ParseErrorKind::NeverFires => write!(
                f,
                "expression {:?} never fires: no date between 1970 and 2199 matches \
                 its day-of-month, month, day-of-week and year fields",
                self.text
            )?,
        }
        match self.field_number {
            Some(n) => write!(f, " (field {n}, column {})", self.column),
            None => write!(f, " (column {})", self.column),
        }
    }
}

impl std::error::Error for ParseError {}
