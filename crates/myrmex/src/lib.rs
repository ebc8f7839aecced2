//! myrmex (placeholder, filled by its issue).
