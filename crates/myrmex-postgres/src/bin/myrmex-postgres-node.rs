//! A cluster node on synthetic work, for the chaos test and the benchmark.
//!
//! `myrmex-postgres-node --url URL --schema S --node-id ID [--workers N] [--poll-ms MS] [--no-listen]`
//!
//! Registers one handler, `work`: it sleeps for a duration between the payload's
//! `min_ms` and `max_ms` (derived from the occurrence key and attempt), checks
//! `still_owned()`, and writes one row to the `effect` table through
//! `commit_with`, so the row commits only with a fenced success. Runs until killed.
//! Its sessions' `application_name` is `myrmex/<schema>/<node-id>`.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use myrmex_postgres::{ConnectOptions, Handler, Node, NodeConfig, RunContext};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn work(ctx: &mut RunContext) -> Result<Option<serde_json::Value>, String> {
    let run = ctx.run().clone();
    let min = run.payload["min_ms"].as_u64().unwrap_or(10);
    let max = run.payload["max_ms"].as_u64().unwrap_or(min).max(min);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (run.run_key(), run.attempt).hash(&mut h);
    let ms = min + h.finish() % (max - min + 1);
    std::thread::sleep(Duration::from_millis(ms));
    if !ctx.still_owned() {
        // The lease is probably gone: the completion would most likely be fenced.
        // Try anyway; the fence decides (this is what exercises it).
    }
    let node = ctx.node_id().to_owned();
    ctx.commit_with(move |tx| {
        tx.execute(
            "INSERT INTO effect (job_id, scheduled_at, stage, attempt, node_id, committed_at)
             VALUES ($1, $2, $3, $4, $5, now())",
            &[
                &run.job.0,
                &run.scheduled_at,
                &run.stage,
                &run.attempt,
                &node,
            ],
        )
        .map(|_| ())
    });
    Ok(None)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(url), Some(schema), Some(node_id)) = (
        arg(&args, "--url"),
        arg(&args, "--schema"),
        arg(&args, "--node-id"),
    ) else {
        eprintln!(
            "usage: myrmex-postgres-node --url URL --schema S --node-id ID [--workers N] [--poll-ms MS] [--no-listen]"
        );
        std::process::exit(2);
    };
    let workers = arg(&args, "--workers")
        .and_then(|w| w.parse().ok())
        .unwrap_or(8);
    let poll = arg(&args, "--poll-ms")
        .and_then(|w| w.parse().ok())
        .unwrap_or(1000);
    // Sessions named after the schema and node, so a test can terminate exactly
    // its own cluster's sessions (`myrmex/<schema>/<node>`).
    let mut config = NodeConfig::new(
        ConnectOptions::new(&url)
            .schema(&schema)
            .node_id(&node_id)
            .application_name(&format!("myrmex/{schema}/{node_id}")),
    );
    config.workers = workers;
    config.poll = Duration::from_millis(poll);
    config.listen = !args.iter().any(|a| a == "--no-listen");
    let mut handlers: HashMap<String, Handler> = HashMap::new();
    handlers.insert("work".into(), Arc::new(work));
    let node = loop {
        match Node::start(config.clone(), handlers.clone()) {
            Ok(n) => break n,
            Err(e) => {
                eprintln!("node {node_id}: cannot start: {e}; retrying");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    eprintln!("node {} started", node.node_id());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
