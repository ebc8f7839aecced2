//! Integration tests for myrmex-cron.
