//! The child process of the store crash test (`tests/it/crash.rs`); not a user tool.
//!
//! `myrmex-store-crash-child <sqlite|json> <path>` opens the store, recovers interrupted
//! runs, then forever: materializes the next fires of a few fast jobs (logical times, one
//! per second from a fixed epoch, two per tick), starts attempts on up to four claimable
//! runs and completes them. After each committed write it prints one line on stdout, so the
//! parent knows what was committed before it killed the process:
//!
//! ```text
//! ready
//! fired <job> <nanos> <nanos>
//! started <run> <attempt>
//! done <run> <attempt>
//! ```
//!
//! It exits by itself after 20 s, so an orphan cannot outlive a crashed parent for long.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use myrmex_sqlite::SqliteStore;
use myrmex_store::{
    Completion, JobDefinition, JobRecord, JsonFileStore, Materialization, MaterializeOutcome,
    NewRun, RunFilter, RunState, StartOutcome, Store, TriggerSpec,
};

const JOBS: [&str; 3] = ["alpha", "beta", "gamma"];

fn epoch() -> Timestamp {
    Timestamp::from_second(1_767_225_600).expect("valid")
}

fn main() {
    let mut args = std::env::args().skip(1);
    let kind = args.next().expect("store kind");
    let path = args.next().expect("store path");
    let store: Box<dyn Store> = match kind.as_str() {
        "sqlite" => Box::new(SqliteStore::open(&path).expect("open sqlite")),
        "json" => Box::new(JsonFileStore::open(&path).expect("open json")),
        other => panic!("unknown store kind {other}"),
    };
    store
        .recover_interrupted(Timestamp::now())
        .expect("recover");
    for name in JOBS {
        if store.get_job(&name.into()).expect("get_job").is_none() {
            let def = JobDefinition {
                trigger: TriggerSpec::Interval {
                    every: SignedDuration::from_secs(1),
                    anchor: epoch(),
                    start: None,
                    end: None,
                },
                handler: "noop".into(),
                args: serde_json::Value::Null,
                policies: Default::default(),
                depends_on: vec![],
            };
            store
                .upsert_job(JobRecord::new(name, def, Some(epoch()), Timestamp::now()))
                .expect("upsert");
        }
    }
    println!("ready");
    let deadline = Instant::now() + Duration::from_secs(20);
    let step = SignedDuration::from_secs(1);
    while Instant::now() < deadline {
        for name in JOBS {
            let job = store.get_job(&name.into()).expect("get").expect("job");
            let w = job.state.watermark.expect("interval never ends");
            let m = Materialization::tick(
                name,
                Some(w),
                Some(w + step + step),
                vec![
                    NewRun::pending(w).with_max_attempts(3),
                    NewRun::pending(w + step).with_max_attempts(3),
                ],
                Timestamp::now(),
            );
            match store.materialize(m).expect("materialize") {
                MaterializeOutcome::Committed { .. } => println!(
                    "fired {name} {} {}",
                    w.as_nanosecond(),
                    (w + step).as_nanosecond()
                ),
                other => panic!("single writer, yet {other:?}"),
            }
        }
        let due = store
            .list_runs(&RunFilter {
                limit: Some(4),
                ..RunFilter::all().in_states([RunState::Pending, RunState::Interrupted])
            })
            .expect("list");
        let mut running = Vec::new();
        for r in due {
            let now = Timestamp::now();
            match store
                .start_attempt(r.id, "child", now, SignedDuration::from_secs(30))
                .expect("start")
            {
                StartOutcome::Started(c) => {
                    println!("started {} {}", r.id.0, c.attempt.0);
                    running.push((r.id, c.attempt));
                }
                other => panic!("single writer, yet {other:?}"),
            }
        }
        for (id, attempt) in running {
            let _ = store
                .complete(id, attempt, Completion::success(), Timestamp::now())
                .expect("complete");
            println!("done {} {}", id.0, attempt.0);
        }
    }
}
