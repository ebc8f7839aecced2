//! The library's `Node`: timeouts of handlers, node maintenance (stale nodes,
//! retention), with real threads on the test database. Conditions are polled in
//! the database, never waited for by sleeping a fixed time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use myrmex_postgres::{Handler, JobSpec, Node, NodeConfig, PgStore, RunContext, Trigger};

use crate::common::TestDb;

/// A node with fast timings on the test schema.
pub fn start_node(t: &TestDb, name: &str, handlers: &[(&str, Handler)]) -> Node {
    let mut cfg = NodeConfig::new(t.options.clone().node_id(name));
    cfg.workers = 2;
    cfg.tick = Duration::from_millis(100);
    cfg.poll = Duration::from_millis(100);
    cfg.heartbeat = Duration::from_millis(200);
    cfg.timeout_grace = Duration::from_millis(300);
    let handlers: HashMap<String, Handler> = handlers
        .iter()
        .map(|(n, h)| ((*n).to_owned(), h.clone()))
        .collect();
    Node::start(cfg, handlers).expect("start a node")
}

/// Polls `cond` until it holds (a generous bound for a loaded machine).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let until = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn manual_job(
    store: &mut PgStore,
    name: &str,
    timeout_ms: i64,
    attempts: u32,
) -> myrmex_postgres::JobId {
    let mut spec = JobSpec::new(name, name, Trigger::Manual);
    spec.timeout = Some(SignedDuration::from_millis(timeout_ms));
    spec.max_attempts = attempts;
    spec.retry_backoff = SignedDuration::from_millis(50);
    store.create_job(&spec).unwrap()
}

/// `(state, attempt)` of the job's only run, with each attempt's outcome and error.
fn outcome(
    store: &mut PgStore,
    job: myrmex_postgres::JobId,
) -> (String, i32, Vec<(String, String)>) {
    let r = store
        .client()
        .query_one(
            "SELECT id, state, attempt FROM sched_run WHERE job_id = $1",
            &[&job.0],
        )
        .unwrap();
    let id: i64 = r.get(0);
    let attempts = store
        .client()
        .query(
            "SELECT coalesce(outcome, ''), coalesce(error, '') FROM sched_attempt WHERE run_id = $1 ORDER BY attempt",
            &[&id],
        )
        .unwrap()
        .iter()
        .map(|a| (a.get(0), a.get(1)))
        .collect();
    (r.get(1), r.get(2), attempts)
}

#[test]
fn a_cooperative_handler_is_told_to_stop_and_its_attempts_time_out() {
    let Some(t) = crate::common::db("node_timeout_coop") else {
        return;
    };
    let mut s = t.store("ctl");
    let job = manual_job(&mut s, "coop", 400, 2);
    let h: Handler = Arc::new(|ctx: &mut RunContext| {
        assert!(ctx.deadline().is_some());
        // Works until told to stop; `still_owned` turns false at the timeout too.
        while ctx.still_owned() {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(ctx.timed_out());
        Ok(Some(serde_json::json!("finished late")))
    });
    let node = start_node(&t, "n1", &[("coop", h)]);
    s.trigger_now(job, None).unwrap();
    wait_for("the run to fail", || outcome(&mut s, job).0 == "failed");
    node.shutdown().unwrap();
    let (_, attempt, attempts) = outcome(&mut s, job);
    assert_eq!(attempt, 2, "retried once per the policy");
    assert_eq!(attempts.len(), 2);
    for (outcome, error) in &attempts {
        assert_eq!(outcome, "error");
        assert!(error.starts_with("timed out after 400ms"), "{error}");
    }
}

#[test]
fn a_handler_that_ignores_its_timeout_is_recorded_as_timed_out_without_it() {
    let Some(t) = crate::common::db("node_timeout_stuck") else {
        return;
    };
    let mut s = t.store("ctl");
    let job = manual_job(&mut s, "stuck", 200, 1);
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let release_rx = Arc::new(Mutex::new(release_rx));
    let h: Handler = Arc::new(move |_ctx: &mut RunContext| {
        // Ignores the timeout: blocks until the test lets it go.
        let _ = release_rx.lock().unwrap().recv();
        Ok(None)
    });
    let node = start_node(&t, "n1", &[("stuck", h)]);
    s.trigger_now(job, None).unwrap();
    wait_for("the timeout to be recorded", || {
        outcome(&mut s, job).0 == "failed"
    });
    // The handler is still blocked; now let it return: its success is dropped.
    release_tx.send(()).unwrap();
    node.shutdown().unwrap();
    let (state, attempt, attempts) = outcome(&mut s, job);
    assert_eq!((state.as_str(), attempt), ("failed", 1));
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].0, "error", "not overwritten by the late return");
    assert!(
        attempts[0]
            .1
            .starts_with("timed out after 200ms; the handler did not stop"),
        "{:?}",
        attempts[0]
    );
}

#[test]
fn a_handler_that_ends_in_time_is_not_affected_by_its_timeout() {
    let Some(t) = crate::common::db("node_timeout_ok") else {
        return;
    };
    let mut s = t.store("ctl");
    let job = manual_job(&mut s, "quick", 60_000, 1);
    let h: Handler = Arc::new(|ctx: &mut RunContext| {
        assert!(!ctx.timed_out() && ctx.still_owned());
        Ok(None)
    });
    let node = start_node(&t, "n1", &[("quick", h)]);
    s.trigger_now(job, None).unwrap();
    wait_for("the run to succeed", || {
        outcome(&mut s, job).0 == "succeeded"
    });
    node.shutdown().unwrap();
}
