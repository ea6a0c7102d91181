//! Plan: choose k for a staged job — a stored plan, a fixed k, or the model fitted on a local profile.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::error::PipelineError;
use crate::backend::BackendKind;
use crate::model::store::{PlanKey, PlanStore};
use crate::model::{
    AppProfile, Metric, Model, ModelKind, Objective, Plan, PlanRequest, Prediction,
};
use crate::platform::PlatformProfile;
use crate::records::Metrics;

/// `--packing auto|K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Plan k with the model.
    Auto,
    /// Use this k (capped at C).
    Fixed(usize),
}

impl std::str::FromStr for Packing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Packing::Auto),
            n => match n.parse::<usize>() {
                Ok(0) => Err("k must be at least 1".into()),
                Ok(k) => Ok(Packing::Fixed(k)),
                Err(_) => Err(format!("{n:?} is neither `auto` nor a positive integer")),
            },
        }
    }
}

/// What a plan is for: the plan store's key, made in this one place for `plan` and `launch`;
/// a pinned memory (`--memory`) is part of the platform (`aws:aws-2021@1769MB`).
pub fn plan_key(
    workload: &str,
    backend: BackendKind,
    platform: &str,
    tasks: u64,
    (objective, metric): (Objective, Metric),
    memory_mb: Option<u32>,
) -> PlanKey {
    let memory = memory_mb.map_or(String::new(), |m| format!("@{m}MB"));
    PlanKey::new(
        workload,
        &format!("{backend}:{platform}{memory}"),
        tasks,
        objective,
        metric,
    )
}

/// How k is to be chosen.
#[derive(Debug, Clone)]
pub struct PlanSpec {
    /// Fixed or planned.
    pub packing: Packing,
    /// What the plan minimises.
    pub objective: Objective,
    /// Which service time.
    pub metric: Metric,
    /// Largest k the planner considers (and a local profile measures).
    pub kmax: usize,
    /// The plan store file.
    pub store: PathBuf,
    /// Profile and plan again even if the store has a plan.
    pub replan: bool,
    /// Function memory, MB, when pinned (`--memory`); `None` lets the planner choose
    /// (on the local backend: the platform profile's memory, see [`from_profile`]).
    pub memory_mb: Option<u32>,
}

/// The chosen k and what is known about it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// Packing degree.
    pub k: usize,
    /// The planner's full output, when k was planned.
    pub plan: Option<Plan>,
    /// How k was chosen, for humans.
    pub source: String,
    /// Predicted metrics by k (the chosen k and k = 1), when a model or stored plan exists.
    pub predictions: BTreeMap<usize, Metrics>,
    /// The function memory the predictions are for, MB (`None`: the platform profile's).
    pub memory_mb: Option<u32>,
}

impl Planned {
    /// The prediction for `k`, if any.
    pub fn predicted(&self, k: usize) -> Option<Metrics> {
        self.predictions.get(&k).copied()
    }
}

/// A prediction as the metrics a run measures.
pub fn prediction_metrics(p: &Prediction) -> Metrics {
    Metrics {
        scale_s: p.scale_s,
        total_s: p.total_s,
        tail_s: p.tail_s,
        median_s: p.median_s,
        expense_usd: p.expense_usd,
        expense: p.expense,
    }
}

/// The stored plan for `key`, unless the spec asks to plan again or fixes k.
pub fn stored(spec: &PlanSpec, key: &PlanKey, c: usize) -> Result<Option<Planned>, PipelineError> {
    if spec.packing != Packing::Auto || spec.replan {
        return Ok(None);
    }
    let store = PlanStore::open(&spec.store)?;
    Ok(store.get(key).map(|sp| {
        let k = (sp.k as usize).clamp(1, c);
        Planned {
            k,
            plan: Some(sp.plan.clone()),
            source: format!("stored plan in {}", spec.store.display()),
            predictions: BTreeMap::from([
                (k, prediction_metrics(&sp.plan.prediction)),
                (1, prediction_metrics(&sp.plan.baseline)),
            ]),
            memory_mb: (sp.plan.memory_mb > 0).then_some(sp.plan.memory_mb),
        }
    }))
}

/// Chooses k from a measured profile: fixed, or planned (and stored under `key`).
///
/// `platform` is the one the job runs on: for the local backend the target profile
/// [`PlatformProfile::on_host`] this machine, so predictions account for the instances
/// sharing its CPUs. Memory is the pinned one, else the platform profile's (see
/// [`PlatformProfile::plans_memory`]; `launch` plans only on the local backend).
pub fn from_profile(
    spec: &PlanSpec,
    key: PlanKey,
    profile: &AppProfile,
    platform: &PlatformProfile,
    staged: &super::StagedJob,
) -> Result<Planned, PipelineError> {
    let c = staged.tasks.len();
    let memory_mb = spec.memory_mb.unwrap_or(platform.memory_mb);
    let model = Model::new(profile, platform.clone(), ModelKind::Propack)?.at_memory(memory_mb);
    let (k, plan, source) = match spec.packing {
        Packing::Fixed(k) => (k.min(c), None, format!("--packing {k}")),
        Packing::Auto => {
            let req = PlanRequest {
                tasks: c as u64,
                objective: spec.objective,
                metric: spec.metric,
                kmax: spec.kmax.clamp(1, c) as u64,
                memory_mb_per_task: profile.workload.memory_mb_per_task,
                tmp_mb_per_task: profile.workload.tmp_mb_per_task,
                payload_bytes_per_task: profile.workload.payload_bytes_per_task,
                memory_mb: Some(memory_mb),
            };
            let mut plan = crate::model::plan(&model, &req)?;
            // The stored plan predicts this job's batches, as formed by their weights.
            let k = plan.k as usize;
            plan.prediction = predict_batches(&model, staged, k);
            plan.baseline = predict_batches(&model, staged, 1);
            if let Some(b) = plan.baselines.as_mut() {
                b.same_memory_k1.prediction = plan.baseline;
            }
            let mut store = PlanStore::open(&spec.store)?;
            store.put(key, plan.clone());
            store.save()?;
            let source = format!(
                "planned from a local profile: {} / {}, kmax {}",
                spec.objective.name(),
                spec.metric.name(),
                req.kmax
            );
            (plan.k as usize, Some(plan), source)
        }
    };
    let predictions = [k, 1]
        .into_iter()
        .map(|kk| (kk, prediction_metrics(&predict_batches(&model, staged, kk))))
        .collect();
    Ok(Planned {
        k,
        plan,
        source,
        predictions,
        memory_mb: Some(model.platform.memory_mb),
    })
}

/// The prediction of the staged job's run at `k`: its batches as the run forms them
/// (balanced by the tasks' weights, [`super::StagedJob::batch_order`]).
fn predict_batches(model: &Model, staged: &super::StagedJob, k: usize) -> Prediction {
    model.predict_weighted(&staged.batch_order_weights(k), k as u64)
}

/// k without a model (a fixed k on a backend that cannot profile): no predictions.
pub fn fixed_without_model(spec: &PlanSpec, c: usize) -> Result<Planned, PipelineError> {
    match spec.packing {
        Packing::Fixed(k) => Ok(Planned {
            k: k.min(c),
            plan: None,
            source: format!("--packing {k}"),
            predictions: BTreeMap::new(),
            memory_mb: spec.memory_mb,
        }),
        Packing::Auto => Err(PipelineError::Usage(
            "--packing auto on --backend aws needs a stored plan: run `orchestrator plan` first, or pass --packing K"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_parses_auto_and_positive_k() {
        assert_eq!("auto".parse::<Packing>(), Ok(Packing::Auto));
        assert_eq!("12".parse::<Packing>(), Ok(Packing::Fixed(12)));
        assert!("0".parse::<Packing>().unwrap_err().contains("at least 1"));
        assert!("x".parse::<Packing>().unwrap_err().contains("\"x\""));
    }

    #[test]
    fn keys_name_backend_and_platform_the_same_way_everywhere() {
        let k = plan_key(
            "sort@1MB",
            BackendKind::Local,
            "aws-2021",
            200,
            (Objective::Time, Metric::Total),
            None,
        );
        assert_eq!(k.platform, "local:aws-2021");
        let pinned = plan_key(
            "sort@1MB",
            BackendKind::Aws,
            "aws-2021",
            200,
            (Objective::Time, Metric::Total),
            Some(1769),
        );
        assert_eq!(pinned.platform, "aws:aws-2021@1769MB");
        assert_eq!(k.function, "sort@1MB");
        assert_eq!((k.objective.as_str(), k.metric.as_str()), ("time", "total"));
    }

    #[test]
    fn a_fixed_k_is_capped_at_c_and_auto_needs_a_model() {
        let spec = PlanSpec {
            packing: Packing::Fixed(50),
            objective: Objective::Time,
            metric: Metric::Total,
            kmax: 24,
            store: PathBuf::from("/nonexistent/plans.json"),
            replan: false,
            memory_mb: None,
        };
        assert_eq!(fixed_without_model(&spec, 20).unwrap().k, 20);
        let auto = PlanSpec {
            packing: Packing::Auto,
            ..spec
        };
        assert!(fixed_without_model(&auto, 20).unwrap_err().is_usage());
    }
}
