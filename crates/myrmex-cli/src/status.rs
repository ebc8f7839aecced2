//! `myrmex status` and `myrmex history [JOB]`: reading the state store, as tables or
//! JSON. They work whether or not the daemon runs.

use std::path::Path;

use jiff::Timestamp;
use myrmex_store::{JobRecord, RunFilter, RunRecord, RunState, Store};

use crate::config::{Config, StoreSpec};
use crate::exit_codes;

/// How to print.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns.
    Table,
    /// One JSON document.
    Json,
}

/// Opens the store of the config at `path` for reading; prints the problem and
/// returns the exit code on failure.
fn open(path: &Path) -> Result<(Config, crate::state::SharedStore), u8> {
    let config = Config::load(path).map_err(|e| {
        eprint!("{}", e.render());
        exit_codes::INVALID_INPUT
    })?;
    if let StoreSpec::Sqlite(p) | StoreSpec::Json(p) = &config.scheduler.store
        && !p.exists()
    {
        eprintln!(
            "error: no state store at {} (the daemon has not run with this config yet)",
            p.display()
        );
        return Err(exit_codes::STORE);
    }
    match crate::state::open(&config.scheduler.store) {
        Ok(s) => Ok((config, s)),
        Err(e) => {
            eprintln!(
                "error: cannot open the state store {}: {}",
                config.scheduler.store,
                crate::error_chain(&e)
            );
            Err(exit_codes::STORE)
        }
    }
}

/// `myrmex status`: every job with its schedule, last run and outcome, next fire and
/// state.
pub fn status(path: &Path, format: Format) -> u8 {
    if let Ok(c) = Config::load(path)
        && let StoreSpec::Postgres(url) = &c.scheduler.store
    {
        return crate::cluster_status::status(&c, url, format);
    }
    let (config, store) = match open(path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let result = (|| -> Result<Vec<JobRow>, myrmex_store::StoreError> {
        let mut rows = Vec::new();
        for job in store.list_jobs()? {
            let runs = store.list_runs(&RunFilter::job(job.id.0.clone()))?;
            rows.push(JobRow::new(&config, &job, &runs));
        }
        Ok(rows)
    })();
    let _ = store.close();
    let rows = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: reading the state store failed: {}",
                crate::error_chain(&e)
            );
            return exit_codes::STORE;
        }
    };
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        ),
        Format::Table => {
            let mut t = Table::new(&[
                "JOB",
                "STATE",
                "SCHEDULE",
                "LAST RUN",
                "OUTCOME",
                "NEXT FIRE",
                "RUNS",
            ]);
            for r in &rows {
                t.row(vec![
                    r.job.clone(),
                    r.state.clone(),
                    r.schedule.clone(),
                    r.last_run.map_or("-".into(), |t| t.to_string()),
                    r.last_outcome.clone().unwrap_or_else(|| "-".into()),
                    r.next_fire.map_or("-".into(), |t| t.to_string()),
                    r.runs.to_string(),
                ]);
            }
            print!("{}", t.render());
        }
    }
    exit_codes::OK
}

/// One line of `status`.
#[derive(Debug, serde::Serialize)]
struct JobRow {
    job: String,
    /// `scheduled`, `paused`, `running`, `completed`, `failed` or `removed` (no longer
    /// in the config).
    state: String,
    schedule: String,
    last_run: Option<Timestamp>,
    last_outcome: Option<String>,
    next_fire: Option<Timestamp>,
    runs: u64,
    running: usize,
}

impl JobRow {
    fn new(config: &Config, job: &JobRecord, runs: &[RunRecord]) -> JobRow {
        let name = job.id.0.clone();
        let pipeline = config.pipelines.iter().find(|p| p.name == name);
        let in_config = config.job(&name).map(|j| (&j.schedule, &j.zone));
        let in_config = in_config.or_else(|| pipeline.map(|p| (&p.schedule, &p.zone)));
        let schedule = match in_config {
            Some((schedule, zone)) => crate::check::describe_schedule(
                schedule.as_ref(),
                &config.zone_of(zone.as_ref()).name,
            ),
            None => "-".into(),
        };
        let running = runs.iter().filter(|r| r.state == RunState::Running).count();
        let last = runs
            .iter()
            .filter(|r| r.state.is_terminal() || r.state == RunState::RetryWait)
            .max_by_key(|r| (r.finished_at, r.key.scheduled_at));
        let state = if in_config.is_none() {
            "removed"
        } else if job.state.paused {
            "paused"
        } else if running > 0 {
            "running"
        } else {
            match job.state.status {
                myrmex_store::JobStatus::Completed => "completed",
                myrmex_store::JobStatus::Failed => "failed",
                myrmex_store::JobStatus::Cancelled => "removed",
                _ => "scheduled",
            }
        };
        JobRow {
            job: name,
            state: state.into(),
            schedule,
            last_run: last.map(|r| r.key.scheduled_at),
            last_outcome: last.map(|r| {
                let mut s = r.state.to_string();
                if let Some(e) = &r.error {
                    s.push_str(": ");
                    s.push_str(e);
                }
                s
            }),
            next_fire: job.state.watermark,
            runs: runs.len() as u64,
            running,
        }
    }
}

/// `myrmex history [JOB]`: the last `limit` runs, oldest first.
pub fn history(path: &Path, job: Option<&str>, limit: usize, format: Format) -> u8 {
    if let Ok(c) = Config::load(path)
        && let StoreSpec::Postgres(url) = &c.scheduler.store
    {
        return crate::cluster_status::history(&c, url, job, limit, format);
    }
    let (_, store) = match open(path) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let filter = match job {
        Some(j) => RunFilter::job(j.to_string()),
        None => RunFilter::all(),
    };
    let result = store.list_runs(&filter);
    let _ = store.close();
    let mut runs = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: reading the state store failed: {}",
                crate::error_chain(&e)
            );
            return exit_codes::STORE;
        }
    };
    if let Some(j) = job
        && runs.is_empty()
    {
        eprintln!("error: no runs recorded for job `{j}`");
        return exit_codes::INVALID_INPUT;
    }
    runs.sort_by_key(|r| (r.key.scheduled_at, r.id));
    let runs = &runs[runs.len().saturating_sub(limit)..];
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(runs).unwrap_or_default()),
        Format::Table => {
            let mut t = Table::new(&["RUN", "STATE", "ATTEMPTS", "STARTED", "DURATION", "DETAIL"]);
            for r in runs {
                let duration = match (r.started_at, r.finished_at) {
                    (Some(s), Some(f)) => format!("{:.3}s", f.duration_since(s).as_secs_f64()),
                    _ => "-".into(),
                };
                let detail = r
                    .result
                    .as_ref()
                    .and_then(|v| v.get("outcome"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
                    .or_else(|| r.error.clone())
                    .unwrap_or_default();
                t.row(vec![
                    crate::runner::run_id(&r.key.job.0, r.key.scheduled_at),
                    r.state.to_string(),
                    r.attempt.0.to_string(),
                    r.started_at.map_or("-".into(), |t| t.to_string()),
                    duration,
                    detail,
                ]);
            }
            print!("{}", t.render());
        }
    }
    exit_codes::OK
}

/// Left-aligned columns separated by two spaces.
struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| (*h).to_string()).collect()],
        }
    }

    fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn render(&self) -> String {
        let cols = self.rows[0].len();
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == cols {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["JOB", "STATE"]);
        t.row(vec!["backup".into(), "paused".into()]);
        t.row(vec!["a".into(), "scheduled".into()]);
        assert_eq!(
            t.render(),
            "JOB     STATE\nbackup  paused\na       scheduled\n"
        );
    }
}
