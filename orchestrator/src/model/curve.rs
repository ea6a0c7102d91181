//! Monotone interpolation (PCHIP, Fritsch–Carlson) with linear extrapolation, and small statistics helpers.

use serde::{Deserialize, Serialize};

/// A monotone piecewise-cubic Hermite interpolant through non-decreasing knots.
///
/// Beyond the last knot it continues linearly with `tail_slope` (never
/// negative), and before the first with the first segment's secant slope,
/// clamped so the value never drops below zero: a curve fitted to a handful of
/// samples must stay monotone and non-negative wherever the planner asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pchip {
    xs: Vec<f64>,
    ys: Vec<f64>,
    ds: Vec<f64>,
    tail_slope: f64,
}

impl Pchip {
    /// Fits through `(xs, ys)`; `xs` strictly increasing. `ys` are made
    /// non-decreasing (running maximum) and non-negative first, because the
    /// quantities modelled (time to start n instances, time to run k tasks)
    /// cannot shrink as their argument grows. `tail_slope` of `None` uses the
    /// last secant. Returns `None` with no knots.
    pub fn new(xs: &[f64], ys: &[f64], tail_slope: Option<f64>) -> Option<Self> {
        if xs.is_empty() || xs.len() != ys.len() {
            return None;
        }
        let mut mono = Vec::with_capacity(ys.len());
        let mut run = 0.0_f64;
        for &y in ys {
            run = run.max(y);
            mono.push(run);
        }
        let ys = mono;
        let n = xs.len();
        let secant: Vec<f64> = (0..n.saturating_sub(1))
            .map(|i| (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]))
            .collect();
        let mut ds = vec![0.0; n];
        if n >= 2 {
            ds[0] = secant[0];
            ds[n - 1] = secant[n - 2];
            for i in 1..n - 1 {
                let (a, b) = (secant[i - 1], secant[i]);
                // Fritsch–Carlson: zero slope at local plateaus, weighted
                // harmonic mean otherwise, which keeps every segment monotone.
                ds[i] = if a <= 0.0 || b <= 0.0 {
                    0.0
                } else {
                    let (h0, h1) = (xs[i] - xs[i - 1], xs[i + 1] - xs[i]);
                    let (w1, w2) = (2.0 * h1 + h0, h1 + 2.0 * h0);
                    (w1 + w2) / (w1 / a + w2 / b)
                };
            }
            for (i, s) in secant.iter().enumerate() {
                if *s == 0.0 {
                    ds[i] = 0.0;
                    ds[i + 1] = 0.0;
                } else {
                    // Limit the end slopes to 3x the secant (monotonicity region).
                    ds[i] = ds[i].min(3.0 * s);
                    ds[i + 1] = ds[i + 1].min(3.0 * s);
                }
            }
        }
        let tail = tail_slope
            .unwrap_or_else(|| secant.last().copied().unwrap_or(0.0))
            .max(0.0);
        Some(Self {
            xs: xs.to_vec(),
            ys,
            ds,
            tail_slope: tail,
        })
    }

    /// The value at `x`.
    pub fn eval(&self, x: f64) -> f64 {
        let n = self.xs.len();
        if n == 1 {
            return (self.ys[0] + (x - self.xs[0]).max(0.0) * self.tail_slope).max(0.0);
        }
        if x <= self.xs[0] {
            let slope = (self.ys[1] - self.ys[0]) / (self.xs[1] - self.xs[0]);
            return (self.ys[0] + (x - self.xs[0]) * slope).max(0.0);
        }
        if x >= self.xs[n - 1] {
            return self.ys[n - 1] + (x - self.xs[n - 1]) * self.tail_slope;
        }
        let i = self.xs.partition_point(|&v| v <= x) - 1;
        let h = self.xs[i + 1] - self.xs[i];
        let t = (x - self.xs[i]) / h;
        let (t2, t3) = (t * t, t * t * t);
        let h00 = 2.0 * t3 - 3.0 * t2 + 1.0;
        let h10 = t3 - 2.0 * t2 + t;
        let h01 = -2.0 * t3 + 3.0 * t2;
        let h11 = t3 - t2;
        h00 * self.ys[i] + h10 * h * self.ds[i] + h01 * self.ys[i + 1] + h11 * h * self.ds[i + 1]
    }

    /// The knots' x values.
    pub fn knots(&self) -> &[f64] {
        &self.xs
    }
}

/// Median of `v` (mean of the middle two for even lengths); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Mean of `v`; `None` when empty.
pub fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Coefficient of variation (population standard deviation / mean); 0 when undefined.
pub fn cv(v: &[f64]) -> f64 {
    match mean(v) {
        Some(m) if m > 0.0 && v.len() > 1 => {
            let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64;
            var.sqrt() / m
        }
        _ => 0.0,
    }
}

/// Linear-interpolated quantile `q` of `v` (type 7); `None` when empty.
pub fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pos = q.clamp(0.0, 1.0) * (s.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(s[lo] + (pos - lo as f64) * (s[hi] - s[lo]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_knots_and_stays_monotone() {
        let xs = [1.0, 2.0, 4.0, 8.0, 16.0];
        let ys = [1.0, 1.9, 3.0, 6.0, 10.0];
        let p = Pchip::new(&xs, &ys, None).unwrap();
        for (x, y) in xs.iter().zip(ys) {
            assert!((p.eval(*x) - y).abs() < 1e-12);
        }
        let mut prev = p.eval(0.0);
        assert!(prev >= 0.0);
        for i in 1..4000 {
            let v = p.eval(i as f64 * 0.01);
            assert!(v >= prev - 1e-12, "not monotone at {}", i as f64 * 0.01);
            prev = v;
        }
        // Extrapolates with the last secant (4 / 8 per unit).
        assert!((p.eval(24.0) - 14.0).abs() < 1e-9);
    }

    #[test]
    fn decreasing_samples_are_flattened_not_followed() {
        let p = Pchip::new(&[1.0, 2.0, 3.0], &[5.0, 4.0, 6.0], None).unwrap();
        assert!(p.eval(2.0) >= 5.0);
        assert!(p.eval(2.5) >= 5.0 && p.eval(2.5) <= 6.0);
    }

    #[test]
    fn flat_plateau_does_not_overshoot() {
        let p = Pchip::new(&[0.0, 1.0, 2.0, 3.0], &[0.0, 1.0, 1.0, 2.0], Some(0.0)).unwrap();
        for i in 0..=100 {
            let x = 1.0 + i as f64 * 0.01;
            assert!((p.eval(x) - 1.0).abs() < 1e-12);
        }
        assert_eq!(p.eval(10.0), 2.0);
    }

    #[test]
    fn statistics_helpers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0, 5.0], 0.5), Some(3.0));
        assert_eq!(quantile(&[0.0, 10.0], 0.9), Some(9.0));
        assert!((cv(&[1.0, 3.0]) - 0.5).abs() < 1e-12);
        assert_eq!(cv(&[2.0]), 0.0);
    }
}
