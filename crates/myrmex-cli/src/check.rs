//! `myrmex check [CONFIG]`: validate, then show what would run when.

use std::path::Path;

use jiff::Timestamp;

use crate::config::{AtSpec, Config, JobConfig, RecurrenceUnit, ScheduleSpec, StoreSpec, Zone};
use crate::exit_codes;

/// Validates `path` and prints every job and pipeline with its schedule and its next
/// `count` fire times. Returns the exit code.
pub fn run(path: &Path, count: usize) -> u8 {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprint!("{}", e.render());
            return exit_codes::INVALID_INPUT;
        }
    };
    print!("{}", report(&config, count, Timestamp::now()));
    exit_codes::OK
}

/// The text `check` prints for a valid config: every job and pipeline with its
/// schedule in English and its next `count` fire times after `now`.
pub fn report(config: &Config, count: usize, now: Timestamp) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{}: ok, {} job{}, {} pipeline{}; zone {}, store {}\n",
        config.path.display(),
        config.jobs.len(),
        plural(config.jobs.len()),
        config.pipelines.len(),
        plural(config.pipelines.len()),
        config.scheduler.zone.name,
        shown_store(&config.scheduler.store),
    ));
    for job in &config.jobs {
        out.push('\n');
        out.push_str(&job_report(config, job, count, now));
    }
    for p in &config.pipelines {
        out.push('\n');
        out.push_str(&format!("pipeline {}\n", p.name));
        for (i, stage) in p.stages.iter().enumerate() {
            out.push_str(&format!("  stage {}: {}\n", i + 1, stage.join(", ")));
        }
        let zone = config.zone_of(p.zone.as_ref());
        out.push_str(&format!(
            "  schedule: {}\n",
            describe_schedule(p.schedule.as_ref(), &zone.name)
        ));
        let cluster = cluster_trigger(config, || crate::cluster::pipeline_spec(config, p));
        out.push_str(&fires(
            &p.name,
            p.schedule.as_ref(),
            zone,
            count,
            now,
            cluster,
        ));
    }
    out
}

/// With a PostgreSQL store, the trigger the cluster writes for a schedule (the
/// daemon's own mapping, [`crate::cluster::job_spec`]), so `check` shows the times
/// the cluster will fire at: intervals on the Unix epoch grid, recurrences on
/// pinned anchors. `None` for the in-process stores.
fn cluster_trigger(
    config: &Config,
    spec: impl FnOnce() -> Result<myrmex_postgres::JobSpec, crate::cluster::ClusterError>,
) -> Option<Result<myrmex_postgres::Trigger, String>> {
    if !matches!(config.scheduler.store, StoreSpec::Postgres(_)) {
        return None;
    }
    Some(spec().map(|s| s.trigger).map_err(|e| e.to_string()))
}

/// The store as `check` prints it: a PostgreSQL URL without its password.
fn shown_store(store: &StoreSpec) -> String {
    match store {
        StoreSpec::Postgres(url) => redact_password(url),
        other => other.to_string(),
    }
}

/// `url` with the password of its user info (`user:secret@`) and of a
/// `password=` parameter replaced by `***`.
fn redact_password(url: &str) -> String {
    let mut out = url.to_owned();
    if let Some(scheme_end) = out.find("://") {
        let start = scheme_end + 3;
        let authority_end = out[start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| start + i);
        if let Some(at) = out[start..authority_end].rfind('@')
            && let Some(colon) = out[start..start + at].find(':')
        {
            out.replace_range(start + colon + 1..start + at, "***");
        }
    }
    let mut from = 0;
    while let Some(i) = out[from..].find("password=") {
        let value = from + i + "password=".len();
        let end = out[value..]
            .find(['&', ' '])
            .map_or(out.len(), |j| value + j);
        out.replace_range(value..end, "***");
        from = value + 3;
    }
    out
}

fn job_report(config: &Config, job: &JobConfig, count: usize, now: Timestamp) -> String {
    let zone = config.zone_of(job.zone.as_ref());
    let mut out = format!("job {}\n  command: {}\n", job.name, job.command);
    out.push_str(&format!(
        "  schedule: {}\n",
        describe_schedule(job.schedule.as_ref(), &zone.name)
    ));
    let cluster = cluster_trigger(config, || crate::cluster::job_spec(config, job, None));
    out.push_str(&fires(
        &job.name,
        job.schedule.as_ref(),
        zone,
        count,
        now,
        cluster,
    ));
    if !job.depends_on.is_empty() {
        let deps: Vec<&str> = job.depends_on.iter().map(|d| d.name.as_str()).collect();
        out.push_str(&format!("  depends on: {}\n", deps.join(", ")));
    }
    if job.paused {
        out.push_str("  paused\n");
    }
    out
}

/// A schedule in English.
pub fn describe_schedule(s: Option<&ScheduleSpec>, zone: &str) -> String {
    match s {
        None => "none (runs when triggered or when its dependencies finish)".to_string(),
        Some(ScheduleSpec::Cron { expr, cron }) => {
            format!("{} (cron `{expr}`, {zone})", cron.describe())
        }
        Some(ScheduleSpec::Every(d)) => format!("every {d:#}"),
        Some(ScheduleSpec::At(AtSpec::Instant(ts))) => format!("once at {ts}"),
        Some(ScheduleSpec::At(AtSpec::Civil(dt))) => format!("once at {dt} ({zone})"),
        Some(ScheduleSpec::At(AtSpec::Daily(t))) => {
            format!("every day at {} ({zone})", t.strftime("%H:%M:%S"))
        }
        Some(ScheduleSpec::Recurrence(r)) => {
            let unit = match r.unit {
                RecurrenceUnit::Second => "second",
                RecurrenceUnit::Minute => "minute",
                RecurrenceUnit::Hour => "hour",
                RecurrenceUnit::Day => "day",
                RecurrenceUnit::Week => "week",
            };
            let mut s = if r.interval == 1 {
                format!("every {unit}")
            } else {
                format!("every {} {unit}s", r.interval)
            };
            if !r.on.is_empty() {
                let days: Vec<String> = r.on.iter().map(|d| format!("{d:?}")).collect();
                s.push_str(&format!(" on {}", days.join(", ")));
            }
            if !r.at.is_empty() {
                let times: Vec<String> =
                    r.at.iter()
                        .map(|t| t.strftime("%H:%M").to_string())
                        .collect();
                s.push_str(&format!(" at {}", times.join(", ")));
            }
            if let Some(u) = r.until {
                s.push_str(&format!(" until {u}"));
            }
            s.push_str(&format!(" ({zone})"));
            s
        }
    }
}

/// The next fire times, one per line in the schedule's zone, or nothing for jobs
/// without a schedule. With a cluster trigger, its times as the cluster computes
/// them (the first at or after `now`, then each next one).
fn fires(
    name: &str,
    schedule: Option<&ScheduleSpec>,
    zone: &Zone,
    count: usize,
    now: Timestamp,
    cluster: Option<Result<myrmex_postgres::Trigger, String>>,
) -> String {
    if schedule.is_none() || count == 0 {
        return String::new();
    }
    let next = match cluster {
        None => crate::plan::next_fires(schedule, zone, now, count),
        Some(Ok(trigger)) => match trigger.upcoming(name, now, count) {
            Ok(next) => next,
            Err(e) => return format!("  next: cannot be computed in cluster mode: {e}\n"),
        },
        Some(Err(e)) => return format!("  next: not supported in cluster mode: {e}\n"),
    };
    if next.is_empty() {
        return "  next: never (no fire time after now)\n".to_string();
    }
    let mut out = String::from("  next:\n");
    for t in next {
        let z = t.to_zoned(zone.tz.clone());
        out.push_str(&format!("    {}\n", z.strftime("%Y-%m-%dT%H:%M:%S%:z %a")));
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn a_store_url_is_printed_without_its_password() {
        for (url, shown) in [
            (
                "postgres://u:s3cret@db.example:5432/myrmex",
                "postgres://u:***@db.example:5432/myrmex",
            ),
            ("postgres://u@db/myrmex", "postgres://u@db/myrmex"),
            ("postgres://db/myrmex", "postgres://db/myrmex"),
            (
                "postgres://u:p@ss@db/x?password=also&sslmode=disable",
                "postgres://u:***@db/x?password=***&sslmode=disable",
            ),
            (
                "host=db user=u password=s3cret dbname=x",
                "host=db user=u password=*** dbname=x",
            ),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }
}
