//! Shared set-up: a fresh schema per test, or a clear skip.

use std::io::Write;
use std::time::Duration;

use jiff::Timestamp;
use myrmex_postgres::{ClaimedRun, Completion, ConnectOptions, PgStore, RunId};

/// The environment variable naming the test database.
pub const URL_VAR: &str = "MYRMEX_TEST_POSTGRES_URL";

/// A schema of its own for one test, dropped at the end.
pub struct TestDb {
    pub options: ConnectOptions,
}

impl TestDb {
    /// A store on this schema with a fixed node id.
    pub fn store(&self, node: &str) -> PgStore {
        PgStore::connect(&self.options.clone().node_id(node)).expect("connect")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("MYRMEX_TEST_KEEP_SCHEMA").is_some() {
            eprintln!("keeping schema {} for inspection", self.options.schema);
            return;
        }
        if let Ok(mut c) = self.options.open_session() {
            let _ = c.batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.options.schema
            ));
        }
    }
}

/// A fresh schema named after the test, or `None` (with a message) when no database
/// is configured.
pub fn db(test: &str) -> Option<TestDb> {
    let Ok(url) = std::env::var(URL_VAR) else {
        // Written to the process's stderr directly: the test harness captures
        // `eprintln!`, and a skip must be visible in a passing run.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED {test}: {URL_VAR} is not set. Point it at a PostgreSQL database \
             (e.g. postgres://postgres@127.0.0.1:5432/myrmex_test) or run `source .ci/postgres.sh`."
        );
        return None;
    };
    let schema = format!("t_{test}");
    let mut options = ConnectOptions::new(&url).schema(&schema);
    options.lock_timeout = Duration::from_millis(300);
    let mut c = options
        .open_session()
        .expect("connect to MYRMEX_TEST_POSTGRES_URL");
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .expect("drop an old test schema");
    Some(TestDb { options })
}

/// Runs a SQL query returning one bigint.
pub fn count(store: &mut PgStore, sql: &str) -> i64 {
    store.client().query_one(sql, &[]).expect(sql).get(0)
}

/// The database's now.
pub fn now(store: &mut PgStore) -> Timestamp {
    store.db_now().expect("now()")
}

/// Completes a claimed run with no effects.
pub fn complete(store: &mut PgStore, run: &ClaimedRun) -> Completion {
    store
        .complete(run.run, run.attempt, None, &mut |_| Ok(()))
        .expect("complete")
}

/// Makes every running lease expire now (the dead-node fast path for all nodes).
pub fn expire_all_leases(store: &mut PgStore) {
    store
        .client()
        .execute(
            "UPDATE sched_run SET lease_expires_at = now() - interval '1 millisecond' WHERE state = 'running'",
            &[],
        )
        .expect("expire leases");
}

/// A run's state as text.
pub fn state(store: &mut PgStore, run: RunId) -> String {
    store
        .client()
        .query_one("SELECT state FROM sched_run WHERE id = $1", &[&run.0])
        .expect("state")
        .get(0)
}

/// Makes every pending run claimable now (undo the lookahead).
pub fn make_due(store: &mut PgStore) {
    store
        .client()
        .execute(
            "UPDATE sched_run SET available_at = now() - interval '1 millisecond' WHERE state IN ('pending','retry_wait')",
            &[],
        )
        .expect("make due");
}
