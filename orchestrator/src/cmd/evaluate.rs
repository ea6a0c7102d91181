//! `orchestrator evaluate`: ProPack vs no packing, the Oracle and PyWren on the simulator, over the paper's grid.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use propack_orchestrator::evaluate::{self, EvalConfig, load_artifact, pywren_calibration};
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::platforms;
use propack_orchestrator::report::{self, markdown};

/// Arguments of `orchestrator evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The artifact's measurement directory (e.g. ../shared/propack-aws-2021); every app found is evaluated.
    #[arg(long, env = "PROPACK_AWS_2021")]
    pub propack_dir: PathBuf,
    /// Platforms to simulate (built-in name or profile file); repeat for several.
    #[arg(long = "platform", default_values_t = ["aws-2021".to_owned(), "aws-today".to_owned()])]
    pub platforms: Vec<String>,
    /// Only these apps (repeatable; default: every app found).
    #[arg(long = "app")]
    pub apps: Vec<String>,
    /// Concurrency levels C (comma-separated; default 100,500,1000,…,5000).
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<u64>,
    /// Simulator seeds per (C, k); the Oracle averages over them.
    #[arg(long, default_value_t = 5)]
    pub seeds: u64,
    /// Simulate every invocation as a new instance (no warm reuse), as the model
    /// assumes; by default a finished instance takes the next waiting invocation on
    /// token-bucket and unlimited platforms.
    #[arg(long)]
    pub no_warm_reuse: bool,
    /// Instead of the grid: tasks of log-normal weights with this σ, at the planned memory
    /// and k, batched in manifest order vs balanced (LPT); one row per app, platform and C.
    #[arg(long)]
    pub uneven_sigma: Option<f64>,
    /// Write evaluate.json, report.md and SVG figures here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the JSON report ({"rows": [...], "summary": {...}}) instead of markdown.
    #[arg(long)]
    pub json: bool,
}

/// Runs `orchestrator evaluate`.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.seeds == 0 {
        anyhow::bail!("--seeds must be at least 1");
    }
    if a.tasks.contains(&0) {
        anyhow::bail!("--tasks values must be at least 1");
    }
    let started = Instant::now();
    let platforms: Vec<PlatformProfile> = a
        .platforms
        .iter()
        .map(|p| PlatformProfile::load(p))
        .collect::<Result<_, _>>()?;
    let workloads = load_artifact(&a.propack_dir, &a.apps)
        .with_context(|| format!("reading {}", a.propack_dir.display()))?;
    let statelesscost = workloads
        .iter()
        .find(|w| w.workload.app == "statelesscost")
        .map(|w| &w.workload.profile);
    let pywren = pywren_calibration(&a.propack_dir, statelesscost)?;
    if !pywren.measured {
        eprintln!(
            "note: no pywren/statelesscost data in {}; PyWren baseline uses defaults ({:.0} invocations/s, ×{:.2} duration)",
            a.propack_dir.display(),
            pywren.rate_per_s,
            pywren.duration_factor
        );
    }
    let mut cfg = EvalConfig {
        seeds: a.seeds,
        warm_reuse: a.no_warm_reuse.then_some(false),
        ..EvalConfig::default()
    };
    if !a.tasks.is_empty() {
        cfg.tasks = a.tasks.clone();
    }

    if let Some(sigma) = a.uneven_sigma {
        return uneven(&workloads, &platforms, &cfg, sigma, a.json);
    }
    let bar = progress_bar((workloads.len() * (platforms.len() + 1)) as u64, a.json);
    let eval = evaluate::evaluate_all(&workloads, &platforms, &pywren, &cfg, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64();
    // ProPack against each platform's own per-instance concurrency, where it has one.
    let notes: Vec<(PlatformProfile, platforms::PlatformNotes)> = platforms
        .iter()
        .zip(&a.platforms)
        .map(|(p, name)| (p.clone(), platforms::notes(name)))
        .collect();
    let mut builtin = Vec::new();
    for (p, n) in &notes {
        if let Some(bc) = &n.builtin_concurrency {
            for w in &workloads {
                builtin.extend(evaluate::compare_builtin_concurrency(
                    &w.workload,
                    p,
                    u64::from(bc.default_per_instance),
                    &cfg,
                )?);
            }
        }
    }
    let mut md = markdown::evaluation(&eval.report, &eval.calibration, elapsed);
    let sections = report::platforms::platform_sections(&notes, &eval.report.rows, &builtin);
    match md.find("\n## Every row") {
        Some(i) => md.insert_str(i + 1, &sections),
        None => md.push_str(&sections),
    }
    if let Some(out) = &a.out {
        report::write_evaluation(out, &eval, &md)
            .with_context(|| format!("writing {}", out.display()))?;
        std::fs::write(
            out.join("builtin-concurrency.json"),
            serde_json::to_vec_pretty(&builtin)?,
        )?;
        eprintln!("wrote {}", out.display());
    }
    let report = eval.report;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", summary_only(&md));
        eprintln!(
            "{} rows in {elapsed:.1} s{}",
            report.rows.len(),
            if a.out.is_some() {
                ""
            } else {
                " (--out DIR for every row and the SVG figures)"
            }
        );
    }
    Ok(())
}

/// `--uneven-sigma`: balanced vs manifest-order batches for every app, platform and C.
fn uneven(
    workloads: &[evaluate::ArtifactWorkload],
    platforms: &[PlatformProfile],
    cfg: &EvalConfig,
    sigma: f64,
    json: bool,
) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for w in workloads {
        for p in platforms {
            for &c in &cfg.tasks {
                rows.push(evaluate::uneven(&w.workload, p, c, sigma, cfg)?);
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", markdown::uneven(&rows));
    }
    Ok(())
}

/// A `simulating` progress bar on stderr, hidden for `--json`.
fn progress_bar(len: u64, hidden: bool) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    bar.set_draw_target(if hidden {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    });
    bar.set_message("simulating");
    bar
}

/// The markdown up to (not including) the table of every row, for the terminal.
fn summary_only(md: &str) -> &str {
    md.find("\n## Every row").map_or(md, |i| &md[..=i])
}
