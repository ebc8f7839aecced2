//! Documented exit codes of the `myrmex` binary (also listed in the README and in
//! `myrmex --help`).

/// Success.
pub const OK: u8 = 0;
/// An unexpected failure (an I/O error outside the state store, a bug).
pub const FAILURE: u8 = 1;
/// Invalid input: a bad cron expression, zone, instant, argument or config file.
pub const INVALID_INPUT: u8 = 2;
/// The state store could not be opened, read or written.
pub const STORE: u8 = 3;
/// No daemon is reachable on the control socket.
pub const DAEMON_UNREACHABLE: u8 = 4;
/// The daemon refused the request (for example: no such job).
pub const REFUSED: u8 = 5;
/// Another daemon is already running on the same state store.
pub const ALREADY_RUNNING: u8 = 6;

/// The table printed at the end of `myrmex --help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  unexpected failure
  2  invalid input: arguments, cron expression, zone or config file
  3  state store error (cannot open, read or write it)
  4  no daemon reachable on the control socket
  5  the daemon refused the request (e.g. unknown job)
  6  another daemon already runs on this state store";
