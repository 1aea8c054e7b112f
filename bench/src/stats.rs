//! Timing samples and their summary: the median (p50) and the 90th percentile (p90).
//!
//! Every sample is the wall-clock time ([`std::time::Instant`], monotonic) of one call,
//! taken the same way for every implementation: the clock starts just before the plugin
//! (or the executor) is asked to run and stops when its result is back, so process spawn,
//! netns entry and the plugin's own work are all inside the sample, and nothing else is.
//!
//! Percentiles are read off the sorted samples by linear interpolation between the two
//! closest ranks (numpy's default), so p50 is the usual median (the mean of the two middle
//! samples when their number is even). Median and p90 rather than the mean: a benchmark on
//! a shared machine sees occasional scheduling outliers that would drag a mean around.

use std::time::Duration;

/// The durations of one kind of call (e.g. every ADD of one variant), in call order.
#[derive(Debug, Clone, Default)]
pub struct Samples {
    durations: Vec<Duration>,
}

impl Samples {
    /// No samples yet, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Samples { durations: Vec::with_capacity(n) }
    }

    /// Records one call's duration.
    pub fn push(&mut self, d: Duration) {
        self.durations.push(d);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.durations.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.durations.is_empty()
    }

    /// The medians of the first and of the last tenth of the samples, in call order (at
    /// least one sample each): how the cost moves as the node fills up with pods.
    pub fn trend(&self) -> Option<(Duration, Duration)> {
        let k = self.durations.len().div_ceil(10);
        let median = |s: &[Duration]| {
            let mut v = s.to_vec();
            v.sort_unstable();
            percentile(&v, 0.5)
        };
        let first = median(self.durations.get(..k)?)?;
        let last = median(self.durations.get(self.durations.len() - k..)?)?;
        Some((first, last))
    }

    /// The median and p90, or `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        let mut sorted = self.durations.clone();
        sorted.sort_unstable();
        Some(Summary {
            p50: percentile(&sorted, 0.5)?,
            p90: percentile(&sorted, 0.9)?,
            min: *sorted.first()?,
            max: *sorted.last()?,
        })
    }
}

/// The summary of a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// The median.
    pub p50: Duration,
    /// The 90th percentile.
    pub p90: Duration,
    /// The fastest sample.
    pub min: Duration,
    /// The slowest sample.
    pub max: Duration,
}

/// The `q`-quantile (0 ≤ q ≤ 1) of samples that are already sorted ascending, interpolated
/// linearly between the two closest ranks; `None` when there are no samples.
pub fn percentile(sorted: &[Duration], q: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    let rank = q.clamp(0.0, 1.0) * last as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let (a, b) = (sorted.get(lo)?.as_secs_f64(), sorted.get(hi)?.as_secs_f64());
    Some(Duration::from_secs_f64(a + (b - a) * (rank - lo as f64)))
}

/// A duration in milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `new / reference`, the ratio the table prints (below 1: `new` is faster).
pub fn ratio(new: Duration, reference: Duration) -> f64 {
    new.as_secs_f64() / reference.as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms_list(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(percentile(&ms_list(&[1, 2, 9]), 0.5), Some(Duration::from_millis(2)));
        assert_eq!(percentile(&ms_list(&[1, 2, 4, 9]), 0.5), Some(Duration::from_millis(3)));
    }

    #[test]
    fn p90_interpolates_between_ranks() {
        let v = ms_list(&(1..=11).collect::<Vec<_>>());
        assert_eq!(percentile(&v, 0.9), Some(Duration::from_millis(10)));
        let v = ms_list(&(1..=10).collect::<Vec<_>>());
        let p90 = percentile(&v, 0.9).map(ms).unwrap_or_default();
        assert!((p90 - 9.1).abs() < 1e-9, "{p90}");
    }

    #[test]
    fn empty_and_single() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&ms_list(&[7]), 0.9), Some(Duration::from_millis(7)));
        assert!(Samples::default().summary().is_none());
    }

    #[test]
    fn trend_compares_the_first_and_last_tenth() {
        let mut s = Samples::default();
        for m in 1..=20 {
            s.push(Duration::from_millis(m));
        }
        let t = s.trend();
        assert_eq!(t, Some((Duration::from_micros(1500), Duration::from_micros(19500))));
        assert!(Samples::default().trend().is_none());
    }

    #[test]
    fn summary_sorts_first() {
        let mut s = Samples::with_capacity(3);
        for m in [9, 1, 5] {
            s.push(Duration::from_millis(m));
        }
        let sum = s.summary();
        assert_eq!(sum.map(|s| (s.p50, s.min, s.max)), Some((ms_list(&[5])[0], ms_list(&[1])[0], ms_list(&[9])[0])));
    }
}
