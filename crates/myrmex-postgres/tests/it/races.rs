//! Deterministic races: two sessions interleaved by hand. Each step is a statement
//! on one session; the assertions are the CAS and fence outcomes.

use std::time::Duration;

use jiff::SignedDuration;
use myrmex_postgres::{Completion, JobSpec, Trigger};

use crate::common::{complete, count, db, expire_all_leases, now, state};

#[test]
fn a_locked_job_is_skipped_by_other_materializers_and_edits_wait() {
    let Some(t) = db("race_lock") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let mut c = t.store("c");
    let mut spec = JobSpec::new("j", "noop", Trigger::every(SignedDuration::from_secs(1)));
    spec.start = Some(now(&mut a));
    let job = a.create_job(&spec).unwrap();
    // Session a is in the middle of a materialization: it holds the job's row lock.
    let mut tx = a.client().transaction().unwrap();
    tx.execute(
        "SELECT 1 FROM sched_job WHERE id = $1 FOR NO KEY UPDATE",
        &[&job.0],
    )
    .unwrap();
    // b skips the locked job instead of waiting or duplicating its work.
    let r = b.materialize(Duration::from_secs(2)).unwrap();
    assert_eq!((r.jobs, r.inserted), (0, 0));
    // An edit waits for the lock and gives up after lock_timeout.
    let err = c
        .edit_trigger(job, &Trigger::every(SignedDuration::from_secs(2)))
        .unwrap_err();
    assert!(err.is_contention(), "{err:?}");
    tx.rollback().unwrap();
    let r = b.materialize(Duration::from_secs(2)).unwrap();
    assert_eq!(r.jobs, 1);
    assert!(r.inserted >= 2);
}

#[test]
fn a_stale_materializer_is_refused_by_the_watermark_cas_and_the_unique_key() {
    let Some(t) = db("race_stale_cas") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let mut spec = JobSpec::new("j", "noop", Trigger::every(SignedDuration::from_secs(1)));
    spec.start = Some(now(&mut a) - SignedDuration::from_secs(3));
    let job = a.create_job(&spec).unwrap();
    // a reads the watermark, then b materializes first.
    let seen = a.watermark(job).unwrap().unwrap();
    let rb = b.materialize(Duration::from_secs(1)).unwrap();
    assert!(rb.inserted >= 4);
    let runs_before = a.runs(job).unwrap().len();
    // a acts on what it saw: every insert conflicts and the CAS fails; nothing changes.
    let ra = a
        .materialize_job_from(job, seen, Duration::from_secs(1))
        .unwrap();
    assert_eq!(ra.cas_failures, 1, "{ra:?}");
    assert!(ra.conflicts >= rb.inserted, "{ra:?}");
    assert_eq!(ra.inserted, 0);
    assert_eq!(a.runs(job).unwrap().len(), runs_before);
}

#[test]
fn an_edit_between_read_and_materialize_fails_the_cas() {
    let Some(t) = db("race_edit_cas") else { return };
    let mut a = t.store("a");
    let mut c = t.store("c");
    let mut spec = JobSpec::new("j", "noop", Trigger::every(SignedDuration::from_secs(1)));
    spec.start = Some(now(&mut a) - SignedDuration::from_secs(2));
    let job = a.create_job(&spec).unwrap();
    let seen = a.watermark(job).unwrap().unwrap();
    c.edit_trigger(job, &Trigger::every(SignedDuration::from_secs(5)))
        .unwrap();
    let r = a
        .materialize_job_from(job, seen, Duration::from_secs(10))
        .unwrap();
    assert_eq!((r.cas_failures, r.inserted), (1, 0));
    assert_eq!(count(&mut a, "SELECT count(*) FROM sched_run"), 0);
}

fn effect_table(s: &mut myrmex_postgres::PgStore) {
    s.client()
        .batch_execute("CREATE TABLE effect (run_id bigint PRIMARY KEY, attempt int NOT NULL)")
        .unwrap();
}

#[test]
fn a_reclaim_fences_the_old_attempt() {
    let Some(t) = db("race_reclaim_first") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    effect_table(&mut a);
    let job = a
        .create_job(&JobSpec::new("j", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let ca = a.claim(1).unwrap().remove(0);
    expire_all_leases(&mut a);
    let cb = b.claim(1).unwrap().remove(0);
    assert_eq!((cb.attempt, cb.rescued), (2, true));
    // The old attempt finishes late: refused, and its effect does not commit.
    let effect = |attempt: i32| {
        move |tx: &mut postgres::Transaction<'_>| {
            tx.execute("INSERT INTO effect VALUES ($1, $2)", &[&run.0, &attempt])
                .map(|_| ())
        }
    };
    let done_a = a
        .complete(run, ca.attempt, None, &mut effect(ca.attempt))
        .unwrap();
    assert_eq!(done_a, Completion::Fenced);
    assert!(a.renew(&[(run, ca.attempt)]).unwrap().is_empty());
    let done_b = b
        .complete(run, cb.attempt, None, &mut effect(cb.attempt))
        .unwrap();
    assert_eq!(done_b, Completion::Committed);
    let row = a
        .client()
        .query_one("SELECT attempt FROM effect", &[])
        .unwrap();
    assert_eq!(
        row.get::<_, i32>(0),
        2,
        "the effect carries the final attempt"
    );
    assert_eq!(
        count(
            &mut a,
            "SELECT count(*) FROM sched_attempt WHERE outcome = 'fenced'"
        ),
        1
    );
    assert_eq!(
        count(
            &mut a,
            "SELECT count(*) FROM sched_attempt WHERE outcome = 'ok' AND attempt = 2"
        ),
        1
    );
}

#[test]
fn a_slow_owner_may_finish_before_anyone_reclaims() {
    let Some(t) = db("race_complete_first") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let job = a
        .create_job(&JobSpec::new("j", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let ca = a.claim(1).unwrap().remove(0);
    expire_all_leases(&mut a);
    // Interleave: b tries to reclaim while a's completion transaction holds the row.
    let mut b_saw = None;
    let done = a
        .complete(run, ca.attempt, None, &mut |_tx| {
            b_saw = Some(b.claim(1).map(|v| v.len()));
            Ok(())
        })
        .unwrap();
    assert_eq!(done, Completion::Committed);
    assert_eq!(b_saw.unwrap().unwrap(), 0, "the locked row is skipped");
    assert!(
        b.claim(1).unwrap().is_empty(),
        "and after the commit it is done"
    );
    assert_eq!(state(&mut a, run), "succeeded");
}

#[test]
fn a_cancel_is_seen_by_the_next_heartbeat() {
    let Some(t) = db("race_cancel") else { return };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let job = a
        .create_job(&JobSpec::new("j", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let ca = a.claim(1).unwrap().remove(0);
    assert!(b.cancel(run).unwrap());
    assert!(a.renew(&[(run, ca.attempt)]).unwrap().is_empty());
    assert_eq!(
        a.complete(run, ca.attempt, None, &mut |_| Ok(())).unwrap(),
        Completion::Fenced
    );
    assert_eq!(state(&mut a, run), "cancelled");
}

/// The outcome of `(run, attempt)` in the attempt history.
fn outcome(
    s: &mut myrmex_postgres::PgStore,
    run: myrmex_postgres::RunId,
    attempt: i32,
) -> Option<String> {
    s.client()
        .query_one(
            "SELECT outcome FROM sched_attempt WHERE run_id = $1 AND attempt = $2",
            &[&run.0, &attempt],
        )
        .unwrap()
        .get(0)
}

/// A completion whose COMMIT reached the server but whose reply was lost is retried
/// by its worker (on a new session): the retry finds the run already ended by this
/// very attempt, reports it committed, and leaves the attempt's outcome alone.
#[test]
fn a_retried_completion_that_already_committed_is_not_relabelled() {
    let Some(t) = db("race_retried_completion") else {
        return;
    };
    let mut a = t.store("a");
    effect_table(&mut a);
    let job = a
        .create_job(&JobSpec::new("j", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let c = a.claim(1).unwrap().remove(0);
    let mut calls = 0;
    let mut effect = |tx: &mut postgres::Transaction<'_>| {
        calls += 1;
        tx.execute("INSERT INTO effect VALUES ($1, $2)", &[&run.0, &c.attempt])
            .map(|_| ())
    };
    assert_eq!(
        a.complete(run, c.attempt, None, &mut effect).unwrap(),
        Completion::Committed
    );
    // The retry, as from a fresh session after the first one was cut.
    let mut retry = t.store("a");
    assert_eq!(
        retry.complete(run, c.attempt, None, &mut effect).unwrap(),
        Completion::Committed
    );
    assert_eq!(calls, 1, "the effects ran once");
    assert_eq!(outcome(&mut a, run, c.attempt).as_deref(), Some("ok"));
    assert_eq!(state(&mut a, run), "succeeded");
    // A failure reported for the attempt that succeeded is refused, and still does
    // not relabel the committed outcome.
    assert_eq!(a.fail(run, c.attempt, "late").unwrap(), Completion::Fenced);
    assert_eq!(outcome(&mut a, run, c.attempt).as_deref(), Some("ok"));
}

/// The same for failures: a retried failure of an attempt whose failure committed is
/// reported committed, both when the run ended `failed` and when it went back to
/// `retry_wait` and another node already took the next attempt.
#[test]
fn a_retried_failure_that_already_committed_is_not_relabelled() {
    let Some(t) = db("race_retried_failure") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let mut spec = JobSpec::new("j", "noop", Trigger::Manual);
    spec.max_attempts = 2;
    spec.retry_backoff = SignedDuration::from_millis(1);
    let job = a.create_job(&spec).unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    let c1 = a.claim(1).unwrap().remove(0);
    assert_eq!(a.fail(run, 1, "boom").unwrap(), Completion::Committed);
    crate::common::make_due(&mut a);
    let c2 = b.claim(1).unwrap().remove(0);
    assert_eq!((c1.attempt, c2.attempt), (1, 2));
    // a's retry of its failure, after b took attempt 2.
    assert_eq!(a.fail(run, 1, "boom").unwrap(), Completion::Committed);
    assert_eq!(outcome(&mut a, run, 1).as_deref(), Some("error"));
    // A success reported for the failed attempt is refused without relabelling.
    assert_eq!(complete(&mut a, &c1), Completion::Fenced);
    assert_eq!(outcome(&mut a, run, 1).as_deref(), Some("error"));
    // The last attempt fails for good; its retry is idempotent too.
    assert_eq!(b.fail(run, 2, "boom 2").unwrap(), Completion::Committed);
    assert_eq!(b.fail(run, 2, "boom 2").unwrap(), Completion::Committed);
    assert_eq!(outcome(&mut a, run, 2).as_deref(), Some("error"));
    assert_eq!(state(&mut a, run), "failed");
    assert_eq!(
        count(
            &mut a,
            "SELECT count(*) FROM sched_attempt WHERE outcome = 'fenced'"
        ),
        0
    );
}

/// A genuinely stale attempt (its lease expired and another node took the run) is
/// still labelled `fenced`, whether its completion or its failure arrives late.
#[test]
fn a_stale_attempt_is_still_labelled_fenced() {
    let Some(t) = db("race_stale_fenced") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let job = a
        .create_job(&JobSpec::new("j", "noop", Trigger::Manual))
        .unwrap();
    let run = a.trigger_now(job, None).unwrap().unwrap();
    a.claim(1).unwrap();
    expire_all_leases(&mut a);
    let cb = b.claim(1).unwrap().remove(0);
    assert_eq!(outcome(&mut a, run, 1).as_deref(), Some("lease_expired"));
    assert_eq!(a.fail(run, 1, "late").unwrap(), Completion::Fenced);
    assert_eq!(outcome(&mut a, run, 1).as_deref(), Some("fenced"));
    assert_eq!(
        a.complete(run, 1, None, &mut |_| Ok(())).unwrap(),
        Completion::Fenced
    );
    assert_eq!(outcome(&mut a, run, 1).as_deref(), Some("fenced"));
    assert_eq!(complete(&mut b, &cb), Completion::Committed);
    assert_eq!(outcome(&mut a, run, 2).as_deref(), Some("ok"));
}

/// `allow` with `max_concurrent = 2`: claims on two sessions never hold more than
/// two leases of the job, a finished run frees a slot, and unbounded jobs are
/// claimed beside it as usual.
#[test]
fn max_concurrent_bounds_the_running_runs_of_an_allow_job() {
    let Some(t) = db("race_max_concurrent") else {
        return;
    };
    let mut a = t.store("a");
    let mut b = t.store("b");
    let mut spec = JobSpec::new("bounded", "noop", Trigger::Manual);
    spec.overlap = myrmex_postgres::OverlapPolicy::Allow;
    spec.max_concurrent = Some(2);
    let bounded = a.create_job(&spec).unwrap();
    let free = a
        .create_job(&JobSpec::new("free", "noop", Trigger::Manual))
        .unwrap();
    for _ in 0..5 {
        a.trigger_now(bounded, None).unwrap().unwrap();
    }
    for _ in 0..3 {
        a.trigger_now(free, None).unwrap().unwrap();
    }
    let of =
        |runs: &[myrmex_postgres::ClaimedRun], job| runs.iter().filter(|r| r.job == job).count();
    let ca = a.claim(10).unwrap();
    assert_eq!((of(&ca, bounded), of(&ca, free)), (2, 3));
    let cb = b.claim(10).unwrap();
    assert!(cb.is_empty(), "the bound is reached: {cb:?}");
    let first = ca.iter().find(|r| r.job == bounded).unwrap();
    assert_eq!(complete(&mut a, first), Completion::Committed);
    let cb = b.claim(10).unwrap();
    assert_eq!(of(&cb, bounded), 1, "one slot freed");
    assert!(b.claim(10).unwrap().is_empty());
    // A rescue keeps the count: the expired lease is taken over, not added to.
    expire_all_leases(&mut a);
    let rescued = b.claim(10).unwrap();
    assert!(rescued.iter().all(|r| r.rescued), "{rescued:?}");
    assert_eq!(
        count(
            &mut a,
            &format!(
                "SELECT count(*) FROM sched_run WHERE job_id = {} AND state = 'running'",
                bounded.0
            )
        ),
        2
    );
}

/// Four sessions claiming at the same instant (released by a barrier), round after
/// round: the bound holds whatever the interleaving.
#[test]
fn max_concurrent_holds_under_simultaneous_claims() {
    let Some(t) = db("race_max_concurrent_threads") else {
        return;
    };
    const SESSIONS: usize = 4;
    const LIMIT: i64 = 3;
    let mut a = t.store("a");
    let mut spec = JobSpec::new("bounded", "noop", Trigger::Manual);
    spec.max_concurrent = Some(LIMIT as u32);
    let job = a.create_job(&spec).unwrap();
    let mut stores: Vec<_> = (0..SESSIONS).map(|i| t.store(&format!("n{i}"))).collect();
    for round in 0..5 {
        for _ in 0..10 {
            a.trigger_now(job, None).unwrap().unwrap();
        }
        let barrier = std::sync::Barrier::new(SESSIONS);
        let claimed: Vec<myrmex_postgres::ClaimedRun> = std::thread::scope(|s| {
            let handles: Vec<_> = stores
                .iter_mut()
                .map(|st| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        st.claim(10).unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(claimed.len() as i64, LIMIT, "round {round}");
        assert_eq!(
            count(
                &mut a,
                "SELECT count(*) FROM sched_run WHERE state = 'running'"
            ),
            LIMIT,
            "round {round}"
        );
        // Finish everything before the next round.
        for c in &claimed {
            assert_eq!(complete(&mut a, c), Completion::Committed);
        }
        while let Some(more) = Some(a.claim(10).unwrap()).filter(|v| !v.is_empty()) {
            assert!(more.len() as i64 <= LIMIT);
            for c in &more {
                complete(&mut a, c);
            }
        }
    }
}
