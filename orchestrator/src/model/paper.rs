//! The ProPack artifact's own model (`--model paper`), kept for comparison: a degree-4 polynomial of scale time in C plus the measured packing time.
//!
//! Reconstructed from the paper and the artifact's data layout: the scale time
//! of `n` instances is a least-squares degree-4 polynomial through the
//! `scale_time.txt` points (client time to issue C invocations), and the
//! service time of a metric is that polynomial at the metric's launch position
//! (n, ⌊q·n⌋ or ⌊n/2⌋) plus the packing curve's time for k tasks. It has no
//! cold start, no spread at scale and no catch-up at the end of a launch, and
//! the polynomial is neither monotone nor sane beyond the measured C, which is
//! why the default model replaces it.

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::profile::ScalingProfile;

/// Degree of the artifact's scaling polynomial.
pub const DEGREE: usize = 4;

/// x values are scaled by this before fitting, so the normal equations stay well conditioned.
const X_SCALE: f64 = 1000.0;

/// The artifact's scaling polynomial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaperScaling {
    /// Coefficients of the polynomial in `n / 1000`, constant first.
    pub coefficients: Vec<f64>,
}

impl PaperScaling {
    /// Fits the polynomial through `(C, scale_time_s)` of every run that has a scale time.
    pub fn fit(profile: &ScalingProfile) -> Result<Self, ModelError> {
        let pts: Vec<(f64, f64)> = profile
            .runs
            .iter()
            .filter_map(|r| r.scale_time_s.map(|s| (r.concurrency as f64 / X_SCALE, s)))
            .collect();
        if pts.is_empty() {
            return Err(ModelError::Invalid(
                "the paper model needs scale times (scale_time_s) in the scaling runs".into(),
            ));
        }
        let degree = DEGREE.min(pts.len() - 1);
        let m = degree + 1;
        // Normal equations A^T A c = A^T y, solved by Gaussian elimination with partial pivoting.
        let mut a = vec![vec![0.0; m + 1]; m];
        for &(x, y) in &pts {
            let pw: Vec<f64> = (0..m).map(|p| x.powi(p as i32)).collect();
            for r in 0..m {
                for c in 0..m {
                    a[r][c] += pw[r] * pw[c];
                }
                a[r][m] += pw[r] * y;
            }
        }
        for col in 0..m {
            let piv = (col..m)
                .max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))
                .expect("non-empty range");
            a.swap(col, piv);
            let d = a[col][col];
            if d.abs() < 1e-300 {
                return Err(ModelError::Invalid(
                    "scale times are degenerate for a polynomial fit".into(),
                ));
            }
            let pivot_row = a[col].clone();
            for (r, row) in a.iter_mut().enumerate() {
                if r != col {
                    let f = row[col] / d;
                    for (x, p) in row.iter_mut().zip(&pivot_row).skip(col) {
                        *x -= f * p;
                    }
                }
            }
        }
        Ok(Self {
            coefficients: (0..m).map(|r| a[r][m] / a[r][r]).collect(),
        })
    }

    /// The polynomial at `n` instances (may be negative or decreasing: that is the point of keeping it).
    pub fn scale_s(&self, n: f64) -> f64 {
        let x = n / X_SCALE;
        self.coefficients
            .iter()
            .rev()
            .fold(0.0, |acc, c| acc * x + c)
    }
}

#[cfg(test)]
mod tests {
    use super::super::profile::{PROFILE_SCHEMA_VERSION, ScalingRun};
    use super::*;

    #[test]
    fn recovers_an_exact_quartic() {
        let f = |c: f64| {
            let x = c / 1000.0;
            1.0 + 40.0 * x + 2.0 * x * x - 0.5 * x.powi(3) + 0.05 * x.powi(4)
        };
        let runs = [100u64, 500, 1000, 2000, 3000, 4000, 5000]
            .iter()
            .map(|&c| ScalingRun {
                concurrency: c,
                scale_time_s: Some(f(c as f64)),
                service_time_s: None,
                instances: vec![],
            })
            .collect();
        let p = PaperScaling::fit(&ScalingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "q".into(),
            platform: String::new(),
            runs,
        })
        .unwrap();
        for c in [100.0, 2500.0, 5000.0, 20_000.0] {
            assert!(
                (p.scale_s(c) - f(c)).abs() < 1e-6 * f(c).abs().max(1.0),
                "{c}"
            );
        }
    }
}
