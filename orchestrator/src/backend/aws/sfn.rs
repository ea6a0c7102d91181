//! Step Functions mode: create or update the state machine, start an execution with an
//! idempotent name, poll it (and its Map Run's item counts), and read the ResultWriter output.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, StateMachineType};
use propack_runtime::BatchResult;
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use serde_json::Value;

use super::error::{AwsError, sdk_error};
use crate::backend::{Progress, Stop};

/// Creates the state machine `name` with `definition`, or updates it if it exists.
/// Returns its ARN.
pub async fn ensure_state_machine(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
    definition: &str,
    role_arn: Option<&str>,
) -> Result<String, AwsError> {
    if let Some(arn) = find_state_machine(sfn, name).await? {
        let mut req = sfn
            .update_state_machine()
            .state_machine_arn(&arn)
            .definition(definition);
        if let Some(role) = role_arn {
            req = req.role_arn(role);
        }
        req.send().await.map_err(|e| {
            sdk_error(
                &e,
                "states:UpdateStateMachine",
                &arn,
                "states:UpdateStateMachine",
            )
        })?;
        return Ok(arn);
    }
    let role = role_arn.ok_or_else(|| {
        AwsError::Invalid(format!(
            "state machine {name:?} does not exist yet: creating it needs a role (--role-arn); \
             or run `orchestrator deploy` first"
        ))
    })?;
    let out = sfn
        .create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn(role)
        .r#type(StateMachineType::Standard)
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                &e,
                "states:CreateStateMachine",
                name,
                "states:CreateStateMachine",
            )
        })?;
    Ok(out.state_machine_arn().to_owned())
}

/// The ARN of the state machine called `name`, if any (an ARN is returned as is).
pub async fn find_state_machine(
    sfn: &aws_sdk_sfn::Client,
    name: &str,
) -> Result<Option<String>, AwsError> {
    if name.starts_with("arn:") {
        return Ok(Some(name.to_owned()));
    }
    let mut pages = sfn.list_state_machines().into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            sdk_error(
                &e,
                "states:ListStateMachines",
                name,
                "states:ListStateMachines",
            )
        })?;
        if let Some(sm) = page.state_machines().iter().find(|s| s.name() == name) {
            return Ok(Some(sm.state_machine_arn().to_owned()));
        }
    }
    Ok(None)
}

/// The execution ARN Step Functions gives execution `name` of `state_machine_arn`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// Execution names allow 80 characters of `[A-Za-z0-9_-]`; run ids are mapped onto that.
pub fn execution_name(run_id: &str) -> String {
    run_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

/// Starts execution `name`; if it already exists (a retried launch of the same run),
/// attaches to it instead of starting a second one. Returns (ARN, newly started).
pub async fn start_or_attach(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &str,
) -> Result<(String, bool), AwsError> {
    match sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input)
        .send()
        .await
    {
        Ok(out) => Ok((out.execution_arn().to_owned(), true)),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_execution_already_exists()) =>
        {
            Ok((execution_arn(state_machine_arn, name), false))
        }
        Err(e) => Err(sdk_error(
            &e,
            "states:StartExecution",
            state_machine_arn,
            "states:StartExecution",
        )),
    }
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecutionEnd {
    /// SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
    pub status: String,
    /// The execution's output JSON, if it succeeded.
    pub output: Option<String>,
    /// Error and cause, if it failed.
    pub error: Option<String>,
}

/// An execution as DescribeExecution shows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionState {
    /// Still running; with its Map Runs' item counts so far (succeeded, failed), when known.
    Running(Option<(u64, u64)>),
    /// It ended.
    Ended(ExecutionEnd),
}

/// The Step Functions and S3 calls that waiting for an execution and collecting its
/// results make: the SDK's ([`SdkExecutions`]), or a script in tests.
pub trait Executions {
    /// Where execution `arn` stands.
    fn describe(
        &self,
        arn: &str,
    ) -> impl std::future::Future<Output = Result<ExecutionState, AwsError>>;
    /// Asks execution `arn` to stop (StopExecution).
    fn stop(&self, arn: &str) -> impl std::future::Future<Output = Result<(), AwsError>>;
    /// The iteration results of an ended execution: its ResultWriter files under
    /// `results_prefix`, else (an inline Map) its output.
    fn results(
        &self,
        results_prefix: &S3Uri,
        end: &ExecutionEnd,
    ) -> impl std::future::Future<Output = Result<Vec<IterationResult>, AwsError>>;
}

/// [`Executions`] through the SDK clients.
#[derive(Debug, Clone)]
pub struct SdkExecutions {
    /// Step Functions.
    pub sfn: aws_sdk_sfn::Client,
    /// S3, for the ResultWriter files.
    pub store: S3Store,
}

impl Executions for SdkExecutions {
    async fn describe(&self, arn: &str) -> Result<ExecutionState, AwsError> {
        let d = self
            .sfn
            .describe_execution()
            .execution_arn(arn)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &e,
                    "states:DescribeExecution",
                    arn,
                    "states:DescribeExecution",
                )
            })?;
        if *d.status() != ExecutionStatus::Running && *d.status() != ExecutionStatus::PendingRedrive
        {
            let error = match (d.error(), d.cause()) {
                (None, None) => None,
                (e, c) => Some(format!("{}: {}", e.unwrap_or("error"), c.unwrap_or(""))),
            };
            return Ok(ExecutionState::Ended(ExecutionEnd {
                status: d.status().as_str().to_owned(),
                output: d.output().map(str::to_owned),
                error,
            }));
        }
        // Map Run counts are best-effort progress: an inline Map has none, and moto lacks the API.
        let Ok(runs) = self.sfn.list_map_runs().execution_arn(arn).send().await else {
            return Ok(ExecutionState::Running(None));
        };
        let (mut ok, mut failed) = (0u64, 0u64);
        for run in runs.map_runs() {
            if let Ok(m) = self
                .sfn
                .describe_map_run()
                .map_run_arn(run.map_run_arn())
                .send()
                .await
                && let Some(c) = m.item_counts()
            {
                ok += c.succeeded().max(0) as u64;
                failed += (c.failed() + c.timed_out() + c.aborted()).max(0) as u64;
            }
        }
        Ok(ExecutionState::Running(Some((ok, failed))))
    }

    async fn stop(&self, arn: &str) -> Result<(), AwsError> {
        self.sfn
            .stop_execution()
            .execution_arn(arn)
            .cause("orchestrator interrupted (--stop-on-interrupt)")
            .send()
            .await
            .map_err(|e| sdk_error(&e, "states:StopExecution", arn, "states:StopExecution"))?;
        Ok(())
    }

    async fn results(
        &self,
        results_prefix: &S3Uri,
        end: &ExecutionEnd,
    ) -> Result<Vec<IterationResult>, AwsError> {
        Ok(
            match read_result_writer(&self.store, results_prefix).await? {
                Some(r) => r,
                None => results_from_output(end.output.as_deref().unwrap_or("[]")),
            },
        )
    }
}

/// How a wait for an execution ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Waited {
    /// The execution ended.
    Ended(ExecutionEnd),
    /// The user interrupted the wait (the execution may still be running).
    Interrupted,
}

/// Polls `arn` every `every` until it ends or `stop` is requested, reporting Map Run item
/// counts as they change.
pub async fn wait_execution(
    api: &impl Executions,
    arn: &str,
    every: Duration,
    progress: &dyn Progress,
    stop: Stop,
) -> Result<Waited, AwsError> {
    let (mut done_ok, mut done_failed) = (0u64, 0u64);
    loop {
        match api.describe(arn).await? {
            ExecutionState::Ended(end) => return Ok(Waited::Ended(end)),
            ExecutionState::Running(counts) => {
                if let Some((ok, failed)) = counts
                    && (ok > done_ok || failed > done_failed)
                {
                    let new_ok = ok.saturating_sub(done_ok) as usize;
                    let new_failed = failed.saturating_sub(done_failed) as usize;
                    progress.batch_done(new_ok + new_failed, new_failed);
                    (done_ok, done_failed) = (ok.max(done_ok), failed.max(done_failed));
                }
            }
        }
        if stop.requested() {
            return Ok(Waited::Interrupted);
        }
        tokio::time::sleep(every).await;
    }
}

/// What an ended execution adds to its attempt's journal.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    /// Batch results whose tasks the journal has not ended yet.
    pub results: Vec<BatchResult>,
    /// Batches without a result (task ids, why), including the tasks the execution
    /// ended without saying anything about.
    pub lost: Vec<(Vec<String>, String)>,
}

/// Sorts an ended execution's iterations into what the journal lacks: every iteration
/// touching a `pending` task (a task of the attempt with no end in the journal yet), and
/// one lost batch of the pending tasks no iteration names. Iterations whose tasks are
/// already ended were journalled before (a collection cut short) and are skipped, so that
/// no result is journalled twice.
pub fn collect(
    end: &ExecutionEnd,
    iterations: &[IterationResult],
    pending: &BTreeSet<String>,
) -> Collected {
    let mut out = Collected::default();
    let mut left = pending.clone();
    for it in iterations {
        let ids: Vec<String> = match &it.result {
            Some(r) => r.tasks.iter().map(|t| t.id.clone()).collect(),
            None => it.task_ids.clone(),
        };
        if !ids.iter().any(|id| left.contains(id)) {
            continue;
        }
        for id in &ids {
            left.remove(id);
        }
        match &it.result {
            Some(r) => out.results.push(r.clone()),
            None => out.lost.push((
                ids,
                it.error
                    .clone()
                    .unwrap_or_else(|| "the child execution failed".into()),
            )),
        }
    }
    if !left.is_empty() {
        let why = match &end.error {
            Some(e) => format!(
                "the execution ended {} ({e}) without a result for these tasks",
                end.status
            ),
            None => format!(
                "the execution ended {} without a result for these tasks",
                end.status
            ),
        };
        out.lost.push((left.into_iter().collect(), why));
    }
    out
}

/// What re-attaching to an execution found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reattached {
    /// The execution had ended, or ended while waited for, and its results were collected.
    Collected {
        /// How it ended.
        end: ExecutionEnd,
        /// Whether it was still running when re-attached (and was waited for).
        waited: bool,
        /// What the journal lacked (already passed to the progress).
        collected: Collected,
    },
    /// The user interrupted the wait; `stopped`: StopExecution was called.
    Interrupted {
        /// Whether the execution was asked to stop.
        stopped: bool,
    },
}

/// Re-attaches to execution `arn` of an earlier attempt: waits for it while it runs (unless
/// interrupted, when it is left running or, with `stop_on_interrupt`, stopped), then reads
/// its results and passes what the journal lacks ([`collect`]) to `progress`.
#[allow(clippy::too_many_arguments)]
pub async fn reattach(
    api: &impl Executions,
    arn: &str,
    results_prefix: &S3Uri,
    pending: &BTreeSet<String>,
    every: Duration,
    progress: &dyn Progress,
    stop: Stop,
    stop_on_interrupt: bool,
) -> Result<Reattached, AwsError> {
    let (end, waited) = match api.describe(arn).await? {
        ExecutionState::Ended(end) => (end, false),
        ExecutionState::Running(_) => {
            progress.note(&format!(
                "the execution {arn} is still running: waiting for it (Ctrl-C to stop waiting)"
            ));
            match wait_execution(api, arn, every, progress, stop).await? {
                Waited::Ended(end) => (end, true),
                Waited::Interrupted => {
                    if stop_on_interrupt {
                        api.stop(arn).await?;
                    }
                    progress.execution_left(arn, stop_on_interrupt);
                    return Ok(Reattached::Interrupted {
                        stopped: stop_on_interrupt,
                    });
                }
            }
        }
    };
    let iterations = api.results(results_prefix, &end).await?;
    let collected = collect(&end, &iterations, pending);
    for r in &collected.results {
        progress.batch_result(r);
    }
    for (ids, why) in &collected.lost {
        progress.batch_lost(ids, why);
    }
    Ok(Reattached::Collected {
        end,
        waited,
        collected,
    })
}

/// One Map iteration's result as ResultWriter stored it.
#[derive(Debug, Clone, PartialEq)]
pub struct IterationResult {
    /// The batch result, if the iteration succeeded and returned one.
    pub result: Option<BatchResult>,
    /// The task ids of the batch (from the iteration's input).
    pub task_ids: Vec<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// A batch result from a Map iteration's output: either the runtime's result itself, or
/// the raw `lambda:invoke` integration output with the result under `Payload`.
pub fn batch_result_of(output: &Value) -> Option<BatchResult> {
    let v = output.get("Payload").unwrap_or(output);
    serde_json::from_value(v.clone()).ok()
}

fn task_ids_of(input: &Value) -> Vec<String> {
    let items = input.get("Items").or_else(|| input.get("tasks"));
    items
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("id").and_then(Value::as_str).map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn parse_json_string(v: Option<&Value>) -> Value {
    match v {
        Some(Value::String(s)) => serde_json::from_str(s).unwrap_or(Value::Null),
        Some(other) => other.clone(),
        None => Value::Null,
    }
}

/// Parses one ResultWriter results file (a JSON array of child executions).
pub fn parse_results_file(bytes: &[u8]) -> Result<Vec<IterationResult>, AwsError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| AwsError::Invalid(format!("ResultWriter file is not JSON: {e}")))?;
    let arr = v
        .as_array()
        .ok_or_else(|| AwsError::Invalid("ResultWriter file is not a JSON array".into()))?;
    Ok(arr
        .iter()
        .map(|entry| {
            let output = parse_json_string(entry.get("Output"));
            let input = parse_json_string(entry.get("Input"));
            let status = entry
                .get("Status")
                .and_then(Value::as_str)
                .unwrap_or("SUCCEEDED");
            let result = if status == "SUCCEEDED" {
                batch_result_of(&output)
            } else {
                None
            };
            let error = if result.is_some() {
                None
            } else {
                Some(format!(
                    "{status}: {} {}",
                    entry.get("Error").and_then(Value::as_str).unwrap_or(""),
                    entry.get("Cause").and_then(Value::as_str).unwrap_or("")
                ))
            };
            IterationResult {
                result,
                task_ids: task_ids_of(&input),
                error,
            }
        })
        .collect())
}

/// Reads every ResultWriter results file under `results_prefix` (via each Map Run's
/// `manifest.json`). Returns `None` when there is no ResultWriter output (an inline Map).
pub async fn read_result_writer(
    store: &S3Store,
    results_prefix: &S3Uri,
) -> Result<Option<Vec<IterationResult>>, AwsError> {
    let keys = store.list(results_prefix).await?;
    let manifests: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with("/manifest.json"))
        .collect();
    if manifests.is_empty() {
        return Ok(None);
    }
    let mut out = Vec::new();
    for m in manifests {
        let uri = S3Uri::new(results_prefix.bucket(), m.as_str());
        let v: Value = serde_json::from_slice(&store.get_bytes(&uri).await?)
            .map_err(|e| AwsError::Invalid(format!("{uri}: not JSON: {e}")))?;
        let files = v
            .get("ResultFiles")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (_status, list) in files {
            for f in list.as_array().into_iter().flatten() {
                if let Some(key) = f.get("Key").and_then(Value::as_str) {
                    let file = S3Uri::new(results_prefix.bucket(), key);
                    out.extend(parse_results_file(&store.get_bytes(&file).await?)?);
                }
            }
        }
    }
    Ok(Some(out))
}

/// Iteration results from an inline Map's execution output (a JSON array of batch results).
pub fn results_from_output(output: &str) -> Vec<IterationResult> {
    let v: Value = serde_json::from_str(output).unwrap_or(Value::Null);
    let arr = match &v {
        Value::Array(a) => a.clone(),
        Value::Object(o) => o
            .values()
            .find_map(|x| x.as_array().cloned())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    arr.iter()
        .map(|o| {
            let result = batch_result_of(o);
            IterationResult {
                task_ids: result
                    .as_ref()
                    .map(|r| r.tasks.iter().map(|t| t.id.clone()).collect())
                    .unwrap_or_default(),
                error: result
                    .is_none()
                    .then(|| format!("unreadable iteration output: {o}")),
                result,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use serde_json::json;

    fn result_json(id: &str) -> Value {
        json!({"schema_version": 1, "instance_id": "i-1", "cold_start": true, "init_ms": 5,
               "received_at": 1000, "started_at": 1001, "ended_at": 1500, "vcpus": 6, "parallelism": 2,
               "tasks": [{"id": id, "status": "succeeded", "exit_code": 0, "started_at": 1001, "ended_at": 1400,
                          "cpu_ms": 1, "max_rss_kb": 1, "stdout_tail": "", "stderr_tail": ""}]})
    }

    #[test]
    fn names_and_arns() {
        assert_eq!(execution_name("run 2024/01:x"), "run_2024_01_x");
        assert_eq!(execution_name(&"a".repeat(100)).len(), 80);
        assert_eq!(
            execution_arn("arn:aws:states:us-east-1:123:stateMachine:propack", "r1"),
            "arn:aws:states:us-east-1:123:execution:propack:r1"
        );
    }

    #[test]
    fn result_writer_files_parse_both_output_shapes() {
        let file = json!([
            {"Status": "SUCCEEDED", "Input": json!({"Items": [{"id": "a"}]}).to_string(),
             "Output": result_json("a").to_string()},
            {"Status": "SUCCEEDED", "Input": json!({"Items": [{"id": "b"}]}).to_string(),
             "Output": json!({"Payload": result_json("b"), "StatusCode": 200}).to_string()},
            {"Status": "FAILED", "Input": json!({"Items": [{"id": "c"}, {"id": "d"}]}).to_string(),
             "Error": "Lambda.Unknown", "Cause": "boom"}
        ]);
        let r = parse_results_file(file.to_string().as_bytes()).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].result.as_ref().unwrap().tasks[0].id, "a");
        assert_eq!(r[1].result.as_ref().unwrap().tasks[0].id, "b");
        assert!(r[2].result.is_none());
        assert_eq!(r[2].task_ids, vec!["c", "d"]);
        assert!(r[2].error.as_ref().unwrap().contains("boom"));
        assert!(parse_results_file(b"{}").is_err());
    }

    #[test]
    fn inline_output_is_an_array_of_results() {
        let out = json!([result_json("x"), result_json("y")]).to_string();
        let r = results_from_output(&out);
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].task_ids, vec!["y"]);
    }

    /// A Step Functions "account" that answers DescribeExecution from a script (the last
    /// state repeats) and counts the calls.
    struct Script {
        states: std::sync::Mutex<std::collections::VecDeque<ExecutionState>>,
        iterations: Vec<IterationResult>,
        described: AtomicUsize,
        stopped: AtomicUsize,
        read: AtomicUsize,
    }

    impl Script {
        fn new(states: Vec<ExecutionState>, iterations: Vec<IterationResult>) -> Self {
            Self {
                states: std::sync::Mutex::new(states.into()),
                iterations,
                described: AtomicUsize::new(0),
                stopped: AtomicUsize::new(0),
                read: AtomicUsize::new(0),
            }
        }
    }

    impl Executions for Script {
        async fn describe(&self, arn: &str) -> Result<ExecutionState, AwsError> {
            assert_eq!(arn, ARN);
            self.described.fetch_add(1, Ordering::SeqCst);
            let mut q = self.states.lock().unwrap();
            Ok(if q.len() > 1 {
                q.pop_front().unwrap()
            } else {
                q[0].clone()
            })
        }

        async fn stop(&self, arn: &str) -> Result<(), AwsError> {
            assert_eq!(arn, ARN);
            self.stopped.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }

        async fn results(
            &self,
            prefix: &S3Uri,
            _end: &ExecutionEnd,
        ) -> Result<Vec<IterationResult>, AwsError> {
            assert_eq!(prefix.to_string(), "s3://b/propack/runs/r/results/");
            self.read.fetch_add(1, Ordering::SeqCst);
            Ok(self.iterations.clone())
        }
    }

    /// What the journal and the user would have been given.
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<String>>);

    impl Progress for Seen {
        fn batch_done(&self, tasks: usize, failed: usize) {
            self.0
                .lock()
                .unwrap()
                .push(format!("done {tasks}/{failed}"));
        }
        fn batch_result(&self, r: &BatchResult) {
            let ids: Vec<String> = r
                .tasks
                .iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t.id,
                        serde_json::to_value(t.status).unwrap().as_str().unwrap()
                    )
                })
                .collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("result {}", ids.join(",")));
        }
        fn batch_lost(&self, ids: &[String], why: &str) {
            self.0
                .lock()
                .unwrap()
                .push(format!("lost {} ({why})", ids.join(",")));
        }
        fn execution_left(&self, arn: &str, stopped: bool) {
            self.0
                .lock()
                .unwrap()
                .push(format!("left {arn} stopped={stopped}"));
        }
        fn note(&self, text: &str) {
            self.0.lock().unwrap().push(format!("note {text}"));
        }
    }

    const ARN: &str = "arn:aws:states:us-east-1:1:execution:sm:r";

    fn batch(tasks: &[(&str, &str)]) -> IterationResult {
        let records: Vec<Value> = tasks
            .iter()
            .map(|(id, status)| {
                json!({"id": id, "status": status, "started_at": 1, "ended_at": 2,
                       "stdout_tail": "", "stderr_tail": ""})
            })
            .collect();
        let mut r = result_json("x");
        r["tasks"] = Value::Array(records);
        IterationResult {
            result: Some(serde_json::from_value(r).unwrap()),
            task_ids: tasks.iter().map(|(id, _)| id.to_string()).collect(),
            error: None,
        }
    }

    fn failed_batch(ids: &[&str], why: &str) -> IterationResult {
        IterationResult {
            result: None,
            task_ids: ids.iter().map(|s| s.to_string()).collect(),
            error: Some(why.into()),
        }
    }

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn end(status: &str, error: Option<&str>) -> ExecutionEnd {
        ExecutionEnd {
            status: status.into(),
            output: None,
            error: error.map(str::to_owned),
        }
    }

    fn prefix() -> S3Uri {
        S3Uri::parse("s3://b/propack/runs/r/results/").unwrap()
    }

    #[tokio::test]
    async fn a_running_execution_is_waited_for_then_only_what_the_journal_lacks_is_collected() {
        let script = Script::new(
            vec![
                ExecutionState::Running(None),
                ExecutionState::Running(Some((2, 0))),
                ExecutionState::Running(Some((2, 0))),
                ExecutionState::Ended(end("SUCCEEDED", None)),
            ],
            vec![
                batch(&[("a", "succeeded"), ("b", "succeeded")]),
                // Journalled before the orchestrator died: not again.
                batch(&[("g", "succeeded"), ("h", "succeeded")]),
                batch(&[("c", "succeeded"), ("d", "failed")]),
                failed_batch(&["e", "f"], "FAILED: Lambda.Unknown boom"),
            ],
        );
        let seen = Seen::default();
        let pending = ids(&["a", "b", "c", "d", "e", "f", "i"]);
        let r = reattach(
            &script,
            ARN,
            &prefix(),
            &pending,
            Duration::ZERO,
            &seen,
            Stop::NEVER,
            false,
        )
        .await
        .unwrap();
        let Reattached::Collected {
            end: e,
            waited,
            collected,
        } = r
        else {
            panic!("{r:?}")
        };
        assert_eq!(e.status, "SUCCEEDED");
        assert!(waited);
        assert_eq!(collected.results.len(), 2);
        assert_eq!(collected.lost.len(), 2);
        assert_eq!(
            script.described.load(Ordering::SeqCst),
            4,
            "polled until it ended"
        );
        assert_eq!(script.read.load(Ordering::SeqCst), 1);
        assert_eq!(script.stopped.load(Ordering::SeqCst), 0);
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![
                format!(
                    "note the execution {ARN} is still running: waiting for it (Ctrl-C to stop waiting)"
                ),
                "done 2/0".to_owned(),
                "result a:succeeded,b:succeeded".to_owned(),
                "result c:succeeded,d:failed".to_owned(),
                "lost e,f (FAILED: Lambda.Unknown boom)".to_owned(),
                "lost i (the execution ended SUCCEEDED without a result for these tasks)"
                    .to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn an_ended_execution_is_collected_at_once_and_its_silent_tasks_are_lost() {
        let script = Script::new(
            vec![ExecutionState::Ended(end(
                "ABORTED",
                Some("States.Aborted: stopped"),
            ))],
            vec![batch(&[("a", "succeeded")])],
        );
        let seen = Seen::default();
        let r = reattach(
            &script,
            ARN,
            &prefix(),
            &ids(&["a", "b", "c"]),
            Duration::ZERO,
            &seen,
            Stop::NEVER,
            true,
        )
        .await
        .unwrap();
        assert!(
            matches!(&r, Reattached::Collected { waited: false, .. }),
            "{r:?}"
        );
        assert_eq!(script.described.load(Ordering::SeqCst), 1);
        assert_eq!(
            script.stopped.load(Ordering::SeqCst),
            0,
            "an ended execution is never stopped"
        );
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![
                "result a:succeeded".to_owned(),
                "lost b,c (the execution ended ABORTED (States.Aborted: stopped) without a result for these tasks)".to_owned(),
            ]
        );
    }

    #[tokio::test]
    async fn an_interrupted_wait_leaves_the_execution_running_unless_asked_to_stop_it() {
        static INTERRUPTED: AtomicBool = AtomicBool::new(true);
        for stop_it in [false, true] {
            let script = Script::new(vec![ExecutionState::Running(None)], Vec::new());
            let seen = Seen::default();
            let r = reattach(
                &script,
                ARN,
                &prefix(),
                &ids(&["a"]),
                Duration::ZERO,
                &seen,
                Stop::new(&INTERRUPTED),
                stop_it,
            )
            .await
            .unwrap();
            assert_eq!(r, Reattached::Interrupted { stopped: stop_it });
            assert_eq!(script.stopped.load(Ordering::SeqCst), usize::from(stop_it));
            assert_eq!(
                script.read.load(Ordering::SeqCst),
                0,
                "nothing is collected"
            );
            let seen = seen.0.lock().unwrap();
            assert_eq!(seen.len(), 2, "{seen:?}");
            assert_eq!(seen[1], format!("left {ARN} stopped={stop_it}"));
        }
    }

    #[tokio::test]
    async fn a_wait_reports_new_map_run_counts_once() {
        let script = Script::new(
            vec![
                ExecutionState::Running(Some((1, 0))),
                ExecutionState::Running(Some((1, 0))),
                ExecutionState::Running(Some((3, 1))),
                ExecutionState::Ended(end(
                    "FAILED",
                    Some("States.ExceedToleratedFailureThreshold: x"),
                )),
            ],
            Vec::new(),
        );
        let seen = Seen::default();
        let w = wait_execution(&script, ARN, Duration::ZERO, &seen, Stop::NEVER)
            .await
            .unwrap();
        assert_eq!(
            w,
            Waited::Ended(end(
                "FAILED",
                Some("States.ExceedToleratedFailureThreshold: x")
            ))
        );
        assert_eq!(*seen.0.lock().unwrap(), vec!["done 1/0", "done 3/1"]);
    }
}
