//! Record types: ids, triggers, policies, job and pipeline definitions, runs.

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use myrmex_core::{Recurrence, Trigger as _, TriggerSpec};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A job's database id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId(pub i64);

/// A run's database id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunId(pub i64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When a job fires.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Trigger {
    /// Once, at an instant.
    Once {
        /// The single occurrence.
        at: Timestamp,
    },
    /// Every `every`, on the grid `anchor + k·every` (k ≥ 0), so restarts never drift.
    Interval {
        /// The period (positive).
        every: SignedDuration,
        /// The grid's origin and first occurrence.
        anchor: Timestamp,
    },
    /// A cron expression evaluated in an IANA time zone.
    Cron {
        /// The expression (myrmex dialect, 5 to 7 fields).
        expr: String,
        /// The zone name, e.g. `Europe/Berlin`.
        tz: String,
    },
    /// Only when triggered by hand.
    Manual,
    /// After each successful run of another job, with the same nominal time.
    After {
        /// The upstream job.
        job: JobId,
    },
    /// Calendar recurrences (myrmex-core's [`Recurrence`]: every N seconds to weeks,
    /// at times of day, on weekdays, until a date, in a zone), firing whenever any
    /// rule fires (one occurrence per distinct instant). Build it with
    /// [`Trigger::recurrence`], which pins what the rules leave open so that every
    /// node computes the same occurrences.
    Recurrence {
        /// The rules, each with its zone and start set.
        rules: Vec<Recurrence>,
    },
}

// Every field of a `Recurrence` is `Eq`; it only lacks the derive.
impl Eq for Trigger {}

/// The civil start of calendar recurrences (days, weeks) that leave it open in
/// cluster mode: Monday 1970-01-05 at midnight, in the rule's zone. A fixed date
/// (rather than "when the job was added") keeps every node and every restart on
/// the same grid: `every 2 days` counts from it, `every 2 weeks` counts weeks from
/// its week, and a weekly rule without weekdays fires on Mondays.
pub const RECURRENCE_CALENDAR_ANCHOR: jiff::civil::DateTime =
    jiff::civil::date(1970, 1, 5).at(0, 0, 0, 0);

#[derive(Serialize, Deserialize, Default)]
struct TriggerSpecJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    every_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    every_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cron: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tz: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    after_job: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurrence: Option<Vec<Recurrence>>,
}

/// A trigger compiled for evaluation (the cron parsed, the zone resolved).
#[derive(Clone, Debug)]
pub(crate) enum Schedule {
    Once(Timestamp),
    Interval {
        every_ns: i128,
        anchor: Timestamp,
    },
    Cron(Box<myrmex_cron::Cron>, TimeZone),
    /// A resolved recurrence, or a union of several.
    Recurrence(Box<TriggerSpec>),
    None,
}

impl Trigger {
    /// An interval trigger on the grid anchored at the Unix epoch.
    #[must_use]
    pub fn every(every: SignedDuration) -> Trigger {
        Trigger::Interval {
            every,
            anchor: Timestamp::UNIX_EPOCH,
        }
    }

    /// A cron trigger.
    #[must_use]
    pub fn cron(expr: &str, tz: &str) -> Trigger {
        Trigger::Cron {
            expr: expr.to_owned(),
            tz: tz.to_owned(),
        }
    }

    /// A recurrence trigger firing at the union of `rules`. What a rule leaves open
    /// is pinned so that the occurrences do not depend on when or where the job
    /// was written: no zone means UTC; no start means the Unix epoch for elapsed
    /// units (seconds, minutes, hours: the same grid as [`Trigger::every`]) and
    /// [`RECURRENCE_CALENDAR_ANCHOR`] for days and weeks.
    ///
    /// ```
    /// use jiff::civil::time;
    /// use jiff::tz::TimeZone;
    /// use myrmex_postgres::{Recurrence, Trigger};
    ///
    /// // Every day at 02:30 in Berlin.
    /// let t = Trigger::recurrence([Recurrence::every(1)
    ///     .days()
    ///     .at(time(2, 30, 0, 0))
    ///     .in_zone(TimeZone::get("Europe/Berlin").unwrap())]);
    /// let Trigger::Recurrence { rules } = &t else { unreachable!() };
    /// assert!(rules[0].start.is_some());
    /// ```
    #[must_use]
    pub fn recurrence(rules: impl IntoIterator<Item = Recurrence>) -> Trigger {
        Trigger::Recurrence {
            rules: rules
                .into_iter()
                .map(|mut r| {
                    let tz = r.tz.get_or_insert(TimeZone::UTC).clone();
                    if r.start.is_none() {
                        let elapsed = matches!(
                            r.unit,
                            myrmex_core::RecurrenceUnit::Seconds
                                | myrmex_core::RecurrenceUnit::Minutes
                                | myrmex_core::RecurrenceUnit::Hours
                        );
                        r.start = Some(if elapsed {
                            Timestamp::UNIX_EPOCH.to_zoned(tz).datetime()
                        } else {
                            RECURRENCE_CALENDAR_ANCHOR
                        });
                    }
                    r
                })
                .collect(),
        }
    }

    /// The first `n` occurrences at or after `from`, exactly as the cluster
    /// materializes them (a new job's watermark is the first occurrence at or after
    /// its start; each next one is the first strictly after the previous). `Manual`
    /// and `After` triggers have none.
    ///
    /// ```
    /// use jiff::{SignedDuration, Timestamp};
    /// use myrmex_postgres::Trigger;
    ///
    /// let t = Trigger::every(SignedDuration::from_secs(60));
    /// let from: Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
    /// let fires = t.upcoming("report", from, 2).unwrap();
    /// assert_eq!(fires[0].to_string(), "2026-01-01T00:01:00Z");
    /// assert_eq!(fires[1].to_string(), "2026-01-01T00:02:00Z");
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidTrigger`], [`Error::Cron`] or [`Error::TimeZone`] for a
    /// trigger the cluster could not evaluate either; `job` names it.
    pub fn upcoming(&self, job: &str, from: Timestamp, n: usize) -> Result<Vec<Timestamp>> {
        let schedule = self.compile(job)?;
        let mut out = Vec::new();
        let mut t = schedule.initial_watermark(from);
        while let Some(x) = t {
            if out.len() >= n {
                break;
            }
            out.push(x);
            t = schedule.next_after(x);
        }
        Ok(out)
    }

    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Trigger::Once { .. } => "once",
            Trigger::Interval { .. } => "interval",
            Trigger::Cron { .. } => "cron",
            Trigger::Manual => "manual",
            Trigger::After { .. } => "after",
            Trigger::Recurrence { .. } => "recurrence",
        }
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        let mut s = TriggerSpecJson::default();
        match self {
            Trigger::Once { at } => s.at = Some(*at),
            Trigger::Interval { every, anchor } => {
                if every.subsec_nanos() % 1_000_000 == 0 {
                    s.every_ms = Some(every.as_millis() as i64);
                } else {
                    s.every_ns = Some(every.as_nanos() as i64);
                }
                s.anchor = Some(*anchor);
            }
            Trigger::Cron { expr, tz } => {
                s.cron = Some(expr.clone());
                s.tz = Some(tz.clone());
            }
            Trigger::Manual => {}
            Trigger::After { job } => s.after_job = Some(job.0),
            Trigger::Recurrence { rules } => s.recurrence = Some(rules.clone()),
        }
        serde_json::to_value(s).unwrap_or_default()
    }

    pub(crate) fn from_row(kind: &str, spec: serde_json::Value) -> Result<Trigger> {
        let corrupt = |detail: String| Error::Corrupt {
            what: "trigger_spec",
            detail,
        };
        let s: TriggerSpecJson =
            serde_json::from_value(spec.clone()).map_err(|e| corrupt(format!("{spec}: {e}")))?;
        let missing = || corrupt(format!("{kind} trigger with spec {spec}"));
        Ok(match kind {
            "once" => Trigger::Once {
                at: s.at.ok_or_else(missing)?,
            },
            "interval" => Trigger::Interval {
                every: match (s.every_ms, s.every_ns) {
                    (Some(ms), _) => SignedDuration::from_millis(ms),
                    (None, Some(ns)) => SignedDuration::from_nanos(ns),
                    _ => return Err(missing()),
                },
                anchor: s.anchor.ok_or_else(missing)?,
            },
            "cron" => Trigger::Cron {
                expr: s.cron.ok_or_else(missing)?,
                tz: s.tz.ok_or_else(missing)?,
            },
            "manual" => Trigger::Manual,
            "after" => Trigger::After {
                job: JobId(s.after_job.ok_or_else(missing)?),
            },
            "recurrence" => Trigger::Recurrence {
                rules: s.recurrence.ok_or_else(missing)?,
            },
            other => return Err(corrupt(format!("trigger kind {other:?}"))),
        })
    }

    pub(crate) fn compile(&self, job: &str) -> Result<Schedule> {
        Ok(match self {
            Trigger::Once { at } => Schedule::Once(*at),
            Trigger::Interval { every, anchor } => {
                if every.is_negative() || every.is_zero() {
                    return Err(Error::InvalidTrigger {
                        job: job.to_owned(),
                        reason: format!("interval must be positive, got {every}"),
                    });
                }
                Schedule::Interval {
                    every_ns: every.as_nanos(),
                    anchor: *anchor,
                }
            }
            Trigger::Cron { expr, tz } => {
                let cron = myrmex_cron::Cron::parse(expr).map_err(|source| Error::Cron {
                    expr: expr.clone(),
                    source,
                })?;
                let zone = TimeZone::get(tz).map_err(|source| Error::TimeZone {
                    tz: tz.clone(),
                    source,
                })?;
                Schedule::Cron(Box::new(cron), zone)
            }
            Trigger::Recurrence { rules } => {
                let invalid = |reason: String| Error::InvalidTrigger {
                    job: job.to_owned(),
                    reason,
                };
                let spec = match rules.as_slice() {
                    [] => return Err(invalid("a recurrence needs at least one rule".into())),
                    [one] => TriggerSpec::Recurrence(one.clone()),
                    many => TriggerSpec::union(many.iter().cloned().map(TriggerSpec::Recurrence)),
                };
                if rules.iter().any(|r| r.start.is_none() || r.tz.is_none()) {
                    return Err(invalid(
                        "every recurrence rule needs a start and a zone (use Trigger::recurrence)"
                            .into(),
                    ));
                }
                // The rules are complete, so resolving only validates them.
                let spec = spec
                    .resolve(Timestamp::UNIX_EPOCH, &TimeZone::UTC)
                    .map_err(|e| invalid(e.to_string()))?;
                Schedule::Recurrence(Box::new(spec))
            }
            Trigger::Manual | Trigger::After { .. } => Schedule::None,
        })
    }
}

impl Schedule {
    /// The first occurrence at or after `t`.
    pub(crate) fn first_at_or_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Once(at) => (*at >= t).then_some(*at),
            Schedule::Interval { every_ns, anchor } => {
                let d = t.as_nanosecond() - anchor.as_nanosecond();
                if d <= 0 {
                    return Some(*anchor);
                }
                let k = (d + every_ns - 1) / every_ns;
                Timestamp::from_nanosecond(anchor.as_nanosecond() + k * every_ns).ok()
            }
            Schedule::Cron(cron, tz) => {
                let before = t.checked_sub(SignedDuration::from_nanos(1)).ok()?;
                cron.next_timestamp_after(before, tz)
            }
            Schedule::Recurrence(spec) => {
                spec.next_after(t.checked_sub(SignedDuration::from_nanos(1)).ok()?)
            }
            Schedule::None => None,
        }
    }

    /// The first occurrence strictly after `t`.
    pub(crate) fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Once(at) => (*at > t).then_some(*at),
            Schedule::Interval { .. } => {
                self.first_at_or_after(t.checked_add(SignedDuration::from_nanos(1)).ok()?)
            }
            Schedule::Cron(cron, tz) => cron.next_timestamp_after(t, tz),
            Schedule::Recurrence(spec) => spec.next_after(t),
            Schedule::None => None,
        }
    }

    /// The watermark a new or edited job starts from: the first occurrence at or
    /// after `from` (a `once` job keeps its instant even when it is past, so it fires
    /// through the misfire policy instead of vanishing).
    pub(crate) fn initial_watermark(&self, from: Timestamp) -> Option<Timestamp> {
        match self {
            Schedule::Once(at) => Some(*at),
            _ => self.first_at_or_after(from),
        }
    }
}

/// What to do with occurrences that are due later than the misfire grace (all
/// nodes were down, or the database was unreachable).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MisfirePolicy {
    /// Run the missed occurrences, oldest first, at most `max_catchup` of them;
    /// the rest are recorded as `skipped`.
    FireAll,
    /// Run only the newest missed occurrence (origin `misfire`); record the others
    /// as `skipped`. The default, as in Quartz.
    #[default]
    FireOnce,
    /// Record every missed occurrence as `skipped` and move on.
    Skip,
}

impl MisfirePolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            MisfirePolicy::FireAll => "fire_all",
            MisfirePolicy::FireOnce => "fire_once",
            MisfirePolicy::Skip => "skip",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "fire_all" => MisfirePolicy::FireAll,
            "fire_once" => MisfirePolicy::FireOnce,
            "skip" => MisfirePolicy::Skip,
            _ => {
                return Err(Error::Corrupt {
                    what: "misfire_policy",
                    detail: s.to_owned(),
                });
            }
        })
    }
}

/// What to do when an occurrence comes due while an earlier run of the job is
/// still active. Everything except `Allow` is enforced by dependency edges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// Runs may overlap. The default.
    #[default]
    Allow,
    /// Record the new occurrence as `skipped` when a run is still active.
    Skip,
    /// Keep at most one waiting run behind the active one; skip further ones.
    BufferOne,
    /// Every run waits for the previous occurrence's run to finish (any outcome).
    Serial,
}

impl OverlapPolicy {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            OverlapPolicy::Allow => "allow",
            OverlapPolicy::Skip => "skip",
            OverlapPolicy::BufferOne => "buffer_one",
            OverlapPolicy::Serial => "serial",
        }
    }
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "allow" => OverlapPolicy::Allow,
            "skip" => OverlapPolicy::Skip,
            "buffer_one" => OverlapPolicy::BufferOne,
            "serial" => OverlapPolicy::Serial,
            _ => {
                return Err(Error::Corrupt {
                    what: "overlap_policy",
                    detail: s.to_owned(),
                });
            }
        })
    }
}

/// How the delay before a retry grows from [`JobSpec::retry_backoff`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryBackoff {
    /// Every retry waits `retry_backoff` exactly (no jitter, no cap).
    Fixed,
    /// Retry `n` (after attempt `n`) waits `retry_backoff · 2^(n−1)`, times a
    /// random factor in `[0.75, 1.25]` so that nodes do not retry in lockstep,
    /// capped at [`JobSpec::retry_max_delay`]. The default.
    #[default]
    Exponential,
}

impl RetryBackoff {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            RetryBackoff::Fixed => "fixed",
            RetryBackoff::Exponential => "exponential",
        }
    }
}

/// When a dependent run may start, given how its dependency ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DependencyRule {
    /// Only after the dependency succeeded; if it ends failed, dead, skipped or
    /// cancelled the dependent is `skipped` too (transitively). The default.
    #[default]
    AllSuccess,
    /// After the dependency ended, whatever the outcome.
    AllDone,
}

impl DependencyRule {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DependencyRule::AllSuccess => "all_success",
            DependencyRule::AllDone => "all_done",
        }
    }
}

/// One stage of a pipeline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageSpec {
    /// The stage's name, unique in the pipeline (the run's `stage`).
    pub name: String,
    /// The handler that executes it.
    pub handler: String,
    /// The stages it waits for, with the rule for each.
    pub depends_on: Vec<(String, DependencyRule)>,
}

impl StageSpec {
    /// A stage running `handler`, waiting for `deps` to succeed.
    #[must_use]
    pub fn new(name: &str, handler: &str, deps: &[&str]) -> StageSpec {
        StageSpec {
            name: name.to_owned(),
            handler: handler.to_owned(),
            depends_on: deps
                .iter()
                .map(|d| ((*d).to_owned(), DependencyRule::AllSuccess))
                .collect(),
        }
    }
}

/// A job definition as stored.
#[derive(Clone, Debug)]
pub struct JobSpec {
    /// Unique name.
    pub name: String,
    /// Handler name (for pipelines, each stage names its own).
    pub handler: String,
    /// When it fires.
    pub trigger: Trigger,
    /// Arguments handed to the handler.
    pub payload: serde_json::Value,
    /// Catch-up behaviour.
    pub misfire: MisfirePolicy,
    /// Occurrences later than this are misfires.
    pub misfire_grace: SignedDuration,
    /// Cap for [`MisfirePolicy::FireAll`].
    pub max_catchup: u32,
    /// Overlap behaviour.
    pub overlap: OverlapPolicy,
    /// With [`OverlapPolicy::Allow`], at most this many runs of the job are active
    /// at once, across all nodes (`None`, the default: no limit): an occurrence
    /// that comes due while this many runs are active (waiting, running or
    /// waiting for a retry) is recorded as `skipped`, and a claim never lets more
    /// than this many hold a lease (a manual run waits for a free slot). The other
    /// policies run one at a time and ignore it.
    pub max_concurrent: Option<u32>,
    /// Attempts before a run is `failed`/`dead`.
    pub max_attempts: u32,
    /// The delay before the first retry: the base of the backoff.
    pub retry_backoff: SignedDuration,
    /// How the delay grows between retries (default: exponential with jitter).
    pub retry_backoff_kind: RetryBackoff,
    /// The longest delay of an exponential backoff (default: one hour).
    pub retry_max_delay: SignedDuration,
    /// Lease duration of a claimed run.
    pub lease_ttl: SignedDuration,
    /// Cooperative per-attempt time limit handed to the handler.
    pub timeout: Option<SignedDuration>,
    /// Stages, when firing starts a pipeline instance instead of a single run.
    pub pipeline: Vec<StageSpec>,
    /// The first occurrence is the first at or after this instant (default: the
    /// database's `now()` at creation).
    pub start: Option<Timestamp>,
    /// Created paused.
    pub paused: bool,
}

impl JobSpec {
    /// A job with the design's defaults.
    #[must_use]
    pub fn new(name: &str, handler: &str, trigger: Trigger) -> JobSpec {
        JobSpec {
            name: name.to_owned(),
            handler: handler.to_owned(),
            trigger,
            payload: serde_json::Value::Object(serde_json::Map::new()),
            misfire: MisfirePolicy::default(),
            misfire_grace: SignedDuration::from_secs(60),
            max_catchup: 100,
            overlap: OverlapPolicy::default(),
            max_concurrent: None,
            max_attempts: 3,
            retry_backoff: SignedDuration::from_secs(10),
            retry_backoff_kind: RetryBackoff::Exponential,
            retry_max_delay: SignedDuration::from_hours(1),
            lease_ttl: SignedDuration::from_secs(30),
            timeout: None,
            pipeline: Vec::new(),
            start: None,
            paused: false,
        }
    }
}

/// States of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RunState {
    /// Waiting for dependencies (pipeline parents, or the previous run of a serial job).
    Blocked,
    /// Claimable once `available_at` has passed.
    Pending,
    /// Claimed by a node under a lease.
    Running,
    /// Failed, waiting for its retry backoff.
    RetryWait,
    /// Ended well.
    Succeeded,
    /// Ended badly after its last attempt.
    Failed,
    /// Its lease expired after its last attempt (the worker died every time).
    Dead,
    /// Not executed: misfire/overlap policy, or a failed `all_success` dependency.
    Skipped,
    /// Cancelled by a user or a schedule edit.
    Cancelled,
}

impl RunState {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "blocked" => RunState::Blocked,
            "pending" => RunState::Pending,
            "running" => RunState::Running,
            "retry_wait" => RunState::RetryWait,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            "dead" => RunState::Dead,
            "skipped" => RunState::Skipped,
            "cancelled" => RunState::Cancelled,
            _ => {
                return Err(Error::Corrupt {
                    what: "sched_run.state",
                    detail: s.to_owned(),
                });
            }
        })
    }

    /// Whether the run has ended.
    #[must_use]
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunState::Succeeded
                | RunState::Failed
                | RunState::Dead
                | RunState::Skipped
                | RunState::Cancelled
        )
    }
}

/// Why a run row exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// A regular occurrence.
    Schedule,
    /// A missed occurrence run late by the misfire policy.
    Misfire,
    /// Inserted by a backfill.
    Backfill,
    /// Triggered by hand.
    Manual,
    /// Released by an upstream job's success (`after` trigger).
    After,
}

impl Origin {
    pub(crate) fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "schedule" => Origin::Schedule,
            "misfire" => Origin::Misfire,
            "backfill" => Origin::Backfill,
            "manual" => Origin::Manual,
            "after" => Origin::After,
            _ => {
                return Err(Error::Corrupt {
                    what: "sched_run.origin",
                    detail: s.to_owned(),
                });
            }
        })
    }
}

/// A run as stored (for status output and tests).
#[derive(Clone, Debug, PartialEq)]
pub struct RunInfo {
    /// Row id.
    pub id: RunId,
    /// Its job.
    pub job: JobId,
    /// The nominal occurrence time.
    pub scheduled_at: Timestamp,
    /// Pipeline stage (`""` for plain jobs).
    pub stage: String,
    /// Why it exists.
    pub origin: Origin,
    /// Current state.
    pub state: RunState,
    /// The current attempt (fencing token); 0 before the first claim.
    pub attempt: i32,
    /// Unresolved dependencies.
    pub pending_deps: i32,
    /// The node holding the lease, while running.
    pub lease_owner: Option<String>,
    /// The job definition version it was materialized from.
    pub def_version: i64,
}

/// A node of the cluster, as seen in `sched_node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Random per process start.
    pub node_id: String,
    /// The host it runs on.
    pub hostname: String,
    /// Its process id.
    pub pid: i32,
    /// When it registered (database clock).
    pub started_at: Timestamp,
    /// Its last heartbeat (database clock).
    pub heartbeat_at: Timestamp,
    /// The myrmex version it runs.
    pub version: String,
    /// How many runs it holds leases on.
    pub running: i64,
    /// How long it may go without a heartbeat before it counts as stale (three
    /// heartbeat periods for a [`crate::Node`]; 30 s for rows written by older
    /// builds).
    pub stale_after: std::time::Duration,
    /// Whether its last heartbeat is older than `stale_after` (database clock):
    /// the process is gone or frozen. Its leases expire on their own; its row is
    /// deleted by the other nodes' maintenance after
    /// [`crate::NodeConfig::forget_nodes_after`] once it holds none.
    pub stale: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The brute-force reference: walk the grid from the anchor.
    fn reference(anchor: i64, every: i64, t: i64) -> i64 {
        let mut x = anchor;
        while x < t {
            x += every;
        }
        x
    }

    proptest! {
        #[test]
        fn interval_grid_matches_a_walk_from_the_anchor(
            anchor in -10_000i64..10_000,
            every in 1i64..500,
            t in -20_000i64..20_000,
        ) {
            let s = Schedule::Interval {
                every_ns: i128::from(every) * 1_000_000_000,
                anchor: Timestamp::from_second(anchor).unwrap(),
            };
            let at = Timestamp::from_second(t).unwrap();
            let want = reference(anchor, every, t);
            prop_assert_eq!(s.first_at_or_after(at), Some(Timestamp::from_second(want).unwrap()));
            let next = s.next_after(at).unwrap().as_second();
            prop_assert_eq!(next, reference(anchor, every, t + 1));
        }
    }

    #[test]
    fn triggers_round_trip_through_their_stored_form() {
        let cases = [
            Trigger::Once {
                at: Timestamp::from_second(60).unwrap(),
            },
            Trigger::every(SignedDuration::from_millis(1500)),
            Trigger::Interval {
                every: SignedDuration::from_nanos(1_500),
                anchor: Timestamp::from_second(7).unwrap(),
            },
            Trigger::cron("0 */5 * * * *", "Europe/Berlin"),
            Trigger::Manual,
            Trigger::After { job: JobId(42) },
            Trigger::recurrence([
                myrmex_core::Recurrence::every(2)
                    .weeks()
                    .at(jiff::civil::time(9, 30, 0, 0))
                    .on(&[jiff::civil::Weekday::Tuesday])
                    .until(jiff::civil::date(2027, 1, 1))
                    .in_zone(TimeZone::get("Europe/Berlin").unwrap()),
                myrmex_core::Recurrence::every(90).seconds(),
            ]),
        ];
        for trigger in cases {
            let back = Trigger::from_row(trigger.kind(), trigger.to_json()).unwrap();
            assert_eq!(back, trigger);
        }
    }
}
