//! Integration tests that run the real `myrmex` binary.

mod check;
mod cron;
#[allow(dead_code, reason = "the daemon harness is used by the `run` tests, landing next")]
mod util;
