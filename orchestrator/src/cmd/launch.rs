//! `orchestrator launch`: maps its arguments onto a [`LaunchRequest`], runs the pipeline, writes and prints the report.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use propack_orchestrator::backend::BackendKind;
use propack_orchestrator::function::{LambdaRuntime, ManagedFunction};
use propack_orchestrator::pipeline::events::EventsSpec;
use propack_orchestrator::pipeline::map::{MapOver, MapSpec};
use propack_orchestrator::pipeline::resume;
use propack_orchestrator::pipeline::{
    self, BackendSpec, JobSource, LaunchRequest, Packing, PlanSpec, Ui,
};
use propack_orchestrator::platform::PlatformProfile;
use propack_orchestrator::report::{RunReport, pct_error};
use propack_runtime::{HandlerRuntime, Task};
use propack_workloads::Workload;

use super::UsageError;
pub use super::args::{MetricArg, ObjectiveArg};

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendArg {
    /// The embedded Lambda + Step Functions platform.
    Local,
    /// AWS Lambda + Step Functions (needs credentials and --bucket).
    Aws,
}

/// A packed handler's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HandlerRuntimeArg {
    /// CPython 3.
    Python3,
    /// Node.js.
    Node,
}

/// Arguments of `orchestrator launch`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Built-in benchmark to run (sort, statelesscost, video).
    #[arg(
        long,
        value_parser = super::args::workload_parser(),
        conflicts_with_all = ["tasks_file", "exec", "events"],
        required_unless_present_any = ["tasks_file", "exec", "events"]
    )]
    pub benchmark: Option<Workload>,
    /// A JSON list of task specs (the runtime's Task: {id, exec|builtin, inputs, outputs}) to run instead of a benchmark.
    #[arg(long, conflicts_with_all = ["exec", "events"])]
    pub tasks_file: Option<PathBuf>,
    /// Python or Node handler to run on every event of --events, unchanged (module.function).
    #[arg(long, requires = "events")]
    pub handler: Option<String>,
    /// The handler's code directory (the local task root, $LAMBDA_TASK_ROOT; required
    /// locally, on AWS the deployed function's code is used).
    #[arg(long, requires = "handler", conflicts_with = "function_dir")]
    pub code: Option<PathBuf>,
    /// One JSON event per line; one task per event (the first --tasks C of them).
    #[arg(long, requires = "handler", conflicts_with = "exec")]
    pub events: Option<PathBuf>,
    /// The handler's language (default: the one --code has a module for, Python first).
    #[arg(long, value_enum, requires = "handler")]
    pub handler_runtime: Option<HandlerRuntimeArg>,
    /// The local function's Lambda runtime: on python3.13 or nodejs22.x the platform starts
    /// instances through ProPack's exec wrapper (AWS_LAMBDA_EXEC_WRAPPER, as `deploy --runtime`
    /// sets it) and the handler comes from the function's configuration (_HANDLER).
    #[arg(long, value_enum, requires = "handler")]
    pub runtime: Option<LambdaRuntime>,
    /// Your own command, one task per object of --map (or line of --map-args), e.g.
    /// 'convert.sh {input} {output}'; placeholders {input}, {output}, {key}, {id}.
    #[arg(long, requires = "over")]
    pub exec: Option<String>,
    /// Map --exec over every object under this prefix: s3://bucket/prefix/, file:///dir/ or a directory.
    #[arg(long, group = "over", requires = "exec")]
    pub map: Option<String>,
    /// Map --exec over the lines of this file, each a JSON array of extra arguments.
    #[arg(long, group = "over", requires = "exec")]
    pub map_args: Option<PathBuf>,
    /// Where {output} files are uploaded, under the same relative key (--map) or the task id (--map-args).
    #[arg(long, requires = "exec")]
    pub output_prefix: Option<String>,
    /// The local platform's task root ($LAMBDA_TASK_ROOT, /var/task on Lambda): relative programs are found here.
    #[arg(long)]
    pub function_dir: Option<PathBuf>,
    /// Number of tasks C (with --tasks-file: the first C tasks; default all).
    #[arg(long)]
    pub tasks: Option<usize>,
    /// Per-task input size: sort `1MB`, statelesscost `WxH`, video `WxH[xFRAMES]`.
    #[arg(long)]
    pub size: Option<String>,
    /// Packing degree: `auto` (planned by the model) or a fixed k.
    #[arg(long, default_value = "auto")]
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
    /// Function memory, MB (default: the platform profile's; a stored plan's on AWS).
    #[arg(long)]
    pub memory: Option<u32>,
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
    /// --mode sfn: the first Ctrl-C stops the Step Functions execution (StopExecution).
    /// Without it the execution keeps running and `orchestrator resume RUN_DIR` re-attaches
    /// to it (waits for it if still running, then collects its results).
    #[arg(long)]
    pub stop_on_interrupt: bool,
}

/// AWS is the default backend only when credentials and a bucket are configured.
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

/// `--tasks-file`'s tasks (the first C of them with `--tasks C`), validated.
fn tasks_file(path: &Path, c: Option<usize>) -> anyhow::Result<JobSource> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --tasks-file {}", path.display()))?;
    let mut tasks: Vec<Task> = serde_json::from_str(&text)
        .map_err(|e| UsageError(format!("{}: not a JSON list of tasks: {e}", path.display())))?;
    // A task's optional "weight" (its relative work) balances the batches.
    let raw: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let mut weights: Vec<f64> = raw
        .iter()
        .map(|t| t["weight"].as_f64().unwrap_or(f64::NAN))
        .collect();
    if weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
        weights.clear();
    }
    if let Some(n) = c {
        if n > tasks.len() {
            return Err(UsageError(format!(
                "--tasks {n} but --tasks-file has only {} tasks",
                tasks.len()
            ))
            .into());
        }
        tasks.truncate(n);
        weights.truncate(n);
    }
    let origin = format!("tasks-file:{}", std::path::absolute(path)?.display());
    Ok(JobSource::Tasks {
        name: "tasks-file".into(),
        tasks,
        origin,
        weights,
    })
}

/// The first `--tasks C` tasks of a task list (all without `--tasks`).
fn first(mut source: JobSource, c: Option<usize>) -> JobSource {
    if let (Some(n), JobSource::Tasks { tasks, .. }) = (c, &mut source) {
        tasks.truncate(n);
    }
    source
}

/// What to run, from `--benchmark`/`--tasks-file`/`--exec` and `--tasks`/`--size`.
fn source(args: &Args) -> anyhow::Result<JobSource> {
    if let (Some(handler), Some(events)) = (&args.handler, &args.events) {
        if args.code.is_none() && args.backend != Some(BackendArg::Aws) {
            return Err(UsageError(
                "--handler on the local platform needs --code DIR (the handler's code)".into(),
            )
            .into());
        }
        let mut runtime = args.handler_runtime.map(|r| match r {
            HandlerRuntimeArg::Python3 => HandlerRuntime::Python3,
            HandlerRuntimeArg::Node => HandlerRuntime::Node,
        });
        let managed = args.runtime.and_then(LambdaRuntime::handler_language);
        if let Some(lang) = managed {
            if runtime.is_some_and(|r| r != lang) {
                return Err(UsageError(format!(
                    "--handler-runtime {} does not match --runtime {}",
                    runtime.map_or("", HandlerRuntime::as_str),
                    args.runtime.map_or("", LambdaRuntime::as_str)
                ))
                .into());
            }
            runtime = Some(lang);
        }
        let spec = EventsSpec {
            handler: handler.clone(),
            runtime,
            code: args.code.clone(),
            events: events.clone(),
            from_function: managed.is_some(),
        };
        return Ok(first(pipeline::events::source(&spec)?, args.tasks));
    }
    if let Some(exec) = &args.exec {
        let over = match (&args.map, &args.map_args) {
            (Some(prefix), _) => MapOver::Prefix(prefix.clone()),
            (None, Some(path)) => MapOver::ArgsFile(path.clone()),
            (None, None) => unreachable!("clap requires --map or --map-args with --exec"),
        };
        let spec = MapSpec {
            exec: exec.clone(),
            over,
            output_prefix: args.output_prefix.clone(),
        };
        return Ok(first(pipeline::map::source(&spec)?, args.tasks));
    }
    match (&args.tasks_file, args.benchmark) {
        (Some(path), _) => tasks_file(path, args.tasks),
        (None, Some(workload)) => Ok(JobSource::Benchmark {
            workload,
            size: args.size.clone(),
            tasks: match args.tasks {
                Some(0) | None => {
                    return Err(UsageError("--benchmark needs --tasks C ≥ 1".into()).into());
                }
                Some(n) => n,
            },
        }),
        (None, None) => unreachable!("clap requires one of them"),
    }
}

/// `--function-dir` as the local function's `LAMBDA_TASK_ROOT` (as Lambda sets `/var/task`).
fn task_root_env(dir: Option<&Path>) -> anyhow::Result<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    if let Some(dir) = dir {
        if !dir.is_dir() {
            return Err(
                UsageError(format!("--function-dir {}: not a directory", dir.display())).into(),
            );
        }
        let abs = std::path::absolute(dir)?;
        env.insert("LAMBDA_TASK_ROOT".to_owned(), abs.display().to_string());
    }
    Ok(env)
}

/// Where to run, from `--backend` (or the environment) and the backend's options.
fn backend(args: &Args) -> anyhow::Result<BackendSpec> {
    let kind = match args.backend {
        Some(BackendArg::Aws) => BackendKind::Aws,
        Some(BackendArg::Local) => BackendKind::Local,
        None if aws_configured() && args.bucket.is_some() => BackendKind::Aws,
        None => BackendKind::Local,
    };
    match kind {
        #[cfg(feature = "aws")]
        BackendKind::Aws => {
            if let Some(rt) = args.runtime {
                return Err(UsageError(format!(
                    "--runtime {} emulates a runtime on the local platform; on AWS the deployed function's runtime is used (`orchestrator deploy --runtime`)",
                    rt.as_str()
                ))
                .into());
            }
            if args.function_dir.is_some() {
                return Err(UsageError(
                    "--function-dir is the local platform's task root; on AWS, ship the files with `orchestrator package --include` and `deploy --code`".into(),
                )
                .into());
            }
            let bucket = args.bucket.clone().ok_or_else(|| {
                UsageError("--backend aws needs --bucket (or PROPACK_BUCKET)".into())
            })?;
            let mut o = args.aws.options(bucket);
            o.stop_on_interrupt = args.stop_on_interrupt;
            Ok(BackendSpec::Aws(o))
        }
        BackendKind::Local => Ok(BackendSpec::Local {
            bootstrap: match &args.bootstrap {
                Some(p) => p.clone(),
                None => propack_orchestrator::backend::local::find_bootstrap()?,
            },
            seed: args.seed,
            env: task_root_env(args.function_dir.as_deref().or(args.code.as_deref()))?,
            managed: match (args.runtime, &args.handler) {
                (Some(runtime), Some(handler)) if runtime.is_managed() => Some(ManagedFunction {
                    runtime,
                    handler: handler.clone(),
                }),
                _ => None,
            },
        }),
        other => Err(UsageError(format!(
            "--backend {other} is not available in this build (rebuild with `--features aws`)"
        ))
        .into()),
    }
}

/// The pipeline's request for these arguments.
fn request(args: &Args) -> anyhow::Result<LaunchRequest> {
    // Everything a user can get wrong is checked before the run directory exists.
    let source = source(args)?;
    let backend = backend(args)?;
    let platform = PlatformProfile::load(&args.platform)?;
    let (name, c) = match &source {
        JobSource::Benchmark {
            workload, tasks, ..
        } => (workload.name(), *tasks),
        JobSource::Tasks { name, tasks, .. } => (name.as_str(), tasks.len()),
    };
    let run_id = pipeline::run_id_for(name, c);
    let run_dir = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&run_id));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    Ok(LaunchRequest {
        source,
        plan: PlanSpec {
            packing: args.packing,
            objective: args.objective.objective(
                propack_orchestrator::model::planner::DEFAULT_W_COST,
                propack_orchestrator::model::planner::DEFAULT_W_TIME,
            ),
            metric: args.metric.into(),
            kmax: args.kmax.max(1),
            store: args
                .store
                .clone()
                .unwrap_or_else(propack_orchestrator::model::store::default_path),
            replan: args.replan,
            memory_mb: args.memory,
        },
        platform,
        backend,
        baseline: args.baseline,
        run_dir: run_dir.canonicalize()?,
        run_id,
        seed: args.seed,
    })
}

/// Runs `orchestrator launch`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let req = request(&args)?;
    let sfn = resume::BackendRecord::of(&req.backend).is_sfn();
    let ui = Ui {
        quiet: args.json || !std::io::stderr().is_terminal(),
        stop: super::interrupt::install(&req.run_dir, sfn),
    };
    let report = pipeline::launch(&req, ui)?;
    report
        .write(&req.run_dir)
        .with_context(|| format!("writing the report to {}", req.run_dir.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.summary())?);
    } else {
        print_human(&report);
    }
    super::interrupt::check(ui.stop, report.run.verified, &req.run_dir)?;
    let verified = report.run.verified && report.baseline.as_ref().is_none_or(|b| b.verified);
    anyhow::ensure!(
        verified,
        "verification failed ({} failed tasks; see {})",
        report.run.failed_tasks,
        req.run_dir.join("report.md").display()
    );
    Ok(())
}

fn print_human(r: &RunReport) {
    let m = &r.run.measured;
    println!(
        "{} · {} tasks · k = {} ({}) · {} invocations on {} ({})",
        r.workload, r.tasks, r.run.k, r.k_source, r.run.instances, r.platform.name, r.backend
    );
    let e = &m.expense;
    println!(
        "measured : scale {:.2} s · median {:.2} s · tail {:.2} s · total {:.2} s · ${:.6} (compute {:.6} + requests {:.6} + orchestration {:.6})",
        m.scale_s,
        m.median_s,
        m.tail_s,
        m.total_s,
        m.expense_usd,
        e.compute_usd,
        e.requests_usd,
        e.orchestration_usd
    );
    if let Some(p) = &r.run.predicted {
        println!(
            "predicted: scale {:.2} s · median {:.2} s · tail {:.2} s · total {:.2} s · ${:.6} (total error {:+.1} %)",
            p.scale_s,
            p.median_s,
            p.tail_s,
            p.total_s,
            p.expense_usd,
            pct_error(m.total_s, p.total_s)
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
        if let Some(p) = &b.predicted {
            println!(
                "k = 1 predicted: total {:.2} s · ${:.6} (total error {:+.1} %)",
                p.total_s,
                p.expense_usd,
                pct_error(b.measured.total_s, p.total_s)
            );
        }
    }
    if let Some(rs) = r
        .right_sized_k1()
        .filter(|b| b.memory_mb != r.platform.memory_mb)
    {
        println!(
            "k = 1 right-sized ({} MB, predicted): {} {:.2} s · ${:.6} → the plan is {:.1} % faster, {:.1} % cheaper",
            rs.memory_mb,
            r.metric,
            rs.prediction.metric(r.metric_kind()),
            rs.prediction.expense_usd,
            rs.time_improvement_pct,
            rs.cost_improvement_pct
        );
    }
    println!(
        "verified: {} ({} failed) · report: {}",
        r.run.verified,
        r.run.failed_tasks,
        r.run_dir.join("report.md").display()
    );
}
