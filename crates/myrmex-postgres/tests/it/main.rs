//! Integration tests of the PostgreSQL backend. Every test that needs a server reads
//! `MYRMEX_TEST_POSTGRES_URL` and runs in its own schema, so tests run in parallel;
//! without the variable they print why they are skipped and pass.

mod chaos;
mod common;
mod conformance;
mod dst;
mod misfire;
mod node;
mod pipeline;
mod protocol;
mod races;
mod recurrence;
mod retention;
mod schema;
