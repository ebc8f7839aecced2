//! myrmex-core (placeholder, filled by its issue).
