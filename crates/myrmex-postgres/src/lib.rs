//! myrmex-postgres (placeholder, filled by its issue).
