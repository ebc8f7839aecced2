//! [`JsonFileStore`]: the whole store in one human-readable JSON file.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::{StoreError, StoreResult};
use crate::memory::MemState;
use crate::ops::{RunFilter, WriteOp, WriteOutput};
use crate::record::{
    AttemptRecord, JobId, JobRecord, OccurrenceKey, RunDepRecord, RunId, RunRecord,
};
use crate::store::Store;

/// The version of the JSON file format written by this build (the `format_version` field).
/// Files with a higher version are refused.
pub const JSON_FORMAT_VERSION: u64 = 1;

const FORMAT_NAME: &str = "myrmex-store";

#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    format_version: Option<u64>,
}

#[derive(Serialize)]
struct FileOut<'a> {
    format: &'static str,
    format_version: u64,
    next_run_id: u64,
    jobs: Vec<&'a JobRecord>,
    runs: Vec<&'a RunRecord>,
    deps: Vec<&'a RunDepRecord>,
    attempts: Vec<&'a AttemptRecord>,
}

#[derive(Deserialize)]
struct FileV1 {
    #[serde(default)]
    next_run_id: u64,
    #[serde(default)]
    jobs: Vec<JobRecord>,
    #[serde(default)]
    runs: Vec<RunRecord>,
    #[serde(default)]
    deps: Vec<RunDepRecord>,
    #[serde(default)]
    attempts: Vec<AttemptRecord>,
}

struct Inner {
    state: MemState,
    /// Hash of the bytes last written (or read), to skip rewriting an unchanged file.
    written: u64,
}

/// A [`Store`] kept in one JSON file, for small setups.
///
/// The file is human-readable (pretty-printed), carries `"format": "myrmex-store"` and a
/// `format_version` ([`JSON_FORMAT_VERSION`]), and is replaced atomically on every commit:
/// the new content goes to a temporary file in the same directory, which is fsynced,
/// renamed over the old file, and the directory is fsynced. A crash at any instant leaves
/// either the old or the new file, never a mix.
///
/// # Limits
///
/// * Every commit rewrites the whole file, so a commit costs time proportional to the store's
///   size (jobs plus retained run history) plus two fsyncs. Keep history short with
///   [`Store::prune`], and prefer `myrmex-sqlite` beyond a few hundred jobs or more than a
///   few commits per second. Batching ops in one [`Store::apply`] call shares one rewrite.
/// * The whole store lives in memory.
/// * One process at a time: there is no cross-process lock.
///
/// # Errors on open
///
/// A file that is truncated, not JSON, not a myrmex store, or of the wrong shape is
/// reported as [`StoreError::CorruptFile`] with the line and column; a file written by a
/// newer format as [`StoreError::UnsupportedVersion`]. In both cases the file is not
/// modified and nothing else is created.
///
/// ```
/// use myrmex_store::{JsonFileStore, Store};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("state.json");
/// let store = JsonFileStore::open(&path)?; // a missing file is an empty store
/// assert!(store.list_jobs()?.is_empty());
/// store.close()?;
///
/// std::fs::write(&path, "{\"format\": \"myrmex-store\", \"format_version\": 1, \"jobs\": [")?;
/// let err = JsonFileStore::open(&path).unwrap_err();
/// assert!(err.to_string().contains("line 1"), "{err}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct JsonFileStore {
    path: PathBuf,
    inner: Mutex<Option<Inner>>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("jobs", &self.state.jobs.len())
            .field("runs", &self.state.runs.len())
            .finish()
    }
}

impl JsonFileStore {
    /// Opens (or, if missing, starts) the store at `path`. The file is created by the first
    /// commit.
    ///
    /// # Errors
    ///
    /// [`StoreError::Io`] if the file cannot be read or its directory does not exist;
    /// [`StoreError::CorruptFile`] or [`StoreError::UnsupportedVersion`] as described on the
    /// type. The file is never modified by a failed open.
    pub fn open(path: impl AsRef<Path>) -> StoreResult<Self> {
        let path = path.as_ref().to_path_buf();
        let dir = parent_dir(&path);
        if !dir.is_dir() {
            return Err(StoreError::Io {
                op: "open directory of",
                path: path.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("directory {} does not exist", dir.display()),
                ),
            });
        }
        let (state, written) = match fs::read(&path) {
            Ok(bytes) => (parse(&path, &bytes)?, hash(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (MemState::default(), 0),
            Err(source) => {
                return Err(StoreError::Io {
                    op: "read",
                    path,
                    source,
                });
            }
        };
        Ok(Self {
            path,
            inner: Mutex::new(Some(Inner { state, written })),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> StoreResult<R>) -> StoreResult<R> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.as_mut() {
            Some(inner) => f(inner),
            None => Err(StoreError::Closed),
        }
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn corrupt(path: &Path, e: &serde_json::Error) -> StoreError {
    StoreError::CorruptFile {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

fn parse(path: &Path, bytes: &[u8]) -> StoreResult<MemState> {
    let header: Header = serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e))?;
    if header.format.as_deref() != Some(FORMAT_NAME) {
        return Err(StoreError::CorruptFile {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: format!("not a myrmex store file (no \"format\": \"{FORMAT_NAME}\")"),
        });
    }
    let version = header
        .format_version
        .ok_or_else(|| StoreError::CorruptFile {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            message: "missing \"format_version\"".into(),
        })?;
    if version > JSON_FORMAT_VERSION {
        return Err(StoreError::UnsupportedVersion {
            path: path.to_path_buf(),
            what: "format",
            found: version,
            supported: JSON_FORMAT_VERSION,
        });
    }
    let file: FileV1 = serde_json::from_slice(bytes).map_err(|e| corrupt(path, &e))?;
    let state = MemState::from_parts(
        file.next_run_id,
        file.jobs,
        file.runs,
        file.deps,
        file.attempts,
    );
    Ok(state)
}

fn render(state: &MemState) -> Vec<u8> {
    let out = FileOut {
        format: FORMAT_NAME,
        format_version: JSON_FORMAT_VERSION,
        next_run_id: state.next_run_id,
        jobs: state.jobs.values().collect(),
        runs: state.runs.values().collect(),
        deps: state.deps.values().collect(),
        attempts: state.attempts.values().collect(),
    };
    let mut bytes = serde_json::to_vec_pretty(&out).expect("records always serialize");
    bytes.push(b'\n');
    bytes
}

/// Replaces `path` by `bytes` atomically and durably.
fn write_atomic(path: &Path, bytes: &[u8]) -> StoreResult<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store.json".into());
    let tmp = dir.join(format!(".{name}.tmp"));
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source| StoreError::Io {
            op,
            path: p,
            source,
        }
    };
    let result = (|| {
        let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("sync", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io("rename into place", path))?;
        fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io("sync directory", &dir))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

impl Store for JsonFileStore {
    fn apply(&self, ops: Vec<WriteOp>) -> StoreResult<Vec<StoreResult<WriteOutput>>> {
        self.with(|inner| {
            let snapshot = inner.state.clone();
            let results = inner.state.apply(ops);
            if results.iter().any(Result::is_ok) {
                let bytes = render(&inner.state);
                let h = hash(&bytes);
                if h != inner.written {
                    if let Err(e) = write_atomic(&self.path, &bytes) {
                        tracing::error!(path = %self.path.display(), error = %e, "json store commit failed");
                        inner.state = snapshot;
                        return Err(e);
                    }
                    inner.written = h;
                }
            }
            Ok(results)
        })
    }

    fn get_job(&self, job: &JobId) -> StoreResult<Option<JobRecord>> {
        self.with(|i| Ok(i.state.jobs.get(job).cloned()))
    }

    fn list_jobs(&self) -> StoreResult<Vec<JobRecord>> {
        self.with(|i| Ok(i.state.jobs.values().cloned().collect()))
    }

    fn get_run(&self, run: RunId) -> StoreResult<Option<RunRecord>> {
        self.with(|i| Ok(i.state.runs.get(&run).cloned()))
    }

    fn find_run(&self, key: &OccurrenceKey) -> StoreResult<Option<RunRecord>> {
        self.with(|i| {
            Ok(i.state
                .by_key
                .get(key)
                .and_then(|id| i.state.runs.get(id))
                .cloned())
        })
    }

    fn list_runs(&self, filter: &RunFilter) -> StoreResult<Vec<RunRecord>> {
        self.with(|i| Ok(i.state.list_runs(filter)))
    }

    fn attempts(&self, run: RunId) -> StoreResult<Vec<AttemptRecord>> {
        self.with(|i| Ok(i.state.attempts_of(run)))
    }

    fn upstream_deps(&self, run: RunId) -> StoreResult<Vec<RunDepRecord>> {
        self.with(|i| Ok(i.state.upstream_deps(run)))
    }

    fn close(&self) -> StoreResult<()> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *g = None;
        Ok(())
    }
}
