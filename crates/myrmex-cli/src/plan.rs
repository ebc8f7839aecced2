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
