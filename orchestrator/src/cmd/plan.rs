//! `orchestrator plan`: choose the function memory and packing degree k for a job from a profile, store it, print it.

use std::path::PathBuf;

use anyhow::Context as _;
use propack_orchestrator::backend::BackendKind;
use propack_orchestrator::model::planner::{DEFAULT_W_COST, DEFAULT_W_TIME, Plan};
use propack_orchestrator::model::store::{PlanStore, default_path};
use propack_orchestrator::model::{AppProfile, Model, ModelKind, PlanRequest, plan};
use propack_orchestrator::pipeline::plan::plan_key;
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::report::plots;

pub use super::args::{MetricArg, ObjectiveArg};

/// Arguments of `orchestrator plan`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Profile file (from `orchestrator profile import`).
    #[arg(long)]
    pub profile: PathBuf,
    /// Tasks C (default: the profile's workload).
    #[arg(long)]
    pub tasks: Option<u64>,
    /// What to minimise.
    #[arg(long, value_enum, default_value_t = ObjectiveArg::Time)]
    pub objective: ObjectiveArg,
    /// Which service time counts.
    #[arg(long, value_enum, default_value_t = MetricArg::Total)]
    pub metric: MetricArg,
    /// Quantile of the tail metric.
    #[arg(long, default_value_t = propack_orchestrator::records::DEFAULT_TAIL_QUANTILE)]
    pub tail_quantile: f64,
    /// Largest k considered (default: the largest k the packing profile measured).
    #[arg(long)]
    pub kmax: Option<u64>,
    /// Weight of expense for --objective both.
    #[arg(long, default_value_t = DEFAULT_W_COST)]
    pub w_cost: f64,
    /// Weight of time for --objective both.
    #[arg(long, default_value_t = DEFAULT_W_TIME)]
    pub w_time: f64,
    /// Platform: aws-2021, aws-today, unlimited, or a platform JSON file.
    #[arg(long, default_value = "aws-2021")]
    pub platform: String,
    /// Model: propack (default) or paper (the artifact's polynomial).
    #[arg(long, default_value = "propack", value_parser = ["propack", "paper"])]
    pub model: String,
    /// Memory per task, MB (default: the profile's workload).
    #[arg(long)]
    pub memory_mb_per_task: Option<f64>,
    /// /tmp per task, MB (default: the profile's workload).
    #[arg(long)]
    pub tmp_mb_per_task: Option<f64>,
    /// Payload bytes per task (default: the profile's workload).
    #[arg(long)]
    pub payload_bytes_per_task: Option<u64>,
    /// Function memory, MB (default: planned with k over the platform's memory range).
    #[arg(long)]
    pub memory: Option<u32>,
    /// Function name of the plan store key (default: the profile's workload name).
    #[arg(long)]
    pub function: Option<String>,
    /// The backend the plan is for (part of the plan store key; `launch --backend` reads it).
    #[arg(long, value_enum, default_value_t = super::launch::BackendArg::Aws)]
    pub backend: super::launch::BackendArg,
    /// Plan store file (default: $PROPACK_PLANS, $PROPACK_HOME/plans.json or ~/.propack/plans.json).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Re-plan even if the store holds a plan for this key.
    #[arg(long)]
    pub refresh: bool,
    /// Write an SVG of service time and expense against k.
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Print JSON (the whole curve and the Pareto front included).
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator plan`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if !(a.tail_quantile > 0.0 && a.tail_quantile < 1.0) {
        anyhow::bail!("--tail-quantile must be in (0, 1)");
    }
    let profile = AppProfile::load(&a.profile)
        .with_context(|| format!("loading profile {}", a.profile.display()))?;
    let platform = PlatformProfile::load(&a.platform)?;
    let kind: ModelKind = a.model.parse()?;
    let model = Model::new(&profile, platform, kind)?.with_tail_quantile(a.tail_quantile);
    let w = &profile.workload;
    let objective = a.objective.objective(a.w_cost, a.w_time);
    let req = PlanRequest {
        tasks: a.tasks.unwrap_or(w.tasks),
        objective,
        metric: a.metric.into(),
        kmax: a.kmax.unwrap_or(model.packing.k_max),
        memory_mb_per_task: a.memory_mb_per_task.unwrap_or(w.memory_mb_per_task),
        tmp_mb_per_task: a.tmp_mb_per_task.unwrap_or(w.tmp_mb_per_task),
        payload_bytes_per_task: a.payload_bytes_per_task.unwrap_or(w.payload_bytes_per_task),
        memory_mb: a.memory,
    };
    let function = a.function.clone().unwrap_or_else(|| w.name.clone());
    let store_path = a.store.clone().unwrap_or_else(default_path);
    let mut store = PlanStore::open(&store_path)?;
    let backend = match a.backend {
        super::launch::BackendArg::Local => BackendKind::Local,
        super::launch::BackendArg::Aws => BackendKind::Aws,
    };
    let key = plan_key(
        &function,
        backend,
        &model.platform.name,
        req.tasks,
        (req.objective, req.metric),
        req.memory_mb,
    );
    let (stored, reused) = store.plan_or_reuse(key, a.refresh, || plan(&model, &req))?;
    let p = &stored.plan;
    if let Some(svg) = &a.svg {
        std::fs::write(svg, plots::plan_curve_svg(p))
            .with_context(|| format!("writing {}", svg.display()))?;
    }
    if a.json {
        let mut v = serde_json::to_value(p)?;
        v["reused"] = reused.into();
        v["store"] = store_path.display().to_string().into();
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", summary(p, &function));
        if reused {
            println!(
                "(reused the plan stored in {}; --refresh re-plans)",
                store_path.display()
            );
        } else {
            println!("(stored in {})", store_path.display());
        }
    }
    Ok(())
}

/// The human summary: chosen memory and k, its predictions, both k = 1 baselines and the improvements.
pub fn summary(p: &Plan, function: &str) -> String {
    let m = p.request.metric;
    // Which packing curve predicted at a memory: measured there, or derived (see Model::memory_ratio).
    let source = |memory: u32| {
        p.memories
            .iter()
            .find(|x| x.memory_mb == memory)
            .and_then(|x| x.curve)
            .map_or(String::new(), |c| format!("   curve {}", c.name()))
    };
    let row = |name: &str, memory: u32, x: &propack_orchestrator::model::Prediction| {
        format!(
            "  {name:<18} {memory:>6} MB  k = {:<5} instances {:<7} {} {:>9.2} s   scale {:>9.2} s   expense ${:.4}{}\n",
            x.k,
            x.instances,
            m.name(),
            x.metric(m),
            x.scale_s,
            x.expense_usd,
            source(memory)
        )
    };
    let infeasible = p.curve.iter().filter(|c| !c.feasible).count();
    let searched = if p.memories.len() > 1 {
        format!("memory searched over {} sizes", p.memories.len())
    } else {
        "memory pinned".to_owned()
    };
    let mut s = format!(
        "{function}: C = {}, objective {}, metric {}, platform {}, model {}, k in 1..={}, {searched}\n",
        p.request.tasks,
        p.request.objective.name(),
        m.name(),
        p.platform,
        p.model,
        p.curve.len()
    );
    s += &row("chosen", p.memory_mb, &p.prediction);
    match &p.baselines {
        Some(b) => {
            for (name, base) in [
                ("k = 1 same memory", &b.same_memory_k1),
                ("k = 1 right-sized", &b.right_sized_k1),
            ] {
                s += &row(name, base.memory_mb, &base.prediction);
            }
            for (name, base) in [
                ("same memory", &b.same_memory_k1),
                ("right-sized", &b.right_sized_k1),
            ] {
                s += &format!(
                    "  vs k = 1 {name} ({} MB): {} {:.1}% faster, {:.1}% cheaper\n",
                    base.memory_mb,
                    m.name(),
                    base.time_improvement_pct,
                    base.cost_improvement_pct
                );
            }
        }
        None => {
            s += &row("baseline", p.memory_mb, &p.baseline);
            s += &format!(
                "  vs k = 1: {} {:.1}% faster, {:.1}% cheaper\n",
                m.name(),
                p.time_improvement_pct,
                p.cost_improvement_pct
            );
        }
    }
    s += &format!(
        "  predicted total {:.2} s, tail {:.2} s, median {:.2} s\n",
        p.prediction.total_s, p.prediction.tail_s, p.prediction.median_s
    );
    let pareto: Vec<String> = p.pareto.iter().map(u64::to_string).collect();
    s += &format!(
        "  Pareto front (time, expense) at {} MB: k = {}\n",
        p.memory_mb,
        pareto.join(", ")
    );
    if infeasible > 0 {
        let first = p.curve.iter().find(|c| !c.feasible).expect("counted");
        let why: Vec<String> = first.infeasible.iter().map(ToString::to_string).collect();
        s += &format!(
            "  {infeasible} infeasible k (first: k = {}: {})\n",
            first.k,
            why.join("; ")
        );
    }
    s
}
