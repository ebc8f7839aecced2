//! Clocks: where the scheduler reads the time, and how it waits.

use std::fmt;
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
}

/// The operating system's clocks: `SystemTime` for the wall, `Instant` for
/// elapsed time.
///
/// The scheduler parks until the next due time, but never longer than
/// [`SystemClock::max_park`] (one second by default), so that a wall-clock jump
/// forward is noticed within that bound even when nothing is due for hours. An
/// idle scheduler thus wakes once per `max_park`, for a few microseconds.
#[derive(Clone, Debug)]
pub struct SystemClock {
    origin: Instant,
    max_park: Duration,
}

impl SystemClock {
    /// The default bound on a single park.
    pub const DEFAULT_MAX_PARK: Duration = Duration::from_secs(1);

    /// A system clock with the default park bound.
    pub fn new() -> SystemClock {
        SystemClock {
            origin: Instant::now(),
            max_park: Self::DEFAULT_MAX_PARK,
        }
    }

    /// The same clock with another park bound.
    #[must_use]
    pub fn max_park(mut self, max: Duration) -> SystemClock {
        self.max_park = max.max(Duration::from_millis(1));
        self
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
        let wait = match next {
            Some(next) => {
                let d = next.duration_since(now);
                if d <= SignedDuration::ZERO {
                    return Some(Duration::ZERO);
                }
                Duration::try_from(d).unwrap_or(self.max_park)
            }
            None => self.max_park,
        };
        Some(wait.min(self.max_park))
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
