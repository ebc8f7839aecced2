//! Integration tests of myrmex-sqlite: the store conformance suite, schema versioning and
//! refusal of foreign files, group commit, and the crash test.

mod conformance;
mod crash;
mod schema;
