//! `orchestrator profile scaling|packing`: measure how a backend scales (k = 1 at several C)
//! and packs (k tasks on one instance), writing model-format profiles and the artifact's files.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use propack_orchestrator::backend::local::{LocalBackend, find_bootstrap};
use propack_orchestrator::backend::{Backend, Job, NoProgress, RunOutcome};
use propack_orchestrator::model::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun,
};
use propack_orchestrator::platform::PlatformProfile;
use propack_runtime::{BuiltinSpec, Task, TaskAction};
use serde_json::Value;

/// Where the experiments run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileBackend {
    /// The embedded local platform (scaling follows --platform).
    Local,
    /// AWS Lambda, through direct Invoke calls (needs --bucket and credentials).
    Aws,
}

/// What every profiling run shares.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Where to run.
    #[arg(long, value_enum, default_value = "local")]
    pub backend: ProfileBackend,
    /// App name of the profile (default: the built-in's name).
    #[arg(long)]
    pub app: Option<String>,
    /// Built-in workload each task runs (`spin`, `sleep`, `statelesscost`, …).
    #[arg(long, default_value = "spin")]
    pub builtin: String,
    /// Its parameters (JSON).
    #[arg(long, default_value = r#"{"ms": 1000}"#)]
    pub params: String,
    /// Platform profile of the local backend (and the memory/vCPUs recorded for it).
    #[arg(long, default_value = "aws-today")]
    pub platform: String,
    /// Output directory: `<app>.scaling.json`, `<app>.packing.json`, `<app>.json` when both
    /// exist, and the artifact's `scaling_performance/<app>/` and `packed_performance/<app>/` files.
    #[arg(long, default_value = "profiles/measured")]
    pub out: PathBuf,
    /// S3 bucket (--backend aws).
    #[arg(long, env = "PROPACK_BUCKET")]
    pub bucket: Option<String>,
    /// AWS options (--function, --region, --max-in-flight; --mode is always direct here).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: propack_orchestrator::backend::aws::AwsArgs,
    /// Print what was written as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `orchestrator profile scaling`.
#[derive(Debug, clap::Args)]
pub struct ScalingArgs {
    /// Concurrency levels C to run with k = 1.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000")]
    pub levels: Vec<usize>,
    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Arguments of `orchestrator profile packing`.
#[derive(Debug, clap::Args)]
pub struct PackingArgs {
    /// Largest packing degree K (default degrees: K, K-1, …, 1, as the artifact ordered them).
    #[arg(long, default_value_t = 12)]
    pub max_degree: usize,
    /// Explicit degrees instead of K…1.
    #[arg(long, value_delimiter = ',')]
    pub degrees: Vec<usize>,
    /// Measurements per degree.
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

impl CommonArgs {
    fn app(&self) -> String {
        self.app.clone().unwrap_or_else(|| self.builtin.clone())
    }

    fn tasks(&self, count: usize) -> anyhow::Result<Vec<Task>> {
        let params: Value = serde_json::from_str(&self.params).context("--params is not JSON")?;
        Ok((0..count)
            .map(|i| Task {
                id: format!("p{i:06}"),
                action: TaskAction::Builtin(BuiltinSpec {
                    name: self.builtin.clone(),
                    params: params.clone(),
                }),
                timeout_ms: None,
                inputs: Default::default(),
                outputs: Default::default(),
            })
            .collect())
    }
}

/// Runs C tasks packed k per instance on the chosen backend.
fn run_once(
    rt: &tokio::runtime::Runtime,
    common: &CommonArgs,
    platform: &PlatformProfile,
    c: usize,
    k: usize,
) -> anyhow::Result<RunOutcome> {
    let tasks = common.tasks(c)?;
    let run_id = format!("profile-{}-c{c}-k{k}-{}", common.app(), now_ms());
    let mut opts = propack_step_functions::DefinitionOptions::new(c as u64, k as u64);
    opts.shape.vcpus = platform.vcpus;
    #[cfg(feature = "aws")]
    {
        opts.function = common.aws.function.clone();
    }
    let definition = propack_step_functions::build_definition(&opts)?;
    let job = Job {
        run_id: run_id.clone(),
        tasks,
        k,
        definition,
        run_dir: std::env::temp_dir().join("propack-profile").join(&run_id),
        platform: platform.clone(),
    };
    let outcome = match common.backend {
        ProfileBackend::Local => {
            let mut b = LocalBackend::new(find_bootstrap()?);
            rt.block_on(b.run(&job, &NoProgress))?
        }
        ProfileBackend::Aws => run_aws(rt, common, &job)?,
    };
    let _ = std::fs::remove_dir_all(&job.run_dir);
    let failed = outcome.records.instances.iter().filter(|i| !i.ok).count();
    if failed > 0 {
        eprintln!(
            "warning: C={c} k={k}: {failed} invocation(s) failed; they are left out of the profile"
        );
    }
    Ok(outcome)
}

#[cfg(feature = "aws")]
fn run_aws(
    rt: &tokio::runtime::Runtime,
    common: &CommonArgs,
    job: &Job,
) -> anyhow::Result<RunOutcome> {
    use propack_orchestrator::backend::aws::{AwsBackend, AwsMode};
    let bucket = common
        .bucket
        .clone()
        .context("--backend aws needs --bucket (or PROPACK_BUCKET)")?;
    let mut opts = common.aws.options(bucket);
    // Scaling is profiled from the client, as the artifact did: no Step Functions in between.
    opts.mode = AwsMode::Direct;
    rt.block_on(async {
        let mut b = AwsBackend::from_env(opts).await?;
        Ok(b.run(job, &NoProgress).await?)
    })
}

#[cfg(not(feature = "aws"))]
fn run_aws(_: &tokio::runtime::Runtime, _: &CommonArgs, _: &Job) -> anyhow::Result<RunOutcome> {
    anyhow::bail!("this orchestrator was built without the `aws` feature")
}

/// One scaling run from a run's records: instances in launch order, offsets from the first start.
pub fn scaling_run(c: usize, outcome: &RunOutcome) -> (ScalingRun, Vec<(f64, f64)>) {
    let mut inst: Vec<_> = outcome.records.instances.iter().filter(|i| i.ok).collect();
    inst.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let first = inst.first().map_or(0.0, |i| i.start_s);
    let epoch0 = outcome.records.launch_epoch_ms as f64 / 1000.0;
    let run = ScalingRun {
        concurrency: c as u64,
        scale_time_s: outcome
            .records
            .instances
            .iter()
            .map(|i| i.requested_s)
            .reduce(f64::max),
        service_time_s: outcome
            .records
            .instances
            .iter()
            .map(|i| i.end_s)
            .reduce(f64::max),
        instances: inst
            .iter()
            .map(|i| InstanceSample {
                start_s: i.start_s - first,
                duration_s: (i.end_s - i.start_s).max(0.0),
            })
            .collect(),
    };
    let epochs = inst
        .iter()
        .map(|i| (epoch0 + i.start_s, epoch0 + i.end_s))
        .collect();
    (run, epochs)
}

fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    let mut text = String::new();
    for l in lines {
        text.push_str(&l);
        text.push('\n');
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Combines `<app>.scaling.json` and `<app>.packing.json` into the planner's `<app>.json` when both exist.
fn combine(out: &Path, app: &str, tasks: u64) -> anyhow::Result<Option<PathBuf>> {
    let (s, p) = (
        out.join(format!("{app}.scaling.json")),
        out.join(format!("{app}.packing.json")),
    );
    if !(s.is_file() && p.is_file()) {
        return Ok(None);
    }
    let scaling: ScalingProfile = serde_json::from_slice(&std::fs::read(&s)?)?;
    let packing: PackingProfile = serde_json::from_slice(&std::fs::read(&p)?)?;
    let profile = AppProfile::from_measurements(app, scaling, packing, tasks);
    let path = out.join(format!("{app}.json"));
    profile.save(&path)?;
    Ok(Some(path))
}

fn platform_name(common: &CommonArgs, platform: &PlatformProfile) -> String {
    match common.backend {
        ProfileBackend::Local => platform.name.clone(),
        ProfileBackend::Aws => "aws".into(),
    }
}

/// Runs `orchestrator profile scaling`.
pub fn scaling(a: ScalingArgs) -> anyhow::Result<()> {
    let common = &a.common;
    anyhow::ensure!(
        !a.levels.is_empty() && a.levels.iter().all(|&c| c > 0),
        "--levels must be positive"
    );
    let platform = PlatformProfile::load(&common.platform)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let app = common.app();
    let bar = indicatif::ProgressBar::new(a.levels.len() as u64);
    if common.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut runs = Vec::new();
    let dir = common.out.join("scaling_performance").join(&app);
    for &c in &a.levels {
        bar.set_message(format!("C = {c}"));
        let outcome = run_once(&rt, common, &platform, c, 1)?;
        let (run, epochs) = scaling_run(c, &outcome);
        write_lines(
            &dir.join(format!("response-concurrency{c}.txt")),
            epochs.iter().map(|(s, e)| format!("[{s}, {e}]")),
        )?;
        runs.push(run);
        bar.inc(1);
    }
    bar.finish_and_clear();
    write_lines(
        &dir.join("scale_time.txt"),
        runs.iter()
            .map(|r| r.scale_time_s.unwrap_or(0.0).to_string()),
    )?;
    write_lines(
        &dir.join("service_time.txt"),
        runs.iter()
            .map(|r| r.service_time_s.unwrap_or(0.0).to_string()),
    )?;
    let profile = ScalingProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.clone(),
        platform: platform_name(common, &platform),
        runs,
    };
    let path = common.out.join(format!("{app}.scaling.json"));
    write_json(&path, &profile)?;
    let combined = combine(
        &common.out,
        &app,
        a.levels.iter().copied().max().unwrap_or(1) as u64,
    )?;
    report(
        common.json,
        &profile
            .runs
            .iter()
            .map(|r| (r.concurrency, r.service_time_s.unwrap_or(0.0)))
            .collect::<Vec<_>>(),
        "C",
        &path,
        &dir,
        combined,
    )
}

/// Runs `orchestrator profile packing`.
pub fn packing(a: PackingArgs) -> anyhow::Result<()> {
    let common = &a.common;
    let degrees: Vec<usize> = if a.degrees.is_empty() {
        (1..=a.max_degree).rev().collect()
    } else {
        a.degrees.clone()
    };
    anyhow::ensure!(
        !degrees.is_empty() && degrees.iter().all(|&k| k > 0),
        "degrees must be positive"
    );
    let platform = PlatformProfile::load(&common.platform)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let app = common.app();
    let bar = indicatif::ProgressBar::new((degrees.len() * a.repeats.max(1)) as u64);
    if common.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut samples = Vec::new();
    let (mut memory_mb, mut vcpus) = (platform.memory_mb, platform.vcpus);
    for &k in &degrees {
        let mut seconds = Vec::new();
        for _ in 0..a.repeats.max(1) {
            bar.set_message(format!("k = {k}"));
            let outcome = run_once(&rt, common, &platform, k, k)?;
            // Handler time of the one instance: the warm execution time of k packed tasks,
            // without the cold start a fresh instance adds.
            if let Some(i) = outcome.records.instances.iter().find(|i| i.ok) {
                seconds.push((i.end_s - i.start_s).max(0.0));
            }
            if let Some(r) = outcome.results.first() {
                vcpus = r.vcpus as u32;
                memory_mb = r.memory_mb.map_or(memory_mb, |m| m as u32);
            }
            bar.inc(1);
        }
        anyhow::ensure!(!seconds.is_empty(), "k = {k}: no invocation succeeded");
        samples.push(PackingSample {
            k: k as u64,
            seconds,
        });
    }
    bar.finish_and_clear();
    let dir = common.out.join("packed_performance").join(&app);
    write_lines(
        &dir.join("parallel.txt"),
        samples.iter().map(|s| s.k.to_string()),
    )?;
    write_lines(
        &dir.join("service_time.txt"),
        samples
            .iter()
            .map(|s| (s.seconds.iter().sum::<f64>() / s.seconds.len() as f64).to_string()),
    )?;
    let profile = PackingProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.clone(),
        memory_mb,
        vcpus,
        samples,
    };
    let path = common.out.join(format!("{app}.packing.json"));
    write_json(&path, &profile)?;
    let combined = combine(&common.out, &app, 1000)?;
    let rows: Vec<(u64, f64)> = profile
        .samples
        .iter()
        .map(|s| (s.k, s.seconds[0]))
        .collect();
    report(common.json, &rows, "k", &path, &dir, combined)
}

fn report(
    json: bool,
    rows: &[(u64, f64)],
    what: &str,
    profile: &Path,
    dir: &Path,
    combined: Option<PathBuf>,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "profile": profile, "artifact_dir": dir, "combined": combined,
                "rows": rows.iter().map(|(x, s)| serde_json::json!({what: x, "seconds": s})).collect::<Vec<_>>(),
            }))?
        );
    } else {
        for (x, s) in rows {
            println!("{what} = {x}: {s:.3} s");
        }
        println!("wrote {} and {}", profile.display(), dir.display());
        if let Some(c) = combined {
            println!(
                "combined profile for `orchestrator plan --profile`: {}",
                c.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use propack_orchestrator::records::{InstanceRecord, RunRecords};

    #[test]
    fn scaling_runs_are_offsets_from_the_first_instance_in_launch_order() {
        let inst = |s: f64, e: f64, req: f64, ok: bool| InstanceRecord {
            batch: 0,
            attempt: 0,
            instance_id: String::new(),
            cold_start: true,
            requested_s: req,
            start_s: s,
            end_s: e,
            init_ms: 0.0,
            tasks: 1,
            ok,
        };
        let outcome = RunOutcome {
            records: RunRecords {
                launch_epoch_ms: 1_000_000,
                instances: vec![
                    inst(2.0, 5.0, 0.2, true),
                    inst(1.0, 3.0, 0.1, true),
                    inst(0.5, 9.0, 0.3, false),
                ],
                tasks: vec![],
                ..RunRecords::default()
            },
            results: vec![],
        };
        let (run, epochs) = scaling_run(2, &outcome);
        assert_eq!(
            run.instances,
            vec![
                InstanceSample {
                    start_s: 0.0,
                    duration_s: 2.0
                },
                InstanceSample {
                    start_s: 1.0,
                    duration_s: 3.0
                },
            ]
        );
        assert_eq!(run.scale_time_s, Some(0.3));
        assert_eq!(run.service_time_s, Some(9.0));
        assert_eq!(epochs, vec![(1001.0, 1003.0), (1002.0, 1005.0)]);
    }
}
