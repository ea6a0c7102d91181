//! The embedded local Lambda + Step Functions platform.
//!
//! - [`lambda`]: the Lambda emulator (Runtime API per instance, real `bootstrap`
//!   processes, scaling paced by the platform profile, timeouts, warm reuse);
//! - [`affinity`]: the CPUs a function's memory buys, as the instance process's CPU affinity;
//! - [`invoke_api`]: the Lambda Invoke API over HTTP, for any Lambda client;
//! - [`sfn`]: the Step Functions interpreter for the ASL ProPack generates;
//! - [`LocalBackend`]: runs a [`Job`] on both, with S3 as a directory of the run.

pub mod affinity;
pub mod invoke_api;
pub mod lambda;
pub mod sfn;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use propack_runtime::uri::{ObjectUri, S3Uri};
use propack_runtime::{BatchResult, Task, TaskStatus};
use propack_step_functions::{ProcessorMode, State};
use serde_json::{Value, json};

use self::lambda::{FunctionConfig, LambdaPlatform};
use self::sfn::{Interpreter, ItemDone};
use super::{Backend, BackendError, Job, Progress, RunOutcome};
use crate::function::ManagedFunction;
use crate::records::{InstanceRecord, RunRecords, TaskRecord};

/// The bucket name local runs use (any name works: buckets are directories).
pub const LOCAL_BUCKET: &str = "propack-local";

/// CPUs of this host that the local platform's instances share (affinity and cgroup
/// aware): what [`crate::platform::PlatformProfile::on_host`] is given for local runs.
pub fn host_cpus() -> f64 {
    std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
}

/// Where S3 lives for a run: `<run_dir>/storage`, absolute, because `file://` URIs into it
/// (the batches' `logs_prefix`) must be (`resume run` gave a relative run directory).
pub fn storage_dir(run_dir: &Path) -> PathBuf {
    let dir = run_dir.join("storage");
    std::path::absolute(&dir).unwrap_or(dir)
}

/// The local file behind `s3://bucket/key` in a run's storage.
pub fn s3_to_path(storage: &Path, uri: &str) -> Option<PathBuf> {
    let s3 = S3Uri::parse(uri).ok()?;
    Some(sfn::storage_path(storage, s3.bucket(), s3.key()))
}

/// Rewrites an `s3://` URI to the `file://` URI of its local object (other URIs unchanged).
pub fn localize_uri(storage: &Path, uri: &str) -> String {
    match s3_to_path(storage, uri) {
        Some(p) => {
            let mut s = ObjectUri::File(p).to_string();
            if uri.ends_with('/') && !s.ends_with('/') {
                s.push('/');
            }
            s
        }
        None => uri.to_owned(),
    }
}

/// A task whose `s3://` inputs and outputs point into the local storage instead.
pub fn localize_task(storage: &Path, task: &Task) -> Task {
    let mut t = task.clone();
    for uri in t.inputs.values_mut().chain(t.outputs.values_mut()) {
        *uri = localize_uri(storage, uri);
    }
    t
}

/// Every function a definition invokes: `FunctionName` of lambda:invoke Tasks and
/// function ARNs used as a Task's `Resource`, in the top level and every `ItemProcessor`.
fn find_functions(states: &BTreeMap<String, State>, out: &mut BTreeSet<String>) {
    for s in states.values() {
        match s {
            State::Task(t) => {
                if let Some(Value::String(f)) =
                    t.parameters.as_ref().and_then(|p| p.get("FunctionName"))
                {
                    out.insert(f.clone());
                }
                if t.resource.contains(":function:") {
                    out.insert(t.resource.clone());
                }
            }
            State::Map(m) => find_functions(&m.item_processor.states, out),
            State::Pass(_) | State::Succeed(_) | State::Fail(_) => {}
        }
    }
}

/// Environment variable naming the `bootstrap` executable explicitly.
pub const BOOTSTRAP_ENV: &str = "PROPACK_BOOTSTRAP";

/// How to get a `bootstrap` built, for the errors below.
const BOOTSTRAP_HINT: &str =
    "build it with `cargo build -p propack-runtime --bin bootstrap` or set PROPACK_BOOTSTRAP";

/// The local platform's `bootstrap` executable is missing or could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// `$PROPACK_BOOTSTRAP` (or `--bootstrap`) names no file.
    #[error("the bootstrap executable {0} does not exist ({BOOTSTRAP_HINT})")]
    Missing(PathBuf),
    /// Not next to this executable, and no source tree to build it in.
    #[error("no `bootstrap` executable next to {0} ({BOOTSTRAP_HINT})")]
    NotFound(PathBuf),
    /// Locating this executable failed.
    #[error("locating the current executable: {0}")]
    CurrentExe(#[source] std::io::Error),
    /// `cargo` could not be started.
    #[error("running cargo to build bootstrap ({BOOTSTRAP_HINT}): {0}")]
    Cargo(#[source] std::io::Error),
    /// `cargo build` failed.
    #[error("cargo build of bootstrap failed ({0}); {BOOTSTRAP_HINT}")]
    BuildFailed(std::process::ExitStatus),
    /// `cargo build` succeeded but the binary is not where it should be.
    #[error("cargo built bootstrap but it is not at {0}; {BOOTSTRAP_HINT}")]
    NotBuilt(PathBuf),
}

/// Finds the `bootstrap` executable the local platform runs as function instances.
///
/// In order: `$PROPACK_BOOTSTRAP`; `bootstrap` next to the current executable
/// (or one directory up, for test binaries in `target/*/deps`); and, when this
/// binary was built from a source tree that still exists, `cargo build -p
/// propack-runtime --bin bootstrap` in that tree with the same profile, so that
/// `cargo run -p propack-orchestrator -- launch ...` works on a fresh clone.
pub fn find_bootstrap() -> Result<PathBuf, BootstrapError> {
    if let Some(p) = std::env::var_os(BOOTSTRAP_ENV) {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BootstrapError::Missing(p))
        };
    }
    let exe = std::env::current_exe().map_err(BootstrapError::CurrentExe)?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    for d in [Some(dir.as_path()), dir.parent()].into_iter().flatten() {
        let c = d.join("bootstrap");
        if c.is_file() {
            return Ok(c);
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf);
    let Some(ws) = workspace.filter(|w| w.join("runtime/Cargo.toml").is_file()) else {
        return Err(BootstrapError::NotFound(exe));
    };
    let release = exe.components().any(|c| c.as_os_str() == "release");
    eprintln!(
        "building the bootstrap runtime (first run): cargo build -p propack-runtime --bin bootstrap{}",
        if release { " --release" } else { "" }
    );
    let mut cmd =
        std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(&ws)
        .args(["build", "-p", "propack-runtime", "--bin", "bootstrap"]);
    if release {
        cmd.arg("--release");
    }
    let status = cmd.status().map_err(BootstrapError::Cargo)?;
    if !status.success() {
        return Err(BootstrapError::BuildFailed(status));
    }
    let built = ws
        .join("target")
        .join(if release { "release" } else { "debug" })
        .join("bootstrap");
    [dir.join("bootstrap"), built.clone()]
        .into_iter()
        .find(|c| c.is_file())
        .ok_or(BootstrapError::NotBuilt(built))
}

/// Runs jobs on the embedded platform: one fresh [`LambdaPlatform`] per run, so
/// every run starts cold at its own time zero, as a new deployment on AWS would.
#[derive(Debug, Clone)]
pub struct LocalBackend {
    /// The `bootstrap` executable deployed as every function of the definition.
    pub bootstrap: PathBuf,
    /// Extra environment for the function (e.g. `PROPACK_PARALLELISM`).
    pub env: BTreeMap<String, String>,
    /// Seed of the cold-start samples.
    pub seed: u64,
    /// The function's code directory (`launch --function-dir`): every instance's
    /// `LAMBDA_TASK_ROOT`, where relative exec programs are found. `None`: the bootstrap's directory.
    pub task_root: Option<PathBuf>,
    /// A managed runtime to emulate (`launch --runtime`): instances start through ProPack's
    /// exec wrapper from a layer written into the run directory (`opt/`). `None`: `provided.al2023`.
    pub managed: Option<ManagedFunction>,
    current: Arc<Mutex<Option<LambdaPlatform>>>,
}

impl LocalBackend {
    /// A backend deploying `bootstrap`.
    pub fn new(bootstrap: impl Into<PathBuf>) -> Self {
        Self {
            bootstrap: bootstrap.into(),
            env: BTreeMap::new(),
            seed: 0x5eed,
            task_root: None,
            managed: None,
            current: Arc::new(Mutex::new(None)),
        }
    }

    /// A handle that keeps reporting the run in progress from another thread.
    pub fn platform_handle(&self) -> PlatformHandle {
        PlatformHandle(self.current.clone())
    }

    /// The execution input for `job`: a Distributed Map reads its manifest from storage, an inline one gets the batches.
    fn stage(&self, job: &Job, storage: &Path) -> Result<Value, BackendError> {
        let tasks: Vec<Task> = job
            .tasks
            .iter()
            .map(|t| localize_task(storage, t))
            .collect();
        let output_prefix = localize_uri(
            storage,
            &format!("s3://{LOCAL_BUCKET}/propack/runs/{}/out/", job.run_id),
        );
        if job.definition.mode == ProcessorMode::Distributed {
            let input =
                propack_step_functions::manifest::distributed_input(&job.run_id, LOCAL_BUCKET);
            let key = input
                .manifest_key
                .clone()
                .expect("distributed inputs name a manifest");
            let path = sfn::storage_path(storage, LOCAL_BUCKET, &key);
            let dir = path.parent().expect("keys have a parent");
            std::fs::create_dir_all(dir)
                .map_err(BackendError::io(format!("creating {}", dir.display())))?;
            std::fs::write(&path, propack_step_functions::write_manifest(&tasks))
                .map_err(BackendError::io(format!("writing {}", path.display())))?;
            let mut v = serde_json::to_value(&input).expect("inputs serialise");
            v["output_prefix"] = json!(output_prefix);
            Ok(v)
        } else {
            let input = propack_step_functions::inline_input(
                &job.run_id,
                &output_prefix,
                &tasks,
                job.k,
                None,
            )?;
            Ok(serde_json::to_value(&input).expect("inputs serialise"))
        }
    }
}

/// See [`LocalBackend::platform_handle`].
#[derive(Debug, Clone)]
pub struct PlatformHandle(Arc<Mutex<Option<LambdaPlatform>>>);

impl PlatformHandle {
    /// The platform of the run in progress, if any.
    pub fn get(&self) -> Option<LambdaPlatform> {
        self.0.lock().expect("lock").clone()
    }
}

impl Backend for LocalBackend {
    fn name(&self) -> &str {
        "local"
    }

    async fn run(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> Result<RunOutcome, BackendError> {
        let definition = &job.definition.definition;
        sfn::check_supported(definition)?;
        if !self.bootstrap.is_file() {
            return Err(BootstrapError::Missing(self.bootstrap.clone()).into());
        }
        let storage = storage_dir(&job.run_dir);
        std::fs::create_dir_all(&storage)
            .map_err(BackendError::io(format!("creating {}", storage.display())))?;
        let input = self.stage(job, &storage)?;
        let layer = job.run_dir.join("opt");
        if self.managed.is_some() {
            lambda::write_layer(&layer, &self.bootstrap).map_err(BackendError::io(format!(
                "writing the layer {}",
                layer.display()
            )))?;
        }

        let mut names = BTreeSet::new();
        find_functions(&definition.states, &mut names);
        let functions: Vec<FunctionConfig> = names
            .iter()
            .map(|n| {
                let name = n.rsplit_once(":function:").map_or(n.as_str(), |(_, r)| r);
                let name = name.split(':').next().unwrap_or(name);
                let mut f = FunctionConfig::new(name, &self.bootstrap, &job.platform);
                f.env = self.env.clone();
                f.task_root = self.task_root.clone();
                f.log_dir = Some(job.run_dir.join("logs"));
                match &self.managed {
                    Some(m) => f.with_managed_runtime(m.runtime, &m.handler, &layer),
                    None => f,
                }
            })
            .collect();

        let platform = LambdaPlatform::new(job.platform.clone(), functions, self.seed);
        // Within one Map run an instance idle this long will not be reused (all batches are
        // bound when the Map starts; retries come within seconds), so its process can go.
        platform.set_idle_ttl(std::time::Duration::from_secs(10));
        *self.current.lock().expect("lock") = Some(platform.clone());

        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ItemEnd>();
        let on_item: sfn::ItemCallback = Arc::new(move |d: ItemDone<'_>| {
            let ids: Vec<String> = d.input["Items"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|t| t["id"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let failed = match d.output {
                Err(_) => ids.len(),
                Ok(v) if v["failed"] == true => ids.len(),
                Ok(v) => v["tasks"].as_array().map_or(0, |ts| {
                    ts.iter().filter(|t| t["status"] != "succeeded").count()
                }),
            };
            let outcome = match d.output {
                // The definition's Catch turns a failed batch into a failure record
                // `{"failed": true, "error": {"Error", "Cause"}}`: journal its reason.
                Ok(v) if v["failed"] == true => Err(failure_reason(v)),
                Ok(v) => serde_json::from_value::<BatchResult>(v.clone())
                    .map_err(|e| format!("an unreadable batch result: {e}")),
                Err(e) => Err(format!("{}: {}", e.error, e.cause)),
            };
            let _ = tx.send(ItemEnd {
                index: d.index,
                ids,
                failed,
                outcome,
            });
        });
        let interp = Interpreter::new(platform.clone(), &storage, Some(on_item));
        interp.set_stop(job.stop);
        platform.set_stop(job.stop);
        let exec = interp.execute(definition, &job.run_id, input);
        tokio::pin!(exec);
        let mut batch_tasks: HashMap<usize, Vec<String>> = HashMap::new();
        let execution = loop {
            tokio::select! {
                r = &mut exec => break r,
                Some(end) = rx.recv() => end.report(progress, &mut batch_tasks),
            }
        };
        while let Ok(end) = rx.try_recv() {
            end.report(progress, &mut batch_tasks);
        }
        platform.shutdown();
        *self.current.lock().expect("lock") = None;
        let execution = execution?;
        if let Err(e) = &execution.result {
            // Tolerated failures are per batch; an execution failure still has records worth reporting,
            // so it is recorded in the run directory and surfaced through failed tasks, not dropped.
            let path = job.run_dir.join("execution-error.json");
            std::fs::write(
                &path,
                serde_json::to_vec_pretty(&json!({"Error": e.error, "Cause": e.cause}))
                    .expect("serialises"),
            )
            .map_err(BackendError::io(format!("writing {}", path.display())))?;
        }
        Ok(outcome(job, &platform, &execution, &batch_tasks))
    }
}

/// `Error: Cause` of a caught batch's failure record (Lambda's error type and message).
fn failure_reason(record: &Value) -> String {
    let error = &record["error"];
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    match (text(&error["Error"]), text(&error["Cause"])) {
        (e, c) if e.is_empty() && c.is_empty() => format!("the batch failed: {record}"),
        (e, c) if c.is_empty() => e,
        (e, c) => format!("{e}: {c}"),
    }
}

fn outcome(
    job: &Job,
    platform: &LambdaPlatform,
    execution: &sfn::Execution,
    batch_tasks: &HashMap<usize, Vec<String>>,
) -> RunOutcome {
    let zero = platform.zero_epoch_ms();
    let rel = |ms: Option<u64>| ms.map(|m| (m as f64 - zero as f64) / 1000.0);
    let mut records = RunRecords {
        launch_epoch_ms: zero,
        ..RunRecords::default()
    };
    let mut results = Vec::new();
    let mut task_recs: BTreeMap<String, TaskRecord> = BTreeMap::new();
    for log in &execution.invocations {
        let inv = &log.invocation;
        let batch = log.item.unwrap_or(0);
        let parsed: Option<BatchResult> = match &inv.status {
            lambda::InvokeStatus::Ok(body) => serde_json::from_slice(body).ok(),
            lambda::InvokeStatus::FunctionError { .. } => None,
        };
        let tasks = batch_tasks
            .get(&batch)
            .map(Vec::len)
            .or_else(|| parsed.as_ref().map(|r| r.tasks.len()))
            .unwrap_or(0);
        records.instances.push(InstanceRecord {
            batch,
            attempt: log.attempt,
            instance_id: inv.instance_id.clone(),
            cold_start: inv.cold_start,
            requested_s: inv.requested_s,
            start_s: inv.start_s,
            end_s: inv.end_s,
            init_ms: inv.init_ms,
            tasks,
            ok: parsed.is_some(),
        });
        if let Some(r) = parsed {
            for t in &r.tasks {
                task_recs.insert(
                    t.id.clone(),
                    TaskRecord {
                        id: t.id.clone(),
                        batch,
                        status: t.status,
                        start_s: rel(t.started_at),
                        end_s: rel(t.ended_at),
                    },
                );
            }
            results.push(r);
        }
    }
    // Tasks no successful attempt reported: their batch failed for good.
    for (&batch, ids) in batch_tasks {
        for id in ids {
            task_recs.entry(id.clone()).or_insert_with(|| TaskRecord {
                id: id.clone(),
                batch,
                status: TaskStatus::Failed,
                start_s: None,
                end_s: None,
            });
        }
    }
    for (i, t) in job.tasks.iter().enumerate() {
        task_recs.entry(t.id.clone()).or_insert_with(|| TaskRecord {
            id: t.id.clone(),
            batch: i / job.k.max(1),
            status: TaskStatus::NotRun,
            start_s: None,
            end_s: None,
        });
    }
    records
        .instances
        .sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let order: HashMap<&str, usize> = job
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (t.id.as_str(), i))
        .collect();
    let mut tasks: Vec<TaskRecord> = task_recs.into_values().collect();
    tasks.sort_by_key(|t| order.get(t.id.as_str()).copied().unwrap_or(usize::MAX));
    records.tasks = tasks;
    records.orchestration = execution.usage;
    RunOutcome { records, results }
}

/// One Map item's end, sent from the interpreter's callback to the run loop.
struct ItemEnd {
    index: usize,
    ids: Vec<String>,
    failed: usize,
    outcome: Result<BatchResult, String>,
}

impl ItemEnd {
    /// Tells `progress` (journal first, then the bar) and remembers the item's task ids.
    fn report(self, progress: &dyn Progress, batch_tasks: &mut HashMap<usize, Vec<String>>) {
        match &self.outcome {
            Ok(r) => progress.batch_result(r),
            Err(e) => progress.batch_lost(&self.ids, e),
        }
        progress.batch_done(self.ids.len(), self.failed);
        batch_tasks.insert(self.index, self.ids);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: `resume run` (a relative run directory) gave batches a
    /// `logs_prefix` of `file://run/...`, which the runtime refuses, so every resumed batch failed.
    #[test]
    fn storage_is_absolute_for_a_relative_run_directory() {
        let dir = storage_dir(Path::new("run/attempt-2"));
        assert!(dir.is_absolute(), "{}", dir.display());
        assert!(dir.ends_with("run/attempt-2/storage"), "{}", dir.display());
        assert_eq!(
            dir,
            std::env::current_dir()
                .unwrap()
                .join("run/attempt-2/storage")
        );
    }

    #[test]
    fn s3_uris_map_into_the_run_storage() {
        let s = Path::new("/runs/r1/storage");
        assert_eq!(
            localize_uri(s, "s3://b/propack/runs/r1/in/x"),
            "file:///runs/r1/storage/b/propack/runs/r1/in/x"
        );
        assert_eq!(
            localize_uri(s, "s3://b/p/out/"),
            "file:///runs/r1/storage/b/p/out/"
        );
        assert_eq!(localize_uri(s, "file:///x"), "file:///x");
    }

    #[test]
    fn a_caught_failure_record_is_journalled_with_its_error_and_cause() {
        let record = json!({"failed": true, "task_ids": ["a"], "error": {
            "Error": "Sandbox.Timedout",
            "Cause": "{\"errorType\":\"Sandbox.Timedout\",\"errorMessage\":\"r1 Task timed out after 4.00 seconds\"}"}});
        let why = failure_reason(&record);
        assert!(why.starts_with("Sandbox.Timedout: {"), "{why}");
        assert!(why.contains("Task timed out after 4.00 seconds"), "{why}");
        assert_eq!(
            failure_reason(&json!({"failed": true, "error": {"Error": "States.TaskFailed"}})),
            "States.TaskFailed"
        );
    }

    #[test]
    fn functions_are_found_in_parameters_and_resources() {
        let def = json!({"StartAt": "M", "States": {
            "M": {"Type": "Map", "ItemProcessor": {"StartAt": "A", "States": {
                "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                      "Parameters": {"FunctionName": "propack"}, "End": true}}}, "Next": "B"},
            "B": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:other", "End": true}}});
        let def = sfn::parse(&def).unwrap();
        let mut out = BTreeSet::new();
        find_functions(&def.states, &mut out);
        assert_eq!(out.len(), 2);
    }
}
