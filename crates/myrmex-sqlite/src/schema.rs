//! Schema and migrations.

use std::path::Path;

use myrmex_store::{StoreError, StoreResult};
use rusqlite::{Connection, OptionalExtension};

use crate::tx::db_err;

/// The schema version this build writes. A database with a higher version is refused.
pub const SCHEMA_VERSION: u64 = 1;

/// Migrations, in order: `MIGRATIONS[i]` takes the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the persistence model's layout.
    "
    CREATE TABLE jobs (
        name          TEXT PRIMARY KEY,
        definition    TEXT NOT NULL,          -- JSON of myrmex_store::JobDefinition
        def_version   INTEGER NOT NULL,
        watermark     INTEGER,                -- ns since the epoch; NULL = no fire left
        last_fired_at INTEGER,
        run_count     INTEGER NOT NULL,
        status        TEXT NOT NULL,
        paused        INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL
    );
    CREATE TABLE runs (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,   -- never reused
        job              TEXT NOT NULL,
        scheduled_at     INTEGER NOT NULL,
        stage            TEXT NOT NULL,
        origin           TEXT NOT NULL,
        def_version      INTEGER NOT NULL,
        state            TEXT NOT NULL,
        available_at     INTEGER NOT NULL,
        attempt          INTEGER NOT NULL,                    -- the fencing token
        max_attempts     INTEGER NOT NULL,
        pending_deps     INTEGER NOT NULL,
        lease_owner      TEXT,
        lease_expires_at INTEGER,
        created_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER,
        outcome          TEXT,
        error            TEXT,
        result           TEXT,
        CONSTRAINT runs_occurrence UNIQUE (job, scheduled_at, stage)
    );
    CREATE INDEX runs_due ON runs (state, available_at, id);
    CREATE INDEX runs_lease ON runs (lease_expires_at) WHERE state = 'running';
    CREATE TABLE run_deps (
        upstream INTEGER NOT NULL,   -- the run waited on
        run      INTEGER NOT NULL,   -- the waiting run
        rule     TEXT NOT NULL,
        PRIMARY KEY (upstream, run)
    ) WITHOUT ROWID;
    CREATE INDEX run_deps_run ON run_deps (run, upstream);
    CREATE TABLE attempts (
        run         INTEGER NOT NULL,
        attempt     INTEGER NOT NULL,
        owner       TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        finished_at INTEGER,
        outcome     TEXT,
        error       TEXT,
        PRIMARY KEY (run, attempt)
    ) WITHOUT ROWID;
    ",
];

const _: () = assert!(MIGRATIONS.len() as u64 == SCHEMA_VERSION);

fn open_error(path: &Path, e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::CorruptFile {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("not a usable SQLite database: {e}"),
        },
        _ => db_err("open", e),
    }
}

/// The schema version of an open database: `None` for an empty database, or an error for a
/// database that is not a myrmex store or is corrupt. Reads only.
pub(crate) fn stored_version(conn: &Connection, path: &Path) -> StoreResult<Option<u64>> {
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| open_error(path, e))?;
    if tables == 0 {
        return Ok(None);
    }
    let has_version: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map_err(|e| open_error(path, e))?
        > 0;
    if !has_version {
        return Err(StoreError::CorruptFile {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: "not a myrmex store: it has tables but no `schema_version` table".into(),
        });
    }
    let v: Option<i64> = conn
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .optional()
        .map_err(|e| open_error(path, e))?
        .flatten();
    Ok(Some(v.unwrap_or(0) as u64))
}

/// Refuses a newer database before anything is written to it.
pub(crate) fn check_version(conn: &Connection, path: &Path) -> StoreResult<Option<u64>> {
    let v = stored_version(conn, path)?;
    if let Some(v) = v
        && v > SCHEMA_VERSION
    {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            what: "schema",
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(v)
}

/// Brings the schema up to [`SCHEMA_VERSION`] in one transaction.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> StoreResult<()> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(|e| open_error(path, e))?;
    // Checked again inside the write lock: another process may have migrated meanwhile.
    let current = check_version(&tx, path)?;
    let from = match current {
        None => {
            tx.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL);")
                .map_err(|e| db_err("migrate", e))?;
            0
        }
        Some(v) => v,
    };
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
        tx.execute_batch(sql).map_err(|e| db_err("migrate", e))?;
        tracing::info!(path = %path.display(), to = i + 1, "migrated myrmex sqlite schema");
    }
    if from < SCHEMA_VERSION {
        tx.execute("DELETE FROM schema_version", [])
            .and_then(|_| {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION as i64],
                )
            })
            .map_err(|e| db_err("migrate", e))?;
    }
    tx.commit().map_err(|e| db_err("migrate", e))
}
