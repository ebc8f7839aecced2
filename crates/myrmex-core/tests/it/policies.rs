//! Every policy, driven through the core with explicit instants.

use std::time::Duration;

use jiff::SignedDuration;
use myrmex_core::{
    AttemptResult, Event, JobId, JobSpec, JobStatus, MisfirePolicy, Outcome, OverlapPolicy,
    RestoredState, RetentionPolicy, RetryPolicy, SkipReason, TriggerSpec, every,
};

use crate::harness::{Harness, t};

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn per_minute() -> JobSpec {
    JobSpec::new(every(Duration::from_secs(60)))
}

fn missed(h: &Harness) -> Vec<(String, String, u64)> {
    h.events
        .iter()
        .filter_map(|e| match e {
            Event::Missed {
                first, last, count, ..
            } => Some((first.to_string(), last.to_string(), *count)),
            _ => None,
        })
        .collect()
}

#[test]
fn on_time_fires_follow_the_grid() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(1, per_minute());
    h.run_until("2026-01-01T00:03:30Z");
    assert_eq!(
        h.fired(),
        [
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            "2026-01-01T00:03:00Z"
        ]
    );
    assert!(missed(&h).is_empty());
}

#[test]
fn misfire_run_once_runs_the_latest_and_records_the_rest() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(1, per_minute());
    h.jump_to("2026-01-01T00:10:30Z");
    assert_eq!(h.fired(), ["2026-01-01T00:10:00Z"]);
    assert_eq!(
        missed(&h),
        [(
            "2026-01-01T00:01:00Z".into(),
            "2026-01-01T00:09:00Z".into(),
            9
        )]
    );
    assert_eq!(h.core.next_wake(), Some(t("2026-01-01T00:11:00Z")));
}

#[test]
fn misfire_skip_runs_nothing() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(1, per_minute().misfire(MisfirePolicy::Skip));
    h.jump_to("2026-01-01T00:10:30Z");
    assert!(h.fired().is_empty());
    assert_eq!(
        missed(&h),
        [(
            "2026-01-01T00:01:00Z".into(),
            "2026-01-01T00:10:00Z".into(),
            10
        )]
    );
}

#[test]
fn misfire_run_all_runs_each_missed_occurrence() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(
        1,
        per_minute()
            .misfire(MisfirePolicy::RunAll)
            .overlap(OverlapPolicy::Allow(100)),
    );
    h.jump_to("2026-01-01T00:03:30Z");
    assert_eq!(
        h.fired(),
        [
            "2026-01-01T00:01:00Z",
            "2026-01-01T00:02:00Z",
            "2026-01-01T00:03:00Z"
        ]
    );
    assert!(missed(&h).is_empty());
}

#[test]
fn within_grace_a_late_fire_is_on_time() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(
        1,
        per_minute()
            .misfire(MisfirePolicy::Skip)
            .misfire_grace(secs(5)),
    );
    h.jump_to("2026-01-01T00:01:04Z");
    assert_eq!(h.fired(), ["2026-01-01T00:01:00Z"]);
}

#[test]
fn overlap_skip_queue_one_and_allow() {
    for (policy, want_started, want_skipped) in [
        (OverlapPolicy::Skip, 1, 2),
        (OverlapPolicy::QueueOne, 1, 1),
        (OverlapPolicy::Allow(2), 2, 1),
    ] {
        let mut h = Harness::new("2026-01-01T00:00:00Z");
        h.auto = None;
        h.add(
            1,
            JobSpec::new(every(Duration::from_secs(1))).overlap(policy),
        );
        h.run_until("2026-01-01T00:00:03Z");
        let skipped = h
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Skipped {
                        reason: SkipReason::Overlap,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(
            (h.started.len(), skipped),
            (want_started, want_skipped),
            "{policy:?}"
        );
        // Finishing the first run starts the queued one.
        h.finish(0, AttemptResult::Succeeded);
        let queued = if policy == OverlapPolicy::QueueOne {
            1
        } else {
            0
        };
        assert_eq!(
            h.started.len(),
            want_started + queued,
            "{policy:?} after finish"
        );
    }
}

#[test]
fn retry_fixed_then_success() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.auto = None;
    h.add(
        1,
        JobSpec::new(TriggerSpec::once(t("2026-01-01T00:00:10Z"))).retry(RetryPolicy::Fixed {
            max_attempts: 3,
            delay: secs(5),
            jitter: SignedDuration::ZERO,
        }),
    );
    h.run_until("2026-01-01T00:00:10Z");
    h.finish(0, AttemptResult::Failed("boom".into()));
    assert!(matches!(
        h.events.last(),
        Some(Event::RunRetrying { failed_attempt: 1, retry_at, .. }) if *retry_at == t("2026-01-01T00:00:15Z")
    ));
    h.run_until("2026-01-01T00:00:15Z");
    assert_eq!(h.started[1].attempt, 2);
    assert_eq!(h.started[1].scheduled_at, t("2026-01-01T00:00:10Z"));
    h.finish(1, AttemptResult::Succeeded);
    let report = h.events.iter().find_map(|e| match e {
        Event::RunSucceeded(r) => Some(r.clone()),
        _ => None,
    });
    let report = report.expect("succeeded");
    assert_eq!((report.attempts, report.outcome), (2, Outcome::Succeeded));
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::JobFinished {
            status: JobStatus::Completed,
            ..
        }
    )));
    assert!(h.core.is_empty(), "finished one-shot removed");
}

#[test]
fn retry_exponential_gives_up_after_max_attempts() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.auto = Some(AttemptResult::Failed("always".into()));
    h.add(
        1,
        JobSpec::new(TriggerSpec::once(t("2026-01-01T00:00:00Z"))).retry(
            RetryPolicy::Exponential {
                max_attempts: 4,
                initial: secs(1),
                max_delay: secs(3),
                jitter: SignedDuration::ZERO,
            },
        ),
    );
    h.run_until("2026-01-01T01:00:00Z");
    let starts: Vec<String> = h
        .started
        .iter()
        .map(|s| format!("{}@{}", s.attempt, s.scheduled_at))
        .collect();
    assert_eq!(starts.len(), 4);
    let retry_at: Vec<String> = h
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RunRetrying { retry_at, .. } => Some(retry_at.to_string()),
            _ => None,
        })
        .collect();
    // 1 s, 2 s, then capped at 3 s.
    assert_eq!(
        retry_at,
        [
            "2026-01-01T00:00:01Z",
            "2026-01-01T00:00:03Z",
            "2026-01-01T00:00:06Z"
        ]
    );
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::RunFailed(r) if r.attempts == 4))
    );
    assert!(h.events.iter().any(|e| matches!(
        e,
        Event::JobFinished {
            status: JobStatus::Failed,
            ..
        }
    )));
}

#[test]
fn timeout_cancels_and_records_timed_out() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.auto = None;
    h.add(
        1,
        JobSpec::new(TriggerSpec::once(t("2026-01-01T00:00:00Z"))).timeout(secs(30)),
    );
    h.run_until("2026-01-01T00:00:00Z");
    assert_eq!(h.started[0].deadline, Some(t("2026-01-01T00:00:30Z")));
    h.run_until("2026-01-01T00:00:29Z");
    assert!(h.cancels.is_empty());
    h.run_until("2026-01-01T00:00:30Z");
    assert_eq!(h.cancels, [h.started[0].run]);
    // The handler notices the token and returns (an error or not).
    h.finish(0, AttemptResult::Failed("cancelled".into()));
    assert!(
        h.events
            .iter()
            .any(|e| matches!(e, Event::RunTimedOut(r) if r.outcome == Outcome::TimedOut))
    );
}

#[test]
fn a_stale_attempt_report_is_refused() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.auto = None;
    h.add(
        1,
        JobSpec::new(TriggerSpec::once(t("2026-01-01T00:00:00Z"))),
    );
    h.run_until("2026-01-01T00:00:00Z");
    let s = &h.started[0];
    let mut out = Vec::new();
    assert!(
        h.core
            .finish(h.now, s.run, 2, AttemptResult::Succeeded, &mut out)
            .is_err()
    );
    assert!(
        h.core
            .finish(h.now, s.run, 1, AttemptResult::Succeeded, &mut out)
            .is_ok()
    );
    assert!(
        h.core
            .finish(h.now, s.run, 1, AttemptResult::Succeeded, &mut out)
            .is_err()
    );
}

#[test]
fn max_runs_ends_the_job() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(
        1,
        JobSpec::new(every(Duration::from_secs(1)))
            .max_runs(3)
            .retention(RetentionPolicy::Keep),
    );
    h.run_until("2026-01-01T00:01:00Z");
    assert_eq!(h.fired().len(), 3);
    let snap = h.core.snapshot(JobId(1)).expect("kept");
    assert_eq!(
        (snap.status, snap.run_count, snap.next_run_at),
        (JobStatus::Completed, 3, None)
    );
    assert_eq!(snap.history.len(), 3);
}

#[test]
fn jitter_is_bounded_and_deterministic() {
    let run = || {
        let mut h = Harness::new("2026-01-01T00:00:00Z");
        h.add(1, per_minute().jitter(secs(10)));
        let mut wakes = Vec::new();
        for _ in 0..20 {
            let w = h.core.next_wake().unwrap();
            wakes.push(w);
            h.run_until(&w.to_string());
        }
        (wakes, h.fired())
    };
    let (a, fired) = run();
    let (b, _) = run();
    assert_eq!(a, b);
    for (w, f) in a.iter().zip(&fired) {
        let delay = w.duration_since(t(f));
        assert!(
            delay >= SignedDuration::ZERO && delay <= secs(10),
            "{delay:?}"
        );
    }
    assert!(
        a.iter().zip(&fired).any(|(w, f)| *w != t(f)),
        "some jitter applied"
    );
}

#[test]
fn pause_holds_fires_and_resume_applies_the_misfire_policy() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(1, per_minute().misfire(MisfirePolicy::Skip));
    h.core.pause(JobId(1)).unwrap();
    assert_eq!(h.core.status(JobId(1)), Some(JobStatus::Paused));
    h.run_until("2026-01-01T00:05:30Z");
    assert!(h.fired().is_empty());
    h.core.resume(JobId(1)).unwrap();
    h.run_until("2026-01-01T00:06:00Z");
    assert_eq!(
        missed(&h),
        [(
            "2026-01-01T00:01:00Z".into(),
            "2026-01-01T00:05:00Z".into(),
            5
        )]
    );
    assert_eq!(h.fired(), ["2026-01-01T00:06:00Z"]);
}

#[test]
fn cancel_stops_fires_and_running_runs() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.auto = None;
    h.add(1, per_minute());
    h.run_until("2026-01-01T00:01:00Z");
    let mut out = Vec::new();
    h.core.cancel(h.now, JobId(1), &mut out).unwrap();
    h.absorb(out);
    assert_eq!(h.cancels, [h.started[0].run]);
    assert!(!h.core.contains(JobId(1)));
    h.finish(0, AttemptResult::Failed("stopped".into()));
    assert!(h.events.iter().any(|e| matches!(e, Event::RunCancelled(_))));
    h.run_until("2026-01-01T01:00:00Z");
    assert_eq!(h.started.len(), 1);
}

#[test]
fn clock_set_back_reanchors_intervals_but_never_refires_wall_times() {
    let mut h = Harness::new("2026-01-01T10:00:00Z");
    h.add(1, per_minute());
    h.add(
        2,
        JobSpec::new(TriggerSpec::once(t("2026-01-01T10:02:00Z"))),
    );
    h.run_until("2026-01-01T10:02:30Z");
    assert_eq!(
        h.fired(),
        [
            "2026-01-01T10:01:00Z",
            "2026-01-01T10:02:00Z",
            "2026-01-01T10:02:00Z"
        ]
    );
    // The wall clock is set back one hour.
    h.now = t("2026-01-01T09:02:30Z");
    h.core.clock_jumped(h.now, secs(-3600));
    // The per-minute job keeps its period in real time: next at 09:03, not 10:03.
    assert_eq!(h.core.next_wake(), Some(t("2026-01-01T09:03:00Z")));
    h.run_until("2026-01-01T09:05:00Z");
    assert_eq!(
        h.fired()[3..],
        [
            "2026-01-01T09:03:00Z",
            "2026-01-01T09:04:00Z",
            "2026-01-01T09:05:00Z"
        ]
    );
}

#[test]
fn restored_state_continues_from_the_watermark() {
    let mut h = Harness::new("2026-01-01T00:10:30Z");
    let restored = RestoredState {
        created_at: t("2026-01-01T00:00:00Z"),
        next_run_at: Some(t("2026-01-01T00:08:00Z")),
        last_run_at: Some(t("2026-01-01T00:07:00Z")),
        run_count: 7,
        status: JobStatus::Pending,
        last_outcome: Some(Outcome::Succeeded),
    };
    let spec = JobSpec::new(TriggerSpec::interval(secs(60), t("2026-01-01T00:01:00Z")))
        .misfire(MisfirePolicy::RunAll)
        .overlap(OverlapPolicy::Allow(10));
    h.core
        .add(h.now, JobId(9), spec, Some(restored), ())
        .unwrap();
    h.jump_to("2026-01-01T00:10:30Z");
    assert_eq!(
        h.fired(),
        [
            "2026-01-01T00:08:00Z",
            "2026-01-01T00:09:00Z",
            "2026-01-01T00:10:00Z"
        ]
    );
    assert_eq!(h.core.snapshot(JobId(9)).unwrap().run_count, 10);
}

#[test]
fn manual_jobs_fire_only_when_released() {
    let mut h = Harness::new("2026-01-01T00:00:00Z");
    h.add(1, JobSpec::new(TriggerSpec::Manual));
    h.run_until("2026-01-02T00:00:00Z");
    assert!(h.fired().is_empty());
    assert_eq!(h.core.status(JobId(1)), Some(JobStatus::Pending));
    let mut out = Vec::new();
    h.core
        .release(h.now, JobId(1), t("2026-01-01T12:00:00Z"), &mut out)
        .unwrap();
    h.absorb(out);
    assert_eq!(h.fired(), ["2026-01-01T12:00:00Z"]);
    assert!(h.core.contains(JobId(1)), "manual jobs are never exhausted");
    h.core.block(JobId(1)).unwrap();
    assert_eq!(h.core.status(JobId(1)), Some(JobStatus::Blocked));
}

#[test]
fn run_history_keeps_the_newest_runs_in_order_at_its_bound() {
    // (history bound, runs): below, at and past the bound, and the default.
    for (keep, runs) in [(3u16, 2usize), (3, 3), (3, 7), (1, 4), (0, 3), (10, 25)] {
        let mut h = Harness::new("2026-01-01T00:00:00Z");
        let mut spec = JobSpec::new(every(Duration::from_secs(1)));
        spec.policies.history = keep;
        if keep == 10 {
            spec.policies = myrmex_core::JobPolicies::default();
        }
        h.add(1, spec);
        h.run_until(&format!("2026-01-01T00:00:{runs:02}Z"));
        let snap = h.core.snapshot(JobId(1)).expect("job");
        assert_eq!(snap.run_count as usize, runs, "keep {keep}");
        let kept: Vec<_> = snap.history.iter().map(|r| r.scheduled_at).collect();
        let want: Vec<_> = (runs.saturating_sub(keep as usize) + 1..=runs)
            .map(|i| t(&format!("2026-01-01T00:00:{i:02}Z")))
            .collect();
        assert_eq!(
            kept, want,
            "keep {keep}, {runs} runs: the newest, oldest first"
        );
    }
}
