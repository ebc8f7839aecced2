//! Clocks: where the scheduler reads the time, and how it waits.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

/// A callback a clock calls when its time moves other than by passing (a
/// [`ManualClock`] being advanced). Returns `false` once its scheduler is gone.
pub type Waker = Box<dyn Fn() -> bool + Send + Sync>;

/// Where the scheduler reads the time.
///
/// The scheduler thread reads [`Clock::now`] (wall time, which trigger times are
/// in) and [`Clock::elapsed`] (monotonic) on every wake; when the two disagree
/// the wall clock was set or the machine was suspended, and the scheduler tells
/// the core (see `Core::clock_jumped`).
pub trait Clock: fmt::Debug + Send + Sync + 'static {
    /// The wall-clock time.
    fn now(&self) -> Timestamp;

    /// Monotonic time since an arbitrary origin (never goes back).
    fn elapsed(&self) -> Duration;

    /// How long the scheduler thread may block before it has to look again,
    /// given the wall time `now` and the next due time (`None`: nothing due).
    /// `None` means "until a command arrives or [`Clock::register_waker`]'s
    /// callback is called".
    fn park_for(&self, now: Timestamp, next: Option<Timestamp>) -> Option<Duration>;

    /// Registers a callback to call when the time moves by other means than
    /// passing. The system clock never calls it.
    fn register_waker(&self, waker: Waker) {
        drop(waker);
    }

    /// Starts calling `waker` whenever the wall clock is set (by an
    /// administrator, an NTP step, a resume from suspend), until the returned
    /// guard is dropped. `None` when this clock cannot watch (the default):
    /// the scheduler then relies on [`Clock::park_for`] bounding every park.
    ///
    /// A scheduler calls it once when it is built and drops the guard when its
    /// thread ends. [`SystemClock`] watches on Linux.
    fn watch_changes(&self, waker: Waker) -> Option<ClockWatch> {
        drop(waker);
        None
    }
}

/// Keeps a [`Clock::watch_changes`] registration alive; dropping it stops the
/// notifications.
#[must_use = "dropping the guard stops the watch"]
pub struct ClockWatch {
    _guard: Box<dyn Send + 'static>,
}

impl ClockWatch {
    /// A guard whose drop (that of `guard`) ends the watch (for custom
    /// [`Clock`]s).
    pub fn new(guard: impl Send + 'static) -> ClockWatch {
        ClockWatch {
            _guard: Box::new(guard),
        }
    }
}

impl fmt::Debug for ClockWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClockWatch").finish_non_exhaustive()
    }
}

/// The operating system's clocks: `SystemTime` for the wall, `Instant` for
/// elapsed time.
///
/// The scheduler parks until the next due time. A park can outlast a change of
/// the wall clock (set by hand, an NTP step, a suspend), so it is bounded:
///
/// - On Linux, a scheduler on this clock is told of every such change by a
///   process-wide watcher thread (a `timerfd` with `TFD_TIMER_CANCEL_ON_SET`,
///   blocked until the clock is set, so it costs no wake-ups of its own). A park
///   is then bounded only by [`SystemClock::max_watched_park`] (one hour by
///   default, a safety net): an idle scheduler does not wake up.
/// - Elsewhere, or when the watcher cannot be started, a park lasts at most
///   [`SystemClock::max_park`] (one second by default), so a jump is noticed
///   within that bound; an idle scheduler then wakes once per `max_park`, for
///   a few microseconds.
///
/// ```
/// use myrmex::{Clock, SystemClock};
/// use std::time::Duration;
///
/// let clock = SystemClock::new();
/// // Nothing due and nobody watching: the short bound.
/// assert_eq!(clock.park_for(clock.now(), None), Some(SystemClock::DEFAULT_MAX_PARK));
/// ```
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: Instant,
    max_park: Duration,
    max_watched_park: Duration,
    /// Live watches made through this clock (or a clone of it).
    watches: Arc<AtomicUsize>,
}

impl SystemClock {
    /// The default bound on a single park when wall-clock changes are not
    /// watched.
    pub const DEFAULT_MAX_PARK: Duration = Duration::from_secs(1);

    /// The default bound on a single park while wall-clock changes are
    /// watched (a safety net: a change is normally announced at once).
    pub const DEFAULT_MAX_WATCHED_PARK: Duration = Duration::from_secs(3600);

    /// A system clock with the default park bounds.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
            max_park: Self::DEFAULT_MAX_PARK,
            max_watched_park: Self::DEFAULT_MAX_WATCHED_PARK,
            watches: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same clock with another park bound for when wall-clock changes are
    /// not watched.
    #[must_use]
    pub fn max_park(mut self, max: Duration) -> SystemClock {
        self.max_park = max.max(Duration::from_millis(1));
        self
    }

    /// The same clock with another park bound for while wall-clock changes are
    /// watched (never shorter than [`SystemClock::max_park`]'s).
    #[must_use]
    pub fn max_watched_park(mut self, max: Duration) -> SystemClock {
        self.max_watched_park = max.max(Duration::from_millis(1));
        self
    }

    /// The bound that applies now.
    fn park_bound(&self) -> Duration {
        if self.watches.load(Ordering::Acquire) > 0 && watcher_healthy() {
            self.max_watched_park.max(self.max_park)
        } else {
            self.max_park
        }
    }
}

#[cfg(target_os = "linux")]
fn watcher_healthy() -> bool {
    crate::clock_watch::healthy()
}

#[cfg(not(target_os = "linux"))]
fn watcher_healthy() -> bool {
    false
}

/// Decrements a clock's watch count when a watch ends.
struct WatchCount(Arc<AtomicUsize>);

impl Drop for WatchCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }

    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }

    fn park_for(&self, now: Timestamp, next: Option<Timestamp>) -> Option<Duration> {
        let bound = self.park_bound();
        let wait = match next {
            Some(next) => {
                let d = next.duration_since(now);
                if d <= SignedDuration::ZERO {
                    return Some(Duration::ZERO);
                }
                Duration::try_from(d).unwrap_or(bound)
            }
            None => bound,
        };
        Some(wait.min(bound))
    }

    #[cfg(target_os = "linux")]
    fn watch_changes(&self, waker: Waker) -> Option<ClockWatch> {
        match crate::clock_watch::subscribe(waker) {
            Ok(sub) => {
                self.watches.fetch_add(1, Ordering::AcqRel);
                // Fields drop in order: the subscription first, then the count.
                Some(ClockWatch::new((
                    sub,
                    WatchCount(Arc::clone(&self.watches)),
                )))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the wall clock; parks bounded to {:?}", self.max_park);
                None
            }
        }
    }
}

#[derive(Default)]
struct ManualState {
    now: Timestamp,
    elapsed: Duration,
    wakers: Vec<Waker>,
}

/// A clock that moves only when told to: for deterministic tests (yours and
/// ours). Advancing it wakes every scheduler using it, which then runs whatever
/// fell due, so tests never sleep.
///
/// ```
/// use myrmex::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
/// clock.advance(Duration::from_secs(90));
/// assert_eq!(clock.now().to_string(), "2026-01-01T00:01:30Z");
/// // Setting the wall clock back leaves elapsed time alone (a clock jump).
/// clock.jump(jiff::SignedDuration::from_hours(-1));
/// assert_eq!(clock.now().to_string(), "2025-12-31T23:01:30Z");
/// assert_eq!(clock.elapsed(), Duration::from_secs(90));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    state: Arc<Mutex<ManualState>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("ManualClock")
            .field("now", &s.now)
            .field("elapsed", &s.elapsed)
            .finish_non_exhaustive()
    }
}

impl ManualClock {
    /// A clock showing `now`, with zero elapsed time.
    pub fn new(now: Timestamp) -> ManualClock {
        ManualClock {
            state: Arc::new(Mutex::new(ManualState {
                now,
                elapsed: Duration::ZERO,
                wakers: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lets `d` pass (wall and elapsed time both move), then wakes the
    /// schedulers.
    pub fn advance(&self, d: Duration) {
        {
            let mut s = self.lock();
            s.now = s.now.saturating_add(d).unwrap_or(s.now);
            s.elapsed += d;
        }
        self.wake();
    }

    /// Advances to `t` (no-op if `t` is not later), then wakes the schedulers.
    pub fn advance_to(&self, t: Timestamp) {
        let d = {
            let s = self.lock();
            t.duration_since(s.now)
        };
        if let Ok(d) = Duration::try_from(d) {
            self.advance(d);
        }
    }

    /// Moves only the wall clock by `by` (negative: set back), as when the system
    /// time is changed or the machine wakes from suspend, then wakes the
    /// schedulers.
    pub fn jump(&self, by: SignedDuration) {
        {
            let mut s = self.lock();
            s.now = s.now.saturating_add(by).unwrap_or(s.now);
        }
        self.wake();
    }

    fn wake(&self) {
        // The wakers are called with the lock held so a concurrent registration
        // cannot miss this advance; they only send on a channel.
        let mut s = self.lock();
        s.wakers.retain(|w| w());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.lock().now
    }

    fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    fn park_for(&self, now: Timestamp, next: Option<Timestamp>) -> Option<Duration> {
        match next {
            Some(next) if next <= now => Some(Duration::ZERO),
            _ => None,
        }
    }

    fn register_waker(&self, waker: Waker) {
        self.lock().wakers.push(waker);
    }
}
