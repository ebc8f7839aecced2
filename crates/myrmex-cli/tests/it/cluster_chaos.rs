//! The acceptance test of the cluster issue with real daemons: three `myrmex run`
//! processes on one PostgreSQL schema, a mixed workload (second-level cron and
//! interval jobs, serial jobs whose work outlasts their interval, a pipeline
//! `a → {b, c} → d`), and a chaos loop that SIGKILLs a random daemon (and restarts
//! it), freezes one with SIGSTOP for longer than the lease, and terminates the
//! daemons' database sessions. Then every job is paused (freezing its watermark),
//! the cluster drains, the daemons stop, and the invariants are checked in SQL:
//!
//! * I1 no occurrence missing from any job's grid (cron instants from myrmex-cron,
//!   intervals on the epoch-anchored grid), from the job's creation to its watermark;
//! * I2 none duplicated or off the grid, and every pipeline instance has its 4 stages;
//! * I3 every run terminal: `succeeded`, or `skipped` for a serial job's fire that
//!   came while a run was active;
//! * I4/I5 one committed effect per run, from the final attempt: each command prints
//!   `effect $MYRMEX_RUN_ID $MYRMEX_ATTEMPT`, which the daemon stores in the run's
//!   result inside the fenced completion; zombie completions of a frozen daemon are
//!   refused (`fenced`), although their commands did run (a side-effect file that
//!   every attempt appends to shows it);
//! * I6 no two successful attempts of a serial job overlap;
//! * I7 no pipeline stage (or queued serial run) started before its parents ended;
//! * I8 after a SIGKILL or SIGSTOP, the node's runs are re-claimed by another node
//!   within a bound derived from the lease (the measured maximum is printed).
//!
//! Needs `MYRMEX_TEST_POSTGRES_URL` (skipped with a message otherwise). Duration of
//! the chaos loop: `MYRMEX_CHAOS_SECS` (default 120); `MYRMEX_CHAOS_SEED` replays
//! a sequence of actions. The schema is dropped after a passing run and kept (its
//! name printed) after a failure.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use myrmex_postgres::{JobId, run_key};

use crate::util::{Daemon, Dir, postgres_url, unique_schema};

/// Progress and results go to the process's stderr directly, so they show in a
/// passing run too (the harness captures `eprintln!`).
macro_rules! say {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($t)*);
    }};
}

const NODES: usize = 3;
/// The daemons' `lease`.
const LEASE: Duration = Duration::from_secs(2);
/// Every wait on the cluster (start, rescue, drain, exit) ends on an observed
/// condition; this only bounds a wait that would otherwise hang a broken build.
const PATIENCE: Duration = Duration::from_secs(180);

/// A job of the workload with a schedule.
struct Scheduled {
    name: &'static str,
    grid: Grid,
    /// At most one run at a time (`overlap = "skip"` or `"queue"`).
    serial: bool,
    pipeline: bool,
}

enum Grid {
    Cron(&'static str),
    Every(SignedDuration),
}

fn workload() -> Vec<Scheduled> {
    let job = |name, grid, serial, pipeline| Scheduled {
        name,
        grid,
        serial,
        pipeline,
    };
    vec![
        job("cron-2s", Grid::Cron("*/2 * * * * *"), false, false),
        // Not a fixed step: 0, 7, ..., 56, then 0 again (4 s).
        job("cron-7s", Grid::Cron("*/7 * * * * *"), false, false),
        job(
            "every-3s",
            Grid::Every(SignedDuration::from_secs(3)),
            false,
            false,
        ),
        job(
            "serial-skip",
            Grid::Every(SignedDuration::from_secs(2)),
            true,
            false,
        ),
        job(
            "serial-queue",
            Grid::Every(SignedDuration::from_secs(2)),
            true,
            false,
        ),
        job(
            "pipe",
            Grid::Every(SignedDuration::from_secs(3)),
            false,
            true,
        ),
    ]
}

/// The config every node runs. Each command is `work.sh SECONDS EFFECTS`: it
/// sleeps, appends `run-id attempt daemon-pid` to the side-effect file, and prints
/// the effect line the daemon stores with the run.
fn config(url: &str, schema: &str, script: &str, effects: &str) -> String {
    let cmd = |secs: &str| format!(r#"command = ["/bin/sh", "{script}", "{secs}", "{effects}"]"#);
    let policy = "retries = 100\nretry_delay = \"200ms\"";
    let mut text = format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"
zone = "UTC"
lease = "{lease}s"
workers = 4
shutdown_grace = "20s"
kill_grace = "1s"
"#,
        lease = LEASE.as_secs()
    );
    for (name, schedule, overlap, secs) in [
        ("cron-2s", r#"cron = "*/2 * * * * *""#, "allow", "0.3"),
        ("cron-7s", r#"cron = "*/7 * * * * *""#, "allow", "0.6"),
        ("every-3s", r#"every = "3s""#, "allow", "1"),
        ("serial-skip", r#"every = "2s""#, "skip", "3"),
        ("serial-queue", r#"every = "2s""#, "queue", "3"),
    ] {
        text.push_str(&format!(
            "\n[[job]]\nname = \"{name}\"\n{schedule}\noverlap = \"{overlap}\"\nmisfire = \"run-all\"\n{policy}\n{}\n",
            cmd(secs)
        ));
    }
    for (name, secs) in [("a", "0.2"), ("b", "0.5"), ("c", "0.1"), ("d", "0.2")] {
        text.push_str(&format!(
            "\n[[job]]\nname = \"{name}\"\n{policy}\n{}\n",
            cmd(secs)
        ));
    }
    text.push_str("\n[[pipeline]]\nname = \"pipe\"\nevery = \"3s\"\nstages = [[\"a\"], [\"b\", \"c\"], [\"d\"]]\n");
    text
}

const WORK_SH: &str = r#"sleep "$1"
printf '%s %s %s\n' "$MYRMEX_RUN_ID" "$MYRMEX_ATTEMPT" "$PPID" >> "$2"
echo "effect $MYRMEX_RUN_ID $MYRMEX_ATTEMPT"
"#;

/// A tiny deterministic generator (xorshift), so a failing run can be replayed
/// with `MYRMEX_CHAOS_SEED`.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn millis(lo: u64, hi: u64, rng: &mut Rng) -> Duration {
    Duration::from_millis(rng.range(lo, hi))
}

/// One daemon slot: its own folder (config, state) and the current process.
struct Node {
    dir: Dir,
    daemon: Option<Daemon>,
    /// `sched_node.node_id` of the current process.
    id: String,
    stopped: bool,
}

/// The three daemons. Dropping it (also on panic) kills every process: SIGKILL
/// ends a stopped process too.
struct Cluster {
    nodes: Vec<Node>,
    /// Every process started: pid → node id (the side-effect file names pids).
    pids: HashMap<u32, String>,
    starts: usize,
}

impl Cluster {
    fn spawn(&mut self, i: usize) {
        let daemon = self.nodes[i].dir.start();
        self.nodes[i].daemon = Some(daemon);
        self.nodes[i].stopped = false;
    }

    /// Waits for the node's "daemon started" line and records its node id.
    fn started(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let daemon = node.daemon.as_mut().expect("a started daemon");
        let line = daemon
            .try_wait_for("the daemon to start", PATIENCE, |v| {
                v["message"] == "daemon started"
            })
            .unwrap_or_else(|e| panic!("node {i}: {e}"));
        node.id = line["node"].as_str().expect("node id").to_owned();
        self.pids.insert(daemon.child.id(), node.id.clone());
        self.starts += 1;
    }

    fn start(&mut self, i: usize) {
        self.spawn(i);
        self.started(i);
    }

    fn kill(&mut self, i: usize) {
        if let Some(mut d) = self.nodes[i].daemon.take() {
            let _ = d.child.kill();
            let _ = d.child.wait();
        }
    }

    fn signal(&mut self, i: usize, sig: &str) {
        if let Some(d) = &self.nodes[i].daemon {
            d.signal(sig);
        }
        self.nodes[i].stopped = sig == "STOP";
    }

    /// Panics with its log if a daemon exited on its own (only the chaos loop may
    /// stop one).
    fn check_alive(&mut self) {
        for (i, n) in self.nodes.iter_mut().enumerate() {
            if let Some(d) = n.daemon.as_mut()
                && let Ok(Some(status)) = d.child.try_wait()
            {
                let _ = d.try_wait_for("the end of the log", Duration::from_secs(5), |_| false);
                panic!("node {i} exited on its own ({status}); log:\n{}", d.log());
            }
        }
    }

    fn pids(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .filter_map(|n| n.daemon.as_ref().map(|d| d.child.id()))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The local ports of the TCP connections process `pid` holds: its sessions are the
/// server's backends with these `client_port`s. (Every daemon's sessions carry the
/// same `application_name`, shared with the other tests' daemons, so this is how
/// the chaos loop terminates only its own cluster's sessions.)
fn client_ports(pid: u32) -> Vec<i32> {
    let mut inodes = HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let target = target.to_string_lossy().into_owned();
                if let Some(inode) = target
                    .strip_prefix("socket:[")
                    .and_then(|s| s.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned());
                }
            }
        }
    }
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9
                && inodes.contains(f[9])
                && let Some(port) = f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| i32::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

fn sql(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).expect("connect to MYRMEX_TEST_POSTGRES_URL")
}

fn count(db: &mut postgres::Client, query: &str) -> i64 {
    db.query_one(query, &[])
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .get(0)
}

/// Rows of text columns, for assertion messages.
fn rows(db: &mut postgres::Client, query: &str) -> Vec<String> {
    let text = format!(
        "SELECT to_jsonb(x)::text FROM ({}) x",
        query.trim_end_matches(';')
    );
    db.query(&text, &[])
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

fn event(db: &mut postgres::Client, node: &str, kind: &str) {
    db.execute(
        "INSERT INTO test_chaos_event (node_id, kind, at) VALUES ($1, $2, clock_timestamp())",
        &[&node, &kind],
    )
    .expect("record a chaos event");
}

/// The node holding the most leases (waiting for one to hold any), so the first
/// freeze is sure to leave runs for the others to rescue.
fn busiest(db: &mut postgres::Client, cluster: &Cluster) -> Option<usize> {
    let end = Instant::now() + PATIENCE;
    while Instant::now() < end {
        let owner: Option<String> = db
            .query_opt(
                "SELECT lease_owner FROM sched_run WHERE state = 'running' AND lease_owner IS NOT NULL
                 GROUP BY lease_owner ORDER BY count(*) DESC LIMIT 1",
                &[],
            )
            .expect("find the busiest node")
            .map(|r| r.get(0));
        if let Some(i) = owner.and_then(|o| cluster.nodes.iter().position(|n| n.id == o)) {
            return Some(i);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Waits until `node` holds no lease: another node took over every run it had.
fn until_rescued(db: &mut postgres::Client, node: &str) -> bool {
    let end = Instant::now() + PATIENCE;
    while Instant::now() < end {
        let held: i64 = db
            .query_one(
                "SELECT count(*) FROM sched_run WHERE state = 'running' AND lease_owner = $1",
                &[&node],
            )
            .expect("count a frozen node's leases")
            .get(0);
        if held == 0 {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// The expected occurrences of a job in `[from, until)`.
fn grid(g: &Grid, from: Timestamp, until: Timestamp) -> BTreeSet<Timestamp> {
    let mut out = BTreeSet::new();
    match g {
        Grid::Cron(expr) => {
            let cron = myrmex_cron::Cron::parse(expr).expect("the test's cron expression");
            let mut t =
                cron.next_timestamp_after(from - SignedDuration::from_nanos(1), &TimeZone::UTC);
            while let Some(x) = t.filter(|x| *x < until) {
                out.insert(x);
                t = cron.next_timestamp_after(x, &TimeZone::UTC);
            }
        }
        Grid::Every(every) => {
            // Anchored at the Unix epoch: the first is the first multiple at or after `from`.
            let step = every.as_nanos();
            let k = (from.as_nanosecond() + step - 1).div_euclid(step);
            let mut t = Timestamp::from_nanosecond(k * step).unwrap();
            while t < until {
                out.insert(t);
                t += *every;
            }
        }
    }
    out
}

#[test]
fn three_daemons_under_chaos_keep_every_invariant() {
    let test = "three_daemons_under_chaos_keep_every_invariant";
    let Some(url) = postgres_url(test) else {
        return;
    };
    let secs: u64 = std::env::var("MYRMEX_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(120);
    let seed: u64 = std::env::var("MYRMEX_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        });
    let mut rng = Rng(seed | 1);
    let schema = unique_schema("clitest_chaos");
    let work = Dir::new();
    let script = work.path().join("work.sh");
    let effects: PathBuf = work.path().join("effects.log");
    std::fs::write(&script, WORK_SH).unwrap();
    std::fs::write(&effects, "").unwrap();
    let text = config(
        &url,
        &schema,
        &script.display().to_string(),
        &effects.display().to_string(),
    );
    say!("cluster chaos: {secs} s, seed {seed}, schema {schema}, lease {LEASE:?}");

    let mut cluster = Cluster {
        nodes: (0..NODES)
            .map(|_| Node {
                dir: Dir::new(),
                daemon: None,
                id: String::new(),
                stopped: false,
            })
            .collect(),
        pids: HashMap::new(),
        starts: 0,
    };
    // All three start at once, racing for the migration and the job definitions.
    for i in 0..NODES {
        cluster.nodes[i].dir.write_config(&text);
        cluster.spawn(i);
    }
    for i in 0..NODES {
        cluster.started(i);
    }
    let mut db = sql(&url);
    db.batch_execute(&format!(
        "SET search_path TO {schema};
         CREATE TABLE test_chaos_event (node_id text NOT NULL, kind text NOT NULL, at timestamptz NOT NULL);"
    ))
    .unwrap();
    let end = Instant::now() + PATIENCE;
    while count(
        &mut db,
        "SELECT count(*) FROM sched_run WHERE state = 'succeeded'",
    ) < 5
    {
        assert!(Instant::now() < end, "no runs succeeded after {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // The chaos loop: one action at a time, every 1-4 s.
    let (mut kills, mut stops, mut terminates, mut terminated) = (0u32, 0u32, 0u32, 0usize);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut first = true;
    while first || Instant::now() < until {
        let roll = if first { 60 } else { rng.range(0, 99) };
        if roll < 50 {
            let i = rng.range(0, NODES as u64 - 1) as usize;
            let id = cluster.nodes[i].id.clone();
            event(&mut db, &id, "kill");
            cluster.kill(i);
            kills += 1;
            std::thread::sleep(millis(200, 3000, &mut rng));
            cluster.start(i);
        } else if roll < 75 {
            // The first freeze hits the node holding the most leases and lasts until
            // the others took all of them over: its commands then finish as zombies
            // whose completions must be fenced (I5), however slow the machine.
            let i = if first {
                busiest(&mut db, &cluster).expect("no node ever held a lease")
            } else {
                rng.range(0, NODES as u64 - 1) as usize
            };
            let id = cluster.nodes[i].id.clone();
            event(&mut db, &id, "stop");
            cluster.signal(i, "STOP");
            stops += 1;
            let lease = LEASE.as_millis() as u64;
            std::thread::sleep(millis(lease * 12 / 10, lease * 25 / 10, &mut rng));
            if first {
                assert!(
                    until_rescued(&mut db, &id),
                    "the runs of frozen node {id} were not rescued within {PATIENCE:?}"
                );
            }
            cluster.signal(i, "CONT");
            event(&mut db, &id, "cont");
        } else {
            let ports: Vec<i32> = cluster.pids().into_iter().flat_map(client_ports).collect();
            let n = db
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE client_port = ANY($1) AND pid <> pg_backend_pid() AND random() < 0.4",
                    &[&ports],
                )
                .expect("terminate sessions")
                .len();
            event(&mut db, "*", "terminate");
            terminates += 1;
            terminated += n;
        }
        first = false;
        std::thread::sleep(millis(1000, 4000, &mut rng));
        cluster.check_alive();
    }
    say!(
        "cluster chaos: {kills} SIGKILLs, {stops} SIGSTOPs, {terminated} sessions terminated in {terminates} rounds; \
         {} daemon starts",
        cluster.starts
    );

    // Freeze every watermark, then let the cluster finish what it materialized.
    db.execute("UPDATE sched_job SET paused = true", &[])
        .unwrap();
    let drained = Instant::now();
    let end = drained + PATIENCE;
    loop {
        let left = count(
            &mut db,
            "SELECT count(*) FROM sched_run WHERE state IN ('blocked','pending','running','retry_wait')",
        );
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < end,
            "I3: runs still not ended {PATIENCE:?} after pausing: {:#?}",
            rows(
                &mut db,
                "SELECT j.name, r.scheduled_at, r.stage, r.state, r.attempt, r.lease_owner
                 FROM sched_run r JOIN sched_job j ON j.id = r.job_id
                 WHERE r.state IN ('blocked','pending','running','retry_wait') ORDER BY r.id"
            )
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    say!(
        "cluster chaos: drained in {:.1} s",
        drained.elapsed().as_secs_f64()
    );
    for n in &cluster.nodes {
        n.daemon.as_ref().unwrap().signal("TERM");
    }
    for (i, n) in cluster.nodes.iter_mut().enumerate() {
        let d = n.daemon.as_mut().unwrap();
        let code = d.wait_exit();
        assert_eq!(code, 0, "node {i} did not stop cleanly; log:\n{}", d.log());
    }

    check_invariants(&mut db, &cluster, &effects, stops);
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}

fn check_invariants(db: &mut postgres::Client, cluster: &Cluster, effects: &PathBuf, stops: u32) {
    let jobs: HashMap<String, (i64, Timestamp, Option<Timestamp>)> = db
        .query(
            "SELECT name, id, created_at, next_fire_at FROM sched_job",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2), r.get(3))))
        .collect();
    let runs = db
        .query(
            "SELECT r.job_id, r.scheduled_at, r.stage, r.state, r.attempt, r.result
             FROM sched_run r ORDER BY r.id",
            &[],
        )
        .unwrap();
    let mut by_job: BTreeMap<i64, Vec<(Timestamp, String)>> = BTreeMap::new();
    for r in &runs {
        by_job
            .entry(r.get(0))
            .or_default()
            .push((r.get(1), r.get(2)));
    }

    // I1 no gaps, I2 no duplicates or strays: the runs of each scheduled job are
    // exactly its grid from its creation to its frozen watermark.
    for s in workload() {
        let (id, created, watermark) = jobs[s.name];
        let watermark = watermark.expect("a recurring job keeps a watermark");
        let want = grid(&s.grid, created, watermark);
        let list = by_job.remove(&id).unwrap_or_default();
        let mut have: BTreeMap<Timestamp, Vec<String>> = BTreeMap::new();
        for (t, stage) in list {
            have.entry(t).or_default().push(stage);
        }
        let times: BTreeSet<Timestamp> = have.keys().copied().collect();
        let missing: Vec<_> = want.difference(&times).collect();
        assert!(
            missing.is_empty(),
            "I1: {} misses occurrences {missing:?} (grid {} .. {watermark})",
            s.name,
            created
        );
        let strays: Vec<_> = times.difference(&want).collect();
        assert!(
            strays.is_empty(),
            "I2: {} has runs off its grid or past its watermark {watermark}: {strays:?}",
            s.name
        );
        let expected_stages: Vec<String> = if s.pipeline {
            ["a", "b", "c", "d"].map(String::from).to_vec()
        } else {
            vec![String::new()]
        };
        let bad: Vec<_> = have
            .iter_mut()
            .filter_map(|(t, stages)| {
                stages.sort();
                (*stages != expected_stages).then(|| (t, stages.clone()))
            })
            .collect();
        assert!(
            bad.is_empty(),
            "I2: {} occurrences without exactly the stages {expected_stages:?}: {bad:?}",
            s.name
        );
        if s.serial {
            // The work outlasts the interval: some fires must have met an active run.
            let skipped = count(
                db,
                &format!(
                    "SELECT count(*) FROM sched_run WHERE job_id = {id} AND state = 'skipped'"
                ),
            );
            assert!(skipped > 0, "{}: no fire was skipped", s.name);
        }
        assert!(
            times.len() >= 2,
            "{}: only {} occurrences",
            s.name,
            times.len()
        );
    }
    let unscheduled: Vec<_> = by_job.iter().collect();
    assert!(
        unscheduled.is_empty(),
        "I2: runs of jobs without a schedule: {unscheduled:?}"
    );

    // I3 every run ended: succeeded, or skipped by a serial job's overlap policy.
    let not_ended = rows(
        db,
        "SELECT j.name, r.scheduled_at, r.stage, r.state, r.origin, r.attempt, r.last_error
         FROM sched_run r JOIN sched_job j ON j.id = r.job_id
         WHERE NOT (r.state = 'succeeded'
                    OR r.state = 'skipped' AND j.overlap_policy <> 'allow' AND r.attempt = 0)
         ORDER BY r.id",
    );
    assert!(
        not_ended.is_empty(),
        "I3: runs not ended well: {not_ended:#?}"
    );

    // I4/I5: every succeeded run's result holds exactly one effect line, printed by
    // its final attempt with its occurrence key; no skipped run has one.
    let mut wrong = Vec::new();
    let mut committed: HashSet<(String, i32)> = HashSet::new();
    for r in &runs {
        let (job, at, stage, state, attempt): (i64, Timestamp, String, String, i32) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        let result: Option<serde_json::Value> = r.get(5);
        let key = run_key(JobId(job), at, &stage);
        let lines: Vec<String> = result
            .as_ref()
            .and_then(|v| v["stdout_tail"].as_str())
            .unwrap_or("")
            .lines()
            .filter(|l| l.starts_with("effect "))
            .map(str::to_owned)
            .collect();
        let want = if state == "succeeded" {
            vec![format!("effect {key} {attempt}")]
        } else {
            Vec::new()
        };
        if lines != want {
            wrong.push((key.clone(), state.clone(), attempt, lines));
        }
        if state == "succeeded" {
            committed.insert((key, attempt));
        }
    }
    assert!(
        wrong.is_empty(),
        "I4/I5: runs whose stored effect is not the final attempt's (key, state, attempt, effect lines): {wrong:#?}"
    );
    // The attempts' history agrees: no attempt but a run's final one committed.
    let early_ok = rows(
        db,
        "SELECT a.run_id, a.attempt, r.attempt AS final, a.node_id FROM sched_attempt a
         JOIN sched_run r ON r.id = a.run_id WHERE a.outcome = 'ok' AND a.attempt <> r.attempt",
    );
    assert!(
        early_ok.is_empty(),
        "I4: an attempt other than the final one committed: {early_ok:#?}"
    );
    let fenced = count(
        db,
        "SELECT count(*) FROM sched_attempt WHERE outcome = 'fenced'",
    );
    assert!(
        stops == 0 || fenced > 0,
        "I5: {stops} freezes but no zombie completion was refused"
    );

    // The side-effect file: every attempt that ran to its end appended a line. The
    // committed ones are there; so are zombies that were refused; nothing ran twice
    // under one attempt number, and every line belongs to an attempt the database
    // gave to that daemon.
    let text = std::fs::read_to_string(effects).unwrap();
    let mut executed: HashMap<(String, i32), Vec<String>> = HashMap::new();
    // A command of a killed daemon may still be appending its last line.
    let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
    for line in complete.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "a malformed side-effect line: {line:?}");
        let pid: u32 = f[2].parse().unwrap();
        let node = cluster
            .pids
            .get(&pid)
            .unwrap_or_else(|| panic!("a side effect from an unknown process: {line:?}"));
        executed
            .entry((f[0].to_owned(), f[1].parse().unwrap()))
            .or_default()
            .push(node.clone());
    }
    let twice: Vec<_> = executed.iter().filter(|(_, n)| n.len() > 1).collect();
    assert!(twice.is_empty(), "one attempt executed twice: {twice:?}");
    let unexecuted: Vec<_> = committed
        .iter()
        .filter(|k| !executed.contains_key(*k))
        .collect();
    assert!(
        unexecuted.is_empty(),
        "committed runs whose command left no side effect: {unexecuted:?}"
    );
    let attempts: HashMap<(String, i32), (String, Option<String>)> = db
        .query(
            "SELECT r.job_id, r.scheduled_at, r.stage, a.attempt, a.node_id, a.outcome
             FROM sched_attempt a JOIN sched_run r ON r.id = a.run_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| {
            let key = run_key(JobId(r.get(0)), r.get(1), r.get::<_, &str>(2));
            ((key, r.get(3)), (r.get(4), r.get(5)))
        })
        .collect();
    let foreign: Vec<_> = executed
        .iter()
        .filter(|(k, nodes)| attempts.get(*k).is_none_or(|(owner, _)| *owner != nodes[0]))
        .collect();
    assert!(
        foreign.is_empty(),
        "side effects of attempts the database did not give to that daemon: {foreign:?}"
    );
    let zombies: Vec<_> = attempts
        .iter()
        .filter(|(_, (_, outcome))| outcome.as_deref() == Some("fenced"))
        .map(|(k, _)| k)
        .collect();
    let silent: Vec<_> = zombies
        .iter()
        .filter(|k| !executed.contains_key(**k))
        .collect();
    assert!(
        silent.is_empty(),
        "refused completions whose command left no side effect: {silent:?}"
    );
    let uncommitted = executed.keys().filter(|k| !committed.contains(*k)).count();

    // I6 no overlap of a serial job's successful attempts.
    let overlaps = rows(
        db,
        "WITH ok AS (SELECT j.name, a.run_id, a.attempt, a.started_at, a.finished_at FROM sched_attempt a
                       JOIN sched_run r ON r.id = a.run_id JOIN sched_job j ON j.id = r.job_id
                     WHERE j.overlap_policy <> 'allow' AND j.pipeline_id IS NULL AND a.outcome = 'ok')
         SELECT x.name, x.run_id, x.started_at, x.finished_at, y.run_id AS other, y.started_at AS other_start
         FROM ok x JOIN ok y ON x.name = y.name AND x.run_id <> y.run_id
         WHERE x.started_at <= y.started_at AND y.started_at < x.finished_at",
    );
    assert!(
        overlaps.is_empty(),
        "I6: overlapping runs of a serial job: {overlaps:#?}"
    );
    let serial_ok = count(
        db,
        "SELECT count(*) FROM sched_run r JOIN sched_job j ON j.id = r.job_id
         WHERE j.overlap_policy <> 'allow' AND j.pipeline_id IS NULL AND r.state = 'succeeded'",
    );

    // I7 no attempt of a stage (or of a queued serial run) started before the runs
    // it depends on ended.
    let early = rows(
        db,
        "SELECT j.name, r.stage, a.run_id, a.attempt, a.started_at, p.stage AS parent, p.state AS parent_state,
                p.finished_at AS parent_finished
         FROM sched_run_dep d JOIN sched_attempt a ON a.run_id = d.run_id
         JOIN sched_run r ON r.id = d.run_id JOIN sched_job j ON j.id = r.job_id
         JOIN sched_run p ON p.id = d.dep_run_id
         WHERE p.finished_at IS NULL OR a.started_at < p.finished_at",
    );
    assert!(
        early.is_empty(),
        "I7: started before a dependency ended: {early:#?}"
    );
    let deps = count(db, "SELECT count(*) FROM sched_run_dep");

    // I8 recovery: every rescue of a run held by a killed or frozen node, measured
    // from the kill/freeze. A rescue needs the lease to expire (at most a lease
    // after the last renewal, which came before the event), then a claim by
    // another node: its poll (≤ 1.2 s), a free worker (the longest command is 3 s)
    // and, on a loaded machine, the scheduling delay of its threads. The bound
    // allows all of that with a wide margin; the measured values are printed.
    let recovery = db
        .query_one(
            "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), max(ms), count(*)
             FROM (SELECT (extract(epoch FROM a.started_at - (
                     SELECT max(e.at) FROM test_chaos_event e WHERE e.node_id = prev.node_id
                       AND e.kind IN ('kill','stop') AND e.at BETWEEN prev.started_at AND a.started_at)) * 1000)::float8 AS ms
                   FROM sched_attempt a JOIN sched_attempt prev ON prev.run_id = a.run_id AND prev.attempt = a.attempt - 1
                   WHERE a.rescued_lease_expired_at IS NOT NULL) x WHERE ms IS NOT NULL",
            &[],
        )
        .unwrap();
    let (r50, rmax, rn): (Option<f64>, Option<f64>, i64) =
        (recovery.get(0), recovery.get(1), recovery.get(2));
    let unexplained = count(
        db,
        "SELECT count(*) FROM sched_attempt a
           JOIN sched_attempt prev ON prev.run_id = a.run_id AND prev.attempt = a.attempt - 1
         WHERE a.rescued_lease_expired_at IS NOT NULL AND NOT EXISTS (SELECT 1 FROM test_chaos_event e
           WHERE e.node_id = prev.node_id AND e.kind IN ('kill','stop')
             AND e.at BETWEEN prev.started_at AND a.started_at)",
    );
    // A rescue never takes a run before the lease it takes over has expired (on the
    // database's clock): that is what keeps a slow-but-alive node's run single.
    let early_rescues = rows(
        db,
        "SELECT a.run_id, a.attempt, a.started_at, a.rescued_lease_expired_at FROM sched_attempt a
         WHERE a.rescued_lease_expired_at IS NOT NULL AND a.started_at < a.rescued_lease_expired_at",
    );
    assert!(
        early_rescues.is_empty(),
        "I8: runs rescued before their lease expired: {early_rescues:#?}"
    );
    // Every kill or freeze of a node that lost runs it held was followed by a rescue.
    let unrescued = rows(
        db,
        "SELECT e.node_id, e.kind, e.at FROM test_chaos_event e
         WHERE e.kind IN ('kill','stop') AND EXISTS (
             SELECT 1 FROM sched_attempt a JOIN sched_run r ON r.id = a.run_id
             WHERE a.node_id = e.node_id AND a.started_at <= e.at AND a.attempt < r.attempt
               AND (a.finished_at IS NULL OR a.finished_at > e.at) AND a.outcome IN ('lease_expired','fenced'))
           AND NOT EXISTS (
             SELECT 1 FROM sched_attempt a JOIN sched_attempt prev ON prev.run_id = a.run_id AND prev.attempt = a.attempt - 1
             WHERE prev.node_id = e.node_id AND a.rescued_lease_expired_at IS NOT NULL AND a.started_at >= e.at)",
    );
    assert!(
        unrescued.is_empty(),
        "I8: kills/freezes whose runs nobody rescued: {unrescued:#?}"
    );
    let lease_ms = LEASE.as_millis() as f64;
    let bound_ms = 3.0 * lease_ms + 15_000.0;
    let total = runs.len();
    let n_attempts = count(db, "SELECT count(*) FROM sched_attempt");
    let outcomes: Vec<String> = db
        .query(
            "SELECT coalesce(outcome, 'none') || ' ' || count(*) FROM sched_attempt GROUP BY outcome ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    say!(
        "cluster chaos: {total} runs ({} succeeded, {serial_ok} of serial jobs), {n_attempts} attempts ({}), \
         {deps} dependency edges; {fenced} zombie completions fenced; {uncommitted} attempts executed but not committed; \
         recovery after a kill/freeze p50 {:.0} ms = {:.2} leases, max {:.0} ms = {:.2} leases (n={rn}, bound {bound_ms:.0} ms); \
         {unexplained} rescues without a kill/freeze",
        committed.len(),
        outcomes.join(", "),
        r50.unwrap_or(f64::NAN),
        r50.unwrap_or(f64::NAN) / lease_ms,
        rmax.unwrap_or(f64::NAN),
        rmax.unwrap_or(f64::NAN) / lease_ms,
    );
    if let Some(rmax) = rmax {
        assert!(
            rmax < bound_ms,
            "I8: a run was rescued {rmax:.0} ms after its node was killed or frozen (lease {lease_ms} ms, bound {bound_ms} ms)"
        );
    }
}

/// A node that starts while another session holds its jobs' row locks past the
/// lock timeout (as a node frozen inside a transaction would) retries instead of
/// exiting, and starts once the locks are free.
#[test]
fn a_daemon_starting_while_its_jobs_are_locked_retries_until_they_are_free() {
    let Some(url) =
        postgres_url("a_daemon_starting_while_its_jobs_are_locked_retries_until_they_are_free")
    else {
        return;
    };
    let schema = unique_schema("clitest_locked");
    let dir = Dir::new();
    dir.write_config(&format!(
        r#"
[scheduler]
store = "{url}"
schema = "{schema}"

[[job]]
name = "hourly"
every = "1h"
command = "true"
"#
    ));
    let mut first = dir.start();
    first.wait_for("start", |v| v["message"] == "daemon started");
    first.signal("TERM");
    assert_eq!(first.wait_exit(), 0, "{}", first.log());

    let mut db = sql(&url);
    db.batch_execute(&format!("SET search_path TO {schema}"))
        .unwrap();
    let mut tx = db.transaction().unwrap();
    tx.query("SELECT id FROM sched_job FOR UPDATE", &[])
        .unwrap();
    let mut second = dir.start();
    second.wait_for("a retry of the start", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("failed; retrying"))
    });
    tx.commit().unwrap();
    second.wait_for("start", |v| v["message"] == "daemon started");
    second.signal("TERM");
    assert_eq!(second.wait_exit(), 0, "{}", second.log());
    db.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .unwrap();
}
