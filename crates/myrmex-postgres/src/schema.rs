//! Tables and migrations. The schema version lives in `sched_schema_version`; a database
//! migrated by a newer build is refused, never downgraded or half-used.

use crate::error::{Error, Result, db};

/// The newest schema version this build creates and understands.
pub const SCHEMA_VERSION: i32 = 6;

/// Migration `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE sched_node (
  node_id       text PRIMARY KEY,
  hostname      text NOT NULL,
  pid           int  NOT NULL,
  started_at    timestamptz NOT NULL DEFAULT now(),
  heartbeat_at  timestamptz NOT NULL DEFAULT now(),
  version       text NOT NULL
);

CREATE TABLE sched_job (
  id                bigserial PRIMARY KEY,
  name              text NOT NULL UNIQUE,
  handler           text NOT NULL,
  trigger_kind      text NOT NULL CHECK (trigger_kind IN ('once','interval','cron','manual','after')),
  trigger_spec      jsonb NOT NULL,
  def_version       bigint NOT NULL DEFAULT 1,
  next_fire_at      timestamptz,
  last_fired_at     timestamptz,
  misfire_policy    text NOT NULL DEFAULT 'fire_once' CHECK (misfire_policy IN ('fire_all','fire_once','skip')),
  misfire_grace_ms  bigint NOT NULL DEFAULT 60000,
  max_catchup       int  NOT NULL DEFAULT 100,
  overlap_policy    text NOT NULL DEFAULT 'allow' CHECK (overlap_policy IN ('allow','skip','buffer_one','serial')),
  max_attempts      int  NOT NULL DEFAULT 3,
  retry_backoff_ms  bigint NOT NULL DEFAULT 10000,
  lease_ttl_ms      bigint NOT NULL DEFAULT 30000,
  timeout_ms        bigint,
  pipeline_id       bigint,
  payload           jsonb NOT NULL DEFAULT '{}',
  paused            boolean NOT NULL DEFAULT false,
  created_at        timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sched_job_due ON sched_job (next_fire_at) WHERE next_fire_at IS NOT NULL AND NOT paused;
CREATE INDEX sched_job_after ON sched_job (((trigger_spec->>'after_job')::bigint)) WHERE trigger_kind = 'after';

CREATE TABLE sched_pipeline_stage (
  pipeline_id bigint NOT NULL,
  stage       text NOT NULL,
  ord         int NOT NULL,
  task        text NOT NULL,
  max_attempts int,
  PRIMARY KEY (pipeline_id, stage)
);
CREATE TABLE sched_pipeline_edge (
  pipeline_id bigint NOT NULL,
  stage       text NOT NULL,
  depends_on  text NOT NULL,
  rule        text NOT NULL DEFAULT 'all_success' CHECK (rule IN ('all_success','all_done')),
  PRIMARY KEY (pipeline_id, stage, depends_on)
);

CREATE TABLE sched_run (
  id               bigserial PRIMARY KEY,
  job_id           bigint NOT NULL REFERENCES sched_job(id),
  scheduled_at     timestamptz NOT NULL,
  stage            text NOT NULL DEFAULT '',
  origin           text NOT NULL DEFAULT 'schedule' CHECK (origin IN ('schedule','misfire','backfill','manual','after')),
  request_id       text UNIQUE,
  def_version      bigint NOT NULL,
  state            text NOT NULL CHECK (state IN ('blocked','pending','running','retry_wait',
                                                  'succeeded','failed','dead','skipped','cancelled')),
  exclusive        boolean NOT NULL DEFAULT false,
  available_at     timestamptz NOT NULL,
  attempt          int  NOT NULL DEFAULT 0,
  max_attempts     int  NOT NULL,
  pending_deps     int  NOT NULL DEFAULT 0,
  lease_owner      text,
  lease_expires_at timestamptz,
  started_at       timestamptz,
  finished_at      timestamptz,
  last_error       text,
  result           jsonb,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sched_run_occurrence UNIQUE (job_id, scheduled_at, stage)
) WITH (fillfactor = 80, autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
CREATE INDEX sched_run_claim ON sched_run (available_at, id) WHERE state IN ('pending','retry_wait');
CREATE INDEX sched_run_lease ON sched_run (lease_expires_at) WHERE state = 'running';
CREATE INDEX sched_run_job   ON sched_run (job_id, scheduled_at DESC);
CREATE UNIQUE INDEX sched_run_one_running ON sched_run (job_id) WHERE state = 'running' AND exclusive;

CREATE TABLE sched_run_dep (
  run_id     bigint NOT NULL REFERENCES sched_run(id) ON DELETE CASCADE,
  dep_run_id bigint NOT NULL REFERENCES sched_run(id) ON DELETE CASCADE,
  rule       text   NOT NULL DEFAULT 'all_success' CHECK (rule IN ('all_success','all_done')),
  PRIMARY KEY (dep_run_id, run_id)
);

CREATE TABLE sched_attempt (
  run_id      bigint NOT NULL,
  attempt     int NOT NULL,
  node_id     text NOT NULL,
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  outcome     text,
  error       text,
  rescued_lease_expired_at timestamptz,
  PRIMARY KEY (run_id, attempt)
);
",
    r"
-- The myrmex-store `Store` trait's records (PgRecordStore).
CREATE TABLE store_job (id text PRIMARY KEY, rec jsonb NOT NULL);
CREATE TABLE store_run (
  id           bigserial PRIMARY KEY,
  job_id       text NOT NULL,
  scheduled_at timestamptz NOT NULL,
  stage        text NOT NULL,
  state        text NOT NULL,
  available_at timestamptz NOT NULL,
  claimable    boolean NOT NULL,
  terminal     boolean NOT NULL,
  rec          jsonb NOT NULL,
  CONSTRAINT store_run_occurrence UNIQUE (job_id, scheduled_at, stage)
);
CREATE INDEX store_run_claim ON store_run (available_at, id) WHERE claimable;
CREATE INDEX store_run_state ON store_run (state);
CREATE TABLE store_dep (upstream bigint NOT NULL, run_id bigint NOT NULL, rec jsonb NOT NULL,
  PRIMARY KEY (upstream, run_id));
CREATE INDEX store_dep_run ON store_dep (run_id);
CREATE TABLE store_attempt (run_id bigint NOT NULL, attempt bigint NOT NULL, rec jsonb NOT NULL,
  PRIMARY KEY (run_id, attempt));
",
    r"
-- Recurrence triggers.
ALTER TABLE sched_job DROP CONSTRAINT IF EXISTS sched_job_trigger_kind_check;
ALTER TABLE sched_job ADD CONSTRAINT sched_job_trigger_kind_check
  CHECK (trigger_kind IN ('once','interval','cron','manual','after','recurrence'));

-- How long a node may go without a heartbeat before status calls it stale (NULL:
-- written by an older build; readers assume 30 s).
ALTER TABLE sched_node ADD COLUMN stale_after_ms bigint;

-- Terminal runs past the retention period, moved out of the hot sched_run by the
-- nodes' maintenance. Same columns; the occurrence stays unique here too, and the
-- materializer refuses an occurrence found here.
CREATE TABLE sched_run_history (LIKE sched_run INCLUDING DEFAULTS,
  moved_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id),
  CONSTRAINT sched_run_history_occurrence UNIQUE (job_id, scheduled_at, stage));
CREATE INDEX sched_run_history_job ON sched_run_history (job_id, scheduled_at DESC);
-- The retention scan: terminal runs by end time.
CREATE INDEX sched_run_finished ON sched_run (finished_at)
  WHERE state IN ('succeeded','failed','dead','skipped','cancelled');
",
    r"
-- Misfires already fired in a backlog longer than one materialization pass, so the
-- misfire policy decides over the whole backlog (0 when no backlog is pending).
ALTER TABLE sched_job ADD COLUMN backlog_fired int NOT NULL DEFAULT 0;
",
    r"
-- The retry policy beyond its base delay: how the delay grows, and its cap (the
-- defaults are the behaviour of older builds: exponential with jitter, at most 1 h).
ALTER TABLE sched_job
  ADD COLUMN retry_backoff_kind text NOT NULL DEFAULT 'exponential'
    CHECK (retry_backoff_kind IN ('fixed','exponential')),
  ADD COLUMN retry_max_delay_ms bigint NOT NULL DEFAULT 3600000;
",
    r"
-- A bound on the runs of an `allow` job holding a lease at once (NULL: none).
ALTER TABLE sched_job ADD COLUMN max_concurrent int CHECK (max_concurrent > 0);
CREATE INDEX sched_job_limited ON sched_job (id) WHERE max_concurrent IS NOT NULL;
",
];

const _: () = assert!(MIGRATIONS.len() == SCHEMA_VERSION as usize);

/// Checks the schema quoting rules: a plain lowercase identifier, so it can be
/// spliced into `SET search_path` and `CREATE SCHEMA` without quoting surprises.
pub(crate) fn check_schema_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSchemaName {
            name: name.to_owned(),
        })
    }
}

/// Creates the schema if needed and applies the missing migrations, serialized
/// across processes by an advisory lock.
///
/// # Errors
/// [`Error::SchemaTooNew`] when the database is newer than this build;
/// [`Error::Db`] when a statement fails.
pub(crate) fn migrate(client: &mut postgres::Client, schema: &str) -> Result<i32> {
    let mut tx = client.transaction().map_err(db("begin a migration"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("myrmex.{schema}")],
    )
    .map_err(db("take the migration lock"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS sched_schema_version (
           version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
    ))
    .map_err(db("create the version table"))?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM sched_schema_version",
            &[],
        )
        .map_err(db("read the schema version"))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Error::SchemaTooNew {
            schema: schema.to_owned(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).map_err(db("apply a migration"))?;
        tx.execute(
            "INSERT INTO sched_schema_version (version) VALUES ($1)",
            &[&(i as i32 + 1)],
        )
        .map_err(db("record the schema version"))?;
    }
    tx.commit().map_err(db("commit a migration"))?;
    Ok(SCHEMA_VERSION)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session on a fresh schema `schema` migrated to `version` only, as an
    /// older build left it; `None` (with a message) without a test database.
    fn old_database(test: &str, schema: &str, version: usize) -> Option<postgres::Client> {
        let Ok(url) = std::env::var("MYRMEX_TEST_POSTGRES_URL") else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: MYRMEX_TEST_POSTGRES_URL is not set"
            );
            return None;
        };
        let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}; SET search_path TO {schema};
             CREATE TABLE sched_schema_version (version int NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());"
        ))
        .unwrap();
        for (i, sql) in MIGRATIONS[..version].iter().enumerate() {
            c.batch_execute(sql).unwrap();
            c.execute(
                "INSERT INTO sched_schema_version (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .unwrap();
        }
        Some(c)
    }

    /// A database created by an older build (schema version 2, with a job and a
    /// finished run) upgrades in place and keeps its rows.
    #[test]
    fn a_version_2_database_upgrades_with_its_data() {
        let schema = "u_upgrade_from_v2";
        let Some(mut c) = old_database("a_version_2_database_upgrades_with_its_data", schema, 2)
        else {
            return;
        };
        c.batch_execute(
            "INSERT INTO sched_node (node_id, hostname, pid, version) VALUES ('n', 'h', 1, 'v');
             INSERT INTO sched_job (name, handler, trigger_kind, trigger_spec, next_fire_at)
               VALUES ('j', 'h', 'manual', '{}', NULL);
             INSERT INTO sched_run (job_id, scheduled_at, def_version, state, available_at, max_attempts, finished_at)
               SELECT id, now() - interval '1 day', 1, 'succeeded', now(), 1, now() FROM sched_job;",
        )
        .unwrap();
        assert_eq!(migrate(&mut c, schema).unwrap(), SCHEMA_VERSION);
        c.batch_execute(&format!("SET search_path TO {schema}"))
            .unwrap();
        let row = c
            .query_one(
                "SELECT (SELECT max(version) FROM sched_schema_version),
                        (SELECT backlog_fired FROM sched_job),
                        (SELECT stale_after_ms FROM sched_node) IS NULL,
                        (SELECT count(*) FROM sched_run),
                        (SELECT count(*) FROM sched_run_history)",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), SCHEMA_VERSION);
        assert_eq!(row.get::<_, i32>(1), 0);
        assert!(row.get::<_, bool>(2));
        assert_eq!((row.get::<_, i64>(3), row.get::<_, i64>(4)), (1, 0));
        c.execute(
            "UPDATE sched_job SET trigger_kind = 'recurrence', trigger_spec = '{\"recurrence\": []}'",
            &[],
        )
        .unwrap();
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }

    /// A version 4 database (before the retry policy and concurrency bound
    /// columns) upgrades with its jobs keeping the behaviour they had: exponential
    /// backoff capped at 1 h, no bound.
    #[test]
    fn a_version_4_database_upgrades_with_its_retry_policy_unchanged() {
        let schema = "u_upgrade_from_v4";
        let Some(mut c) = old_database(
            "a_version_4_database_upgrades_with_its_retry_policy_unchanged",
            schema,
            4,
        ) else {
            return;
        };
        c.batch_execute(
            "INSERT INTO sched_job (name, handler, trigger_kind, trigger_spec, next_fire_at, retry_backoff_ms)
               VALUES ('j', 'h', 'manual', '{}', NULL, 2500);",
        )
        .unwrap();
        assert_eq!(migrate(&mut c, schema).unwrap(), SCHEMA_VERSION);
        c.batch_execute(&format!("SET search_path TO {schema}"))
            .unwrap();
        let row = c
            .query_one(
                "SELECT (SELECT max(version) FROM sched_schema_version), retry_backoff_ms,
                        retry_backoff_kind, retry_max_delay_ms, max_concurrent IS NULL FROM sched_job",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), SCHEMA_VERSION);
        assert_eq!(row.get::<_, i64>(1), 2500);
        assert_eq!(row.get::<_, &str>(2), "exponential");
        assert_eq!(row.get::<_, i64>(3), 3_600_000);
        assert!(row.get::<_, bool>(4), "no concurrency bound");
        let bad = c.execute("UPDATE sched_job SET retry_backoff_kind = 'linear'", &[]);
        assert!(bad.is_err(), "the kind is checked");
        c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .unwrap();
    }
}
