//! [`PgStore`]: the cluster protocol on one database connection.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use std::collections::HashMap;

use postgres::{Client, NoTls, Row, Statement, Transaction};
use serde_json::Value;

use crate::error::{Error, Result, db};
use crate::schema;
use crate::types::{
    DependencyRule, JobId, JobSpec, MisfirePolicy, NodeInfo, Origin, OverlapPolicy, RunId, RunInfo,
    RunState, Schedule, Trigger,
};

/// How one process connects: where, which schema, and the session limits that keep a
/// frozen node from pinning locks.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// A libpq-style URL or key/value string, e.g. `postgres://user@host:5432/db`.
    pub url: String,
    /// The schema (namespace) holding myrmex's tables; created when missing.
    pub schema: String,
    /// This process's node id; a fresh random one (from the database) when `None`.
    pub node_id: Option<String>,
    /// `statement_timeout` of every session.
    pub statement_timeout: Duration,
    /// `lock_timeout` of every session.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout` of every session.
    pub idle_in_transaction_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// The `application_name` of every session (shown in `pg_stat_activity`);
    /// `myrmex` by default. Name your processes apart (e.g.
    /// `myrmex/<schema>/<node>`) to find or terminate one process's sessions.
    pub application_name: String,
}

impl ConnectOptions {
    /// Options with the design's defaults (10 s statements, 2 s lock waits, 15 s idle
    /// transactions) for the schema `myrmex`.
    #[must_use]
    pub fn new(url: &str) -> ConnectOptions {
        ConnectOptions {
            url: url.to_owned(),
            schema: "myrmex".to_owned(),
            node_id: None,
            statement_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(2),
            idle_in_transaction_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(5),
            application_name: "myrmex".to_owned(),
        }
    }

    /// The same options for another schema.
    #[must_use]
    pub fn schema(mut self, schema: &str) -> ConnectOptions {
        schema.clone_into(&mut self.schema);
        self
    }

    /// The same options with a fixed node id.
    #[must_use]
    pub fn node_id(mut self, node_id: &str) -> ConnectOptions {
        self.node_id = Some(node_id.to_owned());
        self
    }

    /// The same options with another `application_name` for the sessions, e.g.
    /// `myrmex/<schema>/<node>` (PostgreSQL keeps the first 63 bytes).
    ///
    /// ```
    /// use myrmex_postgres::ConnectOptions;
    ///
    /// let o = ConnectOptions::new("postgres://localhost/db").schema("jobs");
    /// assert_eq!(o.application_name, "myrmex");
    /// let o = o.application_name("myrmex/jobs/node-1");
    /// assert_eq!(o.application_name, "myrmex/jobs/node-1");
    /// ```
    #[must_use]
    pub fn application_name(mut self, name: &str) -> ConnectOptions {
        name.clone_into(&mut self.application_name);
        self
    }

    /// The NOTIFY channel used as a wake-up hint in this schema.
    #[must_use]
    pub fn channel(&self) -> String {
        format!("myrmex_wakeup_{}", self.schema)
    }

    /// Opens a raw session with the schema on the search path and the session
    /// settings applied (no migration).
    ///
    /// # Errors
    /// [`Error::Db`] when the server cannot be reached;
    /// [`Error::InvalidSchemaName`] for a name that is not a plain identifier.
    pub fn open_session(&self) -> Result<Client> {
        schema::check_schema_name(&self.schema)?;
        let mut config: postgres::Config = self.url.parse().map_err(db("parse the URL"))?;
        config
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .application_name(&self.application_name);
        let mut client = config.connect(NoTls).map_err(db("connect"))?;
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET lock_timeout = {}; \
                 SET idle_in_transaction_session_timeout = {}; SET search_path TO {}",
                self.statement_timeout.as_millis(),
                self.lock_timeout.as_millis(),
                self.idle_in_transaction_timeout.as_millis(),
                self.schema
            ))
            .map_err(db("apply the session settings"))?;
        Ok(client)
    }
}

/// What one materialization pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MaterializeReport {
    /// Jobs locked and processed.
    pub jobs: usize,
    /// Runs inserted as `pending` or `blocked`.
    pub inserted: usize,
    /// Occurrences recorded as `skipped` (misfire/overlap policy).
    pub skipped: usize,
    /// Inserts that hit an existing occurrence (a bug signal: should stay 0).
    pub conflicts: usize,
    /// Jobs whose watermark compare-and-set failed (their work was rolled back).
    pub cas_failures: usize,
    /// The earliest `available_at` among the inserted pending runs.
    pub earliest_pending: Option<Timestamp>,
    /// The database's `now()` for this pass.
    pub db_now: Option<Timestamp>,
    /// Jobs whose due occurrences did not all fit in this pass (10 000 per job):
    /// the next pass continues where this one stopped.
    pub truncated: usize,
}

/// A run this node claimed: everything a worker needs, plus the fencing token.
#[derive(Clone, Debug)]
pub struct ClaimedRun {
    /// The run.
    pub run: RunId,
    /// Its job.
    pub job: JobId,
    /// The job's name.
    pub job_name: String,
    /// The handler to call (the stage's task for pipelines).
    pub handler: String,
    /// The nominal occurrence time.
    pub scheduled_at: Timestamp,
    /// Pipeline stage (`""` for plain jobs).
    pub stage: String,
    /// The fencing token: completions must present it.
    pub attempt: i32,
    /// The job definition version the run came from.
    pub def_version: i64,
    /// The job's payload.
    pub payload: Value,
    /// The lease duration.
    pub lease_ttl: Duration,
    /// The cooperative time limit, if any.
    pub timeout: Option<Duration>,
    /// Whether this claim took over an expired lease.
    pub rescued: bool,
    /// Local monotonic instant just before the claim statement was sent: the lease
    /// cannot have started earlier, so trust computed from it is conservative.
    pub claimed_at: Instant,
}

impl ClaimedRun {
    /// The idempotency key `job/scheduled_at[/stage]`, stable across attempts and nodes.
    #[must_use]
    pub fn run_key(&self) -> String {
        run_key(self.job, self.scheduled_at, &self.stage)
    }
}

/// The idempotency key of an occurrence, as handed to user code.
#[must_use]
pub fn run_key(job: JobId, scheduled_at: Timestamp, stage: &str) -> String {
    if stage.is_empty() {
        format!("{job}/{scheduled_at}")
    } else {
        format!("{job}/{scheduled_at}/{stage}")
    }
}

/// How a fenced write ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Completion {
    /// The attempt still owned the run; the outcome and effects are committed.
    Committed,
    /// A newer attempt owns the run (or it already ended): nothing was written.
    Fenced,
}

/// The effects hook of a completion: runs inside the fenced transaction.
pub type EffectFn<'a> = dyn FnMut(&mut Transaction<'_>) -> Result<(), postgres::Error> + 'a;

/// What a schedule edit changed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EditOutcome {
    /// The new definition version.
    pub def_version: i64,
    /// The new watermark.
    pub next_fire_at: Option<Timestamp>,
    /// Not-yet-started future runs of older versions that were cancelled.
    pub cancelled: usize,
}

/// The largest number of occurrences one job turns into rows in one pass; a longer
/// backlog continues on the next pass (a [`crate::Node`] goes again at once when
/// [`MaterializeReport::truncated`] is not zero), with the misfire policy applied over the whole backlog through
/// `sched_job.backlog_fired`.
const MAX_OCCURRENCES_PER_PASS: usize = 10_000;

/// How long a node registered without `stale_after_ms` (by an older build) may go
/// without a heartbeat before it is reported stale.
const DEFAULT_STALE_AFTER_MS: i64 = 30_000;

/// The most jobs one materialization pass locks.
pub(crate) const MATERIALIZE_BATCH: usize = 100;

struct JobRow {
    id: JobId,
    name: String,
    trigger: Trigger,
    def_version: i64,
    next_fire_at: Option<Timestamp>,
    misfire: MisfirePolicy,
    misfire_grace_ms: i64,
    max_catchup: i32,
    overlap: OverlapPolicy,
    max_attempts: i32,
    pipeline: bool,
    /// Misfires fired by earlier passes of a backlog that is still being worked off.
    backlog_fired: i32,
    /// The bound of an `allow` job on its active runs.
    max_concurrent: Option<i32>,
}

const JOB_COLUMNS: &str = "id, name, trigger_kind, trigger_spec, def_version, next_fire_at, misfire_policy, \
     misfire_grace_ms, max_catchup, overlap_policy, max_attempts, pipeline_id IS NOT NULL, backlog_fired, \
     max_concurrent";

/// The index of the `now()` selected right after [`JOB_COLUMNS`].
const NOW_COLUMN: usize = 14;

fn job_row(r: &Row) -> Result<JobRow> {
    Ok(JobRow {
        id: JobId(r.get(0)),
        name: r.get(1),
        trigger: Trigger::from_row(r.get::<_, &str>(2), r.get(3))?,
        def_version: r.get(4),
        next_fire_at: r.get(5),
        misfire: MisfirePolicy::parse(r.get(6))?,
        misfire_grace_ms: r.get(7),
        max_catchup: r.get(8),
        overlap: OverlapPolicy::parse(r.get(9))?,
        max_attempts: r.get(10),
        pipeline: r.get(11),
        backlog_fired: r.get(12),
        max_concurrent: r.get(13),
    })
}

/// One row to insert for an occurrence.
struct NewRun {
    t: Timestamp,
    stage: String,
    origin: &'static str,
    state: &'static str,
    pending_deps: i32,
    max_attempts: i32,
}

/// A dependency edge of a new run: on another new run (by key) or an existing one.
enum DepOn {
    New(Timestamp, String),
    Existing(RunId),
}

struct NewEdge {
    run: (Timestamp, String),
    on: DepOn,
    rule: DependencyRule,
}

/// The cluster protocol on one connection. Every decision uses the database's
/// `now()`; this process's clock is only used for sleeping and for the local
/// trust deadline of [`ClaimedRun`]s.
///
/// A `PgStore` is one session: give every thread its own (they are cheap to open
/// with [`PgStore::connect`]).
pub struct PgStore {
    client: Client,
    /// Prepared statements of the hot paths, by SQL text (one parse per session).
    prepared: HashMap<String, Statement>,
    options: ConnectOptions,
    node_id: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("schema", &self.options.schema)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, applies the session settings and migrates the schema.
    ///
    /// ```
    /// use myrmex_postgres::{Completion, ConnectOptions, JobSpec, PgStore, Trigger};
    ///
    /// // Runs against the database named by MYRMEX_TEST_POSTGRES_URL (CI sets it).
    /// let Ok(url) = std::env::var("MYRMEX_TEST_POSTGRES_URL") else {
    ///     return Ok(());
    /// };
    /// let options = ConnectOptions::new(&url).schema("doc_pgstore_connect");
    /// # options.open_session()?.batch_execute("DROP SCHEMA IF EXISTS doc_pgstore_connect CASCADE")?;
    /// let mut store = PgStore::connect(&options)?;
    /// let job = store.create_job(&JobSpec::new("report", "build_report", Trigger::Manual))?;
    /// let run = store.trigger_now(job, Some("request-1"))?.expect("a new run");
    /// let claimed = store.claim(8)?;
    /// assert_eq!(claimed[0].run, run);
    /// // ... do the work, then record it, fenced on the attempt:
    /// let done = store.complete(run, claimed[0].attempt, None, &mut |_tx| Ok(()))?;
    /// assert_eq!(done, Completion::Committed);
    /// # store.client().batch_execute("DROP SCHEMA doc_pgstore_connect CASCADE")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::SchemaTooNew`] when the database was migrated by a newer myrmex;
    /// [`Error::Db`] when the server cannot be reached.
    pub fn connect(options: &ConnectOptions) -> Result<PgStore> {
        let mut client = options.open_session()?;
        schema::migrate(&mut client, &options.schema)?;
        let node_id = match &options.node_id {
            Some(id) => id.clone(),
            None => client
                .query_one("SELECT gen_random_uuid()::text", &[])
                .map_err(db("make a node id"))?
                .get(0),
        };
        Ok(PgStore {
            client,
            prepared: HashMap::new(),
            options: options.clone().node_id(&node_id),
            node_id,
        })
    }

    /// This process's node id.
    #[must_use]
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// A prepared statement for `sql`, parsed once per session.
    fn prep(&mut self, sql: &str) -> Result<Statement> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .client
            .prepare(sql)
            .map_err(db("prepare a statement"))?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }

    /// The options this store was opened with (with the node id filled in).
    #[must_use]
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// The raw session, for queries of your own (status pages, tests).
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Whether the session is gone (server restart, `pg_terminate_backend`).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// The database's `now()` (transaction start time of a fresh transaction).
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn db_now(&mut self) -> Result<Timestamp> {
        Ok(self
            .client
            .query_one("SELECT now()", &[])
            .map_err(db("read now()"))?
            .get(0))
    }

    // ----------------------------------------------------------------- nodes

    /// Registers (or refreshes) this node in `sched_node`.
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn register_node(&mut self, hostname: &str, pid: u32, version: &str) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO sched_node (node_id, hostname, pid, version) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (node_id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
                   version = EXCLUDED.version, heartbeat_at = now()",
                &[&self.node_id, &hostname, &(pid as i32), &version],
            )
            .map_err(db("register the node"))?;
        Ok(())
    }

    /// Registers (or refreshes) this node like [`PgStore::register_node`], and
    /// records how long it may go without a heartbeat before [`PgStore::nodes`]
    /// reports it stale (a [`crate::Node`] uses three heartbeat periods).
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn register_node_with(
        &mut self,
        hostname: &str,
        pid: u32,
        version: &str,
        stale_after: Duration,
    ) -> Result<()> {
        self.client
            .execute(
                "INSERT INTO sched_node (node_id, hostname, pid, version, stale_after_ms) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (node_id) DO UPDATE SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
                   version = EXCLUDED.version, stale_after_ms = EXCLUDED.stale_after_ms, heartbeat_at = now()",
                &[
                    &self.node_id,
                    &hostname,
                    &(pid as i32),
                    &version,
                    &(stale_after.as_millis() as i64),
                ],
            )
            .map_err(db("register the node"))?;
        Ok(())
    }

    /// The nodes, with how many runs each holds and whether each is stale (no
    /// heartbeat for longer than its `stale_after`, on the database's clock).
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn nodes(&mut self) -> Result<Vec<NodeInfo>> {
        let rows = self
            .client
            .query(
                &format!(
                    "SELECT n.node_id, n.hostname, n.pid, n.started_at, n.heartbeat_at, n.version,
                        (SELECT count(*) FROM sched_run r WHERE r.state = 'running' AND r.lease_owner = n.node_id),
                        coalesce(n.stale_after_ms, {DEFAULT_STALE_AFTER_MS}),
                        n.heartbeat_at < now() - coalesce(n.stale_after_ms, {DEFAULT_STALE_AFTER_MS}) * interval '1 ms'
                     FROM sched_node n ORDER BY n.started_at, n.node_id"
                ),
                &[],
            )
            .map_err(db("list the nodes"))?;
        Ok(rows
            .iter()
            .map(|r| NodeInfo {
                node_id: r.get(0),
                hostname: r.get(1),
                pid: r.get(2),
                started_at: r.get(3),
                heartbeat_at: r.get(4),
                version: r.get(5),
                running: r.get(6),
                stale_after: Duration::from_millis(r.get::<_, i64>(7).max(0) as u64),
                stale: r.get(8),
            })
            .collect())
    }

    /// Deletes the rows of nodes whose last heartbeat is older than `older_than`
    /// (database clock) and that hold no lease: long-gone processes, so `status`
    /// does not list them forever. A node that still holds a lease is kept (its
    /// runs are rescued when the leases expire; it is forgotten afterwards).
    /// Returns how many were deleted.
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn forget_nodes(&mut self, older_than: Duration) -> Result<u64> {
        self.client
            .execute(
                "DELETE FROM sched_node n
                 WHERE n.heartbeat_at < now() - $1::bigint * interval '1 ms' AND n.node_id <> $2
                   AND NOT EXISTS (SELECT 1 FROM sched_run r WHERE r.state = 'running' AND r.lease_owner = n.node_id)",
                &[&(older_than.as_millis() as i64), &self.node_id],
            )
            .map_err(db("forget old nodes"))
    }

    /// The optional fast path for a node known to be dead: expire its leases now so
    /// the next claim rescues its runs without waiting for the lease. Correctness
    /// does not depend on it (the fence still holds if the node was alive after all).
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn expire_node_leases(&mut self, node_id: &str) -> Result<u64> {
        self.client
            .execute(
                "UPDATE sched_run SET lease_expires_at = now() WHERE lease_owner = $1 AND state = 'running'",
                &[&node_id],
            )
            .map_err(db("expire a node's leases"))
    }

    /// Expires the leases of nodes whose heartbeat is older than `dead_after`.
    ///
    /// # Errors
    /// [`Error::Db`] when the statement fails.
    pub fn expire_dead_nodes(&mut self, dead_after: Duration) -> Result<u64> {
        self.client
            .execute(
                "UPDATE sched_run r SET lease_expires_at = now() FROM sched_node n
                 WHERE r.state = 'running' AND r.lease_owner = n.node_id AND r.lease_expires_at > now()
                   AND n.heartbeat_at < now() - $1::bigint * interval '1 ms'",
                &[&(dead_after.as_millis() as i64)],
            )
            .map_err(db("expire dead nodes' leases"))
    }

    // ------------------------------------------------------------------ jobs

    /// Creates a job; its first occurrence is the first at or after `spec.start`
    /// (default: the database's `now()`).
    ///
    /// # Errors
    /// [`Error::InvalidTrigger`], [`Error::Cron`], [`Error::TimeZone`],
    /// [`Error::InvalidPipeline`] for a bad definition; [`Error::Db`] (e.g. a
    /// duplicate name).
    pub fn create_job(&mut self, spec: &JobSpec) -> Result<JobId> {
        let schedule = spec.trigger.compile(&spec.name)?;
        let stages = order_stages(spec)?;
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let now: Timestamp = tx
            .query_one("SELECT now()", &[])
            .map_err(db("read now()"))?
            .get(0);
        let watermark = schedule.initial_watermark(spec.start.unwrap_or(now));
        let row = tx
            .query_one(
                "INSERT INTO sched_job (name, handler, trigger_kind, trigger_spec, next_fire_at, misfire_policy,
                   misfire_grace_ms, max_catchup, overlap_policy, max_attempts, retry_backoff_ms, lease_ttl_ms,
                   timeout_ms, payload, paused, retry_backoff_kind, retry_max_delay_ms, max_concurrent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                 RETURNING id",
                &[
                    &spec.name,
                    &spec.handler,
                    &spec.trigger.kind(),
                    &spec.trigger.to_json(),
                    &watermark,
                    &spec.misfire.as_str(),
                    &(spec.misfire_grace.as_millis() as i64),
                    &(spec.max_catchup as i32),
                    &spec.overlap.as_str(),
                    &(spec.max_attempts as i32),
                    &(spec.retry_backoff.as_millis() as i64),
                    &(spec.lease_ttl.as_millis() as i64),
                    &spec.timeout.map(|t| t.as_millis() as i64),
                    &spec.payload,
                    &spec.paused,
                    &spec.retry_backoff_kind.as_str(),
                    &(spec.retry_max_delay.as_millis() as i64),
                    &concurrency_limit(spec),
                ],
            )
            .map_err(db("insert a job"))?;
        let id: i64 = row.get(0);
        if !stages.is_empty() {
            tx.execute(
                "UPDATE sched_job SET pipeline_id = id WHERE id = $1",
                &[&id],
            )
            .map_err(db("mark a pipeline job"))?;
            for (ord, stage) in stages.iter().enumerate() {
                tx.execute(
                    "INSERT INTO sched_pipeline_stage (pipeline_id, stage, ord, task) VALUES ($1, $2, $3, $4)",
                    &[&id, &stage.name, &(ord as i32), &stage.handler],
                )
                .map_err(db("insert a pipeline stage"))?;
                for (dep, rule) in &stage.depends_on {
                    tx.execute(
                        "INSERT INTO sched_pipeline_edge (pipeline_id, stage, depends_on, rule) VALUES ($1, $2, $3, $4)",
                        &[&id, &stage.name, dep, &rule.as_str()],
                    )
                    .map_err(db("insert a pipeline edge"))?;
                }
            }
        }
        notify(&mut tx, &self.options.channel(), watermark)?;
        tx.commit().map_err(db("commit a new job"))?;
        Ok(JobId(id))
    }

    /// Creates the job, or brings an existing job of the same name in line with
    /// `spec` (a config file applied at every start of every node): its policies,
    /// handler, payload and paused flag are overwritten, and its trigger is replaced
    /// through [`PgStore::edit_trigger`] only when it changed, so an unchanged
    /// schedule keeps its watermark. A pipeline's stages and edges are replaced
    /// (runs already materialized keep the stages they were created with).
    /// Returns the job's id and whether it was created.
    ///
    /// # Errors
    /// As [`PgStore::create_job`] and [`PgStore::edit_trigger`].
    pub fn upsert_job(&mut self, spec: &JobSpec) -> Result<(JobId, bool)> {
        spec.trigger.compile(&spec.name)?;
        for round in 0..2 {
            let found = self
                .client
                .query_opt(
                    "SELECT id, trigger_kind, trigger_spec FROM sched_job WHERE name = $1",
                    &[&spec.name],
                )
                .map_err(db("look a job up"))?;
            let Some(row) = found else {
                match self.create_job(spec) {
                    Ok(id) => return Ok((id, true)),
                    // Another node created it at the same time: update that one.
                    Err(Error::Db { source, .. })
                        if round == 0
                            && source.code()
                                == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) =>
                    {
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            };
            let id = JobId(row.get(0));
            let kind: String = row.get(1);
            let trigger_spec: Value = row.get(2);
            self.client
                .execute(
                    "UPDATE sched_job SET handler = $2, misfire_policy = $3, misfire_grace_ms = $4,
                       max_catchup = $5, overlap_policy = $6, max_attempts = $7, retry_backoff_ms = $8,
                       lease_ttl_ms = $9, timeout_ms = $10, payload = $11, paused = $12,
                       retry_backoff_kind = $13, retry_max_delay_ms = $14, max_concurrent = $15,
                       updated_at = now()
                     WHERE id = $1",
                    &[
                        &id.0,
                        &spec.handler,
                        &spec.misfire.as_str(),
                        &(spec.misfire_grace.as_millis() as i64),
                        &(spec.max_catchup as i32),
                        &spec.overlap.as_str(),
                        &(spec.max_attempts as i32),
                        &(spec.retry_backoff.as_millis() as i64),
                        &(spec.lease_ttl.as_millis() as i64),
                        &spec.timeout.map(|t| t.as_millis() as i64),
                        &spec.payload,
                        &spec.paused,
                        &spec.retry_backoff_kind.as_str(),
                        &(spec.retry_max_delay.as_millis() as i64),
                        &concurrency_limit(spec),
                    ],
                )
                .map_err(db("update a job"))?;
            self.replace_stages(id, spec)?;
            if kind != spec.trigger.kind() || trigger_spec != spec.trigger.to_json() {
                self.edit_trigger(id, &spec.trigger)?;
            }
            return Ok((id, false));
        }
        Err(Error::JobNotFound {
            job: spec.name.clone(),
        })
    }

    /// Rewrites a job's pipeline template from `spec` under the job's row lock.
    fn replace_stages(&mut self, id: JobId, spec: &JobSpec) -> Result<()> {
        let stages = order_stages(spec)?;
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        tx.execute(
            "SELECT 1 FROM sched_job WHERE id = $1 FOR NO KEY UPDATE",
            &[&id.0],
        )
        .map_err(db("lock a job"))?;
        tx.execute(
            "DELETE FROM sched_pipeline_edge WHERE pipeline_id = $1",
            &[&id.0],
        )
        .map_err(db("drop pipeline edges"))?;
        tx.execute(
            "DELETE FROM sched_pipeline_stage WHERE pipeline_id = $1",
            &[&id.0],
        )
        .map_err(db("drop pipeline stages"))?;
        tx.execute(
            "UPDATE sched_job SET pipeline_id = CASE WHEN $2 THEN id END WHERE id = $1",
            &[&id.0, &!stages.is_empty()],
        )
        .map_err(db("mark a pipeline job"))?;
        for (ord, stage) in stages.iter().enumerate() {
            tx.execute(
                "INSERT INTO sched_pipeline_stage (pipeline_id, stage, ord, task) VALUES ($1, $2, $3, $4)",
                &[&id.0, &stage.name, &(ord as i32), &stage.handler],
            )
            .map_err(db("insert a pipeline stage"))?;
            for (dep, rule) in &stage.depends_on {
                tx.execute(
                    "INSERT INTO sched_pipeline_edge (pipeline_id, stage, depends_on, rule) VALUES ($1, $2, $3, $4)",
                    &[&id.0, &stage.name, dep, &rule.as_str()],
                )
                .map_err(db("insert a pipeline edge"))?;
            }
        }
        tx.commit().map_err(db("commit a pipeline template"))?;
        Ok(())
    }

    /// Names of every job, with whether it is paused, by name.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn job_names(&mut self) -> Result<Vec<(String, bool)>> {
        Ok(self
            .client
            .query("SELECT name, paused FROM sched_job ORDER BY name", &[])
            .map_err(db("list jobs"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    /// Looks a job up by name.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::Db`].
    pub fn job_id(&mut self, name: &str) -> Result<JobId> {
        self.client
            .query_opt("SELECT id FROM sched_job WHERE name = $1", &[&name])
            .map_err(db("look a job up"))?
            .map(|r| JobId(r.get(0)))
            .ok_or_else(|| Error::JobNotFound {
                job: name.to_owned(),
            })
    }

    /// A job's watermark: the earliest occurrence not yet materialized.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::Db`].
    pub fn watermark(&mut self, job: JobId) -> Result<Option<Timestamp>> {
        self.client
            .query_opt(
                "SELECT next_fire_at FROM sched_job WHERE id = $1",
                &[&job.0],
            )
            .map_err(db("read a watermark"))?
            .map(|r| r.get(0))
            .ok_or_else(|| Error::JobNotFound {
                job: job.to_string(),
            })
    }

    /// Pauses or resumes a job. A paused job's watermark stays where it is, so
    /// resuming goes through the misfire policy.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::Db`].
    pub fn set_paused(&mut self, job: JobId, paused: bool) -> Result<()> {
        let n = self
            .client
            .execute(
                "UPDATE sched_job SET paused = $2, updated_at = now() WHERE id = $1",
                &[&job.0, &paused],
            )
            .map_err(db("pause a job"))?;
        if n == 0 {
            return Err(Error::JobNotFound {
                job: job.to_string(),
            });
        }
        Ok(())
    }

    /// Replaces a job's trigger under the job's row lock: bumps the definition
    /// version, recomputes the watermark from the database's `now()`, and cancels
    /// the not-yet-started future runs of older versions in the same transaction.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; a bad trigger; [`Error::Db`] (a lock wait longer than
    /// `lock_timeout` while a materializer holds the row: see [`Error::is_contention`]).
    pub fn edit_trigger(&mut self, job: JobId, trigger: &Trigger) -> Result<EditOutcome> {
        let channel = self.options.channel();
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {JOB_COLUMNS}, now() FROM sched_job WHERE id = $1 FOR NO KEY UPDATE"
                ),
                &[&job.0],
            )
            .map_err(db("lock a job for an edit"))?
            .ok_or_else(|| Error::JobNotFound {
                job: job.to_string(),
            })?;
        let name: String = row.get(1);
        let now: Timestamp = row.get(NOW_COLUMN);
        let schedule = trigger.compile(&name)?;
        let watermark = schedule.initial_watermark(now);
        let def_version: i64 = tx
            .query_one(
                "UPDATE sched_job SET trigger_kind = $2, trigger_spec = $3, def_version = def_version + 1,
                   next_fire_at = $4, backlog_fired = 0, updated_at = now() WHERE id = $1 RETURNING def_version",
                &[&job.0, &trigger.kind(), &trigger.to_json(), &watermark],
            )
            .map_err(db("update a trigger"))?
            .get(0);
        let cancelled: Vec<i64> = tx
            .query(
                "UPDATE sched_run SET state = 'cancelled', finished_at = now(), last_error = 'schedule edited'
                 WHERE job_id = $1 AND def_version < $2 AND state IN ('pending','blocked') AND attempt = 0
                   AND scheduled_at > now()
                 RETURNING id",
                &[&job.0, &def_version],
            )
            .map_err(db("cancel runs of an old schedule"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !cancelled.is_empty() {
            tx.execute(
                "DELETE FROM sched_run_dep WHERE run_id = ANY($1)",
                &[&cancelled],
            )
            .map_err(db("drop edges of cancelled runs"))?;
        }
        for id in &cancelled {
            release(&mut tx, RunId(*id), false)?;
        }
        notify(&mut tx, &channel, watermark)?;
        tx.commit().map_err(db("commit a schedule edit"))?;
        Ok(EditOutcome {
            def_version,
            next_fire_at: watermark,
            cancelled: cancelled.len(),
        })
    }

    /// Triggers a job by hand: a run at the database's `now()` with origin `manual`.
    /// With a `request_id`, repeating the call is a no-op (returns `None`).
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::Db`].
    pub fn trigger_now(&mut self, job: JobId, request_id: Option<&str>) -> Result<Option<RunId>> {
        let channel = self.options.channel();
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let row = tx
            .query_opt(
                &format!("SELECT {JOB_COLUMNS}, now() FROM sched_job WHERE id = $1"),
                &[&job.0],
            )
            .map_err(db("read a job"))?
            .ok_or_else(|| Error::JobNotFound {
                job: job.to_string(),
            })?;
        let j = job_row(&row)?;
        let now: Timestamp = row.get(NOW_COLUMN);
        if let Some(key) = request_id {
            // Serialize callers with the same key; the unique column is the backstop.
            tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&key])
                .map_err(db("lock a request id"))?;
            let seen = tx
                .query_opt(
                    "SELECT 1 FROM sched_run WHERE request_id = $1
                     UNION ALL SELECT 1 FROM sched_run_history WHERE request_id = $1 LIMIT 1",
                    &[&key],
                )
                .map_err(db("look a request id up"))?;
            if seen.is_some() {
                return Ok(None);
            }
        }
        let (runs, edges) = instance(&mut tx, &j, now, "manual", "pending", None)?;
        let first = runs.first().map(|r| (r.t, r.stage.clone()));
        let ids = insert_runs(&mut tx, &j, &runs, &edges, request_id)?;
        notify(&mut tx, &channel, Some(now))?;
        tx.commit().map_err(db("commit a manual trigger"))?;
        Ok(first.and_then(|k| ids.iter().find(|(key, _)| *key == k).map(|(_, id)| *id)))
    }

    /// Runs of a job, oldest occurrence first, including the ones moved to
    /// `sched_run_history` by [`PgStore::archive_runs`].
    ///
    /// # Errors
    /// [`Error::Db`]; [`Error::Corrupt`] for an unknown state.
    pub fn runs(&mut self, job: JobId) -> Result<Vec<RunInfo>> {
        let rows = self
            .client
            .query(
                "SELECT * FROM (
                   SELECT id, job_id, scheduled_at, stage, origin, state, attempt, pending_deps, lease_owner,
                          def_version
                   FROM sched_run WHERE job_id = $1
                   UNION ALL
                   SELECT id, job_id, scheduled_at, stage, origin, state, attempt, pending_deps, lease_owner,
                          def_version
                   FROM sched_run_history WHERE job_id = $1) r
                 ORDER BY scheduled_at, id",
                &[&job.0],
            )
            .map_err(db("list runs"))?;
        rows.iter().map(run_info).collect()
    }

    /// Moves at most `batch` terminal runs that ended more than `retention` ago
    /// (database clock) from the hot `sched_run` table to `sched_run_history`, and
    /// returns how many moved. Attempts stay in `sched_attempt`.
    ///
    /// A run moves only when every run waiting on it has ended too, and when its
    /// job's watermark is past it, under a share lock on the job row (taken with
    /// `SKIP LOCKED`: a job being materialized or edited right now is left for the
    /// next pass). The materializer refuses any occurrence found in the history,
    /// so a moved occurrence is never materialized again, even by a stale node or
    /// after an edit that moves the watermark back. Runs are locked with
    /// `SKIP LOCKED`, so several nodes archive side by side without waiting.
    ///
    /// # Errors
    /// [`Error::Db`]; the transaction is rolled back and nothing moved.
    pub fn archive_runs(&mut self, retention: Duration, batch: usize) -> Result<u64> {
        if batch == 0 {
            return Ok(0);
        }
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let candidates: Vec<(i64, i64)> = tx
            .query(
                "SELECT r.id, r.job_id FROM sched_run r
                 WHERE r.state IN ('succeeded','failed','dead','skipped','cancelled')
                   AND r.finished_at < now() - $1::bigint * interval '1 ms'
                   AND EXISTS (SELECT 1 FROM sched_job j WHERE j.id = r.job_id
                               AND (j.next_fire_at IS NULL OR r.scheduled_at < j.next_fire_at))
                   AND NOT EXISTS (
                     SELECT 1 FROM sched_run_dep d JOIN sched_run c ON c.id = d.run_id
                     WHERE d.dep_run_id = r.id
                       AND c.state NOT IN ('succeeded','failed','dead','skipped','cancelled'))
                 ORDER BY r.finished_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED",
                &[&(retention.as_millis() as i64), &(batch as i64)],
            )
            .map_err(db("pick runs to archive"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let mut jobs: Vec<i64> = candidates.iter().map(|(_, j)| *j).collect();
        jobs.sort_unstable();
        jobs.dedup();
        let ids: Vec<i64> = candidates.iter().map(|(r, _)| *r).collect();
        // The share lock keeps materializers and edits of these jobs out until the
        // move commits; the watermark is read again under it.
        let moved = tx
            .execute(
                "WITH locked AS (
                   SELECT id, next_fire_at FROM sched_job WHERE id = ANY($2) ORDER BY id FOR SHARE SKIP LOCKED),
                 gone AS (
                   DELETE FROM sched_run r USING locked j
                   WHERE r.id = ANY($1) AND r.job_id = j.id
                     AND (j.next_fire_at IS NULL OR r.scheduled_at < j.next_fire_at)
                   RETURNING r.*)
                 INSERT INTO sched_run_history SELECT gone.*, now() FROM gone",
                &[&ids, &jobs],
            )
            .map_err(db("archive runs"))?;
        tx.commit().map_err(db("commit an archive batch"))?;
        Ok(moved)
    }

    /// The runs currently leased, with their owners (for status pages: which node
    /// runs what), oldest claim first.
    ///
    /// # Errors
    /// [`Error::Db`]; [`Error::Corrupt`] for an unknown state.
    pub fn running(&mut self) -> Result<Vec<RunInfo>> {
        let rows = self
            .client
            .query(
                "SELECT id, job_id, scheduled_at, stage, origin, state, attempt, pending_deps, lease_owner, def_version
                 FROM sched_run WHERE state = 'running' ORDER BY started_at, id",
                &[],
            )
            .map_err(db("list running runs"))?;
        rows.iter().map(run_info).collect()
    }

    // ----------------------------------------------------------- materialize

    /// One materialization pass: locks due jobs (`FOR NO KEY UPDATE SKIP LOCKED`, so
    /// other nodes take other jobs), inserts their occurrences up to
    /// `now() + lookahead` following the misfire and overlap policies, and moves each
    /// watermark forward by compare-and-set, all in one transaction.
    ///
    /// # Errors
    /// [`Error::Db`]; the transaction is rolled back and nothing changed.
    pub fn materialize(&mut self, lookahead: Duration) -> Result<MaterializeReport> {
        let channel = self.options.channel();
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS}, now() FROM sched_job
                     WHERE NOT paused AND next_fire_at <= now() + $1::bigint * interval '1 ms'
                     ORDER BY next_fire_at LIMIT {MATERIALIZE_BATCH} FOR NO KEY UPDATE SKIP LOCKED"
                ),
                &[&(lookahead.as_millis() as i64)],
            )
            .map_err(db("lock due jobs"))?;
        let mut report = MaterializeReport::default();
        let db_now: Timestamp = match rows.first() {
            Some(r) => r.get(NOW_COLUMN),
            None => tx
                .query_one("SELECT now()", &[])
                .map_err(db("read now()"))?
                .get(0),
        };
        report.db_now = Some(db_now);
        for row in &rows {
            let j = match job_row(row) {
                Ok(j) => j,
                Err(e) => {
                    tracing::error!(error = %e, "skipping a job that cannot be read");
                    continue;
                }
            };
            let Some(seen) = j.next_fire_at else { continue };
            report.jobs += 1;
            materialize_job(&mut tx, &j, seen, db_now, lookahead, &mut report)?;
        }
        if let Some(t) = report.earliest_pending {
            notify(&mut tx, &channel, Some(t))?;
        }
        tx.commit().map_err(db("commit a materialization"))?;
        Ok(report)
    }

    /// Materializes one job assuming the watermark the caller saw earlier, waiting
    /// for the job's row lock instead of skipping it. This is the path of a stale or
    /// buggy node: the unique occurrence key and the watermark compare-and-set make
    /// it harmless (it reports `cas_failures = 1` and changes nothing when the
    /// watermark moved). Tools and tests use it; the scheduler loop does not.
    ///
    /// # Errors
    /// [`Error::JobNotFound`]; [`Error::Db`].
    pub fn materialize_job_from(
        &mut self,
        job: JobId,
        seen_watermark: Timestamp,
        lookahead: Duration,
    ) -> Result<MaterializeReport> {
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let row = tx
            .query_opt(
                &format!(
                    "SELECT {JOB_COLUMNS}, now() FROM sched_job WHERE id = $1 FOR NO KEY UPDATE"
                ),
                &[&job.0],
            )
            .map_err(db("lock a job"))?
            .ok_or_else(|| Error::JobNotFound {
                job: job.to_string(),
            })?;
        let j = job_row(&row)?;
        let db_now: Timestamp = row.get(NOW_COLUMN);
        let mut report = MaterializeReport {
            jobs: 1,
            db_now: Some(db_now),
            ..MaterializeReport::default()
        };
        materialize_job(&mut tx, &j, seen_watermark, db_now, lookahead, &mut report)?;
        tx.commit().map_err(db("commit a materialization"))?;
        Ok(report)
    }

    /// The earliest instant something becomes due: the smallest watermark of an
    /// active job or `available_at` of a claimable run, with the database's `now()`.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn next_due(&mut self) -> Result<(Option<Timestamp>, Timestamp)> {
        let row = self
            .client
            .query_one(
                "SELECT least(
                   (SELECT min(next_fire_at) FROM sched_job WHERE NOT paused AND next_fire_at IS NOT NULL),
                   (SELECT min(available_at) FROM sched_run WHERE state IN ('pending','retry_wait')),
                   (SELECT min(lease_expires_at) FROM sched_run WHERE state = 'running')), now()",
                &[],
            )
            .map_err(db("find the next due time"))?;
        Ok((row.get(0), row.get(1)))
    }

    // ----------------------------------------------------------------- claim

    /// Claims up to `batch` runs for this node: first gives up on runs whose lease
    /// expired after their last attempt (`dead`), then rescues expired leases, then
    /// takes due work: first of jobs with a [`JobSpec::max_concurrent`] (each under
    /// a per-job advisory lock, counting its running runs in a fresh statement, so
    /// nodes claiming side by side never exceed the bound), then of the others.
    /// Each claim increments the attempt (the fencing token) and sets a lease of
    /// the job's `lease_ttl` from the database's `now()`.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn claim(&mut self, batch: usize) -> Result<Vec<ClaimedRun>> {
        if batch == 0 {
            return Ok(Vec::new());
        }
        self.bury_dead()?;
        let mut out = self.claim_with(
            "SELECT id, lease_expires_at AS old_exp FROM sched_run
             WHERE state = 'running' AND lease_expires_at < now() AND attempt < max_attempts
             ORDER BY lease_expires_at LIMIT $2 FOR UPDATE SKIP LOCKED",
            batch,
        )?;
        if out.len() < batch {
            let more = self.claim_limited(batch - out.len())?;
            out.extend(more);
        }
        if out.len() < batch {
            let more = self.claim_with(
                "SELECT id, NULL::timestamptz AS old_exp FROM sched_run
                 WHERE state IN ('pending','retry_wait') AND available_at <= now()
                   AND NOT EXISTS (SELECT 1 FROM sched_job j
                                   WHERE j.id = sched_run.job_id AND j.max_concurrent IS NOT NULL)
                 ORDER BY available_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                batch - out.len(),
            )?;
            out.extend(more);
        }
        Ok(out)
    }

    /// Claims due runs of jobs with a concurrency bound, one job per transaction:
    /// the job's advisory lock serializes the claimers of that job, and the claim
    /// statement, started after the lock is held, sees every claim committed
    /// before it (READ COMMITTED takes a snapshot per statement), so its count of
    /// running runs is exact. (Rescues keep a run `running`, so they never change
    /// the count; only this path turns a bounded job's run `running`.)
    fn claim_limited(&mut self, batch: usize) -> Result<Vec<ClaimedRun>> {
        let due = self.prep(
            "SELECT j.id, j.max_concurrent FROM sched_job j
             WHERE j.max_concurrent IS NOT NULL
               AND EXISTS (SELECT 1 FROM sched_run r WHERE r.job_id = j.id
                             AND r.state IN ('pending','retry_wait') AND r.available_at <= now())
             ORDER BY j.id LIMIT 100",
        )?;
        let jobs: Vec<(i64, i32)> = self
            .client
            .query(&due, &[])
            .map_err(db("find bounded jobs with due runs"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let lock = self
            .prep("SELECT pg_advisory_xact_lock(hashtext($1), ($2::bigint % 2147483647)::int)")?;
        let claim = self.prep(&claim_sql(
            "SELECT id, NULL::timestamptz AS old_exp FROM sched_run
             WHERE job_id = $3 AND state IN ('pending','retry_wait') AND available_at <= now()
             ORDER BY available_at, id
             LIMIT least($2, greatest(0, $4::bigint
               - (SELECT count(*) FROM sched_run WHERE job_id = $3 AND state = 'running')))
             FOR UPDATE SKIP LOCKED",
        ))?;
        let key = format!("myrmex.max_concurrent.{}", self.options.schema);
        let node = self.node_id.clone();
        let mut out = Vec::new();
        for (job, limit) in jobs {
            if out.len() >= batch {
                break;
            }
            let mut tx = self.client.transaction().map_err(db("begin"))?;
            tx.execute(&lock, &[&key, &job])
                .map_err(db("lock a bounded job"))?;
            let claimed_at = Instant::now();
            let rows = tx
                .query(
                    &claim,
                    &[
                        &node,
                        &((batch - out.len()) as i64),
                        &job,
                        &i64::from(limit),
                    ],
                )
                .map_err(db("claim runs of a bounded job"))?;
            tx.commit().map_err(db("commit claims"))?;
            for r in &rows {
                out.push(claimed_run(r, claimed_at)?);
            }
        }
        Ok(out)
    }

    fn bury_dead(&mut self) -> Result<()> {
        let any = self.prep(
            "SELECT EXISTS (SELECT 1 FROM sched_run WHERE state = 'running' AND lease_expires_at < now()
                              AND attempt >= max_attempts)",
        )?;
        let found: bool = self
            .client
            .query_one(&any, &[])
            .map_err(db("look for runs out of attempts"))?
            .get(0);
        if !found {
            return Ok(());
        }
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let dead: Vec<(i64, i32)> = tx
            .query(
                "WITH d AS (SELECT id FROM sched_run WHERE state = 'running' AND lease_expires_at < now()
                              AND attempt >= max_attempts ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED)
                 UPDATE sched_run r SET state = 'dead', finished_at = now(), lease_owner = NULL,
                   lease_expires_at = NULL, last_error = 'lease expired after final attempt'
                 FROM d WHERE r.id = d.id RETURNING r.id, r.attempt",
                &[],
            )
            .map_err(db("bury runs out of attempts"))?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        if dead.is_empty() {
            return Ok(());
        }
        for (id, attempt) in &dead {
            tx.execute(
                "UPDATE sched_attempt SET finished_at = now(), outcome = 'lease_expired'
                 WHERE run_id = $1 AND attempt = $2 AND outcome IS NULL",
                &[id, attempt],
            )
            .map_err(db("close an attempt"))?;
            release(&mut tx, RunId(*id), false)?;
        }
        tx.commit().map_err(db("commit dead runs"))
    }

    fn claim_with(&mut self, candidates: &str, batch: usize) -> Result<Vec<ClaimedRun>> {
        let sql = self.prep(&claim_sql(candidates))?;
        let claimed_at = Instant::now();
        let node = self.node_id.clone();
        match self.client.query(&sql, &[&node, &(batch as i64)]) {
            Ok(rows) => rows.iter().map(|r| claimed_run(r, claimed_at)).collect(),
            Err(e) if is_unique_violation(&e) => self.claim_one_by_one(candidates, batch),
            Err(e) => Err(Error::Db {
                op: "claim runs",
                source: e,
            }),
        }
    }

    /// The backstop path when an exclusive job would run twice (`sched_run_one_running`):
    /// claim candidates one at a time under savepoints and leave out the offender.
    fn claim_one_by_one(&mut self, candidates: &str, batch: usize) -> Result<Vec<ClaimedRun>> {
        tracing::warn!("claim hit the one-running index; claiming one by one");
        let node = self.node_id.clone();
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let ids: Vec<i64> = tx
            .query(
                &format!("SELECT id FROM ({candidates}) c WHERE $1::text IS NOT NULL"),
                &[&node, &(batch as i64)],
            )
            .map_err(db("pick claim candidates"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let sql = claim_sql(
            "SELECT id, CASE WHEN state = 'running' THEN lease_expires_at END AS old_exp
             FROM sched_run WHERE id = $2",
        );
        let mut out = Vec::new();
        for id in ids {
            let claimed_at = Instant::now();
            let mut sp = tx.transaction().map_err(db("savepoint"))?;
            match sp.query(&sql, &[&node, &id]) {
                Ok(rows) => {
                    sp.commit().map_err(db("release a savepoint"))?;
                    for r in &rows {
                        out.push(claimed_run(r, claimed_at)?);
                    }
                }
                Err(e) if is_unique_violation(&e) => {
                    sp.rollback().map_err(db("roll back a savepoint"))?;
                }
                Err(e) => {
                    return Err(Error::Db {
                        op: "claim a run",
                        source: e,
                    });
                }
            }
        }
        tx.commit().map_err(db("commit claims"))?;
        Ok(out)
    }

    // ------------------------------------------------------------- heartbeat

    /// Renews the leases of this node's runs (`(run, attempt)` pairs) and the node's
    /// heartbeat. Returns the runs still owned; any run not returned was lost (its
    /// lease was taken over, or it was cancelled): stop it, don't complete it.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn renew(&mut self, runs: &[(RunId, i32)]) -> Result<Vec<RunId>> {
        let ids: Vec<i64> = runs.iter().map(|(r, _)| r.0).collect();
        let attempts: Vec<i32> = runs.iter().map(|(_, a)| *a).collect();
        let owned = if ids.is_empty() {
            Vec::new()
        } else {
            let renew = self.prep(
                "UPDATE sched_run r SET lease_expires_at = now() + j.lease_ttl_ms * interval '1 ms'
                 FROM unnest($1::bigint[], $2::int[]) AS h(id, attempt), sched_job j
                 WHERE r.id = h.id AND r.attempt = h.attempt AND r.state = 'running'
                   AND r.lease_owner = $3 AND j.id = r.job_id
                 RETURNING r.id",
            )?;
            self.client
                .query(&renew, &[&ids, &attempts, &self.node_id])
                .map_err(db("renew leases"))?
                .iter()
                .map(|r| RunId(r.get(0)))
                .collect()
        };
        let beat = self.prep("UPDATE sched_node SET heartbeat_at = now() WHERE node_id = $1")?;
        self.client
            .execute(&beat, &[&self.node_id])
            .map_err(db("heartbeat the node"))?;
        Ok(owned)
    }

    // -------------------------------------------------------------- complete

    /// Records success for `(run, attempt)` in one transaction fenced on the attempt:
    /// the state, `effects` (your transactional writes, e.g. an outbox row), the
    /// attempt history, dependency release and `after` triggers. If a newer attempt
    /// owns the run nothing is written and [`Completion::Fenced`] is returned.
    ///
    /// The completion does not require the lease to be unexpired: only a reclaim
    /// (attempt + 1) revokes ownership.
    ///
    /// Completing is idempotent: when the same `(run, attempt)` already committed
    /// its success (a retry after a reply lost with the session), the call returns
    /// [`Completion::Committed`] without running `effects` again or touching the
    /// attempt history.
    ///
    /// # Errors
    /// [`Error::Db`], including an error returned by `effects` (then nothing is
    /// committed).
    pub fn complete(
        &mut self,
        run: RunId,
        attempt: i32,
        result: Option<&Value>,
        effects: &mut EffectFn<'_>,
    ) -> Result<Completion> {
        let channel = self.options.channel();
        let fence = self.prep(
            "UPDATE sched_run SET state = 'succeeded', finished_at = now(), result = $3,
               lease_owner = NULL, lease_expires_at = NULL, last_error = NULL
             WHERE id = $1 AND attempt = $2 AND state = 'running'
             RETURNING job_id, scheduled_at, stage",
        )?;
        // The attempt history, dependency release (rows locked in id order) and the
        // `after` triggers, as one statement: fewer round trips while the row is held.
        let finish = self.prep(
            "WITH att AS (
               UPDATE sched_attempt SET finished_at = now(), outcome = 'ok'
               WHERE run_id = $1 AND attempt = $2 RETURNING 1),
             d AS (SELECT run_id FROM sched_run_dep WHERE dep_run_id = $1 ORDER BY run_id),
             rel AS (
               UPDATE sched_run r SET pending_deps = r.pending_deps - 1,
                 state = CASE WHEN r.pending_deps = 1 THEN 'pending' ELSE r.state END,
                 available_at = CASE WHEN r.pending_deps = 1 THEN greatest(now(), r.available_at)
                                ELSE r.available_at END
               FROM d WHERE r.id = d.run_id AND r.state = 'blocked' RETURNING r.state),
             aft AS (
               INSERT INTO sched_run (job_id, scheduled_at, stage, origin, def_version, state, exclusive,
                 available_at, max_attempts)
               SELECT j.id, $4, '', 'after', j.def_version, 'pending', j.overlap_policy <> 'allow', now(),
                 j.max_attempts
               FROM sched_job j
               WHERE $5 AND j.trigger_kind = 'after' AND (j.trigger_spec->>'after_job')::bigint = $3
                 AND NOT j.paused
               ON CONFLICT ON CONSTRAINT sched_run_occurrence DO NOTHING RETURNING 1)
             SELECT (SELECT count(*) FROM rel WHERE state = 'pending') + (SELECT count(*) FROM aft)
                    + 0 * (SELECT count(*) FROM att)",
        )?;
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let row = tx
            .query_opt(&fence, &[&run.0, &attempt, &result])
            .map_err(db("complete a run"))?;
        let Some(row) = row else {
            drop(tx);
            return self.record_fenced(run, attempt, "ok");
        };
        effects(&mut tx).map_err(db("write a run's effects"))?;
        let job: i64 = row.get(0);
        let scheduled_at: Timestamp = row.get(1);
        let plain = row.get::<_, &str>(2).is_empty();
        let wake: i64 = tx
            .query_one(&finish, &[&run.0, &attempt, &job, &scheduled_at, &plain])
            .map_err(db("release dependents"))?
            .get(0);
        if wake > 0 {
            tx.execute("SELECT pg_notify($1, '')", &[&channel])
                .map_err(db("notify"))?;
        }
        tx.commit().map_err(db("commit a completion"))?;
        Ok(Completion::Committed)
    }

    /// A fence miss of `(run, attempt)`. When the attempt's own outcome is already
    /// `ours` (`ok` for a success, `error` for a failure), this very write committed
    /// earlier and only its reply was lost (a session cut between COMMIT and the
    /// answer; the caller retried): that is reported as [`Completion::Committed`]
    /// and nothing is touched. Otherwise a newer attempt (or a cancel) took over: the
    /// attempt is labelled `fenced`, but only when it has no outcome yet or lost its
    /// lease, never overwriting an outcome that committed.
    fn record_fenced(&mut self, run: RunId, attempt: i32, ours: &str) -> Result<Completion> {
        let row = self
            .client
            .query_one(
                "WITH old AS (SELECT outcome FROM sched_attempt WHERE run_id = $1 AND attempt = $2),
                 fenced AS (
                   UPDATE sched_attempt SET outcome = 'fenced', finished_at = coalesce(finished_at, now())
                   WHERE run_id = $1 AND attempt = $2 AND (outcome IS NULL OR outcome = 'lease_expired')
                     AND (SELECT outcome FROM old) IS DISTINCT FROM $3
                   RETURNING 1)
                 SELECT (SELECT outcome FROM old) IS NOT DISTINCT FROM $3, (SELECT count(*) FROM fenced)",
                &[&run.0, &attempt, &ours],
            )
            .map_err(db("record a fenced completion"))?;
        if row.get::<_, bool>(0) {
            tracing::info!(
                run = run.0,
                attempt,
                outcome = ours,
                "completion already committed (a retried write); nothing to do"
            );
            return Ok(Completion::Committed);
        }
        tracing::info!(run = run.0, attempt, "completion refused by the fence");
        Ok(Completion::Fenced)
    }

    /// Records a failed attempt, fenced like [`PgStore::complete`]: the run waits
    /// for a retry (after the job's [`crate::RetryBackoff`] delay, on the
    /// database's clock) or, after
    /// its last attempt, ends `failed` and resolves its dependents (`all_success`:
    /// skipped transitively; `all_done`: released). Like [`PgStore::complete`] it is
    /// idempotent: repeating a failure that already committed for this attempt
    /// returns [`Completion::Committed`] and writes nothing.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn fail(&mut self, run: RunId, attempt: i32, error: &str) -> Result<Completion> {
        let channel = self.options.channel();
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let row = tx
            .query_opt(
                "UPDATE sched_run r SET
                   state = CASE WHEN r.attempt < r.max_attempts THEN 'retry_wait' ELSE 'failed' END,
                   available_at = CASE WHEN r.attempt < r.max_attempts
                     THEN now() + CASE WHEN j.retry_backoff_kind = 'fixed' THEN j.retry_backoff_ms::float8
                       ELSE least(j.retry_backoff_ms * power(2, r.attempt - 1) * (0.75 + random() * 0.5),
                                  j.retry_max_delay_ms) END * interval '1 ms'
                     ELSE r.available_at END,
                   finished_at = CASE WHEN r.attempt < r.max_attempts THEN NULL ELSE now() END,
                   last_error = $3, lease_owner = NULL, lease_expires_at = NULL
                 FROM sched_job j
                 WHERE r.id = $1 AND r.attempt = $2 AND r.state = 'running' AND j.id = r.job_id
                 RETURNING r.state, r.available_at",
                &[&run.0, &attempt, &error],
            )
            .map_err(db("fail a run"))?;
        let Some(row) = row else {
            drop(tx);
            return self.record_fenced(run, attempt, "error");
        };
        tx.execute(
            "UPDATE sched_attempt SET finished_at = now(), outcome = 'error', error = $3
             WHERE run_id = $1 AND attempt = $2",
            &[&run.0, &attempt, &error],
        )
        .map_err(db("close an attempt"))?;
        let state: &str = row.get(0);
        if state == "failed" {
            let woke = release(&mut tx, run, false)?;
            if woke > 0 {
                tx.execute("SELECT pg_notify($1, '')", &[&channel])
                    .map_err(db("notify"))?;
            }
        } else {
            notify(&mut tx, &channel, Some(row.get(1)))?;
        }
        tx.commit().map_err(db("commit a failure"))?;
        Ok(Completion::Committed)
    }

    /// Cancels a run that has not ended (any attempt). Its owner, if running, learns
    /// it on its next heartbeat; dependents resolve as for a failure.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn cancel(&mut self, run: RunId) -> Result<bool> {
        let mut tx = self.client.transaction().map_err(db("begin"))?;
        let n = tx
            .execute(
                "UPDATE sched_run SET state = 'cancelled', finished_at = now(), lease_owner = NULL,
                   lease_expires_at = NULL, last_error = 'cancelled'
                 WHERE id = $1 AND state IN ('blocked','pending','running','retry_wait')",
                &[&run.0],
            )
            .map_err(db("cancel a run"))?;
        if n > 0 {
            release(&mut tx, run, false)?;
        }
        tx.commit().map_err(db("commit a cancel"))?;
        Ok(n > 0)
    }
}

/// The bound stored for a job: `max_concurrent` applies to `allow` jobs only (the
/// other policies already run one at a time).
fn concurrency_limit(spec: &JobSpec) -> Option<i32> {
    spec.max_concurrent
        .filter(|_| spec.overlap == OverlapPolicy::Allow)
        .map(|n| i32::try_from(n.max(1)).unwrap_or(i32::MAX))
}

fn run_info(r: &Row) -> Result<RunInfo> {
    Ok(RunInfo {
        id: RunId(r.get(0)),
        job: JobId(r.get(1)),
        scheduled_at: r.get(2),
        stage: r.get(3),
        origin: Origin::parse(r.get(4))?,
        state: RunState::parse(r.get(5))?,
        attempt: r.get(6),
        pending_deps: r.get(7),
        lease_owner: r.get(8),
        def_version: r.get(9),
    })
}

fn claim_sql(candidates: &str) -> String {
    format!(
        "WITH cand AS MATERIALIZED ({candidates}),
         claimed AS (
           UPDATE sched_run r SET state = 'running', attempt = r.attempt + 1, lease_owner = $1,
             lease_expires_at = now() + j.lease_ttl_ms * interval '1 ms', started_at = now()
           FROM cand, sched_job j WHERE r.id = cand.id AND j.id = r.job_id
           RETURNING r.id, r.job_id, r.scheduled_at, r.stage, r.attempt, r.def_version, cand.old_exp),
         lost AS (
           UPDATE sched_attempt a SET outcome = 'lease_expired', finished_at = now()
           FROM claimed c WHERE a.run_id = c.id AND a.attempt = c.attempt - 1 AND a.outcome IS NULL),
         logged AS (
           INSERT INTO sched_attempt (run_id, attempt, node_id, started_at, rescued_lease_expired_at)
           SELECT id, attempt, $1, now(), old_exp FROM claimed)
         SELECT c.id, c.job_id, c.scheduled_at, c.stage, c.attempt, c.def_version, j.name,
                coalesce(s.task, j.handler), j.payload, j.lease_ttl_ms, j.timeout_ms, c.old_exp IS NOT NULL
         FROM claimed c JOIN sched_job j ON j.id = c.job_id
         LEFT JOIN sched_pipeline_stage s ON s.pipeline_id = j.pipeline_id AND s.stage = c.stage
         ORDER BY c.id"
    )
}

fn claimed_run(r: &Row, claimed_at: Instant) -> Result<ClaimedRun> {
    let ms = |v: i64| Duration::from_millis(v.max(0) as u64);
    Ok(ClaimedRun {
        run: RunId(r.get(0)),
        job: JobId(r.get(1)),
        scheduled_at: r.get(2),
        stage: r.get(3),
        attempt: r.get(4),
        def_version: r.get(5),
        job_name: r.get(6),
        handler: r.get(7),
        payload: r.get(8),
        lease_ttl: ms(r.get(9)),
        timeout: r.get::<_, Option<i64>>(10).map(ms),
        rescued: r.get(11),
        claimed_at,
    })
}

fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

/// Sends the wake-up hint at commit. The payload is the instant (Unix ms) at which
/// something becomes claimable, so listeners can sleep until exactly then.
fn notify(tx: &mut Transaction<'_>, channel: &str, at: Option<Timestamp>) -> Result<()> {
    let payload = at
        .map(|t| t.as_millisecond().to_string())
        .unwrap_or_default();
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .map_err(db("notify"))?;
    Ok(())
}

/// Resolves the dependents of `run`, which just ended. On success every blocked
/// dependent's counter goes down by one (and it becomes `pending` at zero). On a
/// failure-like end, `all_done` dependents are released the same way and
/// `all_success` dependents are skipped, transitively. Rows are locked in id order.
/// Returns how many runs became claimable.
fn release(tx: &mut Transaction<'_>, run: RunId, success: bool) -> Result<usize> {
    const DECREMENT: &str = "WITH d AS (SELECT run_id FROM sched_run_dep WHERE dep_run_id = $1 AND rule = ANY($2)
                                        ORDER BY run_id)
         UPDATE sched_run r SET pending_deps = r.pending_deps - 1,
           state = CASE WHEN r.pending_deps = 1 THEN 'pending' ELSE r.state END,
           available_at = CASE WHEN r.pending_deps = 1 THEN greatest(now(), r.available_at) ELSE r.available_at END
         FROM d WHERE r.id = d.run_id AND r.state = 'blocked'
         RETURNING r.state";
    let count_pending = |rows: Vec<Row>| {
        rows.iter()
            .filter(|r| r.get::<_, &str>(0) == "pending")
            .count()
    };
    if success {
        let rules = vec!["all_success", "all_done"];
        let rows = tx
            .query(DECREMENT, &[&run.0, &rules])
            .map_err(db("release dependents"))?;
        return Ok(count_pending(rows));
    }
    let mut woke = 0;
    let mut work = vec![run.0];
    while let Some(id) = work.pop() {
        let rows = tx
            .query(DECREMENT, &[&id, &vec!["all_done"]])
            .map_err(db("release all_done dependents"))?;
        woke += count_pending(rows);
        let skipped = tx
            .query(
                "WITH d AS (SELECT run_id FROM sched_run_dep WHERE dep_run_id = $1 AND rule = 'all_success'
                            ORDER BY run_id)
                 UPDATE sched_run r SET state = 'skipped', finished_at = now(), last_error = 'upstream did not succeed'
                 FROM d WHERE r.id = d.run_id AND r.state = 'blocked'
                 RETURNING r.id",
                &[&id],
            )
            .map_err(db("skip all_success dependents"))?;
        work.extend(skipped.iter().map(|r| r.get::<_, i64>(0)));
    }
    Ok(woke)
}

/// Orders a pipeline's stages so that parents come first (their runs get smaller
/// ids, which is the lock order), and validates the DAG.
fn order_stages(spec: &JobSpec) -> Result<Vec<crate::types::StageSpec>> {
    let bad = |reason: String| Error::InvalidPipeline {
        job: spec.name.clone(),
        reason,
    };
    let stages = &spec.pipeline;
    for (i, s) in stages.iter().enumerate() {
        if s.name.is_empty() {
            return Err(bad("a stage has an empty name".into()));
        }
        if stages[..i].iter().any(|o| o.name == s.name) {
            return Err(bad(format!("stage {:?} appears twice", s.name)));
        }
        for (d, _) in &s.depends_on {
            if !stages.iter().any(|o| &o.name == d) {
                return Err(bad(format!(
                    "stage {:?} depends on unknown stage {d:?}",
                    s.name
                )));
            }
        }
    }
    let mut ordered: Vec<crate::types::StageSpec> = Vec::new();
    while ordered.len() < stages.len() {
        let next = stages.iter().find(|s| {
            !ordered.iter().any(|o| o.name == s.name)
                && s.depends_on
                    .iter()
                    .all(|(d, _)| ordered.iter().any(|o| &o.name == d))
        });
        match next {
            Some(s) => ordered.push(s.clone()),
            None => return Err(bad("the stages' dependencies form a cycle".into())),
        }
    }
    Ok(ordered)
}

/// The rows and edges of one occurrence: one run for a plain job, one per stage
/// (roots `state`, the others `blocked` on their parents) for a pipeline.
fn instance(
    tx: &mut Transaction<'_>,
    j: &JobRow,
    t: Timestamp,
    origin: &'static str,
    state: &'static str,
    stages_cache: Option<&[StageRow]>,
) -> Result<(Vec<NewRun>, Vec<NewEdge>)> {
    if !j.pipeline {
        return Ok((
            vec![NewRun {
                t,
                stage: String::new(),
                origin,
                state,
                pending_deps: 0,
                max_attempts: j.max_attempts,
            }],
            Vec::new(),
        ));
    }
    let owned;
    let stages = match stages_cache {
        Some(s) => s,
        None => {
            owned = load_stages(tx, j.id)?;
            &owned[..]
        }
    };
    let mut runs = Vec::new();
    let mut edges = Vec::new();
    for (name, max_attempts, deps) in stages {
        let skipped = state == "skipped";
        runs.push(NewRun {
            t,
            stage: name.clone(),
            origin,
            state: if skipped || deps.is_empty() {
                state
            } else {
                "blocked"
            },
            pending_deps: if skipped { 0 } else { deps.len() as i32 },
            max_attempts: max_attempts.unwrap_or(j.max_attempts),
        });
        if !skipped {
            for (dep, rule) in deps {
                edges.push(NewEdge {
                    run: (t, name.clone()),
                    on: DepOn::New(t, dep.clone()),
                    rule: if rule == "all_done" {
                        DependencyRule::AllDone
                    } else {
                        DependencyRule::AllSuccess
                    },
                });
            }
        }
    }
    Ok((runs, edges))
}

/// A stage: name, attempts override, and (parent, rule) edges.
type StageRow = (String, Option<i32>, Vec<(String, String)>);
type StageRows = Vec<StageRow>;

fn load_stages(tx: &mut Transaction<'_>, job: JobId) -> Result<StageRows> {
    let rows = tx
        .query(
            "SELECT s.stage, s.max_attempts,
                    coalesce(array_agg(e.depends_on ORDER BY e.depends_on) FILTER (WHERE e.depends_on IS NOT NULL), '{}'),
                    coalesce(array_agg(e.rule ORDER BY e.depends_on) FILTER (WHERE e.depends_on IS NOT NULL), '{}')
             FROM sched_pipeline_stage s
             LEFT JOIN sched_pipeline_edge e ON e.pipeline_id = s.pipeline_id AND e.stage = s.stage
             WHERE s.pipeline_id = $1 GROUP BY s.stage, s.max_attempts, s.ord ORDER BY s.ord",
            &[&job.0],
        )
        .map_err(db("read a pipeline"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let deps: Vec<String> = r.get(2);
            let rules: Vec<String> = r.get(3);
            (r.get(0), r.get(1), deps.into_iter().zip(rules).collect())
        })
        .collect())
}

/// Inserts runs (`ON CONFLICT` on the occurrence key: nothing, except reviving a
/// never-started run cancelled by a schedule edit) and their edges. Returns the ids
/// by occurrence key of the rows written.
fn insert_runs(
    tx: &mut Transaction<'_>,
    j: &JobRow,
    runs: &[NewRun],
    edges: &[NewEdge],
    request_id: Option<&str>,
) -> Result<Vec<((Timestamp, String), RunId)>> {
    if runs.is_empty() {
        return Ok(Vec::new());
    }
    let ts: Vec<Timestamp> = runs.iter().map(|r| r.t).collect();
    let stages: Vec<&str> = runs.iter().map(|r| r.stage.as_str()).collect();
    let origins: Vec<&str> = runs.iter().map(|r| r.origin).collect();
    let states: Vec<&str> = runs.iter().map(|r| r.state).collect();
    let deps: Vec<i32> = runs.iter().map(|r| r.pending_deps).collect();
    let maxes: Vec<i32> = runs.iter().map(|r| r.max_attempts).collect();
    let exclusive = j.overlap != OverlapPolicy::Allow;
    let rows = tx
        .query(
            "INSERT INTO sched_run (job_id, scheduled_at, stage, origin, request_id, def_version, state, exclusive,
               available_at, max_attempts, pending_deps, finished_at)
             SELECT $1, x.t, x.s, x.o, CASE WHEN x.n = 1 THEN $2 END, $3, x.st, $4, x.t, x.m, x.d,
                    CASE WHEN x.st = 'skipped' THEN now() END
             FROM unnest($5::timestamptz[], $6::text[], $7::text[], $8::text[], $9::int[], $10::int[])
               WITH ORDINALITY AS x(t, s, o, st, d, m, n)
             WHERE NOT EXISTS (SELECT 1 FROM sched_run_history h
                               WHERE h.job_id = $1 AND h.scheduled_at = x.t AND h.stage = x.s)
             ON CONFLICT ON CONSTRAINT sched_run_occurrence DO UPDATE SET
               origin = EXCLUDED.origin, def_version = EXCLUDED.def_version, state = EXCLUDED.state,
               available_at = EXCLUDED.available_at, pending_deps = EXCLUDED.pending_deps,
               finished_at = EXCLUDED.finished_at, last_error = NULL, max_attempts = EXCLUDED.max_attempts
             WHERE sched_run.state = 'cancelled' AND sched_run.attempt = 0
               AND sched_run.def_version < EXCLUDED.def_version
             RETURNING id, scheduled_at, stage",
            &[
                &j.id.0,
                &request_id,
                &j.def_version,
                &exclusive,
                &ts,
                &stages,
                &origins,
                &states,
                &deps,
                &maxes,
            ],
        )
        .map_err(db("insert runs"))?;
    let ids: Vec<((Timestamp, String), RunId)> = rows
        .iter()
        .map(|r| ((r.get(1), r.get(2)), RunId(r.get(0))))
        .collect();
    let find = |k: &(Timestamp, String)| ids.iter().find(|(key, _)| key == k).map(|(_, id)| *id);
    let mut run_ids = Vec::new();
    let mut dep_ids = Vec::new();
    let mut rules = Vec::new();
    for e in edges {
        let Some(run) = find(&e.run) else { continue };
        let dep = match &e.on {
            DepOn::Existing(id) => Some(*id),
            DepOn::New(t, s) => find(&(*t, s.clone())),
        };
        let Some(dep) = dep else { continue };
        run_ids.push(run.0);
        dep_ids.push(dep.0);
        rules.push(e.rule.as_str());
    }
    if !run_ids.is_empty() {
        tx.execute(
            "INSERT INTO sched_run_dep (run_id, dep_run_id, rule)
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[])",
            &[&run_ids, &dep_ids, &rules],
        )
        .map_err(db("insert run dependencies"))?;
    }
    Ok(ids)
}

/// The per-job step of a materialization, under the job's row lock, inside a
/// savepoint so a failed compare-and-set undoes only this job.
fn materialize_job(
    tx: &mut Transaction<'_>,
    j: &JobRow,
    seen: Timestamp,
    db_now: Timestamp,
    lookahead: Duration,
    report: &mut MaterializeReport,
) -> Result<()> {
    let schedule = match j.trigger.compile(&j.name) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(job = %j.name, error = %e, "cannot evaluate a trigger; job left as is");
            return Ok(());
        }
    };
    // Overlap policies that look at the active run decide only for due occurrences,
    // never ahead of time.
    let ahead = match j.overlap {
        OverlapPolicy::Skip | OverlapPolicy::BufferOne => SignedDuration::ZERO,
        OverlapPolicy::Allow if j.max_concurrent.is_some() => SignedDuration::ZERO,
        _ => SignedDuration::try_from(lookahead).unwrap_or(SignedDuration::ZERO),
    };
    let horizon = db_now.saturating_add(ahead).unwrap_or(db_now);
    let cutoff = db_now
        .saturating_sub(SignedDuration::from_millis(j.misfire_grace_ms))
        .unwrap_or(db_now);
    let (times, watermark) = occurrences(&schedule, seen, horizon);
    if times.is_empty() {
        return Ok(());
    }
    let missed = times.iter().take_while(|t| **t < cutoff).count();
    // A backlog longer than one pass goes on in the next pass: the policy counts
    // over the whole backlog (fire_all's cap includes what earlier passes fired;
    // fire_once fires only in the pass holding the newest missed occurrence).
    let continues = watermark.is_some_and(|w| w < cutoff);
    let before = usize::try_from(j.backlog_fired).unwrap_or(0);
    let mut fired_now = 0;
    let mut plan: Vec<(Timestamp, &'static str, bool)> = Vec::with_capacity(times.len());
    for (i, t) in times.iter().enumerate() {
        if i < missed {
            let fire = match j.misfire {
                MisfirePolicy::FireAll => before + i < j.max_catchup.max(0) as usize,
                MisfirePolicy::FireOnce => i + 1 == missed && !continues,
                MisfirePolicy::Skip => false,
            };
            fired_now += usize::from(fire);
            plan.push((*t, "misfire", fire));
        } else {
            plan.push((*t, "schedule", true));
        }
    }
    let truncated = watermark.is_some_and(|w| w <= horizon);
    let backlog_fired = if continues {
        i32::try_from(before + fired_now).unwrap_or(i32::MAX)
    } else {
        0
    };
    let mut sp = tx.transaction().map_err(db("savepoint"))?;
    let stages = if j.pipeline {
        Some(load_stages(&mut sp, j.id)?)
    } else {
        None
    };
    let mut runs = Vec::new();
    let mut edges = Vec::new();
    let mut overlap = OverlapState::load(&mut sp, j)?;
    for (t, origin, fire) in plan {
        let state = if fire { "pending" } else { "skipped" };
        let (mut rs, es) = instance(&mut sp, j, t, origin, state, stages.as_deref())?;
        if fire && !j.pipeline {
            overlap.apply(t, &mut rs[0], &mut edges);
        }
        runs.extend(rs);
        edges.extend(es);
    }
    let expected = runs.len();
    let ids = insert_runs(&mut sp, j, &runs, &edges, None)?;
    let conflicts = expected - ids.len();
    if conflicts > 0 {
        tracing::warn!(job = %j.name, conflicts, "materialization hit existing occurrences");
    }
    let last = times.last().copied();
    let moved = sp
        .execute(
            "UPDATE sched_job SET next_fire_at = $2, last_fired_at = $3, backlog_fired = $5,
               updated_at = now()
             WHERE id = $1 AND next_fire_at = $4",
            &[&j.id.0, &watermark, &last, &seen, &backlog_fired],
        )
        .map_err(db("move a watermark"))?;
    if moved != 1 {
        tracing::warn!(job = %j.name, "watermark compare-and-set failed; rolled back");
        sp.rollback().map_err(db("roll back a savepoint"))?;
        report.cas_failures += 1;
        report.conflicts += conflicts;
        return Ok(());
    }
    sp.commit().map_err(db("release a savepoint"))?;
    report.conflicts += conflicts;
    report.truncated += usize::from(truncated);
    for r in &runs {
        let written = ids.iter().any(|((t, s), _)| *t == r.t && *s == r.stage);
        if !written {
            continue;
        }
        if r.state == "skipped" {
            report.skipped += 1;
        } else {
            report.inserted += 1;
            if r.state == "pending" {
                report.earliest_pending = Some(match report.earliest_pending {
                    Some(e) if e <= r.t => e,
                    _ => r.t,
                });
            }
        }
    }
    Ok(())
}

/// The occurrences from `from` (inclusive) up to `horizon` (inclusive), at most
/// [`MAX_OCCURRENCES_PER_PASS`], and the new watermark (the first one not taken).
pub(crate) fn occurrences(
    schedule: &Schedule,
    from: Timestamp,
    horizon: Timestamp,
) -> (Vec<Timestamp>, Option<Timestamp>) {
    let mut times = Vec::new();
    let mut t = schedule.first_at_or_after(from);
    while let Some(x) = t {
        if x > horizon || times.len() >= MAX_OCCURRENCES_PER_PASS {
            break;
        }
        times.push(x);
        t = schedule.next_after(x);
    }
    (times, t)
}

/// The overlap view of one job during a materialization: the active runs it must
/// wait for or be skipped behind, locked (`FOR SHARE`) so a concurrent completion
/// either happens before (and we see it ended) or after (and sees our edge).
struct OverlapState {
    policy: OverlapPolicy,
    /// Latest non-terminal run (or latest run for serial): (key, id, state).
    last: Option<(DepOn, bool)>,
    /// Whether a blocked (buffered) run exists.
    buffered: bool,
    /// For a bounded `allow` job: its bound and how many of its runs are active.
    bound: Option<(usize, usize)>,
}

impl OverlapState {
    fn load(tx: &mut Transaction<'_>, j: &JobRow) -> Result<OverlapState> {
        let mut st = OverlapState {
            policy: j.overlap,
            last: None,
            buffered: false,
            bound: None,
        };
        if j.pipeline {
            return Ok(st);
        }
        if j.overlap == OverlapPolicy::Allow {
            if let Some(limit) = j.max_concurrent {
                let active: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM sched_run
                         WHERE job_id = $1 AND stage = '' AND state IN ('blocked','pending','running','retry_wait')",
                        &[&j.id.0],
                    )
                    .map_err(db("count active runs"))?
                    .get(0);
                st.bound = Some((
                    usize::try_from(limit).unwrap_or(1).max(1),
                    usize::try_from(active).unwrap_or(0),
                ));
            }
            return Ok(st);
        }
        let rows = tx
            .query(
                "SELECT id, state FROM sched_run
                 WHERE job_id = $1 AND stage = '' AND state IN ('blocked','pending','running','retry_wait')
                 ORDER BY scheduled_at DESC FOR SHARE",
                &[&j.id.0],
            )
            .map_err(db("read active runs"))?;
        if let Some(r) = rows.first() {
            st.last = Some((
                DepOn::Existing(RunId(r.get(0))),
                r.get::<_, &str>(1) == "blocked",
            ));
        }
        st.buffered = rows.iter().any(|r| r.get::<_, &str>(1) == "blocked");
        Ok(st)
    }

    fn apply(&mut self, t: Timestamp, run: &mut NewRun, edges: &mut Vec<NewEdge>) {
        let key = DepOn::New(t, String::new());
        let edge_on = |on: &DepOn| match on {
            DepOn::Existing(id) => DepOn::Existing(*id),
            DepOn::New(t, s) => DepOn::New(*t, s.clone()),
        };
        match self.policy {
            OverlapPolicy::Allow => {
                // At most `limit` active runs; occurrences beyond are skipped.
                if let Some((limit, active)) = &mut self.bound {
                    if *active >= *limit {
                        run.state = "skipped";
                    } else {
                        *active += 1;
                    }
                }
            }
            OverlapPolicy::Skip => {
                if self.last.is_some() {
                    run.state = "skipped";
                } else {
                    self.last = Some((key, false));
                }
            }
            OverlapPolicy::BufferOne => match &self.last {
                None => self.last = Some((key, false)),
                Some(_) if self.buffered => run.state = "skipped",
                Some((on, _)) => {
                    run.state = "blocked";
                    run.pending_deps = 1;
                    edges.push(NewEdge {
                        run: (t, String::new()),
                        on: edge_on(on),
                        rule: DependencyRule::AllDone,
                    });
                    self.buffered = true;
                    self.last = Some((key, true));
                }
            },
            OverlapPolicy::Serial => {
                if let Some((on, _)) = &self.last {
                    run.state = "blocked";
                    run.pending_deps = 1;
                    edges.push(NewEdge {
                        run: (t, String::new()),
                        on: edge_on(on),
                        rule: DependencyRule::AllDone,
                    });
                }
                self.last = Some((key, true));
            }
        }
    }
}
