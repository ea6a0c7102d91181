//! Step Functions mode: create or update the state machine, start an execution with an
//! idempotent name, poll it (and its Map Run's item counts), and read the ResultWriter output.

use std::time::Duration;

use aws_sdk_sfn::types::{ExecutionStatus, StateMachineType};
use propack_runtime::BatchResult;
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use serde_json::Value;

use super::error::{AwsError, sdk_error};
use crate::backend::Progress;

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

/// Polls until the execution ends, reporting Map Run item counts as they change.
pub async fn wait_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    every: Duration,
    progress: &dyn Progress,
) -> Result<ExecutionEnd, AwsError> {
    let (mut done_ok, mut done_failed) = (0i64, 0i64);
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| {
                sdk_error(
                    &e,
                    "states:DescribeExecution",
                    execution_arn,
                    "states:DescribeExecution",
                )
            })?;
        // Map Run counts are best-effort progress: an inline Map has none, and moto lacks the API.
        if let Ok(runs) = sfn
            .list_map_runs()
            .execution_arn(execution_arn)
            .send()
            .await
        {
            let (mut ok, mut failed) = (0i64, 0i64);
            for run in runs.map_runs() {
                if let Ok(m) = sfn
                    .describe_map_run()
                    .map_run_arn(run.map_run_arn())
                    .send()
                    .await
                    && let Some(c) = m.item_counts()
                {
                    ok += c.succeeded();
                    failed += c.failed() + c.timed_out() + c.aborted();
                }
            }
            if ok > done_ok || failed > done_failed {
                let new_ok = (ok - done_ok).max(0) as usize;
                let new_failed = (failed - done_failed).max(0) as usize;
                progress.batch_done(new_ok + new_failed, new_failed);
                (done_ok, done_failed) = (ok.max(done_ok), failed.max(done_failed));
            }
        }
        if *d.status() != ExecutionStatus::Running && *d.status() != ExecutionStatus::PendingRedrive
        {
            let error = match (d.error(), d.cause()) {
                (None, None) => None,
                (e, c) => Some(format!("{}: {}", e.unwrap_or("error"), c.unwrap_or(""))),
            };
            return Ok(ExecutionEnd {
                status: d.status().as_str().to_owned(),
                output: d.output().map(str::to_owned),
                error,
            });
        }
        tokio::time::sleep(every).await;
    }
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
}
