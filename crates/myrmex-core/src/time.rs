//! Instants as `i64` nanoseconds for the compact job records and the due queue.
//!
//! The queue and the records store nanoseconds since the Unix epoch in an `i64`,
//! which covers the years 1677 to 2262. Fire times outside that range are treated
//! as "never" (clamped to [`NEVER`]), which keeps every record small and every
//! comparison a single integer compare.

use jiff::{SignedDuration, Timestamp};

/// "No instant": sorts after every real instant.
pub(crate) const NEVER: i64 = i64::MAX;

/// Converts an instant to nanoseconds, clamping out-of-range values.
pub(crate) fn ns(t: Timestamp) -> i64 {
    let n = t.as_nanosecond();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN + 1 } else { NEVER - 1 })
}

/// Converts nanoseconds back to an instant (always in jiff's range).
pub(crate) fn ts(n: i64) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(n)).unwrap_or(Timestamp::MAX)
}

/// `None` for [`NEVER`], the instant otherwise.
pub(crate) fn opt_ts(n: i64) -> Option<Timestamp> {
    (n != NEVER).then(|| ts(n))
}

/// A duration in nanoseconds, saturating.
pub(crate) fn dur_ns(d: SignedDuration) -> i64 {
    let n = d.as_nanos();
    i64::try_from(n).unwrap_or(if n < 0 { i64::MIN } else { i64::MAX })
}

/// A deterministic 64-bit mix (splitmix64 finaliser), used for jitter so that the
/// same seed, job and occurrence always give the same delay.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A delay in `[0, max]` derived from the inputs; zero when `max` is not positive.
pub(crate) fn jitter(seed: u64, a: u64, b: i64, c: u64, max: SignedDuration) -> i64 {
    let max = dur_ns(max);
    if max <= 0 {
        return 0;
    }
    let h = mix(seed ^ mix(a ^ mix(b as u64 ^ mix(c))));
    // `max + 1` cannot overflow: `max` came from a saturating conversion of a
    // duration, and `i64::MAX` as a jitter bound is reduced by one first.
    let bound = (max.min(i64::MAX - 1) + 1) as u64;
    (h % bound) as i64
}
