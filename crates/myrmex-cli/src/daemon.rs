//! `myrmex run`: the daemon.
//!
//! One thread (this one) owns the [`myrmex::Scheduler`] and waits on a single channel
//! for signals (forwarded by signal-hook's self-pipe thread) and control requests
//! (from the control socket's thread). It never polls: every wake-up is a message.
//! Each job's handler runs its command through [`crate::runner`] on a scheduler
//! worker.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use myrmex::{Event, Handler, JobId, RunContext, Scheduler, SchedulerError};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::{Config, ConfigError, JobConfig};
use crate::control::{ControlError, ControlServer, Request, Response};
use crate::runner::{self, Outcome};
use crate::{exit_codes, plan};

/// What wakes the daemon's main thread.
enum Msg {
    Signal(i32),
    Control(Request, SyncSender<Response>),
}

/// Runs the daemon with the config at `path` until SIGTERM or SIGINT; returns the
/// exit code.
pub fn run(path: &Path) -> u8 {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.render());
            return exit_codes::INVALID_INPUT;
        }
    };
    let (tx, rx) = mpsc::channel();

    // The control socket comes first: it refuses a second daemon on the same state
    // before anything else is touched.
    let control = {
        let tx = tx.clone();
        ControlServer::start(&config.control_dir(), move |req| {
            let (reply, answer) = mpsc::sync_channel(1);
            if tx.send(Msg::Control(req, reply)).is_err() {
                return Response::refused("the daemon is shutting down");
            }
            answer
                .recv()
                .unwrap_or_else(|_| Response::refused("the daemon is shutting down"))
        })
    };
    let control = match control {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "cannot start");
            return match e {
                ControlError::AlreadyRunning { .. } => exit_codes::ALREADY_RUNNING,
                _ => exit_codes::FAILURE,
            };
        }
    };

    let signals = match Signals::start(&tx) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install signal handlers");
            control.stop();
            return exit_codes::FAILURE;
        }
    };
    drop(tx);

    let code = match Daemon::start(config) {
        Ok(mut daemon) => {
            daemon.serve(&rx);
            control.stop();
            daemon.shutdown()
        }
        Err(e) => {
            tracing::error!(error = %crate::error_chain(&e), "cannot start the scheduler");
            control.stop();
            exit_codes::FAILURE
        }
    };
    signals.stop();
    code
}

/// The signal-forwarding thread.
struct Signals {
    handle: signal_hook::iterator::Handle,
    thread: std::thread::JoinHandle<()>,
}

impl Signals {
    fn start(tx: &Sender<Msg>) -> std::io::Result<Signals> {
        let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
        let handle = signals.handle();
        let tx = tx.clone();
        let thread = std::thread::Builder::new()
            .name("myrmex-signals".into())
            .spawn(move || {
                for sig in signals.forever() {
                    if tx.send(Msg::Signal(sig)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(Signals { handle, thread })
    }

    fn stop(self) {
        self.handle.close();
        let _ = self.thread.join();
    }
}

/// Counts the commands running right now, so that shutdown can wait for the ones
/// it had to stop.
#[derive(Default)]
struct Active {
    count: Mutex<usize>,
    zero: Condvar,
}

impl Active {
    fn enter(self: &Arc<Self>) -> ActiveGuard {
        *self.count.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        ActiveGuard(Arc::clone(self))
    }

    /// Waits until no command runs, or `limit` passes; returns how many still run.
    fn wait_idle(&self, limit: Duration) -> usize {
        let guard = self.count.lock().unwrap_or_else(PoisonError::into_inner);
        let (guard, _) = self
            .zero
            .wait_timeout_while(guard, limit, |n| *n > 0)
            .unwrap_or_else(PoisonError::into_inner);
        *guard
    }
}

struct ActiveGuard(Arc<Active>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let mut n = self.0.count.lock().unwrap_or_else(PoisonError::into_inner);
        *n -= 1;
        if *n == 0 {
            self.0.zero.notify_all();
        }
    }
}

/// A job the scheduler knows, with the config it was added from.
struct Registered {
    id: JobId,
    config: JobConfig,
}

struct Daemon {
    config: Config,
    scheduler: Scheduler,
    jobs: BTreeMap<String, Registered>,
    names: Arc<Mutex<BTreeMap<JobId, String>>>,
    active: Arc<Active>,
}

impl Daemon {
    fn start(config: Config) -> Result<Daemon, SchedulerError> {
        let names: Arc<Mutex<BTreeMap<JobId, String>>> = Arc::default();
        let scheduler = Scheduler::builder()
            .workers(config.scheduler.workers)
            .zone(config.scheduler.zone.tz.clone())
            .on_event({
                let names = Arc::clone(&names);
                move |e| log_event(&names, e)
            })
            .build()?;
        let mut daemon = Daemon {
            config,
            scheduler,
            jobs: BTreeMap::new(),
            names,
            active: Arc::default(),
        };
        let jobs = daemon.config.jobs.clone();
        for job in &jobs {
            daemon.add(job)?;
        }
        for p in &daemon.config.pipelines {
            tracing::warn!(pipeline = %p.name, "pipelines are not run by this version yet; ignored");
        }
        daemon.scheduler.start()?;
        tracing::info!(
            config = %daemon.config.path.display(),
            jobs = daemon.jobs.len(),
            zone = %daemon.config.scheduler.zone.name,
            workers = daemon.config.scheduler.workers,
            "daemon started"
        );
        Ok(daemon)
    }

    fn add(&mut self, job: &JobConfig) -> Result<(), SchedulerError> {
        if !job.depends_on.is_empty() {
            tracing::warn!(job = %job.name, "`depends_on` is not honoured by this version yet; the job runs on its own schedule only");
        }
        let spec = plan::job_spec(&self.config, job, self.scheduler.now());
        let id = self.scheduler.schedule_handler(spec, self.handler(job))?;
        self.names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, job.name.clone());
        self.jobs.insert(
            job.name.clone(),
            Registered {
                id,
                config: job.clone(),
            },
        );
        Ok(())
    }

    fn remove(&mut self, name: &str) {
        if let Some(r) = self.jobs.remove(name) {
            if let Err(e) = self.scheduler.cancel(r.id) {
                tracing::debug!(job = name, error = %e, "cancel on removal");
            }
            self.names
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&r.id);
        }
    }

    /// The handler that runs `job`'s command.
    fn handler(&self, job: &JobConfig) -> Handler {
        let base = runner::RunRequest {
            job: job.name.clone(),
            argv: job.command.argv(),
            working_dir: job.working_dir.clone(),
            env: job.env.clone(),
            scheduled_at: jiff::Timestamp::UNIX_EPOCH,
            attempt: 0,
            // The scheduler owns timeouts: it cancels the attempt's token.
            timeout: None,
            kill_grace: self.config.scheduler.kill_grace.unsigned_abs(),
            tail_bytes: self.config.scheduler.output_tail_bytes,
        };
        let active = Arc::clone(&self.active);
        Arc::new(move |ctx: &RunContext| {
            let _running = active.enter();
            let req = runner::RunRequest {
                scheduled_at: ctx.scheduled_at(),
                attempt: ctx.attempt(),
                ..base.clone()
            };
            let run_id = runner::run_id(&req.job, req.scheduled_at);
            tracing::info!(job = %req.job, run_id = %run_id, attempt = req.attempt, "run started");
            let out = run_with_token(&req, ctx);
            let timed_out = ctx.deadline().is_some_and(|d| jiff::Timestamp::now() >= d);
            let outcome = match out.outcome {
                Outcome::Interrupted if timed_out => Outcome::TimedOut,
                o => o,
            };
            let fields = (
                req.job.as_str(),
                run_id.as_str(),
                req.attempt,
                out.duration.as_secs_f64(),
            );
            if outcome.is_success() {
                tracing::info!(job = fields.0, run_id = fields.1, attempt = fields.2, duration_s = fields.3, outcome = %outcome, "run finished");
                Ok(())
            } else {
                tracing::warn!(job = fields.0, run_id = fields.1, attempt = fields.2, duration_s = fields.3, outcome = %outcome, stderr_tail = %last_lines(&out.stderr_tail, 5), "run finished");
                let mut msg = outcome.to_string();
                let tail = last_lines(&out.stderr_tail, 5);
                if !tail.is_empty() {
                    msg.push_str("; stderr: ");
                    msg.push_str(&tail);
                }
                Err(msg.into())
            }
        })
    }

    /// Handles messages until SIGTERM or SIGINT.
    fn serve(&mut self, rx: &Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            match msg {
                Msg::Signal(SIGHUP) => self.reload(),
                Msg::Signal(sig) => {
                    let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                    tracing::info!(signal = name, "shutting down");
                    return;
                }
                Msg::Control(req, reply) => {
                    let _ = reply.send(self.control(req));
                }
            }
        }
    }

    fn control(&mut self, req: Request) -> Response {
        let job = match &req {
            Request::Ping => return Response::ok("pong"),
            Request::Trigger { job } | Request::Pause { job } | Request::Resume { job } => job,
        };
        let Some(id) = self.jobs.get(job).map(|r| r.id) else {
            return Response::refused(format!("unknown job `{job}`"));
        };
        let result = match &req {
            Request::Trigger { .. } => {
                let now = self.scheduler.now();
                self.scheduler
                    .release(id, now)
                    .map(|()| format!("triggered `{job}` (run {})", runner::run_id(job, now)))
            }
            Request::Pause { .. } => self.scheduler.pause(id).map(|()| format!("paused `{job}`")),
            Request::Resume { .. } => self
                .scheduler
                .resume(id)
                .map(|()| format!("resumed `{job}`")),
            Request::Ping => unreachable!("answered above"),
        };
        match result {
            Ok(message) => {
                tracing::info!(job = %job, request = ?req, "control request done");
                Response::ok(message)
            }
            Err(e) => Response::refused(crate::error_chain(&e)),
        }
    }

    /// SIGHUP: reads the config again. A broken config is refused and the running
    /// one stays; otherwise unchanged jobs keep their state, changed ones are
    /// replaced, and the others are added or removed.
    fn reload(&mut self) {
        tracing::info!(config = %self.config.path.display(), "SIGHUP: reloading the config");
        let new = match Config::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => {
                let detail = match &e {
                    ConfigError::Invalid { .. } => e.render(),
                    ConfigError::Read { .. } => crate::error_chain(&e),
                };
                tracing::error!(problems = %detail.trim_end(), "config refused; the running config stays");
                return;
            }
        };
        let mut new = new;
        let old = &self.config.scheduler;
        if new.scheduler.zone != old.zone
            || new.scheduler.workers != old.workers
            || new.scheduler.store != old.store
        {
            tracing::warn!(
                "changes to [scheduler] zone, workers or store take effect at the next restart"
            );
            new.scheduler.zone = old.zone.clone();
            new.scheduler.workers = old.workers;
            new.scheduler.store = old.store.clone();
        }
        // Handlers capture these; a change means every job gets a new handler.
        let handlers_changed = new.scheduler.kill_grace != old.kill_grace
            || new.scheduler.output_tail_bytes != old.output_tail_bytes;
        let old_config = std::mem::replace(&mut self.config, new);
        let (mut added, mut removed, mut changed) = (0, 0, 0);
        for name in old_config.jobs.iter().map(|j| &j.name) {
            if self.config.job(name).is_none() {
                self.remove(name);
                tracing::info!(job = %name, "job removed");
                removed += 1;
            }
        }
        for job in self.config.jobs.clone() {
            let existing = self.jobs.get(&job.name).map(|r| r.config == job);
            if existing == Some(true) && !handlers_changed {
                continue;
            }
            if existing.is_some() {
                self.remove(&job.name);
            }
            match self.add(&job) {
                Ok(()) if existing.is_some() => {
                    tracing::info!(job = %job.name, "job changed");
                    changed += 1;
                }
                Ok(()) => {
                    tracing::info!(job = %job.name, "job added");
                    added += 1;
                }
                Err(e) => {
                    tracing::error!(job = %job.name, error = %crate::error_chain(&e), "cannot add job");
                }
            }
        }
        tracing::info!(
            added,
            removed,
            changed,
            jobs = self.jobs.len(),
            "config reloaded"
        );
    }

    /// Stops firing, waits for running commands up to the grace period, then stops
    /// the rest (TERM, then KILL after `kill_grace`) and records them as interrupted.
    fn shutdown(self) -> u8 {
        let grace = self.config.scheduler.shutdown_grace.unsigned_abs();
        let started = Instant::now();
        let result = self.scheduler.shutdown(grace);
        match result {
            Ok(()) => {}
            Err(SchedulerError::ShutdownTimedOut { running }) => {
                tracing::warn!(
                    running,
                    "shutdown grace period over; stopping the remaining commands"
                );
                let limit =
                    self.config.scheduler.kill_grace.unsigned_abs() + Duration::from_secs(5);
                let left = self.active.wait_idle(limit);
                if left > 0 {
                    tracing::error!(left, "commands still running after SIGKILL");
                }
            }
            Err(e) => {
                tracing::error!(error = %crate::error_chain(&e), "scheduler shutdown failed");
                return exit_codes::FAILURE;
            }
        }
        tracing::info!(took_s = started.elapsed().as_secs_f64(), "daemon stopped");
        exit_codes::OK
    }
}

/// Runs `req`, stopping its process group when the attempt's cancellation token is
/// cancelled (timeout, job removed, shutdown past its grace period).
fn run_with_token(req: &runner::RunRequest, ctx: &RunContext) -> runner::RunOutput {
    let cancel = runner::Cancel::new();
    let token = ctx.cancellation().clone();
    let bridge = {
        let cancel = cancel.clone();
        let token = token.clone();
        std::thread::Builder::new()
            .name("myrmex-cancel".into())
            .spawn(move || {
                token.wait();
                cancel.cancel();
            })
    };
    let out = runner::run(req, &cancel);
    // The attempt is over, so its token has no other reader any more: cancelling it
    // releases the forwarding thread.
    token.cancel();
    if let Ok(b) = bridge {
        let _ = b.join();
    }
    out
}

fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Logs the scheduler's events that handlers do not see, with job names.
fn log_event(names: &Mutex<BTreeMap<JobId, String>>, e: &Event) {
    let name = |id: JobId| {
        names
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    match e {
        Event::Skipped {
            job,
            scheduled_at,
            reason,
        } => {
            tracing::info!(job = %name(*job), scheduled_at = %scheduled_at, reason = ?reason, "fire skipped");
        }
        Event::Missed {
            job,
            first,
            last,
            count,
        } => {
            tracing::warn!(job = %name(*job), first = %first, last = %last, count, "fires missed");
        }
        Event::RunRetrying {
            job,
            scheduled_at,
            failed_attempt,
            retry_at,
            ..
        } => {
            tracing::info!(job = %name(*job), run_id = %runner::run_id(&name(*job), *scheduled_at), failed_attempt, retry_at = %retry_at, "retry scheduled");
        }
        _ => {}
    }
}
