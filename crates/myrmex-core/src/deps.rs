//! The dependency graph: which jobs wait on which, and whether each dependent
//! may run now.
//!
//! [`DepGraph`] is pure data driven by completion events: the runtime reports
//! every run that ends ([`DepGraph::run_finished`]) and every run a dependent
//! starts ([`DepGraph::consume`]); the graph answers with the dependents whose
//! [`Readiness`] changed. Nothing in it polls or reads a clock.
//!
//! ```
//! use jiff::Timestamp;
//! use myrmex_core::{DepGraph, Dependency, DependentKind, JobId, Outcome, Readiness};
//!
//! let t: Timestamp = "2026-01-01T00:00:00Z".parse()?;
//! let (extract, load, report) = (JobId(1), JobId(2), JobId(3));
//! let mut g = DepGraph::new();
//! g.add_job(extract)?;
//! g.add_job(load)?;
//! g.add_dependent(report, DependentKind::Downstream, &[extract.into(), Dependency::finished(load)])?;
//!
//! let mut changes = Vec::new();
//! g.run_finished(extract, Outcome::Failed, t, &mut changes);
//! assert_eq!(g.readiness(report), Some(Readiness::Blocked));
//! g.run_finished(extract, Outcome::Succeeded, t, &mut changes);
//! g.run_finished(load, Outcome::Failed, t, &mut changes); // "finished" is enough
//! assert_eq!(changes.last().unwrap().readiness, Readiness::Ready);
//! assert_eq!(g.consume(report), Some(Readiness::Waiting));
//!
//! // Cycles are refused with their path.
//! let err = g.set_dependencies(extract, &[report.into()]).unwrap_err();
//! assert_eq!(err.to_string(), "dependency cycle: job-1 -> job-3 -> job-1");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::job::{JobId, Outcome};

/// What a dependency's run must have done for the edge to count.
///
/// Default: [`Requirement::Succeeded`].
///
/// ```
/// use myrmex_core::{Dependency, JobId, Requirement};
///
/// assert_eq!(Dependency::from(JobId(1)).requirement, Requirement::Succeeded);
/// assert_eq!(Dependency::finished(JobId(1)).requirement, Requirement::Finished);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Requirement {
    /// The dependency's most recent run must have succeeded; a failure blocks
    /// the dependent until the dependency succeeds again.
    #[default]
    Succeeded,
    /// Any end counts: success, failure, timeout or cancellation.
    Finished,
}

/// One declared edge: the job depended on and what its run must have done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Dependency {
    /// The job depended on.
    pub job: JobId,
    /// What its run must have done.
    #[serde(default)]
    pub requirement: Requirement,
}

impl Dependency {
    /// An edge that needs a success (the default).
    pub fn succeeded(job: JobId) -> Dependency {
        Dependency {
            job,
            requirement: Requirement::Succeeded,
        }
    }

    /// An edge that needs any end of a run.
    pub fn finished(job: JobId) -> Dependency {
        Dependency {
            job,
            requirement: Requirement::Finished,
        }
    }
}

impl From<JobId> for Dependency {
    fn from(job: JobId) -> Dependency {
        Dependency::succeeded(job)
    }
}

/// How a dependent runs once its dependencies are satisfied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DependentKind {
    /// It has its own trigger: a fire runs only while the job is ready; fires
    /// that fall due meanwhile wait (the job is held).
    Gated,
    /// It has no trigger: it runs each time its dependencies are satisfied anew.
    Downstream,
}

/// Whether a dependent may run now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Readiness {
    /// Every dependency is satisfied (also: a job without dependencies).
    Ready,
    /// Some dependency has not finished (successfully) since the last run.
    Waiting,
    /// A required dependency's most recent run failed, or a dependency is gone.
    Blocked,
}

/// The state of one edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EdgeState {
    /// No qualifying run since the dependent's last run.
    Waiting,
    /// A qualifying run finished at `at`.
    Satisfied {
        /// When it finished.
        at: Timestamp,
    },
    /// The dependency's most recent run did not succeed (only for
    /// [`Requirement::Succeeded`]).
    Failed {
        /// How it ended.
        outcome: Outcome,
        /// When it ended.
        at: Timestamp,
    },
    /// The dependency was cancelled or finished for good: it will never run
    /// again, so the edge can never be satisfied again.
    Gone {
        /// When it went.
        at: Timestamp,
    },
}

/// One edge of a dependent, for explanations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EdgeReport {
    /// The job depended on.
    pub dependency: JobId,
    /// What its run must have done.
    pub requirement: Requirement,
    /// Where the edge stands.
    pub state: EdgeState,
}

/// A dependent whose readiness changed (what the runtime acts on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadinessChange {
    /// The dependent.
    pub job: JobId,
    /// How it runs.
    pub kind: DependentKind,
    /// Its new readiness.
    pub readiness: Readiness,
}

/// A dependency declaration the graph refuses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DepError {
    /// A dependency names a job the graph does not know.
    #[error("{job} depends on unknown job {dependency}")]
    UnknownDependency {
        /// The dependent.
        job: JobId,
        /// The unknown id.
        dependency: JobId,
    },
    /// The job itself is not in the graph.
    #[error("no job {job} in the dependency graph")]
    UnknownJob {
        /// The id.
        job: JobId,
    },
    /// The job is already in the graph.
    #[error("job {job} is already in the dependency graph")]
    DuplicateJob {
        /// The id.
        job: JobId,
    },
    /// The declaration would close a cycle; `path` starts and ends with the
    /// same job and reads "depends on" left to right.
    #[error("dependency cycle: {}", CyclePath(.path))]
    Cycle {
        /// The cycle, first job repeated at the end.
        path: Vec<JobId>,
    },
}

struct CyclePath<'a>(&'a [JobId]);

impl fmt::Display for CyclePath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, j) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{j}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct InEdge {
    from: u32,
    requirement: Requirement,
    state: EdgeState,
}

impl InEdge {
    fn met(&self) -> bool {
        matches!(self.state, EdgeState::Satisfied { .. })
    }
    fn blocking(&self) -> bool {
        matches!(
            self.state,
            EdgeState::Failed { .. } | EdgeState::Gone { .. }
        )
    }
}

#[derive(Clone, Debug)]
struct Node {
    id: JobId,
    kind: Option<DependentKind>,
    deps: Vec<InEdge>,
    /// `(dependent node, index in its deps)`.
    dependents: Vec<(u32, u32)>,
    unmet: u32,
    blocking: u32,
    /// `Some` once the job is gone (tombstone: its slot is never reused, so
    /// edges pointing at it stay meaningful).
    gone: Option<Timestamp>,
}

impl Node {
    fn readiness(&self) -> Readiness {
        if self.unmet == 0 {
            Readiness::Ready
        } else if self.blocking > 0 {
            Readiness::Blocked
        } else {
            Readiness::Waiting
        }
    }
}

/// The dependency graph: declared edges and each dependent's readiness.
///
/// # What "satisfied" means
///
/// An edge `dependent -> dependency` is **satisfied** when the dependency has
/// finished at least one run since the dependent last started a run (or, before
/// its first run, since the edge was declared) and, for
/// [`Requirement::Succeeded`] (the default), the dependency's **most recent**
/// finished run succeeded. A later failure therefore takes a success back.
///
/// A dependent is [`Readiness::Ready`] when every edge is satisfied,
/// [`Readiness::Blocked`] when some required dependency's most recent run
/// failed (timed out, was cancelled) or the dependency is gone for good, and
/// [`Readiness::Waiting`] otherwise. Starting a run *consumes* the
/// satisfaction: every edge goes back to waiting, so the next run needs fresh
/// completions of all its dependencies.
#[derive(Clone, Debug, Default)]
pub struct DepGraph {
    nodes: Vec<Node>,
    index: HashMap<JobId, u32>,
    /// Scratch for cycle searches: the search epoch each node was last seen in.
    seen: Vec<u32>,
    epoch: u32,
}

impl DepGraph {
    /// An empty graph.
    pub fn new() -> DepGraph {
        DepGraph::default()
    }

    /// How many live jobs the graph knows.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the graph knows no job.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Whether the graph knows this job.
    pub fn contains(&self, job: JobId) -> bool {
        self.index.contains_key(&job)
    }

    fn insert(&mut self, job: JobId) -> Result<u32, DepError> {
        if self.index.contains_key(&job) {
            return Err(DepError::DuplicateJob { job });
        }
        let n = u32::try_from(self.nodes.len()).expect("fewer than 2^32 jobs");
        self.nodes.push(Node {
            id: job,
            kind: None,
            deps: Vec::new(),
            dependents: Vec::new(),
            unmet: 0,
            blocking: 0,
            gone: None,
        });
        self.index.insert(job, n);
        Ok(n)
    }

    /// Adds a job others may depend on (it has no dependencies itself).
    ///
    /// # Errors
    /// [`DepError::DuplicateJob`].
    pub fn add_job(&mut self, job: JobId) -> Result<(), DepError> {
        self.insert(job).map(|_| ())
    }

    /// Adds a new job with dependencies. Its edges start waiting: it becomes
    /// ready once each dependency has finished a qualifying run after this call.
    /// A new job cannot close a cycle (nothing depends on it yet).
    ///
    /// # Errors
    /// [`DepError::DuplicateJob`] or [`DepError::UnknownDependency`]; nothing
    /// is added then.
    pub fn add_dependent(
        &mut self,
        job: JobId,
        kind: DependentKind,
        deps: &[Dependency],
    ) -> Result<Readiness, DepError> {
        if self.index.contains_key(&job) {
            return Err(DepError::DuplicateJob { job });
        }
        let deps = self.resolve(job, deps)?;
        let n = self.insert(job)?;
        self.link(n, kind, deps);
        Ok(self.nodes[n as usize].readiness())
    }

    /// Replaces a known job's dependencies (an empty list makes it an ordinary
    /// job again). The new edges start waiting.
    ///
    /// # Errors
    /// [`DepError::UnknownJob`], [`DepError::UnknownDependency`], or
    /// [`DepError::Cycle`] naming the path the new edges would close; the old
    /// dependencies are kept then.
    pub fn set_dependencies(
        &mut self,
        job: JobId,
        deps: &[Dependency],
    ) -> Result<Readiness, DepError> {
        self.set_dependencies_as(job, None, deps)
    }

    /// [`DepGraph::set_dependencies`], also setting how the job runs (`None`
    /// keeps the current kind, [`DependentKind::Gated`] for a job that had
    /// none).
    ///
    /// # Errors
    /// As [`DepGraph::set_dependencies`].
    pub fn set_dependencies_as(
        &mut self,
        job: JobId,
        kind: Option<DependentKind>,
        deps: &[Dependency],
    ) -> Result<Readiness, DepError> {
        let n = *self.index.get(&job).ok_or(DepError::UnknownJob { job })?;
        let resolved = self.resolve(job, deps)?;
        let has_dependents = !self.nodes[n as usize].dependents.is_empty();
        for &(from, _) in &resolved {
            if from == n {
                return Err(DepError::Cycle {
                    path: vec![job, job],
                });
            }
            if has_dependents && let Some(path) = self.path_to(from, n) {
                let mut cycle = Vec::with_capacity(path.len() + 1);
                cycle.push(job);
                cycle.extend(path.iter().map(|&i| self.nodes[i as usize].id));
                return Err(DepError::Cycle { path: cycle });
            }
        }
        self.unlink(n);
        let kind = kind
            .or(self.nodes[n as usize].kind)
            .unwrap_or(DependentKind::Gated);
        self.link(n, kind, resolved);
        Ok(self.nodes[n as usize].readiness())
    }

    /// Known, deduplicated (first declaration wins) dependencies as slots.
    fn resolve(
        &self,
        job: JobId,
        deps: &[Dependency],
    ) -> Result<Vec<(u32, Requirement)>, DepError> {
        let mut out: Vec<(u32, Requirement)> = Vec::with_capacity(deps.len());
        for d in deps {
            let from = *self.index.get(&d.job).ok_or(DepError::UnknownDependency {
                job,
                dependency: d.job,
            })?;
            if !out.iter().any(|&(f, _)| f == from) {
                out.push((from, d.requirement));
            }
        }
        Ok(out)
    }

    /// A path of slots from `from` to `to` following "depends on" edges
    /// (both ends included), if any.
    fn path_to(&mut self, from: u32, to: u32) -> Option<Vec<u32>> {
        self.epoch = self.epoch.wrapping_add(1);
        if self.epoch == 0 {
            self.seen.iter_mut().for_each(|s| *s = 0);
            self.epoch = 1;
        }
        self.seen.resize(self.nodes.len(), 0);
        // Iterative depth-first search; `stack` holds (node, next edge index),
        // so the stack itself is the path when `to` is found.
        let mut stack: Vec<(u32, usize)> = vec![(from, 0)];
        self.seen[from as usize] = self.epoch;
        while let Some(top) = stack.len().checked_sub(1) {
            let (node, next) = stack[top];
            if node == to {
                return Some(stack.iter().map(|&(n, _)| n).collect());
            }
            match self.nodes[node as usize].deps.get(next) {
                Some(e) => {
                    let child = e.from;
                    stack[top].1 += 1;
                    if self.seen[child as usize] != self.epoch {
                        self.seen[child as usize] = self.epoch;
                        stack.push((child, 0));
                    }
                }
                None => {
                    stack.pop();
                }
            }
        }
        None
    }

    fn unlink(&mut self, n: u32) {
        let deps = std::mem::take(&mut self.nodes[n as usize].deps);
        for e in &deps {
            self.nodes[e.from as usize]
                .dependents
                .retain(|&(d, _)| d != n);
        }
        let node = &mut self.nodes[n as usize];
        node.unmet = 0;
        node.blocking = 0;
        node.kind = None;
    }

    fn link(&mut self, n: u32, kind: DependentKind, deps: Vec<(u32, Requirement)>) {
        let mut edges = Vec::with_capacity(deps.len());
        let mut blocking = 0;
        for (i, (from, requirement)) in deps.into_iter().enumerate() {
            let src = &mut self.nodes[from as usize];
            let state = match src.gone {
                Some(at) => {
                    blocking += 1;
                    EdgeState::Gone { at }
                }
                None => EdgeState::Waiting,
            };
            src.dependents.push((n, i as u32));
            edges.push(InEdge {
                from,
                requirement,
                state,
            });
        }
        let node = &mut self.nodes[n as usize];
        node.unmet = edges.len() as u32;
        node.blocking = blocking;
        node.kind = (!edges.is_empty()).then_some(kind);
        node.deps = edges;
    }

    fn set_edge(&mut self, n: u32, i: u32, state: EdgeState) {
        let node = &mut self.nodes[n as usize];
        let e = &mut node.deps[i as usize];
        let (was_met, was_blocking) = (e.met(), e.blocking());
        e.state = state;
        let (met, blocking) = (e.met(), e.blocking());
        node.unmet = node.unmet + u32::from(was_met) - u32::from(met);
        node.blocking = node.blocking + u32::from(blocking) - u32::from(was_blocking);
    }

    /// Applies `state_of(requirement, current)` to every edge leaving `job`'s
    /// node and reports the dependents whose readiness changed.
    fn update_dependents(
        &mut self,
        n: u32,
        out: &mut Vec<ReadinessChange>,
        state_of: impl Fn(Requirement, EdgeState) -> EdgeState,
    ) {
        let dependents = std::mem::take(&mut self.nodes[n as usize].dependents);
        for &(d, i) in &dependents {
            let before = self.nodes[d as usize].readiness();
            let e = &self.nodes[d as usize].deps[i as usize];
            let state = state_of(e.requirement, e.state);
            self.set_edge(d, i, state);
            let node = &self.nodes[d as usize];
            let after = node.readiness();
            if after != before
                && let Some(kind) = node.kind
            {
                out.push(ReadinessChange {
                    job: node.id,
                    kind,
                    readiness: after,
                });
            }
        }
        self.nodes[n as usize].dependents = dependents;
    }

    /// A run of `job` ended for good (after its retries) with `outcome` at
    /// `at`: updates the edges of its dependents and pushes those whose
    /// readiness changed to `out`. Unknown jobs are ignored.
    pub fn run_finished(
        &mut self,
        job: JobId,
        outcome: Outcome,
        at: Timestamp,
        out: &mut Vec<ReadinessChange>,
    ) {
        let Some(&n) = self.index.get(&job) else {
            return;
        };
        if self.nodes[n as usize].dependents.is_empty() {
            return;
        }
        self.update_dependents(n, out, |req, _| match (req, outcome) {
            (Requirement::Finished, _) | (_, Outcome::Succeeded) => EdgeState::Satisfied { at },
            _ => EdgeState::Failed { outcome, at },
        });
    }

    /// `job` started a run: its satisfaction is used up, every edge waits for a
    /// fresh completion again. Returns its new readiness (`None`: unknown).
    pub fn consume(&mut self, job: JobId) -> Option<Readiness> {
        let n = *self.index.get(&job)?;
        let len = self.nodes[n as usize].deps.len();
        for i in 0..len {
            let from = self.nodes[n as usize].deps[i].from;
            let state = match self.nodes[from as usize].gone {
                Some(at) => EdgeState::Gone { at },
                None => EdgeState::Waiting,
            };
            self.set_edge(n, i as u32, state);
        }
        Some(self.nodes[n as usize].readiness())
    }

    /// `job` was cancelled or finished for good at `at`: it leaves the graph.
    /// Its dependents' edges to it that are already satisfied stay so until
    /// consumed; the others become [`EdgeState::Gone`] (blocking). Its own
    /// dependencies are dropped.
    pub fn remove(&mut self, job: JobId, at: Timestamp, out: &mut Vec<ReadinessChange>) {
        let Some(n) = self.index.remove(&job) else {
            return;
        };
        self.unlink(n);
        self.nodes[n as usize].gone = Some(at);
        self.update_dependents(n, out, |_, state| match state {
            EdgeState::Satisfied { .. } => state,
            _ => EdgeState::Gone { at },
        });
    }

    /// A job's readiness (`None`: unknown; [`Readiness::Ready`] for a job
    /// without dependencies).
    pub fn readiness(&self, job: JobId) -> Option<Readiness> {
        let n = *self.index.get(&job)?;
        Some(self.nodes[n as usize].readiness())
    }

    /// How a job runs once ready (`None`: unknown or no dependencies).
    pub fn kind(&self, job: JobId) -> Option<DependentKind> {
        let n = *self.index.get(&job)?;
        self.nodes[n as usize].kind
    }

    /// A job's edges, in declaration order (`None`: unknown).
    pub fn dependencies(&self, job: JobId) -> Option<Vec<EdgeReport>> {
        let n = *self.index.get(&job)?;
        Some(
            self.nodes[n as usize]
                .deps
                .iter()
                .map(|e| EdgeReport {
                    dependency: self.nodes[e.from as usize].id,
                    requirement: e.requirement,
                    state: e.state,
                })
                .collect(),
        )
    }

    /// The jobs that depend on `job` (`None`: unknown).
    pub fn dependents(&self, job: JobId) -> Option<Vec<JobId>> {
        let n = *self.index.get(&job)?;
        Some(
            self.nodes[n as usize]
                .dependents
                .iter()
                .map(|&(d, _)| self.nodes[d as usize].id)
                .collect(),
        )
    }
}
