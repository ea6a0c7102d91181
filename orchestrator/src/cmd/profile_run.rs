//! `orchestrator profile scaling|packing`: measure how a backend scales (k = 1 at several C)
//! and packs (k tasks on one instance), writing model-format profiles and the artifact's files.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use propack_orchestrator::backend::local::find_bootstrap;
use propack_orchestrator::model::artifact;
use propack_orchestrator::model::profile::{
    AppProfile, PROFILE_SCHEMA_VERSION, PackingFile, ScalingProfile,
};
use propack_orchestrator::pipeline::{BackendSpec, Profiler, Ui};
use propack_orchestrator::platform::PlatformProfile;
use propack_runtime::{BuiltinSpec, Task, TaskAction};
use serde_json::Value;

use super::UsageError;

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
    /// Measure the curve at each of these function memories, MB (comma list or repeated;
    /// default: the platform's memory only). Each curve records its memory and the vCPUs the
    /// instance saw. Local backend: an instance of M MB is pinned (CPU affinity) to
    /// ⌈vCPUs at M⌉ of this host's CPUs, at most all of them — whole CPUs only, so below
    /// 1 vCPU's memory it still gets one. AWS backend: the function's MemorySize is set
    /// before each memory and restored after. `<app>.packing.json` holds the curve at the
    /// platform's memory if measured, else at the largest, plus the others in
    /// `memory_curves`; the artifact's `packed_performance` files hold that first curve.
    #[arg(long, value_delimiter = ',')]
    pub memory: Vec<u32>,
    /// Shared options.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl CommonArgs {
    fn app(&self) -> String {
        self.app.clone().unwrap_or_else(|| self.builtin.clone())
    }

    fn tasks(&self, count: usize) -> anyhow::Result<Vec<Task>> {
        let params: Value = serde_json::from_str(&self.params)
            .map_err(|e| UsageError(format!("--params is not JSON: {e}")))?;
        Ok((0..count)
            .map(|i| {
                Task::new(
                    format!("p{i:06}"),
                    TaskAction::Builtin(BuiltinSpec {
                        name: self.builtin.clone(),
                        params: params.clone(),
                    }),
                )
            })
            .collect())
    }

    /// The backend the experiments run on (AWS: direct invokes, as the artifact measured).
    fn backend(&self) -> anyhow::Result<BackendSpec> {
        match self.backend {
            ProfileBackend::Local => Ok(BackendSpec::Local {
                bootstrap: find_bootstrap()?,
                seed: 1,
                env: Default::default(),
                managed: None,
            }),
            #[cfg(feature = "aws")]
            ProfileBackend::Aws => {
                let bucket = self.bucket.clone().ok_or_else(|| {
                    UsageError("--backend aws needs --bucket (or PROPACK_BUCKET)".into())
                })?;
                let mut opts = self.aws.options(bucket);
                opts.mode = propack_orchestrator::backend::aws::AwsMode::Direct;
                Ok(BackendSpec::Aws(opts))
            }
            #[cfg(not(feature = "aws"))]
            ProfileBackend::Aws => Err(UsageError(
                "this orchestrator was built without the `aws` feature".into(),
            )
            .into()),
        }
    }

    /// A profiler over `count` tasks on this backend and `platform`.
    fn profiler(
        &self,
        rt: &tokio::runtime::Runtime,
        platform: &PlatformProfile,
        count: usize,
    ) -> anyhow::Result<Profiler> {
        let spec = self.backend()?;
        let backend = rt.block_on(spec.open())?;
        let work = std::env::temp_dir().join(format!("propack-profile-{}", std::process::id()));
        Ok(
            Profiler::new(backend, platform.clone(), self.tasks(count)?, work)
                .with_function(spec.function()),
        )
    }

    /// The name the measured platform gets in the profile.
    fn platform_name(&self, platform: &PlatformProfile) -> String {
        match self.backend {
            ProfileBackend::Local => platform.name.clone(),
            ProfileBackend::Aws => "aws".into(),
        }
    }

    fn ui(&self) -> Ui {
        Ui {
            quiet: self.json,
            ..Ui::default()
        }
    }
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> anyhow::Result<()> {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(path, serde_json::to_vec_pretty(v)?)
        .with_context(|| format!("writing {}", path.display()))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Runs `orchestrator profile scaling`.
pub fn scaling(a: ScalingArgs) -> anyhow::Result<()> {
    let common = &a.common;
    if a.levels.is_empty() || a.levels.contains(&0) {
        return Err(UsageError("--levels must be positive".into()).into());
    }
    let platform = PlatformProfile::load(&common.platform)?;
    let rt = runtime()?;
    let app = common.app();
    let top = a.levels.iter().copied().max().unwrap_or(1);
    let mut profiler = common.profiler(&rt, &platform, top)?;
    let bar = common.ui().bar(
        a.levels.len() as u64,
        "profiling scaling {bar:30} {pos}/{len} {msg}",
    );
    let mut runs = Vec::new();
    for &c in &a.levels {
        bar.set_message(format!("C = {c}"));
        let m = rt.block_on(profiler.scaling(c))?;
        runs.push((m.run, m.epochs));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let dir = artifact::write_scaling(&common.out, &app, &runs)?;
    let profile = ScalingProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.clone(),
        platform: common.platform_name(&platform),
        runs: runs.into_iter().map(|(r, _)| r).collect(),
    };
    let path = common.out.join(format!("{app}.scaling.json"));
    write_json(&path, &profile)?;
    let combined = AppProfile::combine_files(&common.out, &app, top as u64)?;
    let rows: Vec<Row> = profile
        .runs
        .iter()
        .map(|r| Row {
            x: r.concurrency,
            seconds: r.service_time_s.unwrap_or(0.0),
            memory: None,
        })
        .collect();
    report(common.json, &rows, "C", &path, &dir, combined)
}

/// Runs `orchestrator profile packing`.
pub fn packing(a: PackingArgs) -> anyhow::Result<()> {
    let common = &a.common;
    let degrees: Vec<usize> = if a.degrees.is_empty() {
        (1..=a.max_degree).rev().collect()
    } else {
        a.degrees.clone()
    };
    if degrees.is_empty() || degrees.contains(&0) {
        return Err(UsageError("degrees must be positive".into()).into());
    }
    if a.memory.contains(&0) {
        return Err(UsageError("--memory must be positive".into()).into());
    }
    let platform = PlatformProfile::load(&common.platform)?;
    let rt = runtime()?;
    let app = common.app();
    let top = degrees.iter().copied().max().unwrap_or(1);
    let mut profiler = common.profiler(&rt, &platform, top)?;
    let curves = if a.memory.is_empty() {
        vec![rt.block_on(profiler.packing(&app, &degrees, a.repeats, common.ui()))?]
    } else {
        rt.block_on(profiler.packing_at_memories(
            &app,
            &a.memory,
            &degrees,
            a.repeats,
            common.ui(),
        ))?
    };
    let rows: Vec<Row> = curves
        .iter()
        .flat_map(|c| {
            c.samples.iter().map(|s| Row {
                x: s.k,
                seconds: s.seconds[0],
                memory: (!a.memory.is_empty()).then_some((c.memory_mb, c.vcpus)),
            })
        })
        .collect();
    let file = PackingFile::from_curves(curves, platform.memory_mb).expect("at least one curve");
    let dir = artifact::write_packing(&common.out, &app, &file.packing.samples)?;
    let path = common.out.join(format!("{app}.packing.json"));
    write_json(&path, &file)?;
    let combined = AppProfile::combine_files(&common.out, &app, 1000)?;
    report(common.json, &rows, "k", &path, &dir, combined)
}

/// One measured point: k (or C) and seconds, with the (memory MB, vCPUs) of its curve
/// when several memories were measured.
struct Row {
    x: u64,
    seconds: f64,
    memory: Option<(u32, u32)>,
}

fn report(
    json: bool,
    rows: &[Row],
    what: &str,
    profile: &Path,
    dir: &Path,
    combined: Option<PathBuf>,
) -> anyhow::Result<()> {
    if json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = serde_json::json!({what: r.x, "seconds": r.seconds});
                if let Some((mb, vcpus)) = r.memory {
                    v["memory_mb"] = mb.into();
                    v["vcpus"] = vcpus.into();
                }
                v
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "profile": profile, "artifact_dir": dir, "combined": combined, "rows": rows,
            }))?
        );
    } else {
        for r in rows {
            match r.memory {
                Some((mb, vcpus)) => println!(
                    "{mb} MB ({vcpus} vCPU{}): {what} = {}: {:.3} s",
                    if vcpus == 1 { "" } else { "s" },
                    r.x,
                    r.seconds
                ),
                None => println!("{what} = {}: {:.3} s", r.x, r.seconds),
            }
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
