//! Translating the validated config into the library's job specs. Only a change of
//! vocabulary: when and how jobs fire is decided by `myrmex`.

use jiff::{SignedDuration, Timestamp};
use myrmex::{
    JobPolicies, JobSpec, MisfirePolicy, OverlapPolicy, Recurrence, RetryPolicy, Trigger,
    TriggerSpec,
};

use crate::config::{
    AtSpec, BackoffKind, Config, JobConfig, MisfireKind, OverlapSpec, RecurrenceUnit, ScheduleSpec,
    Zone,
};

/// The longest wait between retries when `retry_max_delay` is not set.
const DEFAULT_RETRY_MAX_DELAY: SignedDuration = SignedDuration::from_hours(1);

/// The trigger for a schedule in `zone` (`None`: the job runs only when triggered or
/// released), for a job added at `now`.
pub fn trigger(schedule: Option<&ScheduleSpec>, zone: &Zone, now: Timestamp) -> TriggerSpec {
    let tz = Some(zone.tz.clone());
    match schedule {
        None => TriggerSpec::Manual,
        Some(ScheduleSpec::Cron { cron, .. }) => TriggerSpec::Cron {
            expr: *cron,
            tz,
            dst: myrmex::CronDstPolicy::default(),
        },
        // The grid starts one period after the job is added, on a whole second so
        // that run ids and logs stay readable.
        Some(ScheduleSpec::Every(every)) => TriggerSpec::Interval {
            every: *every,
            start: now.checked_add(*every).ok().and_then(|t| {
                t.round(
                    jiff::TimestampRound::new()
                        .smallest(jiff::Unit::Second)
                        .mode(jiff::RoundMode::Ceil),
                )
                .ok()
            }),
            end: None,
        },
        Some(ScheduleSpec::At(AtSpec::Instant(at))) => TriggerSpec::Once { at: *at },
        Some(ScheduleSpec::At(AtSpec::Civil(datetime))) => TriggerSpec::OnceLocal {
            datetime: *datetime,
            tz,
            dst: myrmex::DisambiguationPolicy::default(),
        },
        Some(ScheduleSpec::At(AtSpec::Daily(time))) => TriggerSpec::Recurrence(
            Recurrence::every(1)
                .days()
                .at(*time)
                .in_zone(zone.tz.clone()),
        ),
        Some(ScheduleSpec::Recurrence(r)) => {
            let unit = match r.unit {
                RecurrenceUnit::Second => myrmex::RecurrenceUnit::Seconds,
                RecurrenceUnit::Minute => myrmex::RecurrenceUnit::Minutes,
                RecurrenceUnit::Hour => myrmex::RecurrenceUnit::Hours,
                RecurrenceUnit::Day => myrmex::RecurrenceUnit::Days,
                RecurrenceUnit::Week => myrmex::RecurrenceUnit::Weeks,
            };
            let mut base = Recurrence::every(r.interval)
                .unit(unit)
                .in_zone(zone.tz.clone());
            if !r.on.is_empty() {
                base = base.on(&r.on);
            }
            if let Some(until) = r.until {
                base = base.until(until);
            }
            // Several times of day are one recurrence per time, fired as a union.
            match r.at.as_slice() {
                [] => TriggerSpec::Recurrence(base),
                [one] => TriggerSpec::Recurrence(base.at(*one)),
                many => TriggerSpec::union(
                    many.iter()
                        .map(|t| TriggerSpec::Recurrence(base.clone().at(*t))),
                ),
            }
        }
    }
}

/// The policies of a job.
pub fn policies(config: &Config, job: &JobConfig) -> JobPolicies {
    let mut p = JobPolicies {
        timeout: job.timeout,
        ..JobPolicies::default()
    };
    if let Some(kind) = job.misfire.policy {
        p.misfire = match kind {
            MisfireKind::RunOnce => MisfirePolicy::RunOnce,
            MisfireKind::RunAll => MisfirePolicy::RunAll,
            MisfireKind::Skip => MisfirePolicy::Skip,
        };
    }
    if let Some(grace) = job.misfire.grace {
        p.misfire_grace = grace;
    }
    p.overlap = match job.overlap {
        OverlapSpec::Skip => OverlapPolicy::Skip,
        OverlapSpec::Queue => OverlapPolicy::QueueOne,
        OverlapSpec::Allow(n) => {
            let n = if n == u32::MAX {
                config.scheduler.workers
            } else {
                n as usize
            };
            OverlapPolicy::Allow(u16::try_from(n).unwrap_or(u16::MAX))
        }
    };
    let r = &job.retry;
    p.retry = match (r.retries, r.backoff) {
        (0, _) => RetryPolicy::Never,
        (n, BackoffKind::Fixed) => RetryPolicy::Fixed {
            max_attempts: n.saturating_add(1),
            delay: r.delay,
            jitter: SignedDuration::ZERO,
        },
        (n, BackoffKind::Exponential) => RetryPolicy::Exponential {
            max_attempts: n.saturating_add(1),
            initial: r.delay,
            max_delay: r.max_delay.unwrap_or(DEFAULT_RETRY_MAX_DELAY).max(r.delay),
            jitter: SignedDuration::ZERO,
        },
    };
    p
}

/// The library's spec for a job of the config, added at `now`.
pub fn job_spec(config: &Config, job: &JobConfig, now: Timestamp) -> JobSpec {
    let zone = config.zone_of(job.zone.as_ref());
    JobSpec::new(trigger(job.schedule.as_ref(), zone, now))
        .name(job.name.clone())
        .policies(policies(config, job))
}

/// Up to `count` fire times of `schedule` strictly after `now`, as `myrmex` computes
/// them for a job added at `now`.
pub fn next_fires(
    schedule: Option<&ScheduleSpec>,
    zone: &Zone,
    now: Timestamp,
    count: usize,
) -> Vec<Timestamp> {
    let Ok(t) = trigger(schedule, zone, now).resolve(now, &zone.tz) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(count);
    let mut after = now;
    while out.len() < count {
        match t.next_after(after) {
            Some(n) => {
                out.push(n);
                after = n;
            }
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The first `n` fire times of the only job of `toml`, after `now`, in RFC 3339
    /// with the job zone's offset.
    fn fires(toml: &str, now: &str, n: usize) -> Vec<String> {
        let config = Config::parse(Path::new("/tmp/myrmex.toml"), toml).unwrap();
        let job = &config.jobs[0];
        let zone = config.zone_of(job.zone.as_ref());
        next_fires(job.schedule.as_ref(), zone, now.parse().unwrap(), n)
            .into_iter()
            .map(|t| t.to_zoned(zone.tz.clone()).strftime("%FT%T%:z").to_string())
            .collect()
    }

    #[test]
    fn schedules_become_the_triggers_they_say() {
        let job = |schedule: &str| {
            format!(
                "[scheduler]\nzone = \"America/New_York\"\n[[job]]\nname = \"j\"\ncommand = \"true\"\n{schedule}\n"
            )
        };
        let now = "2026-03-07T12:00:00Z";
        let table: &[(&str, &[&str])] = &[
            // A daily wall time keeps its local time across the spring-forward night.
            (
                "at = \"09:30\"",
                &["2026-03-07T09:30:00-05:00", "2026-03-08T09:30:00-04:00"],
            ),
            // 02:30 does not exist on 2026-03-08 in New York: the fixed-time cron job
            // runs once at 03:00.
            (
                "cron = \"30 2 * * *\"",
                &["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"],
            ),
            // Intervals are absolute and start one period after now, on a whole second.
            (
                "every = \"90m\"",
                &["2026-03-07T08:30:00-05:00", "2026-03-07T10:00:00-05:00"],
            ),
            // Several times of day are one union.
            (
                "recurrence = { every = \"1 day\", at = [\"08:00\", \"20:00\"], on = [\"mon\"] }",
                &["2026-03-09T08:00:00-04:00", "2026-03-09T20:00:00-04:00"],
            ),
            (
                "at = \"2026-03-10T07:00:00Z\"",
                &["2026-03-10T03:00:00-04:00"],
            ),
            ("at = \"2026-01-01T00:00:00Z\"", &[]),
        ];
        for (schedule, want) in table {
            assert_eq!(fires(&job(schedule), now, 2), *want, "{schedule}");
        }
    }

    #[test]
    fn policies_follow_the_config() {
        let config = Config::parse(
            Path::new("/tmp/myrmex.toml"),
            r#"
[scheduler]
workers = 3

[[job]]
name = "a"
command = "true"
retries = 2
retry_delay = "5s"
retry_max_delay = "1m"
overlap = "allow"
misfire = "skip"
misfire_grace = "10s"
timeout = "30s"

[[job]]
name = "b"
command = "true"
retries = 1
retry_backoff = "fixed"
overlap = "queue"
"#,
        )
        .unwrap();
        let a = policies(&config, &config.jobs[0]);
        assert_eq!(
            a.retry,
            RetryPolicy::Exponential {
                max_attempts: 3,
                initial: SignedDuration::from_secs(5),
                max_delay: SignedDuration::from_mins(1),
                jitter: SignedDuration::ZERO,
            }
        );
        assert_eq!(a.overlap, OverlapPolicy::Allow(3));
        assert_eq!(a.misfire, MisfirePolicy::Skip);
        assert_eq!(a.misfire_grace, SignedDuration::from_secs(10));
        assert_eq!(a.timeout, Some(SignedDuration::from_secs(30)));
        let b = policies(&config, &config.jobs[1]);
        assert_eq!(
            b.retry,
            RetryPolicy::Fixed {
                max_attempts: 2,
                delay: SignedDuration::from_secs(10),
                jitter: SignedDuration::ZERO,
            }
        );
        assert_eq!(b.overlap, OverlapPolicy::QueueOne);
        assert_eq!(b.misfire, MisfirePolicy::RunOnce);
    }
}
