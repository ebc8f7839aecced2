//! The daemon's TOML config file: reading, validating, and the validated form.
//!
//! Validation walks the spanned TOML document by hand instead of going through
//! `serde` so that every problem is reported at once (serde stops at the first), each
//! with its line and column and a hint. A config with any problem produces no
//! [`Config`] at all: nothing starts and no state changes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, SpanRelativeTo, Timestamp};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, did_you_mean};

/// The file name `run` and `check` use when none is given.
pub const DEFAULT_CONFIG: &str = "myrmex.toml";

/// The default state store, relative to the config file's folder.
pub const DEFAULT_STORE: &str = "myrmex.sqlite";

/// A validated config file.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// The `[scheduler]` table.
    pub scheduler: SchedulerConfig,
    /// The `[[job]]` entries, in file order.
    pub jobs: Vec<JobConfig>,
    /// The `[[pipeline]]` entries, in file order.
    pub pipelines: Vec<PipelineConfig>,
}

/// The `[scheduler]` table.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// The zone schedules are evaluated in unless a job names its own.
    pub zone: Zone,
    /// How many commands may run at the same time.
    pub workers: usize,
    /// Where state and run history are kept.
    pub store: StoreSpec,
    /// On SIGTERM/SIGINT, how long running commands may take to finish.
    pub shutdown_grace: SignedDuration,
    /// Between SIGTERM and SIGKILL when a command is stopped (timeout or shutdown).
    pub kill_grace: SignedDuration,
    /// Finished runs older than this are deleted from the history.
    pub history_retention: Option<SignedDuration>,
    /// How many bytes of the end of stdout and of stderr each run keeps.
    pub output_tail_bytes: usize,
    /// PostgreSQL store only: how long a claimed run's lease lasts before another
    /// node may take it over (`lease`, default 30 s).
    pub lease: SignedDuration,
    /// PostgreSQL store only: terminal runs that ended longer ago than this move
    /// from the hot runs table to the history table (`archive_after`, default
    /// 7 days); `status` and `history` read both.
    pub archive_after: SignedDuration,
    /// PostgreSQL store only: nodes without a heartbeat for longer than this and
    /// without leases are deleted from the node list (`forget_nodes_after`,
    /// default 24 h); until then `status` shows them as stale.
    pub forget_nodes_after: SignedDuration,
    /// PostgreSQL store only: the schema holding the tables (`schema`, default
    /// `myrmex`).
    pub schema: String,
}

/// A named IANA time zone.
#[derive(Clone, Debug)]
pub struct Zone {
    /// The name as written (`Europe/Paris`).
    pub name: String,
    /// The zone itself.
    pub tz: TimeZone,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// Where the daemon keeps its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// An SQLite database file (the default).
    Sqlite(PathBuf),
    /// A JSON file.
    Json(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl StoreSpec {
    /// The private folder of the daemon's control socket: beside a file store, or
    /// beside the config file for a database server.
    pub fn control_dir(&self, config_path: &Path) -> PathBuf {
        let beside = |p: &Path| {
            let mut name = p.file_name().unwrap_or_default().to_os_string();
            name.push(".control");
            p.with_file_name(name)
        };
        match self {
            StoreSpec::Sqlite(p) | StoreSpec::Json(p) => beside(p),
            StoreSpec::Postgres(_) => {
                beside(&std::path::absolute(config_path).unwrap_or_else(|_| config_path.into()))
            }
        }
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            StoreSpec::Json(p) => write!(f, "json:{}", p.display()),
            StoreSpec::Postgres(url) => f.write_str(url),
        }
    }
}

/// A `[[job]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct JobConfig {
    /// Unique among jobs and pipelines.
    pub name: String,
    /// What to run.
    pub command: CommandSpec,
    /// The working directory (absolute, resolved against the config's folder).
    pub working_dir: Option<PathBuf>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// When it fires; `None` for jobs run only by dependencies, pipelines or `trigger`.
    pub schedule: Option<ScheduleSpec>,
    /// Its own zone, overriding the scheduler's.
    pub zone: Option<Zone>,
    /// How long one attempt may run before its process group is stopped.
    pub timeout: Option<SignedDuration>,
    /// What happens after a failed attempt.
    pub retry: RetrySpec,
    /// What happens when a fire comes while a run is still going.
    pub overlap: OverlapSpec,
    /// What happens to fires missed while the daemon was down or stalled.
    pub misfire: MisfireSpec,
    /// Jobs or pipelines that must finish first.
    pub depends_on: Vec<Dependency>,
    /// Starts paused (fires are not turned into runs until resumed).
    pub paused: bool,
}

/// A command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandSpec {
    /// Program and arguments, run without a shell.
    Argv(Vec<String>),
    /// A string run by `sh -c`.
    Shell(String),
}

impl CommandSpec {
    /// The argv actually executed.
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandSpec::Argv(v) => v.clone(),
            CommandSpec::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        }
    }
}

impl std::fmt::Display for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CommandSpec::Shell(s) => f.write_str(s),
            CommandSpec::Argv(v) => {
                let quoted: Vec<String> = v.iter().map(|a| shell_quote(a)).collect();
                f.write_str(&quoted.join(" "))
            }
        }
    }
}

fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

/// When a job or pipeline fires.
#[derive(Clone, Debug, PartialEq)]
pub enum ScheduleSpec {
    /// `cron = "..."`: a cron expression in the myrmex dialect.
    Cron {
        /// The expression as written.
        expr: String,
        /// The parsed expression.
        cron: myrmex_cron::Cron,
    },
    /// `every = "15m"`: a fixed interval.
    Every(SignedDuration),
    /// `at = "..."`: once at an instant or civil time, or daily at a wall time.
    At(AtSpec),
    /// `recurrence = { ... }`: a calendar recurrence.
    Recurrence(RecurrenceSpec),
}

/// The forms of `at`.
#[derive(Clone, Debug, PartialEq)]
pub enum AtSpec {
    /// An RFC 3339 instant (`2026-12-24T18:00:00Z`): fires once.
    Instant(Timestamp),
    /// A civil date and time in the job's zone (`2026-12-24T18:00:00`): fires once.
    Civil(DateTime),
    /// A wall time (`09:30`): fires every day at that time in the job's zone.
    Daily(Time),
}

/// `recurrence = { every = "2 days", at = ["09:00"], on = ["mon"], until = "..." }`.
#[derive(Clone, Debug, PartialEq)]
pub struct RecurrenceSpec {
    /// How many units between occurrences.
    pub interval: u32,
    /// The calendar unit.
    pub unit: RecurrenceUnit,
    /// Wall times of day (for day and week units); empty means midnight.
    pub at: Vec<Time>,
    /// Weekdays it is restricted to; empty means every day.
    pub on: Vec<Weekday>,
    /// The last date (inclusive) it may fire on.
    pub until: Option<Date>,
}

/// The unit of a recurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecurrenceUnit {
    /// Seconds.
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Calendar days.
    Day,
    /// Calendar weeks.
    Week,
}

/// Retries after a failed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetrySpec {
    /// How many more attempts after the first one fails (0: none).
    pub retries: u32,
    /// How the delay between attempts grows.
    pub backoff: BackoffKind,
    /// The delay before the first retry.
    pub delay: SignedDuration,
    /// The longest delay between attempts.
    pub max_delay: Option<SignedDuration>,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            retries: 0,
            backoff: BackoffKind::Exponential,
            delay: SignedDuration::from_secs(10),
            max_delay: None,
        }
    }
}

/// How the delay between retries grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackoffKind {
    /// The same delay every time.
    Fixed,
    /// The delay doubles after every attempt.
    Exponential,
}

/// What happens when a job fires while its previous run still runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OverlapSpec {
    /// The new fire is recorded as skipped (the default).
    #[default]
    Skip,
    /// One fire waits for the running one; further fires are skipped.
    Queue,
    /// Up to this many runs at the same time.
    Allow(u32),
}

/// What happens to fires that were missed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MisfireSpec {
    /// The policy; `None` means the scheduler's default.
    pub policy: Option<MisfireKind>,
    /// How late a fire may still run as if on time.
    pub grace: Option<SignedDuration>,
}

/// The misfire policies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MisfireKind {
    /// All missed fires become one run.
    RunOnce,
    /// Every missed fire runs.
    RunAll,
    /// Missed fires are recorded as skipped.
    Skip,
}

/// One entry of `depends_on`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The job or pipeline depended on.
    pub name: String,
    /// What its last run must have done.
    pub require: Requirement,
}

/// What a dependency's run must have done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Requirement {
    /// Succeeded (the default).
    #[default]
    Success,
    /// Finished, whatever the outcome.
    Completion,
}

/// A `[[pipeline]]` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    /// Unique among jobs and pipelines.
    pub name: String,
    /// Each stage's job names; a stage's jobs run in parallel.
    pub stages: Vec<Vec<String>>,
    /// When it fires, if ever on its own.
    pub schedule: Option<ScheduleSpec>,
    /// Its own zone.
    pub zone: Option<Zone>,
    /// What happens after a stage fails.
    pub on_failure: PipelineFailure,
    /// Starts paused.
    pub paused: bool,
}

/// What a pipeline does when a stage fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PipelineFailure {
    /// Stop; later stages are recorded as cancelled (the default).
    #[default]
    Stop,
    /// Go on with the next stage.
    Continue,
}

/// Why a config could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file was read and has problems.
    #[error("{} problem{} in config file {}", diagnostics.len(), if diagnostics.len() == 1 { "" } else { "s" }, path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Its text.
        source_text: String,
        /// Every problem found.
        diagnostics: Vec<Diagnostic>,
    },
}

impl ConfigError {
    /// The problems in rustc style, ready for stderr.
    pub fn render(&self) -> String {
        match self {
            ConfigError::Read { .. } => {
                let mut s = format!("error: {self}");
                let mut src = std::error::Error::source(self);
                while let Some(e) = src {
                    s.push_str(&format!(": {e}"));
                    src = e.source();
                }
                s.push('\n');
                s
            }
            ConfigError::Invalid {
                path,
                source_text,
                diagnostics,
            } => {
                let mut s =
                    crate::diag::render(&path.display().to_string(), source_text, diagnostics);
                s.push_str(&format!("error: {self}\n"));
                s
            }
        }
    }
}

impl Config {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when it cannot be read, [`ConfigError::Invalid`] with every
    /// problem when it is not a valid config.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as the config file at `path` (relative paths inside it are
    /// resolved against `path`'s folder).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] with every problem found.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        let mut v = Validator {
            src: text,
            base,
            diags: Vec::new(),
        };
        let config = v.document(path);
        if let (true, Some(config)) = (v.diags.is_empty(), config) {
            return Ok(config);
        }
        let mut diagnostics = v.diags;
        diagnostics.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
        Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            source_text: text.to_string(),
            diagnostics,
        })
    }

    /// The job with this name.
    pub fn job(&self, name: &str) -> Option<&JobConfig> {
        self.jobs.iter().find(|j| j.name == name)
    }

    /// The private folder of the daemon's control socket.
    pub fn control_dir(&self) -> PathBuf {
        self.scheduler.store.control_dir(&self.path)
    }

    /// The zone `job` is evaluated in.
    pub fn zone_of<'a>(&'a self, zone: Option<&'a Zone>) -> &'a Zone {
        zone.unwrap_or(&self.scheduler.zone)
    }
}

type Sp = Range<usize>;
type Val<'i> = Spanned<DeValue<'i>>;

const SCHEDULER_KEYS: &[&str] = &[
    "zone",
    "workers",
    "store",
    "shutdown_grace",
    "kill_grace",
    "history_retention",
    "output_tail_bytes",
    "lease",
    "schema",
    "archive_after",
    "forget_nodes_after",
];
const JOB_KEYS: &[&str] = &[
    "name",
    "command",
    "working_dir",
    "env",
    "cron",
    "every",
    "at",
    "recurrence",
    "zone",
    "timeout",
    "retries",
    "retry_backoff",
    "retry_delay",
    "retry_max_delay",
    "overlap",
    "max_concurrent",
    "misfire",
    "misfire_grace",
    "depends_on",
    "paused",
];
const PIPELINE_KEYS: &[&str] = &[
    "name",
    "stages",
    "cron",
    "every",
    "at",
    "recurrence",
    "zone",
    "on_failure",
    "paused",
];
const RECURRENCE_KEYS: &[&str] = &["every", "at", "on", "until"];
const SCHEDULE_KEYS: &[&str] = &["cron", "every", "at", "recurrence"];

struct Validator<'s> {
    src: &'s str,
    base: PathBuf,
    diags: Vec<Diagnostic>,
}

/// The keys of a table with their spans, in file order.
fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a str, Sp, &'a Val<'i>)> {
    let mut v: Vec<_> = t
        .iter()
        .map(|(k, val)| (k.get_ref().as_ref(), k.span(), val))
        .collect();
    v.sort_by_key(|(_, sp, _)| sp.start);
    v
}

fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'s> Validator<'s> {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn wrong_type(&mut self, what: &str, expected: &str, v: &Val<'_>, help: Option<&str>) {
        let mut d = Diagnostic::new(
            format!(
                "{what} must be {expected}, found {}",
                type_name(v.get_ref())
            ),
            Some(v.span()),
        )
        .label(format!("expected {expected}"));
        if let Some(h) = help {
            d = d.help(h);
        }
        self.error(d);
    }

    fn unknown_key(&mut self, key: &str, sp: Sp, place: &str, allowed: &[&str]) {
        let mut d = Diagnostic::new(format!("unknown key `{key}` in {place}"), Some(sp))
            .label("unknown key");
        d = match did_you_mean(key, allowed) {
            Some(s) => d.help(format!("did you mean `{s}`?")),
            None => d.help(format!("the keys allowed here are: {}", allowed.join(", "))),
        };
        self.error(d);
    }

    fn document(&mut self, path: &Path) -> Option<Config> {
        let (root, errors) = DeTable::parse_recoverable(self.src);
        if !errors.is_empty() {
            for e in errors {
                let msg = e.message().trim().trim_end_matches('.').to_string();
                self.error(Diagnostic::new(
                    format!("invalid TOML: {}", first_line(&msg)),
                    e.span(),
                ));
            }
            return None;
        }
        let root = root.into_inner();
        let mut scheduler = None;
        let mut job_vals = Vec::new();
        let mut pipeline_vals = Vec::new();
        for (key, sp, val) in entries(&root) {
            match key {
                "scheduler" => match val.get_ref() {
                    DeValue::Table(t) => scheduler = Some(self.scheduler(t)),
                    _ => {
                        self.wrong_type("`scheduler`", "a table", val, Some("write `[scheduler]`"))
                    }
                },
                "job" => match val.get_ref() {
                    DeValue::Array(a) => job_vals.extend(a.iter()),
                    _ => self.wrong_type(
                        "`job`",
                        "an array of tables",
                        val,
                        Some("write each job as a `[[job]]` table"),
                    ),
                },
                "pipeline" => match val.get_ref() {
                    DeValue::Array(a) => pipeline_vals.extend(a.iter()),
                    _ => self.wrong_type(
                        "`pipeline`",
                        "an array of tables",
                        val,
                        Some("write each pipeline as a `[[pipeline]]` table"),
                    ),
                },
                _ => self.unknown_key(
                    key,
                    sp,
                    "the config file",
                    &["scheduler", "job", "pipeline"],
                ),
            }
        }
        let scheduler = scheduler.unwrap_or_else(|| self.scheduler(&DeTable::new()));

        let mut jobs = Vec::new();
        let mut items = Vec::new();
        for (i, jv) in job_vals.iter().enumerate() {
            match jv.get_ref() {
                DeValue::Table(t) => {
                    let (job, item) = self.job(t, jv.span(), i);
                    jobs.extend(job);
                    items.extend(item);
                }
                _ => self.wrong_type("a `job` entry", "a table", jv, None),
            }
        }
        let mut pipelines = Vec::new();
        for (i, pv) in pipeline_vals.iter().enumerate() {
            match pv.get_ref() {
                DeValue::Table(t) => {
                    let (p, item) = self.pipeline(t, pv.span(), i);
                    pipelines.extend(p);
                    items.extend(item);
                }
                _ => self.wrong_type("a `pipeline` entry", "a table", pv, None),
            }
        }
        self.cross_check(&items);
        if matches!(
            scheduler,
            Some(SchedulerConfig {
                store: StoreSpec::Postgres(_),
                ..
            })
        ) {
            self.cluster_check(&items, &jobs);
        }
        Some(Config {
            path: path.to_path_buf(),
            scheduler: scheduler?,
            jobs,
            pipelines,
        })
    }

    fn scheduler(&mut self, t: &DeTable<'_>) -> Option<SchedulerConfig> {
        let mut ok = true;
        let mut zone = Some(Zone {
            name: "UTC".into(),
            tz: TimeZone::UTC,
        });
        let mut workers = 4usize;
        let mut store = Some(StoreSpec::Sqlite(self.base.join(DEFAULT_STORE)));
        let mut shutdown_grace = SignedDuration::from_secs(30);
        let mut kill_grace = SignedDuration::from_secs(10);
        let mut history_retention = Some(SignedDuration::from_hours(24 * 30));
        // Where a `history_retention` duration is written (not `forever`).
        let mut retention_span: Option<Sp> = None;
        let mut output_tail_bytes = 16 * 1024;
        let mut lease = SignedDuration::from_secs(30);
        let mut archive_after = SignedDuration::from_hours(24 * 7);
        let mut forget_nodes_after = SignedDuration::from_hours(24);
        let mut schema = "myrmex".to_owned();
        for (key, sp, val) in entries(t) {
            match key {
                "zone" => zone = self.zone(val, "`scheduler.zone`"),
                "workers" => match self.integer(val, "`scheduler.workers`", 1, 1024) {
                    Some(n) => workers = n as usize,
                    None => ok = false,
                },
                "store" => store = self.store(val),
                "lease" => match self.duration(val, "`scheduler.lease`", false) {
                    Some(d) => lease = d,
                    None => ok = false,
                },
                "archive_after" => match self.duration(val, "`scheduler.archive_after`", true) {
                    Some(d) => archive_after = d,
                    None => ok = false,
                },
                "forget_nodes_after" => {
                    match self.duration(val, "`scheduler.forget_nodes_after`", false) {
                        Some(d) => forget_nodes_after = d,
                        None => ok = false,
                    }
                }
                "schema" => match self.string(val, "`scheduler.schema`") {
                    Some(s)
                        if !s.is_empty()
                            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                            && !s.starts_with(|c: char| c.is_ascii_digit()) =>
                    {
                        schema = s;
                    }
                    Some(s) => {
                        ok = false;
                        self.error(
                            Diagnostic::new(format!("invalid schema name `{s}`"), Some(val.span()))
                                .help("use letters, digits and `_`, not starting with a digit"),
                        );
                    }
                    None => ok = false,
                },
                "shutdown_grace" => match self.duration(val, "`scheduler.shutdown_grace`", true) {
                    Some(d) => shutdown_grace = d,
                    None => ok = false,
                },
                "kill_grace" => match self.duration(val, "`scheduler.kill_grace`", true) {
                    Some(d) => kill_grace = d,
                    None => ok = false,
                },
                "history_retention" => match val.get_ref() {
                    DeValue::String(s) if s == "forever" => history_retention = None,
                    _ => match self.duration(val, "`scheduler.history_retention`", false) {
                        Some(d) => {
                            history_retention = Some(d);
                            retention_span = Some(sp.clone());
                        }
                        None => ok = false,
                    },
                },
                "output_tail_bytes" => {
                    match self.integer(val, "`scheduler.output_tail_bytes`", 0, 16 << 20) {
                        Some(n) => output_tail_bytes = n as usize,
                        None => ok = false,
                    }
                }
                _ => {
                    ok = false;
                    self.unknown_key(key, sp, "`[scheduler]`", SCHEDULER_KEYS);
                }
            }
        }
        if let (Some(StoreSpec::Postgres(_)), Some(sp)) = (&store, retention_span) {
            // The cluster keeps every run: it only moves old ones to the history table.
            self.error(
                Diagnostic::new(
                    "`scheduler.history_retention` is not supported with a PostgreSQL store",
                    Some(sp),
                )
                .label("runs would be kept anyway")
                .help(
                    "with a `postgres://` store finished runs move to the history table after \
                     `archive_after` and are kept there; remove `history_retention` (or write \
                     \"forever\") and delete old rows of `sched_run_history` yourself if needed",
                ),
            );
        }
        let (zone, store) = (zone?, store?);
        ok.then_some(SchedulerConfig {
            zone,
            workers,
            store,
            shutdown_grace,
            kill_grace,
            history_retention,
            output_tail_bytes,
            lease,
            archive_after,
            forget_nodes_after,
            schema,
        })
    }

    fn store(&mut self, val: &Val<'_>) -> Option<StoreSpec> {
        let s = self.string(val, "`scheduler.store`")?;
        let help = "use a file path (SQLite), `sqlite:PATH`, `json:PATH` or `postgres://...`";
        let spec = if let Some(p) = s.strip_prefix("json:") {
            StoreSpec::Json(self.base.join(p))
        } else if let Some(p) = s.strip_prefix("sqlite:") {
            StoreSpec::Sqlite(self.base.join(p))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            StoreSpec::Postgres(s.clone())
        } else if s.contains("://") {
            self.error(
                Diagnostic::new(format!("unsupported store `{s}`"), Some(val.span()))
                    .label("unknown store kind")
                    .help(help),
            );
            return None;
        } else {
            StoreSpec::Sqlite(self.base.join(&s))
        };
        if let StoreSpec::Sqlite(p) | StoreSpec::Json(p) = &spec
            && (p.file_name().is_none() || s.ends_with('/'))
        {
            self.error(
                Diagnostic::new("the store must be a file, not a folder", Some(val.span()))
                    .help(help),
            );
            return None;
        }
        Some(spec)
    }

    fn job(
        &mut self,
        t: &DeTable<'_>,
        span: Sp,
        index: usize,
    ) -> (Option<JobConfig>, Option<Item>) {
        let errors_before = self.diags.len();
        let Some((name, name_span)) = self.name(t, span.clone(), "job", index) else {
            return (None, None);
        };
        let place = format!("job `{name}`");
        let mut item = Item {
            name: name.clone(),
            name_span,
            is_job: true,
            refs: Vec::new(),
        };
        let mut command = None;
        let mut working_dir = None;
        let mut env = BTreeMap::new();
        let mut zone = None;
        let mut timeout = None;
        let mut retry = RetrySpec::default();
        let mut overlap_kind: Option<(String, Sp)> = None;
        let mut max_concurrent: Option<(u32, Sp)> = None;
        let mut misfire = MisfireSpec::default();
        let mut depends_on = Vec::new();
        let mut paused = false;
        for (key, sp, val) in entries(t) {
            let what = format!("`{key}` of {place}");
            match key {
                "name" | "cron" | "every" | "at" | "recurrence" => {}
                "command" => command = self.command(val, &what),
                "working_dir" => {
                    working_dir = self.string(val, &what).map(|s| self.base.join(s));
                }
                "env" => match val.get_ref() {
                    DeValue::Table(et) => {
                        for (k, ksp, v) in entries(et) {
                            if k.is_empty() || k.contains('=') || k.contains('\0') {
                                self.error(
                                    Diagnostic::new(
                                        format!("invalid environment variable name `{k}`"),
                                        Some(ksp),
                                    )
                                    .help("names must be non-empty and contain no `=`"),
                                );
                            } else if k.starts_with("MYRMEX_") {
                                self.error(
                                    Diagnostic::new(
                                        format!("`{k}` is reserved for myrmex"),
                                        Some(ksp),
                                    )
                                    .help("myrmex sets MYRMEX_JOB, MYRMEX_RUN_ID, MYRMEX_SCHEDULED_AT and MYRMEX_ATTEMPT itself"),
                                );
                            }
                            let what = format!("`env.{k}` of {place}");
                            if let Some(s) = self.string(v, &what) {
                                env.insert(k.to_string(), s);
                            }
                        }
                    }
                    _ => self.wrong_type(
                        &what,
                        "a table",
                        val,
                        Some("write `env = { NAME = \"value\" }`"),
                    ),
                },
                "zone" => zone = self.zone(val, &what),
                "timeout" => timeout = self.duration(val, &what, false),
                "retries" => {
                    if let Some(n) = self.integer(val, &what, 0, 1000) {
                        retry.retries = n as u32;
                    }
                }
                "retry_backoff" => {
                    if let Some(s) = self.choice(val, &what, &["fixed", "exponential"]) {
                        retry.backoff = if s == "fixed" {
                            BackoffKind::Fixed
                        } else {
                            BackoffKind::Exponential
                        };
                    }
                }
                "retry_delay" => {
                    if let Some(d) = self.duration(val, &what, true) {
                        retry.delay = d;
                    }
                }
                "retry_max_delay" => retry.max_delay = self.duration(val, &what, false),
                "overlap" => {
                    overlap_kind = self
                        .choice(val, &what, &["skip", "queue", "allow"])
                        .map(|s| (s, val.span()));
                }
                "max_concurrent" => {
                    max_concurrent = self
                        .integer(val, &what, 1, 10_000)
                        .map(|n| (n as u32, val.span()));
                }
                "misfire" => {
                    misfire.policy = self
                        .choice(val, &what, &["run-once", "run-all", "skip"])
                        .map(|s| match s.as_str() {
                            "run-once" => MisfireKind::RunOnce,
                            "run-all" => MisfireKind::RunAll,
                            _ => MisfireKind::Skip,
                        });
                }
                "misfire_grace" => misfire.grace = self.duration(val, &what, true),
                "depends_on" => depends_on = self.depends_on(val, &what, &mut item),
                "paused" => paused = self.boolean(val, &what).unwrap_or(false),
                _ => self.unknown_key(key, sp, &place, JOB_KEYS),
            }
        }
        let overlap = match (
            overlap_kind.as_ref().map(|(k, _)| k.as_str()),
            max_concurrent,
        ) {
            (Some("allow"), Some((n, _))) => OverlapSpec::Allow(n),
            (Some("allow"), None) => OverlapSpec::Allow(u32::MAX),
            (_, Some((_, sp))) => {
                self.error(
                    Diagnostic::new(
                        format!("`max_concurrent` of {place} needs `overlap = \"allow\"`"),
                        Some(sp),
                    )
                    .help("add `overlap = \"allow\"`, or remove `max_concurrent`"),
                );
                OverlapSpec::Skip
            }
            (Some("queue"), None) => OverlapSpec::Queue,
            _ => OverlapSpec::Skip,
        };
        let schedule = self.schedule(t, &place);
        if command.is_none() && !t.contains_key("command") {
            self.error(
                Diagnostic::new(
                    format!("{place} has no `command`"),
                    Some(item.name_span.clone()),
                )
                .help(
                    "add `command = \"...\"` (run by `sh -c`) or `command = [\"prog\", \"arg\"]`",
                ),
            );
        }
        let (Some(command), Some(schedule)) = (command, schedule) else {
            return (None, Some(item));
        };
        if self.diags.len() > errors_before {
            return (None, Some(item));
        }
        let job = JobConfig {
            name,
            command,
            working_dir,
            env,
            schedule,
            zone,
            timeout,
            retry,
            overlap,
            misfire,
            depends_on,
            paused,
        };
        (Some(job), Some(item))
    }

    fn pipeline(
        &mut self,
        t: &DeTable<'_>,
        span: Sp,
        index: usize,
    ) -> (Option<PipelineConfig>, Option<Item>) {
        let errors_before = self.diags.len();
        let Some((name, name_span)) = self.name(t, span, "pipeline", index) else {
            return (None, None);
        };
        let place = format!("pipeline `{name}`");
        let mut item = Item {
            name: name.clone(),
            name_span: name_span.clone(),
            is_job: false,
            refs: Vec::new(),
        };
        let mut stages = None;
        let mut zone = None;
        let mut on_failure = PipelineFailure::Stop;
        let mut paused = false;
        for (key, sp, val) in entries(t) {
            let what = format!("`{key}` of {place}");
            match key {
                "name" | "cron" | "every" | "at" | "recurrence" => {}
                "stages" => stages = self.stages(val, &what, &mut item),
                "zone" => zone = self.zone(val, &what),
                "on_failure" => {
                    if let Some(s) = self.choice(val, &what, &["stop", "continue"]) {
                        on_failure = if s == "stop" {
                            PipelineFailure::Stop
                        } else {
                            PipelineFailure::Continue
                        };
                    }
                }
                "paused" => paused = self.boolean(val, &what).unwrap_or(false),
                _ => self.unknown_key(key, sp, &place, PIPELINE_KEYS),
            }
        }
        if !t.contains_key("stages") {
            self.error(
                Diagnostic::new(format!("{place} has no `stages`"), Some(name_span))
                    .help("add `stages = [[\"job-a\", \"job-b\"], [\"job-c\"]]`"),
            );
        }
        let schedule = self.schedule(t, &place);
        let (Some(stages), Some(schedule)) = (stages, schedule) else {
            return (None, Some(item));
        };
        if self.diags.len() > errors_before {
            return (None, Some(item));
        }
        let pipeline = PipelineConfig {
            name,
            stages,
            schedule,
            zone,
            on_failure,
            paused,
        };
        (Some(pipeline), Some(item))
    }

    /// The `name` of the `index`th job/pipeline.
    fn name(
        &mut self,
        t: &DeTable<'_>,
        span: Sp,
        kind: &str,
        index: usize,
    ) -> Option<(String, Sp)> {
        let Some(val) = t.get("name") else {
            self.error(
                Diagnostic::new(format!("{kind} #{} has no `name`", index + 1), Some(span))
                    .help(format!("add `name = \"...\"` to this `[[{kind}]]`")),
            );
            return None;
        };
        let name = self.string(val, &format!("the name of {kind} #{}", index + 1))?;
        let valid = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid {
            self.error(
                Diagnostic::new(format!("invalid {kind} name `{name}`"), Some(val.span()))
                    .label("not a valid name")
                    .help("names are 1 to 128 characters among letters, digits, `-`, `_` and `.`"),
            );
            return None;
        }
        Some((name, val.span()))
    }

    fn command(&mut self, val: &Val<'_>, what: &str) -> Option<CommandSpec> {
        match val.get_ref() {
            DeValue::String(s) if s.trim().is_empty() => {
                self.error(Diagnostic::new(
                    format!("{what} is empty"),
                    Some(val.span()),
                ));
                None
            }
            DeValue::String(s) => Some(CommandSpec::Shell(s.to_string())),
            DeValue::Array(a) => {
                let mut argv = Vec::new();
                for item in a.iter() {
                    argv.push(self.string(item, &format!("each argument of {what}"))?);
                }
                if argv.is_empty() || argv[0].is_empty() {
                    self.error(
                        Diagnostic::new(format!("{what} has no program"), Some(val.span()))
                            .help("the first element is the program to run"),
                    );
                    return None;
                }
                Some(CommandSpec::Argv(argv))
            }
            _ => {
                self.wrong_type(
                    what,
                    "a string or an array of strings",
                    val,
                    Some("a string runs through `sh -c`; an array is run as program and arguments"),
                );
                None
            }
        }
    }

    fn depends_on(&mut self, val: &Val<'_>, what: &str, item: &mut Item) -> Vec<Dependency> {
        let DeValue::Array(a) = val.get_ref() else {
            self.wrong_type(
                what,
                "an array",
                val,
                Some("write `depends_on = [\"other-job\"]`"),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        let refs = &mut item.refs;
        for entry in a.iter() {
            match entry.get_ref() {
                DeValue::String(s) => {
                    refs.push((s.to_string(), entry.span()));
                    out.push(Dependency {
                        name: s.to_string(),
                        require: Requirement::Success,
                    });
                }
                DeValue::Table(dt) => {
                    let mut name = None;
                    let mut require = Requirement::Success;
                    for (k, ksp, v) in entries(dt) {
                        match k {
                            "job" => {
                                name = self
                                    .string(v, "`job` of a dependency")
                                    .map(|n| (n, v.span()))
                            }
                            "require" => {
                                if let Some(r) = self.choice(
                                    v,
                                    "`require` of a dependency",
                                    &["success", "completion"],
                                ) {
                                    require = if r == "success" {
                                        Requirement::Success
                                    } else {
                                        Requirement::Completion
                                    };
                                }
                            }
                            _ => self.unknown_key(k, ksp, "a dependency", &["job", "require"]),
                        }
                    }
                    match name {
                        Some((name, sp)) => {
                            refs.push((name.clone(), sp));
                            out.push(Dependency { name, require });
                        }
                        None if !dt.contains_key("job") => self.error(
                            Diagnostic::new("a dependency has no `job`", Some(entry.span()))
                                .help("write `{ job = \"other-job\", require = \"completion\" }`"),
                        ),
                        None => {}
                    }
                }
                _ => self.wrong_type(
                    &format!("each entry of {what}"),
                    "a job name or a table",
                    entry,
                    None,
                ),
            }
        }
        out
    }

    fn stages(&mut self, val: &Val<'_>, what: &str, item: &mut Item) -> Option<Vec<Vec<String>>> {
        let DeValue::Array(a) = val.get_ref() else {
            self.wrong_type(
                what,
                "an array",
                val,
                Some("write `stages = [[\"a\", \"b\"], [\"c\"]]`"),
            );
            return None;
        };
        if a.is_empty() {
            self.error(Diagnostic::new(
                format!("{what} is empty"),
                Some(val.span()),
            ));
            return None;
        }
        let mut stages = Vec::new();
        for stage in a.iter() {
            let mut names = Vec::new();
            match stage.get_ref() {
                DeValue::String(s) => {
                    item.refs.push((s.to_string(), stage.span()));
                    names.push(s.to_string());
                }
                DeValue::Array(items) if !items.is_empty() => {
                    for entry in items.iter() {
                        if let Some(s) = self.string(entry, &format!("each job of {what}")) {
                            item.refs.push((s.clone(), entry.span()));
                            names.push(s);
                        }
                    }
                }
                DeValue::Array(_) => {
                    self.error(Diagnostic::new("a stage is empty", Some(stage.span())));
                }
                _ => self.wrong_type(
                    &format!("each stage of {what}"),
                    "a job name or an array of job names",
                    stage,
                    None,
                ),
            }
            stages.push(names);
        }
        Some(stages)
    }

    /// The schedule keys of a job or pipeline: at most one of them.
    fn schedule(&mut self, t: &DeTable<'_>, place: &str) -> Option<Option<ScheduleSpec>> {
        let present: Vec<(&str, Sp, &Val<'_>)> = entries(t)
            .into_iter()
            .filter(|(k, _, _)| SCHEDULE_KEYS.contains(k))
            .collect();
        if present.len() > 1 {
            let names: Vec<String> = present.iter().map(|(k, _, _)| format!("`{k}`")).collect();
            self.error(
                Diagnostic::new(
                    format!("{place} has more than one schedule ({})", names.join(", ")),
                    Some(present[1].1.clone()),
                )
                .label("second schedule")
                .help("keep one of `cron`, `every`, `at` and `recurrence`"),
            );
            return None;
        }
        let Some((key, _, val)) = present.first() else {
            return Some(None);
        };
        let what = format!("`{key}` of {place}");
        let spec = match *key {
            "cron" => {
                let expr = self.string(val, &what)?;
                match myrmex_cron::Cron::parse(&expr) {
                    Ok(cron) => ScheduleSpec::Cron { expr, cron },
                    Err(e) => {
                        let sp = self.inner_span(val, &expr, cron_error_range(&e, &expr));
                        self.error(
                            Diagnostic::new(format!("invalid cron expression in {place}: {e}"), Some(sp))
                                .label("invalid here")
                                .help("see `myrmex cron next --help`; e.g. `*/5 * * * *` is every five minutes"),
                        );
                        return None;
                    }
                }
            }
            "every" => ScheduleSpec::Every(self.duration(val, &what, false)?),
            "at" => ScheduleSpec::At(self.at(val, &what)?),
            _ => ScheduleSpec::Recurrence(self.recurrence(val, &what)?),
        };
        Some(Some(spec))
    }

    fn at(&mut self, val: &Val<'_>, what: &str) -> Option<AtSpec> {
        let s = self.string_or_datetime(val, what)?;
        if let Ok(ts) = s.parse::<Timestamp>() {
            return Some(AtSpec::Instant(ts));
        }
        if let Ok(dt) = s.parse::<DateTime>() {
            return Some(AtSpec::Civil(dt));
        }
        if let Ok(t) = s.parse::<Time>() {
            return Some(AtSpec::Daily(t));
        }
        self.error(
            Diagnostic::new(format!("invalid time in {what}: `{s}`"), Some(val.span()))
                .label("not a time")
                .help("write `2026-12-24T18:00:00Z` (an instant), `2026-12-24T18:00:00` (in the job's zone) or `09:30` (every day)"),
        );
        None
    }

    fn recurrence(&mut self, val: &Val<'_>, what: &str) -> Option<RecurrenceSpec> {
        let DeValue::Table(t) = val.get_ref() else {
            self.wrong_type(
                what,
                "a table",
                val,
                Some("write `recurrence = { every = \"1 week\", on = [\"mon\"], at = \"09:00\" }`"),
            );
            return None;
        };
        let before = self.diags.len();
        let mut every = None;
        let mut at = Vec::new();
        let mut on = Vec::new();
        let mut until = None;
        for (k, ksp, v) in entries(t) {
            let what = format!("`recurrence.{k}`");
            match k {
                "every" => every = self.recurrence_every(v, &what),
                "at" => {
                    let items: Vec<&Val<'_>> = match v.get_ref() {
                        DeValue::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    for item in items {
                        if let Some(s) = self.string(item, &what) {
                            match s.parse::<Time>() {
                                Ok(t) => at.push(t),
                                Err(_) => self.error(
                                    Diagnostic::new(
                                        format!("invalid time of day `{s}` in {what}"),
                                        Some(item.span()),
                                    )
                                    .help("write `HH:MM` or `HH:MM:SS`, e.g. `09:30`"),
                                ),
                            }
                        }
                    }
                }
                "on" => {
                    let items: Vec<&Val<'_>> = match v.get_ref() {
                        DeValue::Array(a) => a.iter().collect(),
                        _ => vec![v],
                    };
                    for item in items {
                        if let Some(s) = self.string(item, &what) {
                            match parse_weekday(&s) {
                                Some(d) => on.push(d),
                                None => self.error(
                                    Diagnostic::new(
                                        format!("unknown weekday `{s}` in {what}"),
                                        Some(item.span()),
                                    )
                                    .help("use `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`"),
                                ),
                            }
                        }
                    }
                }
                "until" => {
                    if let Some(text) = self.string_or_datetime(v, &what) {
                        match text.parse::<Date>() {
                            Ok(d) => until = Some(d),
                            Err(_) => self.error(
                                Diagnostic::new(
                                    format!("invalid date in {what}: `{text}`"),
                                    Some(v.span()),
                                )
                                .help(
                                    "write a date such as `2027-06-30` (the last day it may fire)",
                                ),
                            ),
                        }
                    }
                }
                _ => self.unknown_key(k, ksp, "`recurrence`", RECURRENCE_KEYS),
            }
        }
        if !t.contains_key("every") {
            self.error(
                Diagnostic::new(format!("{what} has no `every`"), Some(val.span()))
                    .help("add `every = \"1 day\"` (or seconds, minutes, hours, days, weeks)"),
            );
        }
        let (interval, unit) = every?;
        if !at.is_empty() && !matches!(unit, RecurrenceUnit::Day | RecurrenceUnit::Week) {
            self.error(
                Diagnostic::new(
                    format!("{what}: `at` needs a unit of days or weeks"),
                    Some(val.span()),
                )
                .help("remove `at`, or use `every = \"1 day\"`"),
            );
        }
        if self.diags.len() > before {
            return None;
        }
        Some(RecurrenceSpec {
            interval,
            unit,
            at,
            on,
            until,
        })
    }

    fn recurrence_every(&mut self, v: &Val<'_>, what: &str) -> Option<(u32, RecurrenceUnit)> {
        let s = self.string(v, what)?;
        let help = "write one count and one unit, e.g. `2 days`, `1 week`, `90 minutes`";
        let Ok(span) = s.parse::<Span>() else {
            self.error(
                Diagnostic::new(format!("invalid {what}: `{s}`"), Some(v.span())).help(help),
            );
            return None;
        };
        let parts = [
            (span.get_weeks() as i64, RecurrenceUnit::Week),
            (span.get_days() as i64, RecurrenceUnit::Day),
            (span.get_hours() as i64, RecurrenceUnit::Hour),
            (span.get_minutes(), RecurrenceUnit::Minute),
            (span.get_seconds(), RecurrenceUnit::Second),
        ];
        let nonzero: Vec<_> = parts.iter().filter(|(n, _)| *n != 0).collect();
        let others = span.get_years() != 0
            || span.get_months() != 0
            || span.get_milliseconds() != 0
            || span.get_microseconds() != 0
            || span.get_nanoseconds() != 0;
        match nonzero.as_slice() {
            [(n, unit)] if !others => match u32::try_from(*n) {
                Ok(n) if n > 0 => Some((n, *unit)),
                _ => {
                    self.error(
                        Diagnostic::new(format!("invalid {what}: `{s}`"), Some(v.span()))
                            .help(help),
                    );
                    None
                }
            },
            _ => {
                self.error(
                    Diagnostic::new(format!("invalid {what}: `{s}`"), Some(v.span())).help(help),
                );
                None
            }
        }
    }

    /// What a PostgreSQL store (cluster mode) cannot run: `depends_on` other than
    /// the one form the cluster's `after` trigger expresses (a job without a
    /// schedule of its own, after each success of one other job); refused where it
    /// is written. Pipelines map to the cluster's pipelines.
    fn cluster_check(&mut self, items: &[Item], jobs: &[JobConfig]) {
        let help = "with a `postgres://` store a job may only depend on one other job, \
                    without a schedule of its own and with the default `require = \"success\"` \
                    (it then runs after each successful run of that job); \
                    use a pipeline, or an SQLite or JSON store, for other dependencies";
        for item in items {
            if item.is_job {
                let Some((dep, sp)) = item.refs.first() else {
                    continue;
                };
                let dep_is_job = items.iter().any(|i| i.is_job && &i.name == dep);
                let after = jobs.iter().find(|j| j.name == item.name).is_some_and(|j| {
                    j.schedule.is_none()
                        && j.depends_on.len() == 1
                        && j.depends_on[0].require == Requirement::Success
                });
                if !(after && dep_is_job && item.refs.len() == 1) {
                    self.error(
                        Diagnostic::new(
                            format!(
                                "job `{}` depends on `{dep}`: this `depends_on` is not supported with a PostgreSQL store",
                                item.name
                            ),
                            Some(sp.clone()),
                        )
                        .help(help),
                    );
                }
            }
        }
    }

    /// Cross-item checks over every named job and pipeline, even those with other
    /// problems: duplicate names, unknown and cyclic dependencies, stage jobs.
    fn cross_check(&mut self, items: &[Item]) {
        let mut seen: HashMap<&str, &Item> = HashMap::new();
        for item in items {
            if let Some(first) = seen.get(item.name.as_str()) {
                let (line, _) = crate::diag::line_col(self.src, first.name_span.start);
                self.error(
                    Diagnostic::new(
                        format!("duplicate name `{}`", item.name),
                        Some(item.name_span.clone()),
                    )
                    .label("used again here")
                    .help(format!(
                        "the first `{}` is on line {line}; jobs and pipelines need different names",
                        item.name
                    )),
                );
            } else {
                seen.insert(&item.name, item);
            }
        }
        let mut all_names: Vec<&str> = seen.keys().copied().collect();
        all_names.sort_unstable();
        let job_names: Vec<&str> = all_names
            .iter()
            .copied()
            .filter(|n| seen[n].is_job)
            .collect();
        // The dependency graph: a job on what it depends on, a pipeline on its stage jobs.
        let mut edges: BTreeMap<&str, Vec<(&str, Sp)>> = BTreeMap::new();
        for item in items {
            for (dep, sp) in &item.refs {
                let (what, candidates, label) = if item.is_job {
                    ("job", &all_names, "no job or pipeline has this name")
                } else {
                    ("pipeline", &job_names, "no job has this name")
                };
                if item.is_job && *dep == item.name {
                    self.error(
                        Diagnostic::new(
                            format!("job `{}` depends on itself", item.name),
                            Some(sp.clone()),
                        )
                        .help("remove it from `depends_on`"),
                    );
                } else if !candidates.contains(&dep.as_str()) {
                    let message = if item.is_job {
                        format!("job `{}` depends on unknown job `{dep}`", item.name)
                    } else {
                        format!(
                            "pipeline `{}` has unknown job `{dep}` in a stage",
                            item.name
                        )
                    };
                    let mut d = Diagnostic::new(message, Some(sp.clone())).label(label);
                    if let Some(s) = did_you_mean(dep, candidates) {
                        d = d.help(format!("did you mean `{s}`?"));
                    } else {
                        d = d.help(format!(
                            "define a `[[job]]` named `{dep}`, or remove it from this {what}"
                        ));
                    }
                    self.error(d);
                } else {
                    edges.entry(&item.name).or_default().push((dep, sp.clone()));
                }
            }
        }
        for (cycle, sp) in find_cycles(&edges) {
            self.error(
                Diagnostic::new(
                    format!("dependency cycle: {}", cycle.join(" -> ")),
                    Some(sp),
                )
                .label("closes the cycle")
                .help("remove one of these dependencies"),
            );
        }
    }

    fn string(&mut self, val: &Val<'_>, what: &str) -> Option<String> {
        match val.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            _ => {
                self.wrong_type(what, "a string", val, None);
                None
            }
        }
    }

    fn string_or_datetime(&mut self, val: &Val<'_>, what: &str) -> Option<String> {
        match val.get_ref() {
            DeValue::Datetime(d) => Some(d.to_string().replace(' ', "T")),
            _ => self.string(val, what),
        }
    }

    fn boolean(&mut self, val: &Val<'_>, what: &str) -> Option<bool> {
        match val.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(what, "a boolean", val, Some("write `true` or `false`"));
                None
            }
        }
    }

    fn integer(&mut self, val: &Val<'_>, what: &str, min: i64, max: i64) -> Option<i64> {
        let parsed = match val.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            _ => {
                self.wrong_type(what, "an integer", val, None);
                return None;
            }
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Some(n),
            _ => {
                self.error(
                    Diagnostic::new(format!("{what} is out of range"), Some(val.span()))
                        .help(format!("it must be between {min} and {max}")),
                );
                None
            }
        }
    }

    fn choice(&mut self, val: &Val<'_>, what: &str, options: &[&str]) -> Option<String> {
        let s = self.string(val, what)?;
        if options.contains(&s.as_str()) {
            return Some(s);
        }
        let quoted: Vec<String> = options.iter().map(|o| format!("`\"{o}\"`")).collect();
        let mut d = Diagnostic::new(format!("unknown value `{s}` for {what}"), Some(val.span()))
            .label("unknown value");
        d = match did_you_mean(&s, options) {
            Some(o) => d.help(format!("did you mean `\"{o}\"`?")),
            None => d.help(format!("expected one of {}", quoted.join(", "))),
        };
        self.error(d);
        None
    }

    fn zone(&mut self, val: &Val<'_>, what: &str) -> Option<Zone> {
        let name = self.string(val, what)?;
        match TimeZone::get(&name) {
            Ok(tz) => Some(Zone { name, tz }),
            Err(_) => {
                self.error(
                    Diagnostic::new(
                        format!("unknown time zone `{name}` in {what}"),
                        Some(val.span()),
                    )
                    .label("not in the time zone database")
                    .help("use an IANA name such as `Europe/Paris`, `America/New_York` or `UTC`"),
                );
                None
            }
        }
    }

    /// A positive (or, with `zero_ok`, non-negative) absolute duration like `15m`.
    fn duration(&mut self, val: &Val<'_>, what: &str, zero_ok: bool) -> Option<SignedDuration> {
        let help = "write a duration such as `30s`, `15m`, `1h 30m` or `2 days`";
        let s = match val.get_ref() {
            DeValue::String(s) => s.to_string(),
            DeValue::Integer(_) => {
                self.wrong_type(
                    what,
                    "a duration string",
                    val,
                    Some(&format!("{help}; a bare number has no unit")),
                );
                return None;
            }
            _ => {
                self.wrong_type(what, "a duration string", val, Some(help));
                return None;
            }
        };
        let parsed = s
            .parse::<Span>()
            .ok()
            .and_then(|sp| sp.to_duration(SpanRelativeTo::days_are_24_hours()).ok());
        match parsed {
            Some(d) if d.is_positive() || (zero_ok && d.is_zero()) => Some(d),
            Some(_) => {
                self.error(
                    Diagnostic::new(
                        format!(
                            "{what} must be {}",
                            if zero_ok {
                                "zero or more"
                            } else {
                                "more than zero"
                            }
                        ),
                        Some(val.span()),
                    )
                    .help(help),
                );
                None
            }
            None => {
                self.error(
                    Diagnostic::new(
                        format!("invalid duration `{s}` for {what}"),
                        Some(val.span()),
                    )
                    .label("not a duration")
                    .help(format!(
                        "{help} (months and years have no fixed length; use a `cron` schedule)"
                    )),
                );
                None
            }
        }
    }

    /// The span of bytes `inner` of the string value `val` (whose decoded text is
    /// `text`) in the file, when the raw text maps one to one; else the whole value.
    fn inner_span(&self, val: &Val<'_>, text: &str, inner: Option<Range<usize>>) -> Sp {
        let whole = val.span();
        let Some(inner) = inner else { return whole };
        let raw = &self.src[whole.clone()];
        let quote_len = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
            3
        } else {
            1
        };
        if raw.len() < 2 * quote_len || &raw[quote_len..raw.len() - quote_len] != text {
            return whole;
        }
        let start = whole.start + quote_len + inner.start.min(text.len());
        let end = whole.start + quote_len + inner.end.min(text.len());
        start..end.max(start + 1).min(whole.end)
    }
}

/// Where in the expression a cron parse error points.
fn cron_error_range(e: &myrmex_cron::ParseError, expr: &str) -> Option<Range<usize>> {
    let sp = e.span();
    (sp.end <= expr.len()).then_some(sp)
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    let d = match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    };
    Some(d)
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// What cross-item checks need of a job or pipeline.
#[derive(Clone, Debug)]
struct Item {
    name: String,
    name_span: Sp,
    is_job: bool,
    /// The `depends_on` entries (jobs) or stage jobs (pipelines), with their spans.
    refs: Vec<(String, Sp)>,
}

/// Every elementary cycle found by a depth-first search, once each, as the path of
/// names (first name repeated at the end) and the span of the edge that closes it.
fn find_cycles<'a>(edges: &BTreeMap<&'a str, Vec<(&'a str, Sp)>>) -> Vec<(Vec<&'a str>, Sp)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<(&'a str, Sp)>>,
        marks: &mut HashMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
        out: &mut Vec<(Vec<&'a str>, Sp)>,
    ) {
        marks.insert(node, Mark::Active);
        stack.push(node);
        for (next, sp) in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
            match marks.get(next).copied().unwrap_or(Mark::New) {
                Mark::New => visit(next, edges, marks, stack, out),
                Mark::Active => {
                    let from = stack.iter().position(|n| n == next).unwrap_or(0);
                    let mut path: Vec<&str> = stack[from..].to_vec();
                    path.push(next);
                    out.push((path, sp.clone()));
                }
                Mark::Done => {}
            }
        }
        stack.pop();
        marks.insert(node, Mark::Done);
    }
    let mut marks = HashMap::new();
    let mut out = Vec::new();
    for node in edges.keys() {
        if marks.get(node).copied().unwrap_or(Mark::New) == Mark::New {
            visit(node, edges, &mut marks, &mut Vec::new(), &mut out);
        }
    }
    out
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
