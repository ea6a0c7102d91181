//! `orchestrator model`: validate the model against the artifact's AWS measurements.

use std::path::PathBuf;

use anyhow::Context as _;
use propack_orchestrator::model::ModelKind;
use propack_orchestrator::model::validate::{AppErrors, ErrorStats, ValidationReport, validate};

/// Subcommands of `orchestrator model`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Compare predicted and measured service times of every propack_performance run
    /// (models fitted only from scaling_performance and packed_performance).
    Validate(ValidateArgs),
}

/// Arguments of `orchestrator model validate`.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The artifact's measurement directory (e.g. ../shared/propack-aws-2021).
    #[arg(long, env = "PROPACK_AWS_2021")]
    pub propack_dir: PathBuf,
    /// Only this model (default: both propack and paper).
    #[arg(long, value_parser = ["propack", "paper"])]
    pub model: Option<String>,
    /// Quantile of the tail metric; the artifact measured tail at 0.9.
    #[arg(long, default_value_t = 0.9)]
    pub tail_quantile: f64,
    /// Validate a platform profile instead of the AWS models: `funcx-2021` against the
    /// artifact's funcX runs (what they allow is printed with the result).
    #[arg(long, value_parser = ["funcx-2021"])]
    pub platform: Option<String>,
    /// Print JSON: {"models": {"propack": {"apps": {...}, "overall": {...}}, "paper": {...}}}.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator model`.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Validate(a) => run_validate(a),
    }
}

fn run_validate(a: ValidateArgs) -> anyhow::Result<()> {
    if a.platform.is_some() {
        return run_validate_funcx(&a);
    }
    if !(a.tail_quantile > 0.0 && a.tail_quantile < 1.0) {
        anyhow::bail!("--tail-quantile must be in (0, 1)");
    }
    let kinds: Vec<ModelKind> = match a.model.as_deref() {
        Some(m) => vec![m.parse()?],
        None => vec![ModelKind::Propack, ModelKind::Paper],
    };
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_draw_target(if a.json {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    });
    let (report, skipped) = validate(&a.propack_dir, &kinds, a.tail_quantile, |m| {
        bar.set_message(format!("validating {m}"));
        bar.tick();
    })
    .with_context(|| format!("validating against {}", a.propack_dir.display()))?;
    bar.finish_and_clear();
    for (app, why) in &skipped {
        eprintln!("skipped {app}: {why}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", table(&report));
    }
    if report.models.values().all(|m| m.apps.is_empty()) {
        anyhow::bail!("no app in {} could be validated", a.propack_dir.display());
    }
    Ok(())
}

/// `model validate --platform funcx-2021`.
fn run_validate_funcx(a: &ValidateArgs) -> anyhow::Result<()> {
    let v = propack_orchestrator::platforms::validate_funcx(&a.propack_dir)
        .with_context(|| format!("validating funcx-2021 against {}", a.propack_dir.display()))?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("{}\n", v.scope);
    println!(
        "{:>6} {:>11} {:>12} {:>8}",
        "C", "measured s", "predicted s", "error"
    );
    for p in &v.points {
        println!(
            "{:>6} {:>11.1} {:>12.1} {:>7.1}%",
            p.tasks, p.measured_s, p.predicted_s, p.error_pct
        );
    }
    println!(
        "median |error| {:.1} % (funcx-2021, k = 1, statelesscost)",
        v.median_abs_error_pct
    );
    Ok(())
}

fn cell(s: &ErrorStats) -> String {
    if s.n == 0 {
        format!("{:>4} {:>8} {:>8}", 0, "-", "-")
    } else {
        format!(
            "{:>4} {:>7.1}% {:>7.1}%",
            s.n, s.median_abs_pct, s.p90_abs_pct
        )
    }
}

/// The text table: per model, per app and overall, packed and unpacked runs.
fn table(report: &ValidationReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<8} {:<14} | {:>4} {:>8} {:>8} | {:>4} {:>8} {:>8}\n",
        "model", "app", "n", "median", "p90", "n", "median", "p90"
    ));
    out.push_str(&format!(
        "{:<8} {:<14} | {:^22} | {:^22}\n",
        "", "", "packed (chosen k)", "unpacked (k = 1)"
    ));
    for (name, m) in &report.models {
        let rows = m
            .apps
            .iter()
            .map(|(a, e)| (a.as_str(), e))
            .chain([("overall", &m.overall)]);
        for (app, e) in rows {
            let AppErrors { packed, unpacked } = e;
            out.push_str(&format!(
                "{name:<8} {app:<14} | {} | {}\n",
                cell(packed),
                cell(unpacked)
            ));
        }
    }
    out.push_str("abs error of predicted vs measured service time, percent of measured\n");
    out
}
