//! Dispatching ahead on the system clock: the scheduler thread prepares a
//! burst a little before its due instant and holds it until then. These tests
//! act during the hold through the (doc-hidden) hold hook, which keeps the burst
//! held while they do; nothing depends on how long anything takes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use myrmex::{Event, JobId, JobStatus, Scheduler, TriggerSpec};

/// What the test sees: the hook reporting a hold, or a handler running.
#[derive(Debug, PartialEq)]
enum Seen {
    Holding,
    Ran(&'static str),
}

/// How many bursts to try before giving up on seeing one held (a burst is only
/// prepared ahead when the scheduler parks long before it; on a very slow
/// machine a round can miss that).
const ROUNDS: usize = 10;

const STUCK: Duration = Duration::from_secs(60);

struct Held {
    scheduler: Scheduler,
    seen: Receiver<Seen>,
    seen_tx: std::sync::mpsc::Sender<Seen>,
    /// While true, a held burst stays held.
    gate: Arc<AtomicBool>,
    /// Whether the hook reported the current hold.
    notified: Arc<AtomicBool>,
}

fn held_scheduler() -> Held {
    let (seen_tx, seen) = channel();
    let gate = Arc::new(AtomicBool::new(false));
    let notified = Arc::new(AtomicBool::new(true));
    let scheduler = {
        let (gate, notified, tx) = (Arc::clone(&gate), Arc::clone(&notified), seen_tx.clone());
        Scheduler::builder()
            .workers(2)
            .zone(TimeZone::UTC)
            .hold_hook(move || {
                if !gate.load(Ordering::SeqCst) {
                    return false;
                }
                if !notified.swap(true, Ordering::SeqCst) {
                    let _ = tx.send(Seen::Holding);
                }
                true
            })
            .build()
            .unwrap()
    };
    scheduler.start().unwrap();
    Held {
        scheduler,
        seen,
        seen_tx,
        gate,
        notified,
    }
}

impl Held {
    /// Schedules one one-shot job per name, all due at the same instant far
    /// enough ahead for the scheduler to park and prepare them ahead, and
    /// returns once they are held (or `None` when this round's burst ran
    /// without being held: all its handlers have run).
    fn burst(&self, names: &[&'static str]) -> Option<(Timestamp, Vec<JobId>)> {
        self.notified.store(false, Ordering::SeqCst);
        self.gate.store(true, Ordering::SeqCst);
        let at = Timestamp::now() + SignedDuration::from_millis(600);
        let ids = names
            .iter()
            .map(|&name| {
                let tx = self.seen_tx.clone();
                self.scheduler
                    .schedule(TriggerSpec::once(at), move |_| {
                        let _ = tx.send(Seen::Ran(name));
                        Ok(())
                    })
                    .unwrap()
            })
            .collect();
        match self.seen.recv_timeout(STUCK).expect("a hold or a run") {
            Seen::Holding => Some((at, ids)),
            Seen::Ran(_) => {
                self.gate.store(false, Ordering::SeqCst);
                for _ in 1..names.len() {
                    self.seen
                        .recv_timeout(STUCK)
                        .expect("the round's other runs");
                }
                None
            }
        }
    }
}

#[test]
fn a_cancel_or_pause_during_the_hold_stops_the_held_attempt() {
    let h = held_scheduler();
    let events = h.scheduler.subscribe();
    let (at, ids) = (0..ROUNDS)
        .find_map(|_| h.burst(&["cancelled", "paused", "kept"]))
        .expect("a burst prepared ahead of its instant");
    let (cancelled, paused, kept) = (ids[0], ids[1], ids[2]);
    // The burst is held (the hook keeps it so): these are handled during it.
    h.scheduler.cancel(cancelled).unwrap();
    h.scheduler.pause(paused).unwrap();
    h.gate.store(false, Ordering::SeqCst);
    assert_eq!(
        h.seen.recv_timeout(STUCK).unwrap(),
        Seen::Ran("kept"),
        "only the job left alone runs"
    );
    let snap = h.scheduler.get_job(paused).unwrap();
    assert_eq!(snap.status, JobStatus::Paused);
    assert_eq!(snap.run_count, 0);
    assert_eq!(
        snap.next_run_at,
        Some(at),
        "the paused job's occurrence waits for resume"
    );
    assert!(
        h.scheduler
            .get_job(cancelled)
            .is_none_or(|s| s.status == JobStatus::Cancelled)
    );
    h.scheduler.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(h.seen.try_iter().collect::<Vec<_>>(), []);
    let started: Vec<JobId> = events
        .try_iter()
        .filter_map(|e| match e {
            Event::RunStarted { job, .. } => Some(job),
            _ => None,
        })
        .collect();
    assert_eq!(started, [kept]);
}

#[test]
fn a_reschedule_during_the_hold_replaces_the_held_occurrence() {
    let h = held_scheduler();
    let (_, ids) = (0..ROUNDS)
        .find_map(|_| h.burst(&["moved"]))
        .expect("a burst prepared ahead of its instant");
    let later = Timestamp::now() + SignedDuration::from_hours(1);
    h.scheduler
        .reschedule(ids[0], TriggerSpec::once(later))
        .unwrap();
    h.gate.store(false, Ordering::SeqCst);
    let snap = h.scheduler.get_job(ids[0]).unwrap();
    assert_eq!(snap.run_count, 0);
    assert_eq!(snap.next_run_at, Some(later));
    h.scheduler.shutdown(Duration::from_secs(5)).unwrap();
    assert_eq!(h.seen.try_iter().collect::<Vec<_>>(), []);
}

#[test]
fn a_shutdown_during_the_hold_starts_nothing() {
    let h = held_scheduler();
    (0..ROUNDS)
        .find_map(|_| h.burst(&["a", "b"]))
        .expect("a burst prepared ahead of its instant");
    // Handled during the hold, whatever the gate says: the held attempts are
    // withdrawn and the hold ends.
    h.scheduler.shutdown(Duration::from_secs(5)).unwrap();
    h.gate.store(false, Ordering::SeqCst);
    assert_eq!(h.seen.try_iter().collect::<Vec<_>>(), []);
}
