//! Dependencies on the runtime: downstream and gated jobs, failure propagation
//! and recovery, cycle rejection, explanations. Manual clock, no sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use myrmex::{
    Dag, DagError, Dependency, EdgeState, Event, JobId, JobStatus, Outcome, Readiness, Reason,
    TriggerSpec, every,
};

use crate::util::{T0, collect_until, env, settle, t, wait_for};

fn ok() -> impl Fn(&myrmex::RunContext) -> Result<(), myrmex::JobError> + Send + Sync + 'static {
    |_| Ok(())
}

fn ended(job: JobId) -> impl Fn(&Event) -> bool {
    move |e| e.report().is_some_and(|r| r.job == job)
}

/// The position of the first event matching `pred`.
fn pos(events: &[Event], pred: impl Fn(&Event) -> bool) -> usize {
    events
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("event not found in {events:#?}"))
}

fn started(job: JobId) -> impl Fn(&Event) -> bool {
    move |e| matches!(e, Event::RunStarted { job: j, .. } if *j == job)
}

#[test]
fn diamond_runs_each_job_once_per_round_in_dependency_order() {
    let env = env(4);
    let dag = Dag::attach(&env.scheduler);
    let a = dag.schedule(TriggerSpec::Manual, [], ok()).unwrap();
    let b = dag.schedule(TriggerSpec::Manual, [a.into()], ok()).unwrap();
    let c = dag.schedule(TriggerSpec::Manual, [a.into()], ok()).unwrap();
    let d = dag
        .schedule(TriggerSpec::Manual, [b.into(), c.into()], ok())
        .unwrap();
    assert_eq!(dag.readiness(d), Some(Readiness::Waiting));

    for round in 1..=2u32 {
        env.scheduler.release(a, env.scheduler.now()).unwrap();
        let seen = collect_until(&env.events, 1, ended(d));
        assert!(pos(&seen, ended(b)) < pos(&seen, started(d)));
        assert!(pos(&seen, ended(c)) < pos(&seen, started(d)));
        settle(&env);
        for j in [a, b, c, d] {
            assert_eq!(env.scheduler.get_job(j).unwrap().run_count, round, "{j}");
        }
    }
}

#[test]
fn wide_dag_fans_out_and_back_in() {
    let env = env(4);
    let dag = Dag::attach(&env.scheduler);
    let ran = Arc::new(AtomicUsize::new(0));
    let root = dag.schedule(TriggerSpec::Manual, [], ok()).unwrap();
    let middle: Vec<Dependency> = (0..300)
        .map(|_| {
            let ran = Arc::clone(&ran);
            dag.schedule(TriggerSpec::Manual, [root.into()], move |_| {
                ran.fetch_add(1, Ordering::Relaxed);
                Ok(())
            })
            .unwrap()
            .into()
        })
        .collect();
    let ran_at_sink = Arc::new(AtomicUsize::new(usize::MAX));
    let seen = Arc::clone(&ran_at_sink);
    let count = Arc::clone(&ran);
    let sink = dag
        .schedule(TriggerSpec::Manual, middle, move |_| {
            seen.store(count.load(Ordering::Relaxed), Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    env.scheduler.release(root, env.scheduler.now()).unwrap();
    wait_for(&env.events, "sink ran", ended(sink));
    assert_eq!(ran_at_sink.load(Ordering::Relaxed), 300);
    assert_eq!(env.scheduler.get_job(sink).unwrap().run_count, 1);
}

/// A gated job (own trigger) whose dependency fails is blocked, naming it; its
/// fire waits and runs once the dependency succeeds again.
#[test]
fn failure_blocks_a_gated_job_until_the_dependency_recovers() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let attempts = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&attempts);
    let upstream = dag
        .schedule(TriggerSpec::Manual, [], move |_| {
            if n.fetch_add(1, Ordering::SeqCst) == 0 {
                Err("source unavailable".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    let report = dag
        .schedule(every(Duration::from_secs(60)), [upstream.into()], ok())
        .unwrap();

    env.scheduler.release(upstream, t(T0)).unwrap();
    wait_for(&env.events, "upstream failed", ended(upstream));
    env.clock.advance(Duration::from_secs(60));
    settle(&env);
    let snap = env.scheduler.get_job(report).unwrap();
    assert_eq!(snap.run_count, 0);
    assert_eq!(snap.status, JobStatus::Blocked);
    let why = dag.explain(report).unwrap();
    assert_eq!(
        why.reasons,
        vec![
            Reason::BlockedBy {
                dependency: upstream,
                outcome: Outcome::Failed,
                at: t(T0)
            },
            Reason::FireWaiting {
                scheduled_at: t("2026-01-01T00:01:00Z")
            },
        ]
    );
    assert_eq!(
        why.to_string(),
        format!(
            "{report} (Blocked): blocked: dependency {upstream} ended Failed at 2026-01-01T00:00:00Z; \
             fire at 2026-01-01T00:01:00Z is waiting for its dependencies"
        )
    );

    env.scheduler
        .release(upstream, env.scheduler.now())
        .unwrap();
    let done = wait_for(&env.events, "report ran", ended(report));
    let r = done.report().unwrap();
    assert_eq!(r.outcome, Outcome::Succeeded);
    assert_eq!(r.scheduled_at, t("2026-01-01T00:01:00Z"));
}

/// Each run of a gated job uses up its dependencies' completions.
#[test]
fn a_gated_job_needs_a_fresh_completion_for_each_fire() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let upstream = dag.schedule(TriggerSpec::Manual, [], ok()).unwrap();
    let gated = dag
        .schedule(every(Duration::from_secs(60)), [upstream.into()], ok())
        .unwrap();
    env.scheduler.release(upstream, t(T0)).unwrap();
    wait_for(&env.events, "upstream ran", ended(upstream));
    settle(&env);
    assert_eq!(dag.readiness(gated), Some(Readiness::Ready));

    env.clock.advance(Duration::from_secs(60));
    wait_for(&env.events, "first fire", ended(gated));
    env.clock.advance(Duration::from_secs(60));
    settle(&env);
    assert_eq!(env.scheduler.get_job(gated).unwrap().run_count, 1);
    let why = dag.explain(gated).unwrap();
    assert_eq!(
        why.reasons,
        vec![
            Reason::WaitingOn {
                dependencies: vec![upstream]
            },
            Reason::FireWaiting {
                scheduled_at: t("2026-01-01T00:02:00Z")
            },
        ]
    );

    env.scheduler
        .release(upstream, env.scheduler.now())
        .unwrap();
    let second = wait_for(&env.events, "second fire", ended(gated));
    assert_eq!(
        second.report().unwrap().scheduled_at,
        t("2026-01-01T00:02:00Z")
    );
}

#[test]
fn finished_requirement_runs_after_a_failure() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let flaky = dag
        .schedule(TriggerSpec::Manual, [], |_| Err("boom".into()))
        .unwrap();
    let cleanup = dag
        .schedule(TriggerSpec::Manual, [Dependency::finished(flaky)], ok())
        .unwrap();
    let strict = dag
        .schedule(TriggerSpec::Manual, [flaky.into()], ok())
        .unwrap();
    env.scheduler.release(flaky, t(T0)).unwrap();
    wait_for(&env.events, "cleanup ran", ended(cleanup));
    settle(&env);
    assert_eq!(dag.readiness(strict), Some(Readiness::Blocked));
    assert_eq!(env.scheduler.get_job(strict).unwrap().run_count, 0);
    assert!(matches!(
        dag.dependencies(strict).unwrap()[0].state,
        EdgeState::Failed {
            outcome: Outcome::Failed,
            ..
        }
    ));
}

#[test]
fn cycles_and_unknown_ids_are_refused() {
    let env = env(1);
    let dag = Dag::attach(&env.scheduler);
    let a = dag.schedule(TriggerSpec::Manual, [], ok()).unwrap();
    let b = dag.schedule(TriggerSpec::Manual, [a.into()], ok()).unwrap();
    let c = dag.schedule(TriggerSpec::Manual, [b.into()], ok()).unwrap();
    let err = dag.set_dependencies(a, [c.into()]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("dependency cycle: {a} -> {c} -> {b} -> {a}")
    );
    let err = dag.set_dependencies(b, [b.into()]).unwrap_err();
    assert_eq!(err.to_string(), format!("dependency cycle: {b} -> {b}"));
    // The refused declarations changed nothing.
    assert_eq!(dag.dependencies(a).unwrap(), vec![]);
    assert_eq!(dag.dependencies(b).unwrap().len(), 1);

    let ghost = JobId(9_999);
    assert!(matches!(
        dag.schedule(TriggerSpec::Manual, [ghost.into()], ok()),
        Err(DagError::UnknownDependency { dependency }) if dependency == ghost
    ));
    assert!(matches!(
        dag.explain(ghost),
        Err(DagError::UnknownJob { id }) if id == ghost
    ));
}

/// A job added with the plain scheduler API can be depended on.
#[test]
fn plain_scheduler_jobs_can_be_dependencies() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let plain = env.scheduler.schedule(TriggerSpec::Manual, ok()).unwrap();
    let after = dag
        .schedule(TriggerSpec::Manual, [plain.into()], ok())
        .unwrap();
    env.scheduler.release(plain, t(T0)).unwrap();
    wait_for(&env.events, "downstream ran", ended(after));
}

#[test]
fn explanations_cover_pause_overlap_and_next_fire() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let slow = dag
        .schedule(every(Duration::from_secs(10)), [], move |_| {
            let _ = go_rx.lock().unwrap().recv();
            Ok(())
        })
        .unwrap();
    let idle = dag
        .schedule(every(Duration::from_secs(30)), [], ok())
        .unwrap();
    let manual = dag.schedule(TriggerSpec::Manual, [], ok()).unwrap();

    assert_eq!(
        dag.explain(idle).unwrap().reasons,
        vec![Reason::NextFireAt {
            at: t("2026-01-01T00:00:30Z")
        }]
    );
    assert_eq!(
        dag.explain(manual).unwrap().reasons,
        vec![Reason::ManualOnly]
    );
    env.scheduler.pause(idle).unwrap();
    assert_eq!(dag.explain(idle).unwrap().reasons[0], Reason::Paused);

    env.clock.advance(Duration::from_secs(10));
    wait_for(&env.events, "slow started", started(slow));
    env.clock.advance(Duration::from_secs(10));
    wait_for(
        &env.events,
        "second fire skipped",
        |e| matches!(e, Event::Skipped { job, .. } if *job == slow),
    );
    let why = dag.explain(slow).unwrap();
    assert_eq!(why.reasons[0], Reason::Running { runs: 1 });
    assert!(why.reasons.contains(&Reason::SkippedByOverlap {
        scheduled_at: t("2026-01-01T00:00:20Z")
    }));
    go_tx.send(()).unwrap();
    wait_for(&env.events, "slow ended", ended(slow));
    env.scheduler.cancel(slow).unwrap();
}

/// a -> b -> c: a's failure blocks b (naming a) and leaves c waiting on b;
/// a's recovery runs b and then c.
#[test]
fn a_failure_propagates_down_a_chain_and_recovery_flows_through() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = Arc::clone(&fail);
    let a = dag
        .schedule(TriggerSpec::Manual, [], move |_| {
            if f.load(Ordering::SeqCst) {
                Err("upstream down".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    let b = dag.schedule(TriggerSpec::Manual, [a.into()], ok()).unwrap();
    let c = dag.schedule(TriggerSpec::Manual, [b.into()], ok()).unwrap();

    env.scheduler.release(a, t(T0)).unwrap();
    wait_for(&env.events, "a failed", ended(a));
    settle(&env);
    assert_eq!(dag.readiness(b), Some(Readiness::Blocked));
    assert_eq!(dag.readiness(c), Some(Readiness::Waiting));
    assert_eq!(
        dag.explain(b).unwrap().to_string(),
        format!("{b} (Pending): blocked: dependency {a} ended Failed at 2026-01-01T00:00:00Z")
    );
    assert_eq!(
        dag.explain(c).unwrap().to_string(),
        format!("{c} (Pending): waiting on {b}")
    );

    fail.store(false, Ordering::SeqCst);
    env.scheduler.release(a, env.scheduler.now()).unwrap();
    let seen = collect_until(&env.events, 1, ended(c));
    assert!(pos(&seen, ended(b)) < pos(&seen, started(c)));
    for j in [b, c] {
        assert_eq!(env.scheduler.get_job(j).unwrap().run_count, 1);
    }
}

/// Architecture invariant: the dependency layer and pipelines never poll. They
/// react to events and wait on channels or condition variables only.
#[test]
fn the_dependency_layer_never_sleeps_or_polls() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in ["deps.rs", "pipeline.rs"] {
        let text = std::fs::read_to_string(src.join(file)).unwrap();
        for pat in [
            "sleep(",
            "recv_timeout",
            "wait_timeout",
            "park_timeout",
            "try_recv",
        ] {
            assert!(!text.contains(pat), "{file} uses {pat}");
        }
    }
}
