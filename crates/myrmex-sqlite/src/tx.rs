//! Rows ⇄ records, and the engine's [`Tx`] over a SQLite connection.

use jiff::Timestamp;
use myrmex_store::engine::{RunQuery, Tx};
use myrmex_store::{
    Attempt, AttemptOutcome, AttemptRecord, DependencyRule, JobDefinition, JobId, JobPatch,
    JobRecord, JobState, JobStatus, Lease, OccurrenceKey, RunDepRecord, RunFilter, RunId,
    RunOrigin, RunRecord, RunState, StoreError, StoreResult,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

pub(crate) fn db_err(op: &'static str, e: rusqlite::Error) -> StoreError {
    StoreError::Backend {
        backend: "sqlite",
        op,
        message: e.to_string(),
        source: Some(Box::new(e)),
    }
}

/// Timestamps are stored as nanoseconds since the Unix epoch in an `INTEGER` (i64): exact,
/// ordered, and covering 1677-09-21 to 2262-04-11.
pub(crate) fn ts(t: Timestamp) -> StoreResult<i64> {
    i64::try_from(t.as_nanosecond()).map_err(|_| StoreError::TimestampOutOfRange {
        backend: "sqlite",
        value: t.to_string(),
    })
}

fn ots(t: Option<Timestamp>) -> StoreResult<Option<i64>> {
    t.map(ts).transpose()
}

fn from_ns(ns: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(ns)).expect("every i64 nanosecond count is in range")
}

fn corrupt(location: String, message: impl Into<String>) -> StoreError {
    StoreError::CorruptRecord {
        location,
        message: message.into(),
    }
}

const JOB_COLS: &str = "name, definition, def_version, watermark, last_fired_at, run_count, \
                        status, paused, created_at, updated_at";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok(RawJob {
        name: row.get(0)?,
        definition: row.get(1)?,
        def_version: row.get(2)?,
        watermark: row.get(3)?,
        last_fired_at: row.get(4)?,
        run_count: row.get(5)?,
        status: row.get(6)?,
        paused: row.get(7)?,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

pub(crate) struct RawJob {
    name: String,
    definition: String,
    def_version: i64,
    watermark: Option<i64>,
    last_fired_at: Option<i64>,
    run_count: i64,
    status: String,
    paused: bool,
    created_at: i64,
    updated_at: i64,
}

impl RawJob {
    pub(crate) fn decode(self) -> StoreResult<JobRecord> {
        let loc = || format!("jobs row `{}`", self.name);
        let definition: JobDefinition = serde_json::from_str(&self.definition)
            .map_err(|e| corrupt(loc(), format!("definition: {e}")))?;
        let status = JobStatus::parse(&self.status)
            .ok_or_else(|| corrupt(loc(), format!("unknown status `{}`", self.status)))?;
        Ok(JobRecord {
            id: JobId(self.name),
            definition,
            state: JobState {
                watermark: self.watermark.map(from_ns),
                last_fired_at: self.last_fired_at.map(from_ns),
                run_count: self.run_count as u64,
                status,
                paused: self.paused,
            },
            def_version: self.def_version as u64,
            created_at: from_ns(self.created_at),
            updated_at: from_ns(self.updated_at),
        })
    }
}

pub(crate) const RUN_COLS: &str = "id, job, scheduled_at, stage, origin, def_version, state, \
    available_at, attempt, max_attempts, pending_deps, lease_owner, lease_expires_at, \
    created_at, started_at, finished_at, outcome, error, result";

pub(crate) struct RawRun {
    id: i64,
    job: String,
    scheduled_at: i64,
    stage: String,
    origin: String,
    def_version: i64,
    state: String,
    available_at: i64,
    attempt: i64,
    max_attempts: i64,
    pending_deps: i64,
    lease_owner: Option<String>,
    lease_expires_at: Option<i64>,
    created_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    outcome: Option<String>,
    error: Option<String>,
    result: Option<String>,
}

pub(crate) fn run_from_row(row: &Row<'_>) -> rusqlite::Result<RawRun> {
    Ok(RawRun {
        id: row.get(0)?,
        job: row.get(1)?,
        scheduled_at: row.get(2)?,
        stage: row.get(3)?,
        origin: row.get(4)?,
        def_version: row.get(5)?,
        state: row.get(6)?,
        available_at: row.get(7)?,
        attempt: row.get(8)?,
        max_attempts: row.get(9)?,
        pending_deps: row.get(10)?,
        lease_owner: row.get(11)?,
        lease_expires_at: row.get(12)?,
        created_at: row.get(13)?,
        started_at: row.get(14)?,
        finished_at: row.get(15)?,
        outcome: row.get(16)?,
        error: row.get(17)?,
        result: row.get(18)?,
    })
}

impl RawRun {
    pub(crate) fn decode(self) -> StoreResult<RunRecord> {
        let loc = || format!("runs row {}", self.id);
        let state = RunState::parse(&self.state)
            .ok_or_else(|| corrupt(loc(), format!("unknown state `{}`", self.state)))?;
        let origin = RunOrigin::parse(&self.origin)
            .ok_or_else(|| corrupt(loc(), format!("unknown origin `{}`", self.origin)))?;
        let outcome = match self.outcome.as_deref() {
            None => None,
            Some(o) => Some(
                AttemptOutcome::parse(o)
                    .ok_or_else(|| corrupt(loc(), format!("unknown outcome `{o}`")))?,
            ),
        };
        let result = match self.result.as_deref() {
            None => None,
            Some(r) => {
                Some(serde_json::from_str(r).map_err(|e| corrupt(loc(), format!("result: {e}")))?)
            }
        };
        let lease = match (self.lease_owner, self.lease_expires_at) {
            (Some(owner), Some(exp)) => Some(Lease {
                owner,
                expires_at: from_ns(exp),
            }),
            _ => None,
        };
        Ok(RunRecord {
            id: RunId(self.id as u64),
            key: OccurrenceKey {
                job: JobId(self.job),
                scheduled_at: from_ns(self.scheduled_at),
                stage: self.stage,
            },
            origin,
            def_version: self.def_version as u64,
            state,
            available_at: from_ns(self.available_at),
            attempt: Attempt(self.attempt as u32),
            max_attempts: self.max_attempts as u32,
            pending_deps: self.pending_deps as u32,
            lease,
            created_at: from_ns(self.created_at),
            started_at: self.started_at.map(from_ns),
            finished_at: self.finished_at.map(from_ns),
            outcome,
            error: self.error,
            result,
        })
    }
}

fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<RawAttempt> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

type RawAttempt = (
    i64,
    i64,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
);

fn decode_attempt(a: RawAttempt) -> StoreResult<AttemptRecord> {
    let (run, attempt, owner, started_at, finished_at, outcome, error) = a;
    let outcome = match outcome.as_deref() {
        None => None,
        Some(o) => Some(AttemptOutcome::parse(o).ok_or_else(|| {
            corrupt(
                format!("attempts row ({run}, {attempt})"),
                format!("unknown outcome `{o}`"),
            )
        })?),
    };
    Ok(AttemptRecord {
        run: RunId(run as u64),
        attempt: Attempt(attempt as u32),
        owner,
        started_at: from_ns(started_at),
        finished_at: finished_at.map(from_ns),
        outcome,
        error,
    })
}

fn rule_str(r: DependencyRule) -> &'static str {
    match r {
        DependencyRule::AllDone => "all_done",
        _ => "all_success",
    }
}

fn parse_rule(s: &str) -> StoreResult<DependencyRule> {
    match s {
        "all_success" => Ok(DependencyRule::AllSuccess),
        "all_done" => Ok(DependencyRule::AllDone),
        other => Err(corrupt(
            "run_deps".into(),
            format!("unknown rule `{other}`"),
        )),
    }
}

/// The engine's view of a connection inside a transaction (or, for reads, outside one).
pub(crate) struct SqlTx<'c> {
    pub(crate) conn: &'c Connection,
}

impl SqlTx<'_> {
    fn runs_where(
        &self,
        sql_tail: &str,
        params: impl rusqlite::Params,
    ) -> StoreResult<Vec<RunRecord>> {
        let sql = format!("SELECT {RUN_COLS} FROM runs {sql_tail}");
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| db_err("query runs", e))?;
        let rows = st
            .query_map(params, run_from_row)
            .map_err(|e| db_err("query runs", e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| db_err("query runs", e))?.decode()?);
        }
        Ok(out)
    }

    pub(crate) fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs ORDER BY name");
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| db_err("list_jobs", e))?;
        let rows = st
            .query_map([], job_from_row)
            .map_err(|e| db_err("list_jobs", e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(r.map_err(|e| db_err("list_jobs", e))?.decode()?);
        }
        Ok(out)
    }

    pub(crate) fn list_runs(&self, f: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        let mut clauses: Vec<String> = Vec::new();
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(job) = &f.job {
            args.push(job.0.clone().into());
            clauses.push(format!("job = ?{}", args.len()));
        }
        if !f.states.is_empty() {
            let mut qs = Vec::new();
            for s in &f.states {
                args.push(s.as_str().to_owned().into());
                qs.push(format!("?{}", args.len()));
            }
            clauses.push(format!("state IN ({})", qs.join(", ")));
        }
        if let Some(t) = f.scheduled_from {
            args.push(ts(t)?.into());
            clauses.push(format!("scheduled_at >= ?{}", args.len()));
        }
        if let Some(t) = f.scheduled_before {
            args.push(ts(t)?.into());
            clauses.push(format!("scheduled_at < ?{}", args.len()));
        }
        let mut tail = String::new();
        if !clauses.is_empty() {
            tail.push_str("WHERE ");
            tail.push_str(&clauses.join(" AND "));
        }
        tail.push_str(" ORDER BY scheduled_at, stage, id");
        if let Some(limit) = f.limit {
            tail.push_str(&format!(
                " LIMIT {}",
                i64::try_from(limit).unwrap_or(i64::MAX)
            ));
        }
        self.runs_where(&tail, rusqlite::params_from_iter(args))
    }

    pub(crate) fn attempts_of(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT run, attempt, owner, started_at, finished_at, outcome, error \
                 FROM attempts WHERE run = ?1 ORDER BY attempt",
            )
            .map_err(|e| db_err("attempts", e))?;
        let rows = st
            .query_map([run.0 as i64], attempt_from_row)
            .map_err(|e| db_err("attempts", e))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(decode_attempt(r.map_err(|e| db_err("attempts", e))?)?);
        }
        Ok(out)
    }

    fn deps_where(&self, sql: &str, id: RunId) -> StoreResult<Vec<RunDepRecord>> {
        let mut st = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| db_err("run_deps", e))?;
        let rows = st
            .query_map([id.0 as i64], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(|e| db_err("run_deps", e))?;
        let mut out = Vec::new();
        for r in rows {
            let (upstream, run, rule) = r.map_err(|e| db_err("run_deps", e))?;
            out.push(RunDepRecord {
                run: RunId(run as u64),
                upstream: RunId(upstream as u64),
                rule: parse_rule(&rule)?,
            });
        }
        Ok(out)
    }

    pub(crate) fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.deps_where(
            "SELECT upstream, run, rule FROM run_deps WHERE run = ?1 ORDER BY upstream",
            run,
        )
    }
}

impl Tx for SqlTx<'_> {
    fn job(&mut self, id: &JobId) -> StoreResult<Option<JobRecord>> {
        let sql = format!("SELECT {JOB_COLS} FROM jobs WHERE name = ?1");
        let mut st = self
            .conn
            .prepare_cached(&sql)
            .map_err(|e| db_err("get job", e))?;
        st.query_row([&id.0], job_from_row)
            .optional()
            .map_err(|e| db_err("get job", e))?
            .map(RawJob::decode)
            .transpose()
    }

    fn put_job(&mut self, job: &JobRecord) -> StoreResult<()> {
        let definition =
            serde_json::to_string(&job.definition).map_err(|e| StoreError::Backend {
                backend: "sqlite",
                op: "put job",
                message: e.to_string(),
                source: Some(Box::new(e)),
            })?;
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO jobs (name, definition, def_version, watermark, last_fired_at, \
                 run_count, status, paused, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, \
                 def_version = excluded.def_version, watermark = excluded.watermark, \
                 last_fired_at = excluded.last_fired_at, run_count = excluded.run_count, \
                 status = excluded.status, paused = excluded.paused, \
                 created_at = excluded.created_at, updated_at = excluded.updated_at",
            )
            .map_err(|e| db_err("put job", e))?;
        st.execute(params![
            job.id.0,
            definition,
            job.def_version as i64,
            ots(job.state.watermark)?,
            ots(job.state.last_fired_at)?,
            job.state.run_count as i64,
            job.state.status.as_str(),
            job.state.paused,
            ts(job.created_at)?,
            ts(job.updated_at)?,
        ])
        .map_err(|e| db_err("put job", e))?;
        Ok(())
    }

    fn patch_job(&mut self, id: &JobId, patch: &JobPatch, now: Timestamp) -> StoreResult<bool> {
        let mut st = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET paused = coalesce(?2, paused), status = coalesce(?3, status), \
                 updated_at = ?4 WHERE name = ?1",
            )
            .map_err(|e| db_err("update job", e))?;
        let n = st
            .execute(params![
                id.0,
                patch.paused,
                patch.status.map(JobStatus::as_str),
                ts(now)?
            ])
            .map_err(|e| db_err("update job", e))?;
        Ok(n > 0)
    }

    fn add_run_count(&mut self, id: &JobId, n: u64, now: Timestamp) -> StoreResult<()> {
        let mut st = self
            .conn
            .prepare_cached(
                "UPDATE jobs SET run_count = run_count + ?2, updated_at = ?3 WHERE name = ?1",
            )
            .map_err(|e| db_err("count run", e))?;
        st.execute(params![id.0, n as i64, ts(now)?])
            .map_err(|e| db_err("count run", e))?;
        Ok(())
    }

    fn remove_job(&mut self, id: &JobId) -> StoreResult<()> {
        self.conn
            .prepare_cached("DELETE FROM jobs WHERE name = ?1")
            .and_then(|mut st| st.execute([&id.0]))
            .map_err(|e| db_err("delete job", e))?;
        Ok(())
    }

    fn run(&mut self, id: RunId) -> StoreResult<Option<RunRecord>> {
        Ok(self.runs_where("WHERE id = ?1", [id.0 as i64])?.pop())
    }

    fn run_by_key(&mut self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        Ok(self
            .runs_where(
                "WHERE job = ?1 AND scheduled_at = ?2 AND stage = ?3",
                params![key.job.0, ts(key.scheduled_at)?, key.stage],
            )?
            .pop())
    }

    fn insert_run(&mut self, r: &RunRecord) -> StoreResult<RunId> {
        let result = r.result.as_ref().map(|v| v.to_string());
        let mut st = self
            .conn
            .prepare_cached(
                "INSERT INTO runs (job, scheduled_at, stage, origin, def_version, state, \
                 available_at, attempt, max_attempts, pending_deps, lease_owner, \
                 lease_expires_at, created_at, started_at, finished_at, outcome, error, result) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, \
                 ?17, ?18)",
            )
            .map_err(|e| db_err("insert run", e))?;
        st.execute(params![
            r.key.job.0,
            ts(r.key.scheduled_at)?,
            r.key.stage,
            r.origin.as_str(),
            r.def_version as i64,
            r.state.as_str(),
            ts(r.available_at)?,
            r.attempt.0,
            r.max_attempts,
            r.pending_deps,
            r.lease.as_ref().map(|l| l.owner.as_str()),
            r.lease.as_ref().map(|l| ts(l.expires_at)).transpose()?,
            ts(r.created_at)?,
            ots(r.started_at)?,
            ots(r.finished_at)?,
            r.outcome.map(AttemptOutcome::as_str),
            r.error,
            result,
        ])
        .map_err(|e| db_err("insert run", e))?;
        Ok(RunId(self.conn.last_insert_rowid() as u64))
    }

    fn put_run(&mut self, r: &RunRecord) -> StoreResult<()> {
        let result = r.result.as_ref().map(|v| v.to_string());
        let mut st = self
            .conn
            .prepare_cached(
                "UPDATE runs SET state = ?2, available_at = ?3, attempt = ?4, max_attempts = ?5, \
                 pending_deps = ?6, lease_owner = ?7, lease_expires_at = ?8, started_at = ?9, \
                 finished_at = ?10, outcome = ?11, error = ?12, result = ?13 WHERE id = ?1",
            )
            .map_err(|e| db_err("update run", e))?;
        let n = st
            .execute(params![
                r.id.0 as i64,
                r.state.as_str(),
                ts(r.available_at)?,
                r.attempt.0,
                r.max_attempts,
                r.pending_deps,
                r.lease.as_ref().map(|l| l.owner.as_str()),
                r.lease.as_ref().map(|l| ts(l.expires_at)).transpose()?,
                ots(r.started_at)?,
                ots(r.finished_at)?,
                r.outcome.map(AttemptOutcome::as_str),
                r.error,
                result,
            ])
            .map_err(|e| db_err("update run", e))?;
        if n == 0 {
            return Err(StoreError::RunNotFound { run: r.id });
        }
        Ok(())
    }

    fn remove_run(&mut self, id: RunId) -> StoreResult<()> {
        for sql in [
            "DELETE FROM runs WHERE id = ?1",
            "DELETE FROM attempts WHERE run = ?1",
            "DELETE FROM run_deps WHERE upstream = ?1",
            "DELETE FROM run_deps WHERE run = ?1",
        ] {
            self.conn
                .prepare_cached(sql)
                .and_then(|mut st| st.execute([id.0 as i64]))
                .map_err(|e| db_err("delete run", e))?;
        }
        Ok(())
    }

    fn runs(&mut self, query: &RunQuery) -> StoreResult<Vec<RunRecord>> {
        match query {
            RunQuery::Running => self.runs_where("WHERE state = 'running' ORDER BY id", []),
            RunQuery::ClaimableDue { now, limit } => self.runs_where(
                "WHERE state IN ('pending', 'retry_wait', 'interrupted') AND available_at <= ?1 \
                 ORDER BY available_at, id LIMIT ?2",
                params![ts(*now)?, i64::try_from(*limit).unwrap_or(i64::MAX)],
            ),
            RunQuery::OfJob(job) => self.runs_where("WHERE job = ?1 ORDER BY id", [&job.0]),
            RunQuery::Terminal => self.runs_where(
                "WHERE state IN ('succeeded', 'failed', 'dead', 'skipped', 'cancelled') \
                 ORDER BY id",
                [],
            ),
            other => Err(StoreError::invalid(
                "runs",
                format!("query {other:?} is not supported by the sqlite store"),
            )),
        }
    }

    fn insert_dep(&mut self, dep: &RunDepRecord) -> StoreResult<()> {
        self.conn
            .prepare_cached(
                "INSERT OR IGNORE INTO run_deps (upstream, run, rule) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut st| {
                st.execute(params![
                    dep.upstream.0 as i64,
                    dep.run.0 as i64,
                    rule_str(dep.rule)
                ])
            })
            .map_err(|e| db_err("insert dep", e))?;
        Ok(())
    }

    fn waiters(&mut self, upstream: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.deps_where(
            "SELECT upstream, run, rule FROM run_deps WHERE upstream = ?1 ORDER BY run",
            upstream,
        )
    }

    fn attempt(&mut self, run: RunId, attempt: Attempt) -> StoreResult<Option<AttemptRecord>> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT run, attempt, owner, started_at, finished_at, outcome, error \
                 FROM attempts WHERE run = ?1 AND attempt = ?2",
            )
            .map_err(|e| db_err("get attempt", e))?;
        st.query_row(params![run.0 as i64, attempt.0], attempt_from_row)
            .optional()
            .map_err(|e| db_err("get attempt", e))?
            .map(decode_attempt)
            .transpose()
    }

    fn put_attempt(&mut self, a: &AttemptRecord) -> StoreResult<()> {
        let (started_at, finished_at) = (ts(a.started_at)?, ots(a.finished_at)?);
        self.conn
            .prepare_cached(
                "INSERT INTO attempts (run, attempt, owner, started_at, finished_at, outcome, error) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (run, attempt) DO UPDATE SET \
                 owner = excluded.owner, started_at = excluded.started_at, \
                 finished_at = excluded.finished_at, outcome = excluded.outcome, \
                 error = excluded.error",
            )
            .and_then(|mut st| {
                st.execute(params![
                    a.run.0 as i64,
                    a.attempt.0,
                    a.owner,
                    started_at,
                    finished_at,
                    a.outcome.map(AttemptOutcome::as_str),
                    a.error,
                ])
            })
            .map_err(|e| db_err("put attempt", e))?;
        Ok(())
    }
}
