//! The chaos test (design §9.1): three node processes on one database, a mixed
//! workload, SIGKILL/SIGSTOP/terminated sessions, then the invariants I1-I8 in SQL.
//!
//! Duration: `MYRMEX_CHAOS_SECS` (default 60 s when `CI` is set, 30 s otherwise).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use myrmex_postgres::{JobSpec, MisfirePolicy, OverlapPolicy, PgStore, StageSpec, Trigger};

use crate::common::{count, db, now};

/// Progress and results go to the process's stderr directly, so they show in a
/// passing run too (the harness captures `eprintln!`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

const LEASE_MS: i64 = 2000;
const POLL_MS: u64 = 500;
const NODES: usize = 3;

/// A tiny deterministic generator (xorshift), so a failing run can be replayed
/// with `MYRMEX_CHAOS_SEED`.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

struct Cluster {
    url: String,
    schema: String,
    procs: Vec<Option<Child>>,
    generation: Vec<u32>,
    stopped: Vec<bool>,
}

impl Cluster {
    fn node_id(&self, i: usize) -> String {
        format!("node{i}-g{}", self.generation[i])
    }

    fn start(&mut self, i: usize) {
        self.generation[i] += 1;
        let child = Command::new(env!("CARGO_BIN_EXE_myrmex-postgres-node"))
            .args(["--url", &self.url, "--schema", &self.schema])
            .args(["--node-id", &self.node_id(i), "--workers", "8"])
            .args(["--poll-ms", &POLL_MS.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn a node");
        self.procs[i] = Some(child);
        self.stopped[i] = false;
    }

    fn signal(&self, i: usize, sig: &str) {
        if let Some(c) = &self.procs[i] {
            let _ = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status();
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.procs[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            if self.stopped[i] {
                self.signal(i, "-CONT");
            }
            self.kill(i);
        }
    }
}

/// The node holding the most leases (waiting a little for one to hold any), so the
/// first freeze is sure to leave runs for others to rescue.
fn busiest(store: &mut PgStore, cluster: &Cluster) -> Option<usize> {
    for _ in 0..50 {
        let row = store
            .client()
            .query_opt(
                "SELECT lease_owner FROM sched_run WHERE state = 'running'
                 GROUP BY lease_owner ORDER BY count(*) DESC LIMIT 1",
                &[],
            )
            .expect("find the busiest node");
        if let Some(owner) = row.and_then(|r| r.get::<_, Option<String>>(0)) {
            return (0..NODES).find(|i| cluster.node_id(*i) == owner);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits (up to a generous deadline) until `node` holds no lease: every run it was
/// running has been rescued by another node.
fn until_rescued(store: &mut PgStore, node: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let held: i64 = store
            .client()
            .query_one(
                "SELECT count(*) FROM sched_run WHERE state = 'running' AND lease_owner = $1",
                &[&node],
            )
            .expect("count the leases of a frozen node")
            .get(0);
        if held == 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    say!("chaos: {node} still holds leases after 60 s frozen");
}

fn event(store: &mut PgStore, node: &str, kind: &str) {
    store
        .client()
        .execute(
            "INSERT INTO chaos_event (node_id, kind, at) VALUES ($1, $2, now())",
            &[&node, &kind],
        )
        .expect("record a chaos event");
}

fn work(min_ms: u64, max_ms: u64) -> serde_json::Value {
    serde_json::json!({ "min_ms": min_ms, "max_ms": max_ms })
}

/// Creates the workload; returns `(job name, grid step in ms)` for the grid checks.
fn workload(store: &mut PgStore) -> (Vec<(String, i64)>, jiff::Timestamp) {
    let start = now(store) + SignedDuration::from_secs(2);
    let mut out = Vec::new();
    let mut add = |store: &mut PgStore, mut spec: JobSpec, step_ms: i64| {
        spec.start = Some(start);
        spec.lease_ttl = SignedDuration::from_millis(LEASE_MS);
        spec.max_attempts = 50;
        spec.retry_backoff = SignedDuration::from_millis(100);
        spec.misfire = MisfirePolicy::FireAll;
        spec.max_catchup = 10_000;
        out.push((spec.name.clone(), step_ms));
        store.create_job(&spec).expect("create a chaos job");
    };
    for (i, (every_ms, min, max)) in [
        (500, 20, 200),
        (1000, 20, 400),
        (1000, 50, 800),
        (1500, 20, 300),
        (2000, 100, 1500),
        (3000, 20, 1000),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = JobSpec::new(
            &format!("interval{i}"),
            "work",
            Trigger::every(SignedDuration::from_millis(every_ms)),
        );
        s.payload = work(min, max);
        add(store, s, every_ms);
    }
    for (name, expr, step) in [
        ("cron1s", "* * * * * *", 1000),
        ("cron2s", "*/2 * * * * *", 2000),
    ] {
        let mut s = JobSpec::new(name, "work", Trigger::cron(expr, "UTC"));
        s.payload = work(20, 300);
        add(store, s, step);
    }
    for i in 0..2 {
        let mut s = JobSpec::new(
            &format!("serial{i}"),
            "work",
            Trigger::every(SignedDuration::from_millis(2000)),
        );
        s.overlap = OverlapPolicy::Serial;
        s.payload = work(1000, 2600);
        add(store, s, 2000);
    }
    let mut p = JobSpec::new(
        "pipeline",
        "",
        Trigger::every(SignedDuration::from_millis(2000)),
    );
    p.payload = work(20, 400);
    p.pipeline = vec![
        StageSpec::new("a", "work", &[]),
        StageSpec::new("b", "work", &["a"]),
        StageSpec::new("c", "work", &["a"]),
        StageSpec::new("d", "work", &["b", "c"]),
    ];
    add(store, p, 2000);
    (out, start)
}

fn q(store: &mut PgStore, sql: &str) -> Vec<postgres::Row> {
    store
        .client()
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[test]
fn chaos_three_nodes_keep_every_invariant() {
    let Some(t) = db("chaos") else { return };
    let secs: u64 = std::env::var("MYRMEX_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if std::env::var_os("CI").is_some() {
            60
        } else {
            30
        });
    let seed: u64 = std::env::var("MYRMEX_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    let mut rng = Rng(seed | 1);
    let mut store = t.store("orchestrator");
    store
        .client()
        .batch_execute(
            "CREATE TABLE effect (job_id bigint NOT NULL, scheduled_at timestamptz NOT NULL, stage text NOT NULL,
               attempt int NOT NULL, node_id text NOT NULL, committed_at timestamptz NOT NULL);
             CREATE INDEX effect_key ON effect (job_id, scheduled_at, stage);
             CREATE TABLE chaos_event (node_id text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL);
             CREATE TABLE chaos_grid (name text PRIMARY KEY, step_ms bigint NOT NULL, first timestamptz);",
        )
        .unwrap();
    // Every grid here is `k·step` from the Unix epoch; the first occurrence is the
    // first grid point at or after the start.
    let (jobs, start) = workload(&mut store);
    for (name, step) in jobs {
        store
            .client()
            .execute(
                "INSERT INTO chaos_grid VALUES ($1, $2::bigint,
                   to_timestamp(ceil(extract(epoch FROM $3::timestamptz) * 1000 / $2::bigint) * $2::bigint / 1000.0))",
                &[&name, &step, &start],
            )
            .unwrap();
    }
    let mut cluster = Cluster {
        url: t.options.url.clone(),
        schema: t.options.schema.clone(),
        procs: (0..NODES).map(|_| None).collect(),
        generation: vec![0; NODES],
        stopped: vec![false; NODES],
    };
    for i in 0..NODES {
        cluster.start(i);
    }
    say!("chaos: {secs} s, seed {seed}, schema {}", t.options.schema);

    let end = Instant::now() + Duration::from_secs(secs);
    let mut n_events = 0;
    let (mut kills, mut stops, mut terminated) = (0, 0, 0);
    std::thread::sleep(Duration::from_secs(3));
    while Instant::now() < end {
        let mut i = rng.range(0, NODES as u64 - 1) as usize;
        if n_events == 0 {
            i = busiest(&mut store, &cluster).unwrap_or(i);
        }
        let node = cluster.node_id(i);
        // The first event is always a freeze, so the zombie path is exercised even
        // in short local runs.
        let roll = if n_events == 0 { 70 } else { rng.range(0, 99) };
        n_events += 1;
        if roll < 60 {
            event(&mut store, &node, "kill");
            cluster.kill(i);
            kills += 1;
            std::thread::sleep(Duration::from_millis(rng.range(200, 3000)));
            cluster.start(i);
        } else if roll < 80 {
            event(&mut store, &node, "stop");
            cluster.signal(i, "-STOP");
            cluster.stopped[i] = true;
            stops += 1;
            std::thread::sleep(Duration::from_millis(
                rng.range(LEASE_MS as u64 * 12 / 10, LEASE_MS as u64 * 25 / 10),
            ));
            if n_events == 1 {
                // The first freeze lasts until the other nodes have taken over every
                // lease of the frozen one: its workers then finish as zombies and
                // their completions must be fenced (I5). A fixed freeze is not enough
                // on a loaded machine, where the rescue can come after it.
                until_rescued(&mut store, &node);
            }
            cluster.signal(i, "-CONT");
            cluster.stopped[i] = false;
            event(&mut store, &node, "cont");
        } else {
            // Only this cluster's node sessions (`myrmex/<schema>/<node>`, set by the
            // node binary): other tests run in the same process on other schemas.
            let prefix = format!("myrmex/{}/", cluster.schema);
            let n = store
                .client()
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE left(application_name, length($1)) = $1 AND pid <> pg_backend_pid()
                       AND random() < 0.3",
                    &[&prefix],
                )
                .unwrap();
            event(&mut store, "*", "terminate");
            terminated += n;
        }
        std::thread::sleep(Duration::from_millis(rng.range(2000, 5000)));
    }

    // Pause every job (freezing each watermark), then drain.
    store
        .client()
        .execute("UPDATE sched_job SET paused = true", &[])
        .unwrap();
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let left = count(
            &mut store,
            "SELECT count(*) FROM sched_run WHERE state NOT IN ('succeeded','failed','dead','skipped','cancelled')",
        );
        if left == 0 || Instant::now() > drain_deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(cluster);
    say!("chaos: {kills} kills, {stops} freezes, {terminated} sessions terminated");

    // I1 no gaps: every grid point from the first occurrence to below the frozen
    // watermark has a run.
    let gaps = q(
        &mut store,
        "SELECT j.name, count(*) FROM sched_job j JOIN chaos_grid g ON g.name = j.name
         CROSS JOIN LATERAL generate_series(g.first, j.next_fire_at - g.step_ms * interval '1 ms',
                                            g.step_ms * interval '1 ms') AS s(t)
         WHERE NOT EXISTS (SELECT 1 FROM sched_run r WHERE r.job_id = j.id AND r.scheduled_at = s.t)
         GROUP BY j.name",
    );
    let gaps: Vec<(String, i64)> = gaps.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(gaps.is_empty(), "I1 gaps: {gaps:?}");
    let runs = count(&mut store, "SELECT count(*) FROM sched_run");
    assert!(runs > 0);
    // The grid's first point is the first one at or after the creation start.
    // I2 no duplicates, no strays: one row per key (UNIQUE), on the grid, below the watermark.
    let strays = count(
        &mut store,
        "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id JOIN chaos_grid g ON g.name = j.name
         WHERE r.scheduled_at >= j.next_fire_at OR r.scheduled_at < g.first
            OR (extract(epoch FROM r.scheduled_at) * 1000)::bigint % g.step_ms <> 0",
    );
    assert_eq!(strays, 0, "I2 strays");
    let bad_instances = count(
        &mut store,
        "SELECT count(*) FROM (SELECT scheduled_at FROM sched_run r JOIN sched_job j ON j.id = r.job_id
           WHERE j.name = 'pipeline' GROUP BY scheduled_at HAVING count(*) <> 4) x",
    );
    assert_eq!(
        bad_instances, 0,
        "I2: a pipeline instance without exactly four stages"
    );

    // I3 none lost or stuck.
    let not_ok = q(
        &mut store,
        "SELECT state, count(*) FROM sched_run WHERE state <> 'succeeded' GROUP BY state",
    );
    let not_ok: Vec<(String, i64)> = not_ok.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert!(not_ok.is_empty(), "I3 runs not succeeded: {not_ok:?}");

    // I4 effectively once: exactly one effect per run, none for anything else.
    let dup_effects = count(
        &mut store,
        "SELECT count(*) FROM (SELECT 1 FROM effect GROUP BY job_id, scheduled_at, stage HAVING count(*) > 1) x",
    );
    let orphan_effects = count(
        &mut store,
        "SELECT count(*) FROM effect e WHERE NOT EXISTS (SELECT 1 FROM sched_run r
           WHERE r.job_id = e.job_id AND r.scheduled_at = e.scheduled_at AND r.stage = e.stage)",
    );
    let missing_effects = count(
        &mut store,
        "SELECT count(*) FROM sched_run r WHERE NOT EXISTS (SELECT 1 FROM effect e
           WHERE r.job_id = e.job_id AND r.scheduled_at = e.scheduled_at AND r.stage = e.stage)",
    );
    assert_eq!(
        (dup_effects, orphan_effects, missing_effects),
        (0, 0, 0),
        "I4"
    );

    // I5 fencing: every effect carries the run's final attempt; zombies were refused.
    let stale_effects = count(
        &mut store,
        "SELECT count(*) FROM effect e JOIN sched_run r
           ON r.job_id = e.job_id AND r.scheduled_at = e.scheduled_at AND r.stage = e.stage
         WHERE e.attempt <> r.attempt",
    );
    assert_eq!(stale_effects, 0, "I5 effects from a stale attempt");
    let fenced = count(
        &mut store,
        "SELECT count(*) FROM sched_attempt WHERE outcome = 'fenced'",
    );
    assert!(
        fenced > 0,
        "I5: no zombie completion was refused ({stops} freezes)"
    );

    // I6 mutual exclusion of serial jobs: successful attempts never overlap.
    let overlaps = count(
        &mut store,
        "WITH ok AS (SELECT r.job_id, a.started_at, a.finished_at FROM sched_attempt a
                       JOIN sched_run r ON r.id = a.run_id JOIN sched_job j ON j.id = r.job_id
                     WHERE j.overlap_policy = 'serial' AND a.outcome = 'ok')
         SELECT count(*) FROM ok x JOIN ok y ON x.job_id = y.job_id AND x.started_at < y.started_at
         WHERE y.started_at < x.finished_at",
    );
    assert_eq!(overlaps, 0, "I6 overlapping serial runs");

    // I7 DAG order: no attempt of a stage started before its dependencies finished.
    let early = count(
        &mut store,
        "SELECT count(*) FROM sched_run_dep d JOIN sched_attempt a ON a.run_id = d.run_id
           JOIN sched_run p ON p.id = d.dep_run_id
         WHERE p.finished_at IS NULL OR a.started_at < p.finished_at",
    );
    assert_eq!(early, 0, "I7 a stage started before its parents finished");

    // I8 liveness: start lateness of first attempts, recovery after failures.
    let lateness = q(
        &mut store,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), count(*)
         FROM (SELECT extract(epoch FROM a.started_at - r.scheduled_at) * 1000 AS ms
               FROM sched_run r JOIN sched_job j ON j.id = r.job_id
               JOIN sched_attempt a ON a.run_id = r.id AND a.attempt = 1
               WHERE j.overlap_policy = 'allow' AND r.stage IN ('', 'a') AND r.attempt = 1) x",
    );
    let recovery = q(
        &mut store,
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms), count(*)
         FROM (SELECT (extract(epoch FROM a.started_at - (
                 SELECT max(e.at) FROM chaos_event e WHERE e.node_id = prev.node_id AND e.kind IN ('kill','stop')
                   AND e.at BETWEEN prev.started_at AND a.started_at)) * 1000)::float8 AS ms
               FROM sched_attempt a JOIN sched_attempt prev ON prev.run_id = a.run_id AND prev.attempt = a.attempt - 1
               WHERE a.rescued_lease_expired_at IS NOT NULL) x WHERE ms IS NOT NULL",
    );
    let unexplained = count(
        &mut store,
        "SELECT count(*) FROM sched_attempt a
           JOIN sched_attempt prev ON prev.run_id = a.run_id AND prev.attempt = a.attempt - 1
         WHERE a.rescued_lease_expired_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM chaos_event e
           WHERE e.node_id = prev.node_id AND e.kind IN ('kill','stop') AND e.at BETWEEN prev.started_at AND a.started_at)",
    );
    let f = |r: &postgres::Row, i| r.get::<_, Option<f64>>(i).unwrap_or(f64::NAN);
    let (l50, l99, ln) = (
        f(&lateness[0], 0),
        f(&lateness[0], 1),
        lateness[0].get::<_, i64>(2),
    );
    let (r50, rmax, rn) = (
        f(&recovery[0], 0),
        f(&recovery[0], 1),
        recovery[0].get::<_, i64>(2),
    );
    say!(
        "chaos: {runs} runs; fenced completions {fenced}; lateness p50 {l50:.0} ms p99 {l99:.0} ms (n={ln}); \
         recovery after kill/freeze p50 {r50:.0} ms = {:.2} leases, max {rmax:.0} ms = {:.2} leases (n={rn}); \
         rescues without a kill/freeze {unexplained}",
        r50 / LEASE_MS as f64,
        rmax / LEASE_MS as f64
    );
    // Liveness, not speed: a rescued run waited at most a lease, a heartbeat gap and
    // a poll or two, with a wide margin for a loaded CI machine (a run never rescued
    // fails I3).
    if rn > 0 {
        assert!(
            rmax < (3 * LEASE_MS) as f64 + 20_000.0,
            "I8 recovery took {rmax} ms"
        );
    }
}
