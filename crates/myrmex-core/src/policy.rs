//! Policies: what to do with late fires, overlapping runs, failures and slow runs.
//!
//! Each policy is a named enum with a documented default. [`JobPolicies`] bundles
//! them per job; all of it is serializable so a store can save a job as data.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// What to do with fires that are later than the misfire grace period (after a
/// stall, a suspend, a wall-clock jump forward, or a pause).
///
/// Default: [`MisfirePolicy::RunOnce`] (with a grace of
/// [`JobPolicies::DEFAULT_MISFIRE_GRACE`]).
///
/// ```
/// use myrmex_core::{JobPolicies, MisfirePolicy};
/// use jiff::SignedDuration;
///
/// let p = JobPolicies::default();
/// assert_eq!(p.misfire, MisfirePolicy::RunOnce);
/// assert_eq!(p.misfire_grace, SignedDuration::from_secs(1));
/// // After a 10-minute suspend, a per-minute job runs once, not ten times:
/// let p = JobPolicies { misfire: MisfirePolicy::RunOnce, ..JobPolicies::default() };
/// # let _ = p;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MisfirePolicy {
    /// Run the most recent missed occurrence once; the others are recorded as
    /// missed.
    #[default]
    RunOnce,
    /// Run every missed occurrence (at most [`MisfirePolicy::RUN_ALL_LIMIT`] per
    /// catch-up; the rest are recorded as missed).
    RunAll,
    /// Run none of them; all are recorded as missed.
    Skip,
}

impl MisfirePolicy {
    /// The most occurrences [`MisfirePolicy::RunAll`] starts in one catch-up.
    pub const RUN_ALL_LIMIT: u32 = 1_000;
}

/// What to do when an occurrence is due while earlier runs of the same job are
/// still running (a run waiting for a retry counts as running).
///
/// Default: [`OverlapPolicy::Skip`].
///
/// ```
/// use myrmex_core::{JobPolicies, OverlapPolicy};
///
/// assert_eq!(JobPolicies::default().overlap, OverlapPolicy::Skip);
/// let p = JobPolicies { overlap: OverlapPolicy::Allow(4), ..JobPolicies::default() };
/// assert_eq!(p.overlap.limit(), 4);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum OverlapPolicy {
    /// Do not start it; it is recorded as skipped.
    #[default]
    Skip,
    /// Keep one occurrence waiting and start it when the running one ends; further
    /// occurrences while one waits are skipped.
    QueueOne,
    /// Allow up to N concurrent runs (N ≥ 1); beyond that, skip.
    Allow(u16),
}

impl OverlapPolicy {
    /// How many runs may be active at once.
    pub fn limit(self) -> u16 {
        match self {
            OverlapPolicy::Skip | OverlapPolicy::QueueOne => 1,
            OverlapPolicy::Allow(n) => n.max(1),
        }
    }
}

/// Whether and how a failed or timed-out attempt is tried again.
///
/// `max_attempts` counts all attempts, the first included. Each retry waits the
/// backoff delay plus a deterministic jitter in `[0, jitter]`.
///
/// Default: [`RetryPolicy::Never`].
///
/// ```
/// use myrmex_core::RetryPolicy;
/// use jiff::SignedDuration;
///
/// let p = RetryPolicy::Exponential {
///     max_attempts: 5,
///     initial: SignedDuration::from_secs(1),
///     max_delay: SignedDuration::from_secs(60),
///     jitter: SignedDuration::ZERO,
/// };
/// assert_eq!(p.delay(1), Some(SignedDuration::from_secs(1)));
/// assert_eq!(p.delay(3), Some(SignedDuration::from_secs(4)));
/// assert_eq!(p.delay(5), None); // the fifth attempt was the last
/// assert_eq!(RetryPolicy::default().delay(1), None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetryPolicy {
    /// A failed attempt ends the run.
    #[default]
    Never,
    /// Retry after the same delay each time.
    Fixed {
        /// All attempts, the first included.
        max_attempts: u32,
        /// The wait before each retry.
        delay: SignedDuration,
        /// The largest extra random wait.
        #[serde(default)]
        jitter: SignedDuration,
    },
    /// Retry after `initial`, then twice as long each time, capped at `max_delay`.
    Exponential {
        /// All attempts, the first included.
        max_attempts: u32,
        /// The wait before the first retry.
        initial: SignedDuration,
        /// The longest wait.
        max_delay: SignedDuration,
        /// The largest extra random wait.
        #[serde(default)]
        jitter: SignedDuration,
    },
}

impl RetryPolicy {
    /// The wait after failed attempt number `attempt` (1-based), without jitter,
    /// or `None` when no attempt follows.
    pub fn delay(&self, attempt: u32) -> Option<SignedDuration> {
        match *self {
            RetryPolicy::Never => None,
            RetryPolicy::Fixed {
                max_attempts,
                delay,
                ..
            } => (attempt < max_attempts).then_some(delay),
            RetryPolicy::Exponential {
                max_attempts,
                initial,
                max_delay,
                ..
            } => {
                if attempt >= max_attempts {
                    return None;
                }
                let factor = 1i32
                    .checked_shl(attempt.saturating_sub(1).min(30))
                    .unwrap_or(i32::MAX);
                let d = initial.checked_mul(factor).unwrap_or(max_delay);
                Some(d.min(max_delay))
            }
        }
    }

    /// The jitter bound.
    pub fn jitter(&self) -> SignedDuration {
        match *self {
            RetryPolicy::Never => SignedDuration::ZERO,
            RetryPolicy::Fixed { jitter, .. } | RetryPolicy::Exponential { jitter, .. } => jitter,
        }
    }
}

/// What happens to a job whose trigger is exhausted (a finished one-shot, an
/// interval past its end, `max_runs` reached) or that was cancelled.
///
/// Default: [`RetentionPolicy::Remove`], so finished jobs cost no memory; their
/// final state is in the `JobFinished` event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RetentionPolicy {
    /// Drop the job from the table.
    #[default]
    Remove,
    /// Keep it, with its final status, until it is cancelled.
    Keep,
}

/// Every policy of one job. The default is what a job gets unless told otherwise.
///
/// ```
/// use myrmex_core::{JobPolicies, OverlapPolicy, RetryPolicy};
/// use jiff::SignedDuration;
///
/// let p = JobPolicies {
///     overlap: OverlapPolicy::QueueOne,
///     timeout: Some(SignedDuration::from_secs(30)),
///     retry: RetryPolicy::Fixed {
///         max_attempts: 3,
///         delay: SignedDuration::from_secs(5),
///         jitter: SignedDuration::ZERO,
///     },
///     ..JobPolicies::default()
/// };
/// let json = serde_json::to_string(&p).unwrap();
/// assert_eq!(serde_json::from_str::<JobPolicies>(&json).unwrap(), p);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JobPolicies {
    /// What to do with late fires.
    pub misfire: MisfirePolicy,
    /// How late a fire may be and still count as on time.
    pub misfire_grace: SignedDuration,
    /// What to do when runs would overlap.
    pub overlap: OverlapPolicy,
    /// Retries of failed attempts.
    pub retry: RetryPolicy,
    /// The longest an attempt may run before it is told to stop (through its
    /// cancellation token) and recorded as timed out. `None`: no limit.
    pub timeout: Option<SignedDuration>,
    /// A random delay in `[0, jitter]` added to every fire (deterministic given
    /// the scheduler's seed, the job and the occurrence). `None`: no jitter.
    pub jitter: Option<SignedDuration>,
    /// The job ends after this many runs. `None`: no limit.
    pub max_runs: Option<u32>,
    /// How many finished runs the job remembers.
    pub history: u16,
    /// What happens to the job when it is finished.
    pub retention: RetentionPolicy,
}

impl JobPolicies {
    /// The default misfire grace period: one second.
    pub const DEFAULT_MISFIRE_GRACE: SignedDuration = SignedDuration::from_secs(1);
    /// The default number of runs kept in a job's history.
    pub const DEFAULT_HISTORY: u16 = 10;
}

impl Default for JobPolicies {
    fn default() -> Self {
        JobPolicies {
            misfire: MisfirePolicy::default(),
            misfire_grace: Self::DEFAULT_MISFIRE_GRACE,
            overlap: OverlapPolicy::default(),
            retry: RetryPolicy::default(),
            timeout: None,
            jitter: None,
            max_runs: None,
            history: Self::DEFAULT_HISTORY,
            retention: RetentionPolicy::default(),
        }
    }
}
