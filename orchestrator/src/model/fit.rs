//! Fitted curves: the scaling model (when the i-th instance starts, how instance durations spread at scale) and the packing curve.

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::curve::{Pchip, cv, mean, median, quantile};
use super::profile::{PackingProfile, ScalingProfile};

/// What the scaling runs say about the platform and the app at scale.
///
/// Start offsets in a run of `n` instances follow a universal arrival curve
/// `U(i)` (instance i of a long run: ≈47 ms per instance on 2021 Lambda)
/// except that the last instances of a run catch up: the client stops
/// spawning and the stragglers of the launch are compressed. So instance `i`
/// of an `n`-instance run starts at `min(U(i), L(n))` after the first, where
/// `L(n)` is the measured start of the last instance of an `n`-instance run.
/// Both curves are monotone (PCHIP) and extrapolate linearly with the slope
/// of the long run's middle, so they stay sane beyond the measured C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingModel {
    /// Seconds from the client's start until the first handler starts (cold start included).
    pub first_start_s: f64,
    /// `U(i)`: start of instance i after the first, in a long run.
    pub arrival: Pchip,
    /// `L(n - 1)`: start of the last instance of an n-instance run, after the first.
    pub last_start: Pchip,
    /// Seconds per additional instance far beyond the measurements.
    pub slope_s_per_instance: f64,
    /// Median handler duration with k = 1 at scale, seconds.
    pub duration_median_s: f64,
    /// Mean handler duration with k = 1 at scale, seconds.
    pub duration_mean_s: f64,
    /// 90th percentile of the handler duration with k = 1 at scale, seconds.
    pub duration_p90_s: f64,
    /// Coefficient of variation of handler durations with k = 1 at scale.
    pub duration_cv: f64,
    /// Largest C measured.
    pub max_measured_concurrency: u64,
}

/// z-value of the 90th percentile of the standard normal.
pub(crate) const Z90: f64 = 1.281_551_565_5;

impl ScalingModel {
    /// Fits the model from the scaling runs.
    pub fn fit(profile: &ScalingProfile) -> Result<Self, ModelError> {
        profile.validate()?;
        let mut runs: Vec<_> = profile
            .runs
            .iter()
            .filter(|r| !r.instances.is_empty())
            .collect();
        runs.sort_by_key(|r| r.instances.len());
        let longest = runs.last().expect("validate ensures a non-empty run");
        let starts: Vec<f64> = longest.instances.iter().map(|i| i.start_s).collect();
        let n = starts.len();

        // Arrival curve from windowed medians of the longest run, which damps
        // the jitter of single launches; knots stop before the run's own
        // catch-up at the end, which is what `last_start` describes.
        let mut knot_idx: Vec<usize> = vec![0, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 400];
        let mut u = 600;
        while u < n {
            knot_idx.push(u);
            u = (u as f64 * 1.5) as usize;
        }
        let limit = ((n as f64) * 0.9) as usize;
        knot_idx.retain(|&i| i < limit.max(2));
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for &i in &knot_idx {
            let w = (i / 10).max(2);
            let lo = i.saturating_sub(w);
            let hi = (i + w + 1).min(n);
            xs.push(i as f64);
            ys.push(median(&starts[lo..hi]).unwrap_or(0.0).max(0.0));
        }
        // Slope beyond the measurements: least squares over the middle of the longest run.
        let (a, b) = (
            (n as f64 * 0.3) as usize,
            limit.max((n as f64 * 0.3) as usize + 2).min(n),
        );
        let slope = if b > a + 1 {
            let idx: Vec<f64> = (a..b).map(|i| i as f64).collect();
            let mi = mean(&idx).unwrap_or(0.0);
            let ms = mean(&starts[a..b]).unwrap_or(0.0);
            let num: f64 = (a..b).map(|i| (i as f64 - mi) * (starts[i] - ms)).sum();
            let den: f64 = idx.iter().map(|i| (i - mi).powi(2)).sum();
            if den > 0.0 { (num / den).max(0.0) } else { 0.0 }
        } else {
            0.0
        };
        let arrival = Pchip::new(&xs, &ys, Some(slope)).expect("at least one knot");

        let mut lx = vec![0.0];
        let mut ly = vec![0.0];
        for r in &runs {
            let last = (r.instances.len() - 1) as f64;
            let s = r.instances.last().map_or(0.0, |i| i.start_s).max(0.0);
            if last > *lx.last().expect("non-empty") {
                lx.push(last);
                ly.push(s);
            } else if let Some(y) = ly.last_mut() {
                // Equal sizes: keep the larger, the curve is monotone anyway.
                *y = y.max(s);
            }
        }
        let last_start = Pchip::new(&lx, &ly, Some(slope)).expect("at least one knot");

        // Client start to first handler start: the client's service time less
        // the last end relative to the first start.
        let offsets: Vec<f64> = runs
            .iter()
            .filter_map(|r| {
                let end = r
                    .instances
                    .iter()
                    .map(|i| i.start_s + i.duration_s)
                    .fold(f64::MIN, f64::max);
                r.service_time_s.map(|s| s - end)
            })
            .filter(|o| o.is_finite() && *o >= 0.0)
            .collect();
        let first_start_s = median(&offsets).unwrap_or(0.0);

        let durations: Vec<f64> = runs
            .iter()
            .flat_map(|r| r.instances.iter().map(|i| i.duration_s))
            .collect();
        Ok(Self {
            first_start_s,
            arrival,
            last_start,
            slope_s_per_instance: slope,
            duration_median_s: median(&durations).unwrap_or(0.0),
            duration_mean_s: mean(&durations).unwrap_or(0.0),
            duration_p90_s: quantile(&durations, 0.9).unwrap_or(0.0),
            duration_cv: cv(&durations),
            max_measured_concurrency: runs.iter().map(|r| r.concurrency).max().unwrap_or(0),
        })
    }

    /// Seconds after the first instance's start at which instance `i` (0-based,
    /// launch order) of an `n`-instance launch starts.
    pub fn start_offset_s(&self, n: u64, i: u64) -> f64 {
        let i = i.min(n.saturating_sub(1));
        self.arrival
            .eval(i as f64)
            .min(self.last_start.eval(n.saturating_sub(1) as f64))
            .max(0.0)
    }

    /// How much longer an instance runs at scale than the same work on one warm
    /// instance: 1 + the coefficient of variation of k = 1 durations at scale.
    ///
    /// Why: a warm single instance hides the contention that a launch of
    /// hundreds of instances meets (shared storage, noisy neighbours). The k = 1
    /// runs show it as spread — tight for CPU-bound apps (CV ≈ 0.02), heavy for
    /// I/O-bound ones (`sort`: CV ≈ 1) — and an instance running k tasks in
    /// parallel keeps going until its slowest task ends, so it pays roughly one
    /// standard deviation on top of the mean.
    pub fn slowdown(&self) -> f64 {
        1.0 + self.duration_cv
    }

    /// Log-normal sigma of one task's duration at scale, from median and p90.
    pub fn task_sigma(&self) -> f64 {
        if self.duration_median_s > 0.0 && self.duration_p90_s > self.duration_median_s {
            (self.duration_p90_s / self.duration_median_s).ln() / Z90
        } else {
            0.0
        }
    }
}

/// Execution time of one instance running k tasks, by monotone interpolation of the mean per measured k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingCurve {
    /// PCHIP over (k, mean seconds).
    pub curve: Pchip,
    /// Mean coefficient of variation over the k with repeats (0 without repeats).
    pub spread_cv: f64,
    /// Smallest k measured.
    pub k_min: u64,
    /// Largest k measured.
    pub k_max: u64,
    /// PCHIP over (k, mean CPU seconds of the k tasks), when the profile measured them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Pchip>,
}

impl PackingCurve {
    /// Fits the curve; repeated samples of one k are averaged.
    pub fn fit(profile: &PackingProfile) -> Result<Self, ModelError> {
        profile.validate()?;
        let mut by_k: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for s in &profile.samples {
            by_k.entry(s.k).or_default().extend(&s.seconds);
        }
        by_k.retain(|_, v| !v.is_empty());
        let xs: Vec<f64> = by_k.keys().map(|&k| k as f64).collect();
        let ys: Vec<f64> = by_k.values().map(|v| mean(v).unwrap_or(0.0)).collect();
        let cvs: Vec<f64> = by_k
            .values()
            .filter(|v| v.len() > 1)
            .map(|v| cv(v))
            .collect();
        let curve = Pchip::new(&xs, &ys, None)
            .ok_or_else(|| ModelError::Invalid("packing profile has no samples".into()))?;
        let mut cpu_by_k: std::collections::BTreeMap<u64, Vec<f64>> = Default::default();
        for s in profile.samples.iter().filter(|s| !s.cpu_seconds.is_empty()) {
            cpu_by_k.entry(s.k).or_default().extend(&s.cpu_seconds);
        }
        // Only a curve measured at every k is used: a partial one would mix assumptions.
        let cpu = (cpu_by_k.len() == by_k.len())
            .then(|| {
                let cx: Vec<f64> = cpu_by_k.keys().map(|&k| k as f64).collect();
                let cy: Vec<f64> = cpu_by_k.values().map(|v| mean(v).unwrap_or(0.0)).collect();
                Pchip::new(&cx, &cy, None)
            })
            .flatten();
        Ok(Self {
            curve,
            spread_cv: mean(&cvs).unwrap_or(0.0),
            k_min: *by_k.keys().next().expect("non-empty"),
            k_max: *by_k.keys().next_back().expect("non-empty"),
            cpu,
        })
    }

    /// Seconds for one instance running `k` tasks (monotone in k).
    pub fn seconds(&self, k: u64) -> f64 {
        self.curve.eval(k as f64)
    }

    /// CPU seconds `k` tasks use together, when the profile measured them.
    pub fn cpu_seconds(&self, k: u64) -> Option<f64> {
        self.cpu.as_ref().map(|c| c.eval(k as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::super::profile::{
        InstanceSample, PROFILE_SCHEMA_VERSION, PackingSample, ScalingRun,
    };
    use super::*;

    /// A synthetic launch: instance i starts at 0.05 i, except the last 10% which catch up.
    fn run(c: u64, dur: impl Fn(usize) -> f64) -> ScalingRun {
        let n = c as usize;
        let cut = (n as f64 * 0.9) as usize;
        let instances = (0..n)
            .map(|i| {
                let s = if i < cut {
                    0.05 * i as f64
                } else {
                    0.05 * cut as f64 + 0.01 * (i - cut) as f64
                };
                InstanceSample {
                    start_s: s,
                    duration_s: dur(i),
                }
            })
            .collect::<Vec<_>>();
        let end = instances
            .iter()
            .map(|i| i.start_s + i.duration_s)
            .fold(0.0, f64::max);
        ScalingRun {
            concurrency: c,
            scale_time_s: None,
            service_time_s: Some(end + 2.0),
            instances,
        }
    }

    fn profile() -> ScalingProfile {
        ScalingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "syn".into(),
            platform: "aws-2021".into(),
            runs: vec![
                run(100, |_| 1.0),
                run(1000, |i| if i % 2 == 0 { 1.0 } else { 3.0 }),
            ],
        }
    }

    #[test]
    fn scaling_fit_recovers_arrivals_offset_and_spread() {
        let m = ScalingModel::fit(&profile()).unwrap();
        assert!(
            (m.slope_s_per_instance - 0.05).abs() < 1e-6,
            "{}",
            m.slope_s_per_instance
        );
        assert!((m.first_start_s - 2.0).abs() < 1e-9, "{}", m.first_start_s);
        // Middle of a long launch follows the arrival curve.
        assert!((m.start_offset_s(1000, 500) - 25.0).abs() < 0.1);
        // The last instance of a 1000-instance launch starts where measured.
        assert!((m.start_offset_s(1000, 999) - (0.05 * 900.0 + 0.01 * 99.0)).abs() < 1e-6);
        // Beyond the measurements: linear at the fitted slope, monotone in i and n.
        let far = m.start_offset_s(100_000, 99_999);
        assert!(
            (far - m.start_offset_s(1000, 999) - 0.05 * 99_000.0).abs() < 1.0,
            "{far}"
        );
        let mut prev = 0.0;
        for i in (0..20_000).step_by(97) {
            let s = m.start_offset_s(20_000, i);
            assert!(s >= prev);
            prev = s;
        }
        // Durations 1, 1, 3, 1, 3... : mean 1.909, CV > 0.
        assert!(m.duration_cv > 0.4 && m.slowdown() > 1.4);
        assert_eq!(m.max_measured_concurrency, 1000);
    }

    #[test]
    fn packing_curve_averages_repeats_and_extrapolates_monotonically() {
        let p = PackingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "syn".into(),
            memory_mb: 10_240,
            vcpus: 6,
            samples: vec![
                PackingSample {
                    k: 1,
                    seconds: vec![1.0, 1.2],
                    cpu_seconds: Vec::new(),
                },
                PackingSample {
                    k: 4,
                    seconds: vec![2.0],
                    cpu_seconds: Vec::new(),
                },
                PackingSample {
                    k: 8,
                    seconds: vec![4.0],
                    cpu_seconds: Vec::new(),
                },
            ],
        };
        let c = PackingCurve::fit(&p).unwrap();
        assert!((c.seconds(1) - 1.1).abs() < 1e-12);
        assert!((c.seconds(8) - 4.0).abs() < 1e-12);
        assert!(c.seconds(2) > 1.1 && c.seconds(2) < 2.0);
        assert!((c.seconds(16) - 8.0).abs() < 1e-9);
        assert!(c.spread_cv > 0.0);
        assert_eq!((c.k_min, c.k_max), (1, 8));
    }
}
