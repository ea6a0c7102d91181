//! Resume: run again only a run's tasks that are not verified succeeded, on its backend, and merge them into the run.
//!
//! `launch` writes `launch.json` (the staged tasks, k, platform and backend) before the
//! first batch and journals every batch's end ([`crate::journal`]). A task counts as done
//! when some attempt returned it `succeeded` and its output passes the workload's check;
//! done tasks are never run again. Each resume is a new attempt in `attempt-N/` whose
//! batches go to the same `journal.jsonl`; `run.json` and `report.md` are then rewritten
//! with the merged verification and an attempts table (the measured metrics stay the
//! launch's: a resumed attempt has its own `attempt-N/definition.asl.json`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use propack_runtime::Task;
use serde::{Deserialize, Serialize};

use super::verify::check_output;
use super::{Attempt, BackendSpec, PipelineError, StagedJob, Target, Ui, run_job};
use crate::journal::{self, JOURNAL_FILE, RunState};
use crate::platform::PlatformProfile;
use crate::report::{RunReport, SummaryMetrics};

/// The file `launch` leaves in the run directory so the run can be resumed.
pub const LAUNCH_FILE: &str = "launch.json";

/// What `resume` needs to run the rest of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LaunchRecord {
    /// The launch's run id.
    pub run_id: String,
    /// The job's name in reports.
    pub workload: String,
    /// The launch's k.
    pub k: usize,
    /// Planning estimate of one task (chooses the Step Functions child type).
    pub task_seconds: Option<f64>,
    /// The platform profile.
    pub platform: PlatformProfile,
    /// Where it ran.
    pub backend: BackendRecord,
    /// Every staged task.
    pub tasks: Vec<Task>,
}

/// A [`BackendSpec`] as stored in `launch.json` (credentials are never stored: the
/// standard AWS chain supplies them again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BackendRecord {
    /// The local platform.
    Local {
        /// The `bootstrap` executable.
        bootstrap: PathBuf,
        /// Cold-start seed.
        seed: u64,
        /// The function's extra environment (e.g. `LAMBDA_TASK_ROOT` from `--function-dir`).
        env: BTreeMap<String, String>,
        /// The emulated managed runtime (`launch --runtime`), if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        managed: Option<crate::function::ManagedFunction>,
    },
    /// AWS.
    Aws {
        /// Bucket.
        bucket: String,
        /// Function name or ARN.
        function: String,
        /// `direct` invokes rather than Step Functions.
        direct: bool,
        /// State machine name or ARN.
        state_machine: String,
        /// Region override.
        region: Option<String>,
        /// `launch --stop-on-interrupt`: a Ctrl-C stops the execution rather than leaving it running.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stop_on_interrupt: bool,
    },
}

impl BackendRecord {
    /// The record of a spec.
    pub fn of(spec: &BackendSpec) -> Self {
        match spec {
            BackendSpec::Local {
                bootstrap,
                seed,
                env,
                managed,
            } => Self::Local {
                bootstrap: bootstrap.clone(),
                seed: *seed,
                env: env.clone(),
                managed: managed.clone(),
            },
            #[cfg(feature = "aws")]
            BackendSpec::Aws(o) => Self::Aws {
                bucket: o.bucket.clone(),
                function: o.function.clone(),
                direct: o.mode == crate::backend::aws::AwsMode::Direct,
                state_machine: o.state_machine.clone(),
                region: o.region.clone(),
                stop_on_interrupt: o.stop_on_interrupt,
            },
        }
    }

    /// Whether the run's batches ran in Step Functions executions (which `resume` re-attaches to).
    pub fn is_sfn(&self) -> bool {
        matches!(self, Self::Aws { direct: false, .. })
    }

    /// The spec again.
    pub fn spec(&self) -> Result<BackendSpec, PipelineError> {
        match self {
            Self::Local {
                bootstrap,
                seed,
                env,
                managed,
            } => Ok(BackendSpec::Local {
                bootstrap: bootstrap.clone(),
                seed: *seed,
                env: env.clone(),
                managed: managed.clone(),
            }),
            #[cfg(feature = "aws")]
            Self::Aws {
                bucket,
                function,
                direct,
                state_machine,
                region,
                stop_on_interrupt,
            } => {
                use crate::backend::aws::{AwsMode, AwsOptions};
                let mut o = AwsOptions::new(bucket.clone());
                o.function = function.clone();
                o.mode = if *direct {
                    AwsMode::Direct
                } else {
                    AwsMode::Sfn
                };
                o.state_machine = state_machine.clone();
                o.region = region.clone();
                o.stop_on_interrupt = *stop_on_interrupt;
                Ok(BackendSpec::Aws(o))
            }
            #[cfg(not(feature = "aws"))]
            Self::Aws { .. } => Err(PipelineError::Usage(
                "this run was on AWS: resume it with a build that has the aws feature".into(),
            )),
        }
    }
}

/// Writes `launch.json`.
pub fn save(dir: &Path, record: &LaunchRecord) -> Result<(), PipelineError> {
    let path = dir.join(LAUNCH_FILE);
    let bytes = serde_json::to_vec_pretty(record).expect("launch records serialise");
    std::fs::write(&path, bytes).map_err(PipelineError::io(format!("writing {}", path.display())))
}

/// Reads `launch.json`; a directory without one is not a resumable run (usage error).
pub fn load(dir: &Path) -> Result<LaunchRecord, PipelineError> {
    let path = dir.join(LAUNCH_FILE);
    let text = std::fs::read_to_string(&path).map_err(|_| {
        PipelineError::Usage(format!(
            "{}: not a run directory of `orchestrator launch` (no {LAUNCH_FILE})",
            dir.display()
        ))
    })?;
    serde_json::from_str(&text)
        .map_err(|e| PipelineError::Usage(format!("{}: {e}", path.display())))
}

/// Where a run stands (`orchestrator status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// The launch's run id.
    pub run_id: String,
    /// C.
    pub tasks: usize,
    /// Tasks that succeeded and whose output passed its check.
    pub done: usize,
    /// Tasks whose last result was not a success, by status (`failed`, `timed_out`,
    /// `not_run`, `batch_failed`), plus `check_failed` for outputs that failed their check.
    pub unsuccessful: BTreeMap<String, usize>,
    /// Tasks no attempt heard back from.
    pub never_returned: usize,
    /// Every attempt so far.
    pub attempts: Vec<journal::AttemptSummary>,
    /// Every task is done.
    pub complete: bool,
}

/// Every entry of the run's journal (none before the first batch).
fn journal_entries(dir: &Path) -> Result<Vec<journal::Entry>, PipelineError> {
    let path = dir.join(JOURNAL_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    journal::read(&path).map_err(|e| PipelineError::Usage(e.to_string()))
}

/// The run's state from its journal, and the ids of the tasks that are done.
fn done_tasks(dir: &Path, tasks: &[Task]) -> Result<(RunState, BTreeSet<String>), PipelineError> {
    let state = RunState::from_entries(&journal_entries(dir)?);
    let done = tasks
        .iter()
        .filter(|t| state.succeeded.contains(&t.id) && check_output(t).is_ok())
        .map(|t| t.id.clone())
        .collect();
    Ok((state, done))
}

/// Where the run in `dir` stands.
pub fn status(dir: &Path) -> Result<RunStatus, PipelineError> {
    let rec = load(dir)?;
    let (state, done) = done_tasks(dir, &rec.tasks)?;
    let mut unsuccessful: BTreeMap<String, usize> = BTreeMap::new();
    let mut never_returned = 0;
    for t in rec.tasks.iter().filter(|t| !done.contains(&t.id)) {
        let why = match state.unsuccessful.get(&t.id) {
            Some(s) => s.clone(),
            None if state.succeeded.contains(&t.id) => "check_failed".into(),
            None => {
                never_returned += 1;
                continue;
            }
        };
        *unsuccessful.entry(why).or_default() += 1;
    }
    Ok(RunStatus {
        run_id: rec.run_id,
        tasks: rec.tasks.len(),
        done: done.len(),
        unsuccessful,
        never_returned,
        attempts: state.attempts,
        complete: done.len() == rec.tasks.len(),
    })
}

/// What one `orchestrator resume` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeSummary {
    /// The Step Functions executions of earlier attempts it re-attached to, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reattached: Vec<Reattachment>,
    /// The attempt's number (None when nothing was left to run, or the user interrupted
    /// the wait for a re-attached execution).
    pub attempt: Option<u32>,
    /// Its k.
    pub k: usize,
    /// Tasks it ran.
    pub ran: usize,
    /// What it measured (None when nothing ran).
    pub measured: Option<SummaryMetrics>,
    /// The run after merging.
    pub status: RunStatus,
}

/// The summary of a resume that started no new attempt after its re-attaches (interrupted, or
/// every task done): the re-attached results are merged into the report.
fn nothing_more_ran(
    dir: &Path,
    reattached: Vec<Reattachment>,
) -> Result<ResumeSummary, PipelineError> {
    let status = status(dir)?;
    merge_into_report(dir, &status)?;
    Ok(ResumeSummary {
        reattached,
        attempt: None,
        k: 0,
        ran: 0,
        measured: None,
        status,
    })
}

/// What re-attaching to an earlier attempt's Step Functions execution found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reattachment {
    /// The attempt that started the execution.
    pub attempt: u32,
    /// The execution.
    pub execution_arn: String,
    /// How it ended (SUCCEEDED, FAILED, TIMED_OUT, ABORTED); None when the wait was interrupted.
    pub status: Option<String>,
    /// It was still running and `resume` waited for it.
    pub waited: bool,
    /// Batch results it journalled for the attempt.
    pub results: usize,
    /// Tasks that succeeded in those results.
    pub succeeded: usize,
    /// Tasks of the attempt the execution ended without a result for (journalled as failed).
    pub lost: usize,
    /// The user interrupted the wait: the execution keeps running (or was stopped, below),
    /// and no new attempt was started.
    pub interrupted: bool,
    /// With `--stop-on-interrupt`: the interrupted execution was asked to stop.
    pub stopped: bool,
}

/// Runs the tasks of the run in `dir` that are not done, at `packing` (default the run's
/// k), as attempt N in `dir/attempt-N`, then rewrites `run.json` and `report.md`.
///
/// A Step Functions run first re-attaches to every execution of an earlier attempt whose
/// results the journal lacks (the orchestrator was killed or interrupted while waiting for
/// it): it waits for one still running, journals its results as that attempt's, and only
/// then runs what is still not done.
pub fn resume(dir: &Path, packing: Option<usize>, ui: Ui) -> Result<ResumeSummary, PipelineError> {
    let rec = load(dir)?;
    let executions = if rec.backend.is_sfn() {
        journal::pending_executions(&journal_entries(dir)?)
    } else {
        Vec::new()
    };
    let (_, done) = done_tasks(dir, &rec.tasks)?;
    if executions.is_empty() && rec.tasks.iter().all(|t| done.contains(&t.id)) {
        return Ok(ResumeSummary {
            reattached: Vec::new(),
            attempt: None,
            k: 0,
            ran: 0,
            measured: None,
            status: status(dir)?,
        });
    }
    let spec = rec.backend.spec()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(PipelineError::io("starting the async runtime"))?;
    rt.block_on(async {
        let mut backend = spec.open().await?;
        let mut reattached = Vec::new();
        for p in &executions {
            let r = reattach(&backend, dir, p, ui).await?;
            let interrupted = r.interrupted;
            reattached.push(r);
            if interrupted {
                return nothing_more_ran(dir, reattached);
            }
        }
        let (state, done) = done_tasks(dir, &rec.tasks)?;
        let rest: Vec<Task> = rec
            .tasks
            .iter()
            .filter(|t| !done.contains(&t.id))
            .cloned()
            .collect();
        if rest.is_empty() {
            return nothing_more_ran(dir, reattached);
        }
        let number = state.next_attempt();
        let k = packing.unwrap_or(rec.k).clamp(1, rest.len());
        let staged = StagedJob {
            workload: rec.workload.clone(),
            size: None,
            key: String::new(),
            weights: vec![1.0; rest.len()],
            tasks: rest,
            task_seconds: rec.task_seconds,
        };
        let attempt_dir = dir.join(format!("attempt-{number}"));
        let target = Target {
            spec: &spec,
            platform: &rec.platform,
            ui,
        };
        let attempt = Attempt {
            journal_dir: dir,
            number,
        };
        let run_id = format!("{}-r{number}", rec.run_id);
        let run = run_job(
            &mut backend,
            target,
            &staged,
            k,
            run_id,
            &attempt_dir,
            attempt,
        )
        .await?;
        let status = status(dir)?;
        merge_into_report(dir, &status)?;
        Ok(ResumeSummary {
            reattached,
            attempt: Some(number),
            k,
            ran: staged.tasks.len(),
            measured: Some(run.measured.into()),
            status,
        })
    })
}

/// Re-attaches to one earlier attempt's execution, journalling what it returned as that attempt's.
#[cfg(feature = "aws")]
async fn reattach(
    backend: &crate::backend::AnyBackend,
    dir: &Path,
    p: &journal::PendingExecution,
    ui: Ui,
) -> Result<Reattachment, PipelineError> {
    use super::{BarProgress, RunProgress};
    use crate::backend::aws::sfn::Reattached;
    let crate::backend::AnyBackend::Aws(aws) = backend else {
        return Err(PipelineError::Usage(format!(
            "attempt {} ran a Step Functions execution, but this run's backend is not AWS",
            p.attempt
        )));
    };
    let journal = journal::Journal::reopen(dir, p.attempt).map_err(PipelineError::io(format!(
        "opening the journal in {}",
        dir.display()
    )))?;
    let n = p.pending.len();
    let label = format!("attempt {} (re-attached)", p.attempt);
    let bar = BarProgress::new(ui, n.div_ceil(p.k.max(1)), n, &label);
    let progress = RunProgress {
        bar: &bar,
        journal: &journal,
    };
    let r = aws
        .reattach(&p.execution, &p.pending, &progress, ui.stop)
        .await;
    bar.bar.finish_and_clear();
    let mut out = Reattachment {
        attempt: p.attempt,
        execution_arn: p.execution.execution_arn.clone(),
        status: None,
        waited: false,
        results: 0,
        succeeded: 0,
        lost: 0,
        interrupted: false,
        stopped: false,
    };
    match r.map_err(crate::backend::BackendError::from)? {
        Reattached::Collected {
            end,
            waited,
            collected,
        } => {
            out.status = Some(end.status);
            out.waited = waited;
            out.results = collected.results.len();
            out.succeeded = collected
                .results
                .iter()
                .flat_map(|r| &r.tasks)
                .filter(|t| t.status == propack_runtime::TaskStatus::Succeeded)
                .count();
            out.lost = collected.lost.iter().map(|(ids, _)| ids.len()).sum();
        }
        Reattached::Interrupted { stopped } => {
            out.interrupted = true;
            out.stopped = stopped;
        }
    }
    Ok(out)
}

/// Without the aws feature no run has executions to re-attach to.
#[cfg(not(feature = "aws"))]
async fn reattach(
    _backend: &crate::backend::AnyBackend,
    _dir: &Path,
    p: &journal::PendingExecution,
    _ui: Ui,
) -> Result<Reattachment, PipelineError> {
    Err(PipelineError::Usage(format!(
        "attempt {} ran a Step Functions execution: resume it with a build that has the aws feature",
        p.attempt
    )))
}

/// Rewrites the run's `run.json` and report with the merged verification and the attempts.
fn merge_into_report(dir: &Path, status: &RunStatus) -> Result<(), PipelineError> {
    let path = dir.join("run.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        // The launch was killed before its report: the journal and status are the record.
        return Ok(());
    };
    let mut report: RunReport = serde_json::from_str(&text)
        .map_err(|e| PipelineError::Usage(format!("{}: {e}", path.display())))?;
    report.run.verified = status.complete;
    report.run.failed_tasks = status.tasks - status.done;
    if status.complete {
        report.run.errors.clear();
    }
    report.attempts = status.attempts.clone();
    report.write(dir).map_err(PipelineError::io(format!(
        "writing the report in {}",
        dir.display()
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_records_round_trip_through_launch_json() {
        let local = BackendSpec::Local {
            bootstrap: "/x/bootstrap".into(),
            seed: 3,
            env: [("LAMBDA_TASK_ROOT".to_owned(), "/fn".to_owned())].into(),
            managed: Some(crate::function::ManagedFunction {
                runtime: crate::function::LambdaRuntime::Nodejs22,
                handler: "app.handler".into(),
            }),
        };
        let rec = BackendRecord::of(&local);
        let text = serde_json::to_string(&rec).unwrap();
        assert_eq!(
            text,
            r#"{"kind":"local","bootstrap":"/x/bootstrap","seed":3,"env":{"LAMBDA_TASK_ROOT":"/fn"},"managed":{"runtime":"nodejs22.x","handler":"app.handler"}}"#
        );
        let back: BackendRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(BackendRecord::of(&back.spec().unwrap()), rec);
    }

    #[test]
    fn a_directory_without_launch_json_is_a_usage_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = load(dir.path()).unwrap_err();
        assert!(
            e.is_usage() && e.to_string().contains("no launch.json"),
            "{e}"
        );
    }
}
