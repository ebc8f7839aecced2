//! Cluster benchmark (needs `MYRMEX_TEST_POSTGRES_URL`): `cargo bench -p myrmex-postgres`.
//!
//! 1. Runs materialized per second and runs claimed + completed per second, three
//!    sessions ("nodes") working concurrently on a backlog.
//! 2. Start lateness (p50/p99) of three node processes with the NOTIFY hint.
//! 3. Recovery time after `kill -9` of the node holding a run, as a multiple of the lease.
//!
//! Sizes: `MYRMEX_BENCH_JOBS` (default 300 jobs × 30 backlog occurrences),
//! `MYRMEX_BENCH_LATENESS_SECS` (default 20), `MYRMEX_BENCH_KILLS` (default 5).

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use myrmex_postgres::{ConnectOptions, JobSpec, MisfirePolicy, PgStore, StageSpec, Trigger};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fresh(url: &str, schema: &str) -> ConnectOptions {
    let options = ConnectOptions::new(url).schema(schema);
    let mut c = options.open_session().expect("connect");
    c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .expect("drop schema");
    options
}

fn one(store: &mut PgStore, sql: &str) -> f64 {
    store
        .client()
        .query_one(sql, &[])
        .expect(sql)
        .get::<_, Option<f64>>(0)
        .unwrap_or(f64::NAN)
}

fn throughput(url: &str) {
    let jobs = env_or("MYRMEX_BENCH_JOBS", 300);
    let backlog = 30;
    let options = fresh(url, "bench_throughput");
    let mut admin = PgStore::connect(&options).expect("connect");
    let start = admin.db_now().unwrap() - SignedDuration::from_secs(backlog);
    for i in 0..jobs {
        let mut spec = JobSpec::new(
            &format!("j{i}"),
            "noop",
            Trigger::every(SignedDuration::from_secs(1)),
        );
        spec.start = Some(start);
        spec.misfire = MisfirePolicy::FireAll;
        spec.misfire_grace = SignedDuration::from_secs(3600);
        admin.create_job(&spec).unwrap();
    }
    // Occurrences keep coming due while the backlog is materialized: the phase stops
    // at the backlog that existed when it began.
    let target = one(
        &mut admin,
        "SELECT sum(floor(extract(epoch FROM now() - next_fire_at)) + 1)::float8 FROM sched_job",
    ) as usize;
    let phase = |work: fn(&mut PgStore) -> usize, limit: usize| -> (usize, Duration) {
        let barrier = Arc::new(Barrier::new(3));
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t0 = Instant::now();
        let handles: Vec<_> = (0..3)
            .map(|n| {
                let (o, b, done) = (
                    options.clone().node_id(&format!("bench{n}")),
                    barrier.clone(),
                    done.clone(),
                );
                std::thread::spawn(move || {
                    let mut s = PgStore::connect(&o).expect("connect");
                    b.wait();
                    let mut total = 0;
                    loop {
                        let k = work(&mut s);
                        total += k;
                        let all = done.fetch_add(k, std::sync::atomic::Ordering::SeqCst) + k;
                        if k == 0 || all >= limit {
                            return total;
                        }
                    }
                })
            })
            .collect();
        let n = handles.into_iter().map(|h| h.join().unwrap()).sum();
        (n, t0.elapsed())
    };
    let (made, t_made) = phase(|s| s.materialize(Duration::ZERO).unwrap().inserted, target);
    let (done, t_done) = phase(
        |s| {
            let runs = s.claim(100).unwrap();
            for r in &runs {
                s.complete(r.run, r.attempt, None, &mut |_| Ok(())).unwrap();
            }
            runs.len()
        },
        usize::MAX,
    );
    println!(
        "| runs materialized / s (3 sessions, {jobs} jobs) | {:.0} ({made} runs in {:.2} s) |",
        made as f64 / t_made.as_secs_f64(),
        t_made.as_secs_f64()
    );
    println!(
        "| runs claimed + completed / s (3 sessions, batches of 100) | {:.0} ({done} runs in {:.2} s) |",
        done as f64 / t_done.as_secs_f64(),
        t_done.as_secs_f64()
    );
}

struct Nodes(Vec<Child>);
impl Drop for Nodes {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn node(url: &str, schema: &str, id: &str, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_myrmex-postgres-node"))
        .args([
            "--url",
            url,
            "--schema",
            schema,
            "--node-id",
            id,
            "--workers",
            "8",
        ])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn a node")
}

fn effect_table(store: &mut PgStore) {
    store
        .client()
        .batch_execute(
            "CREATE TABLE effect (job_id bigint NOT NULL, scheduled_at timestamptz NOT NULL, stage text NOT NULL,
               attempt int NOT NULL, node_id text NOT NULL, committed_at timestamptz NOT NULL)",
        )
        .unwrap();
}

fn lateness(url: &str, listen: bool) {
    let secs = env_or("MYRMEX_BENCH_LATENESS_SECS", 20);
    let schema = if listen {
        "bench_lateness"
    } else {
        "bench_lateness_poll"
    };
    let options = fresh(url, schema);
    let mut admin = PgStore::connect(&options).expect("connect");
    effect_table(&mut admin);
    let start = admin.db_now().unwrap() + SignedDuration::from_secs(2);
    for i in 0..20 {
        let every = SignedDuration::from_millis(500 + 100 * (i % 6));
        let mut spec = JobSpec::new(&format!("j{i}"), "work", Trigger::every(every));
        spec.start = Some(start);
        spec.payload = serde_json::json!({"min_ms": 5, "max_ms": 50});
        admin.create_job(&spec).unwrap();
    }
    for i in 0..3 {
        let mut p = JobSpec::new(
            &format!("p{i}"),
            "",
            Trigger::every(SignedDuration::from_secs(1)),
        );
        p.start = Some(start);
        p.payload = serde_json::json!({"min_ms": 5, "max_ms": 20});
        p.pipeline = vec![
            StageSpec::new("a", "work", &[]),
            StageSpec::new("b", "work", &["a"]),
            StageSpec::new("c", "work", &["a"]),
            StageSpec::new("d", "work", &["b", "c"]),
        ];
        admin.create_job(&p).unwrap();
    }
    let extra: &[&str] = if listen { &[] } else { &["--no-listen"] };
    let nodes = Nodes(
        (0..3)
            .map(|i| node(url, schema, &format!("late{i}"), extra))
            .collect(),
    );
    std::thread::sleep(Duration::from_secs(secs + 2));
    admin
        .client()
        .execute("UPDATE sched_job SET paused = true", &[])
        .unwrap();
    drop(nodes);
    let sql = |p: f64| {
        format!(
            "SELECT percentile_cont({p}) WITHIN GROUP (ORDER BY extract(epoch FROM a.started_at - r.scheduled_at) * 1000)
             FROM sched_run r JOIN sched_attempt a ON a.run_id = r.id AND a.attempt = 1 WHERE r.stage IN ('', 'a')"
        )
    };
    let dep_sql = |p: f64| {
        format!(
            "SELECT percentile_cont({p}) WITHIN GROUP (ORDER BY ms) FROM (
               SELECT extract(epoch FROM a.started_at - max(p.finished_at)) * 1000 AS ms
               FROM sched_run_dep d JOIN sched_run p ON p.id = d.dep_run_id
               JOIN sched_attempt a ON a.run_id = d.run_id AND a.attempt = 1
               GROUP BY d.run_id, a.started_at) x"
        )
    };
    let n = one(
        &mut admin,
        "SELECT count(*)::float8 FROM sched_run r JOIN sched_attempt a ON a.run_id = r.id AND a.attempt = 1
         WHERE r.stage IN ('', 'a')",
    );
    let hint = if listen {
        "NOTIFY hint"
    } else {
        "polling only, 1 s"
    };
    println!(
        "| start lateness p50 / p99 (3 nodes, 23 jobs at 0.5-1 s, {secs} s, {hint}) | {:.1} ms / {:.1} ms (n = {n}) |",
        one(&mut admin, &sql(0.5)),
        one(&mut admin, &sql(0.99))
    );
    println!(
        "| pipeline stage start after its last parent finished, p50 / p99 ({hint}) | {:.1} ms / {:.1} ms |",
        one(&mut admin, &dep_sql(0.5)),
        one(&mut admin, &dep_sql(0.99))
    );
}

fn recovery(url: &str) {
    let kills = env_or("MYRMEX_BENCH_KILLS", 5);
    let lease_ms = 2000;
    let schema = "bench_recovery";
    let options = fresh(url, schema);
    let mut admin = PgStore::connect(&options).expect("connect");
    effect_table(&mut admin);
    let mut nodes = Nodes(
        (0..3)
            .map(|i| node(url, schema, &format!("rec{i}-0"), &[]))
            .collect(),
    );
    let mut samples = Vec::new();
    for k in 0..kills {
        let mut spec = JobSpec::new(&format!("long{k}"), "work", Trigger::Manual);
        spec.lease_ttl = SignedDuration::from_millis(lease_ms);
        spec.payload = serde_json::json!({"min_ms": 4000, "max_ms": 4000});
        let job = admin.create_job(&spec).unwrap();
        let run = admin.trigger_now(job, None).unwrap().unwrap();
        // Wait until a node holds it, then kill that node.
        let owner: String = loop {
            let row = admin
                .client()
                .query_one("SELECT lease_owner FROM sched_run WHERE id = $1", &[&run.0])
                .unwrap();
            if let Some(o) = row.get::<_, Option<String>>(0) {
                break o;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let i: usize = owner[3..4].parse().unwrap();
        let killed_at = admin.db_now().unwrap();
        let _ = nodes.0[i].kill();
        let _ = nodes.0[i].wait();
        nodes.0[i] = node(url, schema, &format!("rec{i}-{}", k + 1), &[]);
        let restarted: jiff::Timestamp = loop {
            let row = admin
                .client()
                .query_one(
                    "SELECT started_at FROM sched_attempt WHERE run_id = $1 AND attempt = 2",
                    &[&run.0],
                )
                .unwrap_or_else(|_| {
                    admin
                        .client()
                        .query_one("SELECT NULL::timestamptz", &[])
                        .unwrap()
                });
            if let Some(t) = row.get::<_, Option<jiff::Timestamp>>(0) {
                break t;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        samples.push(restarted.duration_since(killed_at).as_secs_f64() * 1000.0);
    }
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    println!(
        "| recovery after kill -9 (lease {:.1} s, {kills} kills) | median {:.0} ms = {:.2} × lease, max {:.0} ms = {:.2} × lease |",
        lease_ms as f64 / 1000.0,
        median,
        median / lease_ms as f64,
        max,
        max / lease_ms as f64
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs it too: skip there.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Ok(url) = std::env::var("MYRMEX_TEST_POSTGRES_URL") else {
        eprintln!(
            "SKIPPED: MYRMEX_TEST_POSTGRES_URL is not set; the cluster benchmark needs PostgreSQL"
        );
        return;
    };
    println!("| measure | result |\n|---|---|");
    throughput(&url);
    lateness(&url, true);
    lateness(&url, false);
    recovery(&url);
}
