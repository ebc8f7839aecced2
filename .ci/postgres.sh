# shellcheck shell=bash
# Sourced by .ci/run before the tests: provides a throwaway PostgreSQL for the
# myrmex-postgres tests and exports MYRMEX_TEST_POSTGRES_URL.
#
# * If MYRMEX_TEST_POSTGRES_URL is already set, nothing happens: the tests use that
#   database (point it at your own server this way).
# * If no PostgreSQL server binaries exist (initdb, pg_ctl; on Debian under
#   /usr/lib/postgresql/<version>/bin), installs Debian's `postgresql` package.
# * Creates a cluster in a fresh temp dir, owned by a non-root user (PostgreSQL refuses
#   to run as root: the `postgres` system user, or a `myrmexpg` user created for it),
#   starts it on 127.0.0.1 on a free port with fsync off, and creates the database
#   `myrmex_test`.
# * Stopping: `myrmex_pg_stop` stops the server and removes the temp dir. The script
#   installs an EXIT trap that calls it and then runs whatever EXIT trap the caller had
#   set before sourcing (the previous trap is kept, not clobbered). A caller that sets
#   its own EXIT trap *after* sourcing should call `myrmex_pg_stop` in it. Set
#   MYRMEX_PG_KEEP=1 to keep the server running (no trap).
#
# Safe under `set -euo pipefail`: every step checks its own result; a failure prints
# why and makes `source` return non-zero (which stops a `set -e` caller).

__myrmex_pg_log() { echo "[postgres.sh] $*" >&2; }

# Newest Debian server bin dir, else the dir of initdb/pg_ctl on PATH.
__myrmex_pg_bindir() {
  local d best=""
  best="$(for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; fi
  done | sort -t/ -k5,5n | tail -n 1)"
  if [ -n "$best" ]; then
    echo "$best"
    return 0
  fi
  local i
  i="$(command -v initdb 2>/dev/null || true)"
  if [ -n "$i" ] && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$i")"
    return 0
  fi
  return 1
}

__myrmex_pg_port_free() {
  # A connect that fails means nobody listens there.
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

myrmex_pg_stop() {
  if [ -n "${MYRMEX_PG_DIR:-}" ] && [ -d "${MYRMEX_PG_DIR}" ]; then
    __myrmex_pg_as "${MYRMEX_PG_BINDIR}/pg_ctl" -D "${MYRMEX_PG_DIR}/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "${MYRMEX_PG_DIR}"
  fi
  MYRMEX_PG_DIR=""
}

__myrmex_pg_setup() {
  local bindir
  if ! bindir="$(__myrmex_pg_bindir)"; then
    __myrmex_pg_log "no PostgreSQL server binaries found: installing Debian's postgresql package"
    if ! command -v apt-get >/dev/null 2>&1; then
      __myrmex_pg_log "apt-get not available; install PostgreSQL or set MYRMEX_TEST_POSTGRES_URL"
      return 1
    fi
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    # The package's post-install may try to start its own cluster; that is harmless
    # (it fails quietly without an init system) and not used here.
    $sudo apt-get update -qq || return 1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null || return 1
    if ! bindir="$(__myrmex_pg_bindir)"; then
      __myrmex_pg_log "postgresql installed but initdb/pg_ctl not found"
      return 1
    fi
  fi
  MYRMEX_PG_BINDIR="$bindir"

  # Run the server as a non-root user.
  MYRMEX_PG_RUNAS=""
  local user=""
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then
      user=postgres
    else
      user=myrmexpg
      id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /bin/sh "$user" || return 1
    fi
    if command -v runuser >/dev/null 2>&1; then
      MYRMEX_PG_RUNAS="runuser -u $user --"
    else
      MYRMEX_PG_RUNAS="__myrmex_pg_su $user"
    fi
  fi

  # As root the server user must reach the dir: use /tmp, not a private $TMPDIR.
  local base="${TMPDIR:-/tmp}"
  [ -n "$user" ] && base=/tmp
  MYRMEX_PG_DIR="$(mktemp -d "$base/myrmex-pg.XXXXXX")" || return 1
  chmod 755 "$MYRMEX_PG_DIR"
  [ -n "$user" ] && chown "$user" "$MYRMEX_PG_DIR"

  if ! __myrmex_pg_as "$bindir/initdb" -D "$MYRMEX_PG_DIR/data" -U postgres -A trust -E UTF8 --locale=C \
    --no-sync >"$MYRMEX_PG_DIR/initdb.log" 2>&1; then
    __myrmex_pg_log "initdb failed:"
    cat "$MYRMEX_PG_DIR/initdb.log" >&2
    return 1
  fi

  local try port started=""
  for try in 1 2 3 4 5 6 7 8; do
    port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
    __myrmex_pg_port_free "$port" || continue
    if __myrmex_pg_as "$bindir/pg_ctl" -D "$MYRMEX_PG_DIR/data" -l "$MYRMEX_PG_DIR/server.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $MYRMEX_PG_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
      start >/dev/null 2>&1; then
      started=1
      break
    fi
  done
  if [ -z "$started" ]; then
    __myrmex_pg_log "could not start PostgreSQL; server log:"
    cat "$MYRMEX_PG_DIR/server.log" >&2 || true
    return 1
  fi
  if ! "$bindir/psql" -X -q -h 127.0.0.1 -p "$port" -U postgres -d postgres \
    -c "CREATE DATABASE myrmex_test" >/dev/null; then
    __myrmex_pg_log "could not create the test database"
    return 1
  fi
  export MYRMEX_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/myrmex_test"
  __myrmex_pg_log "$("$bindir/postgres" --version) on 127.0.0.1:$port; MYRMEX_TEST_POSTGRES_URL=$MYRMEX_TEST_POSTGRES_URL"
}

# Runs a server command as the server user, from a directory it can read (the
# caller's cwd may be private to root).
__myrmex_pg_as() {
  (cd "${MYRMEX_PG_DIR:-/tmp}" 2>/dev/null || cd /; ${MYRMEX_PG_RUNAS:-} "$@")
}

__myrmex_pg_su() {
  local user="$1"
  shift
  su -s /bin/sh "$user" -c "$(printf '%q ' "$@")"
}

# `trap -p EXIT` prints `trap -- 'cmd' EXIT`; the words are shell-quoted, so let the
# shell split them (in a function, so the caller's positional parameters stay intact).
__myrmex_pg_trap_cmd() {
  [ -n "$1" ] || return 0
  eval "set -- $1"
  printf '%s' "${3:-}"
}

__myrmex_pg_on_exit() {
  myrmex_pg_stop
  if [ -n "${__myrmex_pg_prev_exit:-}" ]; then
    eval "$__myrmex_pg_prev_exit"
  fi
}

if [ -n "${MYRMEX_TEST_POSTGRES_URL:-}" ]; then
  __myrmex_pg_log "using MYRMEX_TEST_POSTGRES_URL from the environment"
elif __myrmex_pg_setup; then
  if [ -z "${MYRMEX_PG_KEEP:-}" ]; then
    # Keep the caller's EXIT trap: parse `trap -p EXIT` (trap -- 'cmd' EXIT) safely.
    __myrmex_pg_prev_exit="$(__myrmex_pg_trap_cmd "$(trap -p EXIT)")"
    trap __myrmex_pg_on_exit EXIT
  fi
else
  __myrmex_pg_log "PostgreSQL set-up failed"
  myrmex_pg_stop
  false
fi
