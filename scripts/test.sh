#!/usr/bin/env bash
# The README's test command: every test of every crate, doctests included.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked
