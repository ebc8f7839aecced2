//! [`PgRecordStore`]: the `myrmex_store::Store` trait on PostgreSQL.
//!
//! The trait's ops are defined once in `myrmex_store::engine` over a small transaction
//! interface; this backend implements that interface on PostgreSQL rows (one JSON record
//! per job, run, edge and attempt, with the columns the queries need) and runs every
//! batch in a `SERIALIZABLE` transaction, retried on serialization failures. So several
//! processes may share one database through this trait and still see the answers of a
//! single writer; the claim path does not use `SKIP LOCKED` here (that is
//! [`PgStore`](crate::PgStore)'s job), and time comes from the caller's `now` as the trait
//! requires.

use std::sync::Mutex;

use jiff::Timestamp;
use myrmex_store::engine::{self, RunQuery, Tx};
use myrmex_store::{
    Attempt, AttemptRecord, JobId, JobPatch, JobRecord, OccurrenceKey, RunDepRecord, RunFilter,
    RunId, RunRecord, Store, StoreError, StoreResult, WriteOp, WriteOutput,
};
use postgres::error::SqlState;
use postgres::{Client, IsolationLevel, Transaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Result;
use crate::schema;
use crate::store::ConnectOptions;

/// How often a batch is retried after a serialization failure before giving up.
const MAX_RETRIES: usize = 50;

/// The `Store` trait of `myrmex-store` on PostgreSQL (tables `store_*` in the schema).
pub struct PgRecordStore {
    client: Mutex<Option<Client>>,
}

impl std::fmt::Debug for PgRecordStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgRecordStore").finish_non_exhaustive()
    }
}

fn backend(op: &'static str, e: postgres::Error) -> StoreError {
    StoreError::Backend {
        backend: "postgres",
        op,
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

fn corrupt(location: &str, e: &serde_json::Error) -> StoreError {
    StoreError::CorruptRecord {
        location: location.to_owned(),
        message: e.to_string(),
    }
}

fn to_json<T: Serialize>(what: &str, v: &T) -> StoreResult<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| corrupt(what, &e))
}

fn from_json<T: DeserializeOwned>(what: &str, v: serde_json::Value) -> StoreResult<T> {
    serde_json::from_value(v).map_err(|e| corrupt(what, &e))
}

impl PgRecordStore {
    /// Connects and migrates the schema.
    ///
    /// # Errors
    /// As [`PgStore::connect`](crate::PgStore::connect).
    pub fn connect(options: &ConnectOptions) -> Result<PgRecordStore> {
        let mut client = options.open_session()?;
        schema::migrate(&mut client, &options.schema)?;
        Ok(PgRecordStore {
            client: Mutex::new(Some(client)),
        })
    }

    fn with<R>(&self, f: impl FnOnce(&mut Client) -> StoreResult<R>) -> StoreResult<R> {
        let mut g = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match g.as_mut() {
            Some(c) => f(c),
            None => Err(StoreError::Closed),
        }
    }

    fn read_runs(
        &self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<RunRecord>> {
        self.with(|c| {
            c.query(sql, params)
                .map_err(|e| backend("read runs", e))?
                .into_iter()
                .map(|r| from_json("store_run", r.get(0)))
                .collect()
        })
    }
}

/// One batch's transaction, remembering whether a statement hit a serialization
/// failure (then the whole batch is retried).
struct PgTx<'a, 'b> {
    tx: &'b mut Transaction<'a>,
    retry: bool,
}

impl PgTx<'_, '_> {
    fn check(&mut self, op: &'static str, e: postgres::Error) -> StoreError {
        if matches!(
            e.code(),
            Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED
        ) {
            self.retry = true;
        }
        backend(op, e)
    }

    fn exec(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<u64> {
        match self.tx.execute(sql, params) {
            Ok(n) => Ok(n),
            Err(e) => Err(self.check(op, e)),
        }
    }

    fn query(
        &mut self,
        op: &'static str,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<postgres::Row>> {
        match self.tx.query(sql, params) {
            Ok(rows) => Ok(rows),
            Err(e) => Err(self.check(op, e)),
        }
    }

    fn runs_where(
        &mut self,
        sql: &str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> StoreResult<Vec<RunRecord>> {
        self.query("read runs", sql, params)?
            .into_iter()
            .map(|r| from_json("store_run", r.get(0)))
            .collect()
    }

    fn write_run(&mut self, run: &RunRecord, insert: bool) -> StoreResult<u64> {
        let rec = to_json("store_run", run)?;
        let id = run.id.0 as i64;
        let params: [&(dyn postgres::types::ToSql + Sync); 9] = [
            &id,
            &run.key.job.0,
            &run.key.scheduled_at,
            &run.key.stage,
            &run.state.as_str(),
            &run.available_at,
            &run.state.is_claimable(),
            &run.state.is_terminal(),
            &rec,
        ];
        if insert {
            self.exec(
                "insert_run",
                "INSERT INTO store_run (id, job_id, scheduled_at, stage, state, available_at, claimable, terminal, rec)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                &params,
            )
        } else {
            self.exec(
                "put_run",
                "UPDATE store_run SET job_id = $2, scheduled_at = $3, stage = $4, state = $5, available_at = $6,
                   claimable = $7, terminal = $8, rec = $9 WHERE id = $1",
                &params,
            )
        }
    }
}

impl Tx for PgTx<'_, '_> {
    fn job(&mut self, id: &JobId) -> StoreResult<Option<JobRecord>> {
        let rows = self.query(
            "read a job",
            "SELECT rec FROM store_job WHERE id = $1",
            &[&id.0],
        )?;
        rows.into_iter()
            .next()
            .map(|r| from_json("store_job", r.get(0)))
            .transpose()
    }

    fn put_job(&mut self, job: &JobRecord) -> StoreResult<()> {
        let rec = to_json("store_job", job)?;
        self.exec(
            "put_job",
            "INSERT INTO store_job (id, rec) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET rec = EXCLUDED.rec",
            &[&job.id.0, &rec],
        )?;
        Ok(())
    }

    fn patch_job(&mut self, id: &JobId, patch: &JobPatch, now: Timestamp) -> StoreResult<bool> {
        let Some(mut j) = self.job(id)? else {
            return Ok(false);
        };
        if let Some(p) = patch.paused {
            j.state.paused = p;
        }
        if let Some(s) = patch.status {
            j.state.status = s;
        }
        j.updated_at = now;
        self.put_job(&j)?;
        Ok(true)
    }

    fn add_run_count(&mut self, id: &JobId, n: u64, now: Timestamp) -> StoreResult<()> {
        if let Some(mut j) = self.job(id)? {
            j.state.run_count += n;
            j.updated_at = now;
            self.put_job(&j)?;
        }
        Ok(())
    }

    fn remove_job(&mut self, id: &JobId) -> StoreResult<()> {
        self.exec(
            "remove_job",
            "DELETE FROM store_job WHERE id = $1",
            &[&id.0],
        )?;
        Ok(())
    }

    fn run(&mut self, id: RunId) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .runs_where("SELECT rec FROM store_run WHERE id = $1", &[&(id.0 as i64)])?
            .pop())
    }

    fn run_by_key(&mut self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .runs_where(
                "SELECT rec FROM store_run WHERE job_id = $1 AND scheduled_at = $2 AND stage = $3",
                &[&key.job.0, &key.scheduled_at, &key.stage],
            )?
            .pop())
    }

    fn insert_run(&mut self, run: &RunRecord) -> StoreResult<RunId> {
        if self.run_by_key(&run.key)?.is_some() {
            return Err(StoreError::invalid(
                "insert_run",
                format!("occurrence {} already has a run", run.key),
            ));
        }
        let id: i64 = self
            .query("insert_run", "SELECT nextval('store_run_id_seq')", &[])?
            .first()
            .map_or(0, |r| r.get(0));
        let mut r = run.clone();
        r.id = RunId(id as u64);
        self.write_run(&r, true)?;
        Ok(r.id)
    }

    fn put_run(&mut self, run: &RunRecord) -> StoreResult<()> {
        if self.write_run(run, false)? == 0 {
            return Err(StoreError::RunNotFound { run: run.id });
        }
        Ok(())
    }

    fn remove_run(&mut self, id: RunId) -> StoreResult<()> {
        let id = id.0 as i64;
        self.exec(
            "remove_run",
            "DELETE FROM store_attempt WHERE run_id = $1",
            &[&id],
        )?;
        self.exec(
            "remove_run",
            "DELETE FROM store_dep WHERE run_id = $1 OR upstream = $1",
            &[&id],
        )?;
        self.exec("remove_run", "DELETE FROM store_run WHERE id = $1", &[&id])?;
        Ok(())
    }

    fn runs(&mut self, query: &RunQuery) -> StoreResult<Vec<RunRecord>> {
        match query {
            RunQuery::Running => self.runs_where(
                "SELECT rec FROM store_run WHERE state = 'running' ORDER BY id",
                &[],
            ),
            RunQuery::OfJob(job) => self.runs_where(
                "SELECT rec FROM store_run WHERE job_id = $1 ORDER BY id",
                &[&job.0],
            ),
            RunQuery::Terminal => {
                self.runs_where("SELECT rec FROM store_run WHERE terminal ORDER BY id", &[])
            }
            RunQuery::ClaimableDue { now, limit } => self.runs_where(
                "SELECT rec FROM store_run WHERE claimable AND available_at <= $1
                 ORDER BY available_at, id LIMIT $2",
                &[now, &(*limit as i64)],
            ),
            other => Err(StoreError::invalid(
                "runs",
                format!("query {other:?} is not supported by the postgres store"),
            )),
        }
    }

    fn insert_dep(&mut self, dep: &RunDepRecord) -> StoreResult<()> {
        let rec = to_json("store_dep", dep)?;
        self.exec(
            "insert_dep",
            "INSERT INTO store_dep (upstream, run_id, rec) VALUES ($1, $2, $3)
             ON CONFLICT (upstream, run_id) DO UPDATE SET rec = EXCLUDED.rec",
            &[&(dep.upstream.0 as i64), &(dep.run.0 as i64), &rec],
        )?;
        Ok(())
    }

    fn waiters(&mut self, upstream: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.query(
            "waiters",
            "SELECT rec FROM store_dep WHERE upstream = $1 ORDER BY run_id",
            &[&(upstream.0 as i64)],
        )?
        .into_iter()
        .map(|r| from_json("store_dep", r.get(0)))
        .collect()
    }

    fn attempt(&mut self, run: RunId, attempt: Attempt) -> StoreResult<Option<AttemptRecord>> {
        self.query(
            "attempt",
            "SELECT rec FROM store_attempt WHERE run_id = $1 AND attempt = $2",
            &[&(run.0 as i64), &i64::from(attempt.0)],
        )?
        .into_iter()
        .next()
        .map(|r| from_json("store_attempt", r.get(0)))
        .transpose()
    }

    fn put_attempt(&mut self, attempt: &AttemptRecord) -> StoreResult<()> {
        let rec = to_json("store_attempt", attempt)?;
        self.exec(
            "put_attempt",
            "INSERT INTO store_attempt (run_id, attempt, rec) VALUES ($1, $2, $3)
             ON CONFLICT (run_id, attempt) DO UPDATE SET rec = EXCLUDED.rec",
            &[&(attempt.run.0 as i64), &i64::from(attempt.attempt.0), &rec],
        )?;
        Ok(())
    }
}

impl Store for PgRecordStore {
    fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>> {
        self.with(|client| {
            let mut last = None;
            for _ in 0..MAX_RETRIES {
                let mut tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .map_err(|e| backend("begin", e))?;
                let mut out = Vec::with_capacity(ops.len());
                let mut retry = false;
                for op in ops.iter().cloned() {
                    tx.batch_execute("SAVEPOINT op")
                        .map_err(|e| backend("savepoint", e))?;
                    let mut ptx = PgTx {
                        tx: &mut tx,
                        retry: false,
                    };
                    let r = engine::execute(&mut ptx, op);
                    if ptx.retry {
                        retry = true;
                        break;
                    }
                    let end = if r.is_ok() {
                        "RELEASE SAVEPOINT op"
                    } else {
                        "ROLLBACK TO SAVEPOINT op"
                    };
                    tx.batch_execute(end).map_err(|e| backend("savepoint", e))?;
                    out.push(r);
                }
                if retry {
                    drop(tx);
                    continue;
                }
                match tx.commit() {
                    Ok(()) => return Ok(out),
                    Err(e) if e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE) => {
                        last = Some(e);
                    }
                    Err(e) => return Err(backend("commit", e)),
                }
            }
            Err(match last {
                Some(e) => backend("apply", e),
                None => StoreError::Backend {
                    backend: "postgres",
                    op: "apply",
                    message: format!("gave up after {MAX_RETRIES} serialization failures"),
                    source: None,
                },
            })
        })
    }

    fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>> {
        self.with(|c| {
            c.query_opt("SELECT rec FROM store_job WHERE id = $1", &[&job.0])
                .map_err(|e| backend("get_job", e))?
                .map(|r| from_json("store_job", r.get(0)))
                .transpose()
        })
    }

    fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        self.with(|c| {
            c.query("SELECT rec FROM store_job ORDER BY id COLLATE \"C\"", &[])
                .map_err(|e| backend("list_jobs", e))?
                .into_iter()
                .map(|r| from_json("store_job", r.get(0)))
                .collect()
        })
    }

    fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .read_runs(
                "SELECT rec FROM store_run WHERE id = $1",
                &[&(run.0 as i64)],
            )?
            .pop())
    }

    fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .read_runs(
                "SELECT rec FROM store_run WHERE job_id = $1 AND scheduled_at = $2 AND stage = $3",
                &[&key.job.0, &key.scheduled_at, &key.stage],
            )?
            .pop())
    }

    fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let job = filter.job.as_ref().map(|j| j.0.clone());
        let mut runs: Vec<RunRecord> = self
            .read_runs(
                "SELECT rec FROM store_run WHERE ($1::text IS NULL OR job_id = $1)
                   AND ($2::timestamptz IS NULL OR scheduled_at >= $2)
                   AND ($3::timestamptz IS NULL OR scheduled_at < $3)",
                &[&job, &filter.scheduled_from, &filter.scheduled_before],
            )?
            .into_iter()
            .filter(|r| filter.matches(r))
            .collect();
        runs.sort_by(|a, b| {
            (a.key.scheduled_at, &a.key.stage, a.id).cmp(&(b.key.scheduled_at, &b.key.stage, b.id))
        });
        if let Some(limit) = filter.limit {
            runs.truncate(limit);
        }
        Ok(runs)
    }

    fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
        self.with(|c| {
            c.query(
                "SELECT rec FROM store_attempt WHERE run_id = $1 ORDER BY attempt",
                &[&(run.0 as i64)],
            )
            .map_err(|e| backend("attempts", e))?
            .into_iter()
            .map(|r| from_json("store_attempt", r.get(0)))
            .collect()
        })
    }

    fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.with(|c| {
            c.query(
                "SELECT rec FROM store_dep WHERE run_id = $1 ORDER BY upstream",
                &[&(run.0 as i64)],
            )
            .map_err(|e| backend("upstream_deps", e))?
            .into_iter()
            .map(|r| from_json("store_dep", r.get(0)))
            .collect()
        })
    }

    fn close(&self) -> StoreResult<()> {
        let mut g = self
            .client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = g.take() {
            c.close().map_err(|e| backend("close", e))?;
        }
        Ok(())
    }
}
