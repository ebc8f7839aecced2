//! The worker pool: threads that run handlers and report their ends in
//! batches.
//!
//! Workers take one task at a time from a shared FIFO (so a slow handler never
//! holds back tasks another worker could run). An attempt's end goes into a
//! shared list; only the report that finds the list empty sends a message to
//! the scheduler thread, which then takes the whole list at once. A burst of
//! completions thus costs one message and one wake of the scheduler thread.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use myrmex_core::{AttemptResult, RunId};

use crate::context::{Handler, RunContext};
use crate::runtime::Msg;

/// One unit of work.
pub(crate) enum Task {
    /// An attempt of a scheduled run; its end is reported to the scheduler thread.
    Run { handler: Handler, ctx: RunContext },
    /// A submitted closure; it reports its own result.
    Adhoc(Box<dyn FnOnce() + Send + 'static>),
}

/// The end of an attempt, as a worker reports it.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) run: RunId,
    pub(crate) attempt: u32,
    pub(crate) result: AttemptResult,
}

struct State {
    queue: VecDeque<Task>,
    closed: bool,
    /// Workers blocked in `next` (they count themselves in and out).
    sleeping: usize,
    /// Of those, how many were notified and have not yet taken the lock again.
    /// Every notification makes at least one waiter return, and every return
    /// counts one down, so this never overcounts (a spurious wake-up can make it
    /// undercount, which only costs a redundant notification): no task is left
    /// queued while a worker sleeps unwoken.
    waking: usize,
}

impl State {
    /// Whether to wake one more sleeping worker: when more tasks wait than
    /// workers are on their way to take them. Counts it as waking.
    fn wake_one(&mut self) -> bool {
        let wake = self.queue.len() > self.waking && self.sleeping > self.waking;
        if wake {
            self.waking += 1;
        }
        wake
    }
}

/// A FIFO of tasks shared by the workers, and the list of attempt ends going
/// back to the scheduler thread.
pub(crate) struct Pool {
    state: Mutex<State>,
    cv: Condvar,
    done: Mutex<Vec<Done>>,
}

impl Pool {
    pub(crate) fn new() -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
                sleeping: 0,
                waking: 0,
            }),
            cv: Condvar::new(),
            done: Mutex::new(Vec::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues tasks; returns them back if the pool is closed. Wakes one
    /// sleeping worker if no worker is on its way for them already; a worker
    /// that takes a task and leaves more behind wakes the next one (see
    /// [`State::wake_one`]), so the cost of waking several workers for a batch
    /// is spread over the workers instead of falling on the caller.
    pub(crate) fn push_all(&self, tasks: &mut Vec<Task>) -> Result<(), Vec<Task>> {
        if tasks.is_empty() {
            return Ok(());
        }
        let wake = {
            let mut s = self.lock();
            if s.closed {
                return Err(std::mem::take(tasks));
            }
            s.queue.extend(tasks.drain(..));
            s.wake_one()
        };
        if wake {
            self.cv.notify_one();
        }
        Ok(())
    }

    /// No more tasks are accepted; workers exit once the queue is empty.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    fn next(&self) -> Option<Task> {
        let mut s = self.lock();
        loop {
            if let Some(t) = s.queue.pop_front() {
                let wake = s.wake_one();
                drop(s);
                if wake {
                    self.cv.notify_one();
                }
                return Some(t);
            }
            if s.closed {
                return None;
            }
            s.sleeping += 1;
            s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
            s.sleeping -= 1;
            // A spurious wake-up may consume another's notification: `waking`
            // then undercounts, which only costs a redundant notify later.
            s.waking = s.waking.saturating_sub(1);
        }
    }

    /// Records an attempt's end; the first report into an empty list tells the
    /// scheduler thread (whose `Msg::Completed` handler takes the whole list).
    pub(crate) fn report(&self, done: Done, tx: &Sender<Msg>) {
        let first = {
            let mut q = self.done.lock().unwrap_or_else(PoisonError::into_inner);
            q.push(done);
            q.len() == 1
        };
        if first {
            // The scheduler thread may be gone after a shutdown timeout; then
            // nobody wants the report.
            let _ = tx.send(Msg::Completed);
        }
    }

    /// Moves every reported attempt end into `into` (which must be empty).
    pub(crate) fn take_done(&self, into: &mut Vec<Done>) {
        debug_assert!(into.is_empty());
        let mut q = self.done.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::swap(&mut *q, into);
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs one attempt, catching a panic.
pub(crate) fn run_attempt(handler: &Handler, ctx: &RunContext) -> AttemptResult {
    match catch_unwind(AssertUnwindSafe(|| handler(ctx))) {
        Ok(Ok(())) => AttemptResult::Succeeded,
        Ok(Err(e)) => AttemptResult::Failed(error_chain(&*e)),
        Err(payload) => {
            AttemptResult::Failed(format!("handler panicked: {}", panic_message(&*payload)))
        }
    }
}

/// An error and its sources, joined with ": ".
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn worker(pool: Arc<Pool>, done: Sender<Msg>) {
    while let Some(task) = pool.next() {
        match task {
            Task::Run { handler, ctx } => {
                let result = run_attempt(&handler, &ctx);
                let (run, attempt) = (ctx.run, ctx.attempt);
                // The context (and its token clone) is released before the end
                // is reported, so the scheduler thread can reuse the token.
                drop(ctx);
                drop(handler);
                pool.report(
                    Done {
                        run,
                        attempt,
                        result,
                    },
                    &done,
                );
            }
            Task::Adhoc(f) => {
                // Submitted closures catch their own panics (see `submit`).
                f();
            }
        }
    }
}

/// Starts `n` workers.
pub(crate) fn spawn_workers(
    pool: &Arc<Pool>,
    n: usize,
    done: &Sender<Msg>,
) -> Result<Vec<JoinHandle<()>>, std::io::Error> {
    (0..n)
        .map(|i| {
            let pool = Arc::clone(pool);
            let done = done.clone();
            std::thread::Builder::new()
                .name(format!("myrmex-worker-{i}"))
                .spawn(move || worker(pool, done))
        })
        .collect()
}
