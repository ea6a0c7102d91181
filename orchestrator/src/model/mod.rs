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
//!
//! Warm reuse ([`Model::warm_reuse`]): on a `TokenBucket` or `Unlimited` platform
//! (not measured) the scaling rule gates only *new* environments — at most
//! `min(A, n)` of them, ready at `arrival_s(m)` plus the cold start — and each
//! finished environment takes the next waiting invocation with no cold start, so
//! invocation `j` starts at the `(j+1)`-th earliest of `{s_m + r·D(k)}` (waves of
//! slots, see [`Model::start_s`]); this is the simulator's rule with fixed durations.
//! One task alone (k = 1) runs the mean k = 1 duration at scale: the slowdown is
//! for an instance that waits for the slowest of its k tasks.
//! - `median_s` / `tail_s`: end of the instance at launch position ⌊n/2⌋ / ⌊q·n⌋;
//! - `total_s`: end of the last instance plus a straggler allowance — the expected
//!   maximum of the durations of the instances that start within one duration of the
//!   end (under warm reuse: the environments in use), each log-normal with the
//!   k = 1 sigma shrunk by √k (k tasks average out);
//! - `expense_usd`: [`crate::billing::price`] of the predicted invocations (n − 1 of
//!   `D(k)`, the last of `D(rem)`, plus the init of each new environment where the
//!   platform bills init) and of the orchestration the definition for (C, k) would use
//!   ([`Dispatch`]: inline or distributed Map, EXPRESS or STANDARD children, chosen by the
//!   same functions as the definition builder; or direct invokes).
//!
//! Memory ([`Model::at_memory`]): the model predicts at `platform.memory_mb`, pricing
//! that memory and scaling every duration by [`Model::memory_ratio`]: the packing curve
//! measured at that memory where the profile has one (`profile packing --memory`), else
//! derived from the measured curve nearest in vCPUs — k tasks on v vCPUs take as long as
//! k·V/v tasks on that curve's V (CPU-bound work shares the vCPUs; below one vCPU, as
//! on one vCPU slowed by the memory's CPU share); [`Model::curve_source`] says which.
//!
//! A shared host ([`PlatformProfile::host_cpus`], the local platform): instances start by
//! the scaling rule, then stretch by [`share::processor_sharing`] of their CPU demand;
//! [`Model::predict_weighted`] predicts uneven tasks batch by batch
//! ([`crate::batching::batch_factor`]).
//!
//! [`Model::instance_end_s`] is the artifact's measure (the end of the instance at a
//! launch position, no straggler allowance) and is what validation compares.

pub mod artifact;
pub mod curve;
pub mod fit;
pub mod paper;
pub mod planner;
pub mod profile;
pub mod share;
pub mod store;
pub mod validate;

use serde::{Deserialize, Serialize};

use crate::billing::Dispatch;
use crate::platform::{PlatformProfile, Scaling};
pub use fit::{PackingCurve, ScalingModel};
pub use paper::PaperScaling;
pub use planner::{Metric, Objective, Plan, PlanRequest, plan};
pub use profile::{AppProfile, PackingProfile, PackingSample, ScalingProfile, WorkloadProfile};

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

/// Where the packing curve at a memory comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CurveSource {
    /// Measured at exactly that memory.
    Measured,
    /// Derived from the curve measured nearest in vCPUs (see [`Model::memory_ratio`]).
    Derived,
}

impl CurveSource {
    /// `measured` or `derived`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Measured => "measured",
            Self::Derived => "derived",
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
    /// USD: instance time + requests + orchestration (`expense`'s total).
    pub expense_usd: f64,
    /// The expense broken down.
    #[serde(default)]
    pub expense: crate::billing::Expense,
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
    /// How the planned run reaches the function (priced into the expense).
    pub dispatch: Dispatch,
    /// Memory the packing profile was measured at, MB (the model predicts at
    /// `platform.memory_mb`; see [`Model::memory_ratio`]).
    pub profile_memory_mb: u32,
    /// Packing curves measured at other memories, `(MB, curve)` ascending by memory.
    pub memory_curves: Vec<(u32, PackingCurve)>,
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
        let mut memory_curves = profile
            .memory_curves
            .iter()
            .map(|c| Ok((c.memory_mb, PackingCurve::fit(c)?)))
            .collect::<Result<Vec<_>, ModelError>>()?;
        memory_curves.sort_by_key(|c| c.0);
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
            dispatch: Dispatch::StepFunctions {
                task_bytes: profile.workload.payload_bytes_per_task.max(1),
            },
            profile_memory_mb: profile.packing.memory_mb,
            memory_curves,
        })
    }

    /// The same model predicting for the function configured at `memory_mb`
    /// (rounded to the platform's step): its vCPUs, its price, its durations.
    pub fn at_memory(&self, memory_mb: u32) -> Self {
        let mut m = self.clone();
        m.platform = self.platform.at_memory(memory_mb);
        m
    }

    /// The measured curve the model's memory is predicted from, `(its memory MB, curve)`:
    /// the one measured at exactly that memory, else the one nearest in vCPUs (ties: the
    /// larger memory).
    fn base_curve(&self) -> (u32, &PackingCurve) {
        let memory = self.platform.memory_mb;
        let all = std::iter::once((self.profile_memory_mb, &self.packing))
            .chain(self.memory_curves.iter().map(|(m, c)| (*m, c)));
        if let Some(exact) = all.clone().find(|(m, _)| *m == memory) {
            return exact;
        }
        let v = self.platform.cpus_at(memory);
        let distance = |m: u32| (self.platform.cpus_at(m) - v).abs();
        all.min_by(|a, b| distance(a.0).total_cmp(&distance(b.0)).then(b.0.cmp(&a.0)))
            .expect("the profile's own curve")
    }

    /// Whether the packing curve at the model's memory was measured there or derived.
    pub fn curve_source(&self) -> CurveSource {
        if self.base_curve().0 == self.platform.memory_mb {
            CurveSource::Measured
        } else {
            CurveSource::Derived
        }
    }

    /// How much longer an instance of `k` tasks runs at the model's memory than at the
    /// profile's: `B(x) / P(k)`, `P` the profile's packing curve and `B` the curve of
    /// [`Model::base_curve`] — measured at this memory (`x = k`), or else derived under the
    /// documented assumption that CPU-bound work shares the instance's vCPUs: k tasks on v
    /// vCPUs take as long as `x = max(k · V / v, 1)` tasks on B's V vCPUs (the same load per
    /// vCPU). Below one vCPU the k tasks run as on one vCPU, stretched by the memory's CPU
    /// share: `B(k · V) / P(k) / v` (and a curve measured below one vCPU is first brought
    /// to one). Not `B(k · V / v)`: a curve that packs more cheaply than linearly (tasks
    /// overlapping their waits) would make a lone task at a fraction of a vCPU overlap
    /// with itself, and price the smallest memory below the rest. 1 at the profile's
    /// memory, and wherever the curves are flat.
    pub fn memory_ratio(&self, k: u64) -> f64 {
        let k = k.max(1);
        let pk = self.packing.seconds(k);
        if pk <= 0.0 {
            return 1.0;
        }
        let (base_mb, base) = self.base_curve();
        if base_mb == self.platform.memory_mb {
            return base.curve.eval(k as f64) / pk;
        }
        // `cpus_at` is positive (memory and host CPUs are validated positive), and at the
        // same vCPUs the rule below reads B at k (up to rounding), so no other case is special.
        let v = self.platform.cpus_at(self.platform.memory_mb);
        let big_v = self.platform.cpus_at(base_mb);
        // From one vCPU up, the load per vCPU carries over; below one, the tasks run as on
        // one vCPU slowed by the CPU share, on both sides of the conversion.
        let x = (k as f64 * big_v.max(1.0) / v.max(1.0)).max(1.0);
        base.curve.eval(x) / pk * big_v.min(1.0) / v.min(1.0)
    }

    /// Sets how the planned run reaches the function.
    pub fn with_dispatch(mut self, dispatch: Dispatch) -> Self {
        self.dispatch = dispatch;
        self
    }

    /// Sets the tail quantile (0 < q < 1).
    pub fn with_tail_quantile(mut self, q: f64) -> Self {
        self.tail_quantile = q.clamp(0.0, 1.0);
        self
    }

    /// Expected handler duration of one instance running `k` tasks at scale, seconds,
    /// at the model's memory ([`Model::memory_ratio`] times the profile memory's).
    pub fn instance_duration_s(&self, k: u64) -> f64 {
        self.profile_memory_duration_s(k) * self.memory_ratio(k)
    }

    /// [`Model::instance_duration_s`] at the memory the profile was measured at.
    fn profile_memory_duration_s(&self, k: u64) -> f64 {
        let k = k.max(1);
        match self.kind {
            ModelKind::Paper => self.packing.seconds(k),
            // One task alone has no slower sibling to wait for: it takes the mean
            // k = 1 duration at scale, which the scaling runs measure directly.
            ModelKind::Propack if k == 1 && self.scaling.duration_mean_s > 0.0 => {
                self.scaling.duration_mean_s
            }
            ModelKind::Propack => {
                let warm = (self.packing.seconds(k) - self.invoke_overhead_s)
                    .max(0.05 * self.packing.seconds(k));
                warm * self.scaling.slowdown()
            }
        }
    }

    /// Whether the model lets a finished instance take the next waiting invocation warm.
    ///
    /// Measured arrivals already contain whatever reuse the measured platform did; on
    /// any other platform the rule is the simulator's (see [`crate::backend::sim`]):
    /// `Interval` issues every invocation to a new instance, while `TokenBucket` and
    /// `Unlimited` gate only new environments and reuse finished ones.
    pub fn warm_reuse(&self) -> bool {
        self.kind == ModelKind::Propack
            && !self.measured_arrivals
            && self.platform.reuses_warm_instances()
    }

    /// Execution environments a warm-reusing launch of `n` invocations can use, as
    /// groups `(ready_s, count)` in time order: the scaling rule's new environments
    /// (plus the cold start), up to the account limit and never more than `n`.
    fn environment_groups(&self, n: u64) -> Vec<(f64, u64)> {
        let cap = self
            .platform
            .account_concurrency_limit
            .map_or(n, |l| u64::from(l).min(n))
            .max(1);
        let cold = self.platform.cold_start.median_ms / 1000.0;
        match self.platform.scaling {
            Scaling::TokenBucket {
                burst,
                per_interval,
                interval_s,
            } => {
                let mut groups = vec![(cold, u64::from(burst).min(cap))];
                let mut created = groups[0].1;
                let mut g = 1u64;
                while created < cap {
                    let size = u64::from(per_interval).min(cap - created);
                    groups.push((g as f64 * interval_s + cold, size));
                    created += size;
                    g += 1;
                }
                groups
            }
            // `warm_reuse()` is false on Interval platforms; this arm keeps the rule total.
            Scaling::Interval { .. } => (0..cap)
                .map(|m| (self.platform.arrival_s(m) + cold, 1))
                .collect(),
            Scaling::Unlimited => vec![(cold, cap)],
        }
    }

    /// Start of invocation `j` of `n` under warm reuse, every invocation running `dur` seconds.
    ///
    /// Environment `m` becomes ready at `s_m` and then runs invocations back to back
    /// at `s_m`, `s_m + dur`, `s_m + 2·dur`, …; the platform hands each waiting
    /// invocation to the earliest of a free warm environment or the next new one,
    /// which is merging those sequences. So invocation `j` starts at the
    /// `(j+1)`-th smallest element of `{s_m + r·dur}`, found per group by binary
    /// search on `r` against the count `N(t) = Σ_g n_g·(⌊(t − τ_g)/dur⌋ + 1)`.
    fn warm_start_s(&self, n: u64, j: u64, dur: f64) -> f64 {
        let groups = self.environment_groups(n);
        let dur = dur.max(1e-9);
        let want = j + 1;
        let count = |t: f64| -> u64 {
            groups
                .iter()
                .take_while(|g| g.0 <= t)
                .map(|&(tau, size)| size * (((t - tau) / dur + 1e-9).floor() as u64 + 1))
                .sum()
        };
        groups
            .iter()
            .map(|&(tau, _)| {
                // Smallest r with N(tau + r·dur) ≥ j + 1; r = j always suffices.
                let (mut lo, mut hi) = (0u64, j);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if count(tau + mid as f64 * dur) >= want {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                tau + lo as f64 * dur
            })
            .fold(f64::INFINITY, f64::min)
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
        if self.warm_reuse() {
            return self.warm_start_s(n, i, dur);
        }
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

    /// Expense of `n` invocations (the last runs `d_last`, the others `d`): the invocations,
    /// the init of every new environment where the platform bills init, and the orchestration.
    fn expense(&self, c: u64, k: u64, n: u64, d: f64, d_last: f64) -> crate::billing::Expense {
        let durations: Vec<f64> = (0..n)
            .map(|i| if i + 1 == n { d_last } else { d })
            .collect();
        self.expense_of(c, k, &durations, d)
    }

    /// Expense of invocations running `durations` (in launch order; `d` is the typical
    /// one, which decides the orchestration's mode as the definition builder would).
    fn expense_of(&self, c: u64, k: u64, durations: &[f64], d: f64) -> crate::billing::Expense {
        let n = durations.len() as u64;
        let environments = if self.warm_reuse() {
            self.environment_groups(n).iter().map(|g| g.1).sum::<u64>()
        } else {
            n
        };
        let init_s = if self.platform.bills_init {
            self.platform.cold_start.median_ms / 1000.0
        } else {
            0.0
        };
        let billed = durations.iter().enumerate().map(|(i, &x)| {
            if (i as u64) < environments {
                x + init_s
            } else {
                x
            }
        });
        let usage = crate::billing::OrchestrationUsage::for_batches(
            crate::billing::orchestration_for(self.dispatch, c, k, self.platform.vcpus, d),
            durations,
        );
        crate::billing::price(&self.platform, billed, &usage)
    }

    /// CPUs an instance of `k` tasks running `alone_s` seconds keeps busy on `v` vCPUs:
    /// the profile's measured CPU seconds over that duration where it has them, else
    /// (the documented assumption) CPU-bound tasks, `min(k, v)`; never more than that.
    fn cpu_demand(&self, k: u64, alone_s: f64, v: f64) -> f64 {
        let bound = (k as f64).min(v).max(1e-3);
        match self.packing.cpu_seconds(k) {
            Some(cpu) if alone_s > 0.0 => (cpu / alone_s).clamp(1e-3, bound),
            _ => bound,
        }
    }

    /// The straggler allowance of an instance of `d` seconds among `competing` others:
    /// the expected maximum of their log-normal durations less the median.
    fn straggle_s(&self, k: u64, d: f64, competing: f64) -> f64 {
        let sigma = self.scaling.task_sigma() / (k as f64).sqrt();
        d * ((sigma * z_of_max(competing)).exp() - 1.0)
    }

    /// [`Model::predict`] on a platform whose instances share one host of `cpus` CPUs
    /// (the local platform): instances start by the scaling rule as usual, then their
    /// durations stretch by [`share::processor_sharing`], each keeping `min(k, vCPUs)`
    /// CPUs busy (CPU-bound work). Times are of the stretched schedule; the median and
    /// tail are the quantiles of the instance ends.
    fn predict_shared(&self, c: u64, k: u64, (d, d_last): (f64, f64)) -> Prediction {
        let n = c.div_ceil(k);
        let rem = c - (n - 1) * k;
        let batches: Vec<(u64, f64)> = (0..n)
            .map(|i| if i + 1 == n { (rem, d_last) } else { (k, d) })
            .collect();
        self.predict_schedule(c, k, d, &batches)
    }

    /// Predicts a launch of tasks of relative work `weights` (in manifest order) packed `k`
    /// per instance in that order, as ItemBatcher batches them: each batch runs
    /// [`crate::batching::batch_factor`] times `D(its size)`. Order the weights with
    /// [`crate::batching::balanced_order`] to predict balanced batches.
    pub fn predict_weighted(&self, weights: &[f64], k: u64) -> Prediction {
        let c = (weights.len() as u64).max(1);
        let k = k.clamp(1, c);
        let mean = weights.iter().sum::<f64>() / c as f64;
        let d1 = self.instance_duration_s(1);
        let batches: Vec<(u64, f64)> = weights
            .chunks(k as usize)
            .map(|b| {
                let dk = self.instance_duration_s(b.len() as u64);
                (
                    b.len() as u64,
                    dk * crate::batching::batch_factor(b, mean, d1, dk),
                )
            })
            .collect();
        self.predict_schedule(c, k, self.instance_duration_s(k), &batches)
    }

    /// The prediction of `batches` (tasks, duration alone) in launch order, started by the
    /// scaling rule for instances of `d` seconds; on a shared host stretched by
    /// [`share::processor_sharing`]. The median and tail are quantiles of the ends.
    fn predict_schedule(&self, c: u64, k: u64, d: f64, batches: &[(u64, f64)]) -> Prediction {
        let n = batches.len().max(1) as u64;
        let v = self.platform.cpus_at(self.platform.memory_mb);
        let jobs: Vec<share::Shared> = batches
            .iter()
            .enumerate()
            .map(|(i, &(tasks, alone_s))| share::Shared {
                start_s: self.start_s(n, i as u64, d),
                alone_s,
                demand: self.cpu_demand(tasks, alone_s, v),
            })
            .collect();
        let (ends, competing) = match self.platform.host_cpus {
            Some(cpus) => (
                share::processor_sharing(&jobs, cpus),
                // The last instances' spread: as many compete as the host runs at once.
                (cpus / v.min(k as f64).max(1e-3)).clamp(1.0, n as f64),
            ),
            None => (
                jobs.iter().map(|j| j.start_s + j.alone_s).collect(),
                n as f64,
            ),
        };
        let durations: Vec<f64> = jobs.iter().zip(&ends).map(|(j, e)| e - j.start_s).collect();
        let mut sorted = ends.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((q * n as f64).floor() as usize).min(n as usize - 1)];
        let scale_s = jobs.iter().map(|j| j.start_s).fold(0.0, f64::max);
        let last_d = durations.last().copied().unwrap_or(d);
        let total_s = sorted[n as usize - 1] + self.straggle_s(k, last_d, competing);
        let mean_d = durations.iter().sum::<f64>() / n as f64;
        let expense = self.expense_of(c, k, &durations, mean_d);
        Prediction {
            k,
            instances: n,
            waves: match self.platform.account_concurrency_limit {
                Some(l) => n.div_ceil(u64::from(l)),
                None => 1,
            },
            scale_s,
            total_s,
            tail_s: at(self.tail_quantile),
            median_s: at(0.5),
            instance_s: mean_d,
            billed_instance_s: durations.iter().sum(),
            expense_usd: expense.total_usd(),
            expense,
        }
    }

    /// Predicts a launch of `c` tasks packed `k` per instance.
    pub fn predict(&self, c: u64, k: u64) -> Prediction {
        let c = c.max(1);
        let k = k.clamp(1, c);
        let n = c.div_ceil(k);
        let rem = c - (n - 1) * k;
        let d = self.instance_duration_s(k);
        let d_last = self.instance_duration_s(rem);
        if let (ModelKind::Propack, Some(_)) = (self.kind, self.platform.host_cpus) {
            return self.predict_shared(c, k, (d, d_last));
        }
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
            let slope = match self.platform.scaling {
                _ if self.measured_arrivals => self.scaling.slope_s_per_instance,
                Scaling::Interval { interval_ms } => interval_ms / 1000.0,
                Scaling::TokenBucket { .. } | Scaling::Unlimited => 0.0,
            };
            let competing = if self.warm_reuse() {
                // The environments still running at the end: one per slot in use.
                self.environment_groups(n).iter().map(|g| g.1).sum::<u64>() as f64
            } else if slope > 0.0 {
                (d / slope + 1.0).min(n as f64)
            } else {
                n as f64
            };
            total_s += self.straggle_s(k, d, competing);
        }
        let billed_instance_s = (n - 1) as f64 * d + d_last;
        let expense = self.expense(c, k, n, d, d_last);
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
            expense_usd: expense.total_usd(),
            expense,
        }
    }
}

#[cfg(test)]
mod strength_tests;

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
                        cpu_seconds: Vec::new(),
                    })
                    .collect(),
            },
            memory_curves: Vec::new(),
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
        // 100 batches > 40: a Distributed Map; 2.5 s batches: EXPRESS children. So: 250
        // instance-seconds, 100 requests, the Map state + 100 child starts as transitions,
        // 100 EXPRESS requests and 100 × 2.5 s of EXPRESS duration at 64 MB.
        let price = PlatformProfile::aws_2021().price_per_instance_second();
        let express = 100.0 * 1e-6 + 250.0 * (64.0 / 1024.0) * 0.000_016_67;
        let want = 250.0 * price + 100.0 * 0.2e-6 + 101.0 * 0.025e-3 + express;
        assert!((p.expense.compute_usd - 250.0 * price).abs() < 1e-12);
        assert!((p.expense.orchestration_usd - (101.0 * 0.025e-3 + express)).abs() < 1e-12);
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
        // 100,000 tasks at k = 1 extrapolate linearly: the last starts at 2 + 0.05 (n − 1).
        let a = m.predict(50_000, 1);
        let b = m.predict(100_000, 1);
        assert!((a.scale_s - 2501.95).abs() < 1e-6, "{}", a.scale_s);
        assert!((b.scale_s - 5001.95).abs() < 1e-6, "{}", b.scale_s);
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

    /// A token-bucket platform of burst 2, then 1 more environment every 2.5 s,
    /// account limit 3 and a fixed 0.5 s cold start.
    fn small_bucket() -> PlatformProfile {
        let mut p = PlatformProfile::aws_today();
        p.name = "bucket".into();
        p.account_concurrency_limit = Some(3);
        p.scaling = Scaling::TokenBucket {
            burst: 2,
            per_interval: 1,
            interval_s: 2.5,
        };
        p.cold_start = crate::platform::DurationDist {
            median_ms: 500.0,
            p90_ms: 500.0,
        };
        p
    }

    #[test]
    fn token_bucket_reuses_warm_instances_by_hand() {
        let m = Model::new(&synthetic_profile(), small_bucket(), ModelKind::Propack).unwrap();
        assert!(m.warm_reuse());
        // No spread: D(7) = 1 + 0.5 · 6 = 4 s. Environments 0 and 1 are ready at
        // 0.5 s, environment 2 at 2.5 + 0.5 = 3 s (the limit stops a 4th). Each
        // runs invocations back to back: 0.5, 4.5, 8.5 | 0.5, 4.5, 8.5 | 3, 7, 11.
        let d = m.instance_duration_s(7);
        assert!((d - 4.0).abs() < 1e-9);
        let want = [0.5, 0.5, 3.0, 4.5, 4.5, 7.0, 8.5, 8.5];
        for (j, w) in want.iter().enumerate() {
            let got = m.start_s(8, j as u64, d);
            assert!((got - w).abs() < 1e-9, "invocation {j}: {got} vs {w}");
        }
        // 56 tasks at k = 7: 8 invocations; the last starts at 8.5 and ends at 12.5.
        let p = m.predict(56, 7);
        assert!((p.scale_s - 8.5).abs() < 1e-9, "{}", p.scale_s);
        assert!((p.total_s - 12.5).abs() < 1e-9, "{}", p.total_s);
        // Median: position 4 starts at 4.5.
        assert!((p.median_s - 8.5).abs() < 1e-9, "{}", p.median_s);
        // k = 1 takes the mean duration at scale (1 s), not the packed slowdown:
        // 5 invocations on 2 + 1 environments: 0.5, 0.5, 1.5, 1.5, 2.5 (the warm
        // ones beat environment 2 at 3 s), so the last ends at 3.5 s.
        assert!((m.instance_duration_s(1) - 1.0).abs() < 1e-9);
        let p1 = m.predict(5, 1);
        assert!((p1.total_s - 3.5).abs() < 1e-9, "{}", p1.total_s);
        // Without reuse every invocation would wait for its own token: 4th at 5.5 s.
        assert!(p1.scale_s < 5.5);
    }

    #[test]
    fn warm_reuse_starts_match_the_simulator_with_fixed_durations() {
        use crate::backend::sim::{PackingDurations, SimSpec, simulate};
        let plat = small_bucket();
        let m = Model::new(&synthetic_profile(), plat.clone(), ModelKind::Propack).unwrap();
        for (c, k) in [(56u64, 7u64), (5, 1), (40, 3), (17, 16)] {
            let n = c.div_ceil(k);
            let d = m.instance_duration_s(k);
            let rem = c - (n - 1) * k;
            let fixed = PackingDurations::new([
                (k as usize, d),
                (rem as usize, m.instance_duration_s(rem)),
            ])
            .unwrap();
            let r = simulate(&plat, &fixed, &SimSpec::new(c as usize, k as usize, 1));
            // The last invocation may be shorter, which cannot move any start.
            for (j, inst) in r.instances.iter().enumerate() {
                let want = m.start_s(n, j as u64, d);
                assert!(
                    (inst.start_s - want).abs() < 1e-9,
                    "C={c} k={k} invocation {j}: sim {} vs model {want}",
                    inst.start_s
                );
            }
        }
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

    #[test]
    fn weighted_batches_by_hand() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::unlimited(),
            ModelKind::Propack,
        )
        .unwrap();
        // D(1) = 1 s (mean at scale), D(2) = P(2) − o = 2 − 0.5 = 1.5 s; mean weight 2.
        // Manifest order [3, 3 | 1, 1]: the first batch has 1.5× the mean work → 2.25 s.
        let w = [3.0, 3.0, 1.0, 1.0];
        let p = m.predict_weighted(&w, 2);
        assert!((p.total_s - 2.25).abs() < 1e-9, "{}", p.total_s);
        // Balanced [3, 1 | 3, 1]: both batches take D(2).
        let order = crate::batching::balanced_order(&w, 2);
        assert_eq!(order, vec![0, 2, 1, 3]);
        let balanced: Vec<f64> = order.iter().map(|&i| w[i]).collect();
        let b = m.predict_weighted(&balanced, 2);
        assert!((b.total_s - 1.5).abs() < 1e-9, "{}", b.total_s);
        assert!((b.billed_instance_s - 3.0).abs() < 1e-9);
        // Equal weights predict what the mean task does.
        let e = m.predict_weighted(&[1.0; 4], 2);
        assert!((e.total_s - m.predict(4, 2).total_s).abs() < 1e-9);
    }

    /// The synthetic app plus a curve measured at 1,769 MB (1 vCPU): B(k) = 3k (knots 1, 2, 4),
    /// slower than what the 10,240 MB curve P(k) = 1 + 0.5 k derives for 1 vCPU (P(6k)).
    pub(crate) fn two_curves() -> AppProfile {
        let mut p = synthetic_profile();
        p.memory_curves = vec![PackingProfile {
            memory_mb: 1_769,
            vcpus: 1,
            samples: [1u64, 2, 4]
                .iter()
                .map(|&k| PackingSample {
                    k,
                    seconds: vec![3.0 * k as f64],
                    cpu_seconds: Vec::new(),
                })
                .collect(),
            ..p.packing.clone()
        }];
        p
    }

    #[test]
    fn a_curve_measured_at_the_memory_is_used_not_derived() {
        let paper = Model::new(&two_curves(), PlatformProfile::aws_2021(), ModelKind::Paper)
            .unwrap()
            .at_memory(1_769);
        assert_eq!(paper.curve_source(), CurveSource::Measured);
        // The paper model's handler time is the curve itself: B(2) = 6 s, B(4) = 12 s
        // (derived from P it would be P(12) = 7 s and P(24) = 13 s).
        assert!((paper.instance_duration_s(2) - 6.0).abs() < 1e-9);
        assert!((paper.instance_duration_s(4) - 12.0).abs() < 1e-9);
        assert!((paper.memory_ratio(2) - 3.0).abs() < 1e-12);
        // ProPack's: the at-scale duration at 10,240 MB, D(2) = P(2) − 0.5 = 1.5 s, times
        // B(2)/P(2) = 3 → 4.5 s; k = 1: the 1 s mean at scale times B(1)/P(1) = 2.
        let m = Model::new(
            &two_curves(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap()
        .at_memory(1_769);
        assert!((m.instance_duration_s(2) - 4.5).abs() < 1e-9);
        assert!((m.instance_duration_s(1) - 2.0).abs() < 1e-9);
        // The profile's own memory is measured too, ratio exactly 1.
        let top = m.at_memory(10_240);
        assert_eq!(top.curve_source(), CurveSource::Measured);
        assert_eq!(top.memory_ratio(5), 1.0);
    }

    #[test]
    fn an_unmeasured_memory_derives_from_the_curve_nearest_in_vcpus() {
        let m = Model::new(&two_curves(), PlatformProfile::aws_2021(), ModelKind::Paper).unwrap();
        // 2,048 MB = 2048/1769 vCPUs, nearest the 1-vCPU curve: x = 2 · 1769/2048 and
        // B(x) = 3x = 5.1826171875 s, ratio B(x)/P(2) = 2.59130859375.
        let low = m.at_memory(2_048);
        assert_eq!(low.curve_source(), CurveSource::Derived);
        assert!((low.instance_duration_s(2) - 5.182_617_187_5).abs() < 1e-9);
        assert!((low.memory_ratio(2) - 2.591_308_593_75).abs() < 1e-12);
        // k = 1: x = 1769/2048 < 1 runs as one task, B(1)/P(1) = 3/1.5.
        assert!((low.memory_ratio(1) - 2.0).abs() < 1e-12);
        // 8,192 MB = 8192/1769 vCPUs, nearest the 6-vCPU curve: x = 2 · 6 · 1769/8192,
        // P(x) = 1 + 0.5x = 2.295654296875 s.
        let high = m.at_memory(8_192);
        assert_eq!(high.curve_source(), CurveSource::Derived);
        assert!((high.instance_duration_s(2) - 2.295_654_296_875).abs() < 1e-9);
    }

    /// A curve measured below one vCPU is first brought to one, then to the memory asked
    /// for: at 442 MB (0.25 vCPU) from the 885 MB curve C(k) = 6k (0.5 vCPU), k tasks run
    /// as on one vCPU, so x = k and the ratio is C(k)/P(k) · 885/442; at 1,300 MB likewise
    /// with 885/1,300.
    #[test]
    fn a_curve_measured_below_one_vcpu_is_brought_to_one_vcpu_first() {
        let mut p = two_curves();
        let mut half = p.memory_curves[0].clone();
        half.memory_mb = 885;
        for s in &mut half.samples {
            s.seconds = vec![6.0 * s.k as f64];
        }
        p.memory_curves.push(half);
        let m = Model::new(&p, PlatformProfile::aws_2021(), ModelKind::Paper).unwrap();
        let low = m.at_memory(442);
        assert_eq!(low.curve_source(), CurveSource::Derived);
        // P(2) = 2 s at 10,240 MB.
        assert!((low.memory_ratio(2) - 12.0 / 2.0 * 885.0 / 442.0).abs() < 1e-9);
        assert!((low.instance_duration_s(2) - 12.0 * 885.0 / 442.0).abs() < 1e-9);
        let mid = m.at_memory(1_300);
        assert!((mid.memory_ratio(4) - 24.0 / 3.0 * 885.0 / 1_300.0).abs() < 1e-9);
        assert_eq!(m.at_memory(885).curve_source(), CurveSource::Measured);
        assert!((m.at_memory(885).memory_ratio(4) - 24.0 / 3.0).abs() < 1e-12);
    }

    /// The names `plan` prints are the ones its JSON carries.
    #[test]
    fn curve_source_names_are_its_json_names() {
        for (s, name) in [
            (CurveSource::Measured, "measured"),
            (CurveSource::Derived, "derived"),
        ] {
            assert_eq!(s.name(), name);
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::json!(name));
        }
    }

    #[test]
    fn a_single_curve_profile_predicts_as_before() {
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Paper,
        )
        .unwrap();
        // One curve, P(k) = 1 + 0.5 k at 6 vCPUs: at 1,769 MB k tasks take P(6k).
        let one = m.at_memory(1_769);
        assert_eq!(one.curve_source(), CurveSource::Derived);
        assert!((one.instance_duration_s(2) - 7.0).abs() < 1e-9);
        assert!((one.memory_ratio(1) - 4.0 / 1.5).abs() < 1e-12);
        // At 2,048 MB: x = 12 · 1769/2048, P(x) = 1 + 6 · 1769/2048 = 6.1826171875.
        assert!((m.at_memory(2_048).instance_duration_s(2) - 6.182_617_187_5).abs() < 1e-9);
        assert_eq!(m.curve_source(), CurveSource::Measured);
        assert_eq!(m.memory_ratio(3), 1.0);
        // Predictions at the profile's memory are those of the hand-computed test above.
        let p = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap()
        .predict(400, 4);
        assert!(
            (p.total_s - (2.0 + 4.95 + 2.5)).abs() < 1e-6,
            "{}",
            p.total_s
        );
    }
}
