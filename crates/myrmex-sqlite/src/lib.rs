//! myrmex-sqlite (placeholder, filled by its issue).
