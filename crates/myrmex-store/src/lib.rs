//! myrmex-store (placeholder, filled by its issue).
