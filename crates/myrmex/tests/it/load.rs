//! Correctness under load: bursts, concurrent callers, jobs added while running.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use myrmex::{Event, JobId, Scheduler, TriggerSpec, every};

use crate::util::{collect_until, env, scheduled, succeeded, t, wait_for};

#[test]
fn a_burst_loses_no_fire() {
    let env = env(4);
    let n = 5_000;
    let mut ids = HashSet::new();
    for _ in 0..n {
        ids.insert(
            env.scheduler
                .schedule(TriggerSpec::once(t("2026-01-01T00:00:01Z")), |_| Ok(()))
                .unwrap(),
        );
    }
    env.clock.advance(Duration::from_secs(1));
    let seen = collect_until(&env.events, n, succeeded);
    let done: HashSet<JobId> = seen
        .iter()
        .filter(|e| succeeded(e))
        .map(Event::job)
        .collect();
    assert_eq!(done, ids);
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, Event::Missed { .. } | Event::Skipped { .. }))
    );
}

#[test]
fn many_threads_schedule_and_cancel_concurrently() {
    let env = env(2);
    let scheduler: Arc<Scheduler> = Arc::new(env.scheduler);
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let s = Arc::clone(&scheduler);
            std::thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..200 {
                    let id = s
                        .schedule(every(Duration::from_secs(3600)), |_| Ok(()))
                        .unwrap();
                    if i % 2 == 0 {
                        s.cancel(id).unwrap();
                    } else {
                        kept.push(id);
                    }
                }
                kept
            })
        })
        .collect();
    let mut kept: Vec<JobId> = threads
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    kept.sort();
    let listed: Vec<JobId> = scheduler.list_jobs(None).iter().map(|s| s.id).collect();
    assert_eq!(listed, kept);
    assert_eq!(kept.len(), 800);
}

#[test]
fn jobs_added_while_running_fire_on_time() {
    let env = env(2);
    env.scheduler
        .schedule(every(Duration::from_secs(10)), |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(10));
    wait_for(&env.events, "first", succeeded);
    // Added at 00:00:10 for 00:00:13, between two fires of the other job.
    let late = env
        .scheduler
        .schedule(TriggerSpec::once(t("2026-01-01T00:00:13Z")), |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(3));
    let e = wait_for(&env.events, "added", succeeded);
    assert_eq!(
        (e.job(), scheduled(&e).unwrap()),
        (late, "2026-01-01T00:00:13Z".to_owned())
    );
}

/// Every idle worker is woken for a burst: four attempts that each wait for a
/// gate the test opens only once all four have started run at once on four
/// workers. Handed over one by one (one job due each second) and as one batch
/// (four jobs due at the same instant).
#[test]
fn a_burst_wakes_every_idle_worker() {
    for batch in [false, true] {
        let env = env(4);
        let gate = myrmex::CancellationToken::new();
        let (started_tx, started) = std::sync::mpsc::channel();
        for i in 0..4u64 {
            let (gate, started_tx) = (gate.clone(), started_tx.clone());
            let at = if batch { 1 } else { 1 + i };
            env.scheduler
                .schedule(
                    TriggerSpec::once(t("2026-01-01T00:00:00Z") + Duration::from_secs(at)),
                    move |_| {
                        let _ = started_tx.send(());
                        // A safety net only: the test opens the gate.
                        gate.wait_timeout(Duration::from_secs(60));
                        Ok(())
                    },
                )
                .unwrap();
        }
        for _ in 0..4 {
            env.clock.advance(Duration::from_secs(1));
        }
        for n in 0..4 {
            started
                .recv_timeout(Duration::from_secs(60))
                .unwrap_or_else(|e| panic!("only {n} of 4 attempts started (batch {batch}): {e}"));
        }
        gate.cancel();
        let seen = collect_until(&env.events, 4, succeeded);
        assert_eq!(seen.iter().filter(|e| succeeded(e)).count(), 4);
    }
}
