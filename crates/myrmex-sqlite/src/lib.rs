//! The default durable [`Store`] for myrmex: one SQLite file (rusqlite, bundled SQLite).
//!
//! * **WAL mode** with `synchronous=FULL` by default ([`Synchronous`]): a write that
//!   returned `Ok` survives a power cut.
//! * **Group commit through one writer thread.** Every write is a request on a channel; the
//!   writer takes everything queued (up to [`SqliteOptions::max_batch_ops`]), applies it in
//!   one transaction — each op under its own savepoint, so a failing op is rolled back alone —
//!   commits once, then answers each caller. Many concurrent updates share one fsync.
//! * Reads use their own connection and see every write whose call has returned.
//! * **Schema migrations** with a `schema_version` table; a database from a newer version
//!   (or a file that is not a myrmex database) is refused before anything is written to it.
//! * The layout of the persistence model: `jobs`, `runs` (unique on the occurrence
//!   `(job, scheduled_at, stage)`, indexed by state and due time and by lease expiry),
//!   `run_deps`, `attempts` (append-only history), `schema_version`.
//!
//! Timestamps are stored as nanoseconds since the epoch (64 bits): 1677 to 2262.
//!
//! ```
//! use jiff::Timestamp;
//! use myrmex_sqlite::SqliteStore;
//! use myrmex_store::{JobDefinition, JobRecord, Store, TriggerSpec};
//!
//! let dir = tempfile::tempdir()?;
//! let store = SqliteStore::open(dir.path().join("myrmex.db"))?;
//! let now: Timestamp = "2026-01-01T00:00:00Z".parse()?;
//! let def = JobDefinition {
//!     trigger: TriggerSpec::Cron { expr: "0 3 * * *".into(), zone: "UTC".into(), dst: None },
//!     handler: "backup".into(),
//!     args: serde_json::json!({ "path": "/srv" }),
//!     policies: Default::default(),
//!     depends_on: vec![],
//! };
//! store.upsert_job(JobRecord::new("backup", def, None, now))?;
//! store.close()?; // joins the writer thread
//!
//! let store = SqliteStore::open(dir.path().join("myrmex.db"))?;
//! assert_eq!(store.list_jobs()?[0].definition.handler, "backup");
//! store.close()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod schema;
mod tx;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, mpsc};
use std::thread::JoinHandle;
use std::time::Duration;

use myrmex_store::engine::{self, Tx};
use myrmex_store::{
    AttemptRecord, JobId, JobRecord, OccurrenceKey, RunDepRecord, RunFilter, RunId, RunRecord,
    Store, StoreError, StoreResult, WriteOp, WriteOutput,
};
use rusqlite::{Connection, OpenFlags};

pub use schema::SCHEMA_VERSION;

use crate::tx::{SqlTx, db_err};

/// SQLite's `synchronous` setting for the writer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Synchronous {
    /// fsync on every commit (and of the WAL before checkpoints): a returned write survives
    /// a power cut. The default.
    #[default]
    Full,
    /// fsync only at checkpoints: a returned write survives a process crash, but the last
    /// commits may be lost on power failure. Faster.
    Normal,
    /// No fsync at all: for tests and throwaway data.
    Off,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Self::Full => "FULL",
            Self::Normal => "NORMAL",
            Self::Off => "OFF",
        }
    }
}

/// Options for [`SqliteStore::open_with`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// Durability of commits. Default [`Synchronous::Full`].
    pub synchronous: Synchronous,
    /// The most ops the writer groups into one transaction. Default 4096.
    pub max_batch_ops: usize,
    /// How long to wait for a lock held by another connection. Default 5 s.
    pub busy_timeout: Duration,
    /// When the previous commit was shared by several callers, how long the writer may wait
    /// for the other callers to queue their next write before committing (PostgreSQL's
    /// `commit_delay`). It trades a little latency for fewer fsyncs under concurrency; a
    /// lone caller never waits. Default 0 (only a few thread yields).
    pub commit_delay: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            synchronous: Synchronous::Full,
            max_batch_ops: 4096,
            busy_timeout: Duration::from_secs(5),
            commit_delay: Duration::ZERO,
        }
    }
}

impl SqliteOptions {
    /// Sets [`SqliteOptions::synchronous`].
    pub fn synchronous(mut self, s: Synchronous) -> Self {
        self.synchronous = s;
        self
    }

    /// Sets [`SqliteOptions::commit_delay`].
    pub fn commit_delay(mut self, delay: Duration) -> Self {
        self.commit_delay = delay;
        self
    }

    /// Sets [`SqliteOptions::max_batch_ops`] (at least 1).
    pub fn max_batch_ops(mut self, n: usize) -> Self {
        self.max_batch_ops = n.max(1);
        self
    }
}

type Reply = StoreResult<Vec<StoreResult<WriteOutput>>>;

struct Request {
    ops: Vec<WriteOp>,
    reply: mpsc::SyncSender<Reply>,
}

/// A [`Store`] in a SQLite database. See the [crate docs](crate).
///
/// Closing: [`Store::close`] stops the writer after the queued writes and joins it, and
/// reports any failure. Dropping without closing lets the writer finish in the background
/// (drop never blocks).
pub struct SqliteStore {
    path: PathBuf,
    sender: RwLock<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<StoreResult<()>>>>,
    reader: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` with default options.
    ///
    /// # Errors
    ///
    /// See [`SqliteStore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        Self::open_with(path, SqliteOptions::default())
    }

    /// Opens (creating if needed) the database at `path`, migrates its schema, and starts the
    /// writer thread.
    ///
    /// # Errors
    ///
    /// [`StoreError::UnsupportedVersion`] for a database of a newer schema, and
    /// [`StoreError::CorruptFile`] for a file that is not a SQLite database or not a myrmex
    /// one — in both cases before anything is written to the file.
    /// [`StoreError::Backend`] if SQLite cannot open or migrate it.
    pub fn open_with(path: impl AsRef<Path>, options: SqliteOptions) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let mut conn = Connection::open(&path).map_err(|e| db_err("open", e))?;
        conn.busy_timeout(options.busy_timeout)
            .map_err(|e| db_err("open", e))?;
        // Refuse a newer or foreign database before the pragmas below write to it.
        schema::check_version(&conn, &path)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| db_err("enable WAL", e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Backend {
                backend: "sqlite",
                op: "enable WAL",
                message: format!("journal mode is `{mode}`, WAL unavailable"),
                source: None,
            });
        }
        conn.pragma_update(None, "synchronous", options.synchronous.pragma())
            .map_err(|e| db_err("set synchronous", e))?;
        schema::migrate(&mut conn, &path)?;
        conn.set_prepared_statement_cache_capacity(64);

        let reader = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| db_err("open reader", e))?;
        reader
            .busy_timeout(options.busy_timeout)
            .map_err(|e| db_err("open reader", e))?;
        reader.set_prepared_statement_cache_capacity(64);

        let (sender, rx) = mpsc::channel::<Request>();
        let max_batch = options.max_batch_ops.max(1);
        let commit_delay = options.commit_delay;
        let writer = std::thread::Builder::new()
            .name("myrmex-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, max_batch, commit_delay))
            .map_err(|e| StoreError::Backend {
                backend: "sqlite",
                op: "start writer thread",
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        Ok(Self {
            path,
            sender: RwLock::new(Some(sender)),
            writer: Mutex::new(Some(writer)),
            reader: Mutex::new(Some(reader)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read<R>(&self, f: impl FnOnce(&SqlTx<'_>) -> StoreResult<R>) -> StoreResult<R> {
        let g = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let conn = g.as_ref().ok_or(StoreError::Closed)?;
        f(&SqlTx { conn })
    }
}

fn writer_loop(
    mut conn: Connection,
    rx: mpsc::Receiver<Request>,
    max_batch: usize,
    commit_delay: Duration,
) -> StoreResult<()> {
    // How many requests the previous commit answered: when callers are concurrent, the
    // writer gives them a moment to queue up before committing (a few yields, then at most
    // `commit_delay` in total), so that more of them share the next fsync.
    let mut last_batch = 0usize;
    while let Ok(first) = rx.recv() {
        let mut n = first.ops.len();
        let mut batch = vec![first];
        let concurrent = last_batch > 1;
        let mut yields = if concurrent { 3 } else { 0 };
        let deadline = (concurrent && !commit_delay.is_zero())
            .then(|| std::time::Instant::now() + commit_delay);
        while n < max_batch {
            let next = match rx.try_recv() {
                Ok(r) => Some(r),
                Err(mpsc::TryRecvError::Disconnected) => None,
                Err(mpsc::TryRecvError::Empty) if batch.len() >= last_batch => None,
                Err(mpsc::TryRecvError::Empty) if yields > 0 => {
                    yields -= 1;
                    std::thread::yield_now();
                    continue;
                }
                Err(mpsc::TryRecvError::Empty) => match deadline {
                    Some(d) => {
                        let left = d.saturating_duration_since(std::time::Instant::now());
                        rx.recv_timeout(left).ok()
                    }
                    None => None,
                },
            };
            match next {
                Some(r) => {
                    n += r.ops.len();
                    batch.push(r);
                }
                None => break,
            }
        }
        last_batch = batch.len();
        commit_batch(&mut conn, batch);
    }
    conn.close().map_err(|(_, e)| db_err("close", e))
}

fn exec(conn: &Connection, sql: &str, op: &'static str) -> StoreResult<()> {
    conn.prepare_cached(sql)
        .and_then(|mut st| st.execute([]))
        .map(|_| ())
        .map_err(|e| db_err(op, e))
}

fn commit_batch(conn: &mut Connection, mut batch: Vec<Request>) {
    let ops_total: usize = batch.iter().map(|r| r.ops.len()).sum();
    let result = (|| -> StoreResult<Vec<Vec<StoreResult<WriteOutput>>>> {
        exec(conn, "BEGIN IMMEDIATE", "begin")?;
        let mut all = Vec::with_capacity(batch.len());
        for req in &mut batch {
            let mut results = Vec::with_capacity(req.ops.len());
            for op in std::mem::take(&mut req.ops) {
                exec(conn, "SAVEPOINT op", "savepoint")?;
                let r = engine::execute(&mut SqlTx { conn: &*conn }, op);
                if r.is_err() {
                    exec(conn, "ROLLBACK TO op", "rollback op")?;
                }
                exec(conn, "RELEASE op", "release op")?;
                results.push(r);
            }
            all.push(results);
        }
        exec(conn, "COMMIT", "commit")?;
        Ok(all)
    })();
    match result {
        Ok(all) => {
            for (req, results) in batch.into_iter().zip(all) {
                // A caller that gave up waiting is not an error of the store.
                let _ = req.reply.send(Ok(results));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, ops = ops_total, "sqlite group commit failed; rolled back");
            let _ = conn.execute_batch("ROLLBACK");
            let message = e.to_string();
            for req in batch {
                let _ = req.reply.send(Err(StoreError::Backend {
                    backend: "sqlite",
                    op: "commit",
                    message: message.clone(),
                    source: None,
                }));
            }
        }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        op: "apply",
        message: "the writer thread stopped".into(),
        source: None,
    }
}

impl Store for SqliteStore {
    fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>> {
        if ops.is_empty() {
            // Still refuse on a closed store.
            let g = self.sender.read().unwrap_or_else(|p| p.into_inner());
            return if g.is_some() {
                Ok(Vec::new())
            } else {
                Err(StoreError::Closed)
            };
        }
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let g = self.sender.read().unwrap_or_else(|p| p.into_inner());
            let sender = g.as_ref().ok_or(StoreError::Closed)?;
            sender
                .send(Request { ops, reply })
                .map_err(|_| writer_gone())?;
        }
        answer.recv().map_err(|_| writer_gone())?
    }

    fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>> {
        self.read(|t| SqlTx { conn: t.conn }.job(job))
    }

    fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        self.read(|t| t.list_jobs())
    }

    fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>> {
        self.read(|t| SqlTx { conn: t.conn }.run(run))
    }

    fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        self.read(|t| SqlTx { conn: t.conn }.run_by_key(key))
    }

    fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        self.read(|t| t.list_runs(filter))
    }

    fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
        self.read(|t| t.attempts_of(run))
    }

    fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.read(|t| t.upstream_deps(run))
    }

    fn close(&self) -> StoreResult<()> {
        drop(
            self.sender
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let handle = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        let reader = self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut result = Ok(());
        if let Some(h) = handle {
            result = match h.join() {
                Ok(r) => r,
                Err(_) => Err(StoreError::Backend {
                    backend: "sqlite",
                    op: "close",
                    message: "the writer thread panicked".into(),
                    source: None,
                }),
            };
        }
        if let Some(r) = reader
            && let Err((_, e)) = r.close()
        {
            result = result.and(Err(db_err("close reader", e)));
        }
        result
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // Dropping the sender lets the writer finish its queue and exit on its own; the
        // handle is detached so that drop never blocks. `close` is the joining path.
        if let Ok(mut g) = self.sender.write() {
            g.take();
        }
    }
}
