//! `orchestrator evaluate`: ProPack vs no packing, the Oracle and PyWren on the simulator, over the paper's grid.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context as _;
use propack_orchestrator::evaluate::{
    self, CalibrationSummary, EvalConfig, EvalReport, EvalRow, calibration_check, evaluate_app,
    load_artifact, pywren_calibration,
};
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::report::{markdown, plots};

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

    let jobs: Vec<(usize, usize)> = (0..workloads.len())
        .flat_map(|w| (0..platforms.len()).map(move |p| (w, p)))
        .collect();
    let bar = indicatif::ProgressBar::new(jobs.len() as u64 + workloads.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .expect("static template"),
    );
    bar.set_draw_target(if a.json {
        indicatif::ProgressDrawTarget::hidden()
    } else {
        indicatif::ProgressDrawTarget::stderr()
    });
    bar.set_message("simulating");
    // Every (workload, platform) is independent: one thread each, bounded by the cores.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    let calib = std::sync::Mutex::new(Vec::new());
    let aws2021 = PlatformProfile::aws_2021();
    let ncal = workloads.len();
    std::thread::scope(|s| {
        for _ in 0..threads.min(jobs.len() + ncal) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i < ncal {
                        let w = &workloads[i];
                        if !w.runs.is_empty() {
                            let c = calibration_check(&w.workload, &w.runs, &aws2021, a.seeds);
                            calib.lock().expect("no panics hold it").push((i, c));
                        }
                    } else if let Some(&(wi, pi)) = jobs.get(i - ncal) {
                        let r =
                            evaluate_app(&workloads[wi].workload, &platforms[pi], &pywren, &cfg);
                        results.lock().expect("no panics hold it").push((i, r));
                    } else {
                        break;
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let mut results = results.into_inner().expect("threads joined");
    results.sort_by_key(|r| r.0);
    let mut rows: Vec<EvalRow> = Vec::new();
    for (_, r) in results {
        rows.extend(r?);
    }
    let mut calib = calib.into_inner().expect("threads joined");
    calib.sort_by_key(|c| c.0);
    let calibration: Vec<CalibrationSummary> = calib.into_iter().map(|c| c.1).collect();
    let summary = evaluate::summarise(&rows);
    let report = EvalReport { rows, summary };
    let elapsed = started.elapsed().as_secs_f64();
    let md = markdown::evaluation(&report, &calibration, elapsed);

    if let Some(out) = &a.out {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        let write = |name: &str, text: &str| {
            let p = out.join(name);
            std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))
        };
        write("evaluate.json", &serde_json::to_string_pretty(&report)?)?;
        write(
            "calibration.json",
            &serde_json::to_string_pretty(&calibration)?,
        )?;
        write("report.md", &md)?;
        for p in &platforms {
            for w in &workloads {
                write(
                    &format!("heatmap-{}-{}.svg", p.name, w.workload.app),
                    &plots::heatmap_svg(&report.rows, &w.workload.app, &p.name),
                )?;
            }
            write(
                &format!("improvement-{}.svg", p.name),
                &plots::improvement_svg(&report.rows, &p.name),
            )?;
        }
        eprintln!("wrote {}", out.display());
    }
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

/// The markdown up to (not including) the table of every row, for the terminal.
fn summary_only(md: &str) -> &str {
    md.find("\n## Every row").map_or(md, |i| &md[..=i])
}
