//! Running one attempt of a job's command.
//!
//! The command runs in its own process group so that a timeout or a shutdown stops
//! everything it started (`sh -c` and its children), not only the first process:
//! SIGTERM to the group, then SIGKILL after a grace period. Its stdout and stderr are
//! read by two threads that keep only the last bytes (the tail stored with the run)
//! and forward complete lines to the log.

use std::collections::{BTreeMap, VecDeque};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rustix::process::{Pid, Signal, kill_process_group};

/// Everything needed to run one attempt.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// The job's name (`MYRMEX_JOB`).
    pub job: String,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Working directory, if not the daemon's.
    pub working_dir: Option<PathBuf>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// The nominal fire time (`MYRMEX_SCHEDULED_AT`, and part of `MYRMEX_RUN_ID`).
    pub scheduled_at: Timestamp,
    /// The attempt number, from 1 (`MYRMEX_ATTEMPT`).
    pub attempt: u32,
    /// How long the attempt may run.
    pub timeout: Option<Duration>,
    /// Between SIGTERM and SIGKILL.
    pub kill_grace: Duration,
    /// How many bytes of the end of each stream to keep.
    pub tail_bytes: usize,
    /// `MYRMEX_RUN_ID` when it is not [`run_id`] of the job and fire time (in cluster
    /// mode, the database's occurrence key).
    pub run_id: Option<String>,
}

/// The id of an occurrence as handed to the command: the job's name and the nominal
/// fire time, so it is the same for every attempt and across restarts.
pub fn run_id(job: &str, scheduled_at: Timestamp) -> String {
    format!("{job}@{}", scheduled_at.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The process exited with this status code.
    Exited(i32),
    /// The process was killed by this signal (not by myrmex).
    Signaled(i32),
    /// It ran past its timeout and its process group was stopped.
    TimedOut,
    /// It was stopped because the daemon is shutting down.
    Interrupted,
    /// It could not be started.
    SpawnFailed(String),
}

impl Outcome {
    /// Exited with status 0.
    pub fn is_success(&self) -> bool {
        *self == Outcome::Exited(0)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(0) => f.write_str("exited with status 0"),
            Outcome::Exited(c) => write!(f, "exited with status {c}"),
            Outcome::Signaled(s) => write!(f, "killed by signal {s}"),
            Outcome::TimedOut => f.write_str("timed out"),
            Outcome::Interrupted => f.write_str("interrupted by shutdown"),
            Outcome::SpawnFailed(e) => write!(f, "could not start: {e}"),
        }
    }
}

/// What an attempt produced.
#[derive(Clone, Debug)]
pub struct RunOutput {
    /// How it ended.
    pub outcome: Outcome,
    /// From spawn to exit.
    pub duration: Duration,
    /// The last bytes of stdout (lossy UTF-8).
    pub stdout_tail: String,
    /// The last bytes of stderr (lossy UTF-8).
    pub stderr_tail: String,
}

/// A cancellation signal shared between the daemon and running attempts: once
/// cancelled, every attempt running under it stops its process group.
#[derive(Clone, Debug, Default)]
pub struct Cancel {
    inner: Arc<Mutex<CancelState>>,
}

#[derive(Debug, Default)]
struct CancelState {
    cancelled: bool,
    waiters: Vec<Sender<Event>>,
}

impl Cancel {
    /// A new, not cancelled, signal.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Cancels every attempt running under this signal, and those started later.
    pub fn cancel(&self) {
        let mut st = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        st.cancelled = true;
        for w in st.waiters.drain(..) {
            let _ = w.send(Event::Cancelled);
        }
    }

    /// Registers `tx` to be told about cancellation; false if already cancelled.
    fn register(&self, tx: Sender<Event>) -> bool {
        let mut st = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if st.cancelled {
            return false;
        }
        st.waiters.retain(|w| w.send(Event::Ping).is_ok());
        st.waiters.push(tx);
        true
    }
}

enum Event {
    Exited(std::io::Result<ExitStatus>),
    Cancelled,
    ReaderDone,
    /// Used only to find senders whose receiver is gone.
    Ping,
}

/// The end of a stream, at most `cap` bytes.
struct Tail {
    buf: VecDeque<u8>,
    cap: usize,
    dropped: u64,
}

impl Tail {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend(data);
        while self.buf.len() > self.cap {
            let extra = self.buf.len() - self.cap;
            self.buf.drain(..extra);
            self.dropped += extra as u64;
        }
    }

    fn text(&self) -> String {
        let (a, b) = self.buf.as_slices();
        let mut bytes = Vec::with_capacity(a.len() + b.len());
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if self.dropped > 0 {
            s.insert_str(0, &format!("[{} earlier bytes dropped]\n", self.dropped));
        }
        s
    }
}

/// Runs one attempt to its end. Never panics on a failing command: every way it can
/// end is an [`Outcome`].
pub fn run(req: &RunRequest, cancel: &Cancel) -> RunOutput {
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    if !cancel.register(tx.clone()) {
        return RunOutput {
            outcome: Outcome::Interrupted,
            duration: Duration::ZERO,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        };
    }
    let Some((program, args)) = req.argv.split_first() else {
        return spawn_failed("empty command".into(), started);
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .envs(&req.env)
        .env("MYRMEX_JOB", &req.job)
        .env(
            "MYRMEX_RUN_ID",
            req.run_id
                .clone()
                .unwrap_or_else(|| run_id(&req.job, req.scheduled_at)),
        )
        .env(
            "MYRMEX_SCHEDULED_AT",
            req.scheduled_at
                .strftime("%Y-%m-%dT%H:%M:%S%.fZ")
                .to_string(),
        )
        .env("MYRMEX_ATTEMPT", req.attempt.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(dir) = &req.working_dir {
        cmd.current_dir(dir);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return spawn_failed(format!("{program}: {e}"), started),
    };
    let pgid = Pid::from_raw(child.id() as i32);
    let tails = [new_tail(req.tail_bytes), new_tail(req.tail_bytes)];
    let mut readers = Vec::new();
    if let Some(out) = child.stdout.take() {
        readers.push(spawn_reader(out, "stdout", &req.job, &tails[0], tx.clone()));
    }
    if let Some(err) = child.stderr.take() {
        readers.push(spawn_reader(err, "stderr", &req.job, &tails[1], tx.clone()));
    }
    let waiter = {
        let tx = tx.clone();
        std::thread::Builder::new()
            .name("myrmex-wait".into())
            .spawn(move || {
                let _ = tx.send(Event::Exited(child.wait()));
            })
    };
    drop(tx);
    let deadline = req.timeout.map(|t| started + t);
    let mut stopped_because = None;
    let mut kill_at = None;
    let mut readers_left = readers.len();
    let status = loop {
        let wake = match (stopped_because.is_some(), kill_at, deadline) {
            (true, Some(k), _) => Some(k),
            (true, None, _) => None,
            (false, _, d) => d,
        };
        let event = match wake {
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(Event::Exited(st)) => break st,
            Ok(Event::ReaderDone) => readers_left -= 1,
            Ok(Event::Ping) => {}
            Ok(Event::Cancelled) => {
                if stopped_because.is_none() {
                    stopped_because = Some(Outcome::Interrupted);
                    kill_at = terminate(pgid, req.kill_grace);
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                if stopped_because.is_none() {
                    stopped_because = Some(Outcome::TimedOut);
                    kill_at = terminate(pgid, req.kill_grace);
                } else {
                    if let Some(pid) = pgid {
                        let _ = kill_process_group(pid, Signal::KILL);
                    }
                    kill_at = None;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                break Err(std::io::Error::other("lost track of the child process"));
            }
        }
    };
    let duration = started.elapsed();
    if let Ok(w) = waiter {
        let _ = w.join();
    }
    // Processes the command left in the background may keep its pipes open; the run
    // is over when its first process exits, so the readers get a short while to
    // drain and are then left to finish on their own.
    let drain_until = Instant::now() + Duration::from_millis(500);
    while readers_left > 0 {
        match rx.recv_timeout(drain_until.saturating_duration_since(Instant::now())) {
            Ok(Event::ReaderDone) => readers_left -= 1,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    if readers_left == 0 {
        for r in readers.into_iter().flatten() {
            let _ = r.join();
        }
    }
    let outcome = match (stopped_because, status) {
        (Some(reason), _) => reason,
        (None, Ok(st)) => exit_outcome(st),
        (None, Err(e)) => Outcome::SpawnFailed(e.to_string()),
    };
    let text = |t: &Arc<Mutex<Tail>>| t.lock().unwrap_or_else(PoisonError::into_inner).text();
    RunOutput {
        outcome,
        duration,
        stdout_tail: text(&tails[0]),
        stderr_tail: text(&tails[1]),
    }
}

fn exit_outcome(st: ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => Outcome::Exited(c),
        (None, Some(s)) => Outcome::Signaled(s),
        (None, None) => Outcome::SpawnFailed("unknown exit status".into()),
    }
}

/// Sends SIGTERM to the group; returns when to send SIGKILL.
fn terminate(pgid: Option<Pid>, grace: Duration) -> Option<Instant> {
    if let Some(pid) = pgid {
        let signal = if grace.is_zero() {
            Signal::KILL
        } else {
            Signal::TERM
        };
        if let Err(e) = kill_process_group(pid, signal) {
            tracing::debug!(error = %e, "signalling the process group failed");
        }
    }
    (!grace.is_zero()).then(|| Instant::now() + grace)
}

fn spawn_failed(msg: String, started: Instant) -> RunOutput {
    RunOutput {
        outcome: Outcome::SpawnFailed(msg),
        duration: started.elapsed(),
        stdout_tail: String::new(),
        stderr_tail: String::new(),
    }
}

fn new_tail(cap: usize) -> Arc<Mutex<Tail>> {
    Arc::new(Mutex::new(Tail {
        buf: VecDeque::new(),
        cap,
        dropped: 0,
    }))
}

fn spawn_reader(
    mut stream: impl Read + Send + 'static,
    name: &'static str,
    job: &str,
    tail: &Arc<Mutex<Tail>>,
    tx: Sender<Event>,
) -> Option<std::thread::JoinHandle<()>> {
    let tail = Arc::clone(tail);
    let job = job.to_string();
    std::thread::Builder::new()
        .name(format!("myrmex-{name}"))
        .spawn(move || {
            let mut buf = [0u8; 8192];
            let mut line = Vec::new();
            loop {
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                tail.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' {
                        log_line(&job, name, &line);
                        line.clear();
                    } else if line.len() < 4096 {
                        line.push(b);
                    }
                }
            }
            if !line.is_empty() {
                log_line(&job, name, &line);
            }
            let _ = tx.send(Event::ReaderDone);
        })
        .ok()
}

fn log_line(job: &str, stream: &str, line: &[u8]) {
    let line = String::from_utf8_lossy(line);
    tracing::info!(target: "myrmex::output", job, stream, "{}", line.trim_end_matches('\r'));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(script: &str) -> RunRequest {
        RunRequest {
            job: "t".into(),
            argv: vec!["sh".into(), "-c".into(), script.into()],
            working_dir: None,
            env: BTreeMap::new(),
            scheduled_at: "2026-03-08T07:00:00Z".parse().unwrap(),
            attempt: 2,
            timeout: None,
            kill_grace: Duration::from_secs(5),
            tail_bytes: 1024,
            run_id: None,
        }
    }

    #[test]
    fn records_exit_status_and_environment() {
        let out = run(
            &req(
                "echo $MYRMEX_JOB $MYRMEX_RUN_ID $MYRMEX_SCHEDULED_AT $MYRMEX_ATTEMPT; echo oops >&2; exit 3",
            ),
            &Cancel::new(),
        );
        assert_eq!(out.outcome, Outcome::Exited(3));
        assert_eq!(
            out.stdout_tail,
            "t t@2026-03-08T07:00:00Z 2026-03-08T07:00:00Z 2\n"
        );
        assert_eq!(out.stderr_tail, "oops\n");
    }

    #[test]
    fn keeps_only_the_tail() {
        let mut r = req("i=0; while [ $i -lt 100 ]; do echo line$i; i=$((i+1)); done");
        r.tail_bytes = 14;
        let out = run(&r, &Cancel::new());
        assert!(out.outcome.is_success());
        assert!(
            out.stdout_tail.ends_with("line98\nline99\n"),
            "{:?}",
            out.stdout_tail
        );
        assert!(out.stdout_tail.starts_with("["), "{:?}", out.stdout_tail);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        // The shell starts a grandchild; both must die, or the reader of the pipe they
        // share would never see its end.
        let mut r = req("sleep 30 & sleep 30; echo never");
        r.timeout = Some(Duration::from_millis(200));
        let out = run(&r, &Cancel::new());
        assert_eq!(out.outcome, Outcome::TimedOut);
        assert_eq!(out.stdout_tail, "");
    }

    #[test]
    fn term_ignored_then_killed_after_grace() {
        let mut r = req("trap '' TERM; echo ready; sleep 30");
        r.timeout = Some(Duration::from_millis(100));
        r.kill_grace = Duration::from_millis(100);
        let out = run(&r, &Cancel::new());
        assert_eq!(out.outcome, Outcome::TimedOut);
    }

    #[test]
    fn cancel_before_the_start_runs_nothing() {
        let cancel = Cancel::new();
        cancel.cancel();
        let out = run(&req("echo ran"), &cancel);
        assert_eq!(out.outcome, Outcome::Interrupted);
        assert_eq!(out.stdout_tail, "");
    }

    #[test]
    fn cancel_stops_a_running_command() {
        // The command opens a FIFO for writing, which blocks until this test opens
        // it for reading: when the read returns, the command is running.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("ready");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let cancel = Cancel::new();
        let mut r = req("echo ready > \"$READY\"; exec sleep 30");
        r.env.insert("READY".into(), fifo.display().to_string());
        let h = {
            let cancel = cancel.clone();
            std::thread::spawn(move || run(&r, &cancel))
        };
        assert_eq!(std::fs::read_to_string(&fifo).unwrap(), "ready\n");
        cancel.cancel();
        let out = h.join().unwrap();
        assert_eq!(out.outcome, Outcome::Interrupted);
    }

    #[test]
    fn missing_program_is_a_spawn_failure() {
        let mut r = req("");
        r.argv = vec!["/nonexistent/program".into()];
        let out = run(&r, &Cancel::new());
        assert!(
            matches!(out.outcome, Outcome::SpawnFailed(_)),
            "{:?}",
            out.outcome
        );
    }

    #[test]
    fn run_id_is_stable_for_an_occurrence() {
        let t: Timestamp = "2026-11-26T02:00:00Z".parse().unwrap();
        assert_eq!(run_id("backup", t), "backup@2026-11-26T02:00:00Z");
    }
}
