//! Evaluation on the simulator: ProPack's k against no packing, the Oracle k and a PyWren-style baseline.
//!
//! For every app, platform and C the simulator runs every feasible k with
//! several seeds (common random numbers: the same seeds for every k, so
//! comparisons between k are paired). The Oracle is the k with the best
//! simulated score; ProPack's k is what the planner picks from the model;
//! regret is how much worse ProPack's k does on the simulator than the Oracle.
//!
//! The simulator's workload comes from the same profile the model is fitted
//! from (packing curve, k = 1 durations at scale) plus one calibration factor
//! per app fitted on the artifact's packed runs of the `time` objective (see
//! [`Calibration`]); the other objectives' runs are held out to check it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backend::sim::{
    self, ArtifactMetric, Dispatch, DurationSampler, PackingDurations, SimSpec,
};
use crate::model::artifact;
use crate::model::planner::{DEFAULT_W_COST, DEFAULT_W_TIME, Metric, Objective, PlanRequest, plan};
use crate::model::{AppProfile, Model, ModelError, ModelKind};
use crate::platform::PlatformProfile;
use crate::records::{Metrics, RunRecords};

/// The concurrency levels of the paper's evaluation: 100, 500, 1000, …, 5000.
pub fn paper_concurrencies() -> Vec<u64> {
    std::iter::once(100)
        .chain((1..=10).map(|i| i * 500))
        .collect()
}

/// Price per second of a 10 GB instance that the artifact used for its cost columns.
pub const ARTIFACT_PRICE_PER_S: f64 = 0.000_166_7;

/// Errors of the evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The model, the planner or the artifact reader failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A data file is missing or malformed.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Nothing to evaluate.
    #[error("{0}")]
    Invalid(String),
}

fn data_err(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::Data {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// How the simulator's durations were calibrated for one app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Median handler duration of one task at scale (k = 1 scaling runs), seconds.
    pub k1_median_s: f64,
    /// Multiplies the packing curve's growth beyond k = 1: an instance of k tasks
    /// runs `k1_median_s + slope_factor · (P(k) − P(1))`. 1 = the warm curve as measured.
    pub slope_factor: f64,
    /// Packed runs the factor was fitted on (0: no calibration data, factor 1).
    pub fitted_runs: usize,
}

/// The simulator's view of one app.
#[derive(Debug, Clone)]
pub struct SimWorkload {
    /// App name.
    pub app: String,
    /// The profile the model is fitted from.
    pub profile: AppProfile,
    /// Calibrated durations drawn by the simulator.
    pub durations: PackingDurations,
    /// How they were calibrated.
    pub calibration: Calibration,
}

/// Mean of the packing samples per k: `(k, seconds)` ascending.
fn packing_points(profile: &AppProfile) -> Vec<(usize, f64)> {
    let mut by_k: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
    for s in &profile.packing.samples {
        by_k.entry(s.k)
            .or_default()
            .extend(s.seconds.iter().copied());
    }
    by_k.into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k as usize, v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

/// Handler durations of k = 1 instances at scale, from every scaling run.
fn k1_durations(profile: &AppProfile) -> Vec<f64> {
    profile
        .scaling
        .runs
        .iter()
        .flat_map(|r| r.instances.iter().map(|i| i.duration_s))
        .filter(|d| d.is_finite() && *d >= 0.0)
        .collect()
}

fn median_of(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    Some(s[s.len() / 2])
}

impl SimWorkload {
    /// The simulator's workload for `profile` with a given slope factor.
    pub fn new(
        profile: AppProfile,
        slope_factor: f64,
        fitted_runs: usize,
    ) -> Result<Self, EvalError> {
        let points = packing_points(&profile);
        let p1 = points.first().map(|p| p.1).ok_or_else(|| {
            EvalError::Invalid(format!("{}: packing profile has no samples", profile.app))
        })?;
        let k1 = k1_durations(&profile);
        // Without scaling runs the warm k = 1 time stands in for the at-scale one.
        let k1_median_s = median_of(&k1).unwrap_or(p1);
        let curve = points
            .iter()
            .map(|&(k, s)| (k, k1_median_s + slope_factor * (s - p1).max(0.0)));
        let durations = PackingDurations::new(std::iter::once((1, k1_median_s)).chain(curve))
            .map_err(|e| EvalError::Invalid(format!("{}: {e}", profile.app)))?
            .with_spread_from(&k1);
        Ok(Self {
            app: profile.app.clone(),
            profile,
            durations,
            calibration: Calibration {
                k1_median_s,
                slope_factor,
                fitted_runs,
            },
        })
    }
}

/// One run of the artifact's `propack_performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRun {
    /// `time`, `cost` or `both`.
    pub objective: String,
    /// `net`, `tail` or `median`.
    pub metric: String,
    /// Tasks C.
    pub tasks: u64,
    /// Packing degree, derived as ⌊C/n⌋ from the number of instances n.
    pub k: u64,
    /// Instances n (lines of the response file).
    pub instances: u64,
    /// Measured service time (`final_output` line 2), seconds.
    pub service_s: f64,
    /// Measured handler durations, seconds.
    pub durations: Vec<f64>,
}

impl ArtifactRun {
    /// Which instance the run's service time was measured at.
    pub fn artifact_metric(&self) -> ArtifactMetric {
        match self.metric.as_str() {
            "tail" => ArtifactMetric::Tail,
            "median" => ArtifactMetric::Median,
            _ => ArtifactMetric::Net,
        }
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>, EvalError> {
    let text = std::fs::read_to_string(path).map_err(|e| data_err(path, e.to_string()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

/// Every `propack_performance` run of `app` (the model's reader, so k is derived the
/// same way: ⌊C/n⌋ from the response file), with its per-instance durations.
pub fn read_propack_runs(dir: &Path, app: &str) -> Result<Vec<ArtifactRun>, EvalError> {
    let mut out = Vec::new();
    for r in artifact::read_propack_runs(dir, app)? {
        let suffix = if r.packed { "optima" } else { "1" };
        let resp = r.path.with_file_name(format!(
            "response_{}_{}_{suffix}.txt",
            r.metric, r.concurrency
        ));
        let durations = artifact::read_response(&resp)?
            .into_iter()
            .map(|(start, end)| end - start)
            .collect();
        out.push(ArtifactRun {
            objective: r.objective,
            metric: r.metric,
            tasks: r.concurrency,
            k: r.k,
            instances: r.instances,
            service_s: r.service_s,
            durations,
        });
    }
    Ok(out)
}

/// Fits [`Calibration::slope_factor`] on the packed runs of the `time` objective:
/// the median over runs of (median duration − k = 1 median) / (P(k) − P(1)).
pub fn fit_slope_factor(profile: &AppProfile, runs: &[ArtifactRun]) -> (f64, usize) {
    let points = packing_points(profile);
    let Some(&(_, p1)) = points.first() else {
        return (1.0, 0);
    };
    let d1 = median_of(&k1_durations(profile)).unwrap_or(p1);
    let probe = match PackingDurations::new(points.iter().copied()) {
        Ok(p) => p,
        Err(_) => return (1.0, 0),
    };
    let ratios: Vec<f64> = runs
        .iter()
        .filter(|r| r.objective == "time" && r.k >= 2)
        .filter_map(|r| {
            let growth = probe.median_s(r.k as usize) - p1;
            let med = median_of(&r.durations)?;
            (growth > 1e-6).then(|| (med - d1) / growth)
        })
        .filter(|x| x.is_finite())
        .collect();
    match median_of(&ratios) {
        Some(f) if f > 0.0 => (f, ratios.len()),
        _ => (1.0, 0),
    }
}

/// Simulated vs measured service time of one artifact run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// The run.
    pub objective: String,
    /// `net`, `tail`, `median`.
    pub metric: String,
    /// Tasks.
    pub tasks: u64,
    /// k.
    pub k: u64,
    /// Measured, s.
    pub measured_s: f64,
    /// Simulated (median over seeds), s.
    pub simulated_s: f64,
    /// |sim − measured| / measured, percent.
    pub abs_err_pct: f64,
}

/// Median absolute errors of one app's calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSummary {
    /// App.
    pub app: String,
    /// Calibration used.
    pub calibration: Calibration,
    /// Runs with k = 1: count and median |error| %.
    pub unpacked_n: usize,
    /// Median |error| % of k = 1 runs.
    pub unpacked_median_pct: f64,
    /// Runs with k > 1.
    pub packed_n: usize,
    /// Median |error| % of packed runs.
    pub packed_median_pct: f64,
    /// Median |error| % of packed runs not used for fitting (objectives cost and both).
    pub packed_heldout_median_pct: f64,
    /// Every run.
    pub points: Vec<CalibrationPoint>,
}

/// Replays every artifact run on the simulator (platform `aws-2021`, `seeds` seeds)
/// and compares the artifact's own measure of service time.
pub fn calibration_check(
    workload: &SimWorkload,
    runs: &[ArtifactRun],
    platform: &PlatformProfile,
    seeds: u64,
) -> CalibrationSummary {
    let mut points = Vec::new();
    for r in runs {
        let mut sims: Vec<f64> = (0..seeds.max(1))
            .filter_map(|s| {
                // The artifact ran n = ⌊C/k⌋ full instances (the remainder was not
                // launched), so replay n·k tasks: its last instance ran k tasks, not C mod k.
                let tasks = (r.instances * r.k) as usize;
                let rec = sim::simulate(
                    platform,
                    &workload.durations,
                    &SimSpec::new(tasks, r.k as usize, 1000 + s),
                );
                sim::artifact_service_s(&rec, r.artifact_metric())
            })
            .collect();
        sims.sort_by(f64::total_cmp);
        let simulated_s = sims[sims.len() / 2];
        points.push(CalibrationPoint {
            objective: r.objective.clone(),
            metric: r.metric.clone(),
            tasks: r.tasks,
            k: r.k,
            measured_s: r.service_s,
            simulated_s,
            abs_err_pct: ((simulated_s - r.service_s) / r.service_s).abs() * 100.0,
        });
    }
    let med = |f: &dyn Fn(&CalibrationPoint) -> bool| -> (usize, f64) {
        let v: Vec<f64> = points
            .iter()
            .filter(|p| f(p))
            .map(|p| p.abs_err_pct)
            .collect();
        (v.len(), median_of(&v).unwrap_or(f64::NAN))
    };
    let (unpacked_n, unpacked_median_pct) = med(&|p| p.k == 1);
    let (packed_n, packed_median_pct) = med(&|p| p.k > 1);
    let (_, packed_heldout_median_pct) = med(&|p| p.k > 1 && p.objective != "time");
    CalibrationSummary {
        app: workload.app.clone(),
        calibration: workload.calibration.clone(),
        unpacked_n,
        unpacked_median_pct,
        packed_n,
        packed_median_pct,
        packed_heldout_median_pct,
        points,
    }
}

/// The PyWren-style baseline: no packing, a client thread pool issuing invocations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PywrenCalibration {
    /// Invocations per second the client issued (least squares of scaling time vs C).
    pub rate_per_s: f64,
    /// PyWren's task duration over the native k = 1 duration at scale (its runtime overhead).
    pub duration_factor: f64,
    /// Whether the numbers come from the data (false: defaults).
    pub measured: bool,
}

impl Default for PywrenCalibration {
    fn default() -> Self {
        Self {
            rate_per_s: 220.0,
            duration_factor: 1.4,
            measured: false,
        }
    }
}

/// Fits the PyWren baseline from `pywren/statelesscost` (C = 1, 100, 500, …, 5000 per line),
/// comparing its per-task cost with the native statelesscost k = 1 durations at scale.
pub fn pywren_calibration(
    dir: &Path,
    statelesscost: Option<&AppProfile>,
) -> Result<PywrenCalibration, EvalError> {
    let pw = dir.join("pywren").join("statelesscost");
    if !pw.is_dir() {
        return Ok(PywrenCalibration::default());
    }
    let cs: Vec<f64> = std::iter::once(1.0)
        .chain(paper_concurrencies().into_iter().map(|c| c as f64))
        .collect();
    let parse = |name: &str| -> Result<Vec<f64>, EvalError> {
        let p = pw.join(name);
        read_lines(&p)?
            .iter()
            .map(|l| l.parse::<f64>().map_err(|e| data_err(&p, e.to_string())))
            .collect()
    };
    let scale = parse("scaling_time.txt")?;
    let cost = parse("cost.txt")?;
    let n = cs.len().min(scale.len()).min(cost.len());
    if n < 2 {
        return Err(data_err(&pw, "fewer than two PyWren runs"));
    }
    // Scaling time ≈ C / rate through the origin.
    let sxy: f64 = (0..n).map(|i| cs[i] * scale[i]).sum();
    let sxx: f64 = (0..n).map(|i| cs[i] * cs[i]).sum();
    let rate_per_s = if sxy > 0.0 { sxx / sxy } else { 220.0 };
    // Seconds per task PyWren billed, over C ≥ 100.
    let per_task: Vec<f64> = (1..n)
        .map(|i| cost[i] / cs[i] / ARTIFACT_PRICE_PER_S)
        .collect();
    let native = statelesscost.and_then(|p| {
        let d = k1_durations(p);
        (!d.is_empty()).then(|| d.iter().sum::<f64>() / d.len() as f64)
    });
    let duration_factor = match (median_of(&per_task), native) {
        (Some(pw), Some(nat)) if nat > 0.0 => pw / nat,
        _ => PywrenCalibration::default().duration_factor,
    };
    Ok(PywrenCalibration {
        rate_per_s,
        duration_factor,
        measured: true,
    })
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalConfig {
    /// Concurrency levels.
    pub tasks: Vec<u64>,
    /// Seeds per (C, k).
    pub seeds: u64,
    /// First seed.
    pub base_seed: u64,
    /// Objectives.
    pub objectives: Vec<Objective>,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Overrides the simulator's warm reuse (see [`SimSpec::warm_reuse`]).
    pub warm_reuse: Option<bool>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        Self {
            tasks: paper_concurrencies(),
            seeds: 5,
            base_seed: 1,
            objectives: vec![
                Objective::Time,
                Objective::Cost,
                Objective::Both {
                    w_cost: DEFAULT_W_COST,
                    w_time: DEFAULT_W_TIME,
                },
            ],
            metrics: vec![Metric::Total, Metric::Tail, Metric::Median],
            warm_reuse: None,
        }
    }
}

/// The PyWren baseline of one row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PywrenRow {
    /// Simulated service time of the row's metric, s.
    pub service_s: f64,
    /// Simulated expense, USD.
    pub expense_usd: f64,
    /// ProPack's k vs PyWren: reduction of service time, percent.
    pub propack_time_improvement_pct: f64,
    /// ProPack's k vs PyWren: reduction of expense, percent.
    pub propack_cost_improvement_pct: f64,
}

/// A k = 1 baseline of one row, simulated.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BaselineRow {
    /// Its function memory, MB.
    pub memory_mb: u32,
    /// Simulated service time of the row's metric, s.
    pub service_s: f64,
    /// Simulated expense, USD.
    pub expense_usd: f64,
    /// ProPack's plan vs this baseline: reduction of service time, percent.
    pub time_improvement_pct: f64,
    /// ProPack's plan vs this baseline: reduction of expense, percent.
    pub cost_improvement_pct: f64,
}

/// One (workload, platform, C, objective, metric) of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalRow {
    /// App.
    pub workload: String,
    /// Platform name.
    pub platform: String,
    /// C.
    pub tasks: u64,
    /// `time`, `cost`, `both`.
    pub objective: String,
    /// `total`, `tail`, `median`.
    pub metric: String,
    /// The planner's function memory, MB.
    #[serde(default)]
    pub memory_mb: u32,
    /// The planner's k.
    pub k_propack: u64,
    /// The best k on the simulator.
    pub k_oracle: u64,
    /// How much worse ProPack's k is than the Oracle's on the simulator, percent of the
    /// objective (service time for `time`, expense for `cost`, percentage points of
    /// the weighted normalised excess for `both`).
    pub regret_pct: f64,
    /// ProPack's k vs k = 1, reduction of the metric's simulated service time, percent.
    pub improvement_time_pct: f64,
    /// ProPack's k vs k = 1, reduction of simulated expense, percent.
    pub improvement_cost_pct: f64,
    /// k = 1 right-sized: at the memory the planner finds best for k = 1 (same objective).
    pub right_sized_k1: BaselineRow,
    /// The PyWren baseline.
    pub pywren: PywrenRow,
}

/// Mean regret per platform.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlatformSummary {
    /// Mean regret of the `time` rows, percent of service time.
    pub time_regret_mean_pct: f64,
    /// Mean regret of the `cost` rows, percent of expense.
    pub cost_regret_mean_pct: f64,
    /// Largest regret of any row, percent.
    pub worst_regret_pct: f64,
    /// Mean reduction of service time of the `time` rows vs k = 1 at the same memory, percent.
    #[serde(default)]
    pub time_improvement_pct: f64,
    /// Mean reduction of expense of the `cost` rows vs k = 1 at the same memory, percent.
    #[serde(default)]
    pub cost_improvement_pct: f64,
    /// The same for the `time` rows vs k = 1 right-sized: how much of the time improvement survives.
    #[serde(default)]
    pub time_improvement_vs_right_sized_pct: f64,
    /// The same for the `cost` rows vs k = 1 right-sized: how much of the cost improvement survives.
    #[serde(default)]
    pub cost_improvement_vs_right_sized_pct: f64,
}

/// The evaluation's answer (`orchestrator evaluate --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Every row.
    pub rows: Vec<EvalRow>,
    /// Per platform.
    pub summary: BTreeMap<String, PlatformSummary>,
}

fn metric_of(m: &Metrics, metric: Metric) -> f64 {
    match metric {
        Metric::Total => m.total_s,
        Metric::Tail => m.tail_s,
        Metric::Median => m.median_s,
    }
}

fn mean_metrics(v: &[Metrics]) -> Metrics {
    let n = v.len().max(1) as f64;
    let sum = |f: fn(&Metrics) -> f64| v.iter().map(f).sum::<f64>() / n;
    Metrics {
        scale_s: sum(|m| m.scale_s),
        total_s: sum(|m| m.total_s),
        tail_s: sum(|m| m.tail_s),
        median_s: sum(|m| m.median_s),
        expense_usd: sum(|m| m.expense_usd),
        expense: crate::billing::Expense {
            compute_usd: sum(|m| m.expense.compute_usd),
            requests_usd: sum(|m| m.expense.requests_usd),
            orchestration_usd: sum(|m| m.expense.orchestration_usd),
        },
    }
}

/// Measures simulated records the way a real launch is measured (Step Functions transitions included).
pub fn sim_metrics(
    records: &RunRecords,
    platform: &PlatformProfile,
    tail_quantile: f64,
    dispatch: crate::billing::Dispatch,
) -> Metrics {
    let mut records = records.clone();
    records.orchestration =
        crate::billing::OrchestrationUsage::derive(&records, dispatch, platform.vcpus);
    records.metrics(tail_quantile, platform)
}

/// What evaluating one app on one platform holds fixed across the grid.
struct AppEval<'a> {
    workload: &'a SimWorkload,
    platform: &'a PlatformProfile,
    cfg: &'a EvalConfig,
    model: Model,
}

impl<'a> AppEval<'a> {
    /// The app's ProPack model fitted on `platform`.
    fn new(
        workload: &'a SimWorkload,
        platform: &'a PlatformProfile,
        cfg: &'a EvalConfig,
    ) -> Result<Self, EvalError> {
        Ok(Self {
            model: Model::new(&workload.profile, platform.clone(), ModelKind::Propack)?,
            workload,
            platform,
            cfg,
        })
    }
}

/// Mean simulated metrics of one C: every feasible k at each memory a plan chose, k = 1
/// at each right-sized memory, and the PyWren baseline.
struct Simulated {
    /// By memory, then k.
    at: BTreeMap<u32, BTreeMap<u64, Metrics>>,
    pywren: Metrics,
}

/// How an objective scores simulated metrics (lower is better); `both` weighs the
/// excess over the best time and the best expense of any k.
struct Scorer {
    objective: Objective,
    metric: Metric,
    t_min: f64,
    e_min: f64,
}

impl Scorer {
    fn new(objective: Objective, metric: Metric, by_k: &BTreeMap<u64, Metrics>) -> Self {
        let min = |f: &dyn Fn(&Metrics) -> f64| by_k.values().map(f).fold(f64::INFINITY, f64::min);
        Self {
            objective,
            metric,
            t_min: min(&|m| metric_of(m, metric)),
            e_min: min(&|m| m.expense_usd),
        }
    }

    fn score(&self, m: &Metrics) -> f64 {
        let excess = |v: f64, min: f64| if min > 0.0 { v / min - 1.0 } else { v - min };
        match self.objective {
            Objective::Time => metric_of(m, self.metric),
            Objective::Cost => m.expense_usd,
            Objective::Both { w_cost, w_time } => {
                w_cost * excess(m.expense_usd, self.e_min)
                    + w_time * excess(metric_of(m, self.metric), self.t_min)
            }
        }
    }
}

impl AppEval<'_> {
    /// The planner's request for C tasks of this app (memory searched).
    fn request(&self, tasks: u64, objective: Objective, metric: Metric, kmax: u64) -> PlanRequest {
        let wl = &self.workload.profile.workload;
        PlanRequest {
            tasks,
            objective,
            metric,
            kmax,
            memory_mb_per_task: wl.memory_mb_per_task,
            tmp_mb_per_task: wl.tmp_mb_per_task,
            payload_bytes_per_task: wl.payload_bytes_per_task,
            memory_mb: (!self.platform.plans_memory()).then_some(self.platform.memory_mb),
        }
    }

    /// Mean simulated metrics over the configured seeds, durations from `durations`,
    /// on `platform` (its memory prices the run), the orchestration priced as `billed`.
    fn mean(
        &self,
        platform: &PlatformProfile,
        durations: &dyn DurationSampler,
        spec: impl Fn(u64) -> SimSpec,
        billed: crate::billing::Dispatch,
    ) -> Metrics {
        let cfg = self.cfg;
        let runs: Vec<Metrics> = (0..cfg.seeds.max(1))
            .map(|s| {
                let mut spec = spec(cfg.base_seed + s);
                if cfg.warm_reuse.is_some() {
                    spec.warm_reuse = cfg.warm_reuse;
                }
                let rec = sim::simulate(platform, durations, &spec);
                sim_metrics(&rec, platform, self.model.tail_quantile, billed)
            })
            .collect();
        mean_metrics(&runs)
    }

    /// Mean metrics of C tasks packed k per instance at `memory_mb`: the workload's
    /// durations scaled as the model scales them ([`Model::memory_ratio`]).
    fn mean_at(&self, c: u64, memory_mb: u32, k: u64) -> Metrics {
        let model = self.model.at_memory(memory_mb);
        let ratios = (1..=k.max(1)).map(|j| model.memory_ratio(j)).collect();
        let durations = sim::Scaled::new(&self.workload.durations, ratios);
        // Priced like the model prices it: the generated Step Functions definition.
        self.mean(
            &model.platform,
            &durations,
            |seed| SimSpec::new(c as usize, k as usize, seed),
            self.model.dispatch,
        )
    }

    /// Simulates every k the planner finds feasible at `memory_mb` (memory, /tmp,
    /// payload, timeout; the Oracle searches them all), once per memory.
    fn simulate_memory(&self, c: u64, memory_mb: u32, kmax: u64, sims: &mut Simulated) {
        if sims
            .at
            .get(&memory_mb)
            .is_some_and(|m| m.len() > 1 || kmax == 1)
        {
            return;
        }
        let mut req = self.request(c, Objective::Time, Metric::Total, kmax);
        req.memory_mb = Some(memory_mb);
        let feasible: Vec<u64> = match plan(&self.model, &req) {
            Ok(p) => p.curve.iter().filter(|p| p.feasible).map(|p| p.k).collect(),
            Err(_) => Vec::new(),
        };
        let by_k = sims.at.entry(memory_mb).or_default();
        for k in feasible {
            by_k.entry(k)
                .or_insert_with(|| self.mean_at(c, memory_mb, k));
        }
    }

    /// k = 1 at `memory_mb`, simulated once.
    fn simulate_k1(&self, c: u64, memory_mb: u32, sims: &mut Simulated) -> Metrics {
        *sims
            .at
            .entry(memory_mb)
            .or_default()
            .entry(1)
            .or_insert_with(|| self.mean_at(c, memory_mb, 1))
    }

    /// The PyWren baseline at the platform's memory.
    fn simulate_pywren(&self, c: u64, pywren: &PywrenCalibration) -> Metrics {
        self.mean(
            self.platform,
            &self.workload.durations,
            |seed| {
                let mut s = SimSpec::new(c as usize, 1, seed);
                s.dispatch = Dispatch::ClientPool {
                    rate_per_s: pywren.rate_per_s,
                };
                s.duration_factor = pywren.duration_factor;
                s
            },
            crate::billing::Dispatch::Direct,
        )
    }

    /// The row of (C, objective, metric) for the planner's `plan`.
    fn row(
        &self,
        c: u64,
        (objective, metric): (Objective, Metric),
        planned: &crate::model::Plan,
        kmax: u64,
        sims: &mut Simulated,
    ) -> Result<EvalRow, EvalError> {
        let (memory_mb, k_p) = (planned.memory_mb, planned.k);
        let rs_memory = planned
            .baselines
            .map_or(memory_mb, |b| b.right_sized_k1.memory_mb);
        self.simulate_memory(c, memory_mb, kmax, sims);
        let base = self.simulate_k1(c, memory_mb, sims);
        let rs = self.simulate_k1(c, rs_memory, sims);
        let by_k = &sims.at[&memory_mb];
        let scorer = Scorer::new(objective, metric, by_k);
        let (k_o, best) = by_k
            .iter()
            .map(|(k, m)| (*k, scorer.score(m)))
            .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
            .ok_or_else(|| {
                EvalError::Invalid(format!("{} C={c}: no feasible k", self.workload.app))
            })?;
        let mp = by_k
            .get(&k_p)
            .copied()
            .unwrap_or_else(|| self.mean_at(c, memory_mb, k_p));
        let sp = scorer.score(&mp);
        let regret_pct = match objective {
            Objective::Both { .. } => (sp - best) * 100.0,
            _ if best > 0.0 => (sp - best) / best * 100.0,
            _ => 0.0,
        };
        let pct = |a: f64, b: f64| if a > 0.0 { (a - b) / a * 100.0 } else { 0.0 };
        let pw = &sims.pywren;
        Ok(EvalRow {
            workload: self.workload.app.clone(),
            platform: self.platform.name.clone(),
            tasks: c,
            objective: objective.name().into(),
            metric: metric.name().into(),
            memory_mb,
            k_propack: k_p,
            k_oracle: k_o,
            regret_pct,
            improvement_time_pct: pct(metric_of(&base, metric), metric_of(&mp, metric)),
            improvement_cost_pct: pct(base.expense_usd, mp.expense_usd),
            right_sized_k1: BaselineRow {
                memory_mb: rs_memory,
                service_s: metric_of(&rs, metric),
                expense_usd: rs.expense_usd,
                time_improvement_pct: pct(metric_of(&rs, metric), metric_of(&mp, metric)),
                cost_improvement_pct: pct(rs.expense_usd, mp.expense_usd),
            },
            pywren: PywrenRow {
                service_s: metric_of(pw, metric),
                expense_usd: pw.expense_usd,
                propack_time_improvement_pct: pct(metric_of(pw, metric), metric_of(&mp, metric)),
                propack_cost_improvement_pct: pct(pw.expense_usd, mp.expense_usd),
            },
        })
    }
}

/// Evaluates one app on one platform over the whole grid.
pub fn evaluate_app(
    workload: &SimWorkload,
    platform: &PlatformProfile,
    pywren: &PywrenCalibration,
    cfg: &EvalConfig,
) -> Result<Vec<EvalRow>, EvalError> {
    let app = AppEval::new(workload, platform, cfg)?;
    let mut rows = Vec::new();
    for &c in &cfg.tasks {
        let kmax = app.model.packing.k_max.clamp(1, c);
        let mut sims = Simulated {
            at: BTreeMap::new(),
            pywren: app.simulate_pywren(c, pywren),
        };
        for &objective in &cfg.objectives {
            for &metric in &cfg.metrics {
                let planned = plan(&app.model, &app.request(c, objective, metric, kmax))?;
                rows.push(app.row(c, (objective, metric), &planned, kmax, &mut sims)?);
            }
        }
    }
    Ok(rows)
}

/// Balanced batches vs batches in manifest order for one app, platform and C (`evaluate --uneven-sigma`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnevenRow {
    /// App.
    pub workload: String,
    /// Platform.
    pub platform: String,
    /// C.
    pub tasks: u64,
    /// σ of the log-normal task weights.
    pub sigma: f64,
    /// The planned memory, MB (time objective, total).
    pub memory_mb: u32,
    /// The planned k.
    pub k: u64,
    /// Simulated total service time, batches in manifest order (mean over seeds), s.
    pub manifest_order_total_s: f64,
    /// Simulated total service time, LPT-balanced batches, s.
    pub balanced_total_s: f64,
    /// Reduction of the total by balancing, percent.
    pub reduction_pct: f64,
    /// The model's total for manifest order, s.
    pub predicted_manifest_order_total_s: f64,
    /// The model's total for balanced batches, s.
    pub predicted_balanced_total_s: f64,
}

/// Simulates C tasks of log-normal weights (σ = `sigma`, seeded) at the planned memory and
/// k, batched in manifest order and balanced ([`crate::batching::balanced_order`]).
pub fn uneven(
    workload: &SimWorkload,
    platform: &PlatformProfile,
    c: u64,
    sigma: f64,
    cfg: &EvalConfig,
) -> Result<UnevenRow, EvalError> {
    use rand::SeedableRng;
    let app = AppEval::new(workload, platform, cfg)?;
    let kmax = app.model.packing.k_max.clamp(1, c);
    let planned = plan(
        &app.model,
        &app.request(c, Objective::Time, Metric::Total, kmax),
    )?;
    let (memory_mb, k) = (planned.memory_mb, planned.k);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.base_seed);
    let weights: Vec<f64> = (0..c)
        .map(|_| (sigma * sim::durations::standard_normal(&mut rng)).exp())
        .collect();
    let order = crate::batching::balanced_order(&weights, k as usize);
    let balanced: Vec<f64> = order.iter().map(|&i| weights[i]).collect();
    let at = app.model.at_memory(memory_mb);
    let ratios = (1..=k).map(|j| at.memory_ratio(j)).collect();
    let durations = sim::Scaled::new(&workload.durations, ratios);
    let total = |w: &[f64]| {
        app.mean(
            &at.platform,
            &durations,
            |seed| {
                let mut s = SimSpec::new(c as usize, k as usize, seed);
                s.weights = w.to_vec();
                s
            },
            at.dispatch,
        )
        .total_s
    };
    let (manifest, bal) = (total(&weights), total(&balanced));
    Ok(UnevenRow {
        workload: workload.app.clone(),
        platform: platform.name.clone(),
        tasks: c,
        sigma,
        memory_mb,
        k,
        manifest_order_total_s: manifest,
        balanced_total_s: bal,
        reduction_pct: if manifest > 0.0 {
            (manifest - bal) / manifest * 100.0
        } else {
            0.0
        },
        predicted_manifest_order_total_s: at.predict_weighted(&weights, k).total_s,
        predicted_balanced_total_s: at.predict_weighted(&balanced, k).total_s,
    })
}

/// Summaries per platform over `rows`.
pub fn summarise(rows: &[EvalRow]) -> BTreeMap<String, PlatformSummary> {
    let mut out = BTreeMap::new();
    let platforms: std::collections::BTreeSet<&str> =
        rows.iter().map(|r| r.platform.as_str()).collect();
    for p in platforms {
        let mean_of = |obj: &str, f: &dyn Fn(&EvalRow) -> f64| {
            let v: Vec<f64> = rows
                .iter()
                .filter(|r| r.platform == p && r.objective == obj)
                .map(f)
                .collect();
            if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            }
        };
        let mean = |obj: &str| mean_of(obj, &|r| r.regret_pct);
        let worst = rows
            .iter()
            .filter(|r| r.platform == p)
            .map(|r| r.regret_pct)
            .fold(0.0_f64, f64::max);
        out.insert(
            p.to_owned(),
            PlatformSummary {
                time_regret_mean_pct: mean("time"),
                cost_regret_mean_pct: mean("cost"),
                worst_regret_pct: worst,
                time_improvement_pct: mean_of("time", &|r| r.improvement_time_pct),
                cost_improvement_pct: mean_of("cost", &|r| r.improvement_cost_pct),
                time_improvement_vs_right_sized_pct: mean_of("time", &|r| {
                    r.right_sized_k1.time_improvement_pct
                }),
                cost_improvement_vs_right_sized_pct: mean_of("cost", &|r| {
                    r.right_sized_k1.cost_improvement_pct
                }),
            },
        );
    }
    out
}

/// One app of the artifact, ready to simulate, with its measured runs.
#[derive(Debug, Clone)]
pub struct ArtifactWorkload {
    /// The calibrated workload.
    pub workload: SimWorkload,
    /// Its `propack_performance` runs (empty when absent).
    pub runs: Vec<ArtifactRun>,
}

/// Discovers the apps in `dir` (as `model validate` does), imports their profiles and
/// calibrates each on its `time`-objective packed runs. `only` restricts the apps.
pub fn load_artifact(dir: &Path, only: &[String]) -> Result<Vec<ArtifactWorkload>, EvalError> {
    let mut apps = artifact::discover_apps(dir)?;
    if !only.is_empty() {
        for a in only {
            if !apps.contains(a) {
                return Err(EvalError::Invalid(format!(
                    "app {a:?} not found in {} (found: {})",
                    dir.display(),
                    apps.join(", ")
                )));
            }
        }
        apps.retain(|a| only.contains(a));
    }
    let mut out = Vec::new();
    for app in apps {
        // An app with measurements of only one kind cannot be simulated; skip it
        // rather than fail the whole evaluation.
        let Ok(profile) = artifact::import(dir, &app) else {
            continue;
        };
        let runs = read_propack_runs(dir, &app)?;
        let (factor, fitted) = fit_slope_factor(&profile, &runs);
        out.push(ArtifactWorkload {
            workload: SimWorkload::new(profile, factor, fitted)?,
            runs,
        });
    }
    if out.is_empty() {
        return Err(EvalError::Invalid(format!(
            "no app in {} has both scaling_performance and packed_performance data",
            dir.display()
        )));
    }
    Ok(out)
}

/// ProPack's packing against a platform's own per-instance concurrency (Cloud Run's
/// concurrent requests, Azure's HTTP concurrency), for one C.
///
/// With built-in concurrency N the platform itself puts N requests (one task each) into an
/// instance: the same packing at k = N, except that N is the platform's setting rather than
/// a planned k, and every task is a request (request fees per task, not per batch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinRow {
    /// App.
    pub workload: String,
    /// Platform name.
    pub platform: String,
    /// C.
    pub tasks: u64,
    /// ProPack's k (objective `time`, metric `total`).
    pub k_propack: u64,
    /// ProPack's simulated total service time, s.
    pub propack_total_s: f64,
    /// ProPack's simulated expense, USD.
    pub propack_expense_usd: f64,
    /// The platform's default per-instance concurrency N (capped at C).
    pub builtin_default: u64,
    /// Why N tasks per instance cannot run (memory, /tmp, timeout, beyond the measured
    /// packing curve), or `None` when they can.
    pub builtin_default_infeasible: Option<String>,
    /// Simulated total service time at the default, s (when feasible).
    pub builtin_default_total_s: Option<f64>,
    /// Simulated expense at the default, USD, every task a request (when feasible).
    pub builtin_default_expense_usd: Option<f64>,
    /// The built-in concurrency set to ProPack's k: the same instances and time, plus the
    /// request fees of C − ⌈C/k⌉ more requests, USD.
    pub builtin_at_k_extra_requests_usd: f64,
}

/// [`BuiltinRow`]s of one app on one platform whose default per-instance concurrency is
/// `default_per_instance`, over `cfg.tasks`.
pub fn compare_builtin_concurrency(
    workload: &SimWorkload,
    platform: &PlatformProfile,
    default_per_instance: u64,
    cfg: &EvalConfig,
) -> Result<Vec<BuiltinRow>, EvalError> {
    let app = AppEval::new(workload, platform, cfg)?;
    let measured_kmax = app.model.packing.k_max.max(1);
    let mut out = Vec::new();
    for &c in &cfg.tasks {
        let kmax = measured_kmax.clamp(1, c);
        let probe = plan(
            &app.model,
            &app.request(c, Objective::Time, Metric::Total, kmax),
        )?;
        let k_p = probe.k;
        let mp = app.mean_at(c, probe.memory_mb, k_p);
        let n = default_per_instance.clamp(1, c);
        let infeasible = if n > measured_kmax {
            Some(format!(
                "{n} tasks per instance are beyond the app's measured packing curve (k <= {measured_kmax})"
            ))
        } else {
            probe
                .curve
                .iter()
                .find(|p| p.k == n)
                .filter(|p| !p.feasible)
                .map(|p| {
                    p.infeasible
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; ")
                })
        };
        let request = platform.prices.request;
        let extra = |k: u64| (c - c.div_ceil(k)) as f64 * request;
        let at_default = infeasible.is_none().then(|| {
            let m = app.mean_at(c, probe.memory_mb, n);
            (m.total_s, m.expense_usd + extra(n))
        });
        out.push(BuiltinRow {
            workload: workload.app.clone(),
            platform: platform.name.clone(),
            tasks: c,
            k_propack: k_p,
            propack_total_s: mp.total_s,
            propack_expense_usd: mp.expense_usd,
            builtin_default: n,
            builtin_default_infeasible: infeasible,
            builtin_default_total_s: at_default.map(|d| d.0),
            builtin_default_expense_usd: at_default.map(|d| d.1),
            builtin_at_k_extra_requests_usd: extra(k_p),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::synthetic_profile;

    #[test]
    fn concurrencies_are_the_papers() {
        let c = paper_concurrencies();
        assert_eq!(c.len(), 11);
        assert_eq!((c[0], c[1], c[10]), (100, 500, 5000));
    }

    #[test]
    fn workload_curve_starts_at_the_k1_duration_at_scale() {
        // Synthetic: warm P(k) = 1.5 + 0.5 (k − 1), k = 1 at scale takes 1 s.
        let w = SimWorkload::new(synthetic_profile(), 2.0, 0).unwrap();
        assert!((w.durations.median_s(1) - 1.0).abs() < 1e-12);
        // 1 + 2 · (P(4) − P(1)) = 1 + 2 · 1.5.
        assert!((w.durations.median_s(4) - 4.0).abs() < 1e-12);
        assert!(w.durations.residuals().iter().all(|r| *r == 0.0));
    }

    #[test]
    fn slope_factor_is_fitted_on_time_runs_only() {
        let p = synthetic_profile();
        let run = |objective: &str, k: u64, d: f64| ArtifactRun {
            objective: objective.into(),
            metric: "net".into(),
            tasks: 100,
            k,
            instances: 100 / k,
            service_s: 10.0,
            durations: vec![d; 3],
        };
        // P(4) − P(1) = 1.5; a measured median of 1 + 3 means factor 2.
        let runs = vec![
            run("time", 4, 4.0),
            run("time", 1, 9.0),
            run("cost", 4, 100.0),
        ];
        let (f, n) = fit_slope_factor(&p, &runs);
        assert!((f - 2.0).abs() < 1e-9, "{f}");
        assert_eq!(n, 1);
    }

    #[test]
    fn oracle_is_never_beaten_and_rows_cover_the_grid() {
        let w = SimWorkload::new(synthetic_profile(), 1.0, 0).unwrap();
        let cfg = EvalConfig {
            tasks: vec![100, 400],
            seeds: 2,
            ..EvalConfig::default()
        };
        let rows = evaluate_app(
            &w,
            &PlatformProfile::aws_2021(),
            &PywrenCalibration::default(),
            &cfg,
        )
        .unwrap();
        assert_eq!(rows.len(), 2 * 3 * 3);
        for r in &rows {
            assert!(r.regret_pct >= -1e-9, "{r:?}");
            assert!(r.k_oracle >= 1 && r.k_oracle <= 16);
        }
        // Packing pays on a 50 ms-per-instance platform at C = 400 (time objective).
        let t = rows
            .iter()
            .find(|r| r.tasks == 400 && r.objective == "time" && r.metric == "total")
            .unwrap();
        assert!(t.k_oracle > 1 && t.improvement_time_pct > 0.0, "{t:?}");
        let s = summarise(&rows);
        assert!(s["aws-2021"].worst_regret_pct >= s["aws-2021"].time_regret_mean_pct);
    }

    #[test]
    fn builtin_concurrency_is_packing_at_the_platforms_n_with_a_request_per_task() {
        let w = SimWorkload::new(synthetic_profile(), 1.0, 0).unwrap();
        let cfg = EvalConfig {
            tasks: vec![400],
            seeds: 2,
            ..EvalConfig::default()
        };
        let p = PlatformProfile::load("cloud-run").unwrap();
        let over = compare_builtin_concurrency(&w, &p, 80, &cfg).unwrap();
        assert_eq!(over.len(), 1);
        let r = &over[0];
        assert_eq!(
            r.builtin_default_infeasible.as_deref(),
            Some("80 tasks per instance are beyond the app's measured packing curve (k <= 16)")
        );
        assert_eq!(
            (r.builtin_default_total_s, r.builtin_default_expense_usd),
            (None, None)
        );
        let extra = (400 - 400u64.div_ceil(r.k_propack)) as f64 * 0.000_000_4;
        assert!(
            (r.builtin_at_k_extra_requests_usd - extra).abs() < 1e-15,
            "{r:?}"
        );

        // At N = k_propack the platform packs exactly like ProPack: same simulated time,
        // expense higher by the extra requests only.
        let same = compare_builtin_concurrency(&w, &p, r.k_propack, &cfg).unwrap();
        let s = &same[0];
        assert_eq!(s.builtin_default_infeasible, None);
        assert_eq!(s.builtin_default_total_s, Some(s.propack_total_s));
        let e = s.builtin_default_expense_usd.unwrap();
        assert!((e - s.propack_expense_usd - extra).abs() < 1e-12, "{s:?}");
    }
}

/// Everything `evaluate` computes: every row with its summary, and each app's calibration check.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Every (app, platform, C, objective, metric) row and the per-platform summary.
    pub report: EvalReport,
    /// Each app's model-vs-measured check on aws-2021 (apps without measured runs are absent).
    pub calibration: Vec<CalibrationSummary>,
}

/// Simulates every (workload, platform) pair and checks each workload's calibration.
///
/// The pairs are independent, so they run on one thread per core; `progress` is called
/// once per finished unit (there are `workloads × (platforms + 1)` units). Rows keep the
/// order workload-major, platform-minor whatever order the threads finish in.
pub fn evaluate_all(
    workloads: &[ArtifactWorkload],
    platforms: &[PlatformProfile],
    pywren: &PywrenCalibration,
    cfg: &EvalConfig,
    progress: &(dyn Fn() + Sync),
) -> Result<Evaluation, EvalError> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let ncal = workloads.len();
    let units = ncal + ncal * platforms.len();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::new());
    let calib = Mutex::new(Vec::new());
    let aws2021 = PlatformProfile::aws_2021();
    std::thread::scope(|s| {
        for _ in 0..threads.min(units) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= units {
                        break;
                    }
                    if i < ncal {
                        let w = &workloads[i];
                        if !w.runs.is_empty() {
                            let c = calibration_check(&w.workload, &w.runs, &aws2021, cfg.seeds);
                            calib.lock().expect("no panics hold it").push((i, c));
                        }
                    } else {
                        let (wi, pi) = ((i - ncal) / platforms.len(), (i - ncal) % platforms.len());
                        let r = evaluate_app(&workloads[wi].workload, &platforms[pi], pywren, cfg);
                        rows.lock().expect("no panics hold it").push((i, r));
                    }
                    progress();
                }
            });
        }
    });
    let mut results = rows.into_inner().expect("threads joined");
    results.sort_by_key(|r| r.0);
    let mut all = Vec::new();
    for (_, r) in results {
        all.extend(r?);
    }
    let mut calib = calib.into_inner().expect("threads joined");
    calib.sort_by_key(|c| c.0);
    let summary = summarise(&all);
    Ok(Evaluation {
        report: EvalReport { rows: all, summary },
        calibration: calib.into_iter().map(|c| c.1).collect(),
    })
}
