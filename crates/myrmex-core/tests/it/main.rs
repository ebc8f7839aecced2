//! Integration tests of the pure core: triggers, policies, a property test against
//! a brute-force reference, and the tidy check that keeps the core pure.

mod deps;
mod harness;
mod policies;
mod prop;
mod tidy;
mod triggers;
