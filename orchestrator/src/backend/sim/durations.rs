//! Execution-time distributions of one instance running k tasks, as the simulator draws them.

use rand::Rng;
use serde::{Deserialize, Serialize};

/// Errors building a duration model.
#[derive(Debug, thiserror::Error)]
pub enum DurationError {
    /// No (k, seconds) point to interpolate.
    #[error("a packing curve needs at least one (k, seconds) point")]
    Empty,
    /// A point with k = 0, a negative or non-finite time.
    #[error(
        "packing curve point (k = {k}, {seconds} s) is invalid: k must be ≥ 1 and seconds finite and ≥ 0"
    )]
    BadPoint {
        /// Packing degree.
        k: usize,
        /// Seconds.
        seconds: f64,
    },
}

/// What the simulator needs to know about a workload: how long an instance running k tasks takes.
pub trait DurationSampler: Send + Sync {
    /// Median handler duration, seconds, of an instance running `k` tasks.
    fn median_s(&self, k: usize) -> f64;
    /// One handler duration, seconds, drawn for an instance running `k` tasks.
    fn sample(&self, k: usize, rng: &mut dyn rand::RngCore) -> f64;
}

/// A packing curve (median duration per k, interpolated) plus an empirical spread.
///
/// The spread is additive, in seconds, because the artifact's data shows
/// stragglers of a few seconds at every k (a slow S3 request or a slow host),
/// not ones proportional to k: sort's k = 1 instances at scale have a p99 of
/// +4.7 s over a 0.7 s median, and its k = 15 instances +5 s over 19 s.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingDurations {
    /// `(k, median seconds)`, strictly increasing in k.
    points: Vec<(usize, f64)>,
    /// Sorted residuals (seconds, around a median of 0) sampled uniformly;
    /// empty = no spread (every instance takes exactly the median).
    residuals: Vec<f64>,
    /// Durations never fall below this fraction of the median (a residual
    /// sampled at k = 1 must not make a long packed instance negative).
    #[serde(default = "default_floor")]
    floor_fraction: f64,
}

fn default_floor() -> f64 {
    0.5
}

impl PackingDurations {
    /// A curve from `(k, median seconds)` points (any order; repeated k are averaged).
    pub fn new(points: impl IntoIterator<Item = (usize, f64)>) -> Result<Self, DurationError> {
        let mut pts: Vec<(usize, f64)> = Vec::new();
        let mut raw: Vec<(usize, f64)> = points.into_iter().collect();
        for &(k, seconds) in &raw {
            if k == 0 || !seconds.is_finite() || seconds < 0.0 {
                return Err(DurationError::BadPoint { k, seconds });
            }
        }
        raw.sort_by_key(|p| p.0);
        let mut i = 0;
        while i < raw.len() {
            let k = raw[i].0;
            let group: Vec<f64> = raw[i..]
                .iter()
                .take_while(|p| p.0 == k)
                .map(|p| p.1)
                .collect();
            i += group.len();
            pts.push((k, group.iter().sum::<f64>() / group.len() as f64));
        }
        if pts.is_empty() {
            return Err(DurationError::Empty);
        }
        Ok(Self {
            points: pts,
            residuals: Vec::new(),
            floor_fraction: default_floor(),
        })
    }

    /// Adds an empirical spread: `samples` are observed durations of instances
    /// that should all have taken the same time; their deviations from their
    /// own median become the residuals drawn at every k.
    pub fn with_spread_from(mut self, samples: &[f64]) -> Self {
        let mut v: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            self.residuals.clear();
            return self;
        }
        v.sort_by(f64::total_cmp);
        let med = v[v.len() / 2];
        self.residuals = v.into_iter().map(|x| x - med).collect();
        self
    }

    /// The curve's points.
    pub fn points(&self) -> &[(usize, f64)] {
        &self.points
    }

    /// The residuals (sorted seconds).
    pub fn residuals(&self) -> &[f64] {
        &self.residuals
    }

    /// Largest k the curve was measured at.
    pub fn kmax(&self) -> usize {
        self.points.last().map_or(1, |p| p.0)
    }
}

impl DurationSampler for PackingDurations {
    /// Piecewise-linear between measured k; the last segment's slope beyond them
    /// (packing past kmax only time-shares the same vCPUs, so time keeps growing linearly).
    fn median_s(&self, k: usize) -> f64 {
        let p = &self.points;
        if p.len() == 1 {
            // One point: beyond it, assume time proportional to k (no free parallelism known).
            let (k0, t0) = p[0];
            return if k <= k0 {
                t0
            } else {
                t0 * k as f64 / k0 as f64
            };
        }
        if k <= p[0].0 {
            return p[0].1;
        }
        let idx = p.partition_point(|q| q.0 < k);
        let (a, b) = if idx >= p.len() {
            (p[p.len() - 2], p[p.len() - 1])
        } else if p[idx].0 == k {
            return p[idx].1;
        } else {
            (p[idx - 1], p[idx])
        };
        let t = (k as f64 - a.0 as f64) / (b.0 as f64 - a.0 as f64);
        (a.1 + t * (b.1 - a.1)).max(0.0)
    }

    fn sample(&self, k: usize, rng: &mut dyn rand::RngCore) -> f64 {
        let med = self.median_s(k);
        if self.residuals.is_empty() {
            return med;
        }
        // Interpolated inverse CDF of the residuals: continuous, so two seeds
        // rarely produce identical runs even with few residuals.
        let u: f64 = rng.random::<f64>() * (self.residuals.len() - 1) as f64;
        let i = u.floor() as usize;
        let f = u - i as f64;
        let r = if i + 1 < self.residuals.len() {
            self.residuals[i] * (1.0 - f) + self.residuals[i + 1] * f
        } else {
            self.residuals[i]
        };
        (med + r).max(med * self.floor_fraction)
    }
}

/// Another sampler's durations multiplied per k: the workload at another function memory
/// (`ratios[k − 1]` from [`crate::model::Model::memory_ratio`]; the last one beyond the list).
pub struct Scaled<'a> {
    inner: &'a dyn DurationSampler,
    ratios: Vec<f64>,
}

impl<'a> Scaled<'a> {
    /// `inner`'s durations of k tasks times `ratios[k − 1]`.
    pub fn new(inner: &'a dyn DurationSampler, ratios: Vec<f64>) -> Self {
        Self { inner, ratios }
    }

    fn ratio(&self, k: usize) -> f64 {
        self.ratios
            .get(k.max(1) - 1)
            .or(self.ratios.last())
            .copied()
            .unwrap_or(1.0)
    }
}

impl DurationSampler for Scaled<'_> {
    fn median_s(&self, k: usize) -> f64 {
        self.inner.median_s(k) * self.ratio(k)
    }

    fn sample(&self, k: usize, rng: &mut dyn rand::RngCore) -> f64 {
        self.inner.sample(k, rng) * self.ratio(k)
    }
}

/// A lognormal fitted to a median and a 90th percentile (as platform cold starts are given).
pub fn lognormal_from_median_p90(median: f64, p90: f64, rng: &mut dyn rand::RngCore) -> f64 {
    if median <= 0.0 {
        return 0.0;
    }
    // z of the 90th percentile of a standard normal.
    const Z90: f64 = 1.281_551_565_545;
    let sigma = (p90.max(median) / median).ln() / Z90;
    if sigma == 0.0 {
        return median;
    }
    median * (sigma * standard_normal(rng)).exp()
}

/// A standard normal draw (Box–Muller; rand_distr is not a dependency).
pub fn standard_normal(rng: &mut dyn rand::RngCore) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn extrapolation_takes_the_last_segment_and_one_point_scales_with_k() {
        // Five points (so the last segment is not also the middle one): beyond k = 16 the
        // slope of 8 → 16, 1 s per task.
        let c =
            PackingDurations::new([(1, 1.0), (2, 2.0), (4, 3.0), (8, 4.0), (16, 12.0)]).unwrap();
        assert!((c.median_s(20) - 16.0).abs() < 1e-12);
        // One point (k0 = 2, 4 s): its time at and below it, proportional to k beyond it.
        let one = PackingDurations::new([(2, 4.0)]).unwrap();
        assert_eq!(one.median_s(1), 4.0);
        assert!((one.median_s(6) - 12.0).abs() < 1e-12);
    }

    #[test]
    fn a_stored_curve_without_a_floor_keeps_half_the_median() {
        let c: PackingDurations =
            serde_json::from_value(serde_json::json!({"points": [[1, 2.0]], "residuals": []}))
                .unwrap();
        assert_eq!(c.floor_fraction, 0.5);
    }

    #[test]
    fn curve_interpolates_and_extrapolates_linearly() {
        let c = PackingDurations::new([(1, 2.0), (4, 5.0), (8, 13.0)]).unwrap();
        assert_eq!(c.median_s(1), 2.0);
        assert!((c.median_s(2) - 3.0).abs() < 1e-12);
        assert_eq!(c.median_s(4), 5.0);
        assert!((c.median_s(6) - 9.0).abs() < 1e-12);
        // Slope of the last segment, 2 s per task.
        assert!((c.median_s(10) - 17.0).abs() < 1e-12);
        assert_eq!(c.kmax(), 8);
    }

    /// At a measured k the curve is that point's value exactly, the last one included
    /// (interpolating to it, 0.2 + (0.9 − 0.2), would give 0.8999999999999999).
    #[test]
    fn measured_points_are_returned_exactly() {
        let d = PackingDurations::new([(1, 0.2), (2, 0.9)]).unwrap();
        assert_eq!(d.median_s(2), 0.9);
        assert_eq!(d.median_s(1), 0.2);
        let d = PackingDurations::new([(1, 0.2), (2, 0.9), (4, 1.0)]).unwrap();
        assert_eq!(d.median_s(2), 0.9);
        assert_eq!(d.median_s(4), 1.0);
    }

    #[test]
    fn repeated_points_are_averaged_and_bad_ones_rejected() {
        let c = PackingDurations::new([(2, 3.0), (1, 1.0), (2, 5.0)]).unwrap();
        assert_eq!(c.points(), &[(1, 1.0), (2, 4.0)]);
        assert!(PackingDurations::new([(0, 1.0)]).is_err());
        assert!(PackingDurations::new([(1, f64::NAN)]).is_err());
        assert!(PackingDurations::new(Vec::new()).is_err());
    }

    #[test]
    fn single_point_scales_with_k() {
        let c = PackingDurations::new([(1, 2.0)]).unwrap();
        assert_eq!(c.median_s(1), 2.0);
        assert_eq!(c.median_s(3), 6.0);
    }

    #[test]
    fn spread_is_centred_and_sampled_within_range() {
        let c = PackingDurations::new([(1, 10.0)])
            .unwrap()
            .with_spread_from(&[1.0, 2.0, 3.0, 4.0, 9.0]);
        assert_eq!(c.residuals(), &[-2.0, -1.0, 0.0, 1.0, 6.0]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let draws: Vec<f64> = (0..2000).map(|_| c.sample(1, &mut rng)).collect();
        assert!(draws.iter().all(|d| (8.0..=16.0).contains(d)));
        assert!(
            draws.iter().any(|d| *d > 12.0),
            "the straggler tail is drawn"
        );
        let below = draws.iter().filter(|d| **d < 10.0).count();
        assert!(
            (800..1200).contains(&below),
            "median residual is 0: {below}"
        );
    }

    /// One residual is the whole spread (it is centred, so 0): every draw is the median.
    #[test]
    fn a_single_residual_draws_the_median() {
        let c = PackingDurations::new([(1, 2.0)])
            .unwrap()
            .with_spread_from(&[5.0]);
        assert_eq!(c.residuals(), &[0.0]);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(c.sample(1, &mut rng), 2.0);
    }

    /// `Scaled` multiplies k tasks' durations by `ratios[k − 1]`, the last ratio beyond the
    /// list, 1 without ratios.
    #[test]
    fn scaled_durations_use_the_ratio_of_their_k() {
        let inner = PackingDurations::new([(1, 1.0), (2, 2.0), (3, 3.0)]).unwrap();
        let s = Scaled::new(&inner, vec![2.0, 3.0]);
        assert_eq!(s.median_s(1), 2.0);
        assert_eq!(s.median_s(2), 6.0);
        assert_eq!(s.median_s(3), 9.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(s.sample(2, &mut rng), 6.0);
        assert_eq!(Scaled::new(&inner, Vec::new()).median_s(2), 2.0);
    }

    #[test]
    fn lognormal_has_its_median_and_p90() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let mut v: Vec<f64> = (0..20_000)
            .map(|_| lognormal_from_median_p90(250.0, 600.0, &mut rng))
            .collect();
        v.sort_by(f64::total_cmp);
        let med = v[10_000];
        let p90 = v[18_000];
        assert!((med - 250.0).abs() < 10.0, "{med}");
        assert!((p90 - 600.0).abs() < 30.0, "{p90}");
        assert_eq!(lognormal_from_median_p90(0.0, 0.0, &mut rng), 0.0);
    }
}
