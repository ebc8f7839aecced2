//! Every trigger kind and every API call, through the real threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, civil};
use myrmex::{
    Event, JobId, JobSpec, JobStatus, Outcome, Recurrence, RetentionPolicy, SchedulerError,
    TriggerSpec, at, cron, every,
};

use crate::util::{T0, collect_until, env, env_in, scheduled, settle, succeeded, t, wait_for};

#[test]
fn interval_fires_on_its_grid() {
    let env = env(2);
    let job = env
        .scheduler
        .schedule(every(Duration::from_secs(10)), |_| Ok(()))
        .unwrap();
    for _ in 0..3 {
        env.clock.advance(Duration::from_secs(10));
        wait_for(&env.events, "tick", succeeded);
    }
    let snap = env.scheduler.get_job(job).unwrap();
    assert_eq!(snap.run_count, 3);
    assert_eq!(snap.next_run_at, Some(t("2026-01-01T00:00:40Z")));
    assert_eq!(snap.last_run_at, Some(t("2026-01-01T00:00:30Z")));
    assert_eq!(snap.history.len(), 3);
}

#[test]
fn sub_second_intervals_stay_exact() {
    let env = env(2);
    env.scheduler
        .schedule(every(Duration::from_millis(1)), |_| Ok(()))
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..50 {
        env.clock.advance(Duration::from_millis(1));
        times.push(scheduled(&wait_for(&env.events, "ms tick", succeeded)).unwrap());
    }
    for (k, s) in times.iter().enumerate() {
        assert_eq!(t(s), t(T0) + SignedDuration::from_millis(k as i64 + 1));
    }
}

#[test]
fn one_shots_fire_once_and_are_removed() {
    let env = env(2);
    let job = env
        .scheduler
        .schedule(TriggerSpec::once(t("2026-01-01T00:05:00Z")), |_| Ok(()))
        .unwrap();
    assert_eq!(
        env.scheduler.get_job(job).unwrap().status,
        JobStatus::Pending
    );
    env.clock.advance(Duration::from_secs(3600));
    wait_for(&env.events, "finish", |e| {
        matches!(
            e,
            Event::JobFinished {
                status: JobStatus::Completed,
                ..
            }
        )
    });
    assert!(
        env.scheduler.get_job(job).is_none(),
        "finished one-shot removed"
    );
    assert!(env.scheduler.list_jobs(None).is_empty());
}

#[test]
fn at_uses_the_scheduler_zone() {
    let env = env_in(
        2,
        TimeZone::get("Asia/Tokyo").unwrap(),
        "2026-01-01T00:00:00Z",
    );
    // 00:00 UTC is 09:00 in Tokyo: the next 10:15 there is 01:15 UTC.
    env.scheduler
        .schedule(at("10:15").unwrap(), |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(2 * 3600));
    let e = wait_for(&env.events, "at", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T01:15:00Z");
}

#[test]
fn cron_in_the_scheduler_zone_across_dst() {
    // London moves to BST on 2026-03-29: 09:00 local is 09:00Z, then 08:00Z.
    let env = env_in(
        2,
        TimeZone::get("Europe/London").unwrap(),
        "2026-03-28T00:00:00Z",
    );
    env.scheduler
        .schedule(cron("0 9 * * *").unwrap(), |_| Ok(()))
        .unwrap();
    let mut fires = Vec::new();
    for _ in 0..3 {
        env.clock.advance(Duration::from_secs(86_400));
        fires.push(scheduled(&wait_for(&env.events, "cron", succeeded)).unwrap());
    }
    assert_eq!(
        fires,
        [
            "2026-03-28T09:00:00Z",
            "2026-03-29T08:00:00Z",
            "2026-03-30T08:00:00Z"
        ]
    );
}

#[test]
fn recurrence_and_union() {
    let env = env(2);
    let rec = Recurrence::every(2)
        .days()
        .at(civil::time(6, 0, 0, 0))
        .starting(civil::date(2026, 1, 1).at(0, 0, 0, 0));
    let union = TriggerSpec::union([
        TriggerSpec::Recurrence(rec),
        TriggerSpec::once(t("2026-01-02T12:00:00Z")),
    ]);
    env.scheduler.schedule(union, |_| Ok(())).unwrap();
    let mut fires = Vec::new();
    for _ in 0..16 {
        env.clock.advance(Duration::from_secs(6 * 3600));
        settle(&env);
        let mut running = 0;
        while let Ok(e) = env.events.try_recv() {
            if let Event::RunStarted { scheduled_at, .. } = &e {
                fires.push(scheduled_at.to_string());
                running += 1;
            } else if succeeded(&e) {
                running -= 1;
            }
        }
        // Each run ends before the clock moves on: a run still on its worker at the
        // next fire would make that fire an overlap (skipped by default).
        for _ in 0..running {
            wait_for(&env.events, "the run to end", succeeded);
        }
    }
    assert_eq!(
        fires,
        [
            "2026-01-01T06:00:00Z",
            "2026-01-02T12:00:00Z",
            "2026-01-03T06:00:00Z"
        ]
    );
}

#[test]
fn manual_jobs_run_when_released_or_run_now() {
    let env = env(2);
    let count = Arc::new(AtomicU32::new(0));
    let c = Arc::clone(&count);
    let job = env
        .scheduler
        .schedule(
            JobSpec::new(TriggerSpec::Manual).name("downstream"),
            move |ctx| {
                c.fetch_add(1, Ordering::SeqCst);
                assert_eq!(ctx.attempt(), 1);
                Ok(())
            },
        )
        .unwrap();
    env.clock.advance(Duration::from_secs(86_400));
    let report = env.scheduler.run_now(job).unwrap();
    assert_eq!(report.outcome, Outcome::Succeeded);
    assert_eq!(report.scheduled_at, t("2026-01-02T00:00:00Z"));
    env.scheduler
        .release(job, t("2026-01-01T12:00:00Z"))
        .unwrap();
    let e = wait_for(&env.events, "released", |e| {
        succeeded(e) && scheduled(e).as_deref() == Some("2026-01-01T12:00:00Z")
    });
    assert_eq!(e.job(), job);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let snap = env.scheduler.get_job(job).unwrap();
    assert_eq!(
        (snap.name.as_deref(), snap.status, snap.run_count),
        (Some("downstream"), JobStatus::Pending, 2)
    );
}

#[test]
fn run_now_reports_failure_as_data() {
    let env = env(1);
    let job = env
        .scheduler
        .schedule(TriggerSpec::Manual, |_| Err("disk full".into()))
        .unwrap();
    let report = env.scheduler.run_now(job).unwrap();
    assert_eq!(report.outcome, Outcome::Failed);
    assert_eq!(report.error.as_deref(), Some("disk full"));
    let snap = env.scheduler.get_job(job).unwrap();
    assert_eq!(snap.last_outcome, Some(Outcome::Failed));
    assert_eq!(snap.last_error.as_deref(), Some("disk full"));
    assert!(matches!(
        env.scheduler.run_now(JobId(999)),
        Err(SchedulerError::UnknownJob { .. })
    ));
}

#[test]
fn cancel_pause_resume_reschedule_and_list() {
    let env = env(2);
    let a = env
        .scheduler
        .schedule(every(Duration::from_secs(60)), |_| Ok(()))
        .unwrap();
    let b = env
        .scheduler
        .schedule(every(Duration::from_secs(60)), |_| Ok(()))
        .unwrap();
    let c = env
        .scheduler
        .schedule(
            JobSpec::new(every(Duration::from_secs(60))).retention(RetentionPolicy::Keep),
            |_| Ok(()),
        )
        .unwrap();
    env.scheduler.pause(b).unwrap();
    env.scheduler.cancel(c).unwrap();
    let paused: Vec<JobId> = env
        .scheduler
        .list_jobs(Some(JobStatus::Paused))
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(paused, [b]);
    let cancelled: Vec<JobId> = env
        .scheduler
        .list_jobs(Some(JobStatus::Cancelled))
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(cancelled, [c]);
    assert_eq!(env.scheduler.list_jobs(None).len(), 3);
    env.clock.advance(Duration::from_secs(60));
    let e = wait_for(&env.events, "a", succeeded);
    assert_eq!(e.job(), a);
    env.scheduler
        .reschedule(a, TriggerSpec::once(t("2026-01-01T00:01:30Z")))
        .unwrap();
    env.scheduler.resume(b).unwrap();
    env.clock.advance(Duration::from_secs(30));
    // b's occurrence at 00:01 fell due while it was paused: resuming runs it
    // (misfire RunOnce). a runs at its new time. The two runs end in any order.
    let done: Vec<(JobId, String)> = collect_until(&env.events, 2, succeeded)
        .iter()
        .filter(|e| succeeded(e))
        .map(|e| (e.job(), scheduled(e).unwrap()))
        .collect();
    assert!(
        done.contains(&(b, "2026-01-01T00:01:00Z".to_owned())),
        "{done:?}"
    );
    assert!(
        done.contains(&(a, "2026-01-01T00:01:30Z".to_owned())),
        "{done:?}"
    );
    assert!(matches!(
        env.scheduler.cancel(JobId(12345)),
        Err(SchedulerError::UnknownJob { .. })
    ));
    assert!(matches!(
        env.scheduler.schedule(every(Duration::ZERO), |_| Ok(())),
        Err(SchedulerError::InvalidTrigger(_))
    ));
    assert!(matches!(
        env.scheduler.start(),
        Err(SchedulerError::AlreadyStarted)
    ));
}

#[test]
fn submit_runs_closures_on_the_pool() {
    let env = env(2);
    let ok = env.scheduler.submit(|_| Ok(())).unwrap();
    let bad = env.scheduler.submit(|_| Err("nope".into())).unwrap();
    let panics = env.scheduler.submit(|_| panic!("task blew up")).unwrap();
    assert_eq!(ok.wait(), Ok(()));
    assert_eq!(bad.wait(), Err("nope".to_owned()));
    assert!(panics.wait().unwrap_err().contains("task blew up"));
}

/// On the system clock the scheduler prepares a burst shortly before it is due
/// and hands it over at its instant: a handler never starts before its
/// occurrence's time (read on the wall clock in the handler).
#[test]
fn no_handler_starts_before_its_time_on_the_system_clock() {
    // Counts the hold hook's calls: the burst was prepared ahead of its
    // instant and held (the path this test is about).
    let holds = Arc::new(AtomicU32::new(0));
    let scheduler = {
        let holds = Arc::clone(&holds);
        myrmex::Scheduler::builder()
            .workers(2)
            .zone(TimeZone::UTC)
            .hold_hook(move || {
                holds.fetch_add(1, Ordering::SeqCst);
                false
            })
            .build()
            .unwrap()
    };
    let events = scheduler.subscribe();
    let (tx, starts) = std::sync::mpsc::channel();
    scheduler.start().unwrap();
    // A burst far enough ahead that the scheduler parks long and wakes early
    // to prepare it; on a machine too slow for that, another round.
    for _ in 0..10 {
        let at = jiff::Timestamp::now() + SignedDuration::from_millis(600);
        for _ in 0..50 {
            let tx = tx.clone();
            scheduler
                .schedule(TriggerSpec::once(at), move |ctx| {
                    let _ = tx.send((jiff::Timestamp::now(), ctx.scheduled_at()));
                    Ok(())
                })
                .unwrap();
        }
        crate::util::collect_until(&events, 50, succeeded);
        for _ in 0..50 {
            let (started, scheduled_at) = starts.recv().unwrap();
            assert_eq!(scheduled_at, at);
            assert!(started >= at, "started at {started}, due at {at}");
        }
        if holds.load(Ordering::SeqCst) > 0 {
            break;
        }
    }
    assert!(
        holds.load(Ordering::SeqCst) > 0,
        "no burst was prepared ahead of its instant in 10 rounds"
    );
    scheduler.shutdown(Duration::from_secs(5)).unwrap();
}
