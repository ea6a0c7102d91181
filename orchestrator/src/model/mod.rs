//! Profiles, the analytical model of service time and expense, the planner and the plan store.
//!
//! # API (stable; the simulator and `orchestrator launch` build on it)
//! - [`profile`]: [`AppProfile`] = [`ScalingProfile`] + [`PackingProfile`] + [`WorkloadProfile`]
//!   (versioned JSON, `schema_version` = [`profile::PROFILE_SCHEMA_VERSION`]).
//! - [`fit`]: [`ScalingModel::fit`] (arrival curve, end-of-launch catch-up, cold start,
//!   spread of durations at scale) and [`PackingCurve::fit`] (PCHIP over the mean per k).
//! - [`Model::new`]`(&AppProfile, PlatformProfile, ModelKind)` then
//!   [`Model::predict`]`(c, k) -> `[`Prediction`] `{ scale_s, total_s, tail_s, median_s, expense_usd, instances, .. }`.
//! - [`planner::plan`]`(&Model, &PlanRequest) -> Result<Plan>` with [`planner::Objective`],
//!   [`planner::Metric`], constraints, infeasibility reasons, the whole curve and the Pareto front.
//! - [`store::PlanStore`]: plans keyed by (function, platform, C, objective, metric).
//! - [`artifact`]: reads `../shared/propack-aws-2021`; [`validate`]: `orchestrator model validate`.
//! - [`paper`]: the artifact's degree-4 polynomial model (`--model paper`).
//!
//! # The model (ModelKind::Propack)
//! A launch of C tasks with packing degree k runs `n = ⌈C/k⌉` instances. Instance `i`
//! (launch order) starts at `T0 + min(U(i), L(n))` on the measured platform (see
//! [`ScalingModel`]) or at the platform profile's arrival rule plus its cold start on
//! any other; with an account limit `A`, instance `i` also waits for instance `i − A`
//! to end (waves). An instance of k tasks runs `D(k) = (P(k) − o) · (1 + CV)` where
//! `P` is the packing curve (one warm instance, client round trip), `o` the invoke
//! overhead (`P(1)` less the median k = 1 handler duration at scale) and CV the spread
//! of k = 1 durations at scale ([`ScalingModel::slowdown`]).
//! - `median_s` / `tail_s`: end of the instance at launch position ⌊n/2⌋ / ⌊q·n⌋;
//! - `total_s`: end of the last instance plus a straggler allowance — the expected
//!   maximum of the durations of the instances that start within one duration of the
//!   end, each log-normal with the k = 1 sigma shrunk by √k (k tasks average out);
//! - `expense_usd`: billed instance time × price per instance-second of the platform's
//!   memory, plus one request per instance, plus Step Functions transitions
//!   ([`STATE_TRANSITIONS_PER_BATCH`] per batch + [`STATE_TRANSITIONS_FIXED`]).
//!
//! [`Model::instance_end_s`] is the artifact's measure (the end of the instance at a
//! launch position, no straggler allowance) and is what validation compares.

pub mod artifact;
pub mod curve;
pub mod fit;
pub mod paper;
pub mod planner;
pub mod profile;
pub mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

use crate::platform::{PlatformProfile, Scaling};
pub use fit::{PackingCurve, ScalingModel};
pub use paper::PaperScaling;
pub use planner::{Metric, Objective, Plan, PlanRequest, plan};
pub use profile::{AppProfile, PackingProfile, PackingSample, ScalingProfile, WorkloadProfile};

/// Step Functions state transitions per batch (the Map iteration's task state).
pub const STATE_TRANSITIONS_PER_BATCH: u64 = 1;
/// Step Functions state transitions per execution (start, Map state, end).
pub const STATE_TRANSITIONS_FIXED: u64 = 3;

/// Errors of the model, planner, importer and store.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file is not valid JSON of the expected shape.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A file of the artifact layout is malformed.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Something the model cannot work with.
    #[error("{0}")]
    Invalid(String),
    /// No k in 1..=kmax satisfies the constraints.
    #[error("no feasible packing degree in 1..={kmax}: {reasons}")]
    Infeasible {
        /// The kmax searched.
        kmax: u64,
        /// Why k = 1 (and so every k) is infeasible.
        reasons: String,
    },
}

/// Which model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelKind {
    /// This crate's model (monotone curves, cold start, stragglers, account limit).
    #[default]
    Propack,
    /// The artifact's degree-4 polynomial model.
    Paper,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Propack => "propack",
            Self::Paper => "paper",
        })
    }
}

impl std::str::FromStr for ModelKind {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "propack" => Ok(Self::Propack),
            "paper" => Ok(Self::Paper),
            _ => Err(ModelError::Invalid(format!(
                "unknown model {s:?} (propack, paper)"
            ))),
        }
    }
}

/// Predicted times (seconds from launch) and expense of one (C, k).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Packing degree.
    pub k: u64,
    /// Instances (batches) launched: ⌈C/k⌉.
    pub instances: u64,
    /// Waves forced by the account concurrency limit (1 = none).
    pub waves: u64,
    /// Until the last instance started.
    pub scale_s: f64,
    /// Until the last task finished.
    pub total_s: f64,
    /// Until the tail quantile of tasks finished.
    pub tail_s: f64,
    /// Until half of the tasks finished.
    pub median_s: f64,
    /// Expected duration of one instance running k tasks at scale.
    pub instance_s: f64,
    /// Billed instance-seconds.
    pub billed_instance_s: f64,
    /// USD: instance time + requests + state transitions.
    pub expense_usd: f64,
}

/// A fitted model for one app on one platform.
#[derive(Debug, Clone)]
pub struct Model {
    /// Which model this is.
    pub kind: ModelKind,
    /// App name.
    pub app: String,
    /// The platform planned for.
    pub platform: PlatformProfile,
    /// Fitted scaling behaviour.
    pub scaling: ScalingModel,
    /// Fitted packing curve.
    pub packing: PackingCurve,
    /// The artifact's polynomial (always fitted when scale times exist; used by `Paper`).
    pub paper: Option<PaperScaling>,
    /// Whether instance starts come from the measurements (platform matches the profile's).
    pub measured_arrivals: bool,
    /// Client round trip beyond the handler, seconds (subtracted from the packing curve).
    pub invoke_overhead_s: f64,
    /// Quantile of the `tail` metric.
    pub tail_quantile: f64,
}

/// `Φ⁻¹(1 − 1/(n + 1))`, the expected rank of the maximum of n standard normals (asymptotic form).
fn z_of_max(n: f64) -> f64 {
    if n < 2.0 {
        return 0.0;
    }
    let l = (2.0 * n.ln()).sqrt();
    (l - ((n.ln()).ln() + (4.0 * std::f64::consts::PI).ln()) / (2.0 * l)).max(0.0)
}

impl Model {
    /// Fits a model of `profile` for `platform`.
    pub fn new(
        profile: &AppProfile,
        platform: PlatformProfile,
        kind: ModelKind,
    ) -> Result<Self, ModelError> {
        profile.validate()?;
        let scaling = ScalingModel::fit(&profile.scaling)?;
        let packing = PackingCurve::fit(&profile.packing)?;
        let paper = PaperScaling::fit(&profile.scaling).ok();
        if kind == ModelKind::Paper && paper.is_none() {
            return Err(ModelError::Invalid(
                "the paper model needs the scaling runs' scale times".into(),
            ));
        }
        let invoke_overhead_s = (packing.seconds(1) - scaling.duration_median_s).max(0.0);
        let measured_arrivals =
            !profile.scaling.platform.is_empty() && profile.scaling.platform == platform.name;
        Ok(Self {
            kind,
            app: profile.app.clone(),
            platform,
            scaling,
            packing,
            paper,
            measured_arrivals,
            invoke_overhead_s,
            tail_quantile: crate::records::DEFAULT_TAIL_QUANTILE,
        })
    }

    /// Sets the tail quantile (0 < q < 1).
    pub fn with_tail_quantile(mut self, q: f64) -> Self {
        self.tail_quantile = q.clamp(0.0, 1.0);
        self
    }

    /// Expected handler duration of one instance running `k` tasks at scale, seconds.
    pub fn instance_duration_s(&self, k: u64) -> f64 {
        let k = k.max(1);
        match self.kind {
            ModelKind::Paper => self.packing.seconds(k),
            ModelKind::Propack => {
                let warm = (self.packing.seconds(k) - self.invoke_overhead_s)
                    .max(0.05 * self.packing.seconds(k));
                warm * self.scaling.slowdown()
            }
        }
    }

    /// Start of instance `i` of an `n`-instance launch, seconds from launch, ignoring the account limit.
    fn raw_start_s(&self, n: u64, i: u64) -> f64 {
        match self.kind {
            ModelKind::Paper => {
                let p = self.paper.as_ref().expect("checked in new");
                p.scale_s((i + 1) as f64)
            }
            ModelKind::Propack if self.measured_arrivals => {
                self.scaling.first_start_s + self.scaling.start_offset_s(n, i)
            }
            ModelKind::Propack => {
                self.platform.arrival_s(i) + self.platform.cold_start.median_ms / 1000.0
            }
        }
    }

    /// Start of instance `i` of an `n`-instance launch whose instances each run `dur` seconds,
    /// including the waves the account limit forces.
    pub fn start_s(&self, n: u64, i: u64, dur: f64) -> f64 {
        let raw = self.raw_start_s(n, i);
        match (self.kind, self.platform.account_concurrency_limit) {
            (ModelKind::Propack, Some(limit)) if i >= u64::from(limit) => {
                let limit = u64::from(limit);
                (1..=i / limit).fold(raw, |acc, j| {
                    acc.max(self.raw_start_s(n, i - j * limit) + j as f64 * dur)
                })
            }
            _ => raw,
        }
    }

    /// The artifact's measure: end of the instance at launch position `idx` of an
    /// `n`-instance launch with `k` tasks per instance, seconds from launch.
    pub fn instance_end_s(&self, n: u64, idx: u64, k: u64) -> f64 {
        let d = self.instance_duration_s(k);
        self.start_s(n, idx, d) + d
    }

    /// Predicts a launch of `c` tasks packed `k` per instance.
    pub fn predict(&self, c: u64, k: u64) -> Prediction {
        let c = c.max(1);
        let k = k.clamp(1, c);
        let n = c.div_ceil(k);
        let rem = c - (n - 1) * k;
        let d = self.instance_duration_s(k);
        let d_last = self.instance_duration_s(rem);
        let last = n - 1;
        let scale_s = self.start_s(n, last, d);
        let pos = |q: f64| ((q * n as f64).floor() as u64).min(last);
        let tail_s = self.start_s(n, pos(self.tail_quantile), d) + d;
        let median_s = self.start_s(n, pos(0.5), d) + d;
        let mut total_s = scale_s + d_last;
        if n >= 2 {
            total_s = total_s.max(self.start_s(n, last - 1, d) + d);
        }
        if self.kind == ModelKind::Propack {
            let sigma = self.scaling.task_sigma() / (k as f64).sqrt();
            let slope = match self.platform.scaling {
                _ if self.measured_arrivals => self.scaling.slope_s_per_instance,
                Scaling::Interval { interval_ms } => interval_ms / 1000.0,
                Scaling::TokenBucket { .. } | Scaling::Unlimited => 0.0,
            };
            let competing = if slope > 0.0 {
                (d / slope + 1.0).min(n as f64)
            } else {
                n as f64
            };
            let straggle = d * ((sigma * z_of_max(competing)).exp() - 1.0);
            total_s += straggle;
        }
        let billed_instance_s = (n - 1) as f64 * d + d_last;
        let prices = &self.platform.prices;
        let transitions = STATE_TRANSITIONS_FIXED + STATE_TRANSITIONS_PER_BATCH * n;
        let expense_usd = billed_instance_s * self.platform.price_per_instance_second()
            + n as f64 * prices.request
            + transitions as f64 * prices.state_transition;
        let waves = match self.platform.account_concurrency_limit {
            Some(l) if self.kind == ModelKind::Propack => n.div_ceil(u64::from(l)),
            _ => 1,
        };
        Prediction {
            k,
            instances: n,
            waves,
            scale_s,
            total_s,
            tail_s,
            median_s,
            instance_s: d,
            billed_instance_s,
            expense_usd,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::profile::{InstanceSample, PROFILE_SCHEMA_VERSION, ScalingRun};
    use super::*;

    /// A small synthetic app: 50 ms per instance, k = 1 tasks take 1 s at scale,
    /// one warm instance takes 1.5 s for k = 1 and 0.5 s more per extra task.
    pub(crate) fn synthetic_profile() -> AppProfile {
        let runs = [100u64, 400]
            .iter()
            .map(|&c| {
                let instances: Vec<InstanceSample> = (0..c)
                    .map(|i| InstanceSample {
                        start_s: 0.05 * i as f64,
                        duration_s: 1.0,
                    })
                    .collect();
                ScalingRun {
                    concurrency: c,
                    scale_time_s: Some(0.05 * c as f64),
                    service_time_s: Some(0.05 * (c - 1) as f64 + 1.0 + 2.0),
                    instances,
                }
            })
            .collect();
        AppProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "syn".into(),
            scaling: ScalingProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                app: "syn".into(),
                platform: "aws-2021".into(),
                runs,
            },
            packing: PackingProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                app: "syn".into(),
                memory_mb: 10_240,
                vcpus: 6,
                samples: [1u64, 2, 4, 8, 16]
                    .iter()
                    .map(|&k| PackingSample {
                        k,
                        seconds: vec![1.5 + 0.5 * (k - 1) as f64],
                    })
                    .collect(),
            },
            workload: WorkloadProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                name: "syn".into(),
                tasks: 1000,
                memory_mb_per_task: 100.0,
                tmp_mb_per_task: 0.0,
                payload_bytes_per_task: 100,
            },
        }
    }

    #[test]
    fn prediction_of_a_synthetic_app_matches_hand_computation() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap();
        assert!((m.scaling.first_start_s - 2.0).abs() < 1e-9);
        assert!((m.invoke_overhead_s - 0.5).abs() < 1e-9);
        // No spread: D(k) = P(k) - 0.5 = 1 + 0.5 (k - 1).
        assert!((m.instance_duration_s(4) - 2.5).abs() < 1e-9);
        let p = m.predict(400, 4);
        assert_eq!(p.instances, 100);
        // Last of 100 instances starts at 2 + 0.05 * 99.
        assert!((p.scale_s - (2.0 + 4.95)).abs() < 1e-6, "{}", p.scale_s);
        assert!(
            (p.total_s - (2.0 + 4.95 + 2.5)).abs() < 1e-6,
            "{}",
            p.total_s
        );
        assert!(
            (p.median_s - (2.0 + 2.5 + 2.5)).abs() < 1e-6,
            "{}",
            p.median_s
        );
        let price = PlatformProfile::aws_2021().price_per_instance_second();
        let want = 250.0 * price + 100.0 * 0.2e-6 + 103.0 * 0.025e-3;
        assert!(
            (p.expense_usd - want).abs() < 1e-12,
            "{} vs {want}",
            p.expense_usd
        );
        assert!(p.total_s >= p.tail_s && p.tail_s >= p.median_s);
    }

    #[test]
    fn uneven_last_batch_and_beyond_the_measurements() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap();
        let p = m.predict(10, 4);
        assert_eq!(p.instances, 3);
        assert!((p.billed_instance_s - (2.0 * 2.5 + 1.5)).abs() < 1e-9);
        // 100,000 tasks at k = 1 extrapolate linearly, never decrease.
        let a = m.predict(50_000, 1);
        let b = m.predict(100_000, 1);
        assert!(b.scale_s > a.scale_s && b.scale_s.is_finite());
    }

    #[test]
    fn account_limit_makes_waves() {
        let mut plat = PlatformProfile::aws_2021();
        plat.account_concurrency_limit = Some(10);
        let m = Model::new(&synthetic_profile(), plat, ModelKind::Propack).unwrap();
        // 1,600 tasks at k = 16: 100 instances of D = 8.5 s, 10 at a time.
        let p = m.predict(1600, 16);
        assert_eq!(p.waves, 10);
        // Instance 99 waits for 89, ..., 9: nine durations after instance 9 started.
        let want = 2.0 + 0.05 * 9.0 + 9.0 * 8.5;
        assert!((p.scale_s - want).abs() < 1e-6, "{} vs {want}", p.scale_s);
    }

    #[test]
    fn other_platforms_use_their_scaling_rule() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::unlimited(),
            ModelKind::Propack,
        )
        .unwrap();
        assert!(!m.measured_arrivals);
        let p = m.predict(1000, 1);
        assert!(p.scale_s.abs() < 1e-12);
    }

    #[test]
    fn paper_model_uses_its_polynomial() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Paper,
        )
        .unwrap();
        let p = m.predict(400, 1);
        // scale_time = 0.05 C exactly, packing P(1) = 1.5.
        assert!((p.scale_s - 20.0).abs() < 1e-6, "{}", p.scale_s);
        assert!((p.total_s - 21.5).abs() < 1e-6);
    }
}
