//! Stale nodes and the retention of terminal runs (`sched_run_history`), on the
//! database's clock: rows are aged by moving their timestamps back in SQL.

use std::time::Duration;

use jiff::SignedDuration;
use myrmex_postgres::{JobSpec, PgStore, RunState, StageSpec, Trigger};

use crate::common::{complete, count, db, make_due};
use crate::node::wait_for;

const HOUR: Duration = Duration::from_secs(3600);

/// An interval job with `n` past occurrences, every one run and succeeded.
fn finished_runs(s: &mut PgStore, name: &str, n: i64) -> myrmex_postgres::JobId {
    let start = s.db_now().unwrap() - SignedDuration::from_secs(n);
    let mut spec = JobSpec::new(name, "noop", Trigger::every(SignedDuration::from_secs(1)));
    spec.start = Some(start);
    spec.misfire_grace = SignedDuration::from_secs(3600);
    let job = s.create_job(&spec).unwrap();
    s.materialize(Duration::ZERO).unwrap();
    make_due(s);
    for run in s.claim(1000).unwrap() {
        complete(s, &run);
    }
    job
}

fn age_finished(s: &mut PgStore, by: &str, filter: &str) {
    s.client()
        .batch_execute(&format!(
            "UPDATE sched_run SET finished_at = now() - interval '{by}' WHERE {filter}"
        ))
        .unwrap();
}

#[test]
fn old_terminal_runs_move_to_the_history_with_their_attempts() {
    let Some(t) = db("ret_move") else { return };
    let mut s = t.store("a");
    let job = finished_runs(&mut s, "tick", 6);
    let before = s.runs(job).unwrap();
    assert!(before.len() >= 6 && before.iter().all(|r| r.state == RunState::Succeeded));
    let attempts = count(&mut s, "SELECT count(*) FROM sched_attempt");
    // Only runs that ended more than the retention ago (database clock) move.
    age_finished(
        &mut s,
        "2 hours",
        "scheduled_at < (SELECT min(scheduled_at) + interval '3 seconds' FROM sched_run)",
    );
    let old = count(
        &mut s,
        "SELECT count(*) FROM sched_run WHERE finished_at < now() - interval '1 hour'",
    );
    assert_eq!(old, 3);
    assert_eq!(s.archive_runs(HOUR, 1000).unwrap(), 3);
    assert_eq!(
        s.archive_runs(HOUR, 1000).unwrap(),
        0,
        "nothing else is old enough"
    );
    assert_eq!(count(&mut s, "SELECT count(*) FROM sched_run_history"), 3);
    // Readers see every run, moved or not; attempts are kept.
    assert_eq!(s.runs(job).unwrap(), before);
    assert_eq!(
        count(&mut s, "SELECT count(*) FROM sched_attempt"),
        attempts
    );
}

#[test]
fn a_moved_occurrence_is_never_materialized_again() {
    let Some(t) = db("ret_no_rematerialize") else {
        return;
    };
    let mut s = t.store("a");
    let job = finished_runs(&mut s, "tick", 5);
    let seen = s.runs(job).unwrap()[0].scheduled_at;
    age_finished(&mut s, "2 hours", "true");
    let moved = s.archive_runs(HOUR, 1000).unwrap();
    assert!(moved >= 5);
    // The watermark is past every moved occurrence.
    let wm = s.watermark(job).unwrap().unwrap();
    let latest: jiff::Timestamp = s
        .client()
        .query_one("SELECT max(scheduled_at) FROM sched_run_history", &[])
        .unwrap()
        .get(0);
    assert!(latest < wm);
    // A stale node that still believes in the old watermark is refused by the CAS.
    let mut stale = t.store("stale");
    let r = stale
        .materialize_job_from(job, seen, Duration::ZERO)
        .unwrap();
    assert_eq!((r.inserted, r.cas_failures), (0, 1), "{r:?}");
    // Even with the watermark forced back (a bug, or an edit moving it back), the
    // moved occurrences are refused by the history check.
    s.client()
        .execute(
            "UPDATE sched_job SET next_fire_at = $2 WHERE id = $1",
            &[&job.0, &seen],
        )
        .unwrap();
    let r = s.materialize(Duration::ZERO).unwrap();
    assert!(r.conflicts >= 5, "{r:?}");
    assert_eq!(
        count(
            &mut s,
            "SELECT count(*) FROM sched_run r JOIN sched_run_history h USING (job_id, scheduled_at, stage)"
        ),
        0,
        "no occurrence in both tables"
    );
    let all = s.runs(job).unwrap();
    let mut keys: Vec<_> = all.iter().map(|r| r.scheduled_at).collect();
    keys.dedup();
    assert_eq!(keys.len(), all.len(), "no duplicate occurrence");
}

#[test]
fn a_run_waits_in_the_hot_table_until_its_dependents_have_ended() {
    let Some(t) = db("ret_deps") else { return };
    let mut s = t.store("a");
    let mut spec = JobSpec::new("p", "noop", Trigger::Manual);
    spec.pipeline = vec![
        StageSpec::new("a", "noop", &[]),
        StageSpec::new("b", "noop", &["a"]),
    ];
    let job = s.create_job(&spec).unwrap();
    s.trigger_now(job, None).unwrap();
    let a = s.claim(10).unwrap();
    assert_eq!(a.len(), 1);
    complete(&mut s, &a[0]);
    age_finished(&mut s, "2 hours", "finished_at IS NOT NULL");
    assert_eq!(
        s.archive_runs(HOUR, 1000).unwrap(),
        0,
        "stage b has not ended"
    );
    let b = s.claim(10).unwrap();
    assert_eq!(b[0].stage, "b");
    complete(&mut s, &b[0]);
    age_finished(&mut s, "2 hours", "finished_at IS NOT NULL");
    assert_eq!(s.archive_runs(HOUR, 1000).unwrap(), 2);
    assert_eq!(count(&mut s, "SELECT count(*) FROM sched_run_dep"), 0);
    assert_eq!(s.runs(job).unwrap().len(), 2);
}

#[test]
fn archiving_goes_in_batches_and_skips_rows_another_node_holds() {
    let Some(t) = db("ret_batches") else { return };
    let mut s = t.store("a");
    finished_runs(&mut s, "tick", 8);
    age_finished(&mut s, "2 hours", "true");
    let total = count(&mut s, "SELECT count(*) FROM sched_run");
    assert_eq!(s.archive_runs(HOUR, 3).unwrap(), 3);
    // Another node holds the oldest remaining run: this one takes the others
    // without waiting for it (the test sessions' lock_timeout would fail a wait).
    let mut other = t.store("b");
    let mut tx = other.client().transaction().unwrap();
    tx.execute(
        "SELECT id FROM sched_run ORDER BY finished_at, id LIMIT 1 FOR UPDATE",
        &[],
    )
    .unwrap();
    let moved = s.archive_runs(HOUR, 1000).unwrap();
    assert_eq!(moved as i64, total - 3 - 1);
    tx.rollback().unwrap();
    assert_eq!(s.archive_runs(HOUR, 1000).unwrap(), 1);
    assert_eq!(count(&mut s, "SELECT count(*) FROM sched_run"), 0);
}

#[test]
fn nodes_without_a_heartbeat_are_stale_then_forgotten_unless_they_hold_a_lease() {
    let Some(t) = db("ret_nodes") else { return };
    let mut a = t.store("a");
    a.register_node_with("h", 1, "v", Duration::from_secs(1))
        .unwrap();
    let mut b = t.store("b");
    b.register_node_with("h", 2, "v", HOUR).unwrap();
    let mut old = t.store("old");
    // Registered by an older build: no stale_after of its own (30 s assumed).
    old.register_node("h", 3, "v").unwrap();
    let mut busy = t.store("busy");
    busy.register_node_with("h", 4, "v", Duration::from_secs(1))
        .unwrap();
    let job = busy
        .create_job(&JobSpec::new("m", "noop", Trigger::Manual))
        .unwrap();
    busy.trigger_now(job, None).unwrap();
    assert_eq!(busy.claim(1).unwrap().len(), 1);
    let set_age = |s: &mut PgStore, node: &str, age: &str| {
        s.client()
            .execute(
                &format!("UPDATE sched_node SET heartbeat_at = now() - interval '{age}' WHERE node_id = $1"),
                &[&node],
            )
            .unwrap();
    };
    set_age(&mut a, "a", "2 seconds");
    set_age(&mut a, "b", "2 seconds");
    set_age(&mut a, "old", "40 seconds");
    let stale: Vec<(String, bool)> = a
        .nodes()
        .unwrap()
        .into_iter()
        .map(|n| (n.node_id, n.stale))
        .collect();
    assert_eq!(
        stale,
        [
            ("a".to_owned(), true),
            ("b".to_owned(), false),
            ("old".to_owned(), true),
            ("busy".to_owned(), false),
        ]
    );
    for n in ["a", "old", "busy"] {
        set_age(&mut b, n, "2 days");
    }
    // `b` forgets the gone nodes, but not `busy`, which still holds a lease.
    assert_eq!(b.forget_nodes(24 * HOUR).unwrap(), 2);
    let left: Vec<String> = b.nodes().unwrap().into_iter().map(|n| n.node_id).collect();
    assert_eq!(left, ["b", "busy"]);
}

#[test]
fn a_running_node_archives_old_runs_and_forgets_gone_nodes() {
    let Some(t) = db("ret_node_maint") else {
        return;
    };
    let mut s = t.store("ctl");
    let mut spec = JobSpec::new(
        "fast",
        "noop",
        Trigger::every(SignedDuration::from_millis(100)),
    );
    spec.start = Some(s.db_now().unwrap());
    let job = s.create_job(&spec).unwrap();
    s.client()
        .execute(
            "INSERT INTO sched_node (node_id, hostname, pid, version, heartbeat_at)
             VALUES ('ghost', 'h', 9, 'v', now() - interval '2 days')",
            &[],
        )
        .unwrap();
    let noop: myrmex_postgres::Handler = std::sync::Arc::new(|_| Ok(None));
    let node = {
        let mut cfg = myrmex_postgres::NodeConfig::new(t.options.clone().node_id("n1"));
        cfg.tick = Duration::from_millis(100);
        cfg.poll = Duration::from_millis(100);
        cfg.maintenance_every = Duration::from_millis(100);
        cfg.retention = Duration::from_millis(1);
        let handlers = std::collections::HashMap::from([("noop".to_owned(), noop)]);
        myrmex_postgres::Node::start(cfg, handlers).unwrap()
    };
    wait_for("ten archived runs", || {
        count(&mut s, "SELECT count(*) FROM sched_run_history") >= 10
    });
    wait_for("the ghost node to be forgotten", || {
        count(
            &mut s,
            "SELECT count(*) FROM sched_node WHERE node_id = 'ghost'",
        ) == 0
    });
    s.set_paused(job, true).unwrap();
    node.shutdown().unwrap();
    // Hot and history rows together are still one run per grid point, no gap.
    let runs = s.runs(job).unwrap();
    let ms: Vec<i64> = runs
        .iter()
        .map(|r| r.scheduled_at.as_millisecond())
        .collect();
    let first = ms[0];
    let want: Vec<i64> = (0..ms.len() as i64).map(|k| first + 100 * k).collect();
    assert_eq!(ms, want);
}
