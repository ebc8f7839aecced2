//! Store throughput: `cargo bench -p myrmex-sqlite --bench store` (add `-- --quick` for a
//! shorter run).
//!
//! Prints one line per workload. SQLite figures use WAL with `synchronous=FULL` (an fsync
//! per commit) unless the line says otherwise. Every update really changes its row (a
//! distinct `updated_at`), since SQLite skips writing rows that do not change. The database
//! lives in a temporary directory under `$TMPDIR`; the first line measures that disk's raw
//! fsync rate, which bounds commits/s.

use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use myrmex_sqlite::{SqliteOptions, SqliteStore, Synchronous};
use myrmex_store::{
    Completion, JobDefinition, JobId, JobPatch, JobRecord, JobStatus, JsonFileStore,
    Materialization, MaterializeOutcome, NewRun, StartOutcome, Store, TriggerSpec, WriteOp,
};

fn t0() -> Timestamp {
    Timestamp::from_second(1_767_225_600).unwrap()
}

static TICK: AtomicI64 = AtomicI64::new(0);

/// A fresh instant for every update, so that every update changes its row.
fn now() -> Timestamp {
    t0() + SignedDuration::from_nanos(TICK.fetch_add(1, Ordering::Relaxed))
}

fn job(i: usize) -> JobRecord {
    let def = JobDefinition {
        trigger: TriggerSpec::Cron {
            expr: "*/5 * * * *".into(),
            zone: "Europe/Berlin".into(),
            dst: None,
        },
        handler: "backup".into(),
        args: serde_json::json!({ "path": format!("/srv/{i}"), "keep": 7 }),
        policies: Default::default(),
        depends_on: vec![],
    };
    JobRecord::new(format!("job-{i:06}"), def, Some(t0()), t0())
}

fn patch(k: usize) -> JobPatch {
    JobPatch {
        paused: None,
        status: Some(if k.is_multiple_of(2) {
            JobStatus::Running
        } else {
            JobStatus::Pending
        }),
    }
}

fn id(i: usize, jobs: usize) -> JobId {
    JobId::new(format!("job-{:06}", i % jobs))
}

fn fill(store: &dyn Store, n: usize) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let ops = chunk
            .iter()
            .map(|&i| WriteOp::UpsertJob(Box::new(job(i))))
            .collect();
        for r in store.apply(ops).unwrap() {
            r.unwrap();
        }
    }
}

fn sqlite(dir: &Path, name: &str, sync: Synchronous) -> SqliteStore {
    SqliteStore::open_with(dir.join(name), SqliteOptions::default().synchronous(sync)).unwrap()
}

/// Runs `work(thread)` on `threads` threads started together; returns the wall time.
fn timed_threads(threads: usize, work: impl Fn(usize) + Sync) -> Duration {
    let barrier = Barrier::new(threads + 1);
    let start = std::thread::scope(|scope| {
        for t in 0..threads {
            let (barrier, work) = (&barrier, &work);
            scope.spawn(move || {
                barrier.wait();
                work(t);
            });
        }
        barrier.wait();
        // The scope joins every thread before returning.
        Instant::now()
    });
    start.elapsed()
}

/// `threads` callers each make `per_thread` single-op `update_job` calls; updates/s.
fn concurrent_updates(store: &dyn Store, threads: usize, per_thread: usize, jobs: usize) -> f64 {
    let e = timed_threads(threads, |t| {
        for k in 0..per_thread {
            store
                .update_job(&id(t * 7919 + k, jobs), patch(k), now())
                .unwrap();
        }
    });
    (threads * per_thread) as f64 / e.as_secs_f64()
}

/// `threads` callers each apply `batches` batches of `batch` update ops; updates/s.
fn batched_updates(
    store: &dyn Store,
    threads: usize,
    batches: usize,
    batch: usize,
    jobs: usize,
) -> f64 {
    let e = timed_threads(threads, |t| {
        for b in 0..batches {
            let ops = (0..batch)
                .map(|k| WriteOp::UpdateJob {
                    job: id(t * 7919 + b * batch + k, jobs),
                    patch: patch(k),
                    now: now(),
                })
                .collect();
            for r in store.apply(ops).unwrap() {
                r.unwrap();
            }
        }
    });
    (threads * batches * batch) as f64 / e.as_secs_f64()
}

/// Full fire cycles (materialize, start attempt, complete: three writes) from `threads`
/// threads, each on its own job; fires/s.
fn fire_cycles(store: &dyn Store, threads: usize, per_thread: usize) -> f64 {
    let e = timed_threads(threads, |t| {
        let name = format!("job-{t:06}");
        let step = SignedDuration::from_secs(1);
        let mut w = t0();
        for _ in 0..per_thread {
            let m = Materialization::tick(
                name.as_str(),
                Some(w),
                Some(w + step),
                vec![NewRun::pending(w)],
                w,
            );
            let MaterializeOutcome::Committed { inserted, .. } = store.materialize(m).unwrap()
            else {
                panic!("cas")
            };
            let run = inserted[0].id;
            let StartOutcome::Started(c) = store.start_attempt(run, "bench", w, step).unwrap()
            else {
                panic!("start")
            };
            let _ = store
                .complete(run, c.attempt, Completion::success(), w)
                .unwrap();
            w += step;
        }
    });
    (threads * per_thread) as f64 / e.as_secs_f64()
}

fn raw_fsyncs(dir: &Path, n: usize) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let start = Instant::now();
    for _ in 0..n {
        f.write_all(&[0u8; 128]).unwrap();
        f.sync_data().unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// CPU time of this process so far (user + system), from /proc (Linux only).
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn line(what: &str, value: f64, unit: &str) {
    println!("{what:<66} {value:>10.0} {unit}");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 4 } else { 1 };
    let dir = tempfile::tempdir().unwrap();
    println!(
        "myrmex-sqlite store benchmark (db under {}, {} CPUs)",
        dir.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    line(
        "disk: raw write+fdatasync of 128 bytes",
        raw_fsyncs(dir.path(), 200),
        "fsyncs/s",
    );

    let s = sqlite(dir.path(), "full.db", Synchronous::Full);
    fill(&s, 10_000);
    let r = concurrent_updates(&s, 1, 400 / scale, 10_000);
    line(
        "sqlite WAL/FULL  1 thread, one commit per update",
        r,
        "commits/s",
    );
    for threads in [16, 64, 256] {
        let per = (24_000 / threads / scale).max(1);
        let r = concurrent_updates(&s, threads, per, 10_000);
        line(
            &format!("sqlite WAL/FULL  group commit: {threads} threads x single-op calls"),
            r,
            "updates/s",
        );
    }
    for threads in [4, 16] {
        let r = batched_updates(&s, threads, 400 / threads / scale, 100, 10_000);
        line(
            &format!("sqlite WAL/FULL  group commit: {threads} threads x apply(100 updates)"),
            r,
            "updates/s",
        );
    }
    s.close().unwrap();
    let s = SqliteStore::open_with(
        dir.path().join("full.db"),
        SqliteOptions::default().commit_delay(Duration::from_millis(2)),
    )
    .unwrap();
    for threads in [64, 256] {
        let per = (24_000 / threads / scale).max(1);
        let r = concurrent_updates(&s, threads, per, 10_000);
        line(
            &format!("sqlite WAL/FULL  commit_delay 2 ms: {threads} threads x single-op calls"),
            r,
            "updates/s",
        );
    }
    let r = fire_cycles(&s, 64, 60 / scale);
    line(
        "sqlite WAL/FULL  fires (materialize+start+complete), 64 threads",
        r,
        "fires/s",
    );
    s.close().unwrap();

    let s = sqlite(dir.path(), "normal.db", Synchronous::Normal);
    fill(&s, 10_000);
    let r = concurrent_updates(&s, 1, 4_000 / scale, 10_000);
    line(
        "sqlite WAL/NORMAL 1 thread, one commit per update",
        r,
        "commits/s",
    );
    let r = concurrent_updates(&s, 64, 400 / scale, 10_000);
    line(
        "sqlite WAL/NORMAL group commit: 64 threads x single-op calls",
        r,
        "updates/s",
    );
    let r = batched_updates(&s, 4, 200 / scale, 100, 10_000);
    line(
        "sqlite WAL/NORMAL group commit: 4 threads x apply(100 updates)",
        r,
        "updates/s",
    );
    s.close().unwrap();

    // Loading 100,000 jobs at start.
    let path = dir.path().join("load.db");
    let s = SqliteStore::open(&path).unwrap();
    fill(&s, 100_000);
    s.close().unwrap();
    drop(s);
    let (mut wall, mut cpu) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let (start, c0) = (Instant::now(), cpu_time());
        let s = SqliteStore::open(&path).unwrap();
        let jobs = s.list_jobs().unwrap();
        wall = wall.min(start.elapsed());
        if let (Some(a), Some(b)) = (c0, cpu_time()) {
            cpu = cpu.min(b - a);
        }
        assert_eq!(jobs.len(), 100_000);
        s.close().unwrap();
    }
    line(
        "sqlite           open + load 100,000 jobs, wall (best of 3)",
        wall.as_secs_f64() * 1e3,
        "ms",
    );
    if cpu != Duration::MAX {
        line(
            "sqlite           open + load 100,000 jobs, CPU (best of 3)",
            cpu.as_secs_f64() * 1e3,
            "ms",
        );
    }

    // The JSON file store: every commit rewrites the file.
    for jobs in [10, 100, 1_000] {
        let path = dir.path().join(format!("state-{jobs}.json"));
        let s = JsonFileStore::open(&path).unwrap();
        fill(&s, jobs);
        let n = ((4_000 / jobs).clamp(10, 200) / scale).max(5);
        let r = concurrent_updates(&s, 1, n, jobs);
        let kib = std::fs::metadata(&path).unwrap().len() / 1024;
        line(
            &format!("json file        one commit per update, {jobs} jobs ({kib} KiB file)"),
            r,
            "commits/s",
        );
    }
    let path = dir.path().join("state-load.json");
    let s = JsonFileStore::open(&path).unwrap();
    fill(&s, 10_000);
    s.close().unwrap();
    let start = Instant::now();
    let s = JsonFileStore::open(&path).unwrap();
    let n = s.list_jobs().unwrap().len();
    line(
        &format!(
            "json file        open + load {n} jobs ({} KiB file)",
            std::fs::metadata(&path).unwrap().len() / 1024
        ),
        start.elapsed().as_secs_f64() * 1e3,
        "ms",
    );
}
