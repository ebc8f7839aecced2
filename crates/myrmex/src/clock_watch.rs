//! Wall-clock change notifications on Linux, so an idle scheduler does not have
//! to wake up periodically just to notice that the time was set.
//!
//! One process-wide thread blocks in `read` on a `timerfd` on `CLOCK_REALTIME`,
//! armed at a far-future instant with `TFD_TIMER_ABSTIME |
//! TFD_TIMER_CANCEL_ON_SET`. The timer never expires by itself; the read fails
//! with `ECANCELED` whenever the wall clock is set discontinuously
//! (`settimeofday`, `clock_settime`, an NTP step, a leap second, a resume from
//! suspend). The thread then calls every subscriber's waker; each scheduler
//! re-reads its clocks and its jump detection and misfire policy apply.
//!
//! The thread runs while at least one [`Subscription`] exists. Dropping the
//! last one re-arms the timer to an instant already past, which ends the read
//! at once, and joins the thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use rustix::fd::OwnedFd;
use rustix::io::Errno;
use rustix::time::{
    Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags, Timespec, timerfd_create,
    timerfd_settime,
};

use crate::clock::Waker;

/// The instant the timer is armed at: 2200-01-01T00:00:00Z, never reached in
/// practice (the kernel's time range ends in 2262).
const FAR_FUTURE_SECS: i64 = 7_258_118_400;

struct Running {
    fd: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct Hub {
    subscribers: Vec<(u64, Waker)>,
    next_id: u64,
    running: Option<Running>,
}

static HUB: Mutex<Hub> = Mutex::new(Hub {
    subscribers: Vec::new(),
    next_id: 0,
    running: None,
});

/// Whether the watcher thread is running and has not failed. A scheduler may
/// park long only while this holds.
static HEALTHY: AtomicBool = AtomicBool::new(false);

fn hub() -> MutexGuard<'static, Hub> {
    HUB.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Arms the timer at `secs` (absolute, wall clock), cancelled on clock changes.
fn arm(fd: &OwnedFd, secs: i64) -> rustix::io::Result<()> {
    let spec = Itimerspec {
        it_interval: Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        },
    };
    timerfd_settime(
        fd,
        TimerfdTimerFlags::ABSTIME | TimerfdTimerFlags::CANCEL_ON_SET,
        &spec,
    )
    .map(drop)
}

/// A registration with the watcher; dropping it unregisters (and stops the
/// thread when it was the last).
#[derive(Debug)]
pub(crate) struct Subscription {
    id: u64,
}

/// Calls `waker` whenever the wall clock is set, until the subscription is
/// dropped. Starts the watcher thread if it is not running.
///
/// # Errors
/// When the `timerfd` cannot be created or armed, or the thread not started.
pub(crate) fn subscribe(waker: Waker) -> std::io::Result<Subscription> {
    let mut hub = hub();
    if hub.running.is_some() && !HEALTHY.load(Ordering::Acquire) {
        // The thread failed and has ended: start over.
        if let Some(dead) = hub.running.take() {
            let _ = dead.thread.join();
        }
    }
    if hub.running.is_none() {
        let fd = timerfd_create(TimerfdClockId::Realtime, TimerfdFlags::CLOEXEC)?;
        arm(&fd, FAR_FUTURE_SECS)?;
        let fd = Arc::new(fd);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (fd, stop) = (Arc::clone(&fd), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("myrmex-clockwatch".into())
                .spawn(move || watch(&fd, &stop))?
        };
        HEALTHY.store(true, Ordering::Release);
        hub.running = Some(Running { fd, stop, thread });
    }
    let id = hub.next_id;
    hub.next_id += 1;
    hub.subscribers.push((id, waker));
    Ok(Subscription { id })
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let last = {
            let mut hub = hub();
            hub.subscribers.retain(|(id, _)| *id != self.id);
            if hub.subscribers.is_empty() {
                HEALTHY.store(false, Ordering::Release);
                hub.running.take()
            } else {
                None
            }
        };
        if let Some(r) = last {
            r.stop.store(true, Ordering::Release);
            if !r.thread.is_finished()
                && let Err(e) = arm(&r.fd, 1)
            {
                // The read cannot be ended; leave the thread blocked rather
                // than this caller.
                tracing::error!(error = %e, "clock watcher: could not wake the thread to stop it");
                return;
            }
            if r.thread.join().is_err() {
                tracing::error!("clock watcher thread panicked");
            }
        }
    }
}

/// Whether a healthy watcher thread is running.
pub(crate) fn healthy() -> bool {
    HEALTHY.load(Ordering::Acquire)
}

/// Calls every subscriber's waker (dropping those whose scheduler is gone).
pub(crate) fn notify_all() {
    hub().subscribers.retain(|(_, w)| w());
}

/// The watcher thread's body.
fn watch(fd: &OwnedFd, stop: &AtomicBool) {
    let mut buf = [0u8; 8];
    loop {
        let r = rustix::io::read(fd, &mut buf);
        if stop.load(Ordering::Acquire) {
            return;
        }
        match r {
            Err(Errno::CANCELED) => {
                tracing::debug!("wall clock set; waking the schedulers");
                notify_all();
            }
            Err(Errno::INTR | Errno::AGAIN) => {}
            // The far-future instant was reached (or the timer fired for a
            // reason we do not know): arm it again.
            Ok(_) => {
                if let Err(e) = arm(fd, FAR_FUTURE_SECS) {
                    fail(e);
                    return;
                }
            }
            Err(e) => {
                fail(e);
                return;
            }
        }
    }
}

/// The watcher cannot go on: schedulers fall back to bounded parks (woken so
/// they re-plan with the short bound).
fn fail(e: Errno) {
    tracing::error!(error = %e, "clock watcher failed; falling back to waking every second");
    HEALTHY.store(false, Ordering::Release);
    notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn running() -> bool {
        hub().running.is_some()
    }

    /// Subscribing starts the thread, a notification reaches every subscriber,
    /// and dropping the last subscription stops and joins the thread (so no
    /// thread outlives its schedulers); a new subscription starts a new one.
    #[test]
    fn the_watcher_lives_exactly_as_long_as_its_subscribers() {
        for _round in 0..2 {
            let (tx1, rx1) = mpsc::channel();
            let (tx2, rx2) = mpsc::channel();
            let a = subscribe(Box::new(move || tx1.send(()).is_ok())).unwrap();
            let b = subscribe(Box::new(move || tx2.send(()).is_ok())).unwrap();
            assert!(running() && healthy());
            // What the thread does on ECANCELED.
            notify_all();
            rx1.try_recv().unwrap();
            rx2.try_recv().unwrap();
            drop(a);
            assert!(running());
            notify_all();
            assert!(rx1.try_recv().is_err());
            rx2.try_recv().unwrap();
            drop(b);
            assert!(!running() && !healthy());
        }
    }
}
