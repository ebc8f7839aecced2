//! Integration tests that run the real `myrmex` binary.

mod check;
mod cron;
mod daemon;
mod util;
