//! Overhead of dependencies and pipelines.
//!
//! - `deps/graph_propagate_10k`: the pure graph alone: a 10,000-job layered DAG
//!   (100 layers of 100, each job depending on 3 of the layer before; 29,800
//!   edges) driven through one completion per job.
//! - `deps/runtime_10k_noop`: the same DAG of no-op jobs on a real scheduler
//!   (system clock, 2 workers): from releasing the root to the last job's end.
//!   Registration is not timed.
//! - `pipeline/1000_stages`: a 1,000-stage pipeline of one no-op job each, run
//!   to the end.
//!
//! Run: `cargo bench -p myrmex --bench dag`. Divide by the edge or stage count
//! for per-edge and per-stage costs (printed by the bench as well).

use std::hint::black_box;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use jiff::Timestamp;
use myrmex::{
    Dag, DepGraph, Dependency, DependentKind, Event, JobId, Outcome, Pipeline, Scheduler, Stage,
    TriggerSpec,
};

const WIDTH: u64 = 100;
const LAYERS: u64 = 100;

/// The dependencies of job `i` (layer `i / WIDTH`): three jobs of the layer
/// before, or the root for the first layer.
fn deps_of(i: u64, root: u64, id: impl Fn(u64) -> JobId) -> Vec<Dependency> {
    let layer = i / WIDTH;
    if layer == 0 {
        return vec![JobId(root).into()];
    }
    let base = (layer - 1) * WIDTH;
    let k = i % WIDTH;
    [k, (k + 1) % WIDTH, (k + 37) % WIDTH]
        .iter()
        .map(|o| id(base + o).into())
        .collect()
}

const EDGES: u64 = WIDTH + (LAYERS - 1) * WIDTH * 3;

fn graph_propagate(c: &mut Criterion) {
    let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let root = 1_000_000;
    let build = || {
        let mut g = DepGraph::new();
        g.add_job(JobId(root)).unwrap();
        for i in 0..WIDTH * LAYERS {
            g.add_dependent(
                JobId(i),
                DependentKind::Downstream,
                &deps_of(i, root, JobId),
            )
            .unwrap();
        }
        g
    };
    let mut group = c.benchmark_group("deps");
    group.bench_function("graph_build_10k", |b| b.iter(|| black_box(build())));
    group.bench_function("graph_propagate_10k", |b| {
        b.iter_batched(
            build,
            |mut g| {
                let mut changes = Vec::new();
                g.run_finished(JobId(root), Outcome::Succeeded, t, &mut changes);
                let mut ran = 0;
                while let Some(c) = changes.pop() {
                    g.consume(c.job);
                    ran += 1;
                    g.run_finished(c.job, Outcome::Succeeded, t, &mut changes);
                }
                assert_eq!(ran, WIDTH * LAYERS);
                g
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// A started scheduler with a dependency layer and a channel that receives a
/// message after every `n` successful runs.
fn rig(n: usize) -> (Scheduler, Dag, mpsc::Receiver<()>) {
    let scheduler = Scheduler::builder()
        .workers(2)
        .zone(jiff::tz::TimeZone::UTC)
        .build()
        .unwrap();
    let dag = Dag::attach(&scheduler);
    let (tx, rx) = mpsc::channel();
    let mut count = 0;
    scheduler.on_event(move |e| {
        if matches!(e, Event::RunSucceeded(_)) {
            count += 1;
            if count % n == 0 {
                let _ = tx.send(());
            }
        }
    });
    scheduler.start().unwrap();
    (scheduler, dag, rx)
}

fn runtime_dag(c: &mut Criterion) {
    let mut group = c.benchmark_group("deps");
    group.sample_size(10);
    let mut per_edge = Vec::new();
    group.bench_function("runtime_10k_noop", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let jobs = (WIDTH * LAYERS) as usize + 1;
                let (scheduler, dag, done) = rig(jobs);
                let root = dag.schedule(TriggerSpec::Manual, [], |_| Ok(())).unwrap();
                let mut ids = Vec::with_capacity(jobs);
                for i in 0..WIDTH * LAYERS {
                    let deps = deps_of(i, root.0, |k| ids[k as usize]);
                    ids.push(dag.schedule(TriggerSpec::Manual, deps, |_| Ok(())).unwrap());
                }
                // A round trip: every registration has been handled.
                let _ = scheduler.get_job(root);
                let start = Instant::now();
                scheduler.release(root, scheduler.now()).unwrap();
                done.recv().unwrap();
                let took = start.elapsed();
                per_edge.push(took.as_nanos() as f64 / EDGES as f64);
                total += took;
                scheduler.shutdown(Duration::from_secs(10)).unwrap();
            }
            total
        })
    });
    group.finish();
    if !per_edge.is_empty() {
        per_edge.sort_by(f64::total_cmp);
        println!(
            "deps/runtime_10k_noop: {} jobs, {EDGES} edges, median {:.0} ns per edge (end to end, incl. running the jobs)",
            WIDTH * LAYERS + 1,
            per_edge[per_edge.len() / 2]
        );
    }
}

fn pipeline_stages(c: &mut Criterion) {
    let (scheduler, dag, _done) = rig(usize::MAX);
    let mut p = Pipeline::<u32>::new("long");
    for s in 0..1_000 {
        p = p.stage(Stage::new(format!("s{s}")).job("noop", |_| Ok(0)));
    }
    let mut group = c.benchmark_group("pipeline");
    group.sample_size(10);
    group.bench_function("1000_stages", |b| {
        b.iter(|| black_box(p.run(&dag).unwrap()))
    });
    group.finish();
    scheduler.shutdown(Duration::from_secs(10)).unwrap();
}

criterion_group!(benches, graph_propagate, runtime_dag, pipeline_stages);
criterion_main!(benches);
