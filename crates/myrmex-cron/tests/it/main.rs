//! Integration tests for myrmex-cron (one binary, one module per area).

mod describe;
mod display;
mod errors;
mod parse;
mod reference;
