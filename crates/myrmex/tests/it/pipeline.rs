//! Pipelines: outputs handed forward, real concurrency within a stage, failure
//! policies, per-job retries and timeouts, cancellation, 100 x 100 ordering,
//! scheduled pipelines as dependencies. No sleeps.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use jiff::SignedDuration;
use myrmex::{
    Dag, Event, Outcome, Pipeline, PipelineJob, PipelineOutcome, RetryPolicy, Stage,
    StageFailurePolicy, StageStatus, TriggerSpec, every,
};
use serde_json::{Value, json};

use crate::util::env;

#[test]
fn outputs_flow_from_stage_to_stage() {
    let env = env(3);
    let dag = Dag::attach(&env.scheduler);
    let p = Pipeline::<u64>::new("sum")
        .stage(
            Stage::new("numbers")
                .job("one", |_| Ok(1))
                .job("two", |_| Ok(2))
                .job("three", |_| Ok(3)),
        )
        .stage(Stage::new("empty"))
        .stage(Stage::new("double").job("x2", |ctx| {
            assert_eq!(ctx.stage(), 2);
            Ok(ctx.outputs_before().sum::<u64>() * 2)
        }));
    let report = p.run(&dag).unwrap();
    assert_eq!(report.outcome, PipelineOutcome::Succeeded);
    // An empty stage passes nothing on: "double" sees no inputs.
    assert_eq!(report.output(), Some(&[Some(0)][..]));
    assert_eq!(report.stages[0].outputs(), &[Some(1), Some(2), Some(3)]);

    // JSON where the shapes differ from stage to stage.
    let p = Pipeline::<Value>::new("json")
        .stage(Stage::new("fetch").job("rows", |_| Ok(json!([1, 2, 3]))))
        .stage(Stage::new("count").job("n", |ctx| {
            let rows: &Value = ctx.inputs()[0].as_ref().unwrap();
            Ok(json!({ "count": rows.as_array().unwrap().len() }))
        }));
    let report = p.run(&dag).unwrap();
    assert_eq!(report.output(), Some(&[Some(json!({"count": 3}))][..]));
}

/// The barrier opens only when all four jobs of the stage are inside it at
/// once: a sequential runner would hang here.
#[test]
fn a_stages_jobs_run_concurrently() {
    let env = env(4);
    let dag = Dag::attach(&env.scheduler);
    let barrier = Arc::new(Barrier::new(4));
    let mut stage = Stage::new("together");
    for i in 0..4u64 {
        let b = Arc::clone(&barrier);
        stage = stage.job(format!("j{i}"), move |_| {
            b.wait();
            Ok(i)
        });
    }
    let report = Pipeline::new("barrier").stage(stage).run(&dag).unwrap();
    assert_eq!(report.outcome, PipelineOutcome::Succeeded);
    assert_eq!(
        report.output(),
        Some(&[Some(0), Some(1), Some(2), Some(3)][..])
    );
}

#[test]
fn stop_policy_cancels_the_remaining_stages() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let later = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&later);
    let p = Pipeline::<u32>::new("stop")
        .stage(
            Stage::new("first")
                .job("fine", |_| Ok(1))
                .job("broken", |_| Err("disk full".into())),
        )
        .stage(Stage::new("second").job("never", move |_| {
            l.fetch_add(1, Ordering::SeqCst);
            Ok(2)
        }));
    let report = p.run(&dag).unwrap();
    assert_eq!(report.outcome, PipelineOutcome::Failed);
    let statuses: Vec<StageStatus> = report.stages.iter().map(|s| s.status).collect();
    assert_eq!(statuses, vec![StageStatus::Failed, StageStatus::Cancelled]);
    let broken = &report.stages[0].jobs[1];
    assert_eq!(broken.outcome, Outcome::Failed);
    assert_eq!(
        broken.report.as_ref().unwrap().error.as_deref(),
        Some("disk full")
    );
    assert_eq!(report.stages[1].jobs[0].outcome, Outcome::Cancelled);
    assert!(report.stages[1].jobs[0].report.is_none());
    assert_eq!(later.load(Ordering::SeqCst), 0);
}

#[test]
fn continue_policy_runs_on_with_the_gap() {
    let env = env(2);
    let dag = Dag::attach(&env.scheduler);
    let p = Pipeline::<u32>::new("continue")
        .failure_policy(StageFailurePolicy::Continue)
        .stage(
            Stage::new("first")
                .job("fine", |_| Ok(7))
                .job("broken", |_| Err("nope".into())),
        )
        .stage(Stage::new("second").job("see", |ctx| {
            assert_eq!(ctx.inputs(), &[Some(7), None]);
            Ok(8)
        }));
    let report = p.run(&dag).unwrap();
    assert_eq!(report.outcome, PipelineOutcome::Failed);
    assert_eq!(report.stages[1].status, StageStatus::Succeeded);
    assert_eq!(report.output(), Some(&[Some(8)][..]));
}

#[test]
fn retries_and_timeouts_apply_per_job() {
    let env = env(3);
    let dag = Dag::attach(&env.scheduler);
    let flaky = PipelineJob::new("flaky", |ctx: &myrmex::StageContext<'_, u32>| {
        if ctx.run().attempt() < 3 {
            Err("transient".into())
        } else {
            Ok(3)
        }
    })
    .retry(RetryPolicy::Fixed {
        max_attempts: 3,
        delay: SignedDuration::ZERO,
        jitter: SignedDuration::ZERO,
    });
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let inside_tx = Mutex::new(inside_tx);
    let stuck = PipelineJob::new("stuck", move |ctx: &myrmex::StageContext<'_, u32>| {
        // The deadline was fixed when the attempt started, before this line.
        inside_tx.lock().unwrap().send(()).unwrap();
        ctx.run().cancellation().wait();
        Err("stopped".into())
    })
    .timeout(SignedDuration::from_secs(5));
    let handle = Pipeline::new("policies")
        .failure_policy(StageFailurePolicy::Continue)
        .stage(Stage::new("retry").with(flaky))
        .stage(Stage::new("timeout").with(stuck))
        .submit(&dag)
        .unwrap();
    inside_rx.recv().unwrap();
    assert!(!handle.is_finished());
    env.clock.advance(Duration::from_secs(5));
    let report = handle.wait();
    let retried = report.stages[0].jobs[0].report.as_ref().unwrap();
    assert_eq!((retried.outcome, retried.attempts), (Outcome::Succeeded, 3));
    assert_eq!(report.stages[1].jobs[0].outcome, Outcome::TimedOut);
    assert_eq!(report.outcome, PipelineOutcome::Failed);
}

#[test]
fn cancelling_in_the_middle_stops_the_running_stage_and_skips_the_rest() {
    let env = env(3);
    let dag = Dag::attach(&env.scheduler);
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let inside_tx = Mutex::new(inside_tx);
    let p = Pipeline::<u32>::new("cancel")
        .stage(Stage::new("quick").job("a", |_| Ok(1)))
        .stage(
            Stage::new("slow")
                .job("waits", move |ctx| {
                    inside_tx.lock().unwrap().send(()).unwrap();
                    ctx.run().cancellation().wait();
                    Err("cancelled".into())
                })
                .job("quick too", |_| Ok(2)),
        )
        .stage(Stage::new("never").job("c", |_| Ok(3)));
    let handle = p.submit(&dag).unwrap();
    inside_rx.recv().unwrap();
    assert_eq!(handle.current_stage(), 1);
    handle.cancel();
    let report = handle.wait();
    assert_eq!(report.outcome, PipelineOutcome::Cancelled);
    let statuses: Vec<StageStatus> = report.stages.iter().map(|s| s.status).collect();
    assert_eq!(
        statuses,
        vec![
            StageStatus::Succeeded,
            StageStatus::Cancelled,
            StageStatus::Cancelled
        ]
    );
    assert_eq!(report.stages[1].jobs[0].outcome, Outcome::Cancelled);
    assert!(report.stages[2].jobs[0].report.is_none());
    // Nothing of the pipeline is left in the scheduler.
    crate::util::settle(&env);
    assert!(env.scheduler.list_jobs(None).is_empty());
}

#[test]
fn hundred_stages_of_hundred_jobs_complete_in_order() {
    let env = env(4);
    let dag = Dag::attach(&env.scheduler);
    let log = Arc::new(Mutex::new(Vec::with_capacity(10_000)));
    let mut p = Pipeline::<usize>::new("big");
    for s in 0..100 {
        let mut stage = Stage::new(format!("s{s}"));
        for j in 0..100 {
            let log = Arc::clone(&log);
            stage = stage.job(format!("j{j}"), move |ctx| {
                if s > 0 {
                    assert_eq!(ctx.outputs_before().count(), 100);
                }
                log.lock().unwrap().push(s);
                Ok(j)
            });
        }
        p = p.stage(stage);
    }
    let report = p.run(&dag).unwrap();
    assert_eq!(report.outcome, PipelineOutcome::Succeeded);
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 10_000);
    assert!(log.windows(2).all(|w| w[0] <= w[1]), "stages interleaved");
    assert_eq!(report.output().unwrap().len(), 100);
}

/// A pipeline scheduled with a trigger is a job: others can depend on it.
#[test]
fn a_scheduled_pipeline_can_be_depended_on() {
    let env = env(3);
    let dag = Dag::attach(&env.scheduler);
    let p = Pipeline::<u32>::new("nightly")
        .stage(Stage::new("a").job("x", |_| Ok(1)).job("y", |_| Ok(2)))
        .stage(Stage::new("b").job("z", |_| Ok(3)));
    let nightly = dag
        .schedule_pipeline(every(Duration::from_secs(3600)), [], p)
        .unwrap();
    let after = dag
        .schedule(TriggerSpec::Manual, [nightly.into()], |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(3600));
    let seen = crate::util::collect_until(&env.events, 1, |e| {
        e.report().is_some_and(|r| r.job == after)
    });
    let pipeline_done = seen
        .iter()
        .position(|e| matches!(e, Event::RunSucceeded(r) if r.job == nightly))
        .expect("pipeline job succeeded");
    let after_started = seen
        .iter()
        .position(|e| matches!(e, Event::RunStarted { job, .. } if *job == after))
        .unwrap();
    assert!(pipeline_done < after_started);
}

/// The scheduled pipeline job's timeout bounds the whole run: it cancels the
/// stage that is running.
#[test]
fn a_scheduled_pipelines_timeout_cancels_its_running_stage() {
    let env = env(3);
    let dag = Dag::attach(&env.scheduler);
    let (inside_tx, inside_rx) = mpsc::channel::<()>();
    let inside_tx = Mutex::new(inside_tx);
    let p = Pipeline::<u32>::new("bounded")
        .stage(Stage::new("hangs").job("wait", move |ctx| {
            inside_tx.lock().unwrap().send(()).unwrap();
            ctx.run().cancellation().wait();
            Err("told to stop".into())
        }))
        .stage(Stage::new("after").job("never", |_| Ok(1)));
    let job = dag
        .schedule_pipeline(
            myrmex::JobSpec::new(every(Duration::from_secs(60)))
                .timeout(SignedDuration::from_secs(10)),
            [],
            p,
        )
        .unwrap();
    env.clock.advance(Duration::from_secs(60));
    inside_rx.recv().unwrap();
    env.clock.advance(Duration::from_secs(10));
    let seen =
        crate::util::collect_until(&env.events, 1, |e| e.report().is_some_and(|r| r.job == job));
    let ends: Vec<Outcome> = seen
        .iter()
        .filter_map(|e| e.report())
        .map(|r| r.outcome)
        .collect();
    // The stage job ends cancelled before the pipeline job times out.
    assert_eq!(ends, vec![Outcome::Cancelled, Outcome::TimedOut]);
}

#[test]
fn an_empty_pipeline_succeeds_at_once() {
    let env = env(1);
    let dag = Dag::attach(&env.scheduler);
    let handle = Pipeline::<u8>::new("nothing").submit(&dag).unwrap();
    assert!(handle.is_finished());
    let report = handle.wait();
    assert_eq!(report.outcome, PipelineOutcome::Succeeded);
    assert!(report.stages.is_empty());
    assert_eq!(report.output(), None);
}
