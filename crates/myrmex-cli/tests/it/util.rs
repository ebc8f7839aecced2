//! Running the real binary in a temp folder (in the manner of ripgrep's
//! `tests/util.rs`): a config written to the folder, the daemon's JSON log read line
//! by line, and waits that end on an observed event or a generous deadline.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long any one wait may take before the test fails. Generous: a loaded CI
/// machine must not turn a correct daemon into a failure.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The binary under test.
pub fn myrmex() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_myrmex"));
    c.env_remove("MYRMEX_LOG");
    c
}

/// A temp folder holding a config file.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("myrmex.toml")
    }

    /// Writes the config file.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config(), text).unwrap();
    }

    /// Runs `myrmex ARGS...` in the folder to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        myrmex()
            .current_dir(self.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// Starts `myrmex run` with JSON logs.
    pub fn start(&self) -> Daemon {
        let mut child = myrmex()
            .current_dir(self.path())
            .args(["run", "myrmex.toml", "--log-format", "json"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Daemon {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }
}

/// A running daemon and its log.
pub struct Daemon {
    pub child: Child,
    lines: Receiver<String>,
    /// Every log line read so far.
    pub seen: Vec<serde_json::Value>,
}

impl Daemon {
    /// Reads log lines until one satisfies `pred`, and returns it. Panics with the log
    /// so far when the deadline passes or the daemon exits first.
    pub fn wait_for(
        &mut self,
        what: &str,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("timed out waiting for {what}; log:\n{}", self.log())
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "the daemon exited while waiting for {what}; log:\n{}",
                        self.log()
                    )
                }
            }
        }
    }

    /// Like [`Daemon::wait_for`], but returns an error with the log instead of
    /// panicking when `timeout` passes or the daemon exits first (for callers that
    /// must clean up or retry).
    pub fn try_wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, String> {
        let end = Instant::now() + timeout;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let v: serde_json::Value = serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Ok(v);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "timed out waiting for {what}; log:\n{}",
                        self.log()
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the daemon exited while waiting for {what}; log:\n{}",
                        self.log()
                    ));
                }
            }
        }
    }

    /// Sends `sig` (e.g. `"TERM"`) to the daemon.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits for the daemon to exit, reading the rest of its log; returns its exit code.
    pub fn wait_exit(&mut self) -> i32 {
        let end = Instant::now() + DEADLINE;
        loop {
            match self
                .lines
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(line) => self.seen.push(
                    serde_json::from_str(&line)
                        .unwrap_or_else(|_| serde_json::json!({ "raw": line })),
                ),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the daemon did not exit; log:\n{}", self.log())
                }
            }
        }
        self.child.wait().unwrap().code().unwrap_or(-1)
    }

    /// The log so far, one JSON object per line.
    pub fn log(&self) -> String {
        self.seen.iter().map(|v| format!("{v}\n")).collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Checks `cond` every 20 ms until it holds; panics after [`DEADLINE`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The PostgreSQL URL of the cluster tests, or `None` after printing why `test` is
/// skipped.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("MYRMEX_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            // Straight to the process's stderr: the harness captures `eprintln!`, and
            // a skip must show in a passing run.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: MYRMEX_TEST_POSTGRES_URL is not set (CI sets it via .ci/postgres.sh; \
                 locally: `source .ci/postgres.sh`)"
            );
            None
        }
    }
}

/// A schema name no other test run uses.
pub fn unique_schema(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}_{}_{nanos}", std::process::id())
}
