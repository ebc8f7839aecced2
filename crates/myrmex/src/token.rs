//! Cancellation tokens: how a running handler is told to stop.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    lock: Mutex<()>,
    cv: Condvar,
}

/// Set when a run must stop: its timeout passed, its job was cancelled, or the
/// scheduler is shutting down past its grace period. Handlers that run long
/// should check it (or wait on it instead of sleeping).
///
/// ```
/// use myrmex::CancellationToken;
/// use std::time::Duration;
///
/// let token = CancellationToken::new();
/// assert!(!token.wait_timeout(Duration::from_millis(1)));
/// token.cancel();
/// assert!(token.is_cancelled());
/// token.wait(); // returns at once
/// ```
#[derive(Clone, Default)]
pub struct CancellationToken {
    inner: Arc<Inner>,
}

impl fmt::Debug for CancellationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancellationToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

impl CancellationToken {
    /// A token not yet cancelled.
    pub fn new() -> CancellationToken {
        CancellationToken::default()
    }

    /// Makes the token new again (not cancelled) if no other clone of it
    /// exists; returns whether it did. The scheduler thread reuses the tokens
    /// of finished runs this way instead of allocating one per run.
    pub(crate) fn renew_if_unique(&mut self) -> bool {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                *inner.cancelled.get_mut() = false;
                true
            }
            None => false,
        }
    }

    /// Whether the run has been told to stop.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Acquire)
    }

    /// Tells the run to stop and wakes anyone waiting on the token.
    pub fn cancel(&self) {
        if !self.inner.cancelled.swap(true, Ordering::AcqRel) {
            let _guard = self
                .inner
                .lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.inner.cv.notify_all();
        }
    }

    /// Blocks until the token is cancelled.
    pub fn wait(&self) {
        let mut guard = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !self.is_cancelled() {
            guard = self
                .inner
                .cv
                .wait(guard)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }

    /// Blocks until the token is cancelled or `d` (real time) passes; returns
    /// whether it was cancelled. Use it instead of `sleep` in handlers.
    pub fn wait_timeout(&self, d: Duration) -> bool {
        let guard = self
            .inner
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (_guard, _) = self
            .inner
            .cv
            .wait_timeout_while(guard, d, |_| !self.is_cancelled())
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.is_cancelled()
    }
}
