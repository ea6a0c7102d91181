//! `orchestrator launch`: stage inputs, plan k, build the definition, run it, verify and report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use indicatif::{ProgressBar, ProgressStyle};
use propack_orchestrator::backend::local::lambda::{
    AtLimit, FunctionConfig, InvokeStatus, LambdaPlatform,
};
use propack_orchestrator::backend::local::{self, LocalBackend};
use propack_orchestrator::backend::{Backend, Job, Progress, RunOutcome};
use propack_orchestrator::model::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun, WorkloadProfile,
};
use propack_orchestrator::model::{Metric, Model, ModelKind, Objective, PlanRequest};
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::records::{DEFAULT_TAIL_QUANTILE, Metrics};
use propack_orchestrator::report::{MeasuredRun, RUN_SCHEMA_VERSION, RunReport};
use propack_runtime::{BatchResult, BuiltinSpec, Task, TaskAction, TaskStatus};
use serde_json::{Value, json};

/// `--packing auto|K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// Plan k with the model.
    Auto,
    /// Use this k.
    Fixed(usize),
}

fn parse_packing(s: &str) -> Result<Packing, String> {
    match s {
        "auto" => Ok(Packing::Auto),
        n => match n.parse::<usize>() {
            Ok(0) => Err("k must be at least 1".into()),
            Ok(k) => Ok(Packing::Fixed(k)),
            Err(_) => Err(format!("{n:?} is neither `auto` nor a positive integer")),
        },
    }
}

/// Benchmarks `launch` can stage, verify and report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchmarkArg {
    /// Sort a shard of text floats.
    Sort,
    /// ServerlessBench stateless-cost image pipeline.
    Statelesscost,
    /// Per-frame video analysis of a y4m chunk.
    Video,
}

impl BenchmarkArg {
    fn name(self) -> &'static str {
        match self {
            Self::Sort => "sort",
            Self::Statelesscost => "statelesscost",
            Self::Video => "video",
        }
    }

    /// Per-task size when `--size` is not given: small enough that a local run of
    /// a thousand tasks stays quick on a laptop (the paper's sizes are `--size 10MB`,
    /// `--size 5000x5000`).
    fn default_size(self) -> &'static str {
        match self {
            Self::Sort => "1MB",
            Self::Statelesscost => "400x400",
            Self::Video => "160x120x6",
        }
    }
}

// The objective and metric flags are the plan command's, so both read the same values.
pub use super::plan::{MetricArg, ObjectiveArg};

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// The embedded Lambda + Step Functions platform.
    Local,
    /// AWS Lambda + Step Functions (needs credentials and --bucket).
    Aws,
}

/// Arguments of `orchestrator launch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Built-in benchmark to run.
    #[arg(
        long,
        value_enum,
        conflicts_with = "tasks_file",
        required_unless_present = "tasks_file"
    )]
    pub benchmark: Option<BenchmarkArg>,
    /// A JSON list of task specs (the runtime's Task: {id, exec|builtin, inputs, outputs}) to run instead of a benchmark.
    #[arg(long)]
    pub tasks_file: Option<PathBuf>,
    /// Number of tasks C (with --tasks-file: the first C tasks; default all).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Per-task input size: sort `1MB`, statelesscost `WxH`, video `WxH[xFRAMES]`.
    #[arg(long)]
    pub size: Option<String>,
    /// Packing degree: `auto` (planned by the model) or a fixed k.
    #[arg(long, default_value = "auto", value_parser = parse_packing)]
    pub packing: Packing,
    /// What the plan minimises.
    #[arg(long, value_enum, default_value = "time")]
    pub objective: ObjectiveArg,
    /// Which service time the plan minimises.
    #[arg(long, value_enum, default_value = "total")]
    pub metric: MetricArg,
    /// Platform profile: aws-2021, aws-today, unlimited, or a profile JSON file.
    #[arg(long, default_value = "aws-2021")]
    pub platform: String,
    /// Where to run (default: local unless AWS configuration is present).
    #[arg(long, value_enum)]
    pub backend: Option<BackendArg>,
    /// Also run k = 1 on the same platform and report the improvement.
    #[arg(long)]
    pub baseline: bool,
    /// Run directory (default: runs/<run_id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print the summary as JSON (and no progress bars).
    #[arg(long)]
    pub json: bool,
    /// Largest k the planner considers (and the local profile measures).
    #[arg(long, default_value_t = 24)]
    pub kmax: usize,
    /// The bootstrap executable for the local platform (default: found or built automatically).
    #[arg(long, env = "PROPACK_BOOTSTRAP")]
    pub bootstrap: Option<PathBuf>,
    /// S3 bucket for --backend aws.
    #[arg(long, env = "PROPACK_BUCKET")]
    pub bucket: Option<String>,
    /// AWS backend options (--function, --mode, --state-machine, --role-arn, --region, --max-in-flight).
    #[cfg(feature = "aws")]
    #[command(flatten)]
    pub aws: propack_orchestrator::backend::aws::AwsArgs,
    /// Plan store file (default: $PROPACK_PLANS, $PROPACK_HOME/plans.json or ~/.propack/plans.json).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Profile and plan again even if the plan store has a plan for this job.
    #[arg(long)]
    pub replan: bool,
    /// Seed of generated inputs and of the platform's cold-start samples.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A progress bar fed by the backend.
struct BarProgress {
    bar: ProgressBar,
    tasks: usize,
    done: AtomicUsize,
    failed: AtomicUsize,
}

impl BarProgress {
    fn new(hidden: bool, batches: usize, tasks: usize, label: &str) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            let b = ProgressBar::new(batches as u64);
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{elapsed_precise}] {bar:30} {pos}/{len} batches · {msg}",
                )
                .expect("valid template"),
            );
            b.set_prefix(label.to_owned());
            b.enable_steady_tick(Duration::from_millis(200));
            b
        };
        bar.set_message(format!("0/{tasks} tasks, 0 failed"));
        Self {
            bar,
            tasks,
            done: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
        }
    }
}

impl Progress for BarProgress {
    fn batch_done(&self, tasks: usize, failed: usize) {
        let d = self.done.fetch_add(tasks, Ordering::SeqCst) + tasks;
        let f = self.failed.fetch_add(failed, Ordering::SeqCst) + failed;
        self.bar.inc(1);
        self.bar
            .set_message(format!("{d}/{} tasks, {f} failed", self.tasks));
    }
}

fn aws_configured() -> bool {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        || std::env::var_os("HOME")
            .is_some_and(|h| Path::new(&h).join(".aws/credentials").is_file())
}

fn run_id_for(workload: &str, tasks: usize) -> String {
    let ms = local::lambda::epoch_ms();
    format!("{workload}-{tasks}-{}-{:03}", ms / 1000, ms % 1000)
}

/// One benchmark task with `file://` input and output in the run's storage.
fn benchmark_task(
    b: BenchmarkArg,
    i: usize,
    size: &serde_json::Map<String, Value>,
    storage: &Path,
) -> Task {
    let name = b.name();
    let id = format!("{name}-{i:06}");
    let file = |kind: &str, ext: &str| {
        format!(
            "file://{}",
            storage.join(kind).join(format!("{id}.{ext}")).display()
        )
    };
    let mut params = json!({});
    let mut inputs = BTreeMap::new();
    let out_ext = match b {
        BenchmarkArg::Sort => {
            params = json!({"format": "text"});
            inputs.insert("input".to_owned(), file("in", "txt"));
            "txt"
        }
        BenchmarkArg::Statelesscost => {
            params = json!({"seed": i});
            for (k, v) in size {
                params[k] = v.clone();
            }
            "jpg"
        }
        BenchmarkArg::Video => {
            inputs.insert("input".to_owned(), file("in", "y4m"));
            let _ = &mut params;
            "jsonl"
        }
    };
    let outputs = BTreeMap::from([("output".to_owned(), file("out", out_ext))]);
    Task {
        id,
        action: TaskAction::Builtin(BuiltinSpec {
            name: name.to_owned(),
            params,
        }),
        timeout_ms: None,
        inputs,
        outputs,
    }
}

fn uri_path(uri: &str) -> Option<PathBuf> {
    propack_runtime::uri::ObjectUri::parse(uri)
        .ok()?
        .into_file_path()
}

/// Writes the deterministic inputs of benchmark tasks (seed = base seed + task index).
fn stage_inputs(
    b: BenchmarkArg,
    tasks: &[Task],
    size: &serde_json::Map<String, Value>,
    seed: u64,
    hidden: bool,
) -> anyhow::Result<()> {
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(tasks.len() as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("staging inputs {bar:30} {pos}/{len}")
            .expect("valid template"),
    );
    for (i, t) in tasks.iter().enumerate() {
        if let Some(uri) = t.inputs.get("input") {
            let path = uri_path(uri).context("benchmark inputs are file:// URIs")?;
            let mut params = Value::Object(size.clone());
            if b == BenchmarkArg::Sort {
                params["format"] = json!("text");
            }
            let bytes = propack_workloads::generator::generate(
                b.name(),
                seed.wrapping_add(i as u64),
                &params,
            )
            .with_context(|| format!("generating the input of {}", t.id))?;
            std::fs::create_dir_all(path.parent().expect("absolute"))?;
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        for uri in t.outputs.values() {
            if let Some(p) = uri_path(uri) {
                std::fs::create_dir_all(p.parent().expect("absolute"))?;
                // A stale output from an earlier run must not pass verification.
                let _ = std::fs::remove_file(&p);
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(())
}

/// Checks every task: succeeded, and (for built-in benchmarks) its output passes the benchmark's own check.
fn verify(tasks: &[Task], outcome: &RunOutcome) -> (bool, usize, Vec<String>) {
    let mut status: BTreeMap<&str, TaskStatus> = BTreeMap::new();
    let mut errors_by_id: BTreeMap<&str, String> = BTreeMap::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &outcome.results {
        for t in &r.tasks {
            status.insert(t.id.as_str(), t.status);
            *seen.entry(t.id.as_str()).or_default() += 1;
            if let Some(e) = &t.error {
                errors_by_id.insert(t.id.as_str(), e.clone());
            }
        }
    }
    let mut errors = Vec::new();
    let mut failed = 0;
    for t in tasks {
        let st = status.get(t.id.as_str()).copied();
        if st != Some(TaskStatus::Succeeded) {
            failed += 1;
            if errors.len() < 10 {
                errors.push(format!(
                    "task {}: {}",
                    t.id,
                    match st {
                        Some(s) => format!(
                            "{s:?}: {}",
                            errors_by_id.get(t.id.as_str()).map_or("", String::as_str)
                        ),
                        None => "no result (its batch failed)".into(),
                    }
                ));
            }
            continue;
        }
        if let Some(b) = t.builtin()
            && propack_workloads::Workload::from_name(&b.name).is_ok()
        {
            let input = t.inputs.get("input").and_then(|u| uri_path(u));
            let Some(output) = t.outputs.values().next().and_then(|u| uri_path(u)) else {
                continue;
            };
            if let Err(e) =
                propack_workloads::verify_files(&b.name, &b.params, input.as_deref(), &output)
            {
                failed += 1;
                if errors.len() < 10 {
                    errors.push(format!(
                        "task {}: output fails the {} check: {e}",
                        t.id, b.name
                    ));
                }
            }
        }
    }
    let dup = seen.values().filter(|&&n| n > 1).count();
    if dup > 0 {
        errors.push(format!(
            "{dup} tasks were reported by more than one successful batch"
        ));
    }
    (failed == 0 && dup == 0, failed, errors)
}

fn measure(platform: &PlatformProfile, outcome: &RunOutcome) -> Metrics {
    outcome.records.metrics(DEFAULT_TAIL_QUANTILE, platform)
}

fn prediction_metrics(p: &propack_orchestrator::model::Prediction) -> Metrics {
    Metrics {
        scale_s: p.scale_s,
        total_s: p.total_s,
        tail_s: p.tail_s,
        median_s: p.median_s,
        expense_usd: p.expense_usd,
        expense: p.expense,
    }
}

/// Profiles the app on the local platform: the packing curve (one warm instance, k tasks,
/// client round trip, as the paper measured it) and a small k = 1 burst for the spread of
/// durations at scale. Arrivals come from the platform profile, not from this burst.
async fn profile_locally(
    bootstrap: &Path,
    app: &str,
    tasks: &[Task],
    kmax: usize,
    platform: &PlatformProfile,
    hidden: bool,
) -> anyhow::Result<AppProfile> {
    let mut ks: Vec<usize> = [1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 48, 64]
        .into_iter()
        .filter(|&k| k <= kmax.min(tasks.len()))
        .collect();
    if ks.last() != Some(&kmax.min(tasks.len())) {
        ks.push(kmax.min(tasks.len()));
    }
    let burst = tasks.len().min(platform.vcpus as usize).max(1);
    let bar = if hidden {
        ProgressBar::hidden()
    } else {
        ProgressBar::new((ks.len() + 2) as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("profiling packing curve {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    // Same memory and vCPUs as the target platform, but no pacing or injected cold start:
    // the profile measures the function, the platform profile supplies the scaling.
    let mut profile_platform = PlatformProfile::unlimited();
    profile_platform.memory_mb = platform.memory_mb;
    profile_platform.vcpus = platform.vcpus;
    profile_platform.timeout_s = platform.timeout_s;
    let f = FunctionConfig::new("profile", bootstrap, &profile_platform);
    let lp = LambdaPlatform::new(profile_platform, vec![f], 7);
    let payload = |k: usize, tag: &str| -> Bytes {
        let ts: Vec<Task> = tasks[..k]
            .iter()
            .map(|t| {
                let mut t = t.clone();
                for uri in t.outputs.values_mut() {
                    *uri = uri.replace("/out/", &format!("/profile-out/{tag}/"));
                }
                t
            })
            .collect();
        Bytes::from(
            serde_json::to_vec(&json!({"run_id": "profile", "tasks": ts})).expect("serialises"),
        )
    };
    let check = |r: &local::lambda::Invocation| -> anyhow::Result<f64> {
        match &r.status {
            InvokeStatus::Ok(body) => {
                let br: BatchResult = serde_json::from_slice(body)
                    .context("profiling: the runtime's result is not a BatchResult")?;
                if let Some(t) = br.tasks.iter().find(|t| t.status != TaskStatus::Succeeded) {
                    bail!(
                        "profiling: task {} failed: {}",
                        t.id,
                        t.error.clone().unwrap_or_default()
                    );
                }
                Ok((r.end_s - r.start_s).max(1e-4))
            }
            InvokeStatus::FunctionError { body, .. } => bail!(
                "profiling: the function failed: {}",
                String::from_utf8_lossy(body)
            ),
        }
    };
    // Warm-up (cold start is not part of the packing curve).
    let warm = lp
        .invoke("profile", payload(1, "warm"), AtLimit::Wait)
        .await?;
    check(&warm)?;
    bar.inc(1);
    let mut samples = Vec::new();
    for &k in &ks {
        bar.set_message(format!("k = {k}"));
        let r = lp
            .invoke("profile", payload(k, &format!("k{k}")), AtLimit::Wait)
            .await?;
        samples.push(PackingSample {
            k: k as u64,
            seconds: vec![check(&r)?],
        });
        bar.inc(1);
    }
    bar.set_message("k = 1 burst");
    let t0 = lp.now_s();
    let futs: Vec<_> = (0..burst)
        .map(|i| {
            let lp = lp.clone();
            let p = payload(1, &format!("burst{i}"));
            async move { lp.invoke("profile", p, AtLimit::Wait).await }
        })
        .collect();
    let mut instances = Vec::new();
    for r in futures::future::join_all(futs).await {
        let r = r?;
        check(&r)?;
        instances.push(InstanceSample {
            start_s: (r.start_s - t0).max(0.0),
            duration_s: (r.end_s - r.start_s).max(1e-4),
        });
    }
    bar.inc(1);
    bar.finish_and_clear();
    lp.shutdown();
    Ok(AppProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.to_owned(),
        scaling: ScalingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: app.to_owned(),
            // Not the target platform's name: arrivals must come from its scaling rule.
            platform: "local-profile".into(),
            runs: vec![ScalingRun {
                concurrency: burst as u64,
                scale_time_s: None,
                service_time_s: None,
                instances,
            }],
        },
        packing: PackingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: app.to_owned(),
            memory_mb: platform.memory_mb,
            vcpus: platform.vcpus,
            samples,
        },
        workload: WorkloadProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            name: app.to_owned(),
            tasks: tasks.len() as u64,
            memory_mb_per_task: 0.0,
            tmp_mb_per_task: 0.0,
            payload_bytes_per_task: propack_step_functions::manifest::max_task_bytes(tasks),
        },
    })
}

fn definition_for(
    app: Option<BenchmarkArg>,
    tasks: &[Task],
    k: usize,
    platform: &PlatformProfile,
) -> anyhow::Result<propack_step_functions::Built> {
    let mut o = propack_step_functions::DefinitionOptions::new(tasks.len() as u64, k as u64);
    o.shape.task_bytes = propack_step_functions::manifest::max_task_bytes(tasks);
    o.shape.vcpus = platform.vcpus;
    if let Some(b) = app.and_then(|b| propack_workloads::Workload::from_name(b.name()).ok()) {
        o.shape.task_seconds = Some(b.task_seconds());
    }
    propack_step_functions::build_definition(&o).context("building the state machine definition")
}

/// Runs one job (the packed run or the baseline) on the chosen backend.
fn run_job(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    bootstrap: Option<&Path>,
    job: &Job,
    progress: &dyn Progress,
) -> anyhow::Result<RunOutcome> {
    match args.backend.unwrap_or(BackendArg::Local) {
        BackendArg::Local => {
            let mut b = LocalBackend::new(bootstrap.expect("local runs find bootstrap first"));
            b.seed = args.seed;
            Ok(rt.block_on(b.run(job, progress))?)
        }
        BackendArg::Aws => run_aws(rt, args, job, progress),
    }
}

#[cfg(feature = "aws")]
fn run_aws(
    rt: &tokio::runtime::Runtime,
    args: &Args,
    job: &Job,
    progress: &dyn Progress,
) -> anyhow::Result<RunOutcome> {
    use propack_orchestrator::backend::aws::AwsBackend;
    let bucket = args
        .bucket
        .clone()
        .context("--backend aws needs --bucket (or PROPACK_BUCKET)")?;
    rt.block_on(async {
        let mut b = AwsBackend::from_env(args.aws.options(bucket)).await?;
        Ok(b.run(job, progress).await?)
    })
}

#[cfg(not(feature = "aws"))]
fn run_aws(
    _: &tokio::runtime::Runtime,
    _: &Args,
    _: &Job,
    _: &dyn Progress,
) -> anyhow::Result<RunOutcome> {
    bail!("this orchestrator was built without the `aws` feature; rebuild with `--features aws`")
}

fn backend_name(b: BackendArg) -> &'static str {
    match b {
        BackendArg::Local => "local",
        BackendArg::Aws => "aws",
    }
}

/// Runs `orchestrator launch`.
pub fn run(mut args: Args) -> anyhow::Result<()> {
    let hidden = args.json || !std::io::stderr().is_terminal();
    let platform = PlatformProfile::load(&args.platform)?;
    if args.backend.is_none() {
        args.backend = Some(if aws_configured() && args.bucket.is_some() {
            BackendArg::Aws
        } else {
            BackendArg::Local
        });
    }
    let backend = args.backend.expect("set above");
    let workload = args
        .benchmark
        .map_or("tasks-file", BenchmarkArg::name)
        .to_owned();

    // Tasks.
    let file_tasks: Option<Vec<Task>> = match &args.tasks_file {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("reading --tasks-file {}", p.display()))?;
            let tasks: Vec<Task> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON list of tasks", p.display()))?;
            for (i, t) in tasks.iter().enumerate() {
                t.validate(&format!("tasks[{i}]"))
                    .with_context(|| format!("--tasks-file {}", p.display()))?;
            }
            Some(tasks)
        }
        None => None,
    };
    let c = match (&file_tasks, args.tasks) {
        (Some(f), Some(n)) if n > f.len() => {
            bail!("--tasks {n} but --tasks-file has only {} tasks", f.len())
        }
        (Some(_), Some(n)) | (None, Some(n)) => n,
        (Some(f), None) => f.len(),
        (None, None) => bail!("--benchmark needs --tasks C"),
    };
    if c == 0 {
        bail!("--tasks must be at least 1");
    }
    let run_id = run_id_for(&workload, c);
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let run_dir = run_dir.canonicalize()?;
    let storage = local::storage_dir(&run_dir);

    let size_arg = args.benchmark.map(|b| {
        args.size
            .clone()
            .unwrap_or_else(|| b.default_size().to_owned())
    });
    let size = match (args.benchmark, &size_arg) {
        (Some(b), Some(s)) => propack_workloads::generator::parse_size(b.name(), s)?,
        _ => serde_json::Map::new(),
    };
    let tasks: Vec<Task> = match (&file_tasks, args.benchmark) {
        (Some(f), _) => f[..c].to_vec(),
        (None, Some(b)) => (0..c)
            .map(|i| benchmark_task(b, i, &size, &storage))
            .collect(),
        (None, None) => unreachable!("clap requires one of them"),
    };
    let mut ids = std::collections::BTreeSet::new();
    if let Some(t) = tasks.iter().find(|t| !ids.insert(t.id.as_str())) {
        bail!(
            "task id {:?} appears twice: ids must be unique within a run",
            t.id
        );
    }
    if let Some(b) = args.benchmark {
        stage_inputs(b, &tasks, &size, args.seed, hidden)?;
    }

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bootstrap = match backend {
        BackendArg::Local => Some(match &args.bootstrap {
            Some(p) => p.clone(),
            None => local::find_bootstrap()?,
        }),
        BackendArg::Aws => None,
    };

    // Plan k.
    let objective = match args.objective {
        ObjectiveArg::Time => Objective::Time,
        ObjectiveArg::Cost => Objective::Cost,
        ObjectiveArg::Both => Objective::Both {
            w_cost: propack_orchestrator::model::planner::DEFAULT_W_COST,
            w_time: propack_orchestrator::model::planner::DEFAULT_W_TIME,
        },
    };
    let metric = Metric::from(args.metric);
    let kmax = args.kmax.max(1).min(c);
    // A stored plan is keyed by what decides k: the workload and its size, the platform, C,
    // objective and metric (the packing curve it came from was measured on this machine).
    let store_path = args
        .store
        .clone()
        .unwrap_or_else(propack_orchestrator::model::store::default_path);
    let key = propack_orchestrator::model::store::PlanKey::new(
        &match (&args.tasks_file, &size_arg) {
            (Some(f), _) => format!("tasks-file:{}", f.display()),
            (None, Some(sz)) => format!("{workload}@{sz}"),
            (None, None) => workload.clone(),
        },
        &format!("{}:{}", backend_name(backend), platform.name),
        c as u64,
        objective,
        metric,
    );
    let stored = if args.packing == Packing::Auto && !args.replan {
        propack_orchestrator::model::store::PlanStore::open(&store_path)?
            .get(&key)
            .cloned()
    } else {
        None
    };
    let mut predictions: BTreeMap<usize, Metrics> = BTreeMap::new();
    let (k, plan_json, k_source) = if let Some(sp) = stored {
        let k = (sp.k as usize).clamp(1, c);
        predictions.insert(k, prediction_metrics(&sp.plan.prediction));
        predictions.insert(1, prediction_metrics(&sp.plan.baseline));
        (
            k,
            Some(serde_json::to_value(&sp.plan)?),
            format!("stored plan in {}", store_path.display()),
        )
    } else {
        let model: Option<Model> = match &bootstrap {
            Some(bs) => {
                let need = match args.packing {
                    Packing::Fixed(k) => k.min(c),
                    Packing::Auto => 1,
                };
                let app = rt.block_on(profile_locally(
                    bs,
                    &workload,
                    &tasks,
                    kmax.max(need),
                    &platform,
                    hidden,
                ))?;
                std::fs::write(
                    run_dir.join("profile.json"),
                    serde_json::to_vec_pretty(&app)?,
                )?;
                Some(Model::new(&app, platform.clone(), ModelKind::Propack)?)
            }
            None if args.packing == Packing::Auto => bail!(
                "--packing auto on --backend aws needs a stored plan: run `orchestrator plan` first, or pass --packing K"
            ),
            None => None,
        };
        let (k, plan_json, k_source) = match args.packing {
            Packing::Fixed(k) => (k.min(c), None, format!("--packing {k}")),
            Packing::Auto => {
                let m = model.as_ref().expect("auto has a model");
                let req = PlanRequest {
                    tasks: c as u64,
                    objective,
                    metric,
                    kmax: kmax as u64,
                    memory_mb_per_task: 0.0,
                    tmp_mb_per_task: 0.0,
                    payload_bytes_per_task: propack_step_functions::manifest::max_task_bytes(
                        &tasks,
                    ),
                };
                let plan = propack_orchestrator::model::plan(m, &req)?;
                let mut st = propack_orchestrator::model::store::PlanStore::open(&store_path)?;
                st.put(key.clone(), plan.clone());
                st.save()?;
                (
                    plan.k as usize,
                    Some(serde_json::to_value(&plan)?),
                    format!(
                        "planned from a local profile: {} / {}, kmax {kmax}",
                        objective.name(),
                        metric.name()
                    ),
                )
            }
        };
        if let Some(m) = &model {
            for kk in [k, 1] {
                predictions.insert(kk, prediction_metrics(&m.predict(c as u64, kk as u64)));
            }
        }
        (k, plan_json, k_source)
    };
    let predict = |k: usize| predictions.get(&k).copied();

    // Run.
    let run_one =
        |k: usize, run_id: String, dir: &Path, label: &str| -> anyhow::Result<MeasuredRun> {
            let definition = definition_for(args.benchmark, &tasks, k, &platform)?;
            std::fs::create_dir_all(dir)?;
            std::fs::write(
                dir.join("definition.asl.json"),
                definition.definition.to_json_pretty(),
            )?;
            let job = Job {
                run_id: run_id.clone(),
                tasks: tasks.clone(),
                k,
                definition,
                run_dir: dir.to_owned(),
                platform: platform.clone(),
            };
            // Outputs of an earlier run (the baseline shares them) must not pass verification.
            for t in &tasks {
                for u in t.outputs.values() {
                    if let Some(p) = uri_path(u) {
                        let _ = std::fs::remove_file(p);
                    }
                }
            }
            let progress = BarProgress::new(hidden, c.div_ceil(k), c, label);
            let outcome = run_job(&rt, &args, bootstrap.as_deref(), &job, &progress)?;
            progress.bar.finish_and_clear();
            let (verified, failed_tasks, errors) = verify(&tasks, &outcome);
            let distinct: std::collections::BTreeSet<&str> = outcome
                .records
                .instances
                .iter()
                .map(|i| i.instance_id.as_str())
                .collect();
            Ok(MeasuredRun {
                run_id,
                k,
                instances: outcome.records.instances.len(),
                distinct_instances: distinct.len(),
                measured: measure(&platform, &outcome),
                predicted: predict(k),
                state_transitions: outcome.records.orchestration.standard_transitions,
                verified,
                failed_tasks,
                errors,
                records: outcome.records,
            })
        };
    let packed = run_one(k, run_id.clone(), &run_dir, &format!("k={k}"))?;
    let baseline = if args.baseline {
        Some(run_one(
            1,
            format!("{run_id}-k1"),
            &run_dir.join("baseline"),
            "k=1",
        )?)
    } else {
        None
    };
    let report = RunReport {
        schema_version: RUN_SCHEMA_VERSION,
        backend: backend_name(backend).into(),
        platform: platform.clone(),
        workload,
        size: size_arg,
        tasks: c,
        objective: objective.name().into(),
        metric: metric.name().into(),
        plan: plan_json,
        k_source,
        run: packed,
        baseline,
        run_dir: run_dir.clone(),
    };
    report.write(&run_dir)?;
    let summary = report.summary();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print_human(&report);
    }
    let all_verified = report.run.verified && report.baseline.as_ref().is_none_or(|b| b.verified);
    if !all_verified {
        bail!(
            "verification failed ({} failed tasks; see {})",
            report.run.failed_tasks,
            run_dir.join("report.md").display()
        );
    }
    Ok(())
}

fn print_human(r: &RunReport) {
    let m = &r.run.measured;
    println!(
        "{} · {} tasks · k = {} ({}) · {} invocations on {} ({})",
        r.workload, r.tasks, r.run.k, r.k_source, r.run.instances, r.platform.name, r.backend
    );
    println!(
        "measured : scale {:.2} s · median {:.2} s · tail {:.2} s · total {:.2} s · ${:.6}",
        m.scale_s, m.median_s, m.tail_s, m.total_s, m.expense_usd
    );
    if let Some(p) = &r.run.predicted {
        println!(
            "predicted: scale {:.2} s · median {:.2} s · tail {:.2} s · total {:.2} s · ${:.6} (total error {:+.1} %)",
            p.scale_s,
            p.median_s,
            p.tail_s,
            p.total_s,
            p.expense_usd,
            propack_orchestrator::report::pct_error(m.total_s, p.total_s)
        );
    }
    if let Some(b) = &r.baseline {
        println!(
            "k = 1    : scale {:.2} s · total {:.2} s · ${:.6} → packed takes {:.2}× the time and {:.2}× the expense",
            b.measured.scale_s,
            b.measured.total_s,
            b.measured.expense_usd,
            m.total_s / b.measured.total_s.max(1e-9),
            m.expense_usd / b.measured.expense_usd.max(1e-12)
        );
    }
    println!(
        "verified: {} ({} failed) · report: {}",
        r.run.verified,
        r.run.failed_tasks,
        r.run_dir.join("report.md").display()
    );
}
