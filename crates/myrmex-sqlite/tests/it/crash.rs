//! The crash test: a child process (`myrmex-store-crash-child`) materializes and runs fires
//! through a store and is killed with SIGKILL at random moments, many times. After each
//! kill the store must open, hold no duplicated occurrence, have lost no fire the child saw
//! committed (the fires form a gap-free grid up to the watermark), and every run left
//! running must be marked interrupted by recovery.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use myrmex_sqlite::SqliteStore;
use myrmex_store::{AttemptOutcome, JsonFileStore, OccurrenceKey, RunFilter, RunState, Store};

const ROUNDS: usize = 25;

/// A small xorshift generator: the chaos needs no quality, only a printed seed to replay.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn open(kind: &str, path: &Path) -> Box<dyn Store> {
    match kind {
        "sqlite" => Box::new(SqliteStore::open(path).expect("sqlite store reopens after a kill")),
        _ => Box::new(JsonFileStore::open(path).expect("json store reopens after a kill")),
    }
}

#[derive(Default)]
struct Seen {
    fired: BTreeSet<(String, i64)>,
    started: BTreeMap<u64, u32>,
    done: BTreeMap<u64, u32>,
}

fn parse(lines: &[String], seen: &mut Seen) -> (bool, BTreeMap<u64, u32>) {
    let mut ready = false;
    let mut started_here = BTreeMap::new();
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["ready"] => ready = true,
            ["fired", job, a, b] => {
                for t in [a, b] {
                    seen.fired.insert(((*job).to_owned(), t.parse().unwrap()));
                }
            }
            ["started", run, att] => {
                let (run, att) = (run.parse().unwrap(), att.parse().unwrap());
                seen.started.insert(run, att);
                started_here.insert(run, att);
            }
            ["done", run, att] => {
                let (run, att): (u64, u32) = (run.parse().unwrap(), att.parse().unwrap());
                seen.done.insert(run, att);
                started_here.remove(&run);
            }
            _ => panic!("unexpected child line {line:?}"),
        }
    }
    (ready, started_here)
}

fn crash_rounds(kind: &str, file: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    let seed = std::env::var("MYRMEX_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::from(std::process::id()) ^ (Timestamp::now().as_nanosecond() as u64) | 1
        });
    eprintln!("crash test {kind}: seed {seed} (set MYRMEX_CRASH_SEED to replay)");
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let epoch = Timestamp::from_second(1_767_225_600).unwrap();
    let (mut interrupted, mut kills_before_ready) = (0usize, 0usize);
    for round in 0..ROUNDS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_myrmex-store-crash-child"))
            .arg(kind)
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the crash child");
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut buf = Vec::new();
                match r.read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    // A line cut by the kill has no newline: it was not fully written.
                    Ok(_) if buf.ends_with(b"\n") => {
                        let _ = tx.send(String::from_utf8_lossy(&buf).trim().to_owned());
                    }
                    Ok(_) => break,
                }
            }
        });
        let mut lines = Vec::new();
        // One round in five is killed at once (during open and recovery); the others after
        // the child said it is ready, plus a random delay: the delay is the chaos, not a
        // synchronization.
        if rng.below(5) != 0 {
            match rx.recv() {
                Ok(l) => lines.push(l),
                Err(_) => {
                    let mut err = String::new();
                    let _ = stderr.read_to_string(&mut err);
                    panic!("round {round}: child exited before ready: {err}");
                }
            }
            std::thread::sleep(Duration::from_micros(rng.below(150_000)));
        }
        child.kill().expect("SIGKILL the child");
        let status = child.wait().unwrap();
        reader.join().unwrap();
        lines.extend(rx.try_iter());
        let mut err = String::new();
        let _ = stderr.read_to_string(&mut err);
        assert!(
            !status.success() && !err.contains("panicked"),
            "round {round}: child failed on its own: {status:?} {err}"
        );
        let (ready, started_here) = parse(&lines, &mut seen);
        if !ready {
            kills_before_ready += 1;
        }

        let store = open(kind, &path);
        let runs = store.list_runs(&RunFilter::all()).unwrap();
        // No duplicated occurrence.
        let keys: BTreeSet<&OccurrenceKey> = runs.iter().map(|r| &r.key).collect();
        assert_eq!(
            keys.len(),
            runs.len(),
            "round {round}: duplicated occurrence"
        );
        // Gap-free grid per job up to its watermark, covering every fire seen committed.
        for job in store.list_jobs().unwrap() {
            let w = job.state.watermark.unwrap();
            let n = w.duration_since(epoch).as_secs();
            let want: BTreeSet<Timestamp> = (0..n)
                .map(|k| epoch + SignedDuration::from_secs(k))
                .collect();
            let got: BTreeSet<Timestamp> = runs
                .iter()
                .filter(|r| r.key.job == job.id)
                .map(|r| r.key.scheduled_at)
                .collect();
            assert_eq!(
                got, want,
                "round {round}: fires of {} vs watermark {w}",
                job.id
            );
        }
        for (job, ns) in &seen.fired {
            let key = OccurrenceKey::new(
                job.as_str(),
                Timestamp::from_nanosecond(i128::from(*ns)).unwrap(),
            );
            assert!(
                keys.contains(&key),
                "round {round}: committed fire {key} lost"
            );
        }
        // Completions seen are kept.
        let by_id: BTreeMap<u64, _> = runs.iter().map(|r| (r.id.0, r)).collect();
        for (id, att) in &seen.done {
            let r = by_id[id];
            assert_eq!(
                (r.state, r.attempt.0),
                (RunState::Succeeded, *att),
                "round {round}: run {id}"
            );
        }
        // Runs started and not seen done: either still running (to be interrupted) or done
        // just before the kill.
        for (id, att) in &started_here {
            let r = by_id[id];
            assert!(
                matches!(r.state, RunState::Running | RunState::Succeeded) && r.attempt.0 == *att,
                "round {round}: run {id} started as attempt {att} is {:?} attempt {}",
                r.state,
                r.attempt.0
            );
        }
        let running: BTreeSet<u64> = runs
            .iter()
            .filter(|r| r.state == RunState::Running)
            .map(|r| r.id.0)
            .collect();
        let recovered = store.recover_interrupted(Timestamp::now()).unwrap();
        let recovered_ids: BTreeSet<u64> = recovered.iter().map(|r| r.id.0).collect();
        assert_eq!(
            recovered_ids, running,
            "round {round}: recovery must find every running run"
        );
        for r in &recovered {
            assert!(matches!(r.state, RunState::Interrupted | RunState::Dead));
            let last = store.attempts(r.id).unwrap().pop().unwrap();
            assert_eq!(last.outcome, Some(AttemptOutcome::Interrupted));
        }
        interrupted += recovered.len();
        assert!(
            store
                .list_runs(&RunFilter::all().in_states([RunState::Running]))
                .unwrap()
                .is_empty()
        );
        store.close().unwrap();
    }
    eprintln!(
        "crash test {kind}: {ROUNDS} kills ({kills_before_ready} before ready), {} fires committed, \
         {} completions, {interrupted} runs interrupted and recovered",
        seen.fired.len(),
        seen.done.len()
    );
    assert!(!seen.fired.is_empty(), "the child made progress");
}

#[test]
fn sqlite_survives_sigkill() {
    crash_rounds("sqlite", "myrmex.db");
}

#[test]
fn json_file_survives_sigkill() {
    crash_rounds("json", "state.json");
}
