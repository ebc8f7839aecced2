#!/usr/bin/env bash
# The README's test command: every test of every crate, doctests included.
#
# The PostgreSQL tests need a database: MYRMEX_TEST_POSTGRES_URL if set, else a throwaway
# server started by .ci/postgres.sh (which installs Debian's postgresql when it is missing
# and this runs as root). Without one, those tests print why they were skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${MYRMEX_TEST_POSTGRES_URL:-}" ] && [ -z "${MYRMEX_NO_POSTGRES:-}" ]; then
  # shellcheck source=/dev/null
  source .ci/postgres.sh || echo "scripts/test.sh: no PostgreSQL available; the myrmex-postgres tests will be skipped" >&2
fi
cargo test --workspace --locked
