//! Wall-clock jumps and suspends, detected by comparing wall and elapsed time.

use std::time::Duration;

use jiff::SignedDuration;
use myrmex::{Event, JobSpec, JobStatus, MisfirePolicy, RestoredState, TriggerSpec, cron, every};

use crate::util::{env, scheduled, settle, succeeded, t, wait_for};

#[test]
fn a_jump_forward_is_a_misfire_run_once() {
    let env = env(2);
    env.scheduler
        .schedule(every(Duration::from_secs(60)), |_| Ok(()))
        .unwrap();
    env.clock.jump(SignedDuration::from_mins(10));
    let missed = wait_for(&env.events, "missed", |e| matches!(e, Event::Missed { .. }));
    assert!(
        matches!(missed, Event::Missed { count: 9, .. }),
        "{missed:?}"
    );
    let e = wait_for(&env.events, "catch-up", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T00:10:00Z");
    env.clock.advance(Duration::from_secs(60));
    let e = wait_for(&env.events, "back on grid", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T00:11:00Z");
}

#[test]
fn a_jump_forward_with_skip_runs_nothing_late() {
    let env = env(2);
    env.scheduler
        .schedule(
            JobSpec::new(every(Duration::from_secs(60))).misfire(MisfirePolicy::Skip),
            |_| Ok(()),
        )
        .unwrap();
    env.clock.jump(SignedDuration::from_hours(2));
    let missed = wait_for(&env.events, "missed", |e| matches!(e, Event::Missed { .. }));
    assert!(
        matches!(missed, Event::Missed { count: 120, .. }),
        "{missed:?}"
    );
    env.clock.advance(Duration::from_secs(60));
    let e = wait_for(&env.events, "next", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T02:01:00Z");
}

#[test]
fn a_jump_back_neither_refires_nor_stalls() {
    let env = env(2);
    env.scheduler
        .schedule(every(Duration::from_secs(60)), |_| Ok(()))
        .unwrap();
    // Daily at 00:02 (wall-clock job).
    let daily = env
        .scheduler
        .schedule(cron("2 0 * * *").unwrap(), |_| Ok(()))
        .unwrap();
    env.clock.advance(Duration::from_secs(60));
    let mut seen = vec![scheduled(&wait_for(&env.events, "first", succeeded)).unwrap()];
    env.clock.advance(Duration::from_secs(60));
    seen.push(scheduled(&wait_for(&env.events, "second", succeeded)).unwrap());
    seen.push(scheduled(&wait_for(&env.events, "third", succeeded)).unwrap());
    env.clock.advance(Duration::from_secs(30));
    seen.sort();
    assert_eq!(
        seen,
        [
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            "2026-01-01T00:02:00Z"
        ]
    );
    // The wall clock is set back an hour (now 2025-12-31T23:02:30Z).
    env.clock.jump(SignedDuration::from_hours(-1));
    settle(&env);
    // The interval job keeps its period in real time: 30 s later it fires again.
    env.clock.advance(Duration::from_secs(30));
    let e = wait_for(&env.events, "after", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2025-12-31T23:03:00Z");
    // The wall-clock job does not fire 00:02 again; its next is tomorrow.
    let snap = env.scheduler.get_job(daily).unwrap();
    assert_eq!(snap.next_run_at, Some(t("2026-01-02T00:02:00Z")));
    assert_eq!(snap.run_count, 1);
}

#[test]
fn restored_jobs_continue_from_their_watermark() {
    let env = env(2);
    let id = myrmex::JobId(41);
    let state = RestoredState {
        created_at: t("2025-12-31T00:00:00Z"),
        next_run_at: Some(t("2025-12-31T23:59:00Z")),
        last_run_at: Some(t("2025-12-31T23:58:00Z")),
        run_count: 5,
        status: JobStatus::Pending,
        last_outcome: None,
    };
    let spec = JobSpec::new(TriggerSpec::interval(
        SignedDuration::from_secs(60),
        t("2025-12-31T00:00:00Z"),
    ));
    env.scheduler
        .restore(
            id,
            spec,
            state,
            std::sync::Arc::new(|_: &myrmex::RunContext| Ok(())),
        )
        .unwrap();
    // 23:59 and 00:00 are both due and 23:59 is a minute late: the misfire
    // policy (RunOnce) runs the latest and records the other as missed.
    let missed = wait_for(&env.events, "missed", |e| matches!(e, Event::Missed { .. }));
    assert!(
        matches!(missed, Event::Missed { count: 1, .. }),
        "{missed:?}"
    );
    let e = wait_for(&env.events, "restored run", succeeded);
    assert_eq!(scheduled(&e).unwrap(), "2026-01-01T00:00:00Z");
    let snap = env.scheduler.get_job(id).unwrap();
    assert_eq!(snap.run_count, 6);
    assert_eq!(snap.next_run_at, Some(t("2026-01-01T00:01:00Z")));
    let fresh = env
        .scheduler
        .schedule(TriggerSpec::Manual, |_| Ok(()))
        .unwrap();
    assert!(fresh.0 > id.0, "new ids come after restored ones");
}

/// The system clock bounds a park by one second unless wall-clock changes are
/// watched (Linux: a timerfd watcher), then by an hour; the bound comes back
/// when the watch ends.
#[test]
fn the_system_clock_parks_long_only_while_changes_are_watched() {
    use myrmex::{Clock, SystemClock};
    let clock = SystemClock::new();
    let now = clock.now();
    let in_2h = Some(now + jiff::SignedDuration::from_hours(2));
    let in_5s = Some(now + jiff::SignedDuration::from_secs(5));
    let short = SystemClock::DEFAULT_MAX_PARK;
    assert_eq!(clock.park_for(now, None), Some(short));
    assert_eq!(clock.park_for(now, in_5s), Some(short));
    let watch = clock.clone().watch_changes(Box::new(|| true));
    if cfg!(target_os = "linux") {
        assert!(watch.is_some(), "the timerfd watcher should start on Linux");
        let long = SystemClock::DEFAULT_MAX_WATCHED_PARK;
        assert_eq!(clock.park_for(now, None), Some(long));
        assert_eq!(clock.park_for(now, in_2h), Some(long));
        assert_eq!(clock.park_for(now, in_5s), Some(Duration::from_secs(5)));
        // Another clock (no watch through it) keeps the short bound.
        assert_eq!(SystemClock::new().park_for(now, None), Some(short));
    } else {
        assert!(watch.is_none());
    }
    drop(watch);
    assert_eq!(clock.park_for(now, None), Some(short));
    // A custom bound applies while watched.
    let custom = SystemClock::new().max_watched_park(Duration::from_secs(600));
    let w = custom.watch_changes(Box::new(|| true));
    let expect = if w.is_some() { 600 } else { 1 };
    assert_eq!(
        custom.park_for(now, None),
        Some(Duration::from_secs(expect))
    );
}
