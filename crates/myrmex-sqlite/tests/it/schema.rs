use std::fs;
use std::path::Path;

use jiff::Timestamp;
use myrmex_sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore, Synchronous};
use myrmex_store::{
    JobDefinition, JobId, JobPatch, JobRecord, JobStatus, Store, StoreError, TriggerSpec,
};
use rusqlite::Connection;

fn t0() -> Timestamp {
    "2026-01-01T00:00:00Z".parse().unwrap()
}

fn job(name: &str) -> JobRecord {
    let def = JobDefinition {
        trigger: TriggerSpec::Manual,
        handler: "h".into(),
        args: serde_json::Value::Null,
        policies: Default::default(),
        depends_on: vec![],
    };
    JobRecord::new(name, def, None, t0())
}

fn make_db(path: &Path) {
    let s = SqliteStore::open(path).unwrap();
    s.upsert_job(job("a")).unwrap();
    s.close().unwrap();
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn fresh_database_has_the_layout_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    make_db(&path);
    let c = Connection::open(&path).unwrap();
    let v: i64 = c
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v as u64, SCHEMA_VERSION);
    let mut tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables.sort();
    assert_eq!(
        tables,
        ["attempts", "jobs", "run_deps", "runs", "schema_version"]
    );
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // The occurrence is unique in the database itself, not only in the engine.
    let insert = "INSERT INTO runs (job, scheduled_at, stage, origin, def_version, state, \
                  available_at, attempt, max_attempts, pending_deps, created_at) \
                  VALUES ('a', 1, '', 'schedule', 1, 'pending', 1, 0, 1, 0, 1)";
    c.execute(insert, []).unwrap();
    let dup = c.execute(insert, []).unwrap_err();
    assert!(dup.to_string().contains("UNIQUE"), "{dup}");
    // Reopening an up-to-date database migrates nothing and keeps the data.
    drop(c);
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.list_jobs().unwrap().len(), 1);
    s.close().unwrap();
}

#[test]
fn newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    make_db(&path);
    {
        let c = Connection::open(&path).unwrap();
        c.execute(
            "UPDATE schema_version SET version = ?1",
            [SCHEMA_VERSION as i64 + 1],
        )
        .unwrap();
        c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let before = fs::read(&path).unwrap();
    let files = listing(dir.path());
    let err = SqliteStore::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, StoreError::UnsupportedVersion { found, what: "schema", .. } if found == SCHEMA_VERSION + 1),
        "{err:?}"
    );
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("schema version 2, newer than 1"), "{msg}");
    assert_eq!(fs::read(&path).unwrap(), before, "database untouched");
    assert_eq!(listing(dir.path()), files);
}

#[test]
fn foreign_files_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Not SQLite at all.
    let junk = dir.path().join("junk.db");
    let content = "this is not a database\n".repeat(200);
    fs::write(&junk, &content).unwrap();
    let err = SqliteStore::open(&junk).unwrap_err();
    assert!(matches!(err, StoreError::CorruptFile { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.db"), "{err}");
    assert!(
        err.to_string().contains("not a usable SQLite database"),
        "{err}"
    );
    assert_eq!(fs::read_to_string(&junk).unwrap(), content);

    // SQLite, but someone else's.
    let other = dir.path().join("other.db");
    {
        let c = Connection::open(&other).unwrap();
        c.execute_batch(
            "CREATE TABLE customers (id INTEGER PRIMARY KEY); INSERT INTO customers VALUES (1);",
        )
        .unwrap();
    }
    let before = fs::read(&other).unwrap();
    let err = SqliteStore::open(&other).unwrap_err();
    assert!(err.to_string().contains("not a myrmex store"), "{err}");
    assert_eq!(fs::read(&other).unwrap(), before);
    assert!(
        !dir.path().join("other.db-wal").exists(),
        "WAL not enabled on a foreign file"
    );
}

#[test]
fn many_threads_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open_with(
        dir.path().join("m.db"),
        SqliteOptions::default().synchronous(Synchronous::Normal),
    )
    .unwrap();
    for i in 0..8 {
        s.upsert_job(job(&format!("j{i}"))).unwrap();
    }
    std::thread::scope(|scope| {
        for i in 0..8 {
            let s = &s;
            scope.spawn(move || {
                let id = JobId::new(format!("j{i}"));
                for k in 0..50 {
                    let status = if k % 2 == 0 {
                        JobStatus::Running
                    } else {
                        JobStatus::Pending
                    };
                    s.update_job(
                        &id,
                        JobPatch {
                            paused: Some(k == 49),
                            status: Some(status),
                        },
                        t0(),
                    )
                    .unwrap();
                }
            });
        }
    });
    for j in s.list_jobs().unwrap() {
        assert!(j.state.paused, "{}", j.id);
        assert_eq!(j.state.status, JobStatus::Pending);
    }
    s.close().unwrap();
    assert!(matches!(s.list_jobs(), Err(StoreError::Closed)));
    assert!(matches!(s.upsert_job(job("x")), Err(StoreError::Closed)));
}
