//! Pipelines: one run per stage and the edges in one transaction; order from the data.

use myrmex_postgres::{Completion, DependencyRule, JobSpec, PgStore, RunState, StageSpec, Trigger};

use crate::common::{complete, db};

fn diamond(store: &mut PgStore, name: &str, d_rule: DependencyRule) -> myrmex_postgres::JobId {
    let mut spec = JobSpec::new(name, "", Trigger::Manual);
    spec.max_attempts = 1;
    let mut d = StageSpec::new("d", "task_d", &["b", "c"]);
    d.depends_on[0].1 = d_rule;
    // Declared out of order on purpose: stages are stored parents first.
    spec.pipeline = vec![
        d,
        StageSpec::new("b", "task_b", &["a"]),
        StageSpec::new("c", "task_c", &["a"]),
        StageSpec::new("a", "task_a", &[]),
    ];
    store.create_job(&spec).unwrap()
}

#[test]
fn stages_run_in_dag_order_on_any_node() {
    let Some(t) = db("pipeline_order") else {
        return;
    };
    let mut n1 = t.store("n1");
    let mut n2 = t.store("n2");
    let job = diamond(&mut n1, "p", DependencyRule::AllSuccess);
    n1.trigger_now(job, None).unwrap();
    let runs = n1.runs(job).unwrap();
    let by = |s: &str| runs.iter().find(|r| r.stage == s).unwrap().clone();
    assert_eq!(runs.len(), 4);
    assert!(by("a").id < by("b").id && by("b").id < by("d").id && by("c").id < by("d").id);
    assert_eq!(
        (by("d").state, by("d").pending_deps),
        (RunState::Blocked, 2)
    );

    let a = n2.claim(10).unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(
        (a[0].stage.as_str(), a[0].handler.as_str()),
        ("a", "task_a")
    );
    assert_eq!(complete(&mut n2, &a[0]), Completion::Committed);
    let bc = n1.claim(10).unwrap();
    let mut stages: Vec<&str> = bc.iter().map(|c| c.stage.as_str()).collect();
    stages.sort_unstable();
    assert_eq!(stages, ["b", "c"]);
    assert_eq!(complete(&mut n1, &bc[0]), Completion::Committed);
    assert!(
        n2.claim(10).unwrap().is_empty(),
        "d still waits for one parent"
    );
    assert_eq!(complete(&mut n1, &bc[1]), Completion::Committed);
    let d = n2.claim(10).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].stage, "d");
    assert_eq!(
        d[0].scheduled_at, a[0].scheduled_at,
        "one instance shares the occurrence"
    );
}

#[test]
fn a_failed_stage_skips_its_all_success_dependents_transitively() {
    let Some(t) = db("pipeline_skip") else { return };
    let mut n = t.store("n");
    let job = diamond(&mut n, "p", DependencyRule::AllSuccess);
    n.trigger_now(job, None).unwrap();
    let a = n.claim(10).unwrap().remove(0);
    assert_eq!(
        n.fail(a.run, a.attempt, "boom").unwrap(),
        Completion::Committed
    );
    let states: Vec<(String, RunState)> = n
        .runs(job)
        .unwrap()
        .into_iter()
        .map(|r| (r.stage, r.state))
        .collect();
    assert_eq!(
        states,
        [
            ("a".to_owned(), RunState::Failed),
            ("b".to_owned(), RunState::Skipped),
            ("c".to_owned(), RunState::Skipped),
            ("d".to_owned(), RunState::Skipped),
        ]
    );
}

#[test]
fn an_all_done_edge_releases_after_a_failure() {
    let Some(t) = db("pipeline_all_done") else {
        return;
    };
    let mut n = t.store("n");
    let job = diamond(&mut n, "p", DependencyRule::AllDone);
    n.trigger_now(job, None).unwrap();
    let a = n.claim(10).unwrap().remove(0);
    assert_eq!(complete(&mut n, &a), Completion::Committed);
    let bc = n.claim(10).unwrap();
    let b = bc.iter().find(|c| c.stage == "b").unwrap();
    let c = bc.iter().find(|c| c.stage == "c").unwrap();
    assert_eq!(
        n.fail(b.run, b.attempt, "b failed").unwrap(),
        Completion::Committed
    );
    assert_eq!(complete(&mut n, c), Completion::Committed);
    // d waits on b with all_done and on c with all_success: both resolved.
    let d = n.claim(10).unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].stage, "d");
}

#[test]
fn cyclic_pipelines_are_rejected() {
    let Some(t) = db("pipeline_cycle") else {
        return;
    };
    let mut n = t.store("n");
    let mut spec = JobSpec::new("cyc", "", Trigger::Manual);
    spec.pipeline = vec![
        StageSpec::new("x", "t", &["y"]),
        StageSpec::new("y", "t", &["x"]),
    ];
    assert!(matches!(
        n.create_job(&spec),
        Err(myrmex_postgres::Error::InvalidPipeline { .. })
    ));
}
