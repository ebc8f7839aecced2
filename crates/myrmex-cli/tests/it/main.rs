//! Integration tests that run the real `myrmex` binary.
