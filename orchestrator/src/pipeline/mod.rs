//! The launch pipeline as library code over typed values:
//! stage → (profile) → plan → definition → run → verify → bill → report.
//!
//! - [`stage`]: what to run ([`JobSource`]) → the job's contract tasks ([`StagedJob`]);
//!   [`map`] builds the tasks of `--exec ... --map|--map-args`, [`events`] those of
//!   `--handler ... --events` (and writes their `outputs.jsonl`);
//! - [`profile`]: the one [`Profiler`] (packing curve and scaling runs on any backend);
//! - [`plan`]: k from a stored plan, a fixed `--packing K`, or the model on a local profile;
//! - [`definition_for`]: the typed Step Functions definition for (tasks, k);
//! - [`run_job`]: one job on the backend, verified ([`verify`]) and billed
//!   ([`crate::billing`] through [`crate::records::RunRecords::metrics`]);
//! - [`launch`]: all of them for a [`LaunchRequest`], k = 1 baseline included, into a
//!   [`RunReport`] that `cmd/launch.rs` writes and prints;
//! - [`resume`]: the tasks of a run that are not done, again, merged into the run
//!   (from `launch.json` and the [`crate::journal`]).

mod error;
pub mod events;
pub mod map;
pub mod plan;
pub mod profile;
pub mod resume;
pub mod stage;
mod ui;
pub mod verify;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use propack_runtime::Task;
use propack_step_functions::{Built, DefinitionOptions, build_definition, manifest};

pub use error::PipelineError;
pub use plan::{Packing, PlanSpec, Planned};
pub use profile::Profiler;
pub use stage::{JobSource, StagedJob};
pub use ui::{BarProgress, RunProgress, Ui};

use crate::backend::local::LocalBackend;
use crate::backend::{AnyBackend, Backend, BackendError, BackendKind, Job};
use crate::journal::Journal;
use crate::model::AppProfile;
use crate::platform::PlatformProfile;
use crate::records::DEFAULT_TAIL_QUANTILE;
use crate::report::{MeasuredRun, RUN_SCHEMA_VERSION, RunReport};

/// Where jobs run, and how to reach it.
#[derive(Debug, Clone)]
pub enum BackendSpec {
    /// The embedded platform running `bootstrap` as every function.
    Local {
        /// The `bootstrap` executable.
        bootstrap: PathBuf,
        /// Seed of the platform's cold-start samples.
        seed: u64,
        /// Extra environment of the function (`LAMBDA_TASK_ROOT` here sets its task root).
        env: BTreeMap<String, String>,
        /// A managed runtime emulated through ProPack's exec wrapper (`launch --runtime`).
        managed: Option<crate::function::ManagedFunction>,
    },
    /// AWS Lambda (+ Step Functions).
    #[cfg(feature = "aws")]
    Aws(crate::backend::aws::AwsOptions),
}

impl BackendSpec {
    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        match self {
            BackendSpec::Local { .. } => BackendKind::Local,
            #[cfg(feature = "aws")]
            BackendSpec::Aws(_) => BackendKind::Aws,
        }
    }

    /// The function the definitions invoke.
    pub fn function(&self) -> String {
        match self {
            BackendSpec::Local { .. } => propack_step_functions::build::DEFAULT_FUNCTION.into(),
            #[cfg(feature = "aws")]
            BackendSpec::Aws(o) => o.function.clone(),
        }
    }

    /// A backend of this spec.
    pub async fn open(&self) -> Result<AnyBackend, BackendError> {
        Ok(match self {
            BackendSpec::Local {
                bootstrap,
                seed,
                env,
                managed,
            } => {
                let mut b = LocalBackend::new(bootstrap);
                b.seed = *seed;
                b.env = env.clone();
                b.managed = managed.clone();
                // A LAMBDA_TASK_ROOT in the function's environment (`--function-dir`) is
                // its task root: the instances also start there, as on Lambda.
                b.task_root = b.env.remove("LAMBDA_TASK_ROOT").map(PathBuf::from);
                AnyBackend::Local(b)
            }
            #[cfg(feature = "aws")]
            BackendSpec::Aws(o) => AnyBackend::Aws(Box::new(
                crate::backend::aws::AwsBackend::from_env(o.clone()).await?,
            )),
        })
    }
}

/// Everything `orchestrator launch` needs.
#[derive(Debug, Clone)]
pub struct LaunchRequest {
    /// What to run.
    pub source: JobSource,
    /// How k is chosen.
    pub plan: PlanSpec,
    /// The platform profile (model, local pacing, billing).
    pub platform: PlatformProfile,
    /// Where to run.
    pub backend: BackendSpec,
    /// Also run k = 1 and report the improvement.
    pub baseline: bool,
    /// The run directory (created).
    pub run_dir: PathBuf,
    /// The run id (also the Step Functions execution name).
    pub run_id: String,
    /// Seed of generated inputs.
    pub seed: u64,
}

/// The definition the builder makes for these tasks packed `k` per instance on `platform`.
pub fn definition_for(
    tasks: &[Task],
    k: usize,
    platform: &PlatformProfile,
    task_seconds: Option<f64>,
    function: &str,
) -> Result<Built, PipelineError> {
    let mut o = DefinitionOptions::new(tasks.len() as u64, k as u64);
    o.shape.task_bytes = manifest::max_task_bytes(tasks);
    o.shape.vcpus = platform.vcpus;
    o.shape.task_seconds = task_seconds;
    o.function = function.to_owned();
    Ok(build_definition(&o)?)
}

/// Where and how a job runs: the backend's spec, the platform it bills by, the UI.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The backend's spec (its function name goes into the definition).
    pub spec: &'a BackendSpec,
    /// The platform profile.
    pub platform: &'a PlatformProfile,
    /// Progress bars or not.
    pub ui: Ui,
}

/// Which attempt of a run a job is, and the journal it appends to.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The directory holding `journal.jsonl` (the run directory).
    pub journal_dir: &'a Path,
    /// 1 for the launch, then 2, 3, ... for each `orchestrator resume`.
    pub number: u32,
}

/// Runs the staged job at `k` on `backend` into `dir`: definition, run, verify, bill;
/// every batch's end is journalled in `attempt.journal_dir` as it arrives.
pub async fn run_job(
    backend: &mut AnyBackend,
    target: Target<'_>,
    staged: &StagedJob,
    k: usize,
    run_id: String,
    dir: &Path,
    attempt: Attempt<'_>,
) -> Result<MeasuredRun, PipelineError> {
    let platform = target.platform;
    // Manifest order = batch order: ItemBatcher's consecutive batches are the balanced ones.
    let tasks = staged.batch_order(k);
    let definition = definition_for(
        &tasks,
        k,
        platform,
        staged.task_seconds,
        &target.spec.function(),
    )?;
    std::fs::create_dir_all(dir)
        .map_err(PipelineError::io(format!("creating {}", dir.display())))?;
    let path = dir.join("definition.asl.json");
    std::fs::write(&path, definition.definition.to_json_pretty())
        .map_err(PipelineError::io(format!("writing {}", path.display())))?;
    stage::clear_outputs(&staged.tasks)?;
    let c = staged.tasks.len();
    let progress = BarProgress::new(target.ui, c.div_ceil(k), c, &format!("k={k}"));
    let ids = staged.tasks.iter().map(|t| t.id.clone()).collect();
    let journal = Journal::open(attempt.journal_dir, attempt.number, &run_id, k, ids).map_err(
        PipelineError::io(format!(
            "opening the journal in {}",
            attempt.journal_dir.display()
        )),
    )?;
    let job = Job {
        run_id: run_id.clone(),
        tasks,
        k,
        definition,
        run_dir: dir.to_owned(),
        platform: platform.clone(),
        stop: target.ui.stop,
    };
    let run_progress = RunProgress {
        bar: &progress,
        journal: &journal,
    };
    let outcome = backend.run(&job, &run_progress).await;
    progress.bar.finish_and_clear();
    let outcome = outcome?;
    events::write_outputs(dir, &staged.tasks, &outcome.results)?;
    let v = verify::verify(&staged.tasks, &outcome);
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
        measured: outcome.records.metrics(DEFAULT_TAIL_QUANTILE, platform),
        predicted: None,
        state_transitions: outcome.records.orchestration.standard_transitions,
        verified: v.verified,
        failed_tasks: v.failed_tasks,
        errors: v.errors,
        records: outcome.records,
    })
}

/// The profile `launch` plans from: the job's own tasks on the local platform, with the
/// target platform's memory and vCPUs but no pacing or injected cold start (the profile
/// measures the function; the platform profile supplies the scaling); with the median
/// init of a new local instance, seconds (a process start on this host).
pub async fn local_profile(
    spec: &BackendSpec,
    staged: &StagedJob,
    platform: &PlatformProfile,
    kmax: usize,
    work_dir: &Path,
    ui: Ui,
) -> Result<(AppProfile, f64), PipelineError> {
    let mut bench = PlatformProfile::unlimited();
    bench.memory_mb = platform.memory_mb;
    // The k = 1 burst runs this many instances at once: no more than the host's CPUs,
    // or its durations would already contain the sharing the model adds (model::share).
    bench.vcpus = platform
        .vcpus
        .min(crate::backend::local::host_cpus() as u32)
        .max(1);
    bench.timeout_s = platform.timeout_s;
    let backend = spec.open().await?;
    let mut profiler = Profiler::new(backend, bench, staged.tasks.clone(), work_dir);
    let profile = profiler.launch_profile(&staged.workload, kmax, ui).await?;
    Ok((profile, profiler.init_s().unwrap_or(0.0)))
}

/// Chooses k for the staged job (see [`plan`]), writing `profile.json` when it profiled.
async fn choose_k(
    req: &LaunchRequest,
    staged: &StagedJob,
    ui: Ui,
) -> Result<Planned, PipelineError> {
    let c = staged.tasks.len();
    let key = plan::plan_key(
        &staged.key,
        req.backend.kind(),
        &req.platform.name,
        c as u64,
        (req.plan.objective, req.plan.metric),
        req.plan.memory_mb,
    );
    if let Some(p) = plan::stored(&req.plan, &key, c)? {
        return Ok(p);
    }
    if req.backend.kind() != BackendKind::Local {
        return plan::fixed_without_model(&req.plan, c);
    }
    let need = match req.plan.packing {
        Packing::Fixed(k) => k.min(c),
        Packing::Auto => 1,
    };
    let kmax = req.plan.kmax.clamp(1, c).max(need);
    let work = req.run_dir.join("profile");
    let (profile, init_s) =
        match local_profile(&req.backend, staged, &req.platform, kmax, &work, ui).await {
            // A fixed k runs without predictions rather than not at all: the profile only
            // predicts, and the failing tasks will be reported (and resumable) by the run.
            Err(PipelineError::Profile(why)) if matches!(req.plan.packing, Packing::Fixed(_)) => {
                eprintln!("warning: no predictions (profiling failed: {why})");
                let _ = std::fs::remove_dir_all(&work);
                return plan::fixed_without_model(&req.plan, c);
            }
            other => other?,
        };
    let _ = std::fs::remove_dir_all(&work);
    let path = req.run_dir.join("profile.json");
    profile.save(&path)?;
    // The local platform runs every instance on this host: predict for the CPU it gave
    // the profile (its cores when idle, less when other work shares it).
    let cores = crate::backend::local::host_cpus();
    let capacity = profile
        .packing
        .cpu_capacity(cores)
        .map_or(cores, |c| c.min(cores));
    let host = req.platform.on_host(capacity, init_s);
    plan::from_profile(&req.plan, key, &profile, &host, staged)
}

/// Stages, plans, runs (and, with `baseline`, runs k = 1), verifies and bills the job;
/// the returned report is not yet written (see [`RunReport::write`]).
pub fn launch(req: &LaunchRequest, ui: Ui) -> Result<RunReport, PipelineError> {
    std::fs::create_dir_all(&req.run_dir).map_err(PipelineError::io(format!(
        "creating {}",
        req.run_dir.display()
    )))?;
    let staged = stage::stage(&req.source, &req.run_dir, req.seed, ui)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(PipelineError::io("starting the async runtime"))?;
    rt.block_on(async {
        let planned = choose_k(req, &staged, ui).await?;
        resume::save(
            &req.run_dir,
            &resume::LaunchRecord {
                run_id: req.run_id.clone(),
                workload: staged.workload.clone(),
                k: planned.k,
                task_seconds: staged.task_seconds,
                platform: req.platform.clone(),
                backend: resume::BackendRecord::of(&req.backend),
                tasks: staged.tasks.clone(),
            },
        )?;
        let mut backend = req.backend.open().await?;
        // The job runs (and is billed) at the memory it was planned for.
        let platform = match planned.memory_mb {
            Some(m) if m != req.platform.memory_mb => req.platform.at_memory(m),
            _ => req.platform.clone(),
        };
        let target = Target {
            spec: &req.backend,
            platform: &platform,
            ui,
        };
        let k = planned.k;
        let first = Attempt {
            journal_dir: &req.run_dir,
            number: 1,
        };
        let mut packed = run_job(
            &mut backend,
            target,
            &staged,
            k,
            req.run_id.clone(),
            &req.run_dir,
            first,
        )
        .await?;
        packed.predicted = planned.predicted(k);
        // After a Ctrl-C the baseline would run nothing: the user asked to stop.
        let baseline = if req.baseline && !ui.stop.requested() {
            let id = format!("{}-k1", req.run_id);
            let dir = req.run_dir.join("baseline");
            let own = Attempt {
                journal_dir: &dir,
                number: 1,
            };
            let mut b = run_job(&mut backend, target, &staged, 1, id, &dir, own).await?;
            b.predicted = planned.predicted(1);
            Some(b)
        } else {
            None
        };
        Ok(RunReport {
            schema_version: RUN_SCHEMA_VERSION,
            backend: req.backend.kind().name().into(),
            platform: platform.clone(),
            workload: staged.workload.clone(),
            size: staged.size.clone(),
            tasks: staged.tasks.len(),
            objective: req.plan.objective.name().into(),
            metric: req.plan.metric.name().into(),
            plan: planned
                .plan
                .as_ref()
                .map(|p| serde_json::to_value(p).expect("plans serialise")),
            k_source: planned.source.clone(),
            run: packed,
            baseline,
            attempts: Vec::new(),
            run_dir: req.run_dir.clone(),
        })
    })
}

/// A run id: the workload, C and the launch time (ms), unique enough for one user.
pub fn run_id_for(workload: &str, tasks: usize) -> String {
    let ms = crate::backend::local::lambda::epoch_ms();
    format!("{workload}-{tasks}-{}-{:03}", ms / 1000, ms % 1000)
}
