//! A tiny driver for the core: polls at chosen instants and finishes runs.

use jiff::Timestamp;
use myrmex_core::{
    Action, AttemptResult, Core, CoreConfig, Event, JobId, JobSpec, RunId, StartRun,
};

pub fn t(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

pub struct Harness {
    pub core: Core<()>,
    pub now: Timestamp,
    pub events: Vec<Event>,
    pub started: Vec<StartRun<()>>,
    pub cancels: Vec<RunId>,
    /// Finish every started attempt at once with this result.
    pub auto: Option<AttemptResult>,
}

impl Harness {
    pub fn new(now: &str) -> Harness {
        Harness {
            core: Core::new(CoreConfig::default()),
            now: t(now),
            events: Vec::new(),
            started: Vec::new(),
            cancels: Vec::new(),
            auto: Some(AttemptResult::Succeeded),
        }
    }

    pub fn add(&mut self, id: u64, spec: impl Into<JobSpec>) {
        self.core
            .add(self.now, JobId(id), spec.into(), None, ())
            .expect("job added");
    }

    pub fn absorb(&mut self, mut out: Vec<Action<()>>) {
        while !out.is_empty() {
            let mut next = Vec::new();
            for a in out {
                match a {
                    Action::Start(s) => {
                        if let Some(r) = self.auto.clone() {
                            self.core
                                .finish(self.now, s.run, s.attempt, r, &mut next)
                                .expect("current attempt");
                        }
                        self.started.push(s);
                    }
                    Action::Cancel { run, .. } => self.cancels.push(run),
                    Action::Event(e) => self.events.push(e),
                    _ => {}
                }
            }
            out = next;
        }
    }

    /// Moves to `to` one wake-up at a time, like the runtime does.
    pub fn run_until(&mut self, to: &str) {
        let to = t(to);
        while let Some(w) = self.core.next_wake() {
            if w > to {
                break;
            }
            self.now = w.max(self.now);
            let mut out = Vec::new();
            self.core.poll(self.now, &mut out);
            self.absorb(out);
        }
        self.now = to;
    }

    /// Jumps straight to `to` and polls once (a stall or a suspend).
    pub fn jump_to(&mut self, to: &str) {
        self.now = t(to);
        let mut out = Vec::new();
        self.core.poll(self.now, &mut out);
        self.absorb(out);
    }

    pub fn finish(&mut self, i: usize, r: AttemptResult) {
        let s = &self.started[i];
        let mut out = Vec::new();
        self.core
            .finish(self.now, s.run, s.attempt, r, &mut out)
            .expect("current attempt");
        self.absorb(out);
    }

    pub fn fired(&self) -> Vec<String> {
        self.started
            .iter()
            .filter(|s| s.attempt == 1)
            .map(|s| s.scheduled_at.to_string())
            .collect()
    }
}
