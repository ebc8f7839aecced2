//! Shape analysis of value sets, shared by `describe` and `Display`: full sets,
//! arithmetic progressions and contiguous (possibly wrapped) runs.

use super::fields::ValueSet;

/// An arithmetic progression `start, start + step, ..., last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Progression {
    pub(crate) start: u16,
    pub(crate) step: u16,
    pub(crate) last: u16,
    pub(crate) count: usize,
}

impl Progression {
    /// Whether no further value of the progression fits in the domain.
    pub(crate) fn reaches_end(&self, set: &ValueSet) -> bool {
        u32::from(self.last) + u32::from(self.step) > u32::from(set.domain_max())
    }

    /// Whether the progression repeats evenly around the cycle of the domain
    /// (`*/15` on minutes, `*/6` on hours): the same gap between every pair of
    /// consecutive values, including from the last value back to the first.
    pub(crate) fn is_even_cycle(&self, set: &ValueSet) -> bool {
        let span = u32::from(set.domain_max() - set.domain_min()) + 1;
        let step = u32::from(self.step);
        span % step == 0 && u32::from(self.start - set.domain_min()) < step && self.reaches_end(set)
    }
}

/// The set as a single arithmetic progression with a step of at least 2 and at
/// least `min_count` values (`min_count` is at least 2).
pub(crate) fn progression(set: &ValueSet, min_count: usize) -> Option<Progression> {
    let mut it = set.iter();
    let start = it.next()?;
    let second = it.next()?;
    let step = second - start;
    if step < 2 {
        return None;
    }
    let mut last = second;
    let mut count = 2;
    for v in it {
        if v - last != step {
            return None;
        }
        last = v;
        count += 1;
    }
    (count >= min_count.max(2)).then_some(Progression {
        start,
        step,
        last,
        count,
    })
}

/// Maximal runs of consecutive values, in increasing order of start. With
/// `wrap_min` set, a run ending at the domain's maximum and one starting at its
/// minimum are merged into one wrapped run `(start, end)` with `start > end`,
/// placed last, when the merged run holds at least `wrap_min` values.
pub(crate) fn runs(set: &ValueSet, wrap_min: Option<usize>) -> Vec<(u16, u16)> {
    let mut out: Vec<(u16, u16)> = Vec::new();
    for v in set.iter() {
        match out.last_mut() {
            Some((_, end)) if *end + 1 == v => *end = v,
            _ => out.push((v, v)),
        }
    }
    if let Some(wrap_min) = wrap_min
        && out.len() >= 2
    {
        let first = out[0];
        let last = out[out.len() - 1];
        let merged = usize::from(last.1 - last.0) + usize::from(first.1 - first.0) + 2;
        if first.0 == set.domain_min() && last.1 == set.domain_max() && merged >= wrap_min {
            out.remove(0);
            let n = out.len();
            out[n - 1] = (last.0, first.1);
        }
    }
    out
}

/// The number of values a run covers, wrapped or not.
pub(crate) fn run_len(set: &ValueSet, (a, b): (u16, u16)) -> usize {
    if a <= b {
        usize::from(b - a) + 1
    } else {
        usize::from(set.domain_max() - a) + 1 + usize::from(b - set.domain_min()) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(values: &[u16], min: u16, max: u16) -> ValueSet {
        let mut s = ValueSet::empty(min, max);
        for &v in values {
            s.insert(v);
        }
        s
    }

    #[test]
    fn progressions() {
        let s = set(&[0, 15, 30, 45], 0, 59);
        let p = progression(&s, 3).unwrap();
        assert_eq!((p.start, p.step, p.last, p.count), (0, 15, 45, 4));
        assert!(p.is_even_cycle(&s));
        let s = set(&[0, 7, 14, 21, 28, 35, 42, 49, 56], 0, 59);
        let p = progression(&s, 3).unwrap();
        assert!(p.reaches_end(&s) && !p.is_even_cycle(&s));
        assert_eq!(progression(&set(&[1, 2, 3], 0, 59), 3), None);
        assert_eq!(progression(&set(&[1, 3, 6], 0, 59), 3), None);
        assert_eq!(progression(&set(&[1, 3], 0, 59), 3), None);
    }

    #[test]
    fn runs_wrap() {
        let s = set(&[0, 1, 2, 10, 22, 23], 0, 23);
        assert_eq!(runs(&s, None), [(0, 2), (10, 10), (22, 23)]);
        assert_eq!(runs(&s, Some(3)), [(10, 10), (22, 2)]);
        let s = set(&[0, 3, 23], 0, 23);
        assert_eq!(runs(&s, Some(3)), [(0, 0), (3, 3), (23, 23)]);
        assert_eq!(runs(&s, Some(2)), [(3, 3), (23, 0)]);
        assert_eq!(run_len(&s, (22, 2)), 5);
        let full = set(&(0..24).collect::<Vec<_>>(), 0, 23);
        assert_eq!(runs(&full, Some(2)), [(0, 23)]);
    }
}
