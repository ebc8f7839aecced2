//! Integration tests for myrmex-cron (one binary, one module per area).

mod describe;
mod display;
mod dst;
mod engine;
mod errors;
mod parse;
mod reference;
