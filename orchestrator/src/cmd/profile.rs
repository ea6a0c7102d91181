//! `orchestrator profile`: turn measurements into profile files for `orchestrator plan`.

use std::path::PathBuf;

use anyhow::Context as _;
use propack_orchestrator::model::artifact;

/// Subcommands of `orchestrator profile`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Import the ProPack artifact's layout (scaling_performance + packed_performance) as `<out>/<app>.json`.
    Import(ImportArgs),
    /// Measure scaling: k = 1 at each concurrency level (--backend local|aws).
    Scaling(super::profile_run::ScalingArgs),
    /// Measure packing: one instance running k tasks, for each degree (--backend local|aws).
    Packing(super::profile_run::PackingArgs),
}

/// Arguments of `orchestrator profile import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The artifact's measurement directory (e.g. ../shared/propack-aws-2021).
    #[arg(long, env = "PROPACK_AWS_2021")]
    pub propack_dir: PathBuf,
    /// App to import (repeatable); default: every app found.
    #[arg(long)]
    pub app: Vec<String>,
    /// Directory for the profile files.
    #[arg(long, default_value = "profiles")]
    pub out: PathBuf,
    /// Memory one task needs, MB (workload default for the planner's memory constraint).
    #[arg(long, default_value_t = 0.0)]
    pub memory_mb_per_task: f64,
    /// /tmp one task needs, MB.
    #[arg(long, default_value_t = 0.0)]
    pub tmp_mb_per_task: f64,
    /// Bytes of one task in the batch payload.
    #[arg(long, default_value_t = 0)]
    pub payload_bytes_per_task: u64,
    /// Print the written paths as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator profile`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Import(a) => import(a),
        Command::Scaling(a) => super::profile_run::scaling(a),
        Command::Packing(a) => super::profile_run::packing(a),
    }
}

fn import(a: ImportArgs) -> anyhow::Result<()> {
    let discovered = a.app.is_empty();
    let apps = if discovered {
        artifact::discover_apps(&a.propack_dir)?
    } else {
        a.app.clone()
    };
    let mut written = Vec::new();
    for app in &apps {
        let mut p = match artifact::import(&a.propack_dir, app) {
            Ok(p) => p,
            // A discovered app may only have validation runs: skip it, loudly.
            Err(e) if discovered => {
                eprintln!("skipped {app}: {e}");
                continue;
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("importing {app} from {}", a.propack_dir.display()));
            }
        };
        p.workload.memory_mb_per_task = a.memory_mb_per_task;
        p.workload.tmp_mb_per_task = a.tmp_mb_per_task;
        p.workload.payload_bytes_per_task = a.payload_bytes_per_task;
        let path = a.out.join(format!("{app}.json"));
        p.save(&path)?;
        if !a.json {
            let ks: Vec<String> = p.packing.samples.iter().map(|s| s.k.to_string()).collect();
            println!(
                "{}: {} scaling runs (C up to {}), packing k = {} -> {}",
                app,
                p.scaling.runs.len(),
                p.scaling
                    .runs
                    .iter()
                    .map(|r| r.concurrency)
                    .max()
                    .unwrap_or(0),
                ks.join(","),
                path.display()
            );
        }
        written.push(serde_json::json!({"app": app, "path": path}));
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&written)?);
    }
    if written.is_empty() {
        anyhow::bail!("no profile written");
    }
    Ok(())
}
