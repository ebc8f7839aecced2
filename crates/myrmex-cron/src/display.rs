//! Canonical `Display` (owned by the describe/CLI helper).
