//! The core against a brute-force reference: random interval and one-shot jobs,
//! random cancellations, random wake-up instants. With an unbounded grace period
//! and unlimited overlap, every occurrence up to `now` must fire exactly once.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};
use myrmex_core::{
    Action, AttemptResult, Core, CoreConfig, JobId, JobSpec, OverlapPolicy, TriggerSpec,
};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    AddInterval { start_ms: i64, every_ms: i64 },
    AddOnce { at_ms: i64 },
    Cancel { pick: usize },
    Advance { ms: i64 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..5_000i64, 1..2_000i64)
            .prop_map(|(start_ms, every_ms)| Op::AddInterval { start_ms, every_ms }),
        (0..20_000i64).prop_map(|at_ms| Op::AddOnce { at_ms }),
        any::<usize>().prop_map(|pick| Op::Cancel { pick }),
        (0..3_000i64).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// The reference: each job is a list of its fire times; at every wake-up the
/// fires due are found by scanning every job's list.
struct Reference {
    jobs: Vec<(u64, Vec<i64>, usize)>,
}

impl Reference {
    fn due(&mut self, now: i64) -> BTreeSet<(i64, u64)> {
        let mut out = BTreeSet::new();
        for (id, times, done) in &mut self.jobs {
            while *done < times.len() && times[*done] <= now {
                out.insert((times[*done], *id));
                *done += 1;
            }
        }
        out
    }
}

fn ms(base: Timestamp, n: i64) -> Timestamp {
    base + SignedDuration::from_millis(n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn core_fires_exactly_what_the_reference_does(ops in proptest::collection::vec(op(), 1..60)) {
        let base: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let horizon = 400_000i64;
        let mut core: Core<()> = Core::new(CoreConfig::default());
        let mut reference = Reference { jobs: Vec::new() };
        let mut now = 0i64;
        let mut next_id = 1u64;
        let grace = SignedDuration::from_hours(1_000);
        for op in ops {
            match op {
                Op::AddInterval { start_ms, every_ms } => {
                    let start = now + start_ms;
                    let spec = JobSpec::new(TriggerSpec::Interval {
                        every: SignedDuration::from_millis(every_ms),
                        start: Some(ms(base, start)),
                        end: None,
                    })
                    .misfire_grace(grace)
                    .overlap(OverlapPolicy::Allow(u16::MAX));
                    core.add(ms(base, now), JobId(next_id), spec, None, ()).unwrap();
                    let times = (0..).map(|k| start + k * every_ms).take_while(|t| *t <= horizon).collect();
                    reference.jobs.push((next_id, times, 0));
                    next_id += 1;
                }
                Op::AddOnce { at_ms } => {
                    let at = now + at_ms;
                    let spec = JobSpec::new(TriggerSpec::once(ms(base, at))).misfire_grace(grace);
                    core.add(ms(base, now), JobId(next_id), spec, None, ()).unwrap();
                    reference.jobs.push((next_id, vec![at], 0));
                    next_id += 1;
                }
                Op::Cancel { pick } => {
                    if !reference.jobs.is_empty() {
                        let (id, _, _) = reference.jobs.remove(pick % reference.jobs.len());
                        let mut out = Vec::new();
                        // A finished one-shot is already gone: both answers are fine.
                        let _ = core.cancel(ms(base, now), JobId(id), &mut out);
                    }
                }
                Op::Advance { ms: d } => {
                    now += d;
                    let mut out = Vec::new();
                    core.poll(ms(base, now), &mut out);
                    let mut got = BTreeSet::new();
                    for a in out {
                        if let Action::Start(s) = a {
                            let at = s.scheduled_at.duration_since(base).as_millis() as i64;
                            prop_assert!(got.insert((at, s.job.0)), "fired twice: {at} {:?}", s.job);
                            let mut sink = Vec::new();
                            core.finish(ms(base, now), s.run, s.attempt, AttemptResult::Succeeded, &mut sink).unwrap();
                        }
                    }
                    prop_assert_eq!(got, reference.due(now));
                    if let Some(w) = core.next_wake() {
                        let expected = reference.jobs.iter().filter_map(|(_, t, d)| t.get(*d)).min().copied();
                        prop_assert_eq!(Some(w.duration_since(base).as_millis() as i64), expected);
                    }
                }
            }
        }
    }
}
