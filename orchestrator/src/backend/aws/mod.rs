//! AWS backend: stages a job in S3 and runs it on Lambda, through Step Functions or direct invokes.
//!
//! - [`clients`]: SDK clients from the standard credential chain and `AWS_ENDPOINT_URL*`;
//! - S3 through the runtime's core ([`propack_runtime::s3::S3Store`]: uploads, multipart
//!   for large inputs, downloads, listings) and its URIs ([`propack_runtime::uri`]);
//! - [`invoke`]: direct mode, ⌈C/k⌉ `Invoke` calls with bounded concurrency and backoff;
//! - [`sfn`]: Step Functions mode (state machine, idempotent execution, ResultWriter);
//! - [`deploy`], [`package`], [`policy`]: `orchestrator deploy` / `package` and the IAM policies;
//! - [`memory`]: the function's MemorySize set for each memory `profile packing --memory` measures;
//! - [`elf`], [`zip`]: the glibc symbol-version check and the deployment zip.
//!
//! The run layout in S3 is the step_functions crate's [`RunLayout`]:
//! `propack/runs/<run_id>/{manifest.json, in/, out/, results/}`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use propack_runtime::{Batch, Task, TaskStatus};
use propack_step_functions::ProcessorMode;
use propack_step_functions::manifest::{self as sfn_manifest, RunLayout};

pub mod clients;
pub mod deploy;
pub mod elf;
pub mod error;
pub mod invoke;
pub mod memory;
pub mod package;
pub mod policy;
pub mod sfn;
pub mod template;
pub mod zip;

pub use clients::AwsClients;
pub use error::AwsError;
pub use invoke::FanoutOptions;
use propack_runtime::s3::S3Store;
use propack_runtime::uri::{ObjectUri, S3Uri};

use super::{Backend, BackendError, Job, Progress, RunOutcome, Stop};
use crate::billing::{Orchestration, OrchestrationUsage};
use sfn::Executions as _;

/// How batches reach Lambda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AwsMode {
    /// A Step Functions execution of the job's definition (Distributed or inline Map).
    #[default]
    Sfn,
    /// ⌈C/k⌉ `Invoke` calls from this client (no Step Functions).
    Direct,
}

/// Where and how to run on AWS.
#[derive(Debug, Clone)]
pub struct AwsOptions {
    /// Bucket holding run inputs, manifest, outputs and results.
    pub bucket: String,
    /// Packed function name or ARN.
    pub function: String,
    /// Step Functions or direct invokes.
    pub mode: AwsMode,
    /// State machine name or ARN (sfn mode).
    pub state_machine: String,
    /// Role for creating the state machine when it does not exist yet.
    pub role_arn: Option<String>,
    /// Region override (else the standard chain decides).
    pub region: Option<String>,
    /// Direct-mode fan-out.
    pub fanout: FanoutOptions,
    /// Step Functions polling interval.
    pub poll_every: Duration,
    /// Worker count per batch (`BatchInput.parallelism`); None lets the runtime decide.
    pub parallelism: Option<usize>,
    /// Download outputs that tasks named as `file://` URIs back to those paths.
    pub download_outputs: bool,
    /// On the first Ctrl-C, stop the Step Functions execution (StopExecution) rather than
    /// leave it running for `resume` to re-attach to.
    pub stop_on_interrupt: bool,
}

impl AwsOptions {
    /// Defaults: function and state machine `propack`, Step Functions mode.
    pub fn new(bucket: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            function: propack_step_functions::build::DEFAULT_FUNCTION.to_owned(),
            mode: AwsMode::Sfn,
            state_machine: "propack".into(),
            role_arn: None,
            region: None,
            fanout: FanoutOptions::default(),
            poll_every: Duration::from_secs(2),
            parallelism: None,
            download_outputs: true,
            stop_on_interrupt: false,
        }
    }
}

/// Command-line options of the AWS backend, shared by `orchestrator launch` and `profile`.
#[derive(Debug, Clone, clap::Args)]
pub struct AwsArgs {
    /// Packed function name or ARN (--backend aws).
    #[arg(long, env = "PROPACK_FUNCTION", default_value = "propack")]
    pub function: String,
    /// How batches reach Lambda (--backend aws): `sfn` runs the Step Functions definition,
    /// `direct` sends ⌈C/k⌉ Invoke calls from this client.
    #[arg(long, value_enum, default_value_t)]
    pub mode: AwsMode,
    /// State machine name or ARN (--mode sfn).
    #[arg(long, env = "PROPACK_STATE_MACHINE", default_value = "propack")]
    pub state_machine: String,
    /// Role to create the state machine with when it does not exist yet (--mode sfn).
    #[arg(long, env = "PROPACK_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// AWS region (default: AWS_REGION or the profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// Invocations in flight at once (--mode direct).
    #[arg(long, default_value_t = 256)]
    pub max_in_flight: usize,
}

impl AwsArgs {
    /// The backend options for `bucket`.
    pub fn options(&self, bucket: impl Into<String>) -> AwsOptions {
        let mut o = AwsOptions::new(bucket);
        o.function = self.function.clone();
        o.mode = self.mode;
        o.state_machine = self.state_machine.clone();
        o.role_arn = self.role_arn.clone();
        o.region = self.region.clone();
        o.fanout.max_in_flight = self.max_in_flight.max(1);
        o
    }
}

/// A job staged in S3.
#[derive(Debug, Clone)]
pub struct StagedRun {
    /// The run's S3 layout.
    pub layout: RunLayout,
    /// The tasks with local (`file://`) inputs and outputs rewritten to S3.
    pub tasks: Vec<Task>,
    /// The uploaded manifest.
    pub manifest: S3Uri,
    /// `s3://bucket/propack/runs/<run_id>/out/`.
    pub output_prefix: String,
    /// Local files uploaded.
    pub uploaded: usize,
    /// (S3 object, local path, task id) of each output to bring back.
    pub downloads: Vec<(S3Uri, PathBuf, String)>,
}

/// Where the run went on AWS, written to `aws.json` in the run directory.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AwsRunInfo {
    /// Mode used.
    pub mode: AwsMode,
    /// Bucket.
    pub bucket: String,
    /// Run prefix.
    pub prefix: String,
    /// Function.
    pub function: String,
    /// Execution ARN (sfn mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// Whether this launch started the execution (false: attached to an existing one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<bool>,
    /// Retries the direct fan-out needed.
    pub retries: usize,
    /// Seconds from launch at which each batch's successful attempt was sent (direct mode).
    pub send_s: Vec<f64>,
    /// Outputs downloaded to local paths.
    pub downloaded: usize,
}

/// The AWS backend.
#[derive(Debug)]
pub struct AwsBackend {
    clients: AwsClients,
    store: S3Store,
    opts: AwsOptions,
    /// What the last run did on AWS.
    pub last_run: Option<AwsRunInfo>,
}

fn safe_key_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl AwsBackend {
    /// Clients from the standard chain (credentials, profile, region, endpoint overrides).
    pub async fn from_env(opts: AwsOptions) -> Result<Self, AwsError> {
        if opts.bucket.is_empty() {
            return Err(AwsError::Invalid(
                "the AWS backend needs a bucket (--bucket)".into(),
            ));
        }
        let clients = AwsClients::from_env(opts.region.as_deref()).await;
        Ok(Self::with_clients(clients, opts))
    }

    /// A backend over given clients (tests, emulators).
    pub fn with_clients(clients: AwsClients, opts: AwsOptions) -> Self {
        Self {
            store: S3Store::new(clients.s3.clone()),
            clients,
            opts,
            last_run: None,
        }
    }

    /// The Step Functions and S3 calls of waiting for and collecting executions.
    pub fn executions(&self) -> sfn::SdkExecutions {
        sfn::SdkExecutions {
            sfn: self.clients.sfn.clone(),
            store: self.store.clone(),
        }
    }

    /// The function's memory configuration (`profile packing --memory`).
    pub fn function_memory(&self) -> memory::SdkFunctionMemory {
        memory::SdkFunctionMemory {
            lambda: self.clients.lambda.clone(),
            wait_limit: Duration::from_secs(300),
        }
    }

    /// The object store (S3 client with this backend's settings).
    pub fn store(&self) -> &S3Store {
        &self.store
    }

    /// Uploads local inputs and the task manifest under the run prefix, rewriting
    /// `file://` inputs and outputs of the tasks to their S3 locations.
    pub async fn stage(&self, run_id: &str, tasks: &[Task]) -> Result<StagedRun, AwsError> {
        let bucket = &self.opts.bucket;
        let layout = RunLayout::new(run_id);
        let output_prefix = layout.output_prefix(bucket);
        let mut uploads: BTreeMap<PathBuf, S3Uri> = BTreeMap::new();
        let mut downloads = Vec::new();
        let mut staged = Vec::with_capacity(tasks.len());
        for (i, task) in tasks.iter().enumerate() {
            let mut t = task.clone();
            for (name, uri) in t.inputs.iter_mut() {
                if let ObjectUri::File(path) = ObjectUri::parse(uri)? {
                    let n = uploads.len();
                    let target = uploads.entry(path).or_insert_with(|| {
                        S3Uri::new(
                            bucket.clone(),
                            format!("{}/in/{n}/{}", layout.prefix, safe_key_part(name)),
                        )
                    });
                    *uri = target.to_string();
                }
            }
            for (name, uri) in t.outputs.iter_mut() {
                if let ObjectUri::File(path) = ObjectUri::parse(uri)? {
                    let target = S3Uri::new(
                        bucket.clone(),
                        format!(
                            "{}/out/{i}-{}/{}",
                            layout.prefix,
                            safe_key_part(&task.id),
                            safe_key_part(name)
                        ),
                    );
                    downloads.push((target.clone(), path, task.id.clone()));
                    *uri = target.to_string();
                }
            }
            staged.push(t);
        }
        let uploaded = uploads.len();
        futures::stream::iter(uploads.into_iter().map(|(path, uri)| {
            let store = self.store.clone();
            async move { store.put_file(&uri, &path).await }
        }))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
        let manifest = S3Uri::new(bucket.clone(), layout.manifest_key());
        self.store
            .put_bytes(&manifest, sfn_manifest::write_manifest(&staged))
            .await?;
        Ok(StagedRun {
            layout,
            tasks: staged,
            manifest,
            output_prefix,
            uploaded,
            downloads,
        })
    }

    fn batches(&self, run_id: &str, staged: &StagedRun, k: usize) -> Result<Vec<Batch>, AwsError> {
        let packed = sfn_manifest::pack(
            &staged.tasks,
            k,
            run_id,
            &staged.output_prefix,
            self.opts.parallelism,
        )
        .map_err(|e| AwsError::Invalid(e.to_string()))?;
        Ok(packed
            .into_iter()
            .map(|p| Batch {
                run_id: p.batch_input.run_id,
                batch_id: p.batch_input.batch_id,
                output_prefix: p.batch_input.output_prefix,
                parallelism: p.batch_input.parallelism,
                handler: p.batch_input.handler,
                max_result_bytes: p.batch_input.max_result_bytes,
                logs_prefix: p.batch_input.logs_prefix,
                tasks: p.items,
            })
            .collect())
    }

    async fn run_direct(
        &self,
        batches: &[Batch],
        progress: &dyn Progress,
        info: &mut AwsRunInfo,
        stop: crate::backend::Stop,
    ) -> Result<RunOutcome, AwsError> {
        let payloads: Vec<Vec<u8>> = batches
            .iter()
            .map(|b| serde_json::to_vec(b).expect("batches always serialise"))
            .collect();
        let sizes: Vec<usize> = batches.iter().map(|b| b.tasks.len()).collect();
        let launch_epoch_ms = now_ms();
        let launch = Instant::now();
        let invocations = invoke::fan_out(
            &self.clients.lambda_invoke,
            &self.opts.function,
            payloads,
            &sizes,
            &invoke::FanoutOptions {
                stop,
                ..self.opts.fanout.clone()
            },
            launch,
            progress,
        )
        .await?;
        info.retries = invocations.iter().map(|i| i.retries()).sum();
        info.send_s = invocations
            .iter()
            .map(|i| i.sent_s.last().copied().unwrap_or(0.0))
            .collect();
        Ok(invoke::outcome_from_invocations(
            batches,
            &invocations,
            launch_epoch_ms,
        ))
    }

    async fn run_sfn(
        &self,
        job: &Job,
        staged: &StagedRun,
        batches: &[Batch],
        progress: &dyn Progress,
        info: &mut AwsRunInfo,
    ) -> Result<RunOutcome, AwsError> {
        let input = if job.definition.mode == ProcessorMode::Distributed {
            let mut input = sfn_manifest::distributed_input(&job.run_id, &self.opts.bucket);
            input.output_prefix = staged.output_prefix.clone();
            input
        } else {
            sfn_manifest::inline_input(
                &job.run_id,
                &staged.output_prefix,
                &staged.tasks,
                job.k,
                self.opts.parallelism,
            )
            .map_err(|e| AwsError::Invalid(e.to_string()))?
        };
        let input = serde_json::to_string(&input).expect("inputs always serialise");
        let sm = sfn::ensure_state_machine(
            &self.clients.sfn,
            &self.opts.state_machine,
            &job.definition.definition.to_json_pretty(),
            self.opts.role_arn.as_deref(),
        )
        .await?;
        let launch_epoch_ms = now_ms();
        if job.stop.requested() {
            // Interrupted while staging: start nothing, so `resume` has nothing to re-attach to.
            return Ok(nothing_returned(batches, launch_epoch_ms));
        }
        let name = sfn::execution_name(&job.run_id);
        let (arn, started) = sfn::start_or_attach(&self.clients.sfn, &sm, &name, &input).await?;
        info.execution_arn = Some(arn.clone());
        info.started = Some(started);
        let results_prefix = S3Uri::new(self.opts.bucket.clone(), staged.layout.results_prefix());
        // Durable before the wait: an orchestrator killed while waiting leaves a journal
        // (and aws.json) that `resume` re-attaches from.
        progress.execution_started(&crate::journal::ExecutionRecord {
            execution_arn: arn.clone(),
            results_prefix: results_prefix.to_string(),
            downloads: staged
                .downloads
                .iter()
                .map(|(uri, path, task)| crate::journal::Download {
                    uri: uri.to_string(),
                    path: path.clone(),
                    task: task.clone(),
                })
                .collect(),
        });
        write_info(&job.run_dir, info)?;
        let api = self.executions();
        let end = match sfn::wait_execution(&api, &arn, self.opts.poll_every, progress, job.stop)
            .await?
        {
            sfn::Waited::Ended(end) => end,
            sfn::Waited::Interrupted => {
                if self.opts.stop_on_interrupt {
                    api.stop(&arn).await?;
                }
                progress.execution_left(&arn, self.opts.stop_on_interrupt);
                // Nothing has returned yet (ResultWriter writes at the end): every batch
                // is left without an end in the journal, for `resume` to collect.
                return Ok(nothing_returned(batches, launch_epoch_ms));
            }
        };
        let returned_s = (now_ms() - launch_epoch_ms) as f64 / 1000.0;
        let iterations = api.results(&results_prefix, &end).await?;
        if end.status != "SUCCEEDED" && iterations.is_empty() {
            return Err(AwsError::Invalid(format!(
                "execution {arn} ended {}: {}",
                end.status,
                end.error.unwrap_or_default()
            )));
        }
        let batch_of: BTreeMap<&str, usize> = batches
            .iter()
            .enumerate()
            .flat_map(|(i, b)| b.tasks.iter().map(move |t| (t.id.as_str(), i)))
            .collect();
        let mut rows = Vec::new();
        let mut seen = vec![false; batches.len()];
        for it in &iterations {
            // ResultWriter hands every result over at the end: journal them now.
            match &it.result {
                Some(r) => progress.batch_result(r),
                None => progress.batch_lost(&it.task_ids, "the child execution failed"),
            }
            let first = it
                .result
                .as_ref()
                .and_then(|r| r.tasks.first().map(|t| t.id.as_str()))
                .or(it.task_ids.first().map(String::as_str));
            let Some(&b) = first.and_then(|id| batch_of.get(id)) else {
                continue;
            };
            seen[b] = true;
            let start = it.result.as_ref().map_or(returned_s, |r| {
                (r.received_at as f64 - launch_epoch_ms as f64) / 1000.0
            });
            rows.push((b, it.result.as_ref(), start, returned_s, 0));
        }
        for (b, s) in seen.iter().enumerate() {
            if !s {
                rows.push((b, None, returned_s, returned_s, 0));
            }
        }
        rows.sort_by_key(|r| r.0);
        let mut records = invoke::records_from_results(batches, &rows, launch_epoch_ms);
        // EXPRESS children report no bill to the caller: price what they ran.
        records.orchestration =
            OrchestrationUsage::of_records(&records, Orchestration::of(&job.definition));
        Ok(RunOutcome {
            records,
            results: iterations.iter().filter_map(|i| i.result.clone()).collect(),
        })
    }

    async fn download_outputs(
        &self,
        staged: &StagedRun,
        outcome: &RunOutcome,
    ) -> Result<usize, AwsError> {
        let ok: BTreeSet<&str> = outcome
            .records
            .tasks
            .iter()
            .filter(|t| t.status == TaskStatus::Succeeded)
            .map(|t| t.id.as_str())
            .collect();
        self.download(&staged.downloads, &ok).await
    }

    /// Downloads the outputs of the tasks in `ok`.
    async fn download(
        &self,
        downloads: &[(S3Uri, PathBuf, String)],
        ok: &BTreeSet<&str>,
    ) -> Result<usize, AwsError> {
        let wanted: Vec<_> = downloads
            .iter()
            .filter(|(_, _, id)| ok.contains(id.as_str()))
            .collect();
        let n = wanted.len();
        futures::stream::iter(wanted.into_iter().map(|(uri, path, _)| {
            let store = self.store.clone();
            async move { store.get_file(uri, path).await }
        }))
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(n)
    }

    /// Re-attaches to the execution an earlier attempt started ([`sfn::reattach`]): waits
    /// while it runs, passes the results its attempt's journal lacks to `progress`, and
    /// downloads the outputs of the tasks that succeeded in them.
    pub async fn reattach(
        &self,
        execution: &crate::journal::ExecutionRecord,
        pending: &BTreeSet<String>,
        progress: &dyn Progress,
        stop: Stop,
    ) -> Result<sfn::Reattached, AwsError> {
        let prefix = S3Uri::parse(&execution.results_prefix)?;
        let r = sfn::reattach(
            &self.executions(),
            &execution.execution_arn,
            &prefix,
            pending,
            self.opts.poll_every,
            progress,
            stop,
            self.opts.stop_on_interrupt,
        )
        .await?;
        if let sfn::Reattached::Collected { collected, .. } = &r
            && self.opts.download_outputs
        {
            let ok: BTreeSet<&str> = collected
                .results
                .iter()
                .flat_map(|r| &r.tasks)
                .filter(|t| t.status == TaskStatus::Succeeded)
                .map(|t| t.id.as_str())
                .collect();
            let downloads = execution
                .downloads
                .iter()
                .map(|d| Ok((S3Uri::parse(&d.uri)?, d.path.clone(), d.task.clone())))
                .collect::<Result<Vec<_>, AwsError>>()?;
            self.download(&downloads, &ok).await?;
        }
        Ok(r)
    }

    /// Runs the job: stage, execute (sfn or direct), collect, download outputs.
    pub async fn run_job(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> Result<RunOutcome, AwsError> {
        if job.k == 0 {
            return Err(AwsError::Invalid(
                "packing degree k must be at least 1".into(),
            ));
        }
        let staged = self.stage(&job.run_id, &job.tasks).await?;
        let batches = self.batches(&job.run_id, &staged, job.k)?;
        let mut info = AwsRunInfo {
            mode: self.opts.mode,
            bucket: self.opts.bucket.clone(),
            prefix: staged.layout.prefix.clone(),
            function: self.opts.function.clone(),
            execution_arn: None,
            started: None,
            retries: 0,
            send_s: Vec::new(),
            downloaded: 0,
        };
        let outcome = match self.opts.mode {
            AwsMode::Direct => {
                self.run_direct(&batches, progress, &mut info, job.stop)
                    .await?
            }
            AwsMode::Sfn => {
                self.run_sfn(job, &staged, &batches, progress, &mut info)
                    .await?
            }
        };
        if self.opts.download_outputs {
            info.downloaded = self.download_outputs(&staged, &outcome).await?;
        }
        write_info(&job.run_dir, &info)?;
        self.last_run = Some(info);
        Ok(outcome)
    }
}

/// The outcome of a run whose batches all ended without a result.
fn nothing_returned(batches: &[Batch], launch_epoch_ms: u64) -> RunOutcome {
    let rows: Vec<_> = (0..batches.len()).map(|b| (b, None, 0.0, 0.0, 0)).collect();
    RunOutcome {
        records: invoke::records_from_results(batches, &rows, launch_epoch_ms),
        results: Vec::new(),
    }
}

fn write_info(run_dir: &Path, info: &AwsRunInfo) -> Result<(), AwsError> {
    std::fs::create_dir_all(run_dir).map_err(|e| AwsError::io(run_dir, e))?;
    let path = run_dir.join("aws.json");
    let text = serde_json::to_string_pretty(info).expect("info always serialises");
    std::fs::write(&path, text).map_err(|e| AwsError::io(path, e))
}

impl Backend for AwsBackend {
    fn name(&self) -> &str {
        "aws"
    }

    async fn run(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> Result<RunOutcome, BackendError> {
        Ok(self.run_job(job, progress).await?)
    }
}
