//! Documented exit codes of the `myrmex` binary (also listed in the README).

/// Success.
pub const OK: u8 = 0;
/// Invalid input: a bad cron expression, zone, instant or config file.
pub const INVALID_INPUT: u8 = 2;
