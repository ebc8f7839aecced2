//! The protocol step by step on one or two sessions.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use myrmex_postgres::{Completion, JobSpec, OverlapPolicy, RetryBackoff, RunState, Trigger};

use crate::common::{complete, count, db, expire_all_leases, make_due, now, state};

fn secs(s: i64) -> SignedDuration {
    SignedDuration::from_secs(s)
}

#[test]
fn interval_occurrences_are_materialized_once_on_the_anchored_grid() {
    let Some(t) = db("interval_grid") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let start = now(&mut a) - secs(5);
    let mut spec = JobSpec::new("tick", "noop", Trigger::every(secs(1)));
    spec.start = Some(start);
    let job = a.create_job(&spec).unwrap();
    let r1 = a.materialize(Duration::from_secs(2)).unwrap();
    let r2 = b.materialize(Duration::from_secs(2)).unwrap();
    assert!(r1.inserted >= 7, "{r1:?}");
    assert_eq!(
        r1.conflicts + r2.conflicts + r1.cas_failures + r2.cas_failures,
        0
    );
    let runs = a.runs(job).unwrap();
    let first = start.as_second() + i64::from(start.subsec_nanosecond() > 0);
    let wm = a.watermark(job).unwrap().unwrap();
    // Contiguous whole seconds from the first grid point to just below the watermark.
    let got: Vec<i64> = runs.iter().map(|r| r.scheduled_at.as_second()).collect();
    let want: Vec<i64> = (first..wm.as_second()).collect();
    assert_eq!(got, want);
    assert!(runs.iter().all(|r| r.state == RunState::Pending));
}

#[test]
fn claim_complete_commits_effects_once() {
    let Some(t) = db("claim_complete") else {
        return;
    };
    let mut a = t.store("a");
    a.client()
        .batch_execute("CREATE TABLE effect (key text PRIMARY KEY, attempt int NOT NULL)")
        .unwrap();
    let job = a
        .create_job(&JobSpec::new("m", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, Some("req-1")).unwrap().unwrap();
    assert_eq!(
        a.trigger_now(job, Some("req-1")).unwrap(),
        None,
        "same request id"
    );
    let claimed = a.claim(10).unwrap();
    assert_eq!(claimed.len(), 1);
    let c = &claimed[0];
    assert_eq!((c.run, c.attempt, c.rescued), (run, 1, false));
    let key = c.run_key();
    let done = a
        .complete(
            c.run,
            c.attempt,
            Some(&serde_json::json!({"ok": true})),
            &mut |tx| {
                tx.execute("INSERT INTO effect VALUES ($1, $2)", &[&key, &c.attempt])
                    .map(|_| ())
            },
        )
        .unwrap();
    assert_eq!(done, Completion::Committed);
    assert_eq!(state(&mut a, run), "succeeded");
    assert_eq!(count(&mut a, "SELECT count(*) FROM effect"), 1);
    assert_eq!(
        count(
            &mut a,
            "SELECT count(*) FROM sched_attempt WHERE outcome = 'ok'"
        ),
        1
    );
    // A second completion of the same attempt (a retry after a lost reply) is
    // idempotent: reported committed, effects not written again.
    assert_eq!(complete(&mut a, c), Completion::Committed);
    assert_eq!(count(&mut a, "SELECT count(*) FROM effect"), 1);
}

#[test]
fn failures_retry_with_backoff_then_fail() {
    let Some(t) = db("fail_retry") else { return };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("f", "noop", Trigger::Manual);
    spec.max_attempts = 2;
    spec.retry_backoff = SignedDuration::from_millis(1);
    let job = a.create_job(&spec).unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let c = a.claim(1).unwrap().remove(0);
    assert_eq!(
        a.fail(c.run, c.attempt, "boom").unwrap(),
        Completion::Committed
    );
    assert_eq!(state(&mut a, run), "retry_wait");
    make_due(&mut a);
    let c2 = a.claim(1).unwrap().remove(0);
    assert_eq!(c2.attempt, 2);
    assert_eq!(
        a.fail(c2.run, c2.attempt, "boom again").unwrap(),
        Completion::Committed
    );
    assert_eq!(state(&mut a, run), "failed");
    make_due(&mut a);
    assert!(a.claim(1).unwrap().is_empty());
}

#[test]
fn a_run_whose_lease_expires_after_its_last_attempt_is_dead() {
    let Some(t) = db("dead_run") else { return };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("d", "noop", Trigger::Manual);
    spec.max_attempts = 1;
    let job = a.create_job(&spec).unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    assert_eq!(a.claim(1).unwrap().len(), 1);
    expire_all_leases(&mut a);
    let mut b = t.store("b");
    assert!(b.claim(5).unwrap().is_empty());
    assert_eq!(state(&mut b, run), "dead");
}

#[test]
fn heartbeats_renew_only_owned_runs() {
    let Some(t) = db("heartbeat") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    a.register_node("host-a", 1, "test").unwrap();
    let job = a
        .create_job(&JobSpec::new("h", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let ca = a.claim(1).unwrap().remove(0);
    assert_eq!(a.renew(&[(run, 1)]).unwrap(), vec![run]);
    let nodes = a.nodes().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].node_id.as_str(), nodes[0].running), ("a", 1));
    let running = a.running().unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(
        (running[0].id, running[0].lease_owner.as_deref()),
        (run, Some("a"))
    );
    expire_all_leases(&mut a);
    let cb = b.claim(1).unwrap().remove(0);
    assert_eq!((cb.run, cb.attempt, cb.rescued), (run, 2, true));
    assert!(
        a.renew(&[(run, ca.attempt)]).unwrap().is_empty(),
        "a lost it"
    );
    assert_eq!(b.renew(&[(run, 2)]).unwrap(), vec![run]);
}

#[test]
fn overlap_skip_keeps_one_active_run() {
    let Some(t) = db("overlap_skip") else { return };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("s", "noop", Trigger::every(secs(1)));
    spec.overlap = OverlapPolicy::Skip;
    spec.start = Some(now(&mut a) - secs(4));
    let job = a.create_job(&spec).unwrap();
    a.materialize(Duration::from_secs(2)).unwrap();
    let runs = a.runs(job).unwrap();
    let active: Vec<_> = runs
        .iter()
        .filter(|r| r.state == RunState::Pending)
        .collect();
    assert_eq!(active.len(), 1, "{runs:?}");
    assert_eq!(
        active[0].scheduled_at, runs[0].scheduled_at,
        "the oldest fires"
    );
    assert!(runs[1..].iter().all(|r| r.state == RunState::Skipped));
    let wm = a.watermark(job).unwrap().unwrap();
    assert!(wm > runs.last().unwrap().scheduled_at);
}

#[test]
fn overlap_buffer_one_waits_behind_the_active_run() {
    let Some(t) = db("overlap_buffer") else {
        return;
    };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("b1", "noop", Trigger::every(secs(1)));
    spec.overlap = OverlapPolicy::BufferOne;
    spec.start = Some(now(&mut a) - secs(4));
    let job = a.create_job(&spec).unwrap();
    a.materialize(Duration::ZERO).unwrap();
    let runs = a.runs(job).unwrap();
    let states: Vec<RunState> = runs.iter().map(|r| r.state).collect();
    assert_eq!(states[0], RunState::Pending);
    assert_eq!(states[1], RunState::Blocked);
    assert!(
        states[2..].iter().all(|s| *s == RunState::Skipped),
        "{states:?}"
    );
    let c = a.claim(5).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(complete(&mut a, &c[0]), Completion::Committed);
    assert_eq!(state(&mut a, runs[1].id), "pending");
}

#[test]
fn serial_runs_form_a_chain() {
    let Some(t) = db("overlap_serial") else {
        return;
    };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("ser", "noop", Trigger::every(secs(1)));
    spec.overlap = OverlapPolicy::Serial;
    spec.start = Some(now(&mut a) - secs(3));
    let job = a.create_job(&spec).unwrap();
    a.materialize(Duration::from_secs(1)).unwrap();
    let runs = a.runs(job).unwrap();
    assert!(runs.len() >= 4);
    assert_eq!(runs[0].state, RunState::Pending);
    assert!(
        runs[1..]
            .iter()
            .all(|r| r.state == RunState::Blocked && r.pending_deps == 1)
    );
    // A second pass chains on the last run of the first pass.
    make_due(&mut a);
    for (i, r) in runs.iter().enumerate().take(3) {
        let c = a.claim(10).unwrap();
        assert_eq!(c.len(), 1, "only the head of the chain is claimable");
        assert_eq!(c[0].run, r.id);
        assert_eq!(complete(&mut a, &c[0]), Completion::Committed);
        assert_eq!(state(&mut a, runs[i + 1].id), "pending");
        make_due(&mut a);
    }
}

#[test]
fn after_triggers_follow_their_upstream_success() {
    let Some(t) = db("after_trigger") else { return };
    let mut a = t.store("a");
    let up = a
        .create_job(&JobSpec::new("up", "noop", Trigger::Manual))
        .unwrap();
    let down = a
        .create_job(&JobSpec::new("down", "noop", Trigger::After { job: up }))
        .unwrap();
    a.trigger_now(up, None).unwrap();
    let c = a.claim(5).unwrap().remove(0);
    assert_eq!(complete(&mut a, &c), Completion::Committed);
    let runs = a.runs(down).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].scheduled_at, c.scheduled_at);
    assert_eq!(runs[0].origin, myrmex_postgres::Origin::After);
}

#[test]
fn a_schedule_edit_cancels_future_runs_of_the_old_version() {
    let Some(t) = db("edit_cancels") else { return };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("e", "noop", Trigger::every(secs(1)));
    // A minute ahead, so that every run is still in the future at the edit however
    // slow the machine is between these statements.
    spec.start = Some(now(&mut a) + secs(60));
    let job = a.create_job(&spec).unwrap();
    a.materialize(Duration::from_secs(66)).unwrap();
    let before = a.runs(job).unwrap();
    assert!(before.len() >= 5);
    let edit = a.edit_trigger(job, &Trigger::every(secs(2))).unwrap();
    assert_eq!(edit.def_version, 2);
    assert_eq!(edit.cancelled, before.len(), "all were in the future");
    a.materialize(Duration::from_secs(66)).unwrap();
    let after = a.runs(job).unwrap();
    let live: Vec<_> = after
        .iter()
        .filter(|r| r.state == RunState::Pending)
        .collect();
    assert!(!live.is_empty());
    assert!(
        live.iter()
            .all(|r| r.def_version == 2 && r.scheduled_at.as_second() % 2 == 0)
    );
    // Occurrences the two grids share were revived, not duplicated.
    let keys: std::collections::BTreeSet<Timestamp> =
        after.iter().map(|r| r.scheduled_at).collect();
    assert_eq!(keys.len(), after.len());
}

#[test]
fn the_one_running_index_keeps_manual_runs_of_a_serial_job_apart() {
    let Some(t) = db("one_running_backstop") else {
        return;
    };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("ser", "noop", Trigger::Manual);
    spec.overlap = OverlapPolicy::Serial;
    let job = a.create_job(&spec).unwrap();
    // Manual triggers carry no overlap edges: only the unique index stands between them.
    let first = a.trigger_now(job, Some("one")).unwrap().unwrap();
    a.client()
        .execute(
            "UPDATE sched_run SET scheduled_at = scheduled_at - interval '1 s', available_at = now() - interval '1 s'
             WHERE id = $1",
            &[&first.0],
        )
        .unwrap();
    let second = a.trigger_now(job, Some("two")).unwrap().unwrap();
    make_due(&mut a);
    let claimed = a.claim(10).unwrap();
    assert_eq!(
        claimed.len(),
        1,
        "the second would violate sched_run_one_running"
    );
    assert_eq!(claimed[0].run, first);
    assert_eq!(state(&mut a, second), "pending");
    assert_eq!(complete(&mut a, &claimed[0]), Completion::Committed);
    let next = a.claim(10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].run, second);
}

/// Design: a claim rescues expired leases before it takes new work, even when the
/// new work has been due for longer (an older occurrence, an earlier
/// `available_at`): a crashed node's runs are never starved by a backlog.
#[test]
fn a_claim_rescues_an_expired_lease_before_taking_older_pending_work() {
    let Some(t) = db("rescue_first") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let job = a
        .create_job(&JobSpec::new("r", "noop", Trigger::Manual))
        .unwrap();
    let orphan = a.trigger_now(job, None).unwrap().unwrap();
    assert_eq!(a.claim(1).unwrap()[0].run, orphan);
    expire_all_leases(&mut a);
    let waiting = a.trigger_now(job, None).unwrap().unwrap();
    // The pending run is the older occurrence and has been due for an hour.
    a.client()
        .execute(
            "UPDATE sched_run SET scheduled_at = now() - interval '1 hour',
               available_at = now() - interval '1 hour' WHERE id = $1",
            &[&waiting.0],
        )
        .unwrap();
    let first = b.claim(1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].run, first[0].attempt, first[0].rescued),
        (orphan, 2, true),
        "the rescue comes first"
    );
    let second = b.claim(1).unwrap();
    assert_eq!(
        (second[0].run, second[0].attempt, second[0].rescued),
        (waiting, 1, false)
    );
    assert!(b.claim(1).unwrap().is_empty());
}

/// The delay of every retry, on the database's clock: `available_at` minus the
/// failed attempt's `finished_at`, both the `now()` of the failing transaction.
#[test]
fn retries_wait_as_the_backoff_kind_says_on_the_database_clock() {
    let Some(t) = db("retry_backoff") else { return };
    let mut a = t.store("a");
    // (job, kind, base ms, max delay ms, [(least, most) ms per retry]).
    type Case<'a> = (&'a str, RetryBackoff, i64, i64, &'a [(i64, i64)]);
    let cases: &[Case<'_>] = &[
        (
            "fixed",
            RetryBackoff::Fixed,
            7_000,
            1_000,
            &[(7_000, 7_000), (7_000, 7_000), (7_000, 7_000)],
        ),
        (
            "exponential",
            RetryBackoff::Exponential,
            1_000,
            3_000,
            // 1 s, 2 s and 4 s ± 25 %, the last capped at 3 s; then the cap.
            &[(750, 1_250), (1_500, 2_500), (3_000, 3_000), (3_000, 3_000)],
        ),
        (
            // The defaults: exponential, capped at one hour (6000 s · ≥ 0.75 > 1 h).
            "default_cap",
            RetryBackoff::default(),
            3_000_000,
            -1,
            &[(2_250_000, 3_600_000), (3_600_000, 3_600_000)],
        ),
    ];
    for (name, kind, base, max, want) in cases {
        let mut spec = JobSpec::new(name, "noop", Trigger::Manual);
        spec.retry_backoff = SignedDuration::from_millis(*base);
        spec.retry_backoff_kind = *kind;
        if *max >= 0 {
            spec.retry_max_delay = SignedDuration::from_millis(*max);
        }
        spec.max_attempts = want.len() as u32 + 1;
        let job = a.create_job(&spec).unwrap();
        let run = a.trigger_now(job, None).unwrap().unwrap();
        for (i, (least, most)) in want.iter().enumerate() {
            let c = a.claim(1).unwrap().remove(0);
            assert_eq!((c.run, c.attempt), (run, i as i32 + 1), "{name}");
            assert_eq!(
                a.fail(c.run, c.attempt, "boom").unwrap(),
                Completion::Committed
            );
            let delay = count(
                &mut a,
                &format!(
                    "SELECT (extract(epoch FROM r.available_at - x.finished_at) * 1000)::bigint
                     FROM sched_run r JOIN sched_attempt x ON x.run_id = r.id AND x.attempt = r.attempt
                     WHERE r.id = {}",
                    run.0
                ),
            );
            assert!(
                (*least..=*most).contains(&delay),
                "{name}: retry {} waits {delay} ms, not in {least}..={most}",
                i + 1
            );
            assert_eq!(state(&mut a, run), "retry_wait");
            make_due(&mut a);
        }
        let last = a.claim(1).unwrap().remove(0);
        a.fail(last.run, last.attempt, "boom").unwrap();
        assert_eq!(state(&mut a, run), "failed", "{name}");
    }
}

/// `allow` with `max_concurrent = 2`, like the in-process scheduler: occurrences
/// that come due while two runs are active are recorded as skipped, and nothing
/// is materialized ahead of time (the decision needs the active runs of then).
#[test]
fn overlap_allow_with_a_bound_skips_beyond_it() {
    let Some(t) = db("overlap_allow_bound") else {
        return;
    };
    let mut a = t.store("a");
    let mut spec = JobSpec::new("ab", "noop", Trigger::every(secs(1)));
    spec.overlap = OverlapPolicy::Allow;
    spec.max_concurrent = Some(2);
    spec.start = Some(now(&mut a) - secs(5));
    let job = a.create_job(&spec).unwrap();
    let report = a.materialize(Duration::from_secs(10)).unwrap();
    let runs = a.runs(job).unwrap();
    let states: Vec<RunState> = runs.iter().map(|r| r.state).collect();
    assert!(runs.len() >= 5, "{runs:?}");
    assert_eq!(&states[..2], &[RunState::Pending, RunState::Pending]);
    assert!(
        states[2..].iter().all(|s| *s == RunState::Skipped),
        "{states:?}"
    );
    assert_eq!((report.inserted, report.skipped), (2, runs.len() - 2));
    let db_now = report.db_now.unwrap();
    assert!(
        runs.iter().all(|r| r.scheduled_at <= db_now),
        "no lookahead"
    );
}

/// A config applied again at a node's start brings the retry policy and the
/// concurrency bound in line, and `max_concurrent` is stored for `allow` jobs only.
#[test]
fn upsert_updates_the_retry_policy_and_the_concurrency_bound() {
    let Some(t) = db("upsert_policies") else {
        return;
    };
    let mut a = t.store("a");
    let read = |a: &mut myrmex_postgres::PgStore| -> (String, i64, i64, Option<i32>) {
        let r = a
            .client()
            .query_one(
                "SELECT retry_backoff_kind, retry_backoff_ms, retry_max_delay_ms, max_concurrent
                 FROM sched_job WHERE name = 'u'",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1), r.get(2), r.get(3))
    };
    let mut spec = JobSpec::new("u", "noop", Trigger::Manual);
    assert!(a.upsert_job(&spec).unwrap().1, "created");
    assert_eq!(
        read(&mut a),
        ("exponential".into(), 10_000, 3_600_000, None)
    );
    spec.retry_backoff_kind = RetryBackoff::Fixed;
    spec.retry_backoff = secs(3);
    spec.retry_max_delay = secs(60);
    spec.overlap = OverlapPolicy::Allow;
    spec.max_concurrent = Some(4);
    assert!(!a.upsert_job(&spec).unwrap().1, "updated");
    assert_eq!(read(&mut a), ("fixed".into(), 3_000, 60_000, Some(4)));
    spec.overlap = OverlapPolicy::Serial;
    a.upsert_job(&spec).unwrap();
    assert_eq!(
        read(&mut a).3,
        None,
        "a serial job runs one at a time anyway"
    );
}
