//! Deterministic races: two sessions interleaved by hand. Each step is a statement
//! on one session; the assertions are the CAS and fence outcomes.

use std::time::Duration;

use jiff::SignedDuration;
use myrmex_postgres::{Completion, JobSpec, Trigger};

use crate::common::{count, db, expire_all_leases, now, state};

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
