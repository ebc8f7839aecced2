//! Persistence: jobs and runs in a store survive a restart; missed fires follow the
//! misfire policy; runs left running are marked interrupted and retried; unknown
//! handlers are reported and kept. All on the manual clock, with events as the only
//! synchronization (the journal writes before listeners hear of an event).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use jiff::SignedDuration;
use jiff::tz::TimeZone;
use myrmex::{
    EdgeState, Event, JobDependency, JobSpec, ManualClock, MisfirePolicy, OverlapPolicy,
    PersistError, PersistentScheduler, Readiness, Registry, RetryPolicy, Scheduler,
};
use myrmex_store::{
    AttemptOutcome, DependencyRule, DependencySpec, JobDefinition, JobRecord, Materialization,
    MaterializeOutcome, MemoryStore, NewRun, OccurrenceKey, RunFilter, RunState, StartOutcome,
    Store, TriggerSpec,
};

use crate::util::{T0, collect_until, t, wait_for};

const GRACE: Duration = Duration::from_secs(10);

fn open(
    store: &Arc<dyn Store>,
    registry: &Registry,
    now: &str,
) -> (PersistentScheduler, myrmex::LoadReport, ManualClock) {
    let clock = ManualClock::new(t(now));
    let builder = Scheduler::builder()
        .workers(2)
        .zone(TimeZone::UTC)
        .clock(clock.clone());
    let (ps, report) =
        PersistentScheduler::open(builder, Arc::clone(store), registry.clone()).expect("open");
    (ps, report, clock)
}

fn counting_registry() -> (Registry, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let mut r = Registry::new();
    let c = Arc::clone(&calls);
    r.register("count", move |_ctx, args| {
        assert_eq!(args["n"], 1, "arguments reach the handler");
        c.fetch_add(1, Ordering::SeqCst);
        Ok(())
    });
    (r, calls)
}

fn succeeded_at(e: &Event, at: &str) -> bool {
    matches!(e, Event::RunSucceeded(r) if r.scheduled_at == t(at))
}

/// A run as `(seconds after T0, state, attempt)`.
type RunRow = (i64, RunState, u32);

/// Every run of a job, as [`RunRow`]s.
fn runs(store: &Arc<dyn Store>, job: &str) -> Vec<RunRow> {
    let t0 = t(crate::util::T0);
    store
        .list_runs(&RunFilter::job(job))
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.key.scheduled_at.duration_since(t0).as_secs(),
                r.state,
                r.attempt.0,
            )
        })
        .collect()
}

fn every_10s() -> JobSpec {
    JobSpec::new(myrmex::TriggerSpec::interval(
        SignedDuration::from_secs(10),
        t("2026-01-01T00:00:10Z"),
    ))
}

#[test]
fn jobs_resume_from_their_watermark_after_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (registry, calls) = counting_registry();

    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
    assert_eq!(report, myrmex::LoadReport::default());
    let events = ps.scheduler().subscribe();
    ps.schedule("tick", every_10s(), "count", serde_json::json!({ "n": 1 }))
        .unwrap();
    let stored = store
        .get_job(&"tick".into())
        .unwrap()
        .expect("stored at once");
    assert_eq!(stored.definition.handler, "count");
    assert_eq!(stored.state.watermark, Some(t("2026-01-01T00:00:10Z")));
    ps.start().unwrap();
    clock.advance(Duration::from_secs(10));
    wait_for(&events, "first run", |e| {
        succeeded_at(e, "2026-01-01T00:00:10Z")
    });
    ps.shutdown(GRACE).unwrap();
    assert_eq!(runs(&store, "tick"), [(10, RunState::Succeeded, 1)]);
    let job = store.get_job(&"tick".into()).unwrap().unwrap();
    assert_eq!(job.state.watermark, Some(t("2026-01-01T00:00:20Z")));
    assert_eq!(job.state.run_count, 1);

    // A new process, within the misfire grace of the next fire.
    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:15Z");
    assert_eq!(report.restored.len(), 1);
    assert_eq!(report.restored[0].0, "tick");
    assert!(report.interrupted.is_empty() && report.resumed.is_empty());
    let events = ps.scheduler().subscribe();
    ps.start().unwrap();
    clock.advance(Duration::from_secs(5));
    wait_for(&events, "second run", |e| {
        succeeded_at(e, "2026-01-01T00:00:20Z")
    });
    ps.shutdown(GRACE).unwrap();
    assert_eq!(
        runs(&store, "tick"),
        [(10, RunState::Succeeded, 1), (20, RunState::Succeeded, 1)],
        "each occurrence once, none repeated by the restart"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // History retention through the store.
    let keep_one = myrmex_store::Retention {
        max_age: None,
        max_per_job: Some(1),
    };
    assert_eq!(ps.prune(keep_one).unwrap(), 1);
    assert_eq!(runs(&store, "tick"), [(20, RunState::Succeeded, 1)]);
    assert!(matches!(
        ps.schedule("tick", every_10s(), "count", serde_json::json!({ "n": 1 })),
        Err(PersistError::Scheduler(_) | PersistError::JobExists { .. })
    ));
}

#[test]
fn fires_missed_while_down_follow_the_misfire_policy() {
    use RunState::{Skipped as K, Succeeded as S};
    // Down from 00:00:15 to 00:00:55: fires at 20, 30, 40 and 50 were missed.
    let cases: [(MisfirePolicy, &[RunRow], usize); 3] = [
        (
            MisfirePolicy::RunOnce,
            &[(10, S, 1), (20, K, 0), (30, K, 0), (40, K, 0), (50, S, 1)],
            1,
        ),
        (
            MisfirePolicy::RunAll,
            &[(10, S, 1), (20, S, 1), (30, S, 1), (40, S, 1), (50, S, 1)],
            4,
        ),
        (
            MisfirePolicy::Skip,
            &[(10, S, 1), (20, K, 0), (30, K, 0), (40, K, 0), (50, K, 0)],
            0,
        ),
    ];
    for (policy, want, runs_after) in cases {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let (registry, calls) = counting_registry();
        let (ps, _, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
        let events = ps.scheduler().subscribe();
        ps.schedule(
            "tick",
            // RunAll's catch-up fires come at once: let them overlap.
            every_10s().misfire(policy).overlap(OverlapPolicy::Allow(8)),
            "count",
            serde_json::json!({ "n": 1 }),
        )
        .unwrap();
        ps.start().unwrap();
        clock.advance(Duration::from_secs(10));
        wait_for(&events, "first run", |e| {
            succeeded_at(e, "2026-01-01T00:00:10Z")
        });
        ps.shutdown(GRACE).unwrap();

        let (ps, report, _clock) = open(&store, &registry, "2026-01-01T00:00:55Z");
        assert_eq!(report.restored.len(), 1, "{policy:?}");
        let events = ps.scheduler().subscribe();
        ps.start().unwrap();
        match policy {
            MisfirePolicy::Skip => {
                wait_for(&events, "missed", |e| matches!(e, Event::Missed { .. }));
            }
            _ => {
                let mut seen = 0;
                while seen < runs_after {
                    wait_for(&events, "catch-up run", |e| {
                        matches!(e, Event::RunSucceeded(_))
                    });
                    seen += 1;
                }
            }
        }
        ps.shutdown(GRACE).unwrap();
        assert_eq!(runs(&store, "tick"), want, "{policy:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1 + runs_after, "{policy:?}");
        assert_eq!(
            store
                .get_job(&"tick".into())
                .unwrap()
                .unwrap()
                .state
                .watermark,
            Some(t("2026-01-01T00:01:00Z")),
            "{policy:?}"
        );
    }
}

/// Puts the store in the state a process killed mid-run leaves: the occurrence at 00:00:10
/// fired and its first attempt running.
fn crash_mid_run(store: &Arc<dyn Store>, registry: &Registry, retry: RetryPolicy) {
    let (ps, _, _clock) = open(store, registry, "2026-01-01T00:00:00Z");
    ps.schedule(
        "tick",
        every_10s().retry(retry),
        "count",
        serde_json::json!({ "n": 1 }),
    )
    .unwrap();
    ps.shutdown(GRACE).unwrap();
    let max_attempts = match retry {
        RetryPolicy::Fixed { max_attempts, .. } => max_attempts,
        _ => 1,
    };
    let at = t("2026-01-01T00:00:10Z");
    let out = store
        .materialize(Materialization::tick(
            "tick",
            Some(at),
            Some(t("2026-01-01T00:00:20Z")),
            vec![NewRun::pending(at).with_max_attempts(max_attempts)],
            at,
        ))
        .unwrap();
    let MaterializeOutcome::Committed { inserted, .. } = out else {
        panic!("{out:?}")
    };
    let started = store
        .start_attempt(
            inserted[0].id,
            "dead-process",
            at,
            SignedDuration::from_secs(60),
        )
        .unwrap();
    assert!(matches!(started, StartOutcome::Started(_)));
}

#[test]
fn runs_left_running_are_interrupted_and_retried() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (registry, calls) = counting_registry();
    let retry = RetryPolicy::Fixed {
        max_attempts: 3,
        delay: SignedDuration::from_secs(1),
        jitter: SignedDuration::ZERO,
    };
    crash_mid_run(&store, &registry, retry);

    let (ps, report, _clock) = open(&store, &registry, "2026-01-01T00:00:12Z");
    let key = OccurrenceKey::new("tick", t("2026-01-01T00:00:10Z"));
    assert_eq!(report.interrupted, std::slice::from_ref(&key));
    assert_eq!(report.resumed, std::slice::from_ref(&key));
    assert!(report.dead.is_empty());
    let run = store.find_run(&key).unwrap().unwrap();
    assert_eq!(
        run.state,
        RunState::Interrupted,
        "marked before anything runs"
    );
    let events = ps.scheduler().subscribe();
    ps.start().unwrap();
    wait_for(&events, "retried run", |e| {
        succeeded_at(e, "2026-01-01T00:00:10Z")
    });
    ps.shutdown(GRACE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(runs(&store, "tick"), [(10, RunState::Succeeded, 2)]);
    let history: Vec<_> = store
        .attempts(run.id)
        .unwrap()
        .into_iter()
        .map(|a| (a.attempt.0, a.outcome))
        .collect();
    assert_eq!(
        history,
        [
            (1, Some(AttemptOutcome::Interrupted)),
            (2, Some(AttemptOutcome::Succeeded))
        ]
    );
}

#[test]
fn runs_left_running_without_attempts_left_are_dead() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (registry, calls) = counting_registry();
    crash_mid_run(&store, &registry, RetryPolicy::Never);

    let (ps, report, _clock) = open(&store, &registry, "2026-01-01T00:00:12Z");
    let key = OccurrenceKey::new("tick", t("2026-01-01T00:00:10Z"));
    assert_eq!(report.dead, [key]);
    assert!(report.interrupted.is_empty() && report.resumed.is_empty());
    ps.start().unwrap();
    ps.shutdown(GRACE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(runs(&store, "tick"), [(10, RunState::Dead, 1)]);
}

#[test]
fn jobs_with_unregistered_handlers_are_reported_and_kept() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let t0 = t("2026-01-01T00:00:00Z");
    let legacy = JobRecord::new(
        "legacy",
        JobDefinition {
            trigger: TriggerSpec::Interval {
                every: SignedDuration::from_secs(10),
                anchor: t0,
                start: None,
                end: None,
            },
            handler: "gone".into(),
            args: serde_json::json!({ "x": 1 }),
            policies: Default::default(),
            depends_on: vec![],
        },
        Some(t0),
        t0,
    );
    store.upsert_job(legacy.clone()).unwrap();
    let (registry, _) = counting_registry();
    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
    assert_eq!(
        report.unregistered,
        [("legacy".to_owned(), "gone".to_owned())]
    );
    assert!(report.restored.is_empty());
    assert!(matches!(
        ps.schedule(
            "legacy",
            every_10s(),
            "count",
            serde_json::json!({ "n": 1 })
        ),
        Err(PersistError::JobExists { .. })
    ));
    assert!(matches!(
        ps.schedule("other", every_10s(), "nope", serde_json::Value::Null),
        Err(PersistError::UnknownHandler { .. })
    ));
    ps.start().unwrap();
    clock.advance(Duration::from_secs(60));
    ps.shutdown(GRACE).unwrap();
    assert_eq!(store.get_job(&"legacy".into()).unwrap(), Some(legacy));
    assert!(runs(&store, "legacy").is_empty());
}

#[test]
fn paused_jobs_stay_paused_across_a_restart() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (registry, calls) = counting_registry();
    let (ps, _, _clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
    let id = ps
        .schedule("tick", every_10s(), "count", serde_json::json!({ "n": 1 }))
        .unwrap();
    ps.scheduler().pause(id).unwrap();
    ps.shutdown(GRACE).unwrap();
    assert!(store.get_job(&"tick".into()).unwrap().unwrap().state.paused);

    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
    let id = report.restored[0].1;
    assert_eq!(
        ps.scheduler().get_job(id).unwrap().status,
        myrmex::JobStatus::Paused
    );
    ps.start().unwrap();
    clock.advance(Duration::from_secs(30));
    ps.shutdown(GRACE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

/// The same restart on the durable SQLite store, closed and reopened from its file.
#[test]
fn sqlite_store_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myrmex.db");
    let (registry, calls) = counting_registry();
    {
        let store: Arc<dyn Store> = Arc::new(myrmex_sqlite::SqliteStore::open(&path).unwrap());
        let (ps, _, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
        let events = ps.scheduler().subscribe();
        ps.schedule("tick", every_10s(), "count", serde_json::json!({ "n": 1 }))
            .unwrap();
        ps.start().unwrap();
        clock.advance(Duration::from_secs(10));
        wait_for(&events, "first run", |e| {
            succeeded_at(e, "2026-01-01T00:00:10Z")
        });
        ps.shutdown(GRACE).unwrap();
        store.close().unwrap();
    }
    let store: Arc<dyn Store> = Arc::new(myrmex_sqlite::SqliteStore::open(&path).unwrap());
    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:15Z");
    assert_eq!(report.restored.len(), 1);
    let events = ps.scheduler().subscribe();
    ps.start().unwrap();
    clock.advance(Duration::from_secs(5));
    wait_for(&events, "second run", |e| {
        succeeded_at(e, "2026-01-01T00:00:20Z")
    });
    ps.shutdown(GRACE).unwrap();
    assert_eq!(
        runs(&store, "tick"),
        [(10, RunState::Succeeded, 1), (20, RunState::Succeeded, 1)]
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    store.close().unwrap();
}

/// The child process of [`scheduler_survives_sigkill`]: a no-op unless the test binary
/// is re-executed with `MYRMEX_PERSIST_CRASH_DB` set. It runs three 20 ms interval jobs on
/// the system clock through a SQLite store and prints, after the journal wrote them,
/// `started <job> <ns>` and `done <job> <ns>`; it exits by itself after 20 s.
#[test]
fn crash_child_entry() {
    let Ok(path) = std::env::var("MYRMEX_PERSIST_CRASH_DB") else {
        return;
    };
    // Ends the line libtest started with the test's name.
    println!();
    let store: Arc<dyn Store> = Arc::new(myrmex_sqlite::SqliteStore::open(&path).unwrap());
    let mut registry = Registry::new();
    registry.register("work", |_ctx, _args| {
        // Simulated work, so that kills land in the middle of runs.
        std::thread::sleep(Duration::from_millis(3));
        Ok(())
    });
    let builder = Scheduler::builder().workers(2).zone(TimeZone::UTC);
    let (ps, report) = PersistentScheduler::open(builder, Arc::clone(&store), registry).unwrap();
    ps.scheduler().on_event(|e| match e {
        Event::RunStarted {
            job, scheduled_at, ..
        } => println!("started {} {}", job.0, scheduled_at.as_nanosecond()),
        Event::RunSucceeded(r) => println!("done {} {}", r.job.0, r.scheduled_at.as_nanosecond()),
        _ => {}
    });
    if report.restored.is_empty() {
        // In the future, so that the anchor itself is the first fire.
        let anchor = jiff::Timestamp::now() + SignedDuration::from_millis(100);
        for name in ["a", "b", "c"] {
            ps.schedule(
                name,
                JobSpec::new(myrmex::TriggerSpec::interval(
                    SignedDuration::from_millis(20),
                    anchor,
                ))
                .retry(RetryPolicy::Fixed {
                    max_attempts: 5,
                    delay: SignedDuration::from_millis(1),
                    jitter: SignedDuration::ZERO,
                }),
                "work",
                serde_json::Value::Null,
            )
            .unwrap();
        }
    }
    let names: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|n| format!("job {n} {}", ps.job_id(n).unwrap().0))
        .collect();
    for n in names {
        println!("{n}");
    }
    ps.start().unwrap();
    println!("ready");
    std::thread::sleep(Duration::from_secs(20));
    std::process::exit(0);
}

/// Kills a scheduler running persisted jobs with SIGKILL at random moments, many times;
/// after each kill the SQLite store opens, no occurrence has two runs, every fire the
/// child reported is there (the fires of each job cover its grid up to its watermark,
/// as runs or recorded skips), every run it saw finish is succeeded, and every run left
/// running is marked interrupted by the next start.
#[test]
fn scheduler_survives_sigkill() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::io::BufRead;
    use std::process::{Command, Stdio};

    const ROUNDS: usize = 12;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myrmex.db");
    let mut seed =
        u64::from(std::process::id()) ^ (jiff::Timestamp::now().as_nanosecond() as u64) | 1;
    eprintln!("persist crash test seed {seed}");
    let mut rand = |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let mut done: BTreeSet<(String, i128)> = BTreeSet::new();
    let mut started: BTreeSet<(String, i128)> = BTreeSet::new();
    let mut interrupted_total = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "persist::crash_child_entry",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("MYRMEX_PERSIST_CRASH_DB", &path)
            .stdout(Stdio::piped())
            // A child that fails before it is ready shows why.
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = std::io::BufReader::new(stdout);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(n) if n > 0 && buf.ends_with(b"\n") => {
                        let _ = tx.send(String::from_utf8_lossy(&buf).trim().to_owned());
                    }
                    _ => break,
                }
            }
        });
        let mut lines = Vec::new();
        loop {
            let l = rx.recv().expect("child reached ready");
            let ready = l == "ready";
            lines.push(l);
            if ready {
                break;
            }
        }
        // The delay is the chaos, not a synchronization.
        std::thread::sleep(Duration::from_millis(20 + rand(200)));
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut names: BTreeMap<u64, String> = BTreeMap::new();
        for l in &lines {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                ["job", name, id] => {
                    names.insert(id.parse().unwrap(), (*name).to_owned());
                }
                [kind @ ("started" | "done"), id, ns] => {
                    let key = (names[&id.parse().unwrap()].clone(), ns.parse().unwrap());
                    if *kind == "done" {
                        done.insert(key);
                    } else {
                        started.insert(key);
                    }
                }
                _ => {}
            }
        }

        let store = myrmex_sqlite::SqliteStore::open(&path).expect("store opens after a kill");
        let all = store.list_runs(&RunFilter::all()).unwrap();
        let keys: BTreeSet<(String, i128)> = all
            .iter()
            .map(|r| (r.key.job.0.clone(), r.key.scheduled_at.as_nanosecond()))
            .collect();
        assert_eq!(
            keys.len(),
            all.len(),
            "round {round}: duplicated occurrence"
        );
        for k in started.iter().chain(&done) {
            assert!(keys.contains(k), "round {round}: fire {k:?} lost");
        }
        for r in &all {
            let k = (r.key.job.0.clone(), r.key.scheduled_at.as_nanosecond());
            if done.contains(&k) {
                assert_eq!(r.state, RunState::Succeeded, "round {round}: {k:?}");
            }
        }
        for job in store.list_jobs().unwrap() {
            let myrmex_store::TriggerSpec::Interval { every, anchor, .. } = job.definition.trigger
            else {
                panic!("interval job")
            };
            let w = job.state.watermark.unwrap();
            let mut t = anchor;
            while t < w {
                assert!(
                    keys.contains(&(job.id.0.clone(), t.as_nanosecond())),
                    "round {round}: {} has no run or skip at {t} (watermark {w})",
                    job.id
                );
                t = t.checked_add(every).unwrap();
            }
        }
        let running: BTreeSet<_> = all
            .iter()
            .filter(|r| r.state == RunState::Running)
            .map(|r| r.id)
            .collect();
        let recovered: BTreeSet<_> = store
            .recover_interrupted(jiff::Timestamp::now())
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(recovered, running, "round {round}");
        for id in &running {
            let last = store.attempts(*id).unwrap().pop().unwrap();
            assert_eq!(last.outcome, Some(AttemptOutcome::Interrupted));
        }
        interrupted_total += running.len();
        store.close().unwrap();
    }
    eprintln!(
        "persist crash test: {ROUNDS} kills, {} runs started, {} finished, {interrupted_total} interrupted",
        started.len(),
        done.len()
    );
    assert!(!done.is_empty(), "the child made progress");
}

#[test]
fn finished_jobs_are_kept_and_not_rescheduled() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let (registry, calls) = counting_registry();
    let (ps, _, clock) = open(&store, &registry, "2026-01-01T00:00:00Z");
    let events = ps.scheduler().subscribe();
    ps.schedule(
        "once",
        JobSpec::new(myrmex::TriggerSpec::once(t("2026-01-01T00:00:05Z"))),
        "count",
        serde_json::json!({ "n": 1 }),
    )
    .unwrap();
    ps.start().unwrap();
    clock.advance(Duration::from_secs(5));
    wait_for(&events, "job finished", |e| {
        matches!(e, Event::JobFinished { .. })
    });
    ps.shutdown(GRACE).unwrap();
    let job = store.get_job(&"once".into()).unwrap().unwrap();
    assert_eq!(job.state.status, myrmex_store::JobStatus::Completed);

    let (ps, report, clock) = open(&store, &registry, "2026-01-01T00:00:10Z");
    assert_eq!(report.finished, ["once"]);
    assert!(report.restored.is_empty());
    ps.start().unwrap();
    clock.advance(Duration::from_secs(60));
    ps.shutdown(GRACE).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(runs(&store, "once"), [(5, RunState::Succeeded, 1)]);
}

// ---- Dependencies between persisted jobs. ----

/// [`counting_registry`] plus `fail`, a handler that always fails.
fn deps_registry() -> Registry {
    let (mut r, _) = counting_registry();
    r.register("fail", |_ctx, _args| Err("upstream failed".into()));
    r
}

fn manual() -> JobSpec {
    JobSpec::new(myrmex::TriggerSpec::Manual)
}

fn n1() -> serde_json::Value {
    serde_json::json!({ "n": 1 })
}

fn stored_deps(store: &Arc<dyn Store>, job: &str) -> Vec<(String, DependencyRule)> {
    store
        .get_job(&job.into())
        .unwrap()
        .expect("stored")
        .definition
        .depends_on
        .into_iter()
        .map(|d| (d.job.0, d.rule))
        .collect()
}

/// Where each dependency of `job` stands, by dependency name.
fn edges(ps: &PersistentScheduler, job: &str) -> Vec<(String, EdgeState)> {
    ps.explain(job)
        .unwrap()
        .dependencies
        .into_iter()
        .map(|e| (ps.job_name(e.dependency).expect("named"), e.state))
        .collect()
}

/// Declares `load` (downstream) on `extract` (must succeed) and `audit` (must finish,
/// and fails), runs `extract`, restarts a minute later on the store `reopen` gives back,
/// and runs the sources: `load` runs once, after both, in the new process. What an edge
/// had seen before the restart is not kept: `extract` has to run again.
fn dependencies_survive_a_restart_on(
    store: Arc<dyn Store>,
    reopen: impl FnOnce(Arc<dyn Store>) -> Arc<dyn Store>,
) {
    let registry = deps_registry();
    let (ps, _, _) = open(&store, &registry, T0);
    ps.schedule("extract", manual(), "count", n1()).unwrap();
    ps.schedule("audit", manual(), "fail", serde_json::Value::Null)
        .unwrap();
    let load = ps
        .schedule_with_deps(
            "load",
            manual(),
            "count",
            n1(),
            ["extract".into(), JobDependency::finished("audit")],
        )
        .unwrap();
    // A change journaled for the job keeps its dependencies in the store.
    ps.scheduler().pause(load).unwrap();
    ps.scheduler().resume(load).unwrap();
    let events = ps.scheduler().subscribe();
    ps.start().unwrap();
    let extract = ps.job_id("extract").unwrap();
    ps.scheduler().release(extract, t(T0)).unwrap();
    wait_for(
        &events,
        "extract",
        |e| matches!(e, Event::RunSucceeded(r) if r.job == extract),
    );
    ps.shutdown(GRACE).unwrap();
    let expected = [
        ("extract".to_owned(), DependencyRule::AllSuccess),
        ("audit".to_owned(), DependencyRule::AllDone),
    ];
    assert_eq!(stored_deps(&store, "load"), expected);

    let store = reopen(store);
    let (ps, report, _) = open(&store, &registry, "2026-01-01T00:01:00Z");
    assert_eq!(report.restored.len(), 3);
    assert!(report.missing_dependencies.is_empty() && report.dependency_errors.is_empty());
    assert_eq!(
        edges(&ps, "load"),
        [
            ("extract".to_owned(), EdgeState::Waiting),
            ("audit".to_owned(), EdgeState::Waiting)
        ]
    );
    let (extract, audit, load) = (
        ps.job_id("extract").unwrap(),
        ps.job_id("audit").unwrap(),
        ps.job_id("load").unwrap(),
    );
    let events = ps.scheduler().subscribe();
    ps.start().unwrap();
    let now = ps.scheduler().now();
    ps.scheduler().release(extract, now).unwrap();
    ps.scheduler().release(audit, now).unwrap();
    let seen = collect_until(
        &events,
        1,
        |e| matches!(e, Event::RunSucceeded(r) if r.job == load),
    );
    let position = |pred: &dyn Fn(&Event) -> bool| seen.iter().position(pred).expect("seen");
    let load_started = position(&|e| matches!(e, Event::RunStarted { job, .. } if *job == load));
    assert!(position(&|e| matches!(e, Event::RunSucceeded(r) if r.job == extract)) < load_started);
    assert!(position(&|e| matches!(e, Event::RunFailed(r) if r.job == audit)) < load_started);
    ps.shutdown(GRACE).unwrap();
    assert_eq!(runs(&store, "load"), [(60, RunState::Succeeded, 1)]);
    assert_eq!(
        runs(&store, "extract"),
        [(0, RunState::Succeeded, 1), (60, RunState::Succeeded, 1)]
    );
    assert_eq!(stored_deps(&store, "load"), expected);
    store.close().unwrap();
}

#[test]
fn dependencies_survive_a_restart() {
    dependencies_survive_a_restart_on(Arc::new(MemoryStore::new()), |s| s);
}

#[test]
fn dependencies_survive_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("myrmex.db");
    let store: Arc<dyn Store> = Arc::new(myrmex_sqlite::SqliteStore::open(&path).unwrap());
    dependencies_survive_a_restart_on(store, |s| {
        s.close().unwrap();
        Arc::new(myrmex_sqlite::SqliteStore::open(&path).unwrap())
    });
}

#[test]
fn dependency_cycles_and_unknown_dependencies_are_refused_before_any_write() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let registry = deps_registry();
    let (ps, _, _) = open(&store, &registry, T0);
    ps.schedule("a", manual(), "count", n1()).unwrap();
    ps.schedule_with_deps("b", manual(), "count", n1(), ["a".into()])
        .unwrap();
    ps.schedule_with_deps("c", every_10s(), "count", n1(), ["b".into()])
        .unwrap();
    // A gated job is stored with its own trigger and first fire.
    let c = store.get_job(&"c".into()).unwrap().unwrap();
    assert!(
        matches!(c.definition.trigger, TriggerSpec::Interval { .. }),
        "{c:?}"
    );
    assert_eq!(c.state.watermark, Some(t("2026-01-01T00:00:10Z")));

    let err = ps.set_dependencies("a", ["c".into()]).unwrap_err();
    assert!(
        matches!(&err, PersistError::DependencyCycle { path } if path == &["a", "c", "b", "a"]),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "dependency cycle: a -> c -> b -> a");
    assert!(stored_deps(&store, "a").is_empty());
    assert!(ps.explain("a").unwrap().dependencies.is_empty());

    let err = ps
        .schedule_with_deps("d", manual(), "count", n1(), ["d".into()])
        .unwrap_err();
    assert!(matches!(&err, PersistError::DependencyCycle { path } if path == &["d", "d"]));
    let err = ps
        .schedule_with_deps("e", manual(), "count", n1(), ["a".into(), "nope".into()])
        .unwrap_err();
    assert!(matches!(
        &err,
        PersistError::UnknownDependency { job, dependency } if job == "e" && dependency == "nope"
    ));
    for name in ["d", "e"] {
        assert_eq!(store.get_job(&name.into()).unwrap(), None, "{name}");
        assert_eq!(ps.job_id(name), None);
    }

    // Accepted changes are written.
    ps.set_dependencies("c", [JobDependency::finished("a")])
        .unwrap();
    assert_eq!(
        stored_deps(&store, "c"),
        [("a".to_owned(), DependencyRule::AllDone)]
    );
    ps.shutdown(GRACE).unwrap();
}

fn record(name: &str, trigger: TriggerSpec, deps: &[&str]) -> JobRecord {
    let t0 = t(T0);
    JobRecord::new(
        name,
        JobDefinition {
            trigger,
            handler: "count".into(),
            args: n1(),
            policies: Default::default(),
            depends_on: deps
                .iter()
                .map(|d| DependencySpec {
                    job: (*d).into(),
                    rule: DependencyRule::AllSuccess,
                })
                .collect(),
        },
        None,
        t0,
    )
}

#[test]
fn missing_dependencies_are_reported_on_load_and_block_their_jobs() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let every_10s = TriggerSpec::Interval {
        every: SignedDuration::from_secs(10),
        anchor: t("2026-01-01T00:00:10Z"),
        start: None,
        end: None,
    };
    let load = record("load", TriggerSpec::Manual, &["ghost", "extract"]);
    let gated = record("gated", every_10s, &["ghost"]);
    for rec in [
        record("extract", TriggerSpec::Manual, &[]),
        load.clone(),
        gated.clone(),
    ] {
        store.upsert_job(rec).unwrap();
    }
    let registry = deps_registry();
    let (ps, report, _) = open(&store, &registry, T0);
    assert_eq!(report.restored.len(), 3);
    let mut missing = report.missing_dependencies.clone();
    missing.sort();
    assert_eq!(
        missing,
        [
            ("gated".to_owned(), "ghost".to_owned()),
            ("load".to_owned(), "ghost".to_owned())
        ]
    );
    let e = edges(&ps, "load");
    assert_eq!(e[0].0, "ghost");
    assert!(matches!(e[0].1, EdgeState::Gone { .. }), "{e:?}");
    assert_eq!(e[1], ("extract".to_owned(), EdgeState::Waiting));
    let (load_id, gated_id) = (ps.job_id("load").unwrap(), ps.job_id("gated").unwrap());
    assert_eq!(ps.dag().readiness(load_id), Some(Readiness::Blocked));
    assert_eq!(ps.dag().readiness(gated_id), Some(Readiness::Blocked));
    assert_eq!(
        ps.scheduler().get_job(gated_id).unwrap().status,
        myrmex::JobStatus::Blocked
    );
    ps.shutdown(GRACE).unwrap();
    // Kept as they were.
    assert_eq!(store.get_job(&"load".into()).unwrap(), Some(load));
    assert_eq!(
        stored_deps(&store, "gated"),
        [("ghost".to_owned(), DependencyRule::AllSuccess)]
    );
}

#[test]
fn a_stored_dependency_cycle_is_reported_and_blocks() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    for rec in [
        record("x", TriggerSpec::Manual, &["y"]),
        record("y", TriggerSpec::Manual, &["x"]),
    ] {
        store.upsert_job(rec).unwrap();
    }
    let (ps, report, _) = open(&store, &deps_registry(), T0);
    assert_eq!(report.restored.len(), 2);
    assert_eq!(report.dependency_errors.len(), 1, "{report:?}");
    let (job, reason) = &report.dependency_errors[0];
    assert!(reason.starts_with("dependency cycle: "), "{reason}");
    let id = ps.job_id(job).unwrap();
    assert_eq!(ps.dag().readiness(id), Some(Readiness::Blocked));
    ps.shutdown(GRACE).unwrap();
}

/// A dependency cancelled before the restart is in the store but not restored: its
/// dependents block on it, as they did before the restart, without a missing entry.
#[test]
fn a_dependency_that_ended_before_the_restart_still_blocks() {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    let registry = deps_registry();
    let (ps, _, _) = open(&store, &registry, T0);
    ps.schedule("a", manual(), "count", n1()).unwrap();
    let b = ps
        .schedule_with_deps("b", manual(), "count", n1(), ["a".into()])
        .unwrap();
    ps.cancel("a").unwrap();
    assert_eq!(ps.dag().readiness(b), Some(Readiness::Blocked));
    ps.shutdown(GRACE).unwrap();

    let (ps, report, _) = open(&store, &registry, T0);
    assert_eq!(report.finished, ["a"]);
    assert!(report.missing_dependencies.is_empty());
    let b = ps.job_id("b").unwrap();
    assert_eq!(ps.dag().readiness(b), Some(Readiness::Blocked));
    let e = edges(&ps, "b");
    assert!(
        matches!(e.as_slice(), [(name, EdgeState::Gone { .. })] if name == "a"),
        "{e:?}"
    );
    ps.shutdown(GRACE).unwrap();
}
