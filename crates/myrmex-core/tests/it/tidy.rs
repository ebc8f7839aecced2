//! Architecture invariant: myrmex-core and myrmex-cron never read a clock, spawn
//! threads, take locks or do I/O (files, sockets, the environment, processes,
//! printing). The one-time `LazyLock` of the default policies is allowed: it is
//! initialised once and read only.

use std::path::{Path, PathBuf};

const FORBIDDEN: &[&str] = &[
    "SystemTime::now",
    "Instant::now",
    "Zoned::now",
    "Timestamp::now",
    "std::thread",
    "std::fs",
    "std::io",
    "std::net",
    "std::env",
    "std::process",
    "std::sync::atomic",
    "std::sync::mpsc",
    "thread_local!",
    "static mut",
    "print!",
    "println!",
    "eprint!",
    "eprintln!",
    "dbg!",
];

/// Names forbidden as whole words in code (not in comments): clocks and locks.
const FORBIDDEN_WORDS: &[&str] = &[
    "Instant",
    "SystemTime",
    "Mutex",
    "RwLock",
    "Condvar",
    "Barrier",
    "OnceLock",
    "AtomicBool",
    "AtomicUsize",
    "AtomicU64",
    "AtomicI64",
    "AtomicU32",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_and_cron_sources_never_read_a_clock_spawn_lock_or_do_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    rust_files(&root.join("../myrmex-cron/src"), &mut files);
    assert!(files.len() >= 5, "found the sources: {files:?}");
    let mut offences = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source");
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            let words: Vec<&str> = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .collect();
            if FORBIDDEN.iter().any(|pat| line.contains(pat))
                || FORBIDDEN_WORDS.iter().any(|w| words.contains(w))
            {
                offences.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "forbidden calls:\n{}",
        offences.join("\n")
    );
}
