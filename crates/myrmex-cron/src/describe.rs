//! English descriptions and warnings (owned by the describe/CLI helper).
