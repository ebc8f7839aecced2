//! The conformance suite: the behaviour every [`Store`] backend must have.
//!
//! A backend's tests run it with [`conformance_tests!`](crate::conformance_tests), which
//! expands to one `#[test]` per case, given an expression that builds a fresh [`Backend`]:
//!
//! ```
//! use myrmex_store::{MemoryStore, conformance::Fresh};
//! // In a test module: myrmex_store::conformance_tests!(Fresh(MemoryStore::new));
//! // Or all at once:
//! myrmex_store::conformance::run_all(&mut Fresh(MemoryStore::new));
//! ```
//!
//! Each case panics with a message naming what broke.

use std::sync::Barrier;

use jiff::{SignedDuration, Timestamp};

use crate::{
    Attempt, AttemptOutcome, CompleteOutcome, Completion, DependencyRule, JobDefinition, JobId,
    JobPatch, JobRecord, JobStatus, Materialization, MaterializeOutcome, NewDep, NewRun,
    OccurrenceKey, PolicySpec, Retention, RunFilter, RunId, RunOrigin, RunRecord, RunState,
    StartOutcome, Store, StoreError, TriggerSpec, UpsertOutcome, WatermarkUpdate, WriteOp,
    WriteOutput,
};

/// Something that opens stores for the suite.
pub trait Backend {
    /// The store type.
    type Store: Store;

    /// Opens a store at this backend's location (empty on the first call).
    fn open(&mut self) -> Self::Store;

    /// Closes `store` and opens the same location again, or `None` if the backend is not
    /// durable (the reopening cases are then skipped).
    fn reopen(&mut self, store: Self::Store) -> Option<Self::Store>;
}

/// A non-durable backend from a constructor (`Fresh(MemoryStore::new)`).
#[derive(Debug)]
pub struct Fresh<F>(pub F);

impl<S: Store, F: FnMut() -> S> Backend for Fresh<F> {
    type Store = S;
    fn open(&mut self) -> S {
        (self.0)()
    }
    fn reopen(&mut self, _store: S) -> Option<S> {
        None
    }
}

/// A durable backend from a function that opens one fixed location (the closure captures
/// the path); reopening closes the store, drops it and calls the function again.
#[derive(Debug)]
pub struct Reopenable<F>(pub F);

impl<S: Store, F: FnMut() -> S> Backend for Reopenable<F> {
    type Store = S;
    fn open(&mut self) -> S {
        (self.0)()
    }
    fn reopen(&mut self, store: S) -> Option<S> {
        store.close().expect("close before reopening");
        drop(store);
        Some((self.0)())
    }
}

/// Expands to one `#[test]` per conformance case. The argument is an expression evaluated
/// afresh in each test, yielding a [`Backend`].
#[macro_export]
macro_rules! conformance_tests {
    ($backend:expr) => {
        $crate::conformance_tests!(@cases $backend;
            job_crud, idempotent_materialization, watermark_compare_and_set,
            concurrent_materialization, fencing, lease_expiry, interrupted_runs, retries,
            dependencies, cancellation, retention, list_filters, batch_atomicity,
            reopen_keeps_everything, closed_store);
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let mut backend = $backend;
                $crate::conformance::$case(&mut backend);
            }
        )*
    };
}

/// Runs every case in sequence, each on a fresh `open()` of `backend`'s location — so the
/// location must start empty each time; prefer [`conformance_tests!`](crate::conformance_tests)
/// for anything durable.
pub fn run_all<B: Backend>(backend: &mut B) {
    job_crud(backend);
    idempotent_materialization(backend);
    watermark_compare_and_set(backend);
    concurrent_materialization(backend);
    fencing(backend);
    lease_expiry(backend);
    interrupted_runs(backend);
    retries(backend);
    dependencies(backend);
    cancellation(backend);
    retention(backend);
    list_filters(backend);
    batch_atomicity(backend);
    reopen_keeps_everything(backend);
    closed_store(backend);
}

const TTL: SignedDuration = SignedDuration::from_secs(30);

/// The suite's epoch.
fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_767_225_600 + secs).expect("valid")
}

fn def(handler: &str) -> JobDefinition {
    JobDefinition {
        trigger: TriggerSpec::Interval {
            every: SignedDuration::from_secs(10),
            anchor: t(0),
            start: None,
            end: None,
        },
        handler: handler.into(),
        args: serde_json::json!({ "n": 1 }),
        policies: PolicySpec::default(),
        depends_on: vec![],
    }
}

fn add_job<S: Store>(s: &S, name: &str) {
    s.upsert_job(JobRecord::new(name, def(name), Some(t(0)), t(0)))
        .expect("upsert_job");
}

fn tick<S: Store>(s: &S, job: &str, from: i64, to: i64, runs: Vec<NewRun>) -> Vec<RunRecord> {
    match s
        .materialize(Materialization::tick(
            job,
            Some(t(from)),
            Some(t(to)),
            runs,
            t(from),
        ))
        .expect("materialize")
    {
        MaterializeOutcome::Committed { inserted, existing } => {
            assert!(existing.is_empty(), "unexpected existing {existing:?}");
            inserted
        }
        other => panic!("materialize of {job} {from}->{to}: {other:?}"),
    }
}

fn start<S: Store>(s: &S, run: RunId, now: i64) -> Attempt {
    match s
        .start_attempt(run, "w1", t(now), TTL)
        .expect("start_attempt")
    {
        StartOutcome::Started(c) => {
            assert_eq!(c.run.state, RunState::Running);
            c.attempt
        }
        other => panic!("start of {run}: {other:?}"),
    }
}

fn run_state<S: Store>(s: &S, run: RunId) -> RunState {
    s.get_run(run).expect("get_run").expect("run exists").state
}

fn completed(o: CompleteOutcome) -> (RunState, Vec<RunId>, Vec<RunId>) {
    match o {
        CompleteOutcome::Completed {
            state,
            released,
            skipped,
        } => (state, released, skipped),
        other => panic!("expected a completion, got {other:?}"),
    }
}

/// Jobs: insert, read, update (definition version bump only on a definition change),
/// patch, list, delete (with its runs).
pub fn job_crud<B: Backend>(b: &mut B) {
    let s = b.open();
    assert_eq!(s.get_job(&"a".into()).unwrap(), None);
    let rec = JobRecord::new("a", def("a"), Some(t(0)), t(0));
    assert_eq!(s.upsert_job(rec.clone()).unwrap(), UpsertOutcome::Inserted);
    assert_eq!(s.get_job(&"a".into()).unwrap().as_ref(), Some(&rec));
    let mut same = rec.clone();
    same.updated_at = t(5);
    same.created_at = t(5);
    assert_eq!(
        s.upsert_job(same).unwrap(),
        UpsertOutcome::Updated { def_version: 1 }
    );
    let mut changed = rec.clone();
    changed.definition.args = serde_json::json!({ "n": 2 });
    changed.updated_at = t(6);
    assert_eq!(
        s.upsert_job(changed).unwrap(),
        UpsertOutcome::Updated { def_version: 2 }
    );
    let got = s.get_job(&"a".into()).unwrap().unwrap();
    assert_eq!(got.created_at, t(0), "created_at is kept on update");
    assert_eq!(got.updated_at, t(6));
    assert_eq!(got.definition.args, serde_json::json!({ "n": 2 }));

    s.update_job(
        &"a".into(),
        JobPatch {
            paused: Some(true),
            status: Some(JobStatus::Paused),
        },
        t(7),
    )
    .unwrap();
    let got = s.get_job(&"a".into()).unwrap().unwrap();
    assert!(got.state.paused);
    assert_eq!(got.state.status, JobStatus::Paused);
    assert!(matches!(
        s.update_job(&"zz".into(), JobPatch::default(), t(7)),
        Err(StoreError::JobNotFound { .. })
    ));

    add_job(&s, "b");
    let ids: Vec<JobId> = s.list_jobs().unwrap().into_iter().map(|j| j.id).collect();
    assert_eq!(ids, vec![JobId::from("a"), JobId::from("b")]);

    let runs = tick(&s, "b", 0, 10, vec![NewRun::pending(t(0))]);
    assert!(s.delete_job(&"b".into(), t(8)).unwrap());
    assert!(!s.delete_job(&"b".into(), t(8)).unwrap());
    assert_eq!(s.get_job(&"b".into()).unwrap(), None);
    assert_eq!(
        s.get_run(runs[0].id).unwrap(),
        None,
        "runs go with their job"
    );
    assert_eq!(s.list_jobs().unwrap().len(), 1);
}

/// Each occurrence becomes exactly one run: repeating a materialization never duplicates.
pub fn idempotent_materialization<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let runs = tick(
        &s,
        "a",
        0,
        20,
        vec![NewRun::pending(t(0)), NewRun::pending(t(10))],
    );
    assert_eq!(runs.len(), 2);
    assert!(runs[0].id < runs[1].id, "run ids increase");
    assert_eq!(runs[0].key, OccurrenceKey::new("a", t(0)));
    assert_eq!(runs[0].state, RunState::Pending);
    assert_eq!(runs[0].attempt, Attempt(0));
    assert_eq!(s.find_run(&runs[1].key).unwrap().as_ref(), Some(&runs[1]));
    let job = s.get_job(&"a".into()).unwrap().unwrap();
    assert_eq!(job.state.watermark, Some(t(20)));
    assert_eq!(job.state.last_fired_at, Some(t(10)));

    // A stale process repeating the same tick: the CAS refuses it.
    let again = s
        .materialize(Materialization::tick(
            "a",
            Some(t(0)),
            Some(t(20)),
            vec![NewRun::pending(t(0)), NewRun::pending(t(10))],
            t(1),
        ))
        .unwrap();
    assert_eq!(
        again,
        MaterializeOutcome::WatermarkMoved {
            current: Some(t(20))
        }
    );
    // Without the CAS (a manual backfill of the same times), the unique key refuses it.
    let backfill = s
        .materialize(Materialization {
            job: "a".into(),
            watermark: WatermarkUpdate::Keep,
            runs: vec![
                NewRun::pending(t(10)).with_origin(RunOrigin::Backfill),
                NewRun::pending(t(15)).with_origin(RunOrigin::Manual),
            ],
            deps: vec![],
            now: t(2),
        })
        .unwrap();
    match backfill {
        MaterializeOutcome::Committed { inserted, existing } => {
            assert_eq!(existing, vec![OccurrenceKey::new("a", t(10))]);
            assert_eq!(inserted.len(), 1);
            assert_eq!(inserted[0].key.scheduled_at, t(15));
            assert_eq!(inserted[0].origin, RunOrigin::Manual);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.get_job(&"a".into()).unwrap().unwrap().state.watermark,
        Some(t(20)),
        "Keep leaves the watermark"
    );
    // Stages make distinct occurrences of the same time.
    let staged = tick(
        &s,
        "a",
        20,
        30,
        vec![
            NewRun::pending(t(20)).with_stage("extract"),
            NewRun::pending(t(20)).with_stage("load"),
        ],
    );
    assert_eq!(staged.len(), 2);
    // A request naming one occurrence twice is invalid and writes nothing.
    let dup = s.materialize(Materialization::tick(
        "a",
        Some(t(30)),
        Some(t(40)),
        vec![NewRun::pending(t(30)), NewRun::pending(t(30))],
        t(3),
    ));
    assert!(matches!(dup, Err(StoreError::Invalid { .. })), "{dup:?}");
    assert_eq!(
        s.get_job(&"a".into()).unwrap().unwrap().state.watermark,
        Some(t(30))
    );
    assert_eq!(s.list_runs(&RunFilter::job("a")).unwrap().len(), 5);
    // Skipped fires are recorded, not lost.
    let skipped = tick(
        &s,
        "a",
        30,
        40,
        vec![NewRun::skipped(t(30), "misfire: skip")],
    );
    assert_eq!(skipped[0].state, RunState::Skipped);
    assert_eq!(skipped[0].error.as_deref(), Some("misfire: skip"));
    assert_eq!(skipped[0].finished_at, Some(t(30)));
    // Unknown job.
    assert!(matches!(
        s.materialize(Materialization::tick("nope", None, None, vec![], t(0))),
        Err(StoreError::JobNotFound { .. })
    ));
}

/// The watermark moves only by compare-and-set and never backwards.
pub fn watermark_compare_and_set<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let wrong = s
        .materialize(Materialization::tick(
            "a",
            Some(t(5)),
            Some(t(10)),
            vec![NewRun::pending(t(5))],
            t(0),
        ))
        .unwrap();
    assert_eq!(
        wrong,
        MaterializeOutcome::WatermarkMoved {
            current: Some(t(0))
        }
    );
    assert!(
        s.list_runs(&RunFilter::all()).unwrap().is_empty(),
        "nothing written"
    );
    let back = s.materialize(Materialization::tick(
        "a",
        Some(t(0)),
        Some(t(-10)),
        vec![],
        t(0),
    ));
    assert!(matches!(back, Err(StoreError::Invalid { .. })), "{back:?}");
    // An empty tick just moves the watermark (e.g. a paused window or a jump).
    tick(&s, "a", 0, 100, vec![]);
    // Exhaustion: no fire left.
    let done = s
        .materialize(Materialization::tick(
            "a",
            Some(t(100)),
            None,
            vec![NewRun::pending(t(100))],
            t(100),
        ))
        .unwrap();
    assert!(matches!(done, MaterializeOutcome::Committed { .. }));
    assert_eq!(
        s.get_job(&"a".into()).unwrap().unwrap().state.watermark,
        None
    );
    let after = s
        .materialize(Materialization::tick(
            "a",
            Some(t(100)),
            Some(t(110)),
            vec![],
            t(100),
        ))
        .unwrap();
    assert_eq!(after, MaterializeOutcome::WatermarkMoved { current: None });
}

/// Several threads racing to materialize the same tick: exactly one wins.
pub fn concurrent_materialization<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    const N: usize = 8;
    let barrier = Barrier::new(N);
    let outcomes: Vec<MaterializeOutcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    s.materialize(Materialization::tick(
                        "a",
                        Some(t(0)),
                        Some(t(10)),
                        vec![NewRun::pending(t(0))],
                        t(0),
                    ))
                    .expect("materialize")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, MaterializeOutcome::Committed { .. }))
        .count();
    assert_eq!(wins, 1, "{outcomes:?}");
    assert_eq!(s.list_runs(&RunFilter::all()).unwrap().len(), 1);
}

/// Only the current attempt can finish a run; a reclaimed run refuses the old attempt.
pub fn fencing<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let run = tick(
        &s,
        "a",
        0,
        10,
        vec![NewRun::pending(t(0)).with_max_attempts(3)],
    )[0]
    .id;
    let a1 = start(&s, run, 0);
    assert_eq!(a1, Attempt(1));
    // Starting by occurrence key is the same start, fenced the same way.
    let by_key = OccurrenceKey::new("a", t(0));
    assert!(matches!(
        s.start_occurrence(&by_key, "w2", t(1), TTL).unwrap(),
        StartOutcome::NotClaimable {
            state: RunState::Running,
            attempt: Attempt(1)
        }
    ));
    assert!(matches!(
        s.start_occurrence(&OccurrenceKey::new("a", t(5)), "w2", t(1), TTL),
        Err(StoreError::OccurrenceNotFound { .. })
    ));
    // A second starter loses.
    assert_eq!(
        s.start_attempt(run, "w2", t(1), TTL).unwrap(),
        StartOutcome::NotClaimable {
            state: RunState::Running,
            attempt: Attempt(1)
        }
    );
    // Worker 1 stalls past its lease; worker 2 reclaims (attempt 2).
    let claimed = s.claim_due("w2", t(100), TTL, 10).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].attempt, Attempt(2));
    assert_eq!(claimed[0].run.lease.as_ref().unwrap().owner, "w2");
    // Worker 1's late writes are refused.
    assert!(
        s.renew_leases("w1", &[(run, a1)], t(101), TTL)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.complete(run, a1, Completion::success(), t(101)).unwrap(),
        CompleteOutcome::Fenced {
            current: Attempt(2),
            state: RunState::Running
        }
    );
    assert_eq!(run_state(&s, run), RunState::Running);
    // Worker 2 finishes.
    let (state, ..) = completed(
        s.complete(
            run,
            Attempt(2),
            Completion::success().with_result(serde_json::json!(42)),
            t(102),
        )
        .unwrap(),
    );
    assert_eq!(state, RunState::Succeeded);
    let r = s.get_run(run).unwrap().unwrap();
    assert_eq!(r.result, Some(serde_json::json!(42)));
    assert_eq!(r.finished_at, Some(t(102)));
    assert_eq!(r.lease, None);
    // A completion after the end is fenced too.
    assert!(matches!(
        s.complete(run, Attempt(2), Completion::success(), t(103))
            .unwrap(),
        CompleteOutcome::Fenced { .. }
    ));
    let hist = s.attempts(run).unwrap();
    let outcomes: Vec<_> = hist
        .iter()
        .map(|a| (a.attempt, a.owner.as_str(), a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            (Attempt(1), "w1", Some(AttemptOutcome::Interrupted)),
            (Attempt(2), "w2", Some(AttemptOutcome::Succeeded)),
        ]
    );
    assert_eq!(s.get_job(&"a".into()).unwrap().unwrap().state.run_count, 1);
    assert!(matches!(
        s.complete(RunId(999_999), Attempt(1), Completion::success(), t(0)),
        Err(StoreError::RunNotFound { .. })
    ));
}

/// Leases: renewal extends them; only expired ones are taken; a slow worker whose lease
/// lapsed may still finish if nobody reclaimed the run.
pub fn lease_expiry<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let runs = tick(
        &s,
        "a",
        0,
        20,
        vec![
            NewRun::pending(t(0)).with_max_attempts(2),
            NewRun::pending(t(10)).with_max_attempts(2),
        ],
    );
    let (r1, r2) = (runs[0].id, runs[1].id);
    let a1 = start(&s, r1, 0);
    let a2 = start(&s, r2, 0);
    assert_eq!(
        s.renew_leases("w1", &[(r1, a1), (r2, a2)], t(20), TTL)
            .unwrap(),
        vec![r1, r2]
    );
    assert_eq!(
        s.get_run(r1).unwrap().unwrap().lease.unwrap().expires_at,
        t(50)
    );
    assert!(
        s.renew_leases("other", &[(r1, a1)], t(20), TTL)
            .unwrap()
            .is_empty()
    );
    assert!(
        s.expire_leases(t(49)).unwrap().is_empty(),
        "not yet expired"
    );
    s.renew_leases("w1", &[(r2, a2)], t(40), TTL).unwrap();
    let expired = s.expire_leases(t(51)).unwrap();
    assert_eq!(expired.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r1]);
    assert_eq!(expired[0].state, RunState::Interrupted);
    assert_eq!(run_state(&s, r2), RunState::Running);
    // The slow worker of r1 comes back before anyone reclaimed: accepted.
    let (state, ..) = completed(s.complete(r1, a1, Completion::success(), t(52)).unwrap());
    assert_eq!(state, RunState::Succeeded);
    assert_eq!(
        s.attempts(r1).unwrap()[0].outcome,
        Some(AttemptOutcome::Succeeded)
    );
}

/// Start-up recovery: running runs become interrupted (or dead when out of attempts),
/// interrupted runs are claimable again and keep their history.
pub fn interrupted_runs<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    add_job(&s, "down");
    let runs = tick(
        &s,
        "a",
        0,
        20,
        vec![
            NewRun::pending(t(0)).with_max_attempts(2),
            NewRun::pending(t(10)).with_max_attempts(1),
        ],
    );
    let (r1, r2) = (runs[0].id, runs[1].id);
    // A downstream run waiting on r2.
    let down = s
        .materialize(Materialization {
            job: "down".into(),
            watermark: WatermarkUpdate::Keep,
            runs: vec![NewRun::pending(t(10))],
            deps: vec![NewDep {
                run: OccurrenceKey::new("down", t(10)),
                upstream: OccurrenceKey::new("a", t(10)),
                rule: DependencyRule::AllSuccess,
            }],
            now: t(10),
        })
        .unwrap();
    let MaterializeOutcome::Committed { inserted, .. } = down else {
        panic!("{down:?}")
    };
    let down = inserted[0].id;
    assert_eq!(run_state(&s, down), RunState::Blocked);
    start(&s, r1, 0);
    start(&s, r2, 10);
    let recovered = s.recover_interrupted(t(60)).unwrap();
    let mut got: Vec<_> = recovered.iter().map(|r| (r.id, r.state)).collect();
    got.sort_by_key(|g| g.0);
    assert_eq!(got, vec![(r1, RunState::Interrupted), (r2, RunState::Dead)]);
    assert_eq!(
        run_state(&s, down),
        RunState::Skipped,
        "dead upstream skips"
    );
    let r = s.get_run(r1).unwrap().unwrap();
    assert_eq!(r.outcome, Some(AttemptOutcome::Interrupted));
    assert_eq!(r.lease, None);
    assert_eq!(r.attempt, Attempt(1));
    assert_eq!(
        s.attempts(r1).unwrap()[0].outcome,
        Some(AttemptOutcome::Interrupted)
    );
    assert!(
        s.recover_interrupted(t(61)).unwrap().is_empty(),
        "idempotent"
    );
    // Retried by a new attempt.
    assert_eq!(start(&s, r1, 62), Attempt(2));
    let (state, ..) = completed(
        s.complete(r1, Attempt(2), Completion::success(), t(63))
            .unwrap(),
    );
    assert_eq!(state, RunState::Succeeded);
    assert_eq!(s.attempts(r1).unwrap().len(), 2);
}

/// Failures go to retry-wait while attempts remain and the policy asks, then fail.
pub fn retries<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let run = tick(
        &s,
        "a",
        0,
        10,
        vec![NewRun::pending(t(0)).with_max_attempts(2)],
    )[0]
    .id;
    let a1 = start(&s, run, 0);
    let (state, ..) = completed(
        s.complete(
            run,
            a1,
            Completion::failure(AttemptOutcome::Failed, "boom", Some(t(30))),
            t(1),
        )
        .unwrap(),
    );
    assert_eq!(state, RunState::RetryWait);
    let r = s.get_run(run).unwrap().unwrap();
    assert_eq!(r.available_at, t(30));
    assert_eq!(r.error.as_deref(), Some("boom"));
    assert!(
        s.claim_due("w", t(29), TTL, 10).unwrap().is_empty(),
        "not before backoff"
    );
    let c = s.claim_due("w", t(30), TTL, 10).unwrap();
    assert_eq!(c.len(), 1);
    assert_eq!(c[0].attempt, Attempt(2));
    let (state, ..) = completed(
        s.complete(
            run,
            Attempt(2),
            Completion::failure(AttemptOutcome::TimedOut, "too slow", Some(t(60))),
            t(31),
        )
        .unwrap(),
    );
    assert_eq!(state, RunState::Failed, "attempts exhausted");
    assert_eq!(s.get_job(&"a".into()).unwrap().unwrap().state.run_count, 1);
    let outcomes: Vec<_> = s
        .attempts(run)
        .unwrap()
        .into_iter()
        .map(|a| a.outcome)
        .collect();
    assert_eq!(
        outcomes,
        vec![Some(AttemptOutcome::Failed), Some(AttemptOutcome::TimedOut)]
    );
    // No retry asked: fails at once even with attempts left.
    let run = tick(
        &s,
        "a",
        10,
        20,
        vec![NewRun::pending(t(10)).with_max_attempts(5)],
    )[0]
    .id;
    let a = start(&s, run, 10);
    let (state, ..) = completed(
        s.complete(
            run,
            a,
            Completion::failure(AttemptOutcome::Panicked, "panic", None),
            t(11),
        )
        .unwrap(),
    );
    assert_eq!(state, RunState::Failed);
    // Interrupted is not a completion.
    assert!(matches!(
        s.complete(
            run,
            a,
            Completion::failure(AttemptOutcome::Interrupted, "x", None),
            t(12)
        ),
        Err(StoreError::Invalid { .. })
    ));
}

/// Pipelines: runs released in the completion's transaction; failures skip `AllSuccess`
/// dependents transitively; `AllDone` dependents are released anyway.
pub fn dependencies<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "p");
    let key = |stage: &str| OccurrenceKey::new("p", t(0)).with_stage(stage);
    let dep = |run: &str, up: &str, rule| NewDep {
        run: key(run),
        upstream: key(up),
        rule,
    };
    let m = Materialization {
        job: "p".into(),
        watermark: WatermarkUpdate::Cas {
            expected: Some(t(0)),
            new: Some(t(10)),
        },
        runs: ["a", "b", "c", "d", "e"]
            .iter()
            .map(|st| NewRun::pending(t(0)).with_stage(*st))
            .collect(),
        deps: vec![
            dep("b", "a", DependencyRule::AllSuccess),
            dep("c", "a", DependencyRule::AllSuccess),
            dep("d", "b", DependencyRule::AllSuccess),
            dep("d", "c", DependencyRule::AllSuccess),
            dep("e", "c", DependencyRule::AllDone),
        ],
        now: t(0),
    };
    let MaterializeOutcome::Committed { inserted, .. } = s.materialize(m).unwrap() else {
        panic!()
    };
    let id: Vec<RunId> = inserted.iter().map(|r| r.id).collect();
    let states: Vec<_> = inserted.iter().map(|r| (r.state, r.pending_deps)).collect();
    assert_eq!(
        states,
        vec![
            (RunState::Pending, 0),
            (RunState::Blocked, 1),
            (RunState::Blocked, 1),
            (RunState::Blocked, 2),
            (RunState::Blocked, 1),
        ]
    );
    let mut ups: Vec<RunId> = s
        .upstream_deps(id[3])
        .unwrap()
        .iter()
        .map(|d| d.upstream)
        .collect();
    ups.sort();
    assert_eq!(ups, vec![id[1], id[2]]);
    // Blocked runs cannot be started or claimed.
    assert!(matches!(
        s.start_attempt(id[1], "w", t(0), TTL).unwrap(),
        StartOutcome::NotClaimable {
            state: RunState::Blocked,
            ..
        }
    ));
    let claimed = s.claim_due("w", t(0), TTL, 10).unwrap();
    assert_eq!(
        claimed.iter().map(|c| c.run.id).collect::<Vec<_>>(),
        vec![id[0]]
    );
    let (_, mut released, skipped) = completed(
        s.complete(id[0], Attempt(1), Completion::success(), t(1))
            .unwrap(),
    );
    released.sort();
    assert_eq!(released, vec![id[1], id[2]]);
    assert!(skipped.is_empty());
    assert_eq!(s.get_run(id[1]).unwrap().unwrap().available_at, t(1));
    let ab = start(&s, id[1], 2);
    let (_, released, _) = completed(s.complete(id[1], ab, Completion::success(), t(3)).unwrap());
    assert!(released.is_empty(), "d still waits on c");
    assert_eq!(s.get_run(id[3]).unwrap().unwrap().pending_deps, 1);
    let ac = start(&s, id[2], 2);
    let (_, released, skipped) = completed(
        s.complete(
            id[2],
            ac,
            Completion::failure(AttemptOutcome::Failed, "c broke", None),
            t(4),
        )
        .unwrap(),
    );
    assert_eq!(released, vec![id[4]], "AllDone edge releases e");
    assert_eq!(skipped, vec![id[3]], "AllSuccess edge skips d");
    assert_eq!(run_state(&s, id[3]), RunState::Skipped);
    assert_eq!(run_state(&s, id[4]), RunState::Pending);

    // A dependency on an upstream that already ended: met, or skipped at once.
    add_job(&s, "q");
    let m = Materialization {
        job: "q".into(),
        watermark: WatermarkUpdate::Keep,
        runs: vec![NewRun::pending(t(0)), NewRun::pending(t(1))],
        deps: vec![
            NewDep {
                run: OccurrenceKey::new("q", t(0)),
                upstream: key("a"),
                rule: DependencyRule::AllSuccess,
            },
            NewDep {
                run: OccurrenceKey::new("q", t(1)),
                upstream: key("c"),
                rule: DependencyRule::AllSuccess,
            },
        ],
        now: t(5),
    };
    let MaterializeOutcome::Committed { inserted, .. } = s.materialize(m).unwrap() else {
        panic!()
    };
    assert_eq!(inserted[0].state, RunState::Pending);
    assert_eq!(inserted[1].state, RunState::Skipped);
    // Unknown upstream: refused, nothing written.
    let bad = s.materialize(Materialization {
        job: "q".into(),
        watermark: WatermarkUpdate::Keep,
        runs: vec![NewRun::pending(t(2))],
        deps: vec![NewDep {
            run: OccurrenceKey::new("q", t(2)),
            upstream: OccurrenceKey::new("p", t(999)),
            rule: DependencyRule::AllSuccess,
        }],
        now: t(5),
    });
    assert!(
        matches!(bad, Err(StoreError::OccurrenceNotFound { .. })),
        "{bad:?}"
    );
    assert_eq!(s.find_run(&OccurrenceKey::new("q", t(2))).unwrap(), None);
}

/// Cancelling a run ends it, fences its worker and resolves its dependents.
pub fn cancellation<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    let runs = tick(
        &s,
        "a",
        0,
        20,
        vec![NewRun::pending(t(0)), NewRun::pending(t(10))],
    );
    let a = start(&s, runs[0].id, 0);
    assert!(s.cancel_run(runs[0].id, "user asked", t(1)).unwrap());
    assert!(s.cancel_run(runs[1].id, "user asked", t(1)).unwrap());
    assert!(!s.cancel_run(runs[1].id, "again", t(2)).unwrap());
    let r = s.get_run(runs[0].id).unwrap().unwrap();
    assert_eq!(r.state, RunState::Cancelled);
    assert_eq!(r.error.as_deref(), Some("user asked"));
    assert!(matches!(
        s.complete(runs[0].id, a, Completion::success(), t(3))
            .unwrap(),
        CompleteOutcome::Fenced {
            state: RunState::Cancelled,
            ..
        }
    ));
    assert_eq!(
        s.attempts(runs[0].id).unwrap()[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
}

/// Pruning removes only terminal runs beyond the retention, with their attempts.
pub fn retention<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    add_job(&s, "b");
    let mut ids = Vec::new();
    for i in 0..5 {
        let r = tick(
            &s,
            "a",
            i * 10,
            (i + 1) * 10,
            vec![NewRun::pending(t(i * 10))],
        )[0]
        .id;
        let at = start(&s, r, i * 10);
        let _ = s
            .complete(r, at, Completion::success(), t(i * 10 + 1))
            .unwrap();
        ids.push(r);
    }
    let open = tick(&s, "a", 50, 60, vec![NewRun::pending(t(50))])[0].id;
    let b_old = tick(&s, "b", 0, 10, vec![NewRun::skipped(t(0), "skip")])[0].id;
    // Keep 2 terminal runs per job: a's three oldest go; b's single one stays; open stays.
    assert_eq!(
        s.prune(
            Retention {
                max_age: None,
                max_per_job: Some(2)
            },
            t(100)
        )
        .unwrap(),
        3
    );
    let left: Vec<RunId> = s
        .list_runs(&RunFilter::all())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![b_old, ids[3], ids[4], open]);
    assert!(
        s.attempts(ids[0]).unwrap().is_empty(),
        "attempts pruned too"
    );
    // By age: finished before 100 - 60 = 40 (b_old at 0, ids[3] at 31) go.
    assert_eq!(
        s.prune(
            Retention {
                max_age: Some(SignedDuration::from_secs(60)),
                max_per_job: None
            },
            t(100)
        )
        .unwrap(),
        2
    );
    let left: Vec<RunId> = s
        .list_runs(&RunFilter::all())
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(left, vec![ids[4], open]);
    assert_eq!(s.prune(Retention::default(), t(1000)).unwrap(), 0);
}

/// `list_runs` filters by job, state and time window, ordered by scheduled time.
pub fn list_filters<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    add_job(&s, "b");
    tick(
        &s,
        "b",
        0,
        30,
        vec![NewRun::pending(t(20)), NewRun::skipped(t(0), "x")],
    );
    tick(
        &s,
        "a",
        0,
        30,
        vec![NewRun::pending(t(10)), NewRun::pending(t(0))],
    );
    let keys = |f: RunFilter| -> Vec<(String, i64)> {
        s.list_runs(&f)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.key.job.0,
                    r.key.scheduled_at.as_second() - t(0).as_second(),
                )
            })
            .collect()
    };
    assert_eq!(
        keys(RunFilter::all()),
        vec![
            ("b".into(), 0),
            ("a".into(), 0),
            ("a".into(), 10),
            ("b".into(), 20)
        ]
    );
    assert_eq!(
        keys(RunFilter::job("a")),
        vec![("a".into(), 0), ("a".into(), 10)]
    );
    assert_eq!(
        keys(RunFilter::all().in_states([RunState::Skipped])),
        vec![("b".into(), 0)]
    );
    assert_eq!(
        keys(RunFilter {
            scheduled_from: Some(t(5)),
            scheduled_before: Some(t(20)),
            ..RunFilter::all()
        }),
        vec![("a".into(), 10)]
    );
    assert_eq!(
        keys(RunFilter {
            limit: Some(1),
            ..RunFilter::job("b")
        }),
        vec![("b".into(), 0)]
    );
}

/// One `apply` commits several ops; a failing op leaves no trace and spares the others.
pub fn batch_atomicity<B: Backend>(b: &mut B) {
    let s = b.open();
    let results = s
        .apply(vec![
            WriteOp::UpsertJob(Box::new(JobRecord::new("a", def("a"), Some(t(0)), t(0)))),
            WriteOp::Materialize(Box::new(Materialization::tick(
                "a",
                Some(t(0)),
                Some(t(10)),
                vec![NewRun::pending(t(0))],
                t(0),
            ))),
            // Fails validation after the first run would have been inserted: must leave
            // no trace.
            WriteOp::Materialize(Box::new(Materialization {
                job: "a".into(),
                watermark: WatermarkUpdate::Cas {
                    expected: Some(t(10)),
                    new: Some(t(20)),
                },
                runs: vec![NewRun::pending(t(10)), NewRun::pending(t(11))],
                deps: vec![NewDep {
                    run: OccurrenceKey::new("a", t(11)),
                    upstream: OccurrenceKey::new("ghost", t(0)),
                    rule: DependencyRule::AllSuccess,
                }],
                now: t(0),
            })),
            WriteOp::UpdateJob {
                job: "a".into(),
                patch: JobPatch {
                    paused: Some(true),
                    status: None,
                },
                now: t(1),
            },
            WriteOp::UpdateJob {
                job: "ghost".into(),
                patch: JobPatch::default(),
                now: t(1),
            },
        ])
        .unwrap();
    assert_eq!(results.len(), 5);
    assert!(matches!(
        results[0],
        Ok(WriteOutput::Upserted(UpsertOutcome::Inserted))
    ));
    assert!(matches!(
        results[1],
        Ok(WriteOutput::Materialized(
            MaterializeOutcome::Committed { .. }
        ))
    ));
    assert!(
        matches!(results[2], Err(StoreError::OccurrenceNotFound { .. })),
        "{:?}",
        results[2]
    );
    assert!(matches!(results[3], Ok(WriteOutput::Updated)));
    assert!(matches!(results[4], Err(StoreError::JobNotFound { .. })));
    let job = s.get_job(&"a".into()).unwrap().unwrap();
    assert_eq!(job.state.watermark, Some(t(10)));
    assert!(job.state.paused);
    assert_eq!(s.list_runs(&RunFilter::all()).unwrap().len(), 1);
    assert!(s.apply(vec![]).unwrap().is_empty());
    // Fire and start in one commit: the start sees the run the materialization inserted.
    let key = OccurrenceKey::new("a", t(10));
    let results = s
        .apply(vec![
            WriteOp::Materialize(Box::new(Materialization::tick(
                "a",
                Some(t(10)),
                Some(t(20)),
                vec![NewRun::pending(t(10))],
                t(10),
            ))),
            WriteOp::StartOccurrence {
                key: key.clone(),
                owner: "w".into(),
                now: t(10),
                lease_ttl: TTL,
            },
        ])
        .unwrap();
    assert!(
        matches!(&results[1], Ok(WriteOutput::Started(StartOutcome::Started(c))) if c.attempt == Attempt(1)),
        "{results:?}"
    );
    assert_eq!(s.find_run(&key).unwrap().unwrap().state, RunState::Running);
}

/// A durable store gives back everything after reopening, and keeps numbering runs upward.
pub fn reopen_keeps_everything<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    add_job(&s, "p");
    let runs = tick(
        &s,
        "a",
        0,
        30,
        vec![
            NewRun::pending(t(0)).with_max_attempts(3),
            NewRun::pending(t(10)),
            NewRun::skipped(t(20), "overlap"),
        ],
    );
    let a = start(&s, runs[0].id, 0);
    let _ = s
        .complete(
            runs[0].id,
            a,
            Completion::failure(AttemptOutcome::Failed, "e", Some(t(5))),
            t(1),
        )
        .unwrap();
    start(&s, runs[1].id, 10);
    let m = Materialization {
        job: "p".into(),
        watermark: WatermarkUpdate::Keep,
        runs: vec![
            NewRun::pending(t(0)).with_stage("x"),
            NewRun::pending(t(0)).with_stage("y"),
        ],
        deps: vec![NewDep {
            run: OccurrenceKey::new("p", t(0)).with_stage("y"),
            upstream: OccurrenceKey::new("p", t(0)).with_stage("x"),
            rule: DependencyRule::AllDone,
        }],
        now: t(0),
    };
    let _ = s.materialize(m).unwrap();
    let jobs = s.list_jobs().unwrap();
    let all = s.list_runs(&RunFilter::all()).unwrap();
    let hist: Vec<_> = all.iter().map(|r| s.attempts(r.id).unwrap()).collect();
    let deps: Vec<_> = all.iter().map(|r| s.upstream_deps(r.id).unwrap()).collect();
    let Some(s) = b.reopen(s) else {
        return;
    };
    assert_eq!(s.list_jobs().unwrap(), jobs);
    assert_eq!(s.list_runs(&RunFilter::all()).unwrap(), all);
    let hist2: Vec<_> = all.iter().map(|r| s.attempts(r.id).unwrap()).collect();
    assert_eq!(hist2, hist);
    let deps2: Vec<_> = all.iter().map(|r| s.upstream_deps(r.id).unwrap()).collect();
    assert_eq!(deps2, deps);
    // The run left running is found and marked.
    let rec = s.recover_interrupted(t(100)).unwrap();
    assert_eq!(
        rec.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![runs[1].id]
    );
    let max = all.iter().map(|r| r.id).max().unwrap();
    let more = tick(&s, "a", 30, 40, vec![NewRun::pending(t(30))]);
    assert!(more[0].id > max, "run ids are never reused");
    // Stored state survives a second reopen too.
    let before = s.list_runs(&RunFilter::all()).unwrap();
    let s = b.reopen(s).expect("durable");
    assert_eq!(s.list_runs(&RunFilter::all()).unwrap(), before);
}

/// A closed store refuses every operation with `Closed`.
pub fn closed_store<B: Backend>(b: &mut B) {
    let s = b.open();
    add_job(&s, "a");
    s.close().unwrap();
    s.close().unwrap();
    assert!(matches!(s.list_jobs(), Err(StoreError::Closed)));
    assert!(matches!(
        s.upsert_job(JobRecord::new("b", def("b"), None, t(0))),
        Err(StoreError::Closed)
    ));
}
