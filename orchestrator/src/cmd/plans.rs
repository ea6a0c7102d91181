//! `orchestrator plans`: list the stored plans.

use std::path::PathBuf;

use propack_orchestrator::model::store::{PlanStore, default_path};

/// Arguments of `orchestrator plans`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Plan store file (default: $PROPACK_PLANS, $PROPACK_HOME/plans.json or ~/.propack/plans.json).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Print JSON (one object per plan: key, k, predictions).
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator plans`.
pub fn run(a: Args) -> anyhow::Result<()> {
    let path = a.store.unwrap_or_else(default_path);
    let store = PlanStore::open(&path)?;
    if a.json {
        let v: Vec<serde_json::Value> = store
            .plans
            .iter()
            .map(|p| {
                serde_json::json!({
                    "key": p.key,
                    "k": p.k,
                    "planned_at_unix_s": p.planned_at_unix_s,
                    "model": p.plan.model,
                    "prediction": p.plan.prediction,
                    "baseline": p.plan.baseline,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if store.plans.is_empty() {
        println!("no stored plans in {}", path.display());
        return Ok(());
    }
    println!(
        "{:<16} {:<10} {:>8} {:<6} {:<7} {:>5} {:>10} {:>10} {:<8}",
        "function", "platform", "C", "obj", "metric", "k", "time s", "expense $", "model"
    );
    for p in &store.plans {
        let metric = p.plan.request.metric;
        println!(
            "{:<16} {:<10} {:>8} {:<6} {:<7} {:>5} {:>10.2} {:>10.4} {:<8}",
            p.key.function,
            p.key.platform,
            p.key.tasks,
            p.key.objective,
            p.key.metric,
            p.k,
            p.plan.prediction.metric(metric),
            p.plan.prediction.expense_usd,
            p.plan.model
        );
    }
    println!("({} plans in {})", store.plans.len(), path.display());
    Ok(())
}
