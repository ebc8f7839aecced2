//! The dependency graph: readiness pushed by completions, cycle and unknown-id
//! rejection, and a property test of cycle detection against brute force.

use jiff::Timestamp;
use myrmex_core::{
    DepError, DepGraph, Dependency, DependentKind, EdgeState, JobId, Outcome, Readiness,
    ReadinessChange,
};
use proptest::prelude::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const T0: &str = "2026-01-01T00:00:00Z";

fn j(n: u64) -> JobId {
    JobId(n)
}

fn finish(g: &mut DepGraph, job: u64, outcome: Outcome) -> Vec<ReadinessChange> {
    let mut out = Vec::new();
    g.run_finished(j(job), outcome, t(T0), &mut out);
    out
}

fn ready(job: u64) -> ReadinessChange {
    ReadinessChange {
        job: j(job),
        kind: DependentKind::Downstream,
        readiness: Readiness::Ready,
    }
}

/// 1 -> {2, 3} -> 4: the bottom runs once both sides are done, and each run
/// needs fresh completions.
#[test]
fn diamond_becomes_ready_once_both_branches_finish() {
    let mut g = DepGraph::new();
    g.add_job(j(1)).unwrap();
    let down = DependentKind::Downstream;
    assert_eq!(
        g.add_dependent(j(2), down, &[j(1).into()]),
        Ok(Readiness::Waiting)
    );
    g.add_dependent(j(3), down, &[j(1).into()]).unwrap();
    g.add_dependent(j(4), down, &[j(2).into(), j(3).into()])
        .unwrap();

    assert_eq!(
        finish(&mut g, 1, Outcome::Succeeded),
        vec![ready(2), ready(3)]
    );
    assert_eq!(g.consume(j(2)), Some(Readiness::Waiting));
    assert_eq!(finish(&mut g, 2, Outcome::Succeeded), vec![]);
    assert_eq!(g.readiness(j(4)), Some(Readiness::Waiting));
    assert_eq!(finish(&mut g, 3, Outcome::Succeeded), vec![ready(4)]);
    assert_eq!(g.consume(j(4)), Some(Readiness::Waiting));
    // Only one side again: not enough.
    assert_eq!(finish(&mut g, 3, Outcome::Succeeded), vec![]);
    assert_eq!(g.dependents(j(1)), Some(vec![j(2), j(3)]));
}

#[test]
fn wide_fan_in_is_ready_only_after_the_last_of_many() {
    let mut g = DepGraph::new();
    let deps: Vec<Dependency> = (1..=500).map(|i| j(i).into()).collect();
    for i in 1..=500 {
        g.add_job(j(i)).unwrap();
    }
    g.add_dependent(j(1000), DependentKind::Gated, &deps)
        .unwrap();
    for i in 1..500 {
        assert!(finish(&mut g, i, Outcome::Succeeded).is_empty());
    }
    let changes = finish(&mut g, 500, Outcome::Succeeded);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, DependentKind::Gated);
    assert_eq!(changes[0].readiness, Readiness::Ready);
}

#[test]
fn failure_blocks_until_the_dependency_succeeds_again() {
    let mut g = DepGraph::new();
    g.add_job(j(1)).unwrap();
    g.add_dependent(j(2), DependentKind::Downstream, &[j(1).into()])
        .unwrap();
    let at = t("2026-01-01T00:05:00Z");
    let mut out = Vec::new();
    g.run_finished(j(1), Outcome::TimedOut, at, &mut out);
    assert_eq!(out[0].readiness, Readiness::Blocked);
    let edges = g.dependencies(j(2)).unwrap();
    assert_eq!(
        edges[0].state,
        EdgeState::Failed {
            outcome: Outcome::TimedOut,
            at
        }
    );
    // Another failure changes nothing; a success unblocks.
    assert!(finish(&mut g, 1, Outcome::Failed).is_empty());
    assert_eq!(finish(&mut g, 1, Outcome::Succeeded), vec![ready(2)]);
    // A later failure takes the success back before it was used.
    let changes = finish(&mut g, 1, Outcome::Cancelled);
    assert_eq!(changes[0].readiness, Readiness::Blocked);
}

#[test]
fn finished_requirement_accepts_any_end() {
    let mut g = DepGraph::new();
    g.add_job(j(1)).unwrap();
    g.add_dependent(
        j(2),
        DependentKind::Downstream,
        &[Dependency::finished(j(1))],
    )
    .unwrap();
    assert_eq!(finish(&mut g, 1, Outcome::Failed), vec![ready(2)]);
}

#[test]
fn a_gone_dependency_blocks_after_its_last_success_is_used() {
    let mut g = DepGraph::new();
    g.add_job(j(1)).unwrap();
    g.add_job(j(3)).unwrap();
    g.add_dependent(j(2), DependentKind::Downstream, &[j(1).into()])
        .unwrap();
    g.add_dependent(j(4), DependentKind::Downstream, &[j(3).into()])
        .unwrap();
    finish(&mut g, 1, Outcome::Succeeded);
    let at = t("2026-01-01T01:00:00Z");
    let mut out = Vec::new();
    g.remove(j(1), at, &mut out);
    g.remove(j(3), at, &mut out);
    // 2's satisfied edge survives the removal; 4's waiting one does not.
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].job, j(4));
    assert_eq!(out[0].readiness, Readiness::Blocked);
    assert_eq!(g.readiness(j(2)), Some(Readiness::Ready));
    assert_eq!(g.consume(j(2)), Some(Readiness::Blocked));
    assert_eq!(
        g.dependencies(j(2)).unwrap()[0].state,
        EdgeState::Gone { at }
    );
    assert!(!g.contains(j(1)));
}

#[test]
fn declarations_are_checked() {
    type Case = (
        &'static str,
        Vec<(u64, Vec<u64>)>,
        (u64, Vec<u64>),
        Result<(), String>,
    );
    let cases: Vec<Case> = vec![
        (
            "self",
            vec![],
            (1, vec![1]),
            Err("dependency cycle: job-1 -> job-1".into()),
        ),
        (
            "two",
            vec![(2, vec![1])],
            (1, vec![2]),
            Err("dependency cycle: job-1 -> job-2 -> job-1".into()),
        ),
        (
            "three",
            vec![(2, vec![3]), (3, vec![1])],
            (1, vec![2]),
            Err("dependency cycle: job-1 -> job-2 -> job-3 -> job-1".into()),
        ),
        (
            "through a diamond",
            vec![(2, vec![1]), (3, vec![1]), (4, vec![2, 3])],
            (1, vec![4]),
            Err("dependency cycle: job-1 -> job-4 -> job-2 -> job-1".into()),
        ),
        (
            "unknown",
            vec![],
            (1, vec![9]),
            Err("job-1 depends on unknown job job-9".into()),
        ),
        ("fine", vec![(2, vec![1])], (3, vec![2, 1]), Ok(())),
    ];
    for (name, setup, (job, deps), want) in cases {
        let mut g = DepGraph::new();
        for i in 1..=4 {
            g.add_job(j(i)).unwrap();
        }
        for (d, on) in setup {
            let on: Vec<Dependency> = on.into_iter().map(|i| j(i).into()).collect();
            g.set_dependencies(j(d), &on).unwrap();
        }
        let deps: Vec<Dependency> = deps.into_iter().map(|i| j(i).into()).collect();
        let got = g
            .set_dependencies(j(job), &deps)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, want, "case {name}");
        if want.is_err() {
            // A refused declaration leaves the old edges in place.
            assert_eq!(g.dependencies(j(job)).unwrap().len(), 0, "case {name}");
        }
    }
    let mut g = DepGraph::new();
    assert_eq!(
        g.add_dependent(j(5), DependentKind::Downstream, &[j(6).into()]),
        Err(DepError::UnknownDependency {
            job: j(5),
            dependency: j(6)
        })
    );
    assert!(!g.contains(j(5)));
    g.add_job(j(6)).unwrap();
    assert_eq!(g.add_job(j(6)), Err(DepError::DuplicateJob { job: j(6) }));
}

/// Brute force: does `to` reach `from` through "depends on" edges (so adding
/// `from -> to` closes a cycle)?
fn reaches(edges: &[(usize, usize)], n: usize, start: usize, goal: usize) -> bool {
    let mut seen = vec![false; n];
    let mut stack = vec![start];
    while let Some(x) = stack.pop() {
        if x == goal {
            return true;
        }
        if std::mem::replace(&mut seen[x], true) {
            continue;
        }
        stack.extend(edges.iter().filter(|e| e.0 == x).map(|e| e.1));
    }
    false
}

proptest! {
    /// Adding random edges one by one: the graph refuses exactly those that
    /// close a cycle, and the path it names is a real cycle of the graph.
    #[test]
    fn cycle_detection_agrees_with_brute_force(
        n in 2usize..12,
        attempts in proptest::collection::vec((0usize..12, 0usize..12), 1..40),
    ) {
        let mut g = DepGraph::new();
        for i in 0..n {
            g.add_job(j(i as u64)).unwrap();
        }
        let mut edges: Vec<(usize, usize)> = Vec::new();
        for (a, b) in attempts {
            let (a, b) = (a % n, b % n);
            if edges.contains(&(a, b)) {
                continue;
            }
            let mut deps: Vec<Dependency> =
                edges.iter().filter(|e| e.0 == a).map(|e| j(e.1 as u64).into()).collect();
            deps.push(j(b as u64).into());
            let cyclic = reaches(&edges, n, b, a);
            match g.set_dependencies(j(a as u64), &deps) {
                Ok(_) => {
                    prop_assert!(!cyclic);
                    edges.push((a, b));
                }
                Err(DepError::Cycle { path }) => {
                    prop_assert!(cyclic);
                    prop_assert_eq!(path.first(), path.last());
                    let mut with = edges.clone();
                    with.push((a, b));
                    for w in path.windows(2) {
                        prop_assert!(with.contains(&(w[0].0 as usize, w[1].0 as usize)));
                    }
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}

/// The reference for one edge: the outcomes of the dependency's runs since
/// the dependent last consumed.
#[derive(Clone, Debug, Default)]
struct RefEdge {
    finished_only: bool,
    from: usize,
    since: Vec<Outcome>,
}

fn ref_readiness(edges: &[RefEdge]) -> Readiness {
    let met = |e: &RefEdge| match e.since.last() {
        None => false,
        Some(o) => e.finished_only || *o == Outcome::Succeeded,
    };
    let failed =
        |e: &RefEdge| !e.finished_only && e.since.last().is_some_and(|o| *o != Outcome::Succeeded);
    if edges.iter().all(met) {
        Readiness::Ready
    } else if edges.iter().any(failed) {
        Readiness::Blocked
    } else {
        Readiness::Waiting
    }
}

#[derive(Clone, Debug)]
enum Step {
    Finish(usize, Outcome),
    Consume(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let outcome = prop_oneof![
        Just(Outcome::Succeeded),
        Just(Outcome::Failed),
        Just(Outcome::TimedOut),
        Just(Outcome::Cancelled)
    ];
    prop_oneof![
        3 => (0usize..6, outcome).prop_map(|(j, o)| Step::Finish(j, o)),
        1 => (0usize..6).prop_map(Step::Consume),
    ]
}

proptest! {
    /// Random edges (a DAG: jobs depend only on lower ids), random completions
    /// and consumptions: readiness and the reported changes match a reference
    /// that keeps every outcome since the last consumption.
    #[test]
    fn readiness_agrees_with_a_reference_history(
        edges in proptest::collection::vec((1usize..6, 0usize..6, any::<bool>()), 0..12),
        steps in proptest::collection::vec(step(), 0..60),
    ) {
        let mut g = DepGraph::new();
        let mut reference: Vec<Vec<RefEdge>> = vec![Vec::new(); 6];
        for (to, from, finished_only) in edges {
            let from = from % to;
            if reference[to].iter().any(|e| e.from == from) {
                continue;
            }
            reference[to].push(RefEdge { finished_only, from, since: Vec::new() });
        }
        for (i, r) in reference.iter().enumerate() {
            let deps: Vec<Dependency> = r
                .iter()
                .map(|e| if e.finished_only {
                    Dependency::finished(j(e.from as u64))
                } else {
                    Dependency::succeeded(j(e.from as u64))
                })
                .collect();
            g.add_dependent(j(i as u64), DependentKind::Downstream, &deps).unwrap();
        }
        for s in steps {
            let before: Vec<Readiness> = reference.iter().map(|r| ref_readiness(r)).collect();
            let mut changes = Vec::new();
            match s {
                Step::Finish(job, o) => {
                    g.run_finished(j(job as u64), o, t(T0), &mut changes);
                    for r in reference.iter_mut() {
                        for e in r.iter_mut().filter(|e| e.from == job) {
                            e.since.push(o);
                        }
                    }
                }
                Step::Consume(job) => {
                    g.consume(j(job as u64));
                    for e in reference[job].iter_mut() {
                        e.since.clear();
                    }
                }
            }
            for (i, r) in reference.iter().enumerate() {
                let want = if r.is_empty() { Readiness::Ready } else { ref_readiness(r) };
                prop_assert_eq!(g.readiness(j(i as u64)), Some(want), "job {}", i);
                if let Step::Finish(..) = s {
                    let reported = changes.iter().find(|c| c.job == j(i as u64));
                    if want != before[i] && !r.is_empty() {
                        prop_assert_eq!(reported.map(|c| c.readiness), Some(want));
                    } else {
                        prop_assert!(reported.is_none());
                    }
                }
            }
        }
    }
}
