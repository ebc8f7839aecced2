//! The worker pool: threads that run handlers and report back by message.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use myrmex_core::AttemptResult;

use crate::context::{Handler, RunContext};
use crate::runtime::Msg;

/// One unit of work.
pub(crate) enum Task {
    /// An attempt of a scheduled run; its end is reported to the scheduler thread.
    Run { handler: Handler, ctx: RunContext },
    /// A submitted closure; it reports its own result.
    Adhoc(Box<dyn FnOnce() + Send + 'static>),
}

struct State {
    queue: VecDeque<Task>,
    closed: bool,
}

/// A FIFO of tasks shared by the workers.
pub(crate) struct Pool {
    state: Mutex<State>,
    cv: Condvar,
}

impl Pool {
    pub(crate) fn new() -> Arc<Pool> {
        Arc::new(Pool {
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closed: false,
            }),
            cv: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues tasks; returns them back if the pool is closed.
    pub(crate) fn push_all(&self, tasks: &mut Vec<Task>) -> Result<(), Vec<Task>> {
        if tasks.is_empty() {
            return Ok(());
        }
        let n = tasks.len();
        {
            let mut s = self.lock();
            if s.closed {
                return Err(std::mem::take(tasks));
            }
            s.queue.extend(tasks.drain(..));
        }
        if n == 1 {
            self.cv.notify_one();
        } else {
            self.cv.notify_all();
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
                return Some(t);
            }
            if s.closed {
                return None;
            }
            s = self.cv.wait(s).unwrap_or_else(PoisonError::into_inner);
        }
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
                // The scheduler thread may be gone after a shutdown timeout; then
                // nobody wants the report.
                let _ = done.send(Msg::Done {
                    run: ctx.run,
                    attempt: ctx.attempt,
                    result,
                });
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
