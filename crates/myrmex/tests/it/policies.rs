//! Policies through the runtime: panics, retries, timeouts, overlap, journal.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use myrmex::{
    Event, JobId, JobSnapshot, JobSpec, JobStatus, Journal, JournalError, ManualClock, Outcome,
    OverlapPolicy, RetryPolicy, RunReport, Scheduler, TriggerSpec, every,
};

use crate::util::{T0, env, scheduled, succeeded, t, wait_for};

#[test]
fn a_panicking_handler_is_recorded_as_failed_and_the_scheduler_goes_on() {
    let env = env(2);
    env.scheduler
        .schedule(TriggerSpec::once(t("2026-01-01T00:00:01Z")), |_| {
            panic!("kaboom")
        })
        .unwrap();
    let ok = env
        .scheduler
        .schedule(every(Duration::from_secs(2)), |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(1));
    let e = wait_for(&env.events, "failure", |e| matches!(e, Event::RunFailed(_)));
    let r = e.report().unwrap();
    assert_eq!(r.outcome, Outcome::Failed);
    assert!(
        r.error.as_deref().unwrap().contains("kaboom"),
        "{:?}",
        r.error
    );
    env.clock.advance(Duration::from_secs(1));
    assert_eq!(wait_for(&env.events, "still firing", succeeded).job(), ok);
}

#[test]
fn retries_follow_the_backoff_on_the_clock() {
    let env = env(2);
    let job = env
        .scheduler
        .schedule(
            JobSpec::new(TriggerSpec::once(t(T0))).retry(RetryPolicy::Exponential {
                max_attempts: 3,
                initial: SignedDuration::from_secs(10),
                max_delay: SignedDuration::from_secs(60),
                jitter: SignedDuration::ZERO,
            }),
            |ctx| {
                if ctx.attempt() < 3 {
                    Err(format!("attempt {} failed", ctx.attempt()).into())
                } else {
                    Ok(())
                }
            },
        )
        .unwrap();
    let e = wait_for(&env.events, "first retry", |e| {
        matches!(e, Event::RunRetrying { .. })
    });
    let Event::RunRetrying {
        retry_at, error, ..
    } = e
    else {
        unreachable!()
    };
    assert_eq!(retry_at, t("2026-01-01T00:00:10Z"));
    assert_eq!(error.as_deref(), Some("attempt 1 failed"));
    env.clock.advance(Duration::from_secs(10));
    let e = wait_for(&env.events, "second retry", |e| {
        matches!(e, Event::RunRetrying { .. })
    });
    let Event::RunRetrying { retry_at, .. } = e else {
        unreachable!()
    };
    assert_eq!(retry_at, t("2026-01-01T00:00:30Z"));
    env.clock.advance(Duration::from_secs(20));
    let e = wait_for(&env.events, "success", succeeded);
    let r = e.report().unwrap();
    assert_eq!((r.job, r.attempts, r.scheduled_at), (job, 3, t(T0)));
}

#[test]
fn a_timeout_cancels_the_token_and_records_timed_out() {
    let env = env(2);
    env.scheduler
        .schedule(
            JobSpec::new(TriggerSpec::once(t(T0))).timeout(SignedDuration::from_secs(30)),
            |ctx| {
                ctx.cancellation().wait();
                Err("stopped".into())
            },
        )
        .unwrap();
    wait_for(&env.events, "start", |e| {
        matches!(e, Event::RunStarted { .. })
    });
    env.clock.advance(Duration::from_secs(30));
    let e = wait_for(&env.events, "timed out", |e| {
        matches!(e, Event::RunTimedOut(_))
    });
    assert_eq!(e.report().unwrap().outcome, Outcome::TimedOut);
}

#[test]
fn overlap_skip_and_a_slow_job_never_delays_others() {
    let env = env(3);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Mutex::new(release_rx);
    let slow = env
        .scheduler
        .schedule(
            JobSpec::new(every(Duration::from_secs(1))).overlap(OverlapPolicy::Skip),
            move |_| {
                release_rx.lock().unwrap().recv().ok();
                Ok(())
            },
        )
        .unwrap();
    let fast = env
        .scheduler
        .schedule(every(Duration::from_secs(1)), |_| Ok(()))
        .unwrap();
    for k in 1..=3 {
        env.clock.advance(Duration::from_secs(1));
        let e = wait_for(&env.events, "fast", |e| succeeded(e) && e.job() == fast);
        assert_eq!(scheduled(&e).unwrap(), format!("2026-01-01T00:00:0{k}Z"));
    }
    // The slow job is still in its first run: its later fires were skipped.
    let snap = env.scheduler.get_job(slow).unwrap();
    assert_eq!((snap.status, snap.run_count), (JobStatus::Running, 1));
    release_tx.send(()).unwrap();
    let e = wait_for(&env.events, "slow done", |e| {
        succeeded(e) && e.job() == slow
    });
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T00:00:01Z");
}

#[test]
fn intervals_never_drift_however_long_runs_take() {
    let env = env(2);
    let clock = env.clock.clone();
    // Each run "takes" 700 ms of clock time: it advances the clock itself.
    env.scheduler
        .schedule(every(Duration::from_secs(1)), move |_| {
            clock.advance(Duration::from_millis(700));
            Ok(())
        })
        .unwrap();
    env.clock.advance(Duration::from_secs(1));
    let mut fires = Vec::new();
    for _ in 0..5 {
        let e = wait_for(&env.events, "tick", succeeded);
        fires.push(scheduled(&e).unwrap());
        // Move to the next grid point (0.3 s after the run ended).
        env.clock.advance(Duration::from_millis(300));
    }
    assert_eq!(
        fires,
        [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:02Z",
            "2026-01-01T00:00:03Z",
            "2026-01-01T00:00:04Z",
            "2026-01-01T00:00:05Z"
        ]
    );
}

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, s: String) {
        self.0.lock().unwrap().push(s);
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

impl Journal for Log {
    fn job_added(&mut self, job: &JobSnapshot) -> Result<(), JournalError> {
        self.push(format!(
            "added {} next {:?}",
            job.id,
            job.next_run_at.map(|t| t.to_string())
        ));
        Ok(())
    }
    fn occurrence_fired(
        &mut self,
        job: JobId,
        at: Timestamp,
        wm: Option<Timestamp>,
    ) -> Result<(), JournalError> {
        self.push(format!("fired {job} {at} watermark {wm:?}"));
        Ok(())
    }
    fn attempt_started(
        &mut self,
        job: JobId,
        at: Timestamp,
        attempt: u32,
    ) -> Result<(), JournalError> {
        self.push(format!("attempt {job} {at} #{attempt}"));
        Ok(())
    }
    fn run_finished(&mut self, r: &RunReport) -> Result<(), JournalError> {
        self.push(format!(
            "finished {} {} {:?}",
            r.job, r.scheduled_at, r.outcome
        ));
        Ok(())
    }
    fn job_removed(&mut self, job: JobId, status: JobStatus) -> Result<(), JournalError> {
        self.push(format!("removed {job} {status:?}"));
        Ok(())
    }
}

#[test]
fn the_journal_sees_each_occurrence_before_its_handler() {
    let log = Log::default();
    let clock = ManualClock::new(t(T0));
    let scheduler = Scheduler::builder()
        .workers(1)
        .zone(jiff::tz::TimeZone::UTC)
        .clock(clock.clone())
        .journal(log.clone())
        .build()
        .unwrap();
    let events = scheduler.subscribe();
    let in_handler = log.clone();
    scheduler
        .schedule(TriggerSpec::once(t("2026-01-01T00:00:05Z")), move |ctx| {
            in_handler.push(format!("handler {}", ctx.scheduled_at()));
            Ok(())
        })
        .unwrap();
    scheduler.start().unwrap();
    clock.advance(Duration::from_secs(5));
    wait_for(&events, "finished", |e| {
        matches!(e, Event::JobFinished { .. })
    });
    assert_eq!(
        log.take(),
        [
            "added job-1 next Some(\"2026-01-01T00:00:05Z\")",
            "fired job-1 2026-01-01T00:00:05Z watermark None",
            "attempt job-1 2026-01-01T00:00:05Z #1",
            "handler 2026-01-01T00:00:05Z",
            "finished job-1 2026-01-01T00:00:05Z Succeeded",
            "removed job-1 Completed",
        ]
    );
    scheduler.shutdown(Duration::from_secs(10)).unwrap();
}

struct Refuses;

impl Journal for Refuses {
    fn occurrence_fired(
        &mut self,
        _: JobId,
        _: Timestamp,
        _: Option<Timestamp>,
    ) -> Result<(), JournalError> {
        Err("store unavailable".into())
    }
}

#[test]
fn an_occurrence_the_journal_refuses_does_not_run() {
    let clock = ManualClock::new(t(T0));
    let scheduler = Scheduler::builder()
        .workers(1)
        .zone(jiff::tz::TimeZone::UTC)
        .clock(clock.clone())
        .journal(Refuses)
        .build()
        .unwrap();
    let events = scheduler.subscribe();
    scheduler
        .schedule(TriggerSpec::once(t(T0)), |_| panic!("must not run"))
        .unwrap();
    scheduler.start().unwrap();
    let e = wait_for(&events, "failed", |e| matches!(e, Event::RunFailed(_)));
    assert!(
        e.report()
            .unwrap()
            .error
            .as_deref()
            .unwrap()
            .contains("store unavailable")
    );
    scheduler.shutdown(Duration::from_secs(10)).unwrap();
}

/// Tokens of finished runs are reused, so: a reused token starts uncancelled,
/// and a token a handler kept a clone of is never handed to another run.
#[test]
fn a_run_never_sees_another_runs_token() {
    let env = env(1);
    let (tokens_tx, tokens) = std::sync::mpsc::channel();
    env.scheduler
        .schedule(
            JobSpec::new(TriggerSpec::once(t(T0))).timeout(SignedDuration::from_secs(30)),
            |ctx| {
                ctx.cancellation().wait();
                Err("stopped".into())
            },
        )
        .unwrap();
    wait_for(&env.events, "start", |e| {
        matches!(e, Event::RunStarted { .. })
    });
    env.clock.advance(Duration::from_secs(30));
    wait_for(&env.events, "timed out", |e| {
        matches!(e, Event::RunTimedOut(_))
    });
    for k in 1..=2u64 {
        let tx = tokens_tx.clone();
        env.scheduler
            .schedule(
                TriggerSpec::once(t(T0) + SignedDuration::from_secs(30 + k as i64)),
                move |ctx| {
                    let _ = tx.send((ctx.is_cancelled(), ctx.cancellation().clone()));
                    Ok(())
                },
            )
            .unwrap();
        env.clock.advance(Duration::from_secs(1));
        wait_for(&env.events, "success", succeeded);
    }
    let (b_cancelled, b_token) = tokens.recv().unwrap();
    let (c_cancelled, c_token) = tokens.recv().unwrap();
    assert!(!b_cancelled && !c_cancelled);
    b_token.cancel();
    assert!(!c_token.is_cancelled());
}
