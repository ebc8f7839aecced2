//! Integration tests that run the real `myrmex` binary.

mod check;
mod cluster;
mod cluster_chaos;
mod cron;
mod daemon;
mod util;
