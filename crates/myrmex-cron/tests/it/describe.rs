//! Tests owned by the describe/display helper.
