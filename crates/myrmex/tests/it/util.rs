//! Shared helpers.

use std::sync::mpsc::Receiver;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use myrmex::{Event, ManualClock, Scheduler};

pub const T0: &str = "2026-01-01T00:00:00Z";

pub fn t(s: &str) -> Timestamp {
    s.parse()
        .unwrap_or_else(|e| panic!("bad timestamp {s:?}: {e}"))
}

pub struct Env {
    pub scheduler: Scheduler,
    pub clock: ManualClock,
    pub events: Receiver<Event>,
}

/// A started scheduler on a manual clock at [`T0`], in UTC.
pub fn env(workers: usize) -> Env {
    env_in(workers, TimeZone::UTC, T0)
}

pub fn env_in(workers: usize, zone: TimeZone, now: &str) -> Env {
    let clock = ManualClock::new(t(now));
    let scheduler = Scheduler::builder()
        .workers(workers)
        .zone(zone)
        .clock(clock.clone())
        .build()
        .expect("scheduler built");
    let events = scheduler.subscribe();
    scheduler.start().expect("started");
    Env {
        scheduler,
        clock,
        events,
    }
}

/// A safety net so a broken scheduler fails the test instead of hanging it; the
/// tests never rely on this timing.
const STUCK: Duration = Duration::from_secs(60);

/// Waits for the first event matching `pred`, returning it (and dropping the
/// others seen on the way).
pub fn wait_for(events: &Receiver<Event>, what: &str, pred: impl Fn(&Event) -> bool) -> Event {
    loop {
        match events.recv_timeout(STUCK) {
            Ok(e) if pred(&e) => return e,
            Ok(_) => {}
            Err(e) => panic!("no event {what}: {e}"),
        }
    }
}

/// Collects events until `n` match `pred`; returns all events seen.
pub fn collect_until(
    events: &Receiver<Event>,
    n: usize,
    pred: impl Fn(&Event) -> bool,
) -> Vec<Event> {
    let mut seen = Vec::new();
    let mut hits = 0;
    while hits < n {
        match events.recv_timeout(STUCK) {
            Ok(e) => {
                if pred(&e) {
                    hits += 1;
                }
                seen.push(e);
            }
            Err(e) => panic!("only {hits} of {n} events: {e}"),
        }
    }
    seen
}

pub fn succeeded(e: &Event) -> bool {
    matches!(e, Event::RunSucceeded(_))
}

pub fn scheduled(e: &Event) -> Option<String> {
    e.report().map(|r| r.scheduled_at.to_string())
}

/// Returns once the scheduler thread has handled everything sent before (a
/// round trip through its queue): events it emitted are in the channel.
pub fn settle(env: &Env) {
    let _ = env.scheduler.list_jobs(Some(myrmex::JobStatus::Cancelled));
}
