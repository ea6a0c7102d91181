//! The wire contract between the orchestrator, Step Functions and the packed runtime.
//!
//! Everything here depends on `serde` only, so the orchestrator (and any script
//! author reading the JSON) can rely on it without pulling in the executor.
//!
//! A batch arrives in one of three shapes, because that is what real callers send:
//!
//! 1. Step Functions Distributed Map with `ItemBatcher`: `{"Items": [...], "BatchInput": {...}}`;
//! 2. the same with the `BatchInput` fields merged at the top level next to `Items`;
//! 3. a direct invoke: `{"run_id": ..., "tasks": [...], ...}`.
//!
//! [`Batch::from_value`] normalises all three; [`Batch`] serialises as shape 3.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of [`BatchResult`]; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Default upper bound on the number of tasks in one batch (the packing degree k).
pub const DEFAULT_MAX_TASKS: usize = 1024;

/// Bound on the captured tail of each task's stdout and stderr.
pub const OUTPUT_TAIL_BYTES: usize = 4096;

/// A malformed batch: always names the offending field.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContractError {
    /// The payload is not a JSON object.
    #[error("batch payload must be a JSON object, got {0}")]
    NotAnObject(&'static str),
    /// Neither `Items` nor `tasks` is present.
    #[error(
        "batch has no task list: expected field `Items` (Step Functions) or `tasks` (direct invoke)"
    )]
    MissingTasks,
    /// The task list is present but empty.
    #[error("field `{0}` is empty: a batch needs at least one task")]
    EmptyTasks(&'static str),
    /// Two tasks share an id.
    #[error("field `{field}[{index}].id`: duplicate task id {id:?}")]
    DuplicateId {
        /// `Items` or `tasks`.
        field: &'static str,
        /// Position of the second occurrence.
        index: usize,
        /// The repeated id.
        id: String,
    },
    /// More tasks than the configured maximum.
    #[error(
        "field `{field}` has {count} tasks, above the configured maximum of {max} (PROPACK_MAX_TASKS)"
    )]
    TooManyTasks {
        /// `Items` or `tasks`.
        field: &'static str,
        /// Tasks in the batch.
        count: usize,
        /// The configured limit.
        max: usize,
    },
    /// A field has the wrong type or an invalid value.
    #[error("field `{field}`: {message}")]
    InvalidField {
        /// JSON path of the field, e.g. `tasks[3].exec.args`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// How to parse a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseOptions {
    /// Largest accepted packing degree.
    pub max_tasks: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_tasks: DEFAULT_MAX_TASKS,
        }
    }
}

/// One packed batch of k tasks, as executed by one function instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The run this batch belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Position or name of this batch within the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Where outputs of this run go (URI prefix), for tasks that do not name their outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    /// Worker count override for this batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
    /// The k tasks.
    pub tasks: Vec<Task>,
}

/// Fields the orchestrator passes to every batch of a run (Step Functions `BatchInput`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchInput {
    /// The run id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Batch name, if the caller assigns one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Output URI prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_prefix: Option<String>,
    /// Worker count override.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<usize>,
}

/// One task: an id, what to run, and the objects it reads and writes.
///
/// On the wire the action is one of the keys `exec` or `builtin` next to `id`
/// (`{"id": "t1", "exec": {...}}`); in Rust it is the [`TaskAction`] enum, so
/// "exactly one action" holds by construction instead of being checked at run time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskWire", into = "TaskWire")]
pub struct Task {
    /// Unique within the batch (and, by the orchestrator's convention, within the run).
    pub id: String,
    /// What the task runs.
    pub action: TaskAction,
    /// Per-task timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// File name in the task's scratch directory → URI fetched before the task starts.
    pub inputs: BTreeMap<String, String>,
    /// File name in the task's scratch directory → URI uploaded after the task succeeds.
    pub outputs: BTreeMap<String, String>,
}

/// What a task runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskAction {
    /// A subprocess (`"exec": {...}`).
    Exec(ExecSpec),
    /// An in-process built-in (`"builtin": {...}`).
    Builtin(BuiltinSpec),
}

/// An executable task: direct exec of `program` with `args` (never through a shell).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecSpec {
    /// Path or name (looked up in `PATH`) of the program.
    pub program: String,
    /// The argv after the program name.
    #[serde(default)]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
}

/// A built-in workload task, run in-process on the rayon pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinSpec {
    /// Workload name: `sort`, `statelesscost`, `video`, or a test workload.
    pub name: String,
    /// Workload parameters, validated by the workload.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub params: Value,
}

/// `field` of the task at `path` (empty for a lone task) is invalid.
fn invalid_at(path: &str, field: &str, message: &str) -> ContractError {
    ContractError::InvalidField {
        field: if path.is_empty() {
            field.to_owned()
        } else {
            format!("{path}.{field}")
        },
        message: message.to_owned(),
    }
}

/// The JSON shape of a [`Task`]: the action as optional sibling keys.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct TaskWire {
    id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exec: Option<ExecSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    builtin: Option<BuiltinSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    inputs: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    outputs: BTreeMap<String, String>,
}

impl TaskWire {
    /// The typed task, with every invariant checked; `path` names the task in errors.
    fn into_task(self, path: &str) -> Result<Task, ContractError> {
        let invalid = |field: &str, message: &str| invalid_at(path, field, message);
        let action = match (self.exec, self.builtin) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "exec",
                    "a task has either `exec` or `builtin`, not both",
                ));
            }
            (None, None) => {
                return Err(invalid(
                    "exec",
                    "missing: a task needs `exec` {program, args, env} or `builtin` {name, params}",
                ));
            }
            (Some(e), None) => TaskAction::Exec(e),
            (None, Some(b)) => TaskAction::Builtin(b),
        };
        let task = Task {
            id: self.id,
            action,
            timeout_ms: self.timeout_ms,
            inputs: self.inputs,
            outputs: self.outputs,
        };
        task.validate(path)?;
        Ok(task)
    }
}

impl TryFrom<TaskWire> for Task {
    type Error = ContractError;
    fn try_from(w: TaskWire) -> Result<Self, Self::Error> {
        w.into_task("")
    }
}

impl From<Task> for TaskWire {
    fn from(t: Task) -> Self {
        let (exec, builtin) = match t.action {
            TaskAction::Exec(e) => (Some(e), None),
            TaskAction::Builtin(b) => (None, Some(b)),
        };
        TaskWire {
            id: t.id,
            exec,
            builtin,
            timeout_ms: t.timeout_ms,
            inputs: t.inputs,
            outputs: t.outputs,
        }
    }
}

impl Task {
    /// A task with no timeout, inputs or outputs.
    pub fn new(id: impl Into<String>, action: TaskAction) -> Self {
        Self {
            id: id.into(),
            action,
            timeout_ms: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::new(),
        }
    }

    /// The built-in spec, if this is a built-in task.
    pub fn builtin(&self) -> Option<&BuiltinSpec> {
        match &self.action {
            TaskAction::Builtin(b) => Some(b),
            _ => None,
        }
    }

    /// The exec spec, if this is an executable task.
    pub fn exec(&self) -> Option<&ExecSpec> {
        match &self.action {
            TaskAction::Exec(e) => Some(e),
            _ => None,
        }
    }

    /// Checks the invariants serde cannot express; `path` names the task in errors.
    pub fn validate(&self, path: &str) -> Result<(), ContractError> {
        let invalid = |field: &str, message: &str| invalid_at(path, field, message);
        if self.id.is_empty() {
            return Err(invalid("id", "must be a non-empty string"));
        }
        match &self.action {
            TaskAction::Exec(e) if e.program.is_empty() => {
                return Err(invalid("exec.program", "must be a non-empty string"));
            }
            TaskAction::Builtin(b) if b.name.is_empty() => {
                return Err(invalid("builtin.name", "must be a non-empty string"));
            }
            _ => {}
        }
        if self.timeout_ms == Some(0) {
            return Err(invalid("timeout_ms", "must be positive"));
        }
        for (kind, map) in [("inputs", &self.inputs), ("outputs", &self.outputs)] {
            for (name, uri) in map {
                if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                    return Err(invalid(
                        kind,
                        &format!("{name:?} must be a plain file name in the scratch directory"),
                    ));
                }
                if let Err(e) = crate::uri::ObjectUri::parse(uri) {
                    return Err(invalid(&format!("{kind}.{name}"), &e.to_string()));
                }
            }
        }
        Ok(())
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn field_error(field: impl Into<String>, e: serde_json::Error) -> ContractError {
    ContractError::InvalidField {
        field: field.into(),
        message: e.to_string(),
    }
}

impl Batch {
    /// Parses a JSON payload in any of the three accepted shapes.
    pub fn from_value(value: &Value, opts: &ParseOptions) -> Result<Self, ContractError> {
        let obj = value
            .as_object()
            .ok_or_else(|| ContractError::NotAnObject(type_name(value)))?;
        let (field, list) = if let Some(items) = obj.get("Items") {
            ("Items", items)
        } else if let Some(tasks) = obj.get("tasks") {
            ("tasks", tasks)
        } else {
            return Err(ContractError::MissingTasks);
        };
        let list = list.as_array().ok_or_else(|| ContractError::InvalidField {
            field: field.to_owned(),
            message: format!("must be an array of tasks, got {}", type_name(list)),
        })?;
        if list.is_empty() {
            return Err(ContractError::EmptyTasks(field));
        }
        if list.len() > opts.max_tasks {
            return Err(ContractError::TooManyTasks {
                field,
                count: list.len(),
                max: opts.max_tasks,
            });
        }

        // Shape 1 nests the run-wide fields under BatchInput; shapes 2 and 3 carry
        // them at the top level. Nested values win over top-level ones.
        let mut input: BatchInput = serde_json::from_value(Value::Object(obj.clone()))
            .map_err(|e| field_error("(top level)", e))?;
        if let Some(bi) = obj.get("BatchInput") {
            if !bi.is_object() {
                return Err(ContractError::InvalidField {
                    field: "BatchInput".into(),
                    message: format!("must be an object, got {}", type_name(bi)),
                });
            }
            let nested: BatchInput =
                serde_json::from_value(bi.clone()).map_err(|e| field_error("BatchInput", e))?;
            input.run_id = nested.run_id.or(input.run_id);
            input.batch_id = nested.batch_id.or(input.batch_id);
            input.output_prefix = nested.output_prefix.or(input.output_prefix);
            input.parallelism = nested.parallelism.or(input.parallelism);
        }
        if input.parallelism == Some(0) {
            return Err(ContractError::InvalidField {
                field: "parallelism".into(),
                message: "must be at least 1".into(),
            });
        }

        let mut tasks = Vec::with_capacity(list.len());
        let mut seen = BTreeSet::new();
        for (index, raw) in list.iter().enumerate() {
            let path = format!("{field}[{index}]");
            let wire: TaskWire =
                serde_json::from_value(raw.clone()).map_err(|e| field_error(path.clone(), e))?;
            let task = wire.into_task(&path)?;
            if !seen.insert(task.id.clone()) {
                return Err(ContractError::DuplicateId {
                    field,
                    index,
                    id: task.id,
                });
            }
            tasks.push(task);
        }
        Ok(Batch {
            run_id: input.run_id,
            batch_id: input.batch_id,
            output_prefix: input.output_prefix,
            parallelism: input.parallelism,
            tasks,
        })
    }

    /// Parses a JSON payload from bytes.
    pub fn from_slice(bytes: &[u8], opts: &ParseOptions) -> Result<Self, ContractError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| field_error("(payload)", e))?;
        Self::from_value(&value, opts)
    }

    /// The direct-invoke form (shape 3) of this batch.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a batch always serialises")
    }
}

/// Outcome of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Exit code 0 (or a built-in returned Ok) and every output uploaded.
    Succeeded,
    /// Non-zero exit, signal, panic, bad input, or a failed transfer.
    Failed,
    /// Killed at its own timeout or at the invocation deadline.
    TimedOut,
    /// Never started, because the deadline came first.
    NotRun,
}

/// The result of one task within a [`BatchResult`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    /// The task's id.
    pub id: String,
    /// Outcome.
    pub status: TaskStatus,
    /// Exit code of a subprocess (None for built-ins, signals and tasks not run).
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Signal that ended a subprocess, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Unix epoch milliseconds.
    #[serde(default)]
    pub started_at: Option<u64>,
    /// Unix epoch milliseconds.
    #[serde(default)]
    pub ended_at: Option<u64>,
    /// User + system CPU time.
    #[serde(default)]
    pub cpu_ms: Option<u64>,
    /// Peak resident set size.
    #[serde(default)]
    pub max_rss_kb: Option<u64>,
    /// Last ≤ 4 KiB of stdout (lossy UTF-8).
    #[serde(default)]
    pub stdout_tail: String,
    /// Last ≤ 4 KiB of stderr (lossy UTF-8).
    #[serde(default)]
    pub stderr_tail: String,
    /// Why the task did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Output URIs written, by file name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, String>,
    /// Built-in workloads may report a small JSON summary (e.g. record counts).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub summary: Value,
}

impl TaskResult {
    /// A result for a task that never started.
    pub fn not_run(id: impl Into<String>, why: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            status: TaskStatus::NotRun,
            exit_code: None,
            signal: None,
            started_at: None,
            ended_at: None,
            cpu_ms: None,
            max_rss_kb: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            error: Some(why.into()),
            outputs: BTreeMap::new(),
            summary: Value::Null,
        }
    }
}

/// What one invocation returns: one [`TaskResult`] per task, plus instance facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResult {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The run id from the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// The batch id from the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_id: Option<String>,
    /// Stable for the life of the process, so warm reuse is visible.
    pub instance_id: String,
    /// First invocation handled by this process.
    pub cold_start: bool,
    /// Milliseconds from process start until it was ready for its first event.
    pub init_ms: u64,
    /// Unix epoch ms when the invocation was received.
    pub received_at: u64,
    /// Unix epoch ms when the first task started (or the batch was set up).
    pub started_at: u64,
    /// Unix epoch ms when the last task ended.
    pub ended_at: u64,
    /// vCPUs this process may use.
    pub vcpus: usize,
    /// Worker count used for this batch.
    pub parallelism: usize,
    /// Memory configured for the function, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// Lambda request id, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// One result per task, in batch order.
    pub tasks: Vec<TaskResult>,
}

impl BatchResult {
    /// Tasks with the given status.
    pub fn count(&self, status: TaskStatus) -> usize {
        self.tasks.iter().filter(|t| t.status == status).count()
    }
}

/// A batch-level failure, shaped like Lambda's own error payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// E.g. `InvalidBatch`, `Runtime.InitError`.
    #[serde(rename = "errorType")]
    pub error_type: String,
    /// Human-readable message.
    #[serde(rename = "errorMessage")]
    pub error_message: String,
}

impl ErrorPayload {
    /// Builds an error payload.
    pub fn new(error_type: impl Into<String>, error_message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            error_message: error_message.into(),
        }
    }
}

impl From<&ContractError> for ErrorPayload {
    fn from(e: &ContractError) -> Self {
        ErrorPayload::new("InvalidBatch", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Batch, ContractError> {
        Batch::from_value(&v, &ParseOptions::default())
    }

    fn exec_task(id: &str) -> Value {
        json!({"id": id, "exec": {"program": "/bin/true", "args": []}})
    }

    #[test]
    fn shape_item_batcher_nested() {
        let b = parse(json!({
            "Items": [exec_task("a"), {"id": "b", "builtin": {"name": "sort", "params": {"format": "text"}}}],
            "BatchInput": {"run_id": "r1", "output_prefix": "file:///tmp/out/", "parallelism": 3}
        }))
        .unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r1"));
        assert_eq!(b.output_prefix.as_deref(), Some("file:///tmp/out/"));
        assert_eq!(b.parallelism, Some(3));
        assert_eq!(b.tasks.len(), 2);
        assert!(matches!(&b.tasks[1].action, TaskAction::Builtin(s) if s.name == "sort"));
    }

    #[test]
    fn shape_item_batcher_merged() {
        let b = parse(json!({"Items": [exec_task("a")], "run_id": "r2", "extra": 1})).unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r2"));
    }

    #[test]
    fn shape_direct_invoke() {
        let b =
            parse(json!({"run_id": "r3", "tasks": [exec_task("x")], "unknown": {"a": 1}})).unwrap();
        assert_eq!(b.run_id.as_deref(), Some("r3"));
        assert!(matches!(&b.tasks[0].action, TaskAction::Exec(e) if e.program == "/bin/true"));
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            parse(json!({"run_id": "r"})),
            Err(ContractError::MissingTasks)
        );
        assert_eq!(
            parse(json!({"tasks": []})),
            Err(ContractError::EmptyTasks("tasks"))
        );
        assert_eq!(
            parse(json!([1])),
            Err(ContractError::NotAnObject("an array"))
        );
        let dup = parse(json!({"Items": [exec_task("a"), exec_task("a")]})).unwrap_err();
        assert!(dup.to_string().contains("Items[1].id"), "{dup}");
        let many: Vec<Value> = (0..5).map(|i| exec_task(&format!("t{i}"))).collect();
        let err =
            Batch::from_value(&json!({"tasks": many}), &ParseOptions { max_tasks: 4 }).unwrap_err();
        assert!(err.to_string().contains("`tasks` has 5 tasks"), "{err}");
        let err = parse(json!({"tasks": [{"id": "a"}]})).unwrap_err();
        assert!(err.to_string().contains("tasks[0].exec"), "{err}");
        let err =
            parse(json!({"tasks": [{"id": "a", "exec": {"program": "/bin/sh", "args": "-c ls"}}]}))
                .unwrap_err();
        assert!(err.to_string().contains("tasks[0]"), "{err}");
        let err = parse(
            json!({"tasks": [{"id": "a", "exec": {"program": "x"}, "inputs": {"in": "http://x"}}]}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tasks[0].inputs.in"), "{err}");
        let err = parse(
            json!({"tasks": [{"id": "a", "exec": {"program": "x"}, "outputs": {"out": "s3:///k"}}]}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tasks[0].outputs.out") && err.contains("the bucket name is empty"),
            "{err}"
        );
    }

    #[test]
    fn error_payload_mirrors_lambda() {
        let p = ErrorPayload::from(&ContractError::MissingTasks);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["errorType"], "InvalidBatch");
        assert!(v["errorMessage"].as_str().unwrap().contains("Items"));
    }
}
