//! Integration tests of myrmex-store: the conformance suite on the memory and JSON stores,
//! and the JSON file format.

mod json;
mod memory;
